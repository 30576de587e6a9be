#!/usr/bin/env bash
# pitcher's throughput benchmark: prints figures, asserts nothing.
#
#   bash scripts/bench.sh [small|large|all]     (default: all)
#
# It builds pitcher (release), starts the loopback sshd harness, and times
# end to end — first file dropped in the hot directory to the last file
# renamed into place at the destination — the tutorial's watch → local: →
# sender (sendTo sftp://hpfx, instances 5, accelThreshold 1M) for:
#   small: 2,000 × 4 KiB files in 20 directories   → files/s
#   large: 5 × 200 MB files                        → MB/s
# beside the same transfer by plain `sftp -b` (put + rename, one session)
# and plain `scp` (one stream), so every figure is also a ratio measured in
# the same run on the same machine.
#
# Settings: BENCH_SMALL (2000), BENCH_LARGE_MB (200), BENCH_LARGE_N (5),
# BENCH_INSTANCES (5).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
N_SMALL=${BENCH_SMALL:-2000}
LARGE_MB=${BENCH_LARGE_MB:-200}
N_LARGE=${BENCH_LARGE_N:-5}
INSTANCES=${BENCH_INSTANCES:-5}

say() { printf '== %s\n' "$*" >&2; }
now() { date +%s.%N; }
rate() { python3 -c "import sys; a,b,n=map(float,sys.argv[1:]); print(f'{n/(b-a):,.1f}')" "$@"; }
secs() { python3 -c "import sys; a,b=map(float,sys.argv[1:]); print(f'{b-a:.2f}')" "$@"; }

say "building pitcher (release)"
cargo build --release --quiet
PITCHER=$PWD/target/release/pitcher
bash scripts/sshd-harness.sh start >&2
eval "$(bash scripts/sshd-harness.sh env)"
SSHCFG=$PITCHER_SSH_CONFIG
RHOME=$PITCHER_SSHD_HOME
RUSER=$PITCHER_SSHD_USER

WORK=$(mktemp -d /tmp/pitcher-bench.XXXXXX)
RDIR=$RHOME/on_hpfx/bench-$$
cleanup() {
  PITCHER_CONFIG_DIR=$WORK/config PITCHER_STATE_DIR=$WORK/state "$PITCHER" stop >/dev/null 2>&1 || true
  rm -rf "$WORK" "$RDIR"
}
trap cleanup EXIT

# count_files DIR: regular files that are not inflight (*.tmp).
count_files() { find "$1" -type f ! -name '*.tmp' 2>/dev/null | wc -l; }

# wait_for DIR N: until DIR holds N files; prints the time it happened.
wait_for() {
  local dir=$1 n=$2 deadline=$(( $(date +%s) + 900 ))
  while [ "$(count_files "$dir")" -lt "$n" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out waiting for $n files in $dir" >&2; return 1; }
    sleep 0.05
  done
  now
}

make_small() { # DIR
  local d=$1
  python3 - "$d" "$N_SMALL" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    sub = os.path.join(root, f"d{i % 20:02d}")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"f{i:05d}.dat"), "wb") as f:
        f.write(os.urandom(4096))
PY
}

make_large() { # DIR
  mkdir -p "$1"
  for i in $(seq 1 "$N_LARGE"); do
    head -c $((LARGE_MB * 1000000)) /dev/urandom > "$1/l$i.bin"
  done
}

pitcher_env() {
  export PITCHER_CONFIG_DIR=$WORK/config PITCHER_STATE_DIR=$WORK/state
  mkdir -p "$WORK/config/watch" "$WORK/config/sender" "$WORK/hot"
  cat > "$WORK/config/watch/to_hpfx.conf" <<EOF
post_broker local:
post_exchange xs_bench
post_baseUrl file:$WORK/hot
path $WORK/hot
nodupe_ttl on
reject .*.tmp$
accept .*
EOF
  cat > "$WORK/config/sender/to_hpfx.conf" <<EOF
broker local:
exchange xs_bench
sendTo sftp://hpfx
sshConfig $SSHCFG
instances $INSTANCES
accelThreshold 1M
inflight .tmp
nodupe_ttl on
reject .*.tmp$
accept .*
post_baseDir $RDIR/pitcher
EOF
  "$PITCHER" start >&2
}

# One run of pitcher: the files in SRC are moved into the hot directory (a
# rename: the watch sees them complete at once), and timed until they are
# all at the destination.
run_pitcher() { # SRC N LABEL
  local src=$1 n=$2 label=$3 dest=$RDIR/pitcher/$label
  mkdir -p "$WORK/hot"
  local t0; t0=$(now)
  mv "$src" "$WORK/hot/$label"
  local t1; t1=$(wait_for "$dest" "$n")
  echo "$t0 $t1"
}

results=()
report() { results+=("$(printf '%-44s %14s %10s' "$1" "$2" "$3")"); }

pitcher_env

if [ "$what" = small ] || [ "$what" = all ]; then
  say "small files: $N_SMALL × 4 KiB"
  make_small "$WORK/src-small"
  read -r t0 t1 < <(run_pitcher "$WORK/src-small" "$N_SMALL" small)
  report "pitcher watch→local:→sender×$INSTANCES (sftp)" "$(rate "$t0" "$t1" "$N_SMALL") files/s" "$(secs "$t0" "$t1") s"
  # Baseline: one sftp -b session, put under .tmp and rename, as the sender does.
  make_small "$WORK/src-sftp"
  batch=$WORK/batch
  {
    echo "-mkdir $RDIR/sftp"
    for d in "$WORK"/src-sftp/*/; do echo "-mkdir $RDIR/sftp/$(basename "$d")"; done
    (cd "$WORK/src-sftp" && find . -type f | sort) | while read -r f; do
      f=${f#./}; echo "put $WORK/src-sftp/$f $RDIR/sftp/$f.tmp"; echo "rename $RDIR/sftp/$f.tmp $RDIR/sftp/$f"
    done
  } > "$batch"
  t0=$(now); sftp -F "$SSHCFG" -q -b "$batch" hpfx >/dev/null; t1=$(now)
  report "sftp -b (one session, put + rename)" "$(rate "$t0" "$t1" "$N_SMALL") files/s" "$(secs "$t0" "$t1") s"
fi

if [ "$what" = large ] || [ "$what" = all ]; then
  say "large files: $N_LARGE × $LARGE_MB MB"
  make_large "$WORK/src-large"
  total=$((N_LARGE * LARGE_MB))
  read -r t0 t1 < <(run_pitcher "$WORK/src-large" "$N_LARGE" large)
  report "pitcher watch→local:→sender×$INSTANCES (scp)" "$(rate "$t0" "$t1" "$total") MB/s" "$(secs "$t0" "$t1") s"
  make_large "$WORK/src-scp"
  ssh -F "$SSHCFG" hpfx mkdir -p "$RDIR/scp"
  t0=$(now); scp -F "$SSHCFG" -q "$WORK"/src-scp/* "hpfx:$RDIR/scp/"; t1=$(now)
  report "scp (one stream)" "$(rate "$t0" "$t1" "$total") MB/s" "$(secs "$t0" "$t1") s"
fi

echo
echo "pitcher benchmark on $(nproc) cores, $(uname -r); $(date -u +%FT%TZ)"
printf '%-44s %14s %10s\n' "what" "rate" "time"
for r in "${results[@]}"; do echo "$r"; done
