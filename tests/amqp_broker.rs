//! The `amqp://` broker against a real RabbitMQ on 127.0.0.1:5672
//! (guest/guest; `scripts/test.sh` starts it). Every test uses exchanges and
//! queues of its own, named after the process and a counter, deletes them
//! at the end, and gives its queues an `x-expires` so that a failed test
//! leaves nothing behind for long.

use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use pitcher::broker::amqp::{self, AmqpOptions};
use pitcher::broker::{self, Binding, BrokerError, Consumer, Delivery, Outgoing, QueueSpec};
use pitcher::state::Paths;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Our URL, as a config writes it: the vhost `/` is implied.
const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/";
/// The same for plain lapin, which reads an empty path as the vhost "".
const RAW_BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn url() -> url::Url {
    url::Url::parse(BROKER).unwrap()
}

fn paths() -> Paths {
    // Not used by amqp:, but the factory wants one.
    let dir = std::env::temp_dir().join("pitcher-amqp-test");
    Paths::resolve(Some(dir.clone()), Some(dir))
}

/// A name no other test (or test run) uses.
fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "pitcher-test.{}.{}.{what}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn spec(queue: &str, exchange: &str, prefetch: u32) -> QueueSpec {
    QueueSpec {
        queue_type: None,
        name: queue.to_string(),
        bindings: vec![Binding {
            exchange: exchange.to_string(),
            topic: "v03.#".to_string(),
        }],
        durable: true,
        expire: Some(Duration::from_secs(120)),
        message_ttl: None,
        prefetch,
    }
}

fn msg(exchange: &str, topic: &str, body: &str) -> Outgoing {
    Outgoing::new(exchange, topic, body.as_bytes().to_vec())
}

fn batch(exchange: &str, from: usize, n: usize) -> Vec<Outgoing> {
    (from..from + n)
        .map(|i| msg(exchange, "v03.a", &format!("{{\"n\": {i}}}")))
        .collect()
}

async fn publisher() -> Box<dyn broker::Publisher> {
    broker::publisher(&url(), &paths()).await.unwrap()
}

/// A consumer from the factory, its queue declared and bound.
async fn consumer(s: &QueueSpec) -> Box<dyn Consumer> {
    let mut c = broker::consumer(&url(), &paths(), &s.name).await.unwrap();
    c.declare_queue(s).await.unwrap();
    c
}

/// Everything `c` gets until `n` deliveries arrived (or 20 s passed).
async fn get_n(c: &mut dyn Consumer, n: usize) -> Vec<Delivery> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut all = Vec::new();
    while all.len() < n && Instant::now() < deadline {
        all.extend(
            c.get(n - all.len(), Duration::from_millis(500))
                .await
                .unwrap(),
        );
    }
    all
}

fn ids(ds: &[Delivery]) -> Vec<u64> {
    ds.iter().map(|d| d.id).collect()
}

fn bodies(ds: &[Delivery]) -> BTreeSet<String> {
    ds.iter()
        .map(|d| String::from_utf8(d.body.clone()).unwrap())
        .collect()
}

async fn cleanup(queues: &[&str], exchanges: &[&str]) {
    for q in queues {
        amqp::delete_queue(&url(), q).await.unwrap();
    }
    for x in exchanges {
        amqp::delete_exchange(&url(), x).await.unwrap();
    }
}

/// Ask the broker to close the connections named `name` (as sr3's
/// operators do with `rabbitmqctl close_connection`); only ours, so tests
/// running beside this one keep theirs.
fn broker_closes_connection(name: &str) {
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "pid",
            "client_properties",
            "-q",
            "--no-table-headers",
        ])
        .output()
        .expect("rabbitmqctl");
    let text = String::from_utf8_lossy(&out.stdout);
    let quoted = format!("{{\"connection_name\",\"{name}\"}}");
    let pids: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&quoted))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(!pids.is_empty(), "no connection named {name} in:\n{text}");
    for pid in pids {
        let st = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "test"])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

#[tokio::test]
async fn published_message_arrives_with_sr3_properties_and_routing_key() {
    let (x, q, raw_q) = (unique("x"), unique("q"), unique("raw"));
    let mut p = publisher().await;
    p.declare_exchange(&x).await.unwrap();
    let s = spec(&q, &x, 25);
    let mut c = consumer(&s).await;

    // A plain lapin queue beside it, to read the message as sr3 would.
    let conn = lapin::Connection::connect(RAW_BROKER, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        raw_q.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        raw_q.as_str().into(),
        x.as_str().into(),
        "v03.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    let body = r#"{"pubTime": "20261129T014903.518", "relPath": "cap/sub dir/f"}"#;
    p.publish(&[msg(&x, "v03.cap.sub dir", body)])
        .await
        .unwrap();

    let got = get_n(c.as_mut(), 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].exchange, x);
    assert_eq!(got[0].topic, "v03.cap.sub dir");
    assert_eq!(got[0].body, body.as_bytes());
    assert!(!got[0].redelivered);
    c.ack(&ids(&got)).await.unwrap();

    let raw = ch
        .basic_get(raw_q.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message in the plain queue");
    let props = &raw.delivery.properties;
    assert_eq!(raw.delivery.routing_key.as_str(), "v03.cap.sub dir");
    assert_eq!(raw.delivery.exchange.as_str(), x);
    assert_eq!(
        props.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(
        props.content_encoding().as_ref().map(|s| s.as_str()),
        Some("utf-8")
    );
    assert_eq!(*props.delivery_mode(), Some(2));
    assert_eq!(props.headers().as_ref().map(|h| h.inner().len()), Some(0));
    conn.close(200, "OK".into()).await.unwrap();

    assert_eq!(c.queue_depth().await.unwrap(), Some(0));
    cleanup(&[&q, &raw_q], &[&x]).await;
}

#[tokio::test]
async fn non_persistent_publisher_sends_delivery_mode_1() {
    let (x, q) = (unique("x"), unique("q"));
    let opts = AmqpOptions {
        persistent: false,
        ..AmqpOptions::default()
    };
    let mut p = amqp::open_publisher(&url(), &opts).await.unwrap();
    use pitcher::broker::Publisher;
    p.declare_exchange(&x).await.unwrap();
    let conn = lapin::Connection::connect(RAW_BROKER, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongInt(120_000));
    ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    ch.queue_bind(
        q.as_str().into(),
        x.as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    p.publish(&[msg(&x, "v03", "{}")]).await.unwrap();
    let raw = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message");
    assert_eq!(*raw.delivery.properties.delivery_mode(), Some(1));
    conn.close(200, "OK".into()).await.unwrap();
    cleanup(&[&q], &[&x]).await;
}

#[tokio::test]
async fn batches_of_1000_are_all_confirmed_and_all_delivered() {
    let (x, q) = (unique("x"), unique("q"));
    let mut p = publisher().await;
    p.declare_exchange(&x).await.unwrap();
    let mut c = consumer(&spec(&q, &x, 500)).await;
    for b in 0..3 {
        p.publish(&batch(&x, b * 1000, 1000)).await.unwrap();
    }
    // Confirmed means queued: the depth counts them all at once.
    let depth = c.queue_depth().await.unwrap().unwrap();
    assert!(
        depth >= 2500,
        "depth {depth} (some may already be prefetched)"
    );
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 3000 && Instant::now() < deadline {
        let ds = c.get(250, Duration::from_millis(500)).await.unwrap();
        c.ack(&ids(&ds)).await.unwrap();
        got.extend(ds);
    }
    assert_eq!(got.len(), 3000);
    assert_eq!(bodies(&got).len(), 3000, "each message once");
    assert!(c
        .get(10, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    cleanup(&[&q], &[&x]).await;
}

/// pitcher asks for small frames (its memory is mostly frame buffers): a
/// message larger than one frame still goes through whole, both ways.
#[tokio::test]
async fn messages_larger_than_a_frame_arrive_whole() {
    let (x, q) = (unique("x"), unique("q"));
    let mut p = publisher().await;
    p.declare_exchange(&x).await.unwrap();
    let mut c = consumer(&spec(&q, &x, 10)).await;
    let sizes = [8000, 8192, 20_000, 300_000];
    let sent: Vec<Outgoing> = sizes
        .iter()
        .map(|n| {
            let body: String = (0..*n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            msg(&x, "v03.big", &body)
        })
        .collect();
    p.publish(&sent).await.unwrap();
    let got = get_n(c.as_mut(), sizes.len()).await;
    c.ack(&ids(&got)).await.unwrap();
    let mut lens: Vec<usize> = got.iter().map(|d| d.body.len()).collect();
    lens.sort();
    assert_eq!(lens, sizes);
    for d in &got {
        assert!(
            sent.iter().any(|m| m.body == d.body),
            "a body changed on the way"
        );
    }
    cleanup(&[&q], &[&x]).await;
}

#[tokio::test]
async fn exchange_without_queues_makes_publish_unroutable() {
    let (x, q) = (unique("x"), unique("q"));
    let mut p = publisher().await;
    p.declare_exchange(&x).await.unwrap();
    match p.publish(&[msg(&x, "v03.a", "{}")]).await {
        Err(BrokerError::Unroutable { exchange, topic }) => {
            assert_eq!(exchange, x);
            assert_eq!(topic, "v03.a");
        }
        other => panic!("expected Unroutable, got {other:?}"),
    }
    // A batch where only some messages find a queue: still Unroutable (the
    // caller keeps the batch), and the routed ones were delivered.
    let mut s = spec(&q, &x, 25);
    s.bindings[0].topic = "v03.routed.#".into();
    let mut c = consumer(&s).await;
    let mixed = [
        msg(&x, "v03.routed.a", "1"),
        msg(&x, "v03.other", "2"),
        msg(&x, "v03.routed.b", "3"),
    ];
    match p.publish(&mixed).await {
        Err(BrokerError::Unroutable { topic, .. }) => assert_eq!(topic, "v03.other"),
        other => panic!("expected Unroutable, got {other:?}"),
    }
    let got = get_n(c.as_mut(), 2).await;
    assert_eq!(bodies(&got), BTreeSet::from(["1".into(), "3".into()]));
    c.ack(&ids(&got)).await.unwrap();
    // The publisher is still fine.
    p.publish(&[msg(&x, "v03.routed.c", "4")]).await.unwrap();
    cleanup(&[&q], &[&x]).await;
}

#[tokio::test]
async fn missing_exchange_is_no_exchange_and_the_publisher_stays_usable() {
    let (x, missing, q) = (unique("x"), unique("missing"), unique("q"));
    let mut p = publisher().await;
    p.declare_exchange(&x).await.unwrap();
    let mut c = consumer(&spec(&q, &x, 25)).await;
    match p.publish(&batch(&missing, 0, 10)).await {
        Err(BrokerError::NoExchange(name)) => assert_eq!(name, missing),
        other => panic!("expected NoExchange, got {other:?}"),
    }
    // The broker closed the channel; the next call has a new one.
    p.publish(&batch(&x, 0, 5)).await.unwrap();
    match p.publish(&[msg(&missing, "v03", "{}")]).await {
        Err(BrokerError::NoExchange(name)) => assert_eq!(name, missing),
        other => panic!("expected NoExchange, got {other:?}"),
    }
    p.declare_exchange(&missing).await.unwrap();
    p.publish(&batch(&x, 5, 5)).await.unwrap();
    let got = get_n(c.as_mut(), 10).await;
    assert_eq!(got.len(), 10);
    c.ack(&ids(&got)).await.unwrap();
    cleanup(&[&q], &[&x, &missing]).await;
}

#[tokio::test]
async fn binding_to_a_missing_exchange_is_no_exchange_until_it_is_declared() {
    let (x, q) = (unique("x"), unique("q"));
    let s = spec(&q, &x, 25);
    let mut c = broker::consumer(&url(), &paths(), &q).await.unwrap();
    match c.declare_queue(&s).await {
        Err(BrokerError::NoExchange(name)) => assert_eq!(name, x),
        other => panic!("expected NoExchange, got {other:?}"),
    }
    // Retried on the same consumer, as the sender's loop would first.
    assert!(matches!(
        c.declare_queue(&s).await,
        Err(BrokerError::NoExchange(_))
    ));
    let mut p = publisher().await;
    p.declare_exchange(&x).await.unwrap();
    c.declare_queue(&s).await.unwrap();
    p.publish(&[msg(&x, "v03.a", "hello")]).await.unwrap();
    let got = get_n(c.as_mut(), 1).await;
    assert_eq!(bodies(&got), BTreeSet::from(["hello".into()]));
    c.ack(&ids(&got)).await.unwrap();
    cleanup(&[&q], &[&x]).await;
}

#[tokio::test]
async fn two_consumers_of_one_queue_share_the_messages_each_once() {
    let (x, q) = (unique("x"), unique("q"));
    let s = spec(&q, &x, 10);
    let mut p = publisher().await;
    p.declare_exchange(&x).await.unwrap();
    let mut a = consumer(&s).await;
    let mut b = consumer(&s).await;
    p.publish(&batch(&x, 0, 200)).await.unwrap();
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    while got_a.len() + got_b.len() < 200 && Instant::now() < deadline {
        let da = a.get(5, Duration::from_millis(50)).await.unwrap();
        a.ack(&ids(&da)).await.unwrap();
        got_a.extend(da);
        let db = b.get(5, Duration::from_millis(50)).await.unwrap();
        b.ack(&ids(&db)).await.unwrap();
        got_b.extend(db);
    }
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "a {} b {}",
        got_a.len(),
        got_b.len()
    );
    let (ba, bb) = (bodies(&got_a), bodies(&got_b));
    assert!(ba.is_disjoint(&bb), "a message went to both");
    assert_eq!(ba.len() + bb.len(), 200);
    assert_eq!(got_a.len() + got_b.len(), 200);
    cleanup(&[&q], &[&x]).await;
}

#[tokio::test]
async fn requeued_delivery_comes_back_flagged_redelivered() {
    let (x, q) = (unique("x"), unique("q"));
    let mut p = publisher().await;
    p.declare_exchange(&x).await.unwrap();
    let mut c = consumer(&spec(&q, &x, 25)).await;
    p.publish(&[msg(&x, "v03.a", "again")]).await.unwrap();
    let first = get_n(c.as_mut(), 1).await;
    assert!(!first[0].redelivered);
    c.requeue(&ids(&first)).await.unwrap();
    let second = get_n(c.as_mut(), 1).await;
    assert_eq!(second[0].body, b"again");
    assert!(second[0].redelivered);
    c.ack(&ids(&second)).await.unwrap();
    assert!(c
        .get(1, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    cleanup(&[&q], &[&x]).await;
}

/// A new exchange and queue (prefetch 25) with `n` messages published, and
/// a consumer holding all of them unacked.
async fn holding(n: usize) -> (String, String, QueueSpec, Box<dyn Consumer>, Vec<Delivery>) {
    let (x, q) = (unique("x"), unique("q"));
    let s = spec(&q, &x, 25);
    let mut p = publisher().await;
    p.declare_exchange(&x).await.unwrap();
    let mut c = consumer(&s).await;
    p.publish(&batch(&x, 0, n)).await.unwrap();
    let held = get_n(c.as_mut(), n).await;
    assert_eq!(held.len(), n);
    (x, q, s, c, held)
}

/// Acks of a contiguous run from the lowest held tag go as one `multiple`
/// frame; whatever is still held below or between must stay unacked.
#[tokio::test]
async fn acks_out_of_order_settle_exactly_the_deliveries_named() {
    let (x, q, s, mut a, held) = holding(8).await;
    // 0 and 1 as a run from the lowest; 3, 5 and 6 with 2 and 4 still held
    // below them; 7 left alone; then 2 with 4 still held.
    a.ack(&[held[1].id, held[0].id]).await.unwrap();
    a.ack(&[held[5].id, held[3].id, held[6].id]).await.unwrap();
    a.ack(&[held[2].id]).await.unwrap();
    drop(a);
    let mut b = consumer(&s).await;
    let again = get_n(b.as_mut(), 2).await;
    assert_eq!(bodies(&again), bodies(&[held[4].clone(), held[7].clone()]));
    let more = b.get(8, Duration::from_millis(500)).await.unwrap();
    assert!(
        more.is_empty(),
        "acked deliveries came back: {:?}",
        bodies(&more)
    );
    b.ack(&ids(&again)).await.unwrap();
    cleanup(&[&q], &[&x]).await;
}

#[tokio::test]
async fn unacked_deliveries_of_a_dropped_consumer_go_to_the_other() {
    let (x, q, s, a, held) = holding(5).await;
    let mut b = consumer(&s).await;
    assert!(b
        .get(5, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    drop(a);
    let again = get_n(b.as_mut(), 5).await;
    assert_eq!(bodies(&again), bodies(&held));
    assert!(again.iter().all(|d| d.redelivered));
    b.ack(&ids(&again)).await.unwrap();
    cleanup(&[&q], &[&x]).await;
}

#[tokio::test]
async fn connection_closed_by_the_broker_loses_nothing() {
    let (x, q) = (unique("x"), unique("q"));
    let s = spec(&q, &x, 25);
    let pub_name = unique("publisher-connection");
    let opts = AmqpOptions {
        connection_name: pub_name.clone(),
        ..AmqpOptions::default()
    };
    use pitcher::broker::Publisher;
    let mut p = amqp::open_publisher(&url(), &opts).await.unwrap();
    p.declare_exchange(&x).await.unwrap();
    // The factory names a consumer's connection after its queue.
    let mut a = consumer(&s).await;
    p.publish(&batch(&x, 0, 10)).await.unwrap();
    let held = get_n(a.as_mut(), 4).await;
    assert_eq!(held.len(), 4);
    let acked = get_n(a.as_mut(), 2).await;
    a.ack(&ids(&acked)).await.unwrap();

    broker_closes_connection(&format!("pitcher[{}] {q}", std::process::id()));
    broker_closes_connection(&pub_name);

    // The next call of each notices, promptly.
    let started = Instant::now();
    let mut error = None;
    while started.elapsed() < Duration::from_secs(10) {
        // Deliveries pushed before the close may still come: not acked,
        // so not lost.
        if let Err(e) = a.get(10, Duration::from_millis(200)).await {
            error = Some(e);
            break;
        }
    }
    assert!(
        matches!(error, Some(BrokerError::Connection(_))),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Acks of the old connection's deliveries fail without harm.
    assert!(matches!(
        a.ack(&ids(&held)).await,
        Err(BrokerError::Connection(_))
    ));
    assert!(matches!(
        p.publish(&batch(&x, 100, 1)).await,
        Err(BrokerError::Connection(_))
    ));

    // A new consumer from the factory gets every message not acked.
    let mut b = consumer(&s).await;
    let again = get_n(b.as_mut(), 8).await;
    assert_eq!(again.len(), 8);
    let expected: BTreeSet<String> = (0..10)
        .map(|i| format!("{{\"n\": {i}}}"))
        .filter(|m| !bodies(&acked).contains(m))
        .collect();
    assert_eq!(bodies(&again), expected);
    assert!(held
        .iter()
        .all(|h| again.iter().any(|d| d.body == h.body && d.redelivered)));
    // Ids of the old consumer mean nothing to the new one.
    b.ack(&ids(&held)).await.unwrap();
    assert_eq!(b.queue_depth().await.unwrap(), Some(8));
    b.ack(&ids(&again)).await.unwrap();
    cleanup(&[&q], &[&x]).await;
}

#[tokio::test]
async fn connection_uses_a_30_s_heartbeat() {
    let name = unique("heartbeat-connection");
    let opts = AmqpOptions {
        connection_name: name.clone(),
        ..AmqpOptions::default()
    };
    let p = amqp::open_publisher(&url(), &opts).await.unwrap();
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "client_properties",
            "timeout",
            "-q",
            "--no-table-headers",
        ])
        .output()
        .expect("rabbitmqctl");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("{{\"connection_name\",\"{name}\"}}")))
        .unwrap_or_else(|| panic!("no connection {name} in:\n{text}"));
    assert_eq!(line.split_whitespace().last(), Some("30"), "{line}");
    drop(p);
}

#[tokio::test]
async fn amqps_handshake_failure_is_an_error_not_a_panic() {
    // The plain port answers TLS with AMQP: the handshake fails. Reaching
    // that far proves a rustls crypto provider is in place.
    let url = url::Url::parse("amqps://guest:guest@127.0.0.1:5672/").unwrap();
    let opts = AmqpOptions {
        timeout: Duration::from_secs(5),
        ..AmqpOptions::default()
    };
    match amqp::open_publisher(&url, &opts).await {
        Err(BrokerError::Connection(e)) => assert!(!e.contains("guest:guest"), "{e}"),
        Err(e) => panic!("expected a Connection error, got {e}"),
        Ok(_) => panic!("TLS to a plain AMQP port cannot work"),
    }
}

#[tokio::test]
async fn wrong_password_is_refused_without_showing_it() {
    let url = url::Url::parse("amqp://guest:not-the-password@127.0.0.1:5672/").unwrap();
    match amqp::open_publisher(&url, &AmqpOptions::default()).await {
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains("ACCESS_REFUSED"), "{text}");
            assert!(!text.contains("not-the-password"), "{text}");
            assert!(matches!(e, BrokerError::Other(_)), "{e:?}");
        }
        Ok(_) => panic!("logged in with a wrong password"),
    }
}

#[tokio::test]
async fn deleting_what_does_not_exist_is_fine() {
    amqp::delete_queue(&url(), &unique("never-declared"))
        .await
        .unwrap();
    amqp::delete_exchange(&url(), &unique("never-declared"))
        .await
        .unwrap();
}

#[tokio::test]
async fn publish_rate_with_confirms() {
    let (x, q) = (unique("x"), unique("q"));
    let mut p = publisher().await;
    p.declare_exchange(&x).await.unwrap();
    let c = consumer(&spec(&q, &x, 1)).await;
    let n = 10_000;
    for size in [100, 1_000, 10_000] {
        let msgs = batch(&x, 0, n);
        let started = Instant::now();
        for chunk in msgs.chunks(size) {
            p.publish(chunk).await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "published {n} messages in batches of {size} with confirms: {:.2} s, {:.0} msg/s",
            secs,
            n as f64 / secs
        );
    }
    drop(c);
    cleanup(&[&q], &[&x]).await;
}
