#!/bin/sh
# The chaos suite: files flow watch -> local: -> sender -> file: while every
# kind of pitcher process is killed -9 at random moments and the destination
# turns unwritable (a file in the way of a directory) or full (a tmpfs of
# its own filled up); a cron-like `pitcher sanity` runs every 2 s. At the
# end: every file present and whole, no .tmp left, retry queues empty, and
# the figures: files, lost, corrupt, duplicates, time to drain.
#
#   scripts/chaos/run.sh            the short run (500 files, 7 faults, ~15 s)
#   scripts/chaos/run.sh --long     10,000 files over 60 s, 40 faults
#   scripts/chaos/run.sh --release  (either, built with --release)
#
# Knobs (environment): CHAOS_FILES, CHAOS_FEED_SECS, CHAOS_FAULTS,
# CHAOS_DEADLINE_SECS, CHAOS_SEED (replays a run's files and fault
# schedule), CHAOS_HOOKS (a directory of executables, each an extra fault:
# called `hook inject RUN_DIR` then `hook heal RUN_DIR`; see hooks/),
# CHAOS_SEND_TO and CHAOS_DEST_DIR (another destination, e.g. an sftp URL
# and the local directory its server writes to).
#
# Needs root for the tmpfs (without it, the dest-full faults are skipped
# with a loud message). Logs, ledger and status of each run are kept in
# target/tmp/chaos-<seed>/.
set -eu
cd "$(dirname "$0")/../.."
test=chaos_short_nothing_is_lost_while_processes_die_and_the_destination_fails
ignored=""
profile=""
for a in "$@"; do
    case "$a" in
        --long) test=chaos_long; ignored="--ignored" ;;
        --release) profile="--release" ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "unknown option $a (try --help)" >&2; exit 2 ;;
    esac
done
exec cargo test $profile --test chaos -- $ignored --exact "$test" --nocapture
