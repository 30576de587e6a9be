//! Publishing: QoS 1 publishes, and waiting for the broker's PUBACK of every
//! message of a batch before saying it is done.

use super::{publish_topic, Settings, CONTENT_TYPE};
use crate::broker::{BrokerError, Outgoing, Publisher};
use async_trait::async_trait;
use rumqttc::v5::mqttbytes::v5::{PubAckReason, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, Incoming};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// How long one batch may go without progress (a publish accepted, a
/// PUBACK received) before the connection is given up.
const STALL: Duration = Duration::from_secs(30);

/// Requests queued between the client and its event loop.
const REQUEST_CAPACITY: usize = 256;

/// Publishes to an MQTT broker; see [`open_publisher`].
pub struct MqttPublisher {
    settings: Settings,
    conn: Option<Connection>,
}

/// One connection: the client that queues requests, and the task that
/// polls the event loop and reports what the broker said.
struct Connection {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<Report>,
    task: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the event loop task tells the publisher.
enum Report {
    /// A publish left with this packet id (in the order they were queued).
    Sent(u16),
    /// The broker acknowledged this packet id.
    Acked(u16, PubAckReason),
    /// The connection failed; the task has ended.
    Lost(String),
}

/// A publisher for `url` (`mqtt://` or `mqtts://`). It connects on the
/// first publish, with a clean session of its own (as sr3's publisher).
pub fn open_publisher(url: &url::Url) -> Result<MqttPublisher, BrokerError> {
    Ok(MqttPublisher {
        settings: Settings::from_url(url)?,
        conn: None,
    })
}

impl MqttPublisher {
    /// The live connection, opening a new one if there is none or the
    /// last one failed.
    fn connection(&mut self) -> Result<&mut Connection, BrokerError> {
        let dead = match &self.conn {
            Some(c) => c.task.is_finished(),
            None => true,
        };
        if dead {
            self.conn = Some(connect(&self.settings)?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| BrokerError::Connection("no connection".into()))
    }

    async fn publish_batch(&mut self, msgs: &[Outgoing]) -> Result<(), BrokerError> {
        let shown = self.settings.shown().to_string();
        let conn = self.connection()?;
        // Reports left over from an earlier batch mean nothing now; a lost
        // connection shows up as a finished task on the next call.
        while conn.events.try_recv().is_ok() {}
        let mut topics = Vec::with_capacity(msgs.len());
        for m in msgs {
            let topic = publish_topic(&m.exchange, &m.topic, &m.body);
            // As sr3's MQTT moth: the content type, and v02's headers as
            // user properties.
            let props = PublishProperties {
                payload_format_indicator: Some(1),
                content_type: Some(
                    m.content_type
                        .clone()
                        .unwrap_or_else(|| CONTENT_TYPE.to_string()),
                ),
                user_properties: m
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                ..Default::default()
            };
            let queued = conn.client.publish_with_properties(
                topic.clone(),
                QoS::AtLeastOnce,
                false,
                m.body.clone(),
                props,
            );
            match timeout(STALL, queued).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return Err(BrokerError::Other(anyhow::anyhow!(
                        "cannot publish on topic {topic} at {shown}: {e}"
                    )))
                }
                Err(_) => return Err(stalled(&shown, "queueing publishes")),
            }
            topics.push(topic);
        }
        // Packet ids are handed out in the order the publishes were queued,
        // so the n-th `Sent` is msgs[n].
        let mut sent = 0usize;
        let mut waiting: HashMap<u16, usize> = HashMap::new();
        let mut unroutable: Option<usize> = None;
        while sent < msgs.len() || !waiting.is_empty() {
            let report = match timeout(STALL, conn.events.recv()).await {
                Ok(Some(r)) => r,
                Ok(None) => return Err(BrokerError::Connection(format!("{shown}: closed"))),
                Err(_) => return Err(stalled(&shown, "waiting for PUBACKs")),
            };
            match report {
                Report::Sent(pkid) if sent < msgs.len() => {
                    waiting.insert(pkid, sent);
                    sent += 1;
                }
                Report::Sent(_) => {}
                Report::Acked(pkid, reason) => {
                    let Some(i) = waiting.remove(&pkid) else {
                        continue;
                    };
                    match reason {
                        PubAckReason::Success => {}
                        PubAckReason::NoMatchingSubscribers => {
                            unroutable.get_or_insert(i);
                        }
                        other => {
                            return Err(BrokerError::Other(anyhow::anyhow!(
                                "broker {shown} refused the message on topic {}: {other:?}",
                                topics[i]
                            )))
                        }
                    }
                }
                Report::Lost(e) => {
                    return Err(BrokerError::Connection(format!(
                        "{shown}: {e} ({} of {} messages acknowledged)",
                        sent - waiting.len(),
                        msgs.len()
                    )))
                }
            }
        }
        match unroutable {
            Some(i) => Err(BrokerError::Unroutable {
                exchange: msgs[i].exchange.clone(),
                topic: msgs[i].topic.clone(),
            }),
            None => Ok(()),
        }
    }
}

fn stalled(shown: &str, what: &str) -> BrokerError {
    BrokerError::Connection(format!(
        "{shown}: no progress for {}s {what}",
        STALL.as_secs()
    ))
}

/// A fresh connection and the task that drives it. Nothing is sent until
/// the first request: the CONNECT goes out when the task first polls.
fn connect(settings: &Settings) -> Result<Connection, BrokerError> {
    let mut opts = settings.options(&publisher_client_id())?;
    opts.set_clean_start(true);
    let (client, eventloop) = AsyncClient::new(opts, REQUEST_CAPACITY);
    let (tx, events) = mpsc::unbounded_channel();
    let task = tokio::spawn(drive(eventloop, tx));
    Ok(Connection {
        client,
        events,
        task,
    })
}

/// Polls the event loop until the connection fails. A publisher does not
/// reconnect by itself: its caller retries the batch on a new connection,
/// so that nothing half-sent on the old one is mistaken for acknowledged.
async fn drive(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Report>) {
    loop {
        let report = match eventloop.poll().await {
            Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => Report::Sent(pkid),
            Ok(Event::Incoming(Incoming::PubAck(ack))) => Report::Acked(ack.pkid, ack.reason),
            Ok(_) => continue,
            Err(e) => {
                let _ = tx.send(Report::Lost(e.to_string()));
                return;
            }
        };
        if tx.send(report).is_err() {
            return;
        }
    }
}

/// A client id no other connection uses: sr3's publishers let the client
/// library make one up; ours says who it is.
fn publisher_client_id() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "host".into());
    format!(
        "pitcher_pub_{host}_{}_{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

#[async_trait]
impl Publisher for MqttPublisher {
    /// MQTT has no exchanges: the exchange is only the first topic level.
    async fn declare_exchange(&mut self, _name: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    /// Publishes every message at QoS 1 and returns once the broker has
    /// acknowledged each. `Unroutable` when the broker said no subscriber
    /// matched one of them (the others were delivered).
    async fn publish(&mut self, msgs: &[Outgoing]) -> Result<(), BrokerError> {
        if msgs.is_empty() {
            return Ok(());
        }
        let result = self.publish_batch(msgs).await;
        if matches!(
            result,
            Err(BrokerError::Connection(_)) | Err(BrokerError::Other(_))
        ) {
            // Start over on a new connection next time.
            self.conn = None;
        }
        result
    }
}
