#!/usr/bin/env bash
# pitcher's end-to-end benchmark against metpx-sr3 and plain OpenSSH: prints
# one table, asserts nothing.
#
#   bash scripts/bench.sh [small|large|latency|memory|all] [--quick]
#
# What it starts: RabbitMQ on 127.0.0.1:5672 (if not up), the loopback sshd
# harness (scripts/sshd-harness.sh), metpx-sr3 in its venv (as
# scripts/test.sh installs it), a release build of pitcher with debug info
# (`--profile profiling`, target/profiling/pitcher). Then, for
# pitcher and for sr3 alike, the hot-directory tutorial's configs: a watch
# posting to RabbitMQ (amqp://guest@127.0.0.1/, credentials.conf) and a
# sender (instances 5, accelThreshold 1M, inflight .tmp, nodupe_ttl on,
# sendTo sftp://hpfx, post_broker back to RabbitMQ), each in a throwaway
# config/state dir (sr3: a throwaway HOME with its own ~/.ssh/config).
#
# Every figure is end to end: a file closed in the hot directory by the
# driver (which records the time) until it appears under its final name at
# the destination (inotify on the remote directory, which is on this
# machine):
#   small    5,000 × 4 KiB in 50 directories, 1,000 × 1 KiB in one: files/s,
#            and CPU seconds per 1,000 files (utime+stime of the daemons)
#   large    20 × 64 MiB: MB/s
#   latency  200 files, one every 100 ms: p50 and p99 close → final rename
#   memory   USS/RSS (smaps_rollup) of the watch + 5 senders at rest and
#            after 100,000 files (sampled every 20,000); sr3 after 5,000
# beside the limit: `sftp -b` (one session, put + rename) for small files,
# `scp` (one stream, and five at once) for large ones.
#
# Hot and remote directories are on tmpfs (/dev/shm) unless BENCH_DISK=1.
# --quick: a fifth of the counts. Settings: BENCH_SKIP_SR3=1 (pitcher and
# the limit only), BENCH_KEEP=1 (leave the work dir), BENCH_PAUSE=1 (wait,
# daemons running, before cleaning up: for profiling), BENCH_MEM_FILES,
# BENCH_PITCHER (another build of pitcher to measure), BENCH_INSTANCES (senders;
# 5 by default), BENCH_SKIP_CLUSTER=1 (no run on the 3-node RabbitMQ
# cluster of scripts/rabbitmq-cluster.sh, which `small` adds), BENCH_NO_RECEIPTS=1 (pitcher without delivery receipts:
# `receiptTimeout 0` in the watch, `report off` in the sender).
# All in one function, read whole before it runs: bash reads a script as it
# goes, and an edit to this file during a run would otherwise break it.
main() {
set -euo pipefail
cd "$(dirname "$0")/.."

what=all
quick=0
for a in "$@"; do
  case $a in
    small | large | latency | memory | all) what=$a ;;
    --quick) quick=1 ;;
    *) echo "usage: $0 [small|large|latency|memory|all] [--quick]" >&2; exit 2 ;;
  esac
done
wants() { [ "$what" = all ] || [ "$what" = "$1" ]; }
q() { if [ "$quick" = 1 ]; then echo $(( $1 / 5 )); else echo "$1"; fi; }
N_SMALL=$(q 5000); N_ONE=$(q 1000); N_LARGE=$(q 20); [ "$N_LARGE" -ge 4 ] || N_LARGE=4
N_LAT=$(q 200); N_MEM=${BENCH_MEM_FILES:-$(q 100000)}; N_SR3_MEM=$(q 5000)
INSTANCES=${BENCH_INSTANCES:-5}
SR3=${BENCH_SKIP_SR3:-0}; [ "$SR3" = 1 ] && SR3=0 || SR3=1

say() { printf '== %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- services
if ! port_open 5672; then
  say "starting RabbitMQ"
  rabbitmq-server -detached || true
  for _ in $(seq 60); do port_open 5672 && break; sleep 1; done
fi
# An sshd of the benchmark's own (other users of the shared test harness
# restart theirs), on its own port.
export PITCHER_SSHD_DIR=${BENCH_SSHD_DIR:-/tmp/pitcher-bench-sshd}
export PITCHER_SSHD_PORT=${BENCH_SSHD_PORT:-2223}
bash scripts/sshd-harness.sh start >&2
eval "$(bash scripts/sshd-harness.sh env)"
SSHCFG=$PITCHER_SSH_CONFIG
RUSER=$PITCHER_SSHD_USER
SR3_VENV=${PITCHER_SR3_VENV:-/var/cache/pitcher/sr3-venv}
if [ "$SR3" = 1 ] && [ ! -x "$SR3_VENV/bin/sr3" ]; then
  say "installing metpx-sr3 into $SR3_VENV"
  mkdir -p "$(dirname "$SR3_VENV")"
  python3 -m venv "$SR3_VENV"
  "$SR3_VENV/bin/pip" install -q metpx-sr3 amqp paramiko watchdog psutil netifaces xattr \
    python-magic paho-mqtt jsonpickle humanize humanfriendly appdirs
fi
if [ -n "${BENCH_PITCHER:-}" ]; then
  PITCHER=$BENCH_PITCHER # another build, to compare
else
  # Release code with debug info (Cargo.toml's profiling profile), so a
  # profiler (BENCH_PAUSE=1, then perf) sees function names and lines.
  say "building pitcher (release, with debug info: --profile profiling)"
  cargo build --profile profiling --quiet
  PITCHER=$PWD/target/profiling/pitcher
fi

# Hot and remote directories on tmpfs: on this VM's ext4, creating files
# right after many were deleted costs the kernel more than the daemons
# spend on a file, and how much depends on what ran before, so the same
# build measured 1,600 to 3,400 files/s from one run to the next. On tmpfs
# the daemons are what is measured. BENCH_DISK=1 puts everything on /tmp.
if [ "${BENCH_DISK:-0}" = 1 ]; then FS_ROOT=/tmp; else FS_ROOT=/dev/shm; fi
WORK=$(mktemp -d "$FS_ROOT/pitcher-bench.XXXXXX")
chmod 755 "$WORK"
RDIR=$FS_ROOT/pitcher-bench-remote-$$
TAG=bench$$
EXCHANGE=xs_guest_${TAG}
SR3HOME=$WORK/sr3home
export PITCHER_CONFIG_DIR=$WORK/config PITCHER_STATE_DIR=$WORK/state
RESULTS=$WORK/results
: > "$RESULTS"

# An empty XDG_CONFIG_HOME is not an unset one to sr3 (it would look in
# ./sr3): unset them, so HOME alone decides.
sr3() { env -u XDG_CONFIG_HOME -u XDG_CACHE_HOME HOME="$SR3HOME" "$SR3_VENV/bin/sr3" "$@"; }
cleanup() {
  set +e
  if [ "${BENCH_PAUSE:-0}" = 1 ]; then
    # For profiling what is left running: `rm` the file to go on.
    touch "$WORK/pause"
    say "paused; pitcher's state is in $WORK/state; rm $WORK/pause to finish"
    while [ -e "$WORK/pause" ]; do sleep 1; done
  fi
  "$PITCHER" stop >/dev/null 2>&1
  # The watch's receipts queue: named in its state, which cleanup removes.
  local rq
  rq=$(cat "$WORK"/state/watch/to_hpfx/*.receipts.qname 2>/dev/null || true)
  "$PITCHER" cleanup watch/to_hpfx sender/to_hpfx >/dev/null 2>&1
  if [ "$SR3" = 1 ] && [ -d "$SR3HOME/.config/sr3" ]; then
    sr3 stop >/dev/null 2>&1
    sr3 cleanup >/dev/null 2>&1
  fi
  # sr3's venv has an AMQP client: remove this run's exchanges with it.
  RQ=$rq "$SR3_VENV/bin/python" - "$EXCHANGE" "${EXCHANGE}_sr3" "xs_guest_${TAG}_on_hpfx" "xr_guest_${TAG}" <<'PY' >/dev/null 2>&1
import amqp, os, sys
c = amqp.Connection("127.0.0.1", userid="guest", password="guest")
c.connect()
ch = c.channel()
if os.environ.get("RQ"):
    ch.queue_delete(os.environ["RQ"])
for x in sys.argv[1:]:
    ch.exchange_delete(x)
c.close()
PY
  rm -rf "$RDIR"
  bash scripts/sshd-harness.sh stop >/dev/null 2>&1
  if [ "${BENCH_KEEP:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# ------------------------------------------------------------------ driver
# The measuring half, in Python: writes files into a hot directory and
# times their arrival at the destination with inotify (through ctypes: no
# package needed); reads /proc for CPU and memory; prints the table.
cat > "$WORK/driver.py" <<'PY'
import ctypes, json, os, shutil, struct, sys, threading, time

IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE, IN_ISDIR = 0x8, 0x80, 0x100, 0x40000000
libc = ctypes.CDLL("libc.so.6", use_errno=True)

class Arrivals(threading.Thread):
    """Final names appearing anywhere below root (created or renamed into
    place, *.tmp ignored), by base name, with the time they appeared."""
    def __init__(self, root):
        super().__init__(daemon=True)
        self.fd = libc.inotify_init1(0)
        if self.fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, f"inotify_init1: {os.strerror(e)} (fs.inotify.max_user_instances?)")
        self.dirs, self.seen = {}, {}
        self.add(root, must=True)
    def add(self, d, must=False):
        wd = libc.inotify_add_watch(self.fd, os.fsencode(d), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE)
        if wd < 0:
            e = ctypes.get_errno()
            if must or e != 2:  # a subdirectory may be gone already
                raise OSError(e, f"inotify_add_watch {d}: {os.strerror(e)}")
            return
        self.dirs[wd] = d
        for e in os.scandir(d):  # what came before the watch
            if e.is_dir(follow_symlinks=False):
                self.add(e.path)
            elif not e.name.endswith(".tmp"):
                self.seen.setdefault(e.name, time.time())
    def run(self):
        while True:
            buf = os.read(self.fd, 1 << 16)
            now, i = time.time(), 0
            while i < len(buf):
                wd, mask, _cookie, n = struct.unpack_from("iIII", buf, i)
                name = buf[i + 16:i + 16 + n].rstrip(b"\0").decode()
                i += 16 + n
                if mask & IN_ISDIR:
                    if mask & (IN_CREATE | IN_MOVED_TO) and wd in self.dirs:
                        self.add(os.path.join(self.dirs[wd], name))
                elif not name.endswith(".tmp"):
                    # A final name appears by rename (MOVED_TO) or, when
                    # sftp-server renames by link()+unlink() as OpenSSH's
                    # plain SSH_FXP_RENAME does (sr3's paramiko), by a
                    # CREATE of the complete file. Every run here writes
                    # under an inflight .tmp name, so neither comes early.
                    self.seen.setdefault(name, now)

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")

def drop(a):
    """drop HOT REMOTE_ROOT PREFIX N SIZE DIRS RATE TIMEOUT: put N files of
    SIZE bytes into HOT (spread over DIRS subdirectories; RATE per second,
    0 = as fast as possible) and wait until they all arrived below
    REMOTE_ROOT (or TIMEOUT s, or a minute without arrivals).

    The files are written beforehand in a staging directory beside HOT
    and moved in one by one (the tutorial's `mv` into the hot directory):
    a rename costs the driver next to nothing, where writing a new file on
    a busy ext4 costs it more than the daemons spend sending one, so the
    driver, not the daemons, would set the pace. Each file's time starts
    at its rename."""
    hot, root, prefix = a[0], a[1], a[2]
    n, size, ndirs, rate, timeout = int(a[3]), int(a[4]), int(a[5]), float(a[6]), float(a[7])
    # Outside every watched tree, on the same file system.
    stage = os.path.join(os.environ["BENCH_STAGE"], f"{os.path.basename(hot)}-{os.getpid()}")
    block = os.urandom(min(size, 1 << 20))
    names = []
    for i in range(n):
        sub = f"d{i % ndirs:02d}" if ndirs > 1 else ""
        os.makedirs(os.path.join(stage, sub), exist_ok=True)
        name = f"{prefix}{i:06d}.dat"
        with open(os.path.join(stage, sub, name), "wb") as f:
            left = size
            while left > 0:
                k = min(left, len(block))
                f.write(block[:k] if i % 2 == 0 else block[:k][::-1])
                left -= k
        names.append((sub, name))
    os.sync()
    for d in sorted({sub for sub, _ in names}):
        os.makedirs(os.path.join(hot, d), exist_ok=True)
    time.sleep(1)  # the directories' announcements go first
    watcher = Arrivals(root)
    watcher.start()
    closed = {}
    busy0 = machine_busy()
    t0 = time.time()
    for i, (sub, name) in enumerate(names):
        os.rename(os.path.join(stage, sub, name), os.path.join(hot, sub, name))
        closed[name] = time.time()
        if rate > 0:
            time.sleep(max(0.0, t0 + (i + 1) / rate - time.time()))
    last_close = time.time()
    shutil.rmtree(stage, ignore_errors=True)  # empty directories by now
    deadline, last_count, last_change = last_close + timeout, -1, time.time()
    while True:
        got = sum(1 for k in closed if k in watcher.seen)
        if got == n or time.time() > deadline:
            break
        if got != last_count:
            last_count, last_change = got, time.time()
        elif time.time() - last_change > 60:
            break
        time.sleep(0.02)
    busy1 = machine_busy()
    lat = [watcher.seen[k] - t for k, t in closed.items() if k in watcher.seen]
    first = min(closed.values())
    last = max((watcher.seen[k] for k in closed if k in watcher.seen), default=float("nan"))
    print(json.dumps({"n": n, "got": len(lat), "secs": last - first,
                      "files_s": len(lat) / (last - first) if lat else 0.0,
                      "mb_s": len(lat) * size / 1e6 / (last - first) if lat else 0.0,
                      "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000,
                      "max_ms": max(lat, default=float("nan")) * 1000,
                      "machine_busy": (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])}))

def machine_busy():
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)

def cpu(pids):
    """utime+stime of the pids, in seconds."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for p in pids:
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except OSError:
            pass
    return total / tick

def mem(pids):
    """USS and RSS (KiB) summed over the pids, from smaps_rollup."""
    uss = rss = 0
    for p in pids:
        try:
            for line in open(f"/proc/{p}/smaps_rollup"):
                k, v = line.split(":", 1)[0], line.split()[1:2]
                if k == "Rss":
                    rss += int(v[0])
                elif k in ("Private_Clean", "Private_Dirty"):
                    uss += int(v[0])
        except OSError:
            pass
    return uss, rss

def table(path):
    """Prints the results file (lines: row tool value) as one table."""
    rows, order = {}, []
    for line in open(path):
        row, tool, value = line.rstrip("\n").split("\t")
        if row not in rows:
            rows[row] = {}
            order.append(row)
        rows[row][tool] = value
    def num(s):
        try:
            return float(s.split()[0].replace(",", ""))
        except (ValueError, IndexError, AttributeError):
            return None
    hdr = f"{'measure':<46} {'pitcher':>14} {'sr3':>14} {'limit':>16} {'vs sr3':>8} {'vs limit':>9}"
    print(hdr)
    print("-" * len(hdr))
    for row in order:
        r = rows[row]
        p, s, l = r.get("pitcher", ""), r.get("sr3", ""), r.get("limit", "")
        lower_better = any(w in row for w in ("latency", "memory", "CPU"))
        def ratio(a, b):
            a, b = num(a), num(b)
            if not a or not b:
                return ""
            return f"{(b / a if lower_better else a / b):.1f}×"
        print(f"{row:<46} {p:>14} {s:>14} {l:>16} {ratio(p, s):>8} {ratio(p, l):>9}")
    print("(ratios: how many times better pitcher is; for latency, memory and CPU, lower is better)")

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "drop":
        drop(args)
    elif cmd == "cpu":
        print(cpu(args))
    elif cmd == "mem":
        print(*mem(args))
    elif cmd == "table":
        table(args[0])
    elif cmd == "field":  # field JSON NAME [FORMAT]
        v = json.loads(args[0])[args[1]]
        print(format(v, args[2] if len(args) > 2 else ""))
PY
drv() { BENCH_STAGE=$WORK/stage python3 "$WORK/driver.py" "$@"; }
field() { drv field "$@"; }
result() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$RESULTS"; }

# A remote directory the ssh user owns.
rmkdir() { install -d -o "$RUSER" -g "$RUSER" -m 0755 "$@"; }
rmkdir "$RDIR" "$RDIR/pitcher" "$RDIR/sr3" "$RDIR/limit"

# ----------------------------------------------------------------- pitcher
P_HOT=$WORK/hot/pitcher
mkdir -p "$P_HOT" "$WORK/config/watch" "$WORK/config/sender"
printf 'amqp://guest:guest@127.0.0.1/\n' > "$WORK/config/credentials.conf"
chmod 600 "$WORK/config/credentials.conf"
cat > "$WORK/config/watch/to_hpfx.conf" <<EOF
post_broker amqp://guest@127.0.0.1/
post_exchange $EXCHANGE
post_baseUrl file:$P_HOT
path $P_HOT
nodupe_ttl on
reject .*.tmp$
accept .*
report_exchange xr_guest_${TAG}
EOF
cat > "$WORK/config/sender/to_hpfx.conf" <<EOF
broker amqp://guest@127.0.0.1/
exchange $EXCHANGE
sendTo sftp://hpfx
sshConfig $SSHCFG
instances $INSTANCES
accelThreshold 1M
inflight .tmp
nodupe_ttl on
reject .*.tmp$
accept .*
post_baseDir $RDIR/pitcher
report_exchange xr_guest_${TAG}
EOF
if [ "${BENCH_NO_RECEIPTS:-0}" = 1 ]; then
  echo "receiptTimeout 0" >> "$WORK/config/watch/to_hpfx.conf"
  echo "report off" >> "$WORK/config/sender/to_hpfx.conf"
fi
[ "${BENCH_NO_POST:-0}" = 1 ] || cat >> "$WORK/config/sender/to_hpfx.conf" <<EOF
post_broker amqp://guest@127.0.0.1/
post_exchange xs_guest_${TAG}_on_hpfx
post_baseUrl sftp://$RUSER@hpfx/on_hpfx
EOF
say "starting pitcher (watch + sender ×$INSTANCES)"
"$PITCHER" start >&2
# The daemons: the supervisor's children (watch, senders), and with ssh
# their ssh clients (the senders' control masters).
pitcher_pids() {
  local sup; sup=$(cat "$WORK/state/supervisor.pid")
  for c in $(pgrep -P "$sup"); do
    grep -qa "instance" "/proc/$c/cmdline" && echo "$c"
  done
}
pitcher_tree() {
  local sup; sup=$(cat "$WORK/state/supervisor.pid")
  echo "$sup"
  for c in $(pgrep -P "$sup"); do
    echo "$c"
    pgrep -P "$c" || true
    # ssh masters detach (-f): found by their control socket's directory.
    pgrep -f -- "-S /tmp/pitcher-[0-9]+/$c/" || true
  done
}
for _ in $(seq 100); do
  [ "$(pitcher_pids 2>/dev/null | wc -l)" -ge $((INSTANCES + 1)) ] && break
  sleep 0.2
done

# --------------------------------------------------------------------- sr3
S_HOT=$WORK/hot/sr3
# sr3's instances: its instance.py processes whose HOME is this run's.
sr3_pids() {
  local p
  for p in $(pgrep -f 'sarracenia/instance.py' || true); do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "HOME=$SR3HOME" && echo "$p"
  done
  return 0
}
if [ "$SR3" = 1 ]; then
  mkdir -p "$S_HOT" "$SR3HOME/.config/sr3/watch" "$SR3HOME/.config/sr3/sender" "$SR3HOME/.ssh"
  cp "$SSHCFG" "$SR3HOME/.ssh/config"
  printf 'amqp://guest:guest@127.0.0.1/\n' > "$SR3HOME/.config/sr3/credentials.conf"
  chmod 600 "$SR3HOME/.config/sr3/credentials.conf"
  cat > "$SR3HOME/.config/sr3/watch/to_hpfx.conf" <<EOF
post_broker amqp://guest@127.0.0.1/
post_exchange ${EXCHANGE}_sr3
post_baseUrl file:$S_HOT
path $S_HOT
nodupe_ttl on
reject .*.tmp$
accept .*
EOF
  # scp reads the real user's ~/.ssh/config, not \$HOME's: name it.
  cat > "$SR3HOME/.config/sr3/sender/to_hpfx.conf" <<EOF
broker amqp://guest@127.0.0.1/
exchange ${EXCHANGE}_sr3
sendTo sftp://hpfx
baseDir $S_HOT
instances $INSTANCES
accelThreshold 1M
accelScpCommand /usr/bin/scp -F $SR3HOME/.ssh/config %s %d
inflight .tmp
nodupe_ttl on
reject .*.tmp$
accept .*
post_broker amqp://guest@127.0.0.1/
post_exchange xs_guest_${TAG}_on_hpfx
post_baseUrl sftp://$RUSER@hpfx/on_hpfx
post_baseDir $RDIR/sr3
EOF
  say "starting sr3 (watch + sender ×$INSTANCES)"
  (cd "$SR3HOME" && sr3 declare >/dev/null 2>&1 && sr3 start >&2)
  for _ in $(seq 150); do
    [ "$(sr3_pids | grep -c .)" -ge $((INSTANCES + 1)) ] && break
    sleep 0.2
  done
  sleep 5 # instances stagger their start and connect
fi

# One end-to-end run: drop files into TOOL's hot dir, wait for them remotely.
# run TOOL LABEL N SIZE DIRS RATE → JSON
run() {
  local tool=$1 label=$2 n=$3 size=$4 dirs=$5 rate=$6 hot
  hot=$([ "$tool" = pitcher ] && echo "$P_HOT" || echo "$S_HOT")/$label
  mkdir -p "$hot"
  rmkdir "$RDIR/$tool/$label"
  drv drop "$hot" "$RDIR/$tool/$label" "${label}_" "$n" "$size" "$dirs" "$rate" \
    $((120 + n / 10))
}
tools=(pitcher); [ "$SR3" = 1 ] && tools+=(sr3)
daemon_pids() { if [ "$1" = pitcher ]; then pitcher_pids; else sr3_pids; fi; }
# With their ssh clients (sr3's paramiko runs inside its senders).
daemon_tree() { if [ "$1" = pitcher ]; then pitcher_tree; else sr3_pids; fi; }

# Memory at rest, before any file.
mem_row() { # TOOL ROW
  local u r; read -r u r < <(drv mem $(daemon_pids "$1"))
  result "$2 USS (MiB)" "$1" "$(python3 -c "print(f'{$u/1024:.1f}')")"
  result "$2 RSS (MiB)" "$1" "$(python3 -c "print(f'{$r/1024:.1f}')")"
}
if wants memory; then
  for t in "${tools[@]}"; do mem_row "$t" "memory at rest, watch+5 senders"; done
  say "USS KiB by process: $(for p in $(pitcher_pids); do printf '%s=%s ' "$(tr '\0' ' ' < "/proc/$p/cmdline" | awk '{print $5 "#" $4}')" "$(drv mem "$p" | cut -d' ' -f1)"; done)"
fi

# ------------------------------------------------------------------- small
small_row() { # TOOL LABEL N SIZE DIRS ROW
  local tool=$1 c0 c1 t0 t1 j
  c0=$(drv cpu $(daemon_pids "$tool")); t0=$(drv cpu $(daemon_tree "$tool"))
  j=$(run "$tool" "$2" "$3" "$4" "$5" 0)
  c1=$(drv cpu $(daemon_pids "$tool")); t1=$(drv cpu $(daemon_tree "$tool"))
  say "$tool $2: $j"
  result "$6 (files/s)" "$tool" "$(field "$j" files_s ,.0f)"
  result "$6: CPU ms per file" "$tool" \
    "$(python3 -c "print(f'{($c1-$c0)*1000/$(field "$j" got):.3f}')")"
  result "$6: CPU ms per file, with ssh" "$tool" \
    "$(python3 -c "print(f'{($t1-$t0)*1000/$(field "$j" got):.3f}')")"
  [ "$(field "$j" got)" = "$3" ] || result "$6: delivered" "$tool" "$(field "$j" got)/$3"
}
sftp_batch() { # SRCDIR REMOTE → seconds for one `sftp -b` session
  local src=$1 dest=$2 batch=$WORK/batch t0 t1
  {
    echo "-mkdir $dest"
    (cd "$src" && find . -mindepth 1 -type d | sort) | while read -r d; do echo "-mkdir $dest/${d#./}"; done
    (cd "$src" && find . -type f | sort) | while read -r f; do
      f=${f#./}; echo "put $src/$f $dest/$f.tmp"; echo "rename $dest/$f.tmp $dest/$f"
    done
  } > "$batch"
  t0=$(date +%s.%N)
  sftp -F "$SSHCFG" -q -b "$batch" hpfx >/dev/null
  t1=$(date +%s.%N)
  python3 -c "print($t1 - $t0)"
}
make_files() { # DIR N SIZE DIRS
  python3 - "$@" <<'PY'
import os, sys
root, n, size, nd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for i in range(n):
    d = os.path.join(root, f"d{i % nd:02d}") if nd > 1 else root
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:06d}.dat"), "wb") as f:
        f.write(os.urandom(size))
PY
}
if wants small; then
  for t in "${tools[@]}"; do
    say "small files, $t: $N_SMALL × 4 KiB in 50 directories, $N_ONE × 1 KiB in one"
    small_row "$t" s4k "$N_SMALL" 4096 50 "$N_SMALL × 4 KiB, 50 dirs"
    sleep 2
    small_row "$t" s1k "$N_ONE" 1024 1 "$N_ONE × 1 KiB, one dir"
    sleep 2
  done
  say "small files, limit: sftp -b"
  make_files "$WORK/src-s4k" "$N_SMALL" 4096 50
  s=$(sftp_batch "$WORK/src-s4k" "$RDIR/limit/s4k")
  result "$N_SMALL × 4 KiB, 50 dirs (files/s)" limit "$(python3 -c "print(f'{$N_SMALL/$s:,.0f} sftp -b')")"
  make_files "$WORK/src-s1k" "$N_ONE" 1024 1
  s=$(sftp_batch "$WORK/src-s1k" "$RDIR/limit/s1k")
  result "$N_ONE × 1 KiB, one dir (files/s)" limit "$(python3 -c "print(f'{$N_ONE/$s:,.0f} sftp -b')")"
  rm -rf "$WORK/src-s4k" "$WORK/src-s1k" "$RDIR/limit/s4k" "$RDIR/limit/s1k"
fi

# ------------------------------------------------------------------- large
MiB64=$((64 * 1024 * 1024))
if wants large; then
  for t in "${tools[@]}"; do
    say "large files, $t: $N_LARGE × 64 MiB"
    j=$(run "$t" large "$N_LARGE" "$MiB64" 1 0)
    say "$t large: $j"
    result "$N_LARGE × 64 MiB (MB/s)" "$t" "$(field "$j" mb_s ,.0f)"
    [ "$(field "$j" got)" = "$N_LARGE" ] || result "$N_LARGE × 64 MiB: delivered" "$t" "$(field "$j" got)/$N_LARGE"
    # Free the disk (the deletions propagate; give them a moment).
    rm -rf "${P_HOT:?}/large" "${S_HOT:-/nonexistent}/large"
    sleep 3
    rm -rf "$RDIR/$t/large"
  done
  say "large files, limit: scp"
  mkdir -p "$WORK/src-large"
  python3 - "$WORK/src-large" "$N_LARGE" "$MiB64" <<'PY'
import os, sys
block = os.urandom(1 << 20)
for i in range(int(sys.argv[2])):
    with open(os.path.join(sys.argv[1], f"l{i:03d}.bin"), "wb") as f:
        for _ in range(int(sys.argv[3]) >> 20):
            f.write(block if i % 2 == 0 else block[::-1])
PY
  rmkdir "$RDIR/limit/large"
  total=$(python3 -c "print($N_LARGE * $MiB64 / 1e6)")
  t0=$(date +%s.%N)
  scp -F "$SSHCFG" -q "$WORK"/src-large/* "hpfx:$RDIR/limit/large/"
  t1=$(date +%s.%N)
  result "$N_LARGE × 64 MiB (MB/s)" limit "$(python3 -c "print(f'{$total/($t1-$t0):,.0f} scp')")"
  rm -rf "$RDIR/limit/large"/*
  t0=$(date +%s.%N)
  for k in 0 1 2 3 4; do
    files=()
    for f in "$WORK"/src-large/*; do
      i=${f##*/l}; i=$((10#${i%.bin}))
      [ $((i % 5)) = "$k" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] && scp -F "$SSHCFG" -q "${files[@]}" "hpfx:$RDIR/limit/large/" &
  done
  wait
  t1=$(date +%s.%N)
  result "$N_LARGE × 64 MiB, 5 streams (MB/s)" limit "$(python3 -c "print(f'{$total/($t1-$t0):,.0f} scp×5')")"
  rm -rf "$RDIR/limit/large" "$WORK/src-large"
fi

# ----------------------------------------------------------------- latency
if wants latency; then
  for t in "${tools[@]}"; do
    say "latency, $t: $N_LAT × 4 KiB, 10 a second"
    j=$(run "$t" lat "$N_LAT" 4096 1 10)
    say "$t latency: $j"
    result "latency p50, 10 files/s (ms)" "$t" "$(field "$j" p50_ms ,.0f)"
    result "latency p99, 10 files/s (ms)" "$t" "$(field "$j" p99_ms ,.0f)"
  done
fi

# ------------------------------------------------------------------ memory
if wants memory; then
  step=$(( N_MEM >= 20000 ? 20000 : N_MEM ))
  done_n=0 k=0
  while [ "$done_n" -lt "$N_MEM" ]; do
    say "memory, pitcher: files $done_n..$((done_n + step))"
    j=$(run pitcher "mem$k" "$step" 4096 50 0)
    say "pitcher mem$k: $j"
    done_n=$((done_n + step)) k=$((k + 1))
    sleep 3 # at rest again: the daemons hand back a burst's memory after 1 s idle
    read -r u r < <(drv mem $(pitcher_pids))
    say "USS KiB by process: $(for p in $(pitcher_pids); do printf '%s=%s ' "$(tr '\0' ' ' < "/proc/$p/cmdline" | awk '{print $5 "#" $4}')" "$(drv mem "$p" | cut -d' ' -f1)"; done)"
    result "memory after $done_n files USS (MiB)" pitcher "$(python3 -c "print(f'{$u/1024:.1f}')")"
    result "memory after $done_n files RSS (MiB)" pitcher "$(python3 -c "print(f'{$r/1024:.1f}')")"
  done
  if [ "$SR3" = 1 ]; then
    say "memory, sr3: $N_SR3_MEM files"
    j=$(run sr3 mem0 "$N_SR3_MEM" 4096 50 0)
    say "sr3 mem0: $j"
    sleep 3
    mem_row sr3 "memory after $N_SR3_MEM files (sr3)"
  fi
fi

# ----------------------------------------------------------------- cluster
# The same small-files run through the 3-node RabbitMQ cluster of
# scripts/rabbitmq-cluster.sh (started here if it is not up, stopped after
# if so), the configs naming every node, the sender's queue a quorum queue:
# a pitcher installation of its own, copied from the one above.
if wants small && [ "${BENCH_SKIP_CLUSTER:-0}" != 1 ]; then
  cluster_was_up=0
  bash scripts/rabbitmq-cluster.sh status >/dev/null 2>&1 && cluster_was_up=1
  say "the 3-node RabbitMQ cluster"
  bash scripts/rabbitmq-cluster.sh start >/dev/null
  C_HOT=$WORK/hot/cluster
  C_URL=amqp://guest@127.0.0.1:5682,127.0.0.1:5683,127.0.0.1:5684/
  mkdir -p "$C_HOT"
  rmkdir "$RDIR/cluster"
  cp -r "$WORK/config" "$WORK/cluster-config"
  printf 'amqp://guest:guest@127.0.0.1:5682/\n' > "$WORK/cluster-config/credentials.conf"
  for f in "$WORK"/cluster-config/*/to_hpfx.conf; do
    sed -i -e "s#amqp://guest@127.0.0.1/#$C_URL#" -e "s#$P_HOT#$C_HOT#g" \
      -e "s#$RDIR/pitcher#$RDIR/cluster#g" "$f"
  done
  echo "queueType quorum" >> "$WORK/cluster-config/sender/to_hpfx.conf"
  cpitcher() { PITCHER_CONFIG_DIR=$WORK/cluster-config PITCHER_STATE_DIR=$WORK/cluster-state "$PITCHER" "$@"; }
  say "starting pitcher on the cluster (watch + sender ×$INSTANCES)"
  cpitcher start >&2
  sleep 3
  say "small files, pitcher on the cluster: $N_SMALL × 4 KiB in 50 directories"
  mkdir -p "$C_HOT/s4k"
  rmkdir "$RDIR/cluster/s4k"
  j=$(drv drop "$C_HOT/s4k" "$RDIR/cluster/s4k" s4k_ "$N_SMALL" 4096 50 0 $((120 + N_SMALL / 10)))
  say "pitcher cluster s4k: $j"
  result "$N_SMALL × 4 KiB, 50 dirs, 3-node cluster (files/s)" pitcher "$(field "$j" files_s ,.0f)"
  [ "$(field "$j" got)" = "$N_SMALL" ] || result "$N_SMALL × 4 KiB, 3-node cluster: delivered" pitcher "$(field "$j" got)/$N_SMALL"
  cpitcher stop >/dev/null 2>&1 || true
  cpitcher cleanup watch/to_hpfx sender/to_hpfx >/dev/null 2>&1 || true
  rm -rf "$RDIR/cluster"
  [ "$cluster_was_up" = 1 ] || bash scripts/rabbitmq-cluster.sh stop >/dev/null 2>&1 || true
fi

# Per process, for the curious: the last memory figures.
{
  echo
  echo "pitcher benchmark: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB, Linux $(uname -r), $(date -u +%FT%TZ)"
  echo "pitcher $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $("$SR3_VENV/bin/pip" show metpx-sr3 2>/dev/null | awk '/^Version/ {print "metpx-sr3 " $2}'), $(ssh -V 2>&1)"
  echo
  drv table "$RESULTS"
  echo
  echo "pitcher processes now (pid USS RSS KiB):"
  for p in $(pitcher_pids); do
    read -r u r < <(drv mem "$p")
    echo "  $p $(tr '\0' ' ' < "/proc/$p/cmdline" | cut -c1-60) $u $r"
  done
} | tee "$WORK/table.txt"
}

main "$@"
