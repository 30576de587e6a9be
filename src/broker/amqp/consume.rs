//! Consuming one queue: declare and bind it as sr3 does, take pushed
//! deliveries (manual acks, at most `prefetch` unacked), ack or requeue
//! them, and read the queue's depth.

use super::nodes::Node;
use super::{bounded, connect, connection_state, join_in_order, to_broker_error, AmqpOptions};
use crate::broker::{BrokerError, Consumer, Delivery, Headers, QueueSpec};
use async_trait::async_trait;
use futures_core::Stream;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Acker, Channel, Connection};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

/// How long a queue depth read from the broker is reused.
const DEPTH_CACHE: Duration = Duration::from_secs(5);

/// Delivery ids are `serial << TAG_BITS | delivery tag`: the serial of the
/// consuming channel that delivered them. Tags restart at 1 on every
/// channel, so without it an id of a dead channel (or connection) handed
/// back later could ack one of its replacement's own deliveries. 2^40
/// deliveries on one channel, and 2^24 channels in one process, are both
/// far away.
const TAG_BITS: u32 = 40;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

fn next_serial() -> u64 {
    NEXT_SERIAL.fetch_add(1, Ordering::Relaxed) & ((1 << (64 - TAG_BITS)) - 1)
}

/// Consumes one queue of a RabbitMQ (or any AMQP 0-9-1) broker; see
/// [`open_consumer`](super::open_consumer).
///
/// Two channels, as sr3 uses two: one declares, binds and reads the depth
/// (the broker closes it on a 404, and it is opened again for the next
/// call), the other consumes, so a failed bind never cancels the consumer.
pub struct AmqpConsumer {
    conn: Connection,
    /// The node of the URL's list the connection went to.
    node: Node,
    queue: String,
    opts: AmqpOptions,
    admin: Option<Channel>,
    consuming: Option<(Channel, lapin::Consumer)>,
    /// Deliveries handed out and not yet acked or requeued, by id.
    held: HashMap<u64, Acker>,
    serial: u64,
    depth: Option<(Instant, u64)>,
}

impl AmqpConsumer {
    pub(super) async fn connect(
        url: &url::Url,
        queue: &str,
        opts: &AmqpOptions,
    ) -> Result<Self, BrokerError> {
        let (conn, node) = connect(url, opts).await?;
        Ok(AmqpConsumer {
            conn,
            node,
            queue: queue.to_string(),
            opts: opts.clone(),
            admin: None,
            consuming: None,
            held: HashMap::new(),
            serial: next_serial(),
            depth: None,
        })
    }

    /// The queue this consumer takes from.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    fn connection_alive(&mut self) -> Result<(), BrokerError> {
        if self.conn.status().connected() {
            return Ok(());
        }
        // The broker gives what we held to other consumers: forget them.
        self.held.clear();
        self.admin = None;
        self.consuming = None;
        Err(BrokerError::Connection(format!(
            "connection {}; the queue's unacked messages go back to it",
            connection_state(&self.conn)
        )))
    }

    /// The declaring channel, opened again if the broker closed it.
    async fn admin(&mut self) -> Result<Channel, BrokerError> {
        self.connection_alive()?;
        match &self.admin {
            Some(ch) if ch.status().connected() => Ok(ch.clone()),
            _ => {
                let t = self.opts.timeout;
                let ch = bounded(t, "open channel", self.conn.create_channel()).await?;
                self.admin = Some(ch.clone());
                Ok(ch)
            }
        }
    }

    /// Start the push consumer, with at most `prefetch` unacked deliveries.
    async fn start_consuming(&mut self, prefetch: u32) -> Result<(), BrokerError> {
        let t = self.opts.timeout;
        let ch = bounded(t, "open channel", self.conn.create_channel()).await?;
        let prefetch = u16::try_from(prefetch).unwrap_or(u16::MAX);
        bounded(
            t,
            "basic.qos",
            ch.basic_qos(prefetch, BasicQosOptions { global: false }),
        )
        .await?;
        let consumer = bounded(
            t,
            &format!("consume queue {}", self.queue),
            ch.basic_consume(
                self.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: false,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            ),
        )
        .await?;
        self.consuming = Some((ch, consumer));
        // Tags start again at 1 on the new channel: a new serial, so an id
        // handed out by the last one can never ack one of this one's.
        self.serial = next_serial();
        Ok(())
    }

    fn id(&self, tag: u64) -> u64 {
        debug_assert!(tag <= TAG_MASK);
        self.serial << TAG_BITS | tag
    }

    /// Ack or nack each of `ids` this consumer holds; an error if some could
    /// not be sent (the channel is gone: the broker delivers them again).
    async fn settle(&mut self, ids: &[u64], requeue: bool) -> Result<(), BrokerError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.connection_alive()?;
        let t = self.opts.timeout;
        let mut ackers: Vec<(u64, Acker)> = ids
            .iter()
            .filter_map(|id| self.held.remove(id).map(|a| (id & TAG_MASK, a)))
            .collect();
        let unknown = ids.len() - ackers.len();
        // Tags below every one still held are settled by one frame with
        // `multiple` on the highest of them (one round trip to lapin's I/O
        // thread instead of one per message); the rest one by one. What
        // the broker delivered and the flow has not taken yet has higher
        // tags still, so `multiple` never reaches it.
        ackers.sort_unstable_by_key(|(tag, _)| *tag);
        let floor = self
            .held
            .keys()
            .map(|id| id & TAG_MASK)
            .min()
            .unwrap_or(u64::MAX);
        let covered = ackers.iter().take_while(|(tag, _)| *tag < floor).count();
        let frames: Vec<(&Acker, usize)> = ackers[..covered]
            .last()
            .map(|(_, a)| (a, covered))
            .into_iter()
            .chain(ackers[covered..].iter().map(|(_, a)| (a, 1)))
            .collect();
        let sends = frames.iter().map(|&(acker, count)| async move {
            let multiple = count > 1;
            let sent = if requeue {
                let options = BasicNackOptions {
                    multiple,
                    requeue: true,
                };
                tokio::time::timeout(t, acker.nack(options)).await
            } else {
                tokio::time::timeout(t, acker.ack(BasicAckOptions { multiple })).await
            };
            // Ok(false): the channel closed since; the broker has them back.
            if matches!(sent, Ok(Ok(true))) {
                0
            } else {
                count
            }
        });
        let lost: usize = join_in_order(sends.collect()).await.into_iter().sum();
        if unknown > 0 {
            tracing::warn!(
                queue = %self.queue,
                unknown,
                "{} of deliveries this consumer does not hold (an earlier connection's): ignored",
                if requeue { "requeue" } else { "ack" }
            );
        }
        if lost > 0 {
            self.connection_alive()?;
            return Err(BrokerError::Connection(format!(
                "{lost} {} not sent (channel closed): the broker delivers them again",
                if requeue { "requeues" } else { "acks" }
            )));
        }
        Ok(())
    }
}

/// A connection found lost when its consumer is dropped (the flows drop
/// it to make another): its node goes to the back of the list.
impl Drop for AmqpConsumer {
    fn drop(&mut self) {
        if !self.conn.status().connected() {
            self.node.failed();
        }
    }
}

/// Application headers as strings: strings as they are, numbers and
/// booleans written out (as Python's `str` would), anything else in
/// lapin's notation.
pub(super) fn headers(table: &FieldTable) -> Headers {
    table
        .into_iter()
        .map(|(k, v)| (k.to_string(), header_text(v)))
        .collect()
}

fn header_text(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::Boolean(b) => if *b { "True" } else { "False" }.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::Float(n) => n.to_string(),
        AMQPValue::Double(n) => n.to_string(),
        AMQPValue::Timestamp(n) => n.to_string(),
        AMQPValue::Void => String::new(),
        other => format!("{other:?}"),
    }
}

/// Queue arguments as sr3 sets them: `x-expires` and `x-message-ttl` in
/// milliseconds, and `x-queue-type` (queueType), each only when configured. A 32-bit integer when it fits,
/// as sr3's client sends it, so a queue declared by sr3 is declared again
/// with equivalent arguments.
pub(super) fn queue_arguments(spec: &QueueSpec) -> FieldTable {
    let mut args = FieldTable::default();
    let ms = |d: Duration| {
        let ms = d.as_millis();
        match i32::try_from(ms) {
            Ok(v) => AMQPValue::LongInt(v),
            Err(_) => AMQPValue::LongLongInt(i64::try_from(ms).unwrap_or(i64::MAX)),
        }
    };
    if let Some(expire) = spec.expire {
        args.insert("x-expires".into(), ms(expire));
    }
    if let Some(ttl) = spec.message_ttl {
        args.insert("x-message-ttl".into(), ms(ttl));
    }
    if let Some(t) = spec.queue_type {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(t.name().into()),
        );
    }
    args
}

#[async_trait]
impl Consumer for AmqpConsumer {
    /// queue_declare (durable as configured, never exclusive nor
    /// auto-delete) then queue_bind per binding, then starts consuming.
    /// Like sr3, no exchange is declared: a bind to a missing one fails
    /// with `NoExchange` until its publisher declares it. Declaring again is
    /// harmless; the prefetch of the first successful declare stays.
    async fn declare_queue(&mut self, spec: &QueueSpec) -> Result<(), BrokerError> {
        if spec.name != self.queue {
            return Err(BrokerError::Other(anyhow::anyhow!(
                "consumer of queue {} cannot declare {}",
                self.queue,
                spec.name
            )));
        }
        let t = self.opts.timeout;
        let ch = self.admin().await?;
        let declared = ch.queue_declare(
            spec.name.as_str().into(),
            QueueDeclareOptions {
                passive: false,
                durable: spec.durable,
                exclusive: false,
                auto_delete: false,
                nowait: false,
            },
            queue_arguments(spec),
        );
        let what = format!("declare queue {}", spec.name);
        bounded(t, &what, declared).await?;
        for b in &spec.bindings {
            let bound = ch.queue_bind(
                spec.name.as_str().into(),
                b.exchange.as_str().into(),
                b.topic.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            );
            match tokio::time::timeout(t, bound).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let what = format!("bind {} to {}:{}", spec.name, b.exchange, b.topic);
                    return Err(to_broker_error(&e, &what, Some(&b.exchange)));
                }
                Err(_) => {
                    return Err(BrokerError::Connection(format!(
                        "bind {}: no answer within {t:?}",
                        spec.name
                    )))
                }
            }
        }
        if self.consuming.is_none() {
            self.start_consuming(spec.prefetch).await?;
        }
        Ok(())
    }

    /// The deliveries already pushed by the broker, up to `max`; waits up
    /// to `wait` for the first when there are none.
    async fn get(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BrokerError> {
        self.connection_alive()?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let Some((_, consumer)) = self.consuming.as_mut() else {
            return Err(BrokerError::Other(anyhow::anyhow!(
                "queue {} is not declared yet (declare_queue first)",
                self.queue
            )));
        };
        // Ready as soon as one delivery is there, with all the others
        // already buffered (up to max); pending while there are none.
        let take = std::future::poll_fn(|cx| {
            let mut got = Vec::new();
            while got.len() < max {
                match Pin::new(&mut *consumer).poll_next(cx) {
                    Poll::Ready(Some(Ok(d))) => got.push(d),
                    // What was taken already goes back to the queue with
                    // the channel: only the error matters.
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(Some(e))),
                    Poll::Ready(None) if got.is_empty() => return Poll::Ready(Err(None)),
                    Poll::Ready(None) | Poll::Pending => break,
                }
            }
            if got.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(Ok(got))
            }
        });
        let taken = match tokio::time::timeout(wait, take).await {
            Err(_) => return Ok(Vec::new()),
            Ok(Ok(got)) => got,
            Ok(Err(e)) => {
                self.consuming = None;
                self.held.clear();
                let why = e.map_or_else(
                    || "the broker cancelled the consumer".into(),
                    |e| e.to_string(),
                );
                return Err(BrokerError::Connection(format!(
                    "consuming queue {}: {why}",
                    self.queue
                )));
            }
        };
        Ok(taken
            .into_iter()
            .map(|d| {
                let id = self.id(d.delivery_tag);
                self.held.insert(id, d.acker);
                Delivery {
                    id,
                    exchange: d.exchange.to_string(),
                    topic: d.routing_key.to_string(),
                    content_type: d.properties.content_type().as_ref().map(|c| c.to_string()),
                    headers: d
                        .properties
                        .headers()
                        .as_ref()
                        .map(headers)
                        .unwrap_or_default(),
                    body: d.data,
                    redelivered: d.redelivered,
                }
            })
            .collect())
    }

    /// Ids this consumer does not hold (an earlier consumer's) are ignored
    /// with a warning; acks that could not be sent are an error, and the
    /// broker delivers those messages again.
    async fn ack(&mut self, ids: &[u64]) -> Result<(), BrokerError> {
        self.settle(ids, false).await
    }

    /// basic.nack with requeue: the broker delivers them again, flagged
    /// redelivered.
    async fn requeue(&mut self, ids: &[u64]) -> Result<(), BrokerError> {
        self.settle(ids, true).await
    }

    /// Ready messages (a passive declare, at most every 5 s) plus the
    /// deliveries this consumer holds; other consumers' unacked ones are
    /// not known.
    async fn queue_depth(&mut self) -> Result<Option<u64>, BrokerError> {
        let held = self.held.len() as u64;
        if let Some((at, ready)) = self.depth {
            if at.elapsed() < DEPTH_CACHE {
                return Ok(Some(ready + held));
            }
        }
        let t = self.opts.timeout;
        let ch = self.admin().await?;
        let passive = ch.queue_declare(
            self.queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        );
        let what = format!("depth of queue {}", self.queue);
        let ready = u64::from(bounded(t, &what, passive).await?.message_count());
        self.depth = Some((Instant::now(), ready));
        Ok(Some(ready + held))
    }
}
