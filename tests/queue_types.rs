//! `queueType` against the real RabbitMQ on 127.0.0.1:5672: a sender
//! whose config says `queueType quorum` (or `stream`) gets a queue of that
//! type from `pitcher declare`, consumes it, shows its depth in `status`,
//! and `pitcher cleanup` removes it, as for a classic queue.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const BROKER: &str = "amqp://guest@127.0.0.1/";

/// `rabbitmqctl list_queues name type`: the type of `queue`, if it exists.
fn queue_type(queue: &str) -> Option<String> {
    let out = Command::new("rabbitmqctl")
        .args(["list_queues", "-q", "--no-table-headers", "name", "type"])
        .output()
        .expect("rabbitmqctl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(name, _)| *name == queue)
        .map(|(_, t)| t.trim().to_string())
}

fn credentials(env: &Env) {
    env.write_config("credentials.conf", "amqp://guest:guest@127.0.0.1/\n");
    std::fs::set_permissions(
        env.config.join("credentials.conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
}

fn declared_queue(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split("queue ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("declare named no queue: {out}"))
        .to_string()
}

fn the_tutorial_shape_on(kind: &str) {
    let env = Env::new();
    credentials(&env);
    let x = format!("xs_guest_{}", unique(kind));
    env.write_config(
        "watch/hot.conf",
        &format!(
            "post_broker {BROKER}\npost_exchange {x}\npost_baseUrl file:{hot}\npath {hot}\nreject .*\\.tmp$\naccept .*\n",
            hot = env.hot.display()
        ),
    );
    env.write_config(
        "sender/q.conf",
        &format!(
            "broker {BROKER}\nexchange {x}\nqueueType {kind}\nsendTo file:\ndirectory {}\ninstances 2\ninflight .tmp\naccept .*\n",
            env.dest.display()
        ),
    );
    let out = env.ok(&["declare", "sender/q"]);
    let queue = declared_queue(&out);
    assert_eq!(
        queue_type(&queue).as_deref(),
        Some(kind),
        "rabbitmqctl list_queues name type"
    );
    // Declared again (as every start does): the same arguments, no error.
    env.ok(&["declare", "sender/q"]);
    env.ok(&["declare", "watch/hot"]);
    env.ok(&["start"]);
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..40 {
        let c = content(i, 700);
        std::fs::write(env.hot.join(format!("q_{i:02}")), &c).unwrap();
        expected.insert(format!("q_{i:02}"), c);
    }
    assert_delivered(&env, &expected, Duration::from_secs(60));
    let status: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "--json", "sender/q"])).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || {
            let v: serde_json::Value =
                serde_json::from_str(&env.ok(&["status", "--json", "sender/q"])).unwrap();
            v[0]["queued"].as_u64() == Some(0)
        }),
        "status shows no queue depth for a {kind} queue: {status}"
    );
    env.ok(&["stop"]);
    let out = env.ok(&["cleanup", "sender/q"]);
    assert!(out.contains(&format!("deleted queue {queue}")), "{out}");
    assert_eq!(queue_type(&queue), None, "cleanup left the queue");
    let _ = Command::new("rabbitmqctl")
        .args(["delete_exchange", &x])
        .output();
}

#[test]
fn a_quorum_queue_is_declared_consumed_reported_and_cleaned_up() {
    the_tutorial_shape_on("quorum");
}

#[test]
fn a_stream_queue_is_declared_consumed_reported_and_cleaned_up() {
    the_tutorial_shape_on("stream");
}

#[test]
fn quorum_without_durable_is_a_config_error() {
    let env = Env::new();
    env.write_config(
        "sender/q.conf",
        "broker amqp://guest@127.0.0.1/\nexchange x\nqueueType quorum\ndurable off\nsendTo file:/tmp\n",
    );
    let o = env.run(&["declare", "sender/q"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("queueType quorum needs durable on"), "{err}");
    env.write_config(
        "sender/q.conf",
        "broker amqp://guest@127.0.0.1/\nexchange x\nqueueType fast\nsendTo file:/tmp\n",
    );
    let o = env.run(&["declare", "sender/q"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("sender/q.conf:3"), "{err}");
    assert!(err.contains("expected classic, quorum or stream"), "{err}");
}
