//! The embedded broker against a real SQLite file in a temp dir, within
//! one process: routing, leasing, acking, requeueing, prefetch, leases
//! taken back, and two consumers sharing a queue.

use super::*;
use crate::broker::{Binding, BrokerError, Consumer, Delivery, Outgoing, Publisher, QueueSpec};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(super) const NO_WAIT: Duration = Duration::ZERO;

pub(super) fn spec(name: &str, bindings: &[(&str, &str)], prefetch: u32) -> QueueSpec {
    QueueSpec {
        queue_type: None,
        name: name.to_string(),
        bindings: bindings
            .iter()
            .map(|(exchange, topic)| Binding {
                exchange: exchange.to_string(),
                topic: topic.to_string(),
            })
            .collect(),
        durable: true,
        expire: None,
        message_ttl: None,
        prefetch,
    }
}

pub(super) fn msg(exchange: &str, topic: &str, body: &str) -> Outgoing {
    Outgoing::new(exchange, topic, body.as_bytes().to_vec())
}

pub(super) fn db_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("state").join(DB_FILE_NAME)
}

pub(super) async fn consumer(db: &Path, spec: &QueueSpec) -> LocalConsumer {
    let mut c = open_consumer(db, &spec.name).expect("open consumer");
    c.declare_queue(spec).await.expect("declare queue");
    c
}

fn bodies(ds: &[Delivery]) -> Vec<String> {
    ds.iter()
        .map(|d| String::from_utf8_lossy(&d.body).into_owned())
        .collect()
}

fn ids(ds: &[Delivery]) -> Vec<u64> {
    ds.iter().map(|d| d.id).collect()
}

#[tokio::test]
async fn database_is_created_private_with_its_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    open_publisher(&db).unwrap();
    let mode = std::fs::metadata(&db).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn publish_to_an_undeclared_exchange_fails_with_no_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = open_publisher(&db_in(&dir)).unwrap();
    let err = p
        .publish(&[msg("xpublic", "v03.a", "1")])
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::NoExchange(x) if x == "xpublic"));
}

#[tokio::test]
async fn unroutable_batch_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let mut q = consumer(&db, &spec("q_a", &[("xpublic", "v03.a.#")], 0)).await;
    let mut p = open_publisher(&db).unwrap();
    p.declare_exchange("xpublic").await.unwrap();
    p.declare_exchange("xother").await.unwrap();
    // The first message is routable, the second is not: neither is kept.
    let batch = [msg("xpublic", "v03.a.x", "1"), msg("xpublic", "v03.b", "2")];
    let err = p.publish(&batch).await.unwrap_err();
    assert!(
        matches!(&err, BrokerError::Unroutable { exchange, topic } if exchange == "xpublic" && topic == "v03.b")
    );
    // An exchange nobody is bound to is unroutable too.
    let err = p
        .publish(&[msg("xother", "v03.a.x", "3")])
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Unroutable { .. }));
    assert_eq!(q.queue_depth().await.unwrap(), Some(0));
    assert!(q.get(10, NO_WAIT).await.unwrap().is_empty());
}

#[tokio::test]
async fn each_bound_queue_gets_its_own_copy_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    // q_a is bound twice to patterns that both match: it gets one copy.
    let mut a = consumer(
        &db,
        &spec("q_a", &[("xpublic", "v03.#"), ("xpublic", "v03.*")], 0),
    )
    .await;
    let mut b = consumer(&db, &spec("q_b", &[("xpublic", "v03.a")], 0)).await;
    let mut c = consumer(&db, &spec("q_c", &[("xpublic", "v03.z")], 0)).await;
    let mut p = open_publisher(&db).unwrap();
    p.publish(&[msg("xpublic", "v03.a", "hello")])
        .await
        .unwrap();

    let got_a = a.get(10, NO_WAIT).await.unwrap();
    let got_b = b.get(10, NO_WAIT).await.unwrap();
    assert_eq!(bodies(&got_a), ["hello"]);
    assert_eq!(bodies(&got_b), ["hello"]);
    assert_eq!(
        (got_a[0].exchange.as_str(), got_a[0].topic.as_str()),
        ("xpublic", "v03.a")
    );
    assert!(!got_a[0].redelivered);
    assert!(c.get(10, NO_WAIT).await.unwrap().is_empty());
    // Acking one queue's copy leaves the other's.
    a.ack(&ids(&got_a)).await.unwrap();
    assert_eq!(a.queue_depth().await.unwrap(), Some(0));
    assert_eq!(b.queue_depth().await.unwrap(), Some(1));
}

#[tokio::test]
async fn deliveries_come_in_publish_order_and_ack_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let mut q = consumer(&db, &spec("q", &[("x", "#")], 0)).await;
    let mut p = open_publisher(&db).unwrap();
    let batch: Vec<_> = (0..5).map(|i| msg("x", "t", &i.to_string())).collect();
    p.publish(&batch).await.unwrap();
    p.publish(&[msg("x", "t", "5")]).await.unwrap();

    let first = q.get(4, NO_WAIT).await.unwrap();
    assert_eq!(bodies(&first), ["0", "1", "2", "3"]);
    assert_eq!(
        q.queue_depth().await.unwrap(),
        Some(6),
        "unacked still count"
    );
    assert_eq!(
        queue_stats(&db, "q").unwrap(),
        Some(QueueStats {
            ready: 2,
            unacked: 4
        })
    );
    q.ack(&ids(&first)).await.unwrap();
    let rest = q.get(10, NO_WAIT).await.unwrap();
    assert_eq!(bodies(&rest), ["4", "5"]);
    q.ack(&ids(&rest)).await.unwrap();
    assert_eq!(q.queue_depth().await.unwrap(), Some(0));
}

#[tokio::test]
async fn requeued_deliveries_come_back_first_flagged_redelivered() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let mut q = consumer(&db, &spec("q", &[("x", "#")], 0)).await;
    let mut p = open_publisher(&db).unwrap();
    p.publish(&[msg("x", "t", "a"), msg("x", "t", "b"), msg("x", "t", "c")])
        .await
        .unwrap();
    let got = q.get(2, NO_WAIT).await.unwrap();
    q.requeue(&ids(&got)).await.unwrap();
    let again = q.get(10, NO_WAIT).await.unwrap();
    assert_eq!(bodies(&again), ["a", "b", "c"]);
    assert_eq!(
        again.iter().map(|d| d.redelivered).collect::<Vec<_>>(),
        [true, true, false]
    );
}

#[tokio::test]
async fn a_consumer_never_holds_more_than_its_prefetch() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let mut q = consumer(&db, &spec("q", &[("x", "#")], 3)).await;
    let mut p = open_publisher(&db).unwrap();
    let batch: Vec<_> = (0..10).map(|i| msg("x", "t", &i.to_string())).collect();
    p.publish(&batch).await.unwrap();

    let first = q.get(10, NO_WAIT).await.unwrap();
    assert_eq!(first.len(), 3);
    let started = std::time::Instant::now();
    assert!(q
        .get(10, Duration::from_millis(50))
        .await
        .unwrap()
        .is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "waits instead of spinning"
    );
    q.ack(&[first[0].id]).await.unwrap();
    let more = q.get(10, NO_WAIT).await.unwrap();
    assert_eq!(bodies(&more), ["3"]);
}

#[tokio::test]
async fn get_waits_for_a_message_published_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let mut q = consumer(&db, &spec("q", &[("x", "#")], 0)).await;
    let publisher_db = db.clone();
    let publisher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut p = open_publisher(&publisher_db).unwrap();
        rt.block_on(p.publish(&[msg("x", "t", "late")])).unwrap();
    });
    let got = q.get(10, Duration::from_secs(5)).await.unwrap();
    publisher.join().unwrap();
    assert_eq!(bodies(&got), ["late"]);
}

#[tokio::test]
async fn get_on_an_empty_queue_returns_nothing_after_wait() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let mut q = consumer(&db, &spec("q", &[("x", "#")], 0)).await;
    let started = std::time::Instant::now();
    assert!(q
        .get(10, Duration::from_millis(80))
        .await
        .unwrap()
        .is_empty());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(80) && waited < Duration::from_secs(2));
}

#[tokio::test]
async fn get_before_declare_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = open_consumer(&db_in(&dir), "nowhere").unwrap();
    assert!(q.get(1, Duration::from_secs(5)).await.is_err());
}

#[tokio::test]
async fn a_living_consumers_deliveries_are_not_given_to_another() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let s = spec("q", &[("x", "#")], 0);
    let (mut a, mut b) = (consumer(&db, &s).await, consumer(&db, &s).await);
    let mut p = open_publisher(&db).unwrap();
    p.publish(&[msg("x", "t", "1"), msg("x", "t", "2")])
        .await
        .unwrap();
    assert_eq!(bodies(&a.get(1, NO_WAIT).await.unwrap()), ["1"]);
    let got_b = b.get(10, Duration::from_millis(1100)).await.unwrap();
    assert_eq!(bodies(&got_b), ["2"]);
    // Past the owner check interval, still only what was ready.
    b.ack(&ids(&got_b)).await.unwrap();
    assert!(b
        .get(10, Duration::from_millis(1100))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn an_expired_lease_is_delivered_again_and_the_late_ack_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let s = spec("q", &[("x", "#")], 0);
    let (mut hung, mut b) = (consumer(&db, &s).await, consumer(&db, &s).await);
    hung.set_lease_duration(Duration::from_millis(50));
    let mut p = open_publisher(&db).unwrap();
    p.publish(&[msg("x", "t", "1")]).await.unwrap();
    let taken = hung.get(1, NO_WAIT).await.unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let again = b.get(1, NO_WAIT).await.unwrap();
    assert_eq!(ids(&again), ids(&taken));
    assert!(again[0].redelivered);
    hung.ack(&ids(&taken)).await.unwrap();
    assert_eq!(b.queue_depth().await.unwrap(), Some(1), "b still owns it");
    b.ack(&ids(&again)).await.unwrap();
    assert_eq!(b.queue_depth().await.unwrap(), Some(0));
}

#[tokio::test]
async fn a_lease_whose_pid_was_reused_by_another_process_is_taken_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let s = spec("q", &[("x", "#")], 0);
    let mut q = consumer(&db, &s).await;
    let mut p = open_publisher(&db).unwrap();
    p.publish(&[msg("x", "t", "1")]).await.unwrap();
    // A lease written by "this pid" in a process that started at another
    // time: the pid now belongs to someone else.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE messages SET lease_owner = 'ghost', lease_pid = ?1, lease_start = 1,
                             lease_until_ms = 9000000000000",
        [std::process::id()],
    )
    .unwrap();
    let got = q.get(1, NO_WAIT).await.unwrap();
    assert_eq!(bodies(&got), ["1"]);
    assert!(got[0].redelivered);
}

#[tokio::test]
async fn a_closed_consumer_gives_its_deliveries_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let s = spec("q", &[("x", "#")], 0);
    let mut p = open_publisher(&db).unwrap();
    {
        let mut a = consumer(&db, &s).await;
        p.publish(&[msg("x", "t", "1")]).await.unwrap();
        assert_eq!(a.get(1, NO_WAIT).await.unwrap().len(), 1);
    }
    assert_eq!(
        queue_stats(&db, "q").unwrap(),
        Some(QueueStats {
            ready: 1,
            unacked: 0
        })
    );
}

#[tokio::test]
async fn admin_functions_create_nothing_and_delete_queues() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    assert_eq!(queue_stats(&db, "q").unwrap(), None);
    assert!(list_queues(&db).unwrap().is_empty());
    assert!(!delete_queue(&db, "q").unwrap());
    assert!(!db.exists());

    let mut q = consumer(&db, &spec("q_b", &[("x", "#")], 0)).await;
    consumer(&db, &spec("q_a", &[("x", "v03.#")], 0)).await;
    let mut p = open_publisher(&db).unwrap();
    p.publish(&[msg("x", "v03.t", "1")]).await.unwrap();
    assert_eq!(list_queues(&db).unwrap(), ["q_a", "q_b"]);
    assert_eq!(queue_stats(&db, "nope").unwrap(), None);

    assert!(delete_queue(&db, "q_a").unwrap());
    assert_eq!(list_queues(&db).unwrap(), ["q_b"]);
    assert_eq!(queue_stats(&db, "q_a").unwrap(), None);
    assert_eq!(q.queue_depth().await.unwrap(), Some(1));
    // With q_a gone, v03.t still routes to q_b; with both gone, nothing does.
    assert!(delete_queue(&db, "q_b").unwrap());
    assert!(matches!(
        p.publish(&[msg("x", "v03.t", "2")]).await,
        Err(BrokerError::Unroutable { .. })
    ));
}

#[tokio::test]
async fn an_expired_queue_stops_receiving_and_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let mut s = spec("q", &[("x", "#")], 0);
    s.expire = Some(Duration::from_millis(50));
    consumer(&db, &s).await;
    let mut p = open_publisher(&db).unwrap();
    p.publish(&[msg("x", "t", "1")]).await.unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(matches!(
        p.publish(&[msg("x", "t", "2")]).await,
        Err(BrokerError::Unroutable { .. })
    ));
    // The next publisher's first publish sweeps it away.
    let mut p = open_publisher(&db).unwrap();
    assert!(p.publish(&[msg("x", "t", "3")]).await.is_err());
    assert!(list_queues(&db).unwrap().is_empty());
}

#[tokio::test]
async fn messages_older_than_message_ttl_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let mut s = spec("q", &[("x", "#")], 0);
    s.message_ttl = Some(Duration::from_millis(50));
    let mut q = consumer(&db, &s).await;
    let mut p = open_publisher(&db).unwrap();
    p.publish(&[msg("x", "t", "old")]).await.unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(q.get(10, NO_WAIT).await.unwrap().is_empty());
    assert_eq!(q.queue_depth().await.unwrap(), Some(0));
}

/// Two consumers on threads of their own (each its own runtime and
/// connection, as two instances would be) drain 2,000 messages published
/// meanwhile: each message is seen by exactly one of them, once.
#[test]
fn two_consumers_of_one_queue_never_share_a_delivery() {
    const TOTAL: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let s = spec("q", &[("x", "#")], 25);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(consumer(&db, &s));

    // Each worker stops once all messages are acked between them (not when
    // it finds the queue empty once: it may start before the publisher).
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (db, s, acked) = (db.clone(), s.clone(), acked.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let mut c = consumer(&db, &s).await;
                    let mut seen = Vec::new();
                    let deadline = std::time::Instant::now() + Duration::from_secs(60);
                    while acked.load(Ordering::SeqCst) < TOTAL {
                        assert!(std::time::Instant::now() < deadline, "stalled");
                        let got = c.get(10, Duration::from_millis(20)).await.unwrap();
                        // Hold them a moment, as a sender would, so the
                        // other consumer gets its turn at the queue.
                        std::thread::sleep(Duration::from_millis(1));
                        c.ack(&ids(&got)).await.unwrap();
                        acked.fetch_add(got.len(), Ordering::SeqCst);
                        seen.extend(bodies(&got));
                    }
                    seen
                })
            })
        })
        .collect();

    let mut p = open_publisher(&db).unwrap();
    for chunk in (0..TOTAL).collect::<Vec<_>>().chunks(100) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|i| msg("x", "t", &i.to_string()))
            .collect();
        rt.block_on(p.publish(&batch)).unwrap();
    }

    let seen: Vec<Vec<String>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(
        seen.iter().all(|s| !s.is_empty()),
        "both consumers took a share"
    );
    let all: Vec<&String> = seen.iter().flatten().collect();
    let unique: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len(), TOTAL, "no message seen twice");
    assert_eq!(unique.len(), TOTAL, "every message seen");
    assert_eq!(
        queue_stats(&db, "q").unwrap(),
        Some(QueueStats {
            ready: 0,
            unacked: 0
        })
    );
}

#[tokio::test]
async fn content_type_and_headers_travel_with_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let mut q = consumer(&db, &spec("q_a", &[("xpublic", "v02.post.#")], 0)).await;
    let mut p = open_publisher(&db).unwrap();
    p.declare_exchange("xpublic").await.unwrap();
    let mut v02 = msg("xpublic", "v02.post.a", "20261129014903 file:/h a/f");
    v02.content_type = Some("text/plain".into());
    v02.headers.insert("sum".into(), "z,s".into());
    v02.headers.insert("parts".into(), "1,3,1,0,0".into());
    p.publish(&[v02.clone(), msg("xpublic", "v02.post", "{}")])
        .await
        .unwrap();
    let got = q.get(10, NO_WAIT).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].content_type.as_deref(), Some("text/plain"));
    assert_eq!(got[0].headers, v02.headers);
    assert_eq!(
        (got[1].content_type.as_deref(), got[1].headers.len()),
        (None, 0)
    );
}

#[tokio::test]
async fn a_database_from_before_headers_gains_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    open_publisher(&db).unwrap();
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "ALTER TABLE messages DROP COLUMN headers; ALTER TABLE messages DROP COLUMN content_type;",
        )
        .unwrap();
    }
    let mut q = consumer(&db, &spec("q_a", &[("xpublic", "#")], 0)).await;
    let mut p = open_publisher(&db).unwrap();
    p.declare_exchange("xpublic").await.unwrap();
    let mut m = msg("xpublic", "v02.post", "b");
    m.headers.insert("k".into(), "v".into());
    p.publish(&[m]).await.unwrap();
    assert_eq!(q.get(1, NO_WAIT).await.unwrap()[0].headers["k"], "v");
}
