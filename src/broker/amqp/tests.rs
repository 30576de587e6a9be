//! Unit tests that need no broker: URLs, arguments, error mapping. The
//! broker-backed ones are in tests/amqp_broker.rs.

use super::consume::queue_arguments;
use super::*;
use crate::broker::QueueSpec;
use lapin::types::AMQPValue;

fn uri(text: &str) -> AMQPUri {
    amqp_uri(&url::Url::parse(text).unwrap(), &AmqpOptions::default()).unwrap()
}

#[test]
fn vhost_is_the_url_path_and_defaults_to_slash() {
    assert_eq!(uri("amqp://u:p@host").vhost, "/");
    assert_eq!(uri("amqp://u:p@host/").vhost, "/");
    assert_eq!(uri("amqp://u:p@host/%2f").vhost, "/");
    assert_eq!(uri("amqp://u:p@host/ci").vhost, "ci");
    assert_eq!(uri("amqp://u:p@host/a%2Fb").vhost, "a/b");
}

#[test]
fn default_ports_are_5672_and_5671_for_amqps() {
    let plain = uri("amqp://u:p@host/");
    assert_eq!(plain.authority.port, 5672);
    assert_eq!(plain.scheme, AMQPScheme::AMQP);
    let tls = uri("amqps://u:p@host/");
    assert_eq!(tls.authority.port, 5671);
    assert_eq!(tls.scheme, AMQPScheme::AMQPS);
    assert_eq!(uri("amqps://u:p@host:7000/").authority.port, 7000);
}

#[test]
fn credentials_are_percent_decoded_and_default_to_anonymous() {
    let u = uri("amqp://bob:p%40ss%3Aw@host/");
    assert_eq!(u.authority.userinfo.username, "bob");
    assert_eq!(u.authority.userinfo.password, "p@ss:w");
    let anon = uri("amqp://host/");
    assert_eq!(anon.authority.userinfo.username, "anonymous");
    assert_eq!(anon.authority.userinfo.password, "anonymous");
}

#[test]
fn heartbeat_and_timeout_are_set_explicitly() {
    let opts = AmqpOptions {
        heartbeat: Duration::from_secs(15),
        timeout: Duration::from_secs(7),
        ..AmqpOptions::default()
    };
    let u = amqp_uri(&url::Url::parse("amqp://h/").unwrap(), &opts).unwrap();
    assert_eq!(u.query.heartbeat, Some(15));
    assert_eq!(u.query.connection_timeout, Some(7000));
}

#[test]
fn ipv6_host_loses_its_brackets() {
    assert_eq!(uri("amqp://u:p@[::1]:5672/").authority.host, "::1");
}

#[test]
fn other_schemes_are_refused_without_showing_the_password() {
    let url = url::Url::parse("mqtt://bob:secret@host/").unwrap();
    let e = amqp_uri(&url, &AmqpOptions::default()).unwrap_err();
    assert!(matches!(e, BrokerError::Other(_)));
    assert!(!e.to_string().contains("secret"), "{e}");
}

#[test]
fn queue_arguments_are_milliseconds_and_only_when_set() {
    let mut spec = QueueSpec {
        queue_type: None,
        name: "q".into(),
        bindings: vec![],
        durable: true,
        expire: None,
        message_ttl: None,
        prefetch: 25,
    };
    assert!(queue_arguments(&spec).inner().is_empty());
    spec.expire = Some(Duration::from_secs(300));
    spec.message_ttl = Some(Duration::from_millis(1500));
    let args = queue_arguments(&spec);
    assert_eq!(
        args.inner().get("x-expires"),
        Some(&AMQPValue::LongInt(300_000))
    );
    assert_eq!(
        args.inner().get("x-message-ttl"),
        Some(&AMQPValue::LongInt(1500))
    );
}

#[test]
fn exchange_name_is_read_from_the_brokers_404_text() {
    assert_eq!(
        exchange_named_in("NOT_FOUND - no exchange 'xs_bob' in vhost '/'"),
        Some("xs_bob")
    );
    assert_eq!(
        exchange_named_in("NOT_FOUND - no queue 'q' in vhost '/'"),
        None
    );
}
