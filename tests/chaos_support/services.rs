//! The shared services the tutorial-shaped chaos run disturbs: the
//! loopback sshd (`scripts/sshd-harness.sh`), the network path to it
//! (iptables DROP rules on loopback port 2222), and RabbitMQ
//! (`rabbitmqctl stop_app`).
//!
//! Every command is bounded in time (coreutils `timeout`). Only rules this
//! suite adds are ever removed: they carry the comment [`RULE_TAG`] and
//! name the harness port on `lo`. [`Services`] is a guard: made at the
//! start of a run and dropped at its end (panics included), it removes
//! those rules, starts the RabbitMQ app and the harness sshd if they are
//! down, so other tests find them running.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

/// The comment on every iptables rule this suite adds, so that it removes
/// its own rules and nothing else (leftovers of a killed run included).
pub const RULE_TAG: &str = "pitcher-chaos";

/// Runs `program args…`, killed after `limit`; `None` when it could not
/// run or timed out.
pub fn bounded(limit: Duration, program: &str, args: &[&str]) -> Option<Output> {
    let out = Command::new("timeout")
        .args(["-k", "5", &limit.as_secs().max(1).to_string(), program])
        .args(args)
        .output()
        .ok()?;
    // 124: timed out; 137: killed after the grace time.
    match out.status.code() {
        Some(124) | Some(137) => None,
        _ => Some(out),
    }
}

fn succeeded(o: &Option<Output>) -> bool {
    o.as_ref().is_some_and(|o| o.status.success())
}

fn harness() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/sshd-harness.sh")
}

/// The harness port (`PITCHER_SSHD_PORT`, 2222 by default).
pub fn sshd_port() -> u16 {
    std::env::var("PITCHER_SSHD_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(2222)
}

/// The two rules of a cut: packets to the server and packets from it, on
/// loopback only.
fn rules(port: u16) -> [Vec<String>; 2] {
    let p = port.to_string();
    let tail = ["-m", "comment", "--comment", RULE_TAG, "-j", "DROP"];
    let mut input: Vec<String> = ["INPUT", "-i", "lo", "-p", "tcp", "--dport", &p]
        .iter()
        .map(|s| s.to_string())
        .collect();
    input.extend(tail.iter().map(|s| s.to_string()));
    let mut output: Vec<String> = ["OUTPUT", "-o", "lo", "-p", "tcp", "--sport", &p]
        .iter()
        .map(|s| s.to_string())
        .collect();
    output.extend(tail.iter().map(|s| s.to_string()));
    [input, output]
}

fn iptables(op: &str, rule: &[String]) -> bool {
    let mut args: Vec<&str> = vec![op];
    args.extend(rule.iter().map(String::as_str));
    succeeded(&bounded(Duration::from_secs(20), "iptables", &args))
}

/// Whether iptables can be used here (installed, and allowed to list).
pub fn can_cut_network() -> bool {
    succeeded(&bounded(
        Duration::from_secs(20),
        "iptables",
        &["-S", "INPUT"],
    ))
}

/// Drops every packet to and from the sshd port on loopback: open
/// connections stall, new ones time out. `Err` says why not.
pub fn cut_network() -> Result<(), String> {
    let mut added: Vec<Vec<String>> = Vec::new();
    for rule in rules(sshd_port()) {
        let mut insert = rule.clone();
        // -I CHAIN 1: ahead of any ACCEPT another tool may have added.
        insert.insert(1, "1".into());
        if !iptables("-I", &insert) {
            // Half a cut is no cut: take back the rule just added.
            for r in &added {
                iptables("-D", r);
            }
            return Err(format!("iptables -I {} failed", rule.join(" ")));
        }
        added.push(rule);
    }
    Ok(())
}

/// Undoes one [`cut_network`]: one rule of each pair removed, so that
/// overlapping cuts each last their own time (the network comes back when
/// the last one ends). Returns how many rules were removed.
pub fn uncut_network() -> usize {
    rules(sshd_port())
        .iter()
        .filter(|rule| iptables("-D", rule))
        .count()
}

/// How many rules of this suite are in place.
pub fn cut_rules_left() -> usize {
    ["INPUT", "OUTPUT"]
        .iter()
        .filter_map(|chain| bounded(Duration::from_secs(20), "iptables", &["-S", chain]))
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.contains(RULE_TAG))
                .count()
        })
        .sum()
}

/// Removes every rule [`cut_network`] added (however many times), and
/// only those. Returns how many were removed.
pub fn restore_network() -> usize {
    let mut removed = 0;
    for rule in rules(sshd_port()) {
        // -D fails once no such rule is left; bounded in case it never does.
        for _ in 0..20 {
            if !iptables("-D", &rule) {
                break;
            }
            removed += 1;
        }
    }
    removed
}

/// `sshd-harness.sh kill`: sshd and its sessions are killed -9.
pub fn kill_sshd() -> bool {
    succeeded(&bounded(
        Duration::from_secs(30),
        "bash",
        &[&harness().to_string_lossy(), "kill"],
    ))
}

/// `sshd-harness.sh start` (idempotent; waits for a login to work, which
/// takes well under a second unless the network is cut: hence the short
/// bound).
pub fn start_sshd() -> bool {
    succeeded(&bounded(
        Duration::from_secs(20),
        "bash",
        &[&harness().to_string_lossy(), "start"],
    ))
}

/// `sshd-harness.sh status`: its sshd is running.
pub fn sshd_running() -> bool {
    succeeded(&bounded(
        Duration::from_secs(10),
        "bash",
        &[&harness().to_string_lossy(), "status"],
    ))
}

/// `rabbitmqctl stop_app`: the broker closes every connection and takes
/// none until started again (durable queues and persistent messages stay).
pub fn stop_rabbitmq() -> bool {
    succeeded(&bounded(
        Duration::from_secs(60),
        "rabbitmqctl",
        &["stop_app"],
    ))
}

/// `rabbitmqctl start_app` then `await_startup` (harmless when running).
pub fn start_rabbitmq() -> bool {
    let started = succeeded(&bounded(
        Duration::from_secs(120),
        "rabbitmqctl",
        &["start_app"],
    ));
    let up = succeeded(&bounded(
        Duration::from_secs(120),
        "rabbitmqctl",
        &["await_startup", "--timeout", "100"],
    ));
    started && up
}

/// Puts everything back as other tests expect it; what it had to do, for
/// the log.
pub fn restore_all() -> Vec<String> {
    let mut did = Vec::new();
    let removed = restore_network();
    if removed > 0 {
        did.push(format!(
            "removed {removed} iptables rules tagged {RULE_TAG}"
        ));
    }
    if !start_rabbitmq() {
        did.push("!!! rabbitmqctl start_app/await_startup failed !!!".into());
    }
    if !sshd_running() {
        did.push(format!("sshd restarted: {}", start_sshd()));
    }
    did
}

/// A guard: everything restored ([`restore_all`]) when dropped.
pub struct Services(());

impl Services {
    /// Arms the guard (call [`restore_all`] first for what a killed
    /// earlier run may have left).
    pub fn arm() -> Services {
        Services(())
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for line in restore_all() {
            eprintln!("chaos: after the run: {line}");
        }
    }
}
