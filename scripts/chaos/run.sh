#!/bin/sh
# The chaos suite: files flow watch -> local: -> sender -> file: while every
# kind of pitcher process is killed -9 at random moments and the destination
# turns unwritable (an immutable directory, chattr +i) or full (a tmpfs of
# its own filled up); a cron-like `pitcher sanity` runs every 2 s. At the
# end: every file present and whole, no .tmp left, retry queues empty, and
# the figures: files, lost, corrupt, duplicates, time to drain.
#
#   scripts/chaos/run.sh            the short run (500 files, 7 faults, ~15 s)
#   scripts/chaos/run.sh --long     10,000 files over 60 s, 40 faults
#   scripts/chaos/run.sh --sftp-amqp          the tutorial's shape: watch ->
#                                   RabbitMQ -> sender x3-5 -> sftp://hpfx (the
#                                   loopback sshd), with sshd restarts, 30 s
#                                   network cuts (iptables), RabbitMQ
#                                   restarts and the remote disk full besides
#                                   (500 files, each fault once, < 3 min)
#   scripts/chaos/run.sh --sftp-amqp --long   the same, 10,000 files over
#                                   3 min, 30 faults
#   scripts/chaos/run.sh --cluster  the tutorial's shape on the 3-node RabbitMQ
#                                   cluster (scripts/rabbitmq-cluster.sh, started
#                                   here and left running), a quorum queue, 5
#                                   senders -> sftp://hpfx: the node most
#                                   connections are on and the queue's leader
#                                   killed -9, twice each, then a rolling
#                                   restart (600 files over 60 s)
#   scripts/chaos/run.sh --cluster --long     the same, 10,000 files over 3 min
#   scripts/chaos/run.sh --release  (any of them, built with --release)
#
# Knobs (environment): CHAOS_FILES, CHAOS_FEED_SECS, CHAOS_FAULTS,
# CHAOS_DEADLINE_SECS, CHAOS_SEED (replays a run's files and fault
# schedule), CHAOS_NETCUT_SECS (30), CHAOS_HOOKS (a directory of
# executables, each an extra fault: called `hook inject RUN_DIR` then
# `hook heal RUN_DIR`; see hooks/), CHAOS_SEND_TO and CHAOS_DEST_DIR
# (another destination for the local shape).
#
# Needs root for the tmpfs (without it, the dest-full faults are skipped
# with a loud message), and for --sftp-amqp: iptables (installed here if
# missing), RabbitMQ on 127.0.0.1:5672 (guest), the sshd harness (started
# here). --sftp-amqp stops the shared RabbitMQ and sshd: run nothing else
# against them meanwhile. Whatever happens (even Ctrl-C), the iptables
# rules it added are removed and RabbitMQ and sshd left running. Logs,
# ledger and status of each run are kept in target/tmp/chaos-<seed>/.
set -eu
cd "$(dirname "$0")/../.."
test=chaos_short_nothing_is_lost_while_processes_die_and_the_destination_fails
ignored=""
profile=""
long=""
shape=local
for a in "$@"; do
    case "$a" in
        --long) long=1 ;;
        --sftp-amqp) shape=sftp-amqp ;;
        --cluster) shape=cluster ;;
        --release) profile="--release" ;;
        -h|--help) sed -n '2,43p' "$0"; exit 0 ;;
        *) echo "unknown option $a (try --help)" >&2; exit 2 ;;
    esac
done
if [ "$shape" = local ]; then
    if [ -n "$long" ]; then test=chaos_long; ignored="--ignored"; fi
    exec cargo test $profile --test chaos -- $ignored --exact "$test" --nocapture
fi

if [ "$shape" = cluster ]; then
    test=chaos_cluster_short
    [ -n "$long" ] && test=chaos_cluster_long
    bash scripts/rabbitmq-cluster.sh start >/dev/null
    bash scripts/sshd-harness.sh start
    eval "$(bash scripts/sshd-harness.sh env)"
    # A run killed from outside leaves a node down: bring it back.
    trap 'bash scripts/rabbitmq-cluster.sh start >/dev/null 2>&1 || true' EXIT
    trap 'exit 130' INT TERM
    status=0
    cargo test $profile --test chaos -- --ignored --exact "$test" --nocapture || status=$?
    exit "$status"
fi

# The tutorial's shape.
test=chaos_sftp_amqp_short
[ -n "$long" ] && test=chaos_sftp_amqp_long
if ! command -v iptables >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    echo "chaos: installing iptables (for the network cuts)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null
fi
bash scripts/sshd-harness.sh start
eval "$(bash scripts/sshd-harness.sh env)"
# The test puts everything back itself, even when it panics; this covers a
# run killed from outside (Ctrl-C, timeout), which unwinds nothing.
restore() {
    port=${PITCHER_SSHD_PORT:-2222}
    for _ in 1 2 3 4 5; do
        iptables -D INPUT -i lo -p tcp --dport "$port" -m comment --comment pitcher-chaos -j DROP 2>/dev/null || break
    done
    for _ in 1 2 3 4 5; do
        iptables -D OUTPUT -o lo -p tcp --sport "$port" -m comment --comment pitcher-chaos -j DROP 2>/dev/null || break
    done
    timeout 120 rabbitmqctl start_app >/dev/null 2>&1 || true
    timeout 120 rabbitmqctl await_startup >/dev/null 2>&1 || true
    bash scripts/sshd-harness.sh start >/dev/null 2>&1 || true
}
trap restore EXIT
trap 'exit 130' INT TERM
status=0
cargo test $profile --test chaos -- --ignored --exact "$test" --nocapture || status=$?
exit "$status"
