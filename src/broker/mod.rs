//! Where messages wait between components.
//!
//! One pair of traits, [`Publisher`] and [`Consumer`], and a factory that
//! turns a broker URL into an implementation: `local:` is the embedded
//! SQLite queue ([`local`]); `amqp://` and `amqps://` are RabbitMQ through
//! lapin ([`amqp`]); `mqtt://` and `mqtts://` are MQTT 5 through rumqttc
//! ([`mqtt`]). Nothing above this module knows which one it talks to.
//!
//! The contract every implementation keeps:
//! * `publish` returns only once every message is durably held by the broker
//!   (AMQP: publisher confirms); a message no queue would receive is an
//!   error ([`BrokerError::Unroutable`]), never a silent drop.
//! * a delivery stays owned by its consumer until `ack` or `requeue`; if the
//!   consumer dies, it is delivered again to another (at-least-once).

pub mod amqp;
pub mod local;
pub mod mqtt;

use async_trait::async_trait;
use std::time::Duration;

pub use crate::config::{Binding, QueueType};

/// String headers sent beside a body: AMQP application headers, MQTT 5
/// user properties, a column of `local:`. v02 messages carry most of their
/// fields there; v03 ones carry none.
pub type Headers = std::collections::BTreeMap<String, String>;

/// The content type of a message published without one (v03's).
pub const DEFAULT_CONTENT_TYPE: &str = "application/json";

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub exchange: String,
    pub topic: String,
    pub body: Vec<u8>,
    /// The body's content type; `None` is [`DEFAULT_CONTENT_TYPE`].
    pub content_type: Option<String>,
    pub headers: Headers,
}

impl Outgoing {
    /// A message with no headers and the default content type.
    pub fn new(exchange: &str, topic: &str, body: Vec<u8>) -> Outgoing {
        Outgoing {
            exchange: exchange.to_string(),
            topic: topic.to_string(),
            body,
            content_type: None,
            headers: Headers::new(),
        }
    }
}

/// A message taken from a queue, owned until acked or requeued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Identifies the delivery to `ack`/`requeue` (a row id, a delivery tag).
    pub id: u64,
    pub exchange: String,
    pub topic: String,
    pub body: Vec<u8>,
    /// The content type it was published with, if the broker says.
    pub content_type: Option<String>,
    /// The headers it was published with (string values; other AMQP
    /// values as text).
    pub headers: Headers,
    /// True when an earlier consumer took it and did not ack it.
    pub redelivered: bool,
}

/// A queue and what it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: String,
    pub bindings: Vec<Binding>,
    /// Keep the queue across broker restarts.
    pub durable: bool,
    /// Delete the queue after it has been unused this long (AMQP x-expires).
    pub expire: Option<Duration>,
    /// Drop messages older than this (AMQP x-message-ttl).
    pub message_ttl: Option<Duration>,
    /// How many unacked deliveries one consumer may hold.
    pub prefetch: u32,
    /// The RabbitMQ queue type (`x-queue-type`); `None`: the broker's
    /// default. Brokers without queue types ignore it.
    pub queue_type: Option<QueueType>,
}

impl QueueSpec {
    /// The queue `name` as `cfg` describes it (bindings, durable, expire,
    /// messageAgeMax, prefetch, queueType).
    pub fn of_config(cfg: &crate::config::Config, name: String) -> QueueSpec {
        QueueSpec {
            name,
            bindings: cfg.bindings.clone(),
            durable: cfg.durable,
            expire: cfg.expire,
            message_ttl: cfg.message_age_max,
            prefetch: cfg.prefetch,
            queue_type: cfg.queue_type,
        }
    }
}

/// What can go wrong talking to a broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No queue is bound to receive this message.
    #[error(
        "no queue is bound to exchange {exchange} for topic {topic}: nothing would receive it"
    )]
    Unroutable { exchange: String, topic: String },
    /// The exchange does not exist (yet).
    #[error("exchange {0} does not exist")]
    NoExchange(String),
    /// The connection failed or was lost; retry after a pause.
    #[error("broker connection: {0}")]
    Connection(String),
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Publishes messages to exchanges.
#[async_trait]
pub trait Publisher: Send {
    /// Create the exchange (topic, durable) if it does not exist.
    async fn declare_exchange(&mut self, name: &str) -> Result<(), BrokerError>;
    /// Publish every message; returns once all are durably held.
    async fn publish(&mut self, msgs: &[Outgoing]) -> Result<(), BrokerError>;
}

/// Takes messages from one queue, shared with the other instances of the
/// same config.
#[async_trait]
pub trait Consumer: Send {
    /// Create the queue and its bindings if needed (idempotent).
    async fn declare_queue(&mut self, spec: &QueueSpec) -> Result<(), BrokerError>;
    /// Up to `max` deliveries; waits up to `wait` when none is ready.
    async fn get(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BrokerError>;
    /// The deliveries are done with: remove them for good.
    async fn ack(&mut self, ids: &[u64]) -> Result<(), BrokerError>;
    /// Give the deliveries back to the queue, to be delivered again.
    async fn requeue(&mut self, ids: &[u64]) -> Result<(), BrokerError>;
    /// Messages waiting in the queue (ready plus unacked), if known.
    async fn queue_depth(&mut self) -> Result<Option<u64>, BrokerError>;
}

/// A publisher for a broker URL.
pub async fn publisher(
    url: &url::Url,
    paths: &crate::state::Paths,
) -> Result<Box<dyn Publisher>, BrokerError> {
    match url.scheme() {
        "local" => Ok(Box::new(local::open_publisher(&paths.local_broker_db())?)),
        "mqtt" | "mqtts" => Ok(Box::new(mqtt::open_publisher(url)?)),
        "amqp" | "amqps" => Ok(Box::new(
            amqp::open_publisher(url, &amqp::AmqpOptions::default()).await?,
        )),
        other => Err(unsupported(other)),
    }
}

/// A publisher for messages that need not outlive a broker restart
/// (delivery reports): on AMQP they are sent non-persistent
/// (`delivery_mode` 1), which spares the broker a disk write each; other
/// brokers publish them as [`publisher`] does.
pub async fn transient_publisher(
    url: &url::Url,
    paths: &crate::state::Paths,
) -> Result<Box<dyn Publisher>, BrokerError> {
    match url.scheme() {
        "amqp" | "amqps" => {
            let opts = amqp::AmqpOptions {
                persistent: false,
                ..amqp::AmqpOptions::default()
            };
            Ok(Box::new(amqp::open_publisher(url, &opts).await?))
        }
        _ => publisher(url, paths).await,
    }
}

/// A consumer of `queue` on a broker URL.
pub async fn consumer(
    url: &url::Url,
    paths: &crate::state::Paths,
    queue: &str,
) -> Result<Box<dyn Consumer>, BrokerError> {
    match url.scheme() {
        "local" => Ok(Box::new(local::open_consumer(
            &paths.local_broker_db(),
            queue,
        )?)),
        "mqtt" | "mqtts" => Ok(Box::new(mqtt::open_consumer(
            url,
            &paths.state_dir.join("mqtt"),
            queue,
        )?)),
        "amqp" | "amqps" => {
            let opts = amqp::AmqpOptions {
                // Tells the instances of a config apart in rabbitmqctl.
                connection_name: format!("pitcher[{}] {queue}", std::process::id()),
                ..amqp::AmqpOptions::default()
            };
            Ok(Box::new(amqp::open_consumer(url, queue, &opts).await?))
        }
        other => Err(unsupported(other)),
    }
}

fn unsupported(scheme: &str) -> BrokerError {
    BrokerError::Other(anyhow::anyhow!(
        "broker scheme '{scheme}:' is not supported (known: local:, amqp:, amqps:, mqtt:, mqtts:)"
    ))
}
