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

say "building"
cargo build --all-targets --quiet
say "running the tests"
status=0
cargo test --no-fail-fast 2>&1 | tee target/test-output.txt || status=1
# Tests that need the loopback sshd or the real metpx-sr3 are #[ignore]d for
# a bare `cargo test`; here both are set up, so they run (benchmarks excepted).
say "running the tests against the loopback sshd and metpx-sr3"
cargo test --no-fail-fast --test sftp_transport --test sftp_sender --test autoclean --test mqtt_broker --test interop_sr3 --test example_configs --test hostile -- --ignored --skip benchmark_ 2>&1 \
  | tee -a target/test-output.txt || status=1
# These stop RabbitMQ and close its connections: alone, after everything else.
say "running the tests that disturb RabbitMQ, alone"
cargo test --no-fail-fast --test amqp_faults -- --ignored --test-threads 1 2>&1 | tee -a target/test-output.txt || status=1
# The short chaos run of the tutorial's shape (RabbitMQ, sshd, network cuts).
cargo test --no-fail-fast --test chaos -- --ignored --exact chaos_sftp_amqp_short 2>&1 | tee -a target/test-output.txt || status=1
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' target/test-output.txt | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
echo "all tests: $passed passed, $failed failed"
exit "$status"
