//! Chaos: files flow watch → local: → sender → file: while every kind of
//! pitcher process is killed -9 at random moments and the destination
//! turns unwritable or full; afterwards every file must be there, whole,
//! with no `.tmp` left and the retry queues empty.
//!
//! The short run is a normal test; the long one (10,000 files, many
//! faults) is `scripts/chaos/run.sh --long`. The figures are printed
//! (`--nocapture`).
//!
//! The tutorial's shape (watch → RabbitMQ → sender ×3–5 → sftp to the
//! loopback sshd) with sshd restarts, network cuts and RabbitMQ restarts
//! besides: `scripts/chaos/run.sh --sftp-amqp [--long]`. Those stop the
//! shared RabbitMQ and sshd, so they are ignored by a plain `cargo test`
//! and run alone, last, by `bash scripts/test.sh`.

mod chaos_support;
mod cluster_support;
mod common;

use chaos_support::{run, Plan, Summary};

#[test]
fn chaos_short_nothing_is_lost_while_processes_die_and_the_destination_fails() {
    let plan = Plan::new(500, 10, 7, 90);
    let s = run(&plan);
    println!("{s}");
    assert_eq!((s.lost, s.corrupt, s.tmp_left), (0, 0, 0), "{s}");
    assert_eq!(s.retry_left, 0, "{s}");
    assert!(
        s.faults.iter().any(|f| f.contains("kill-9-supervisor")),
        "{s}"
    );
    assert!(
        s.sanity_actions
            .iter()
            .any(|a| a.contains("supervisor was not running")),
        "the cron'd sanity never brought the supervisor back: {s}"
    );
}

/// `scripts/chaos/run.sh --long`: 10,000 files, every fault many times.
#[test]
#[ignore = "long: run with scripts/chaos/run.sh --long"]
fn chaos_long() {
    let plan = Plan::new(10_000, 60, 40, 600);
    let s = run(&plan);
    println!("{s}");
    assert_eq!((s.lost, s.corrupt, s.tmp_left), (0, 0, 0), "{s}");
    assert_eq!(s.retry_left, 0, "{s}");
}

/// Asserts that nothing is lost and that each of `kinds` was injected
/// (and did something: a line without `!!!`).
fn assert_sound(s: &Summary, kinds: &[&str]) {
    assert_eq!((s.lost, s.corrupt, s.tmp_left), (0, 0, 0), "{s}");
    assert_eq!(s.retry_left, 0, "{s}");
    assert_eq!(s.escaped_log_lines, 0, "colour codes in the log files: {s}");
    for k in kinds {
        assert!(
            s.faults
                .iter()
                .any(|f| f.contains(&format!(" {k}: ")) && !f.contains("!!!")),
            "fault {k} never injected: {s}"
        );
    }
}

/// The tutorial's shape, short: 500 files, each fault once, under 3 min.
#[test]
#[ignore = "disturbs shared RabbitMQ/sshd: bash scripts/test.sh runs it alone"]
fn chaos_sftp_amqp_short() {
    let plan = Plan::sftp_amqp(500, 40, 9, 150);
    let s = run(&plan);
    println!("{s}");
    let mut kinds = vec!["sshd-restart", "rabbitmq-restart", "kill-9-supervisor"];
    if plan
        .kinds
        .contains(&chaos_support::faults::Fault::NetworkCut)
        && chaos_support::services::can_cut_network()
    {
        kinds.push("network-cut");
    }
    assert_sound(&s, &kinds);
}

/// `scripts/chaos/run.sh --sftp-amqp --long`: 10,000 files over 3 min,
/// 30 faults of every kind.
#[test]
#[ignore = "long, disturbs shared RabbitMQ/sshd: scripts/chaos/run.sh --sftp-amqp --long"]
fn chaos_sftp_amqp_long() {
    let plan = Plan::sftp_amqp(10_000, 180, 30, 900);
    let s = run(&plan);
    println!("{s}");
    assert_sound(&s, &["sshd-restart", "rabbitmq-restart"]);
}

/// The tutorial's shape on the 3-node RabbitMQ cluster, short: 600 files
/// over 60 s while the node most connections are on and the quorum
/// queue's leader are killed -9, twice each, then all three nodes restart
/// one after another.
#[test]
#[ignore = "needs the RabbitMQ cluster and sshd: bash scripts/test.sh runs it"]
fn chaos_cluster_short() {
    let plan = Plan::cluster_sftp(600, 60, 5, 180);
    let s = run(&plan);
    println!("{s}");
    assert_sound(
        &s,
        &[
            "kill-9-connected-node",
            "kill-9-queue-leader",
            "rolling-restart",
        ],
    );
}

/// `scripts/chaos/run.sh --cluster --long`: 10,000 files over 3 min on the
/// cluster, the same faults.
#[test]
#[ignore = "long, needs the RabbitMQ cluster and sshd: scripts/chaos/run.sh --cluster --long"]
fn chaos_cluster_long() {
    let plan = Plan::cluster_sftp(10_000, 180, 5, 900);
    let s = run(&plan);
    println!("{s}");
    assert_sound(
        &s,
        &[
            "kill-9-connected-node",
            "kill-9-queue-leader",
            "rolling-restart",
        ],
    );
}

// Retry, the other half of "nothing lost": failures wait on disk, drain
// when the destination is back without starving new work, and leave only
// past retry_ttl, each with its own log line.

use common::{assert_delivered, content, tree, wait_until, Env, Frozen};
use std::collections::BTreeMap;
use std::time::Duration;

fn retry_count(env: &Env) -> u64 {
    let out = env.ok(&["status", "--json", "sender/hot"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["retry"].as_u64().unwrap_or(0)
}

#[test]
fn new_work_flows_while_retries_wait_and_retries_drain_when_the_destination_returns() {
    let env = Env::new();
    env.hot_directory(1, "");
    // An immutable destination directory: EPERM, an operator's to fix.
    let frozen = Frozen::new(&env.dest.join("blocked"));
    env.ok(&["start"]);
    std::fs::create_dir_all(env.hot.join("blocked")).unwrap();
    std::fs::create_dir_all(env.hot.join("free")).unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..100 {
        let c = content(i, 200);
        std::fs::write(env.hot.join(format!("blocked/b{i:03}")), &c).unwrap();
        expected.insert(format!("blocked/b{i:03}"), c);
    }
    assert!(
        wait_until(Duration::from_secs(30), || retry_count(&env) >= 100),
        "{}",
        env.logs()
    );
    let mut free = BTreeMap::new();
    for i in 0..100 {
        let c = content(i + 500, 300);
        std::fs::write(env.hot.join(format!("free/f{i:03}")), &c).unwrap();
        free.insert(format!("free/f{i:03}"), c);
    }
    let arrived = wait_until(Duration::from_secs(20), || {
        let t = tree(&env.dest.join("free"));
        t.len() == free.len()
    });
    assert!(arrived, "new work starved by the retries");
    assert!(retry_count(&env) >= 100, "retries vanished while blocked");
    frozen.thaw();
    for (k, v) in free {
        expected.insert(k, v);
    }
    // Backoff is at most a minute: all drains within it.
    assert_delivered(&env, &expected, Duration::from_secs(75));
    assert!(wait_until(Duration::from_secs(10), || retry_count(&env) == 0));
}

#[test]
fn retries_expire_only_past_retry_ttl_with_one_log_line_each() {
    let env = Env::new();
    env.hot_directory(1, "retry_ttl 6\nhousekeeping 1\n");
    let _frozen = Frozen::new(&env.dest.join("blocked"));
    env.ok(&["start"]);
    std::fs::create_dir_all(env.hot.join("blocked")).unwrap();
    for i in 0..5 {
        std::fs::write(env.hot.join(format!("blocked/x{i}")), b"never").unwrap();
    }
    assert!(wait_until(Duration::from_secs(20), || retry_count(&env) >= 5));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !env.logs().contains("retry_ttl expired"),
        "expired before retry_ttl"
    );
    assert!(
        wait_until(Duration::from_secs(30), || retry_count(&env) == 0),
        "{}",
        env.logs()
    );
    let logs = env.logs();
    let expired: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("retry_ttl expired"))
        .collect();
    for i in 0..5 {
        let name = format!("blocked/x{i} ");
        let n = expired
            .iter()
            .filter(|l| l.contains(&format!("blocked/x{i}")))
            .count();
        assert_eq!(n, 1, "{name}: {expired:?}");
    }
}
