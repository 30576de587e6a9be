#!/usr/bin/env bash
# Fuzz one of pitcher's parsers of untrusted input with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh <target> [seconds] [-- extra libFuzzer flags]
#   scripts/fuzz.sh list
#
# Targets (fuzz/fuzz_targets/):
#   config_load   arbitrary bytes as a .conf, an included file and
#                 credentials.conf, loaded as every component: Ok or a
#                 ConfigError, never a panic
#   message_json  arbitrary bytes as a v03 body: accepted bodies round-trip
#                 through to_json and have a topic of at most 255 bytes
#   topic_match   AMQP binding pattern vs topic: agrees with a reference
#                 matcher, never slow
#   placement     arbitrary bytes as a sequence of hostile messages (links,
#                 renames, removes, `..`, long names) delivered by the
#                 sender and subscribe into a file: tree: nothing outside
#                 the destination changes (fuzz/common/placement.rs)
#
# seconds defaults to 60. The grown corpus goes to fuzz/corpus/<target>
# (not committed), started from the committed seeds in fuzz/seeds/<target>;
# a crash is saved under fuzz/artifacts/<target>/ and can be replayed with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -s none -a <target> <crash file>
# (run from fuzz/).
#
# cargo-fuzz is installed with `cargo install` when missing. It wants a
# nightly compiler; RUSTC_BOOTSTRAP=1 lets the stable one accept its -Z
# flags. We build without a sanitizer (-s none: the targets are safe Rust
# and AddressSanitizer would only slow them) but with debug assertions
# (-a, so integer overflow panics). Not part of scripts/test.sh.
set -euo pipefail

script="$(realpath "$0")"
cd "$(dirname "$script")/../fuzz"

if [[ "${1:-}" == "" || "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,/^set -euo/p' "$script" | sed '$d; s/^# \{0,1\}//'
    exit 2
fi

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

if [[ "$1" == "list" ]]; then
    exec cargo fuzz list
fi

target="$1"
shift
seconds=60
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    seconds="$1"
    shift
fi
if [[ "${1:-}" == "--" ]]; then
    shift
fi

mkdir -p "corpus/$target"
exec cargo fuzz run -s none -a "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@"
