//! The embedded broker across real processes: a consumer killed with
//! SIGKILL before acking, a publisher killed in the middle of a batch, and
//! the cost of `synchronous = FULL`.
//!
//! The other processes are this very test binary, run again on the one
//! test [`child_process`] (ignored in normal runs), which reads its role
//! from the environment.

use super::store::Durability;
use super::tests::{consumer, db_in, msg, spec, NO_WAIT};
use super::*;
use crate::broker::{Consumer, Publisher};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ROLE_ENV: &str = "PITCHER_LOCAL_BROKER_CHILD";
const DB_ENV: &str = "PITCHER_LOCAL_BROKER_DB";
const ROUND_ENV: &str = "PITCHER_LOCAL_BROKER_ROUND";
const CRASH_BATCH: usize = 500;

/// A child process of the tests below: `claim` takes 5 deliveries and
/// hangs without acking; `publish` publishes batches until killed, saying
/// after each commit which batch it was.
#[test]
#[ignore = "run in a child process by the tests of this module"]
fn child_process() {
    let (Ok(role), Ok(db)) = (std::env::var(ROLE_ENV), std::env::var(DB_ENV)) else {
        return;
    };
    let db = PathBuf::from(db);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut out = std::io::stdout();
    match role.as_str() {
        "claim" => rt.block_on(async {
            let mut c = open_consumer(&db, "q").unwrap();
            c.declare_queue(&spec("q", &[("x", "#")], 0)).await.unwrap();
            let got = c.get(5, Duration::from_secs(5)).await.unwrap();
            let ids: Vec<String> = got.iter().map(|d| d.id.to_string()).collect();
            writeln!(out, "CLAIMED {}", ids.join(",")).unwrap();
            out.flush().unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }),
        "publish" => rt.block_on(async {
            let round = std::env::var(ROUND_ENV).unwrap();
            let mut p = open_publisher(&db).unwrap();
            p.declare_exchange("x").await.unwrap();
            for n in 0.. {
                let batch: Vec<_> = (0..CRASH_BATCH)
                    .map(|i| {
                        msg(
                            "x",
                            "v03.t",
                            &format!("{round}:{n}:{i}:{}", "x".repeat(200)),
                        )
                    })
                    .collect();
                p.publish(&batch).await.unwrap();
                writeln!(out, "COMMITTED {n}").unwrap();
                out.flush().unwrap();
            }
        }),
        other => panic!("unknown child role {other}"),
    }
}

/// This test binary again, running only [`child_process`] as `role`, and
/// the lines it prints.
fn spawn_child(role: &str, db: &Path, round: usize) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "broker::local::tests_processes::child_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE_ENV, role)
        .env(DB_ENV, db)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// What follows `prefix` in the first line the child prints with it (libtest
/// may have written `test … ... ` before it on the same line).
fn wait_for(lines: &mpsc::Receiver<String>, prefix: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("child never printed {prefix}: {e}"));
        if let Some(at) = line.find(prefix) {
            return line[at + prefix.len()..].trim().to_string();
        }
    }
}

#[tokio::test]
async fn deliveries_of_a_killed_consumer_go_to_another_flagged_redelivered() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let s = spec("q", &[("x", "#")], 0);
    let mut survivor = consumer(&db, &s).await;
    let mut p = open_publisher(&db).unwrap();
    let batch: Vec<_> = (0..10).map(|i| msg("x", "t", &i.to_string())).collect();
    p.publish(&batch).await.unwrap();

    let (mut child, lines) = spawn_child("claim", &db, 0);
    let claimed: Vec<u64> = wait_for(&lines, "CLAIMED ")
        .split(',')
        .map(|id| id.parse().unwrap())
        .collect();
    assert_eq!(claimed.len(), 5);

    // While the child lives, its deliveries stay its own.
    let rest = survivor.get(10, NO_WAIT).await.unwrap();
    assert_eq!(rest.len(), 5);
    assert!(rest
        .iter()
        .all(|d| !claimed.contains(&d.id) && !d.redelivered));
    survivor
        .ack(&rest.iter().map(|d| d.id).collect::<Vec<_>>())
        .await
        .unwrap();

    child.kill().unwrap(); // SIGKILL: no chance to give anything back.
    child.wait().unwrap();

    let started = Instant::now();
    let again = survivor.get(10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(again.iter().map(|d| d.id).collect::<Vec<_>>(), claimed);
    assert!(again.iter().all(|d| d.redelivered));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "taken back within the check interval"
    );
}

#[tokio::test]
async fn a_publisher_killed_mid_batch_leaves_whole_batches_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    consumer(&db, &spec("q", &[("x", "#")], 0)).await;
    for round in 0..3 {
        let (mut child, lines) = spawn_child("publish", &db, round);
        wait_for(&lines, "COMMITTED 2");
        // Somewhere inside the next batches, not on a commit boundary.
        std::thread::sleep(Duration::from_micros(1_000 + 3_700 * round as u64));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mut per_batch = std::collections::BTreeMap::<(usize, usize), usize>::new();
    let mut stmt = conn.prepare("SELECT body FROM messages").unwrap();
    for body in stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap() {
        let body = String::from_utf8(body.unwrap()).unwrap();
        let mut parts = body.split(':').map(|p| p.parse::<usize>().ok());
        let (Some(Some(round)), Some(Some(n))) = (parts.next(), parts.next()) else {
            panic!("unexpected body {body}");
        };
        *per_batch.entry((round, n)).or_default() += 1;
    }
    for round in 0..3 {
        let batches: Vec<usize> = per_batch
            .keys()
            .filter(|k| k.0 == round)
            .map(|k| k.1)
            .collect();
        assert!(
            batches.len() >= 3,
            "round {round}: the 3 confirmed batches are there"
        );
        assert_eq!(
            batches,
            (0..batches.len()).collect::<Vec<_>>(),
            "round {round}: no gap"
        );
    }
    for (batch, count) in per_batch {
        assert_eq!(count, CRASH_BATCH, "batch {batch:?} is whole");
    }
}

/// `cargo test --lib publish_cost_of_full_sync -- --ignored --nocapture`:
/// 10,000 messages of ~500 bytes published in batches of 100, then taken
/// and acked in batches of 100, with `synchronous` FULL and NORMAL. The
/// temp dir is under $TMPDIR: point it at the disk that matters.
#[test]
#[ignore = "a measurement, not a check"]
fn publish_cost_of_full_sync() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for sync in [Durability::Full, Durability::Normal] {
        let dir = tempfile::tempdir().unwrap();
        let db = db_in(&dir);
        rt.block_on(async {
            let mut c = consumer(&db, &spec("q", &[("x", "v03.#")], 0)).await;
            let mut p = publish::open_publisher_with(&db, sync).unwrap();
            let body = "b".repeat(500);
            let started = Instant::now();
            for b in 0..100 {
                let batch: Vec<_> = (0..100)
                    .map(|i| msg("x", &format!("v03.data.{b}.{i}"), &body))
                    .collect();
                p.publish(&batch).await.unwrap();
            }
            let publish = started.elapsed();
            let started = Instant::now();
            loop {
                let got = c.get(100, NO_WAIT).await.unwrap();
                if got.is_empty() {
                    break;
                }
                c.ack(&got.iter().map(|d| d.id).collect::<Vec<_>>())
                    .await
                    .unwrap();
            }
            let consume = started.elapsed();
            println!(
                "synchronous={sync:?}: publish 10000 in batches of 100: {:.0} ms ({:.0} msg/s); \
                 get+ack (consumer FULL): {:.0} ms",
                publish.as_secs_f64() * 1e3,
                10_000.0 / publish.as_secs_f64(),
                consume.as_secs_f64() * 1e3,
            );
        });
    }
}
