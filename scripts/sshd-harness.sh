#!/usr/bin/env bash
# A throwaway OpenSSH server on 127.0.0.1 for pitcher's sftp/scp tests.
#
#   scripts/sshd-harness.sh start   install sshd if missing, set up keys, a test
#                                   user and configs, start sshd (idempotent)
#   scripts/sshd-harness.sh stop    stop that sshd and its session processes
#   scripts/sshd-harness.sh env     print the exports the tests read, e.g.
#                                   eval "$(scripts/sshd-harness.sh env)"
#   scripts/sshd-harness.sh status  exit 0 if the harness sshd is running
#   scripts/sshd-harness.sh test    start, then run tests/sftp_transport.rs
#                                   (its #[ignore]d tests included)
#   scripts/sshd-harness.sh bench   start, then print the sftp/scp figures
#   scripts/sshd-harness.sh kill    kill -9 sshd and its sessions (tests use it)
#
# Settings (environment):
#   PITCHER_SSHD_DIR   throwaway dir for keys, configs, logs (/tmp/pitcher-sshd)
#   PITCHER_SSHD_PORT  port on 127.0.0.1 (2222)
#   PITCHER_SSHD_USER  non-root login the tests write as (pitchertest)
#
# The client side is a separate ssh_config file (Host alias `hpfx`) given to
# ssh with -F: the real ~/.ssh is never read or written. Host keys are checked
# strictly against a known_hosts file the harness fills in itself.
# Needs root (useradd, apt-get, reading the test user's home).
set -euo pipefail

DIR=${PITCHER_SSHD_DIR:-/tmp/pitcher-sshd}
PORT=${PITCHER_SSHD_PORT:-2222}
TUSER=${PITCHER_SSHD_USER:-pitchertest}
SSHD=/usr/sbin/sshd

die() { echo "sshd-harness: $*" >&2; exit 1; }

running() {
    [[ -f $DIR/sshd.pid ]] || return 1
    local pid
    pid=$(cat "$DIR/sshd.pid" 2>/dev/null) || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

install_sshd() {
    [[ -x $SSHD ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "$SSHD is missing and installing it needs root"
    echo "sshd-harness: installing openssh-server" >&2
    # The Debian postinst may try to start the system sshd; that is harmless
    # (no systemd here) and not what the tests use.
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq openssh-server >&2
    [[ -x $SSHD ]] || die "openssh-server installed but $SSHD is still missing"
}

setup() {
    install -d -m 0755 /run/sshd  # privilege-separation dir; sshd refuses to start without it
    install -d -m 0755 "$DIR"
    [[ -f $DIR/host_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C pitcher-harness-host -f "$DIR/host_ed25519"
    [[ -f $DIR/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C pitcher-harness-user -f "$DIR/id_ed25519"
    chmod 600 "$DIR/host_ed25519" "$DIR/id_ed25519"

    if ! id "$TUSER" >/dev/null 2>&1; then
        useradd -m -s /bin/bash "$TUSER"
    fi
    # A locked account ("!" in shadow) is refused by sshd even for keys when
    # UsePAM is off; "*" means "no password" and lets key logins through.
    if [[ $(getent shadow "$TUSER" | cut -d: -f2) == '!'* ]]; then
        usermod -p '*' "$TUSER"
    fi
    local home
    home=$(getent passwd "$TUSER" | cut -d: -f6)
    install -d -o "$TUSER" -g "$TUSER" -m 0700 "$home/.ssh"
    # Added, not overwritten: harnesses with another PITCHER_SSHD_DIR (a
    # benchmark's, another worktree's) share this user, and replacing the
    # file locked out every sender using the other harness's key.
    local keys=$home/.ssh/authorized_keys
    [[ -f $keys ]] || install -o "$TUSER" -g "$TUSER" -m 0600 /dev/null "$keys"
    grep -qxF "$(cat "$DIR/id_ed25519.pub")" "$keys" || cat "$DIR/id_ed25519.pub" >>"$keys"

    cat >"$DIR/sshd_config" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $DIR/host_ed25519
PidFile $DIR/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin no
AllowUsers $TUSER
Subsystem sftp internal-sftp
MaxSessions 100
MaxStartups 100:30:200
LogLevel VERBOSE
EOF

    # The client files are written aside and renamed into place: a `start`
    # while senders run (the chaos suite restarts sshd under them) must not
    # show them a half-written config ("Could not resolve hostname hpfx").
    printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$DIR/host_ed25519.pub")" >"$DIR/known_hosts.new"
    mv -f "$DIR/known_hosts.new" "$DIR/known_hosts"

    cat >"$DIR/ssh_config.new" <<EOF
# pitcher test harness: the sender's view of the destination.
Host hpfx
    HostName 127.0.0.1
    Port $PORT
    User $TUSER
    IdentityFile $DIR/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $DIR/known_hosts
    StrictHostKeyChecking yes
# The same server reached through a jump host (itself): ProxyJump from the config.
Host hpfx-jump
    HostName 127.0.0.1
    Port $PORT
    User $TUSER
    IdentityFile $DIR/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $DIR/known_hosts
    StrictHostKeyChecking yes
    ProxyJump hpfx
# The loopback host under its own name, so sftp://user@127.0.0.1:port/ works too.
Host 127.0.0.1
    IdentityFile $DIR/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $DIR/known_hosts
    StrictHostKeyChecking yes
EOF
    mv -f "$DIR/ssh_config.new" "$DIR/ssh_config"
}

start() {
    install_sshd
    setup
    if running; then
        echo "sshd-harness: already running (pid $(cat "$DIR/sshd.pid")) on 127.0.0.1:$PORT" >&2
        return 0
    fi
    "$SSHD" -t -f "$DIR/sshd_config" || die "sshd_config rejected (see above)"
    # Absolute path: sshd re-executes itself and refuses a relative argv[0].
    "$SSHD" -f "$DIR/sshd_config" -E "$DIR/sshd.log"
    for _ in $(seq 50); do
        if running && ssh -F "$DIR/ssh_config" -o BatchMode=yes -o ConnectTimeout=2 hpfx true 2>/dev/null; then
            echo "sshd-harness: running (pid $(cat "$DIR/sshd.pid")) on 127.0.0.1:$PORT, user $TUSER" >&2
            return 0
        fi
        sleep 0.1
    done
    die "sshd did not accept a login within 5 s; see $DIR/sshd.log"
}

# The listener's pid, then every process below it (the per-connection sshd
# processes), found by parent pid: only processes this harness started.
descendants() {
    local pid=$1 child
    echo "$pid"
    for child in $(pgrep -P "$pid" 2>/dev/null || true); do
        descendants "$child"
    done
}

stop() {
    local sig=${1:-TERM}
    running || { echo "sshd-harness: not running" >&2; return 0; }
    local pid pids
    pid=$(cat "$DIR/sshd.pid")
    pids=$(descendants "$pid")
    # shellcheck disable=SC2086
    kill -s "$sig" $pids 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    rm -f "$DIR/sshd.pid"
    echo "sshd-harness: stopped (SIG$sig)" >&2
}

env_exports() {
    local home
    home=$(getent passwd "$TUSER" | cut -d: -f6)
    cat <<EOF
export PITCHER_SSH_CONFIG=$DIR/ssh_config
export PITCHER_SSHD_DIR=$DIR
export PITCHER_SSHD_PORT=$PORT
export PITCHER_SSHD_USER=$TUSER
export PITCHER_SSHD_HOME=$home
export PITCHER_SSHD_KEY=$DIR/id_ed25519
EOF
}

cargo_test() {
    start
    eval "$(env_exports)"
    cd "$(dirname "$0")/.."
    cargo test --test sftp_transport -- --include-ignored "$@"
}

case ${1:-} in
    start) start ;;
    stop) stop TERM ;;
    kill) stop KILL ;;
    restart) stop TERM; start ;;
    env) env_exports ;;
    status) running ;;
    test) shift; cargo_test --skip benchmark_ "$@" ;;
    bench) shift; cargo_test --exact bench::benchmark_against_sftp_batch_and_scp --nocapture "$@" ;;
    *) die "usage: $0 start|stop|kill|restart|env|status|test|bench" ;;
esac
