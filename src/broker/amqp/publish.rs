//! Publishing with publisher confirms: the whole batch goes out, then every
//! confirm is awaited; returned (unroutable) messages, nacks and a channel
//! closed by a 404 become the matching [`BrokerError`].

use super::nodes::Node;
use super::{
    bounded, classify, connect, connection_state, join_in_order, to_broker_error, AmqpOptions,
    Failure,
};
use crate::broker::{BrokerError, Outgoing, Publisher, DEFAULT_CONTENT_TYPE};
use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};

/// Publishes to a RabbitMQ (or any AMQP 0-9-1) broker; see
/// [`open_publisher`](super::open_publisher).
///
/// One connection, one channel in confirm mode. When the broker closes the
/// channel (publishing to a missing exchange, a refused declare), the next
/// call opens another on the same connection; when the connection is gone,
/// every call fails with [`BrokerError::Connection`] and the caller makes a
/// new publisher.
pub struct AmqpPublisher {
    conn: Connection,
    /// The node of the URL's list the connection went to.
    node: Node,
    channel: Option<Channel>,
    opts: AmqpOptions,
    properties: BasicProperties,
}

/// Messages published before their confirms are awaited. lapin's send
/// buffer grows to hold whatever is published at once and never shrinks:
/// a watch announcing 20,000 files in one go kept 8 MiB for good. A couple
/// of hundred announcements fill its 32 small frames' worth, and a confirm
/// round trip per chunk costs next to nothing beside them. A failure part
/// way leaves the chunks before it published: the caller publishes the
/// whole batch again, and the receivers' nodupe drops the repeats.
const CONFIRM_CHUNK: usize = 200;

impl AmqpPublisher {
    pub(super) async fn connect(url: &url::Url, opts: &AmqpOptions) -> Result<Self, BrokerError> {
        let (conn, node) = connect(url, opts).await?;
        let mut publisher = AmqpPublisher {
            conn,
            node,
            channel: None,
            opts: opts.clone(),
            properties: message_properties(opts.persistent),
        };
        publisher.channel().await?;
        Ok(publisher)
    }

    /// The channel, opened (in confirm mode) if there is none or the broker
    /// closed the last one.
    async fn channel(&mut self) -> Result<&Channel, BrokerError> {
        if !self.conn.status().connected() {
            self.channel = None;
            return Err(BrokerError::Connection(format!(
                "connection {}",
                connection_state(&self.conn)
            )));
        }
        let usable = self
            .channel
            .as_ref()
            .is_some_and(|c| c.status().connected());
        if !usable {
            let t = self.opts.timeout;
            let ch = bounded(t, "open channel", self.conn.create_channel()).await?;
            bounded(
                t,
                "confirm.select",
                ch.confirm_select(ConfirmSelectOptions::default()),
            )
            .await?;
            self.channel = Some(ch);
        }
        self.channel
            .as_ref()
            .ok_or_else(|| BrokerError::Connection("no channel".into()))
    }

    /// Publish every message, then wait for every confirm; see
    /// [`Publisher::publish`].
    async fn publish_batch(&self, channel: &Channel, msgs: &[Outgoing]) -> Result<(), BrokerError> {
        let options = BasicPublishOptions {
            mandatory: true,
            immediate: false,
        };
        let sends = msgs.iter().map(|m| {
            channel.basic_publish(
                m.exchange.as_str().into(),
                m.topic.as_str().into(),
                options,
                &m.body,
                with_message(&self.properties, m),
            )
        });
        let mut confirms = Vec::with_capacity(msgs.len());
        // The first thing that went wrong, and for which message.
        let mut failed: Option<(usize, lapin::Error)> = None;
        for (i, sent) in join_in_order(sends.collect()).await.into_iter().enumerate() {
            match sent {
                Ok(confirm) => confirms.push((i, confirm)),
                Err(e) => {
                    if failed.is_none() {
                        failed = Some((i, e));
                    }
                }
            }
        }
        let mut unroutable = None;
        let mut nacked = 0usize;
        for (i, confirm) in confirms {
            match confirm.await {
                Ok(Confirmation::Ack(None)) => {}
                Ok(Confirmation::Ack(Some(_returned))) => {
                    unroutable.get_or_insert(i);
                }
                Ok(Confirmation::Nack(_)) => nacked += 1,
                Ok(Confirmation::NotRequested) => {
                    return Err(BrokerError::Other(anyhow::anyhow!(
                        "channel is not in confirm mode: nothing is known about the batch"
                    )))
                }
                // The 404 that closed the channel is the news; the errors
                // of the messages after it only repeat that it is closed.
                Err(e) => match &failed {
                    Some((_, first)) if matches!(classify(first), Failure::NotFound(_)) => {}
                    _ if matches!(classify(&e), Failure::NotFound(_)) => failed = Some((i, e)),
                    None => failed = Some((i, e)),
                    Some(_) => {}
                },
            }
        }
        if let Some((i, e)) = failed {
            return Err(to_broker_error(&e, "publish", Some(&msgs[i].exchange)));
        }
        if nacked > 0 {
            // The broker could not take them (an internal error, a full
            // queue set to reject-publish): the caller publishes again.
            return Err(BrokerError::Connection(format!(
                "the broker refused (nack) {nacked} of {} messages",
                msgs.len()
            )));
        }
        if let Some(i) = unroutable {
            return Err(BrokerError::Unroutable {
                exchange: msgs[i].exchange.clone(),
                topic: msgs[i].topic.clone(),
            });
        }
        Ok(())
    }
}

/// A connection found lost when its publisher is dropped (the flows drop
/// it to make another): its node goes to the back of the list.
impl Drop for AmqpPublisher {
    fn drop(&mut self) {
        if !self.conn.status().connected() {
            self.node.failed();
        }
    }
}

/// The properties sr3 sends with a v03 message.
fn message_properties(persistent: bool) -> BasicProperties {
    BasicProperties::default()
        .with_content_type(DEFAULT_CONTENT_TYPE.into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(if persistent { 2 } else { 1 })
        .with_headers(FieldTable::default())
}

/// `base` with the message's own content type and headers (long strings,
/// as sr3's client sends Python strings), when it has them.
fn with_message(base: &BasicProperties, m: &Outgoing) -> BasicProperties {
    if m.content_type.is_none() && m.headers.is_empty() {
        return base.clone();
    }
    let mut props = base.clone();
    if let Some(ct) = &m.content_type {
        props = props.with_content_type(ct.as_str().into());
    }
    let mut headers = FieldTable::default();
    for (k, v) in &m.headers {
        // A table key is a short string: a longer one cannot be sent.
        match ShortString::try_new(k.as_str()) {
            Ok(key) => {
                headers.insert(key, AMQPValue::LongString(v.as_bytes().to_vec().into()));
            }
            Err(_) => tracing::warn!(
                "header {}… longer than 255 bytes: not sent with {}",
                k.chars().take(40).collect::<String>(),
                m.topic
            ),
        }
    }
    props.with_headers(headers)
}

#[async_trait]
impl Publisher for AmqpPublisher {
    /// Topic, durable, not auto-delete, as sr3 declares it. An exchange of
    /// the same name declared otherwise is refused by the broker (406):
    /// `BrokerError::Other`.
    async fn declare_exchange(&mut self, name: &str) -> Result<(), BrokerError> {
        let t = self.opts.timeout;
        let ch = self.channel().await?;
        let declared = ch.exchange_declare(
            name.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                auto_delete: false,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        );
        bounded(t, &format!("declare exchange {name}"), declared).await
    }

    /// The whole batch is in flight at once, then every confirm is awaited.
    /// Not all or nothing, unlike `local:`: on `Unroutable` (a message no
    /// queue is bound for) the others were delivered; on `NoExchange` those
    /// before it may have been. A confirm not back within the timeout is a
    /// `Connection` error; the channel is then dropped, so a late confirm
    /// cannot be taken for one of the next batch.
    async fn publish(&mut self, msgs: &[Outgoing]) -> Result<(), BrokerError> {
        if msgs.is_empty() {
            return Ok(());
        }
        let t = self.opts.timeout;
        for chunk in msgs.chunks(CONFIRM_CHUNK) {
            let channel = self.channel().await?.clone();
            let result = match tokio::time::timeout(t, self.publish_batch(&channel, chunk)).await {
                Ok(r) => r,
                Err(_) => Err(BrokerError::Connection(format!(
                    "{} messages published but not confirmed within {t:?}",
                    chunk.len()
                ))),
            };
            if matches!(result, Err(BrokerError::Connection(_))) {
                self.channel = None;
            }
            result?;
        }
        Ok(())
    }
}
