//! The MQTT broker against a real Mosquitto on 127.0.0.1:1883 (anonymous
//! access): topics laid out as sr3 lays them, shared subscriptions split
//! between instances, nothing lost when a consumer goes away unacked.
//!
//! Every test uses its own exchange (first topic level) and queue names,
//! so tests run in parallel and again without cleaning the broker.
//!
//! `sr3_reads_ours_and_we_read_sr3s` (ignored unless asked for) checks
//! interoperability with Python sr3's own MQTT code: set
//! `PITCHER_SR3_PYTHON` to a python with `metpx-sr3` and `paho-mqtt`.

use pitcher::broker::mqtt::{open_consumer, open_publisher};
use pitcher::broker::{Binding, BrokerError, Consumer, Delivery, Outgoing, Publisher, QueueSpec};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Once;
use std::time::{Duration, Instant};

const BROKER: &str = "mqtt://127.0.0.1:1883";

/// Makes sure Mosquitto listens on 127.0.0.1:1883, starting it (with the
/// system config, else a minimal anonymous one) if it does not.
fn ensure_mosquitto() {
    static START: Once = Once::new();
    START.call_once(|| {
        if TcpStream::connect("127.0.0.1:1883").is_ok() {
            return;
        }
        let system = Path::new("/etc/mosquitto/mosquitto.conf");
        let conf = if system.exists() {
            system.to_path_buf()
        } else {
            let p = std::env::temp_dir().join("pitcher-test-mosquitto.conf");
            std::fs::write(&p, "listener 1883 127.0.0.1\nallow_anonymous true\n").unwrap();
            p
        };
        let started = std::process::Command::new("mosquitto")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .status();
        assert!(
            matches!(started, Ok(s) if s.success()),
            "Mosquitto is not running on 127.0.0.1:1883 and could not be started: {started:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect("127.0.0.1:1883").is_err() {
            assert!(Instant::now() < deadline, "Mosquitto did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

/// A name no other test run has used: exchanges and queues are per test.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("pt_{what}_{}_{nanos}", std::process::id())
}

fn url() -> url::Url {
    url::Url::parse(BROKER).unwrap()
}

fn spec(queue: &str, exchange: &str, topics: &[&str]) -> QueueSpec {
    QueueSpec {
        queue_type: None,
        name: queue.to_string(),
        bindings: topics
            .iter()
            .map(|t| Binding {
                exchange: exchange.to_string(),
                topic: t.to_string(),
            })
            .collect(),
        durable: true,
        // Sessions of test queues go away an hour after their last use.
        expire: Some(Duration::from_secs(3600)),
        message_ttl: None,
        prefetch: 25,
    }
}

/// A v03 body for a file at `rel_path`, numbered `n`.
fn body(rel_path: &str, n: usize) -> Vec<u8> {
    serde_json::json!({
        "pubTime": "20250101T000000",
        "baseUrl": "file:/tmp",
        "relPath": rel_path,
        "n": n,
    })
    .to_string()
    .into_bytes()
}

fn outgoing(exchange: &str, topic: &str, rel_path: &str, n: usize) -> Outgoing {
    Outgoing::new(exchange, topic, body(rel_path, n))
}

fn number(d: &Delivery) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
    v["n"].as_u64().unwrap()
}

async fn consumer(slots: &Path, queue: &str, spec: &QueueSpec) -> Box<dyn Consumer> {
    let mut c = open_consumer(&url(), slots, queue).unwrap();
    c.declare_queue(spec).await.unwrap();
    Box::new(c)
}

/// Everything `c` gets until `n` deliveries or `within` has passed.
async fn collect(c: &mut dyn Consumer, n: usize, within: Duration) -> Vec<Delivery> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(
            c.get(n - got.len(), Duration::from_millis(200))
                .await
                .unwrap(),
        );
    }
    got
}

/// Lets a dropped consumer finish leaving. Its acks are written before
/// `ack` returns, but a new connection under the same client id that
/// arrives at once takes the session over, and the broker may close the
/// old connection before reading them: those messages would come again.
async fn let_it_leave() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// A plain (not shared) MQTT subscriber that records topic, content type
/// and payload format of what is published under `exchange`.
async fn observe(
    exchange: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<(String, Option<String>, Option<u8>)> {
    let mut opts = MqttOptions::new(unique("observer"), "127.0.0.1", 1883);
    opts.set_max_packet_size(Some(1 << 20));
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    client
        .subscribe(format!("{exchange}/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _client = client;
        let mut ready = Some(ready_tx);
        while let Ok(ev) = eventloop.poll().await {
            match ev {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let props = p.properties.unwrap_or_default();
                    let topic = String::from_utf8_lossy(&p.topic).to_string();
                    let _ = tx.send((topic, props.content_type, props.payload_format_indicator));
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .expect("observer subscribed")
        .unwrap();
    rx
}

#[tokio::test]
async fn messages_go_round_trip_on_sr3_topics() {
    ensure_mosquitto();
    let slots = tempfile::tempdir().unwrap();
    let (exchange, queue) = (unique("xrt"), unique("qrt"));
    let mut seen = observe(&exchange).await;
    let mut c = consumer(slots.path(), &queue, &spec(&queue, &exchange, &["v03.#"])).await;
    let mut p = open_publisher(&url()).unwrap();
    p.declare_exchange(&exchange).await.unwrap();
    p.publish(&[outgoing(
        &exchange,
        "v03.cap.sub dir",
        "cap/sub dir/hello world.txt",
        1,
    )])
    .await
    .unwrap();

    let (topic, content_type, format) = tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(topic, format!("{exchange}/v03/cap/sub dir"));
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(format, Some(1));

    let got = collect(c.as_mut(), 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].exchange, exchange);
    assert_eq!(got[0].topic, "v03.cap.sub dir");
    assert_eq!(got[0].body, body("cap/sub dir/hello world.txt", 1));
    assert!(!got[0].redelivered);
    c.ack(&[got[0].id]).await.unwrap();
    assert_eq!(c.queue_depth().await.unwrap(), None);
}

#[tokio::test]
async fn wildcard_characters_in_names_are_escaped_the_sr3_way() {
    ensure_mosquitto();
    let slots = tempfile::tempdir().unwrap();
    let (exchange, queue) = (unique("xesc"), unique("qesc"));
    let mut seen = observe(&exchange).await;
    // `*` in the binding is one word: it must not match the deeper topic.
    let mut c = consumer(
        slots.path(),
        &queue,
        &spec(&queue, &exchange, &["v03.*.st%22r.#"]),
    )
    .await;
    let mut p = open_publisher(&url()).unwrap();
    // pitcher's routing keys carry `#` and `*` as %23 and %22.
    let odd = outgoing(&exchange, "v03.c%231.st%22r.a+b", "c#1/st*r/a+b/f#*.bin", 1);
    let deeper = outgoing(&exchange, "v03.x.y.st%22r", "x/y/st*r/g", 2);
    p.publish(&[odd, deeper]).await.unwrap();

    let mut topics = Vec::new();
    for _ in 0..2 {
        let t = tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .unwrap()
            .unwrap();
        topics.push(t.0);
    }
    assert_eq!(
        topics,
        [
            format!("{exchange}/v03/c%231/st*r/a%2Bb"),
            format!("{exchange}/v03/x/y/st*r")
        ]
    );

    let got = collect(c.as_mut(), 2, Duration::from_secs(3)).await;
    assert_eq!(
        got.len(),
        1,
        "only the topic with one word before st*r matches"
    );
    assert_eq!(got[0].topic, "v03.c%231.st%22r.a+b");
    c.ack(&[got[0].id]).await.unwrap();
}

#[tokio::test]
async fn publishing_where_nobody_subscribes_is_unroutable() {
    ensure_mosquitto();
    let slots = tempfile::tempdir().unwrap();
    let (exchange, queue) = (unique("xun"), unique("qun"));
    let mut p = open_publisher(&url()).unwrap();
    let m = outgoing(&exchange, "v03.a", "a/f", 1);
    match p.publish(std::slice::from_ref(&m)).await {
        Err(BrokerError::Unroutable { exchange: x, topic }) => {
            assert_eq!((x.as_str(), topic.as_str()), (exchange.as_str(), "v03.a"))
        }
        other => panic!("expected Unroutable, got {other:?}"),
    }
    // Once a queue is declared (even with no consumer running), it routes.
    let c = consumer(slots.path(), &queue, &spec(&queue, &exchange, &["v03.#"])).await;
    drop(c);
    p.publish(std::slice::from_ref(&m)).await.unwrap();
    let mut c = consumer(slots.path(), &queue, &spec(&queue, &exchange, &["v03.#"])).await;
    let got = collect(c.as_mut(), 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "the message waited in the session");
    c.ack(&[got[0].id]).await.unwrap();
}

#[tokio::test]
async fn two_consumers_of_one_queue_split_the_messages() {
    ensure_mosquitto();
    let slots = tempfile::tempdir().unwrap();
    let (exchange, queue) = (unique("xsplit"), unique("qsplit"));
    let s = spec(&queue, &exchange, &["v03.#"]);
    let mut a = open_consumer(&url(), slots.path(), &queue).unwrap();
    let mut b = open_consumer(&url(), slots.path(), &queue).unwrap();
    assert_ne!(a.client_id(), b.client_id());
    a.declare_queue(&s).await.unwrap();
    b.declare_queue(&s).await.unwrap();

    let mut p = open_publisher(&url()).unwrap();
    let msgs: Vec<Outgoing> = (0..200)
        .map(|n| outgoing(&exchange, "v03.d", &format!("d/f{n}"), n))
        .collect();
    for batch in msgs.chunks(50) {
        p.publish(batch).await.unwrap();
    }

    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    while got_a.len() + got_b.len() < 200 && Instant::now() < deadline {
        for (c, got) in [(&mut a, &mut got_a), (&mut b, &mut got_b)] {
            let ds = c.get(25, Duration::from_millis(50)).await.unwrap();
            let ids: Vec<u64> = ds.iter().map(|d| d.id).collect();
            got.extend(ds.iter().map(number));
            c.ack(&ids).await.unwrap();
        }
    }
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "a {} b {}",
        got_a.len(),
        got_b.len()
    );
    let mut all: Vec<u64> = got_a.iter().chain(&got_b).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..200).collect::<Vec<u64>>(),
        "each message exactly once"
    );
    // Nothing more turns up.
    assert!(a
        .get(10, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    assert!(b
        .get(10, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn unacked_messages_come_back_after_the_consumer_goes_away() {
    ensure_mosquitto();
    let slots = tempfile::tempdir().unwrap();
    let (exchange, queue) = (unique("xback"), unique("qback"));
    let s = spec(&queue, &exchange, &["v03.#"]);
    let mut first = consumer(slots.path(), &queue, &s).await;
    let mut p = open_publisher(&url()).unwrap();
    let msgs: Vec<Outgoing> = (0..10)
        .map(|n| outgoing(&exchange, "v03.d", &format!("d/f{n}"), n))
        .collect();
    p.publish(&msgs).await.unwrap();
    let got = collect(first.as_mut(), 10, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 10);
    // Ack three, then go away holding the other seven.
    let acked: Vec<u64> = got[..3].iter().map(|d| d.id).collect();
    first.ack(&acked).await.unwrap();
    drop(first);
    let_it_leave().await;

    // The next instance in the same slot resumes the session.
    let mut second = consumer(slots.path(), &queue, &s).await;
    let again = collect(second.as_mut(), 10, Duration::from_secs(10)).await;
    let mut numbers: Vec<u64> = again.iter().map(number).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (3..10).collect::<Vec<u64>>());
    assert!(again.iter().all(|d| d.redelivered));
    let ids: Vec<u64> = again.iter().map(|d| d.id).collect();
    second.ack(&ids).await.unwrap();
    drop(second);
    let_it_leave().await;

    let mut third = consumer(slots.path(), &queue, &s).await;
    assert!(collect(third.as_mut(), 1, Duration::from_secs(1))
        .await
        .is_empty());
}

/// Connects as `client_id` (taking its session over from whoever holds it),
/// acknowledges nothing, and leaves cleanly, so the session stays.
async fn take_session_over(client_id: &str) {
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", 1883);
    opts.set_clean_start(false)
        .set_manual_acks(true)
        .set_session_expiry_interval(Some(3600));
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline.into(), eventloop.poll())
            .await
            .expect("intruder connected")
            .expect("intruder connection");
        if let Event::Incoming(Packet::ConnAck(_)) = ev {
            break;
        }
    }
    client.disconnect().await.unwrap();
    while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline.into(), eventloop.poll()).await {
        if let Event::Outgoing(rumqttc::Outgoing::Disconnect) = ev {
            break;
        }
    }
}

#[tokio::test]
async fn a_consumer_reconnects_and_resumes_its_session_after_losing_the_connection() {
    ensure_mosquitto();
    let slots = tempfile::tempdir().unwrap();
    let (exchange, queue) = (unique("xrecon"), unique("qrecon"));
    let s = spec(&queue, &exchange, &["v03.#"]);
    let mut c = open_consumer(&url(), slots.path(), &queue).unwrap();
    c.declare_queue(&s).await.unwrap();
    let mut p = open_publisher(&url()).unwrap();
    let msgs: Vec<Outgoing> = (0..5)
        .map(|n| outgoing(&exchange, "v03.d", &format!("d/f{n}"), n))
        .collect();
    p.publish(&msgs).await.unwrap();
    let held = collect(&mut c, 5, Duration::from_secs(10)).await;
    assert_eq!(held.len(), 5);

    // Someone else takes the session: the broker drops our connection.
    take_session_over(c.client_id()).await;

    // Back on a new connection, the broker sends the unacked five again.
    let again = collect(&mut c, 5, Duration::from_secs(15)).await;
    let mut numbers: Vec<u64> = again.iter().map(number).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [0, 1, 2, 3, 4]);
    assert!(again.iter().all(|d| d.redelivered));
    // Acks of the old connection's deliveries are skipped: harmless.
    let old: Vec<u64> = held.iter().map(|d| d.id).collect();
    c.ack(&old).await.unwrap();
    let ids: Vec<u64> = again.iter().map(|d| d.id).collect();
    c.ack(&ids).await.unwrap();

    // The subscription is back too: new messages arrive.
    p.publish(&[outgoing(&exchange, "v03.d", "d/late", 99)])
        .await
        .unwrap();
    let late = collect(&mut c, 1, Duration::from_secs(10)).await;
    assert_eq!(late.iter().map(number).collect::<Vec<_>>(), [99]);
    c.ack(&[late[0].id]).await.unwrap();
    drop(c);
    let_it_leave().await;
    let mut next = consumer(slots.path(), &queue, &s).await;
    assert!(collect(next.as_mut(), 1, Duration::from_secs(1))
        .await
        .is_empty());
}

#[tokio::test]
async fn requeued_deliveries_are_handed_out_again() {
    ensure_mosquitto();
    let slots = tempfile::tempdir().unwrap();
    let (exchange, queue) = (unique("xrq"), unique("qrq"));
    let mut c = consumer(slots.path(), &queue, &spec(&queue, &exchange, &["v03.#"])).await;
    let mut p = open_publisher(&url()).unwrap();
    p.publish(&[outgoing(&exchange, "v03", "f", 7)])
        .await
        .unwrap();
    let got = collect(c.as_mut(), 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    c.requeue(&[got[0].id]).await.unwrap();
    let again = c.get(5, Duration::from_secs(2)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(number(&again[0]), 7);
    assert!(again[0].redelivered);
    c.ack(&[again[0].id]).await.unwrap();
}

#[tokio::test]
async fn bindings_mqtt_cannot_express_are_refused_at_declare() {
    ensure_mosquitto();
    let slots = tempfile::tempdir().unwrap();
    let queue = unique("qbad");
    let mut c = open_consumer(&url(), slots.path(), &queue).unwrap();
    let err = c
        .declare_queue(&spec(&queue, "xs_x", &["v03.#.ccc"]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("only as the last word"), "{err}");
}

#[tokio::test]
async fn an_unreachable_broker_fails_declare_promptly() {
    let slots = tempfile::tempdir().unwrap();
    // Nothing listens on port 1 of the loopback.
    let url = url::Url::parse("mqtt://u:secret@127.0.0.1:1").unwrap();
    let mut c = open_consumer(&url, slots.path(), "q_nowhere").unwrap();
    let started = Instant::now();
    let err = c
        .declare_queue(&spec("q_nowhere", "x", &["v03.#"]))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Connection(_)), "{err:?}");
    assert!(!err.to_string().contains("secret"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15));
    let mut p = open_publisher(&url).unwrap();
    let err = p
        .publish(&[outgoing("x", "v03", "f", 1)])
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Connection(_)), "{err:?}");
}

/// sr3's side of the interoperability test: `pub` publishes v03 messages
/// with sr3's MQTT moth; `sub` reads them with it as instance 1 of a queue
/// and prints one JSON line per message.
const SR3_SIDE: &str = include_str!("fixtures/sr3_mqtt_side.py");

/// Runs [`SR3_SIDE`] with the python named by `PITCHER_SR3_PYTHON`.
fn sr3(args: &[&str]) -> String {
    let python = std::env::var("PITCHER_SR3_PYTHON")
        .expect("set PITCHER_SR3_PYTHON to a python with metpx-sr3 and paho-mqtt installed");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("sr3_side.py");
    std::fs::write(&script, SR3_SIDE).unwrap();
    let out = std::process::Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sr3 {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Python sr3: PITCHER_SR3_PYTHON=/path/to/python with metpx-sr3 and paho-mqtt"]
async fn sr3_reads_ours_and_we_read_sr3s() {
    ensure_mosquitto();
    // sr3 insists on a user and password; Mosquitto lets anyone in.
    let broker = "mqtt://guest:guest@127.0.0.1:1883";
    let slots = tempfile::tempdir().unwrap();
    let url = url::Url::parse(broker).unwrap();
    let exchange = unique("xsr3");

    // sr3 publishes, we consume.
    let queue = unique("qfromsr3");
    let mut c = open_consumer(&url, slots.path(), &queue).unwrap();
    c.declare_queue(&spec(&queue, &exchange, &["v03.#"]))
        .await
        .unwrap();
    let ex = exchange.clone();
    tokio::task::spawn_blocking(move || {
        sr3(&["pub", broker, &ex, "a/b c/f1", "x.y/f2", "c#1/d+e/f3"])
    })
    .await
    .unwrap();
    let got = collect(&mut c, 3, Duration::from_secs(15)).await;
    let seen: Vec<(String, String, String)> = got
        .iter()
        .map(|d| {
            let v: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
            (
                d.exchange.clone(),
                d.topic.clone(),
                v["relPath"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                exchange.clone(),
                "v03.a.b c".to_string(),
                "a/b c/f1".to_string()
            ),
            (
                exchange.clone(),
                "v03.x.y".to_string(),
                "x.y/f2".to_string()
            ),
            (
                exchange.clone(),
                "v03.c%231.d+e".to_string(),
                "c#1/d+e/f3".to_string()
            ),
        ]
    );
    let ids: Vec<u64> = got.iter().map(|d| d.id).collect();
    c.ack(&ids).await.unwrap();
    drop(c);

    // We publish, sr3 consumes. Our consumer declares the queue as instance
    // 1, whose session sr3's instance 1 then takes over.
    let queue = unique("qtosr3");
    let mut c = open_consumer(&url, slots.path(), &queue).unwrap();
    c.declare_queue(&spec(&queue, &exchange, &["v03.#"]))
        .await
        .unwrap();
    drop(c);
    let mut p = open_publisher(&url).unwrap();
    p.publish(&[
        outgoing(&exchange, "v03.a.b c", "a/b c/f1", 0),
        outgoing(&exchange, "v03.x.y", "x.y/f2", 1),
        outgoing(&exchange, "v03.c%231.d+e", "c#1/d+e/f3", 2),
    ])
    .await
    .unwrap();
    let (ex, q) = (exchange.clone(), queue.clone());
    let printed = tokio::task::spawn_blocking(move || sr3(&["sub", broker, &ex, &q, "3", "20"]))
        .await
        .unwrap();
    let read: Vec<serde_json::Value> = printed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rel_paths: Vec<&str> = read
        .iter()
        .map(|v| v["relPath"].as_str().unwrap())
        .collect();
    assert_eq!(rel_paths, ["a/b c/f1", "x.y/f2", "c#1/d+e/f3"]);
    let topics: Vec<&str> = read.iter().map(|v| v["topic"].as_str().unwrap()).collect();
    assert_eq!(
        topics,
        [
            format!("{exchange}/v03/a/b c"),
            format!("{exchange}/v03/x.y"),
            format!("{exchange}/v03/c%231/d%2Be"),
        ]
    );
    assert!(read.iter().all(|v| v["exchange"] == exchange.as_str()));
}
