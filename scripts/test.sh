#!/usr/bin/env bash
# Runs every pitcher test, starting the real services the tests need first.
# This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# RabbitMQ on 127.0.0.1:5672 (the machine usually starts it; start it if not).
ensure_rabbitmq() {
  if port_open 5672; then return 0; fi
  if ! command -v rabbitmq-server >/dev/null; then
    say "installing rabbitmq-server"
    apt-get update -qq && apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  say "starting RabbitMQ"
  rabbitmq-server -detached || true
  for _ in $(seq 1 60); do port_open 5672 && return 0; sleep 1; done
  echo "RabbitMQ did not come up on 127.0.0.1:5672" >&2
  return 1
}

# Mosquitto (MQTT) on 127.0.0.1:1883.
ensure_mosquitto() {
  if port_open 1883; then return 0; fi
  if ! command -v mosquitto >/dev/null; then
    say "installing mosquitto"
    apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null
  fi
  say "starting Mosquitto"
  mosquitto -d -c /etc/mosquitto/mosquitto.conf || mosquitto -d -p 1883 || true
  for _ in $(seq 1 30); do port_open 1883 && return 0; sleep 1; done
  echo "Mosquitto did not come up on 127.0.0.1:1883" >&2
  return 1
}

# The loopback sshd with a throwaway host key, user key and Host alias.
ensure_sshd() {
  if [ -f scripts/sshd-harness.sh ]; then
    bash scripts/sshd-harness.sh start
    eval "$(bash scripts/sshd-harness.sh env)"
  fi
}

# The real peer: metpx-sr3 from PyPI, with the packages `sr3 features` lists
# for what the interoperability tests use, in a venv kept between runs.
SR3_VENV=${PITCHER_SR3_VENV:-/var/cache/pitcher/sr3-venv}
ensure_sr3() {
  if [ ! -x "$SR3_VENV/bin/sr3" ]; then
    say "installing metpx-sr3 into $SR3_VENV"
    mkdir -p "$(dirname "$SR3_VENV")"
    python3 -m venv "$SR3_VENV"
    "$SR3_VENV/bin/pip" install -q metpx-sr3 amqp paramiko watchdog psutil netifaces xattr \
      python-magic paho-mqtt jsonpickle humanize humanfriendly appdirs
  fi
  export PITCHER_SR3="$SR3_VENV/bin/sr3"
  export PITCHER_SR3_PYTHON="$SR3_VENV/bin/python"
  export PITCHER_SR3_POST="$SR3_VENV/bin/sr3_post"
}

if ! command -v cargo >/dev/null; then
  echo "cargo is needed (a Rust toolchain)" >&2
  exit 1
fi

ensure_rabbitmq
ensure_mosquitto
ensure_sshd
ensure_sr3

# A 3-node RabbitMQ cluster beside the system's node (127.0.0.1:5682-5684,
# scripts/rabbitmq-cluster.sh) for tests/amqp_cluster.rs: started while the
# build runs, stopped (its data removed) when this script ends.
mkdir -p target
bash scripts/rabbitmq-cluster.sh start >target/rabbitmq-cluster.log 2>&1 &
cluster_start=$!
trap 'bash scripts/rabbitmq-cluster.sh stop >/dev/null 2>&1 || true' EXIT

say "building"
cargo build --all-targets --quiet
# Lints that hold: formatting and clippy, as one line of the tally each.
say "checking the format (cargo fmt --check) and lints (cargo clippy -D warnings)"
mkdir -p target
: >target/lint-output.txt
lint() {
  local what=$1; shift
  if "$@" >target/lint-step.txt 2>&1; then
    echo "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out ($what)" >>target/lint-output.txt
  else
    cat target/lint-step.txt >&2
    echo "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out ($what)" >>target/lint-output.txt
    status=1
  fi
}
status=0
lint "cargo fmt --check" cargo fmt --check
lint "cargo clippy" cargo clippy --all-targets --quiet -- -D warnings
cat target/lint-output.txt
say "running the tests"
cp target/lint-output.txt target/test-output.txt
cargo test --no-fail-fast 2>&1 | tee -a target/test-output.txt || status=1
# Tests that need the loopback sshd or the real metpx-sr3 are #[ignore]d for
# a bare `cargo test`; here both are set up, so they run (benchmarks excepted).
say "running the tests against the loopback sshd and metpx-sr3"
cargo test --no-fail-fast --test sftp_transport --test sftp_sender --test autoclean --test mqtt_broker --test interop_sr3 --test example_configs --test hostile -- --ignored --skip benchmark_ 2>&1 \
  | tee -a target/test-output.txt || status=1
# Failover, quorum queues and senders on two hosts, on the cluster (they
# kill its nodes, never the system's).
say "running the tests on the 3-node RabbitMQ cluster"
if wait "$cluster_start"; then
  eval "$(bash scripts/rabbitmq-cluster.sh env)"
  cargo test --no-fail-fast --test amqp_cluster -- --ignored --test-threads 1 2>&1 | tee -a target/test-output.txt || status=1
  # The short chaos run on the cluster: nodes killed -9, leader killed,
  # rolling restart, while files flow to the loopback sshd.
  cargo test --no-fail-fast --test chaos -- --ignored --exact chaos_cluster_short 2>&1 | tee -a target/test-output.txt || status=1
else
  echo "the RabbitMQ cluster did not start:" >&2
  cat target/rabbitmq-cluster.log >&2
  status=1
fi
# These stop RabbitMQ and close its connections: alone, after everything else.
say "running the tests that disturb RabbitMQ, alone"
cargo test --no-fail-fast --test amqp_faults -- --ignored --test-threads 1 2>&1 | tee -a target/test-output.txt || status=1
# The short chaos run of the tutorial's shape (RabbitMQ, sshd, network cuts).
cargo test --no-fail-fast --test chaos -- --ignored --exact chaos_sftp_amqp_short 2>&1 | tee -a target/test-output.txt || status=1
# The install: builds the .deb (a release build), installs it with dpkg -i,
# uses it, upgrades it with configs and state in place, purges it; and
# `cargo install --locked --path .`. One test in the tally.
say "building, installing and removing the .deb (scripts/deb-test.sh)"
deb_status=0
bash scripts/deb-test.sh 2>&1 | tee target/deb-test-output.txt || deb_status=$?
case $deb_status in
  0) deb_result="ok. 1 passed; 0 failed; 0 ignored" ;;
  77) deb_result="ok. 0 passed; 0 failed; 1 ignored" ;;
  *) deb_result="FAILED. 0 passed; 1 failed; 0 ignored"; status=1 ;;
esac
echo "test result: $deb_result; 0 measured; 0 filtered out (scripts/deb-test.sh)" | tee -a target/test-output.txt
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' target/test-output.txt | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
echo "all tests: $passed passed, $failed failed"
exit "$status"
