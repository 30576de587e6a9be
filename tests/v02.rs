//! v02 messages through pitcher's three brokers and its own flow: the
//! headers and content type cross RabbitMQ (127.0.0.1:5672, guest/guest)
//! and Mosquitto (127.0.0.1:1883) as sr3 sends them, and a watch with
//! `post_format v02` feeds a sender over `local:`. (Against the real sr3:
//! tests/interop_sr3.rs.)

mod common;

use common::{assert_delivered, unique, wait_until, Env};
use pitcher::broker::{self, Binding, Consumer, Delivery, Outgoing, Publisher, QueueSpec};
use pitcher::config::{Component, Config};
use pitcher::message::{Format, Message};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn paths() -> pitcher::state::Paths {
    let dir = std::env::temp_dir().join("pitcher-v02-test");
    pitcher::state::Paths::resolve(Some(dir.clone()), Some(dir))
}

fn spec(queue: &str, exchange: &str, topic: &str) -> QueueSpec {
    let mut cfg = Config::new(Component::Subscribe, "t");
    cfg.bindings = vec![Binding {
        exchange: exchange.into(),
        topic: topic.into(),
    }];
    cfg.durable = false;
    cfg.expire = Some(Duration::from_secs(600));
    QueueSpec::of_config(&cfg, queue.to_string())
}

/// A message with every field v02 carries, in v02.
fn v02_message() -> (Message, Outgoing) {
    let mut m = Message::new("sftp://u@h/on hpfx", "a b/#1 c.txt");
    m.size = Some(42);
    m.mode = Some("644".into());
    m.mtime = Some("20261129T014903.5".into());
    m.atime = Some("20261129T014903.5".into());
    m.source = Some("guest".into());
    m.identity = Some(pitcher::message::Identity {
        method: "md5".into(),
        value: "rJAWKTcsKNu25YpCPnFS5g==".into(),
    });
    m = m.with_rename("/h/a b/old.txt".into());
    m.extra.insert("from_cluster".into(), "hpfx".into());
    let e = m.encode(Format::V02, "v02.post");
    assert!(e.lost.is_empty());
    let out = Outgoing {
        exchange: String::new(),
        topic: e.topic,
        body: e.body,
        content_type: Some(e.content_type.to_string()),
        headers: e.headers,
    };
    (m, out)
}

async fn get_one(c: &mut dyn Consumer) -> Delivery {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(d) = c.get(1, Duration::from_millis(500)).await.unwrap().pop() {
            c.ack(&[d.id]).await.unwrap();
            return d;
        }
    }
    panic!("nothing delivered");
}

fn assert_same(d: &Delivery, sent: &Outgoing, m: &Message) {
    assert_eq!(d.topic, sent.topic);
    assert_eq!(d.content_type.as_deref(), Some("text/plain"));
    assert_eq!(d.headers, sent.headers);
    assert_eq!(d.body, sent.body);
    let back = Message::decode(&d.topic, d.content_type.as_deref(), &d.body, &d.headers).unwrap();
    assert_eq!(&back, m);
}

#[test]
fn v02_crosses_rabbitmq_with_its_headers_as_sr3_sends_them() {
    let rt = rt();
    let url = url::Url::parse("amqp://guest:guest@127.0.0.1:5672/").unwrap();
    let x = format!("xs_guest_{}", unique("v02amqp"));
    let q = format!("q_guest.{}", unique("v02amqp"));
    let raw_q = format!("q_guest.{}", unique("v02raw"));
    let (m, mut out) = v02_message();
    out.exchange = x.clone();
    rt.block_on(async {
        let mut p = broker::publisher(&url, &paths()).await.unwrap();
        p.declare_exchange(&x).await.unwrap();
        let mut c = broker::consumer(&url, &paths(), &q).await.unwrap();
        c.declare_queue(&spec(&q, &x, "v02.post.#")).await.unwrap();
        let mut raw = broker::consumer(&url, &paths(), &raw_q).await.unwrap();
        raw.declare_queue(&spec(&raw_q, &x, "#")).await.unwrap();
        drop(raw);
        p.publish(std::slice::from_ref(&out)).await.unwrap();
        assert_same(&get_one(c.as_mut()).await, &out, &m);

        // On the wire: sr3's properties, the headers as long strings.
        let conn = lapin::Connection::connect(
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            lapin::ConnectionProperties::default(),
        )
        .await
        .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let got = ch
            .basic_get(raw_q.as_str().into(), lapin::options::BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("a message in the raw queue");
        let props = &got.delivery.properties;
        assert_eq!(props.content_type().as_ref().map(|s| s.as_str()), Some("text/plain"));
        assert_eq!(props.content_encoding().as_ref().map(|s| s.as_str()), Some("utf-8"));
        assert_eq!(*props.delivery_mode(), Some(2));
        let headers = props.headers().clone().unwrap();
        let sum = headers.inner().get("sum").unwrap();
        assert!(matches!(sum, lapin::types::AMQPValue::LongString(s) if s.as_bytes() == out.headers["sum"].as_bytes()));
        let _ = conn.close(0, "done".into()).await;
        for queue in [&q, &raw_q] {
            let _ = broker::amqp::delete_queue(&url, queue).await;
        }
        let _ = broker::amqp::delete_exchange(&url, &x).await;
    });
}

#[test]
fn v02_crosses_mosquitto_with_its_headers_as_user_properties() {
    let rt = rt();
    let url = url::Url::parse("mqtt://127.0.0.1:1883").unwrap();
    let x = format!("xs_guest_{}", unique("v02mqtt"));
    let q = format!("q_guest_{}", unique("v02mqtt"));
    let (m, mut out) = v02_message();
    out.exchange = x.clone();
    rt.block_on(async {
        let mut c = broker::consumer(&url, &paths(), &q).await.unwrap();
        c.declare_queue(&spec(&q, &x, "v02.post.#")).await.unwrap();
        let mut p = broker::publisher(&url, &paths()).await.unwrap();
        p.declare_exchange(&x).await.unwrap();
        p.publish(std::slice::from_ref(&out)).await.unwrap();
        let d = get_one(c.as_mut()).await;
        assert_eq!(d.exchange, x);
        assert_same(&d, &out, &m);
    });
}

#[test]
fn a_watch_posting_v02_feeds_a_sender_over_local() {
    let env = Env::new();
    env.write_config(
        "watch/hot.conf",
        &format!(
            "post_broker local:\npost_exchange xs_it_v02\npost_baseUrl file:{hot}\npath {hot}\npost_format v02\nreject .*\\.tmp$\naccept .*\n",
            hot = env.hot.display()
        ),
    );
    env.write_config(
        "sender/hot.conf",
        &format!(
            "broker local:\nexchange xs_it_v02\ntopicPrefix v02.post\nsubtopic #\nsendTo file:\ndirectory {}\ninflight .tmp\nreject .*\\.tmp$\naccept .*\n",
            env.dest.display()
        ),
    );
    env.ok(&["declare"]);
    env.ok(&["start", "sender/hot"]);
    // A v02 message that cannot be read is set aside, saying v02.
    rt().block_on(async {
        let mut p = broker::local::open_publisher(&env.state.join("local/broker.db")).unwrap();
        let mut bad = Outgoing::new(
            "xs_it_v02",
            "v02.post",
            b"20261129014903 two-fields".to_vec(),
        );
        bad.content_type = Some("text/plain".into());
        bad.headers.insert("sum".into(), "z,s".into());
        p.publish(&[bad]).await.unwrap();
    });
    env.ok(&["start"]);
    let mut expected = BTreeMap::new();
    for (i, name) in ["a b/#1.txt", "c.d/e.txt", "top.txt"].iter().enumerate() {
        let p = env.hot.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let c = common::content(i, 500 + i);
        std::fs::write(&p, &c).unwrap();
        expected.insert(name.to_string(), c);
    }
    assert_delivered(&env, &expected, Duration::from_secs(60));
    let aside = env.state.join("sender/hot/malformed");
    assert!(wait_until(Duration::from_secs(10), || std::fs::read_dir(
        &aside
    )
    .map(|d| d.count() == 1)
    .unwrap_or(false)));
    let logs = env.logs();
    assert!(logs.contains("bad v02 message: body should be"), "{logs}");
    let kept = std::fs::read_dir(&aside)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let kept = std::fs::read_to_string(kept).unwrap();
    assert_eq!(kept, "20261129014903 two-fields\n{\"sum\":\"z,s\"}");
    assert!(
        logs.contains("posted: xs_it_v02 v02.post.a b relPath: a b/#1.txt"),
        "{logs}"
    );
}
