//! Consuming: one persistent session per instance, subscribed to the
//! queue's shared subscriptions, whose publishes are buffered by a task
//! that polls the connection all the time, and acknowledged one by one
//! once the flow is done with them.

use super::slot::InstanceSlot;
use super::{delivery_topic, subscription_filter, Settings};
use crate::broker::{BrokerError, Consumer, Delivery, QueueSpec};
use async_trait::async_trait;
use rumqttc::v5::mqttbytes::v5::{Filter, Publish, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, Incoming};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};

/// How long `declare_queue` waits for the broker to confirm the
/// subscriptions.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause after a failed connection, doubling up to the maximum.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Bound on queueing one request (ack, subscribe) for the event loop.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests queued between the client and its event loop.
const REQUEST_CAPACITY: usize = 1024;

/// Consumes one queue (shared subscription) of an MQTT broker; see
/// [`open_consumer`].
pub struct MqttConsumer {
    settings: Settings,
    queue: String,
    slot: InstanceSlot,
    /// The subscriptions of the last `declare_queue`.
    filters: Vec<String>,
    conn: Option<Connection>,
    next_id: u64,
    /// Deliveries handed out and not yet acked.
    handed: HashMap<u64, Received>,
}

/// A publish from the broker, with the connection it came on.
struct Received {
    publish: Publish,
    /// Which connection (counted from 1) delivered it: its packet id means
    /// something only on that connection.
    generation: u64,
    /// Given back by `requeue`.
    requeued: bool,
}

/// What the event loop task and the consumer share.
#[derive(Default)]
struct Inbox {
    /// Publishes received and not yet handed out, oldest first.
    buffer: VecDeque<Received>,
    /// The current connection, counted from 1; 0 before the first CONNACK.
    generation: u64,
    connected: bool,
    /// The broker's answer to the subscriptions on the current connection.
    subscribed: Option<Result<(), String>>,
    last_error: Option<String>,
}

struct Shared {
    inbox: Mutex<Inbox>,
    changed: Notify,
    closing: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inbox> {
        // A panic while holding the lock leaves plain data behind; use it.
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Connection {
    client: AsyncClient,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Connection {
    /// A clean DISCONNECT keeps the session (and what it holds) on the
    /// broker; the task sends the acks queued before it, then ends. It is
    /// cut short if the broker does not answer.
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        if self.client.try_disconnect().is_err() {
            self.task.abort();
        }
    }
}

/// A consumer of `queue` on `url` (`mqtt://` or `mqtts://`). Its client id
/// is `<queue>_iNN`, as sr3 names an instance's session, with `NN` the
/// lowest instance slot of this queue free on this host; slots are lock
/// files in `slot_dir`, held until the consumer is dropped. Call
/// [`Consumer::declare_queue`] to connect and subscribe.
pub fn open_consumer(
    url: &url::Url,
    slot_dir: &Path,
    queue: &str,
) -> Result<MqttConsumer, BrokerError> {
    let settings = Settings::from_url(url)?;
    let slot = InstanceSlot::claim(slot_dir, queue)?;
    Ok(MqttConsumer {
        settings,
        queue: queue.to_string(),
        slot,
        filters: Vec::new(),
        conn: None,
        next_id: 1,
        handed: HashMap::new(),
    })
}

impl MqttConsumer {
    /// The MQTT client id, i.e. the name of this instance's session.
    pub fn client_id(&self) -> &str {
        self.slot.client_id()
    }

    fn connect(&mut self, spec: &QueueSpec) -> Result<(), BrokerError> {
        let mut opts = self.settings.options(self.slot.client_id())?;
        opts.set_clean_start(false)
            .set_manual_acks(true)
            .set_session_expiry_interval(Some(session_expiry(spec.expire)))
            .set_receive_maximum(receive_maximum(spec.prefetch));
        let (client, eventloop) = AsyncClient::new(opts, REQUEST_CAPACITY);
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox::default()),
            changed: Notify::new(),
            closing: AtomicBool::new(false),
        });
        let task = tokio::spawn(drive(
            eventloop,
            client.clone(),
            shared.clone(),
            self.filters.clone(),
        ));
        self.conn = Some(Connection {
            client,
            shared,
            task,
        });
        Ok(())
    }

    /// Waits until the current connection's subscriptions are confirmed.
    async fn wait_subscribed(&self) -> Result<(), BrokerError> {
        let shown = self.settings.shown();
        let conn = self
            .conn
            .as_ref()
            .ok_or_else(|| BrokerError::Connection(format!("{shown}: not connected")))?;
        let deadline = Instant::now() + SUBSCRIBE_TIMEOUT;
        loop {
            let changed = conn.shared.changed.notified();
            {
                let inbox = conn.shared.lock();
                match &inbox.subscribed {
                    Some(Ok(())) => return Ok(()),
                    Some(Err(e)) => {
                        return Err(BrokerError::Other(anyhow::anyhow!(
                            "subscribing queue {} at {shown}: {e}",
                            self.queue
                        )))
                    }
                    None => {}
                }
                // A first connection that fails is reported at once: the
                // caller decides when to try again.
                if let (false, Some(e)) = (inbox.connected, &inbox.last_error) {
                    return Err(BrokerError::Connection(format!("{shown}: {e}")));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || timeout(left, changed).await.is_err() {
                return Err(BrokerError::Connection(format!(
                    "{shown}: subscriptions of queue {} not confirmed within {}s",
                    self.queue,
                    SUBSCRIBE_TIMEOUT.as_secs()
                )));
            }
        }
    }

    /// Up to `max` buffered publishes, as deliveries.
    fn take(&mut self, max: usize) -> Vec<Delivery> {
        let Some(conn) = &self.conn else {
            return Vec::new();
        };
        let taken: Vec<Received> = {
            let mut inbox = conn.shared.lock();
            let n = max.min(inbox.buffer.len());
            inbox.buffer.drain(..n).collect()
        };
        taken
            .into_iter()
            .map(|r| {
                let id = self.next_id;
                self.next_id += 1;
                let topic = String::from_utf8_lossy(&r.publish.topic);
                let (exchange, topic) = delivery_topic(&topic);
                let d = Delivery {
                    id,
                    exchange,
                    topic,
                    body: r.publish.payload.to_vec(),
                    redelivered: r.publish.dup || r.requeued,
                };
                self.handed.insert(id, r);
                d
            })
            .collect()
    }
}

/// Session expiry from the queue's `expire`; without one the session never
/// expires, as a durable AMQP queue without x-expires.
fn session_expiry(expire: Option<Duration>) -> u32 {
    match expire {
        Some(d) => u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX),
        None => u32::MAX,
    }
}

/// The prefetch as MQTT's receive maximum: how many unacknowledged QoS 1
/// publishes the broker may send us. 0 leaves the broker's default.
fn receive_maximum(prefetch: u32) -> Option<u16> {
    match prefetch {
        0 => None,
        n => Some(u16::try_from(n).unwrap_or(u16::MAX)),
    }
}

/// Polls the connection for as long as the consumer lives: buffers
/// publishes, subscribes again after every CONNACK (the broker may have
/// lost the session), and reconnects with backoff after failures.
async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    shared: Arc<Shared>,
    filters: Vec<String>,
) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        let closing = shared.closing.load(Ordering::SeqCst);
        let polled = if closing {
            match timeout(REQUEST_TIMEOUT, eventloop.poll()).await {
                Ok(p) => p,
                Err(_) => return,
            }
        } else {
            eventloop.poll().await
        };
        match polled {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                backoff = BACKOFF_FIRST;
                {
                    let mut inbox = shared.lock();
                    inbox.generation += 1;
                    inbox.connected = true;
                    inbox.subscribed = None;
                    inbox.last_error = None;
                    if ack.session_present {
                        // The broker sends every unacknowledged publish
                        // again; the copies from the old connection go.
                        inbox.buffer.clear();
                    }
                }
                if filters.is_empty() {
                    shared.lock().subscribed = Some(Ok(()));
                } else {
                    subscribe(&client, &filters);
                }
                shared.changed.notify_waiters();
            }
            Ok(Event::Incoming(Incoming::Publish(publish))) => {
                {
                    let mut inbox = shared.lock();
                    let generation = inbox.generation;
                    inbox.buffer.push_back(Received {
                        publish,
                        generation,
                        requeued: false,
                    });
                }
                shared.changed.notify_waiters();
            }
            Ok(Event::Incoming(Incoming::SubAck(ack))) => {
                let refused: Vec<String> = ack
                    .return_codes
                    .iter()
                    .zip(&filters)
                    .filter(|(code, _)| !matches!(code, SubscribeReasonCode::Success(_)))
                    .map(|(code, f)| format!("{f}: {code:?}"))
                    .collect();
                shared.lock().subscribed = Some(if refused.is_empty() {
                    Ok(())
                } else {
                    Err(format!("refused {}", refused.join(", ")))
                });
                shared.changed.notify_waiters();
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) if closing => return,
            Ok(_) => {}
            Err(e) => {
                if closing {
                    return;
                }
                {
                    let mut inbox = shared.lock();
                    inbox.connected = false;
                    inbox.last_error = Some(e.to_string());
                }
                shared.changed.notify_waiters();
                tracing::debug!("MQTT connection: {e}; again in {backoff:?}");
                sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Queues one SUBSCRIBE for all `filters` at QoS 1; from a task of its own
/// when the request queue is full, since the event loop must keep polling.
fn subscribe(client: &AsyncClient, filters: &[String]) {
    let subs = |fs: &[String]| -> Vec<Filter> {
        fs.iter()
            .map(|f| Filter::new(f, QoS::AtLeastOnce))
            .collect()
    };
    if client.try_subscribe_many(subs(filters)).is_err() {
        let (client, filters) = (client.clone(), filters.to_vec());
        tokio::spawn(async move {
            let queued = timeout(REQUEST_TIMEOUT, client.subscribe_many(subs(&filters))).await;
            if !matches!(queued, Ok(Ok(()))) {
                tracing::warn!("cannot queue the MQTT subscriptions {filters:?}");
            }
        });
    }
}

#[async_trait]
impl Consumer for MqttConsumer {
    /// Connects (persistent session, receive maximum = prefetch) and
    /// subscribes every binding as `$share/<queue>/<exchange>/<topic>`;
    /// returns once the broker confirmed them all.
    async fn declare_queue(&mut self, spec: &QueueSpec) -> Result<(), BrokerError> {
        let filters = spec
            .bindings
            .iter()
            .map(|b| subscription_filter(&spec.name, b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BrokerError::Other(anyhow::anyhow!(e)))?;
        if spec.name != self.queue {
            return Err(BrokerError::Other(anyhow::anyhow!(
                "this consumer was opened for queue {}, not {}",
                self.queue,
                spec.name
            )));
        }
        if self.conn.is_none() || filters != self.filters {
            // Deliveries of the old connection cannot be acked on a new one.
            self.handed.clear();
            self.conn = None;
            self.filters = filters;
            self.connect(spec)?;
        }
        self.wait_subscribed().await
    }

    /// Buffered publishes, up to `max`; waits up to `wait` for the first.
    /// A lost connection is not an error: it is re-established in the
    /// background, and meanwhile `get` finds nothing.
    async fn get(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BrokerError> {
        let Some(conn) = &self.conn else {
            return Err(BrokerError::Other(anyhow::anyhow!(
                "queue {} is not declared on this consumer",
                self.queue
            )));
        };
        let shared = conn.shared.clone();
        let deadline = Instant::now() + wait;
        loop {
            let changed = shared.changed.notified();
            let got = self.take(max);
            if !got.is_empty() || max == 0 {
                return Ok(got);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || timeout(left, changed).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    /// PUBACKs for the deliveries. Those received on an earlier connection
    /// are skipped: the broker sends them again (or has forgotten them
    /// with its session), and their packet ids may name other messages now.
    async fn ack(&mut self, ids: &[u64]) -> Result<(), BrokerError> {
        let Some(conn) = &self.conn else {
            return Ok(());
        };
        let generation = conn.shared.lock().generation;
        for id in ids {
            let Some(r) = self.handed.remove(id) else {
                continue;
            };
            if r.generation != generation {
                continue;
            }
            match timeout(REQUEST_TIMEOUT, conn.client.ack(&r.publish)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(BrokerError::Connection(e.to_string())),
                Err(_) => {
                    return Err(BrokerError::Connection(format!(
                        "{}: acks not taken within {}s",
                        self.settings.shown(),
                        REQUEST_TIMEOUT.as_secs()
                    )))
                }
            }
        }
        Ok(())
    }

    /// MQTT cannot give a message back: the deliveries stay with this
    /// consumer, unacknowledged, first in line for the next `get`.
    async fn requeue(&mut self, ids: &[u64]) -> Result<(), BrokerError> {
        let Some(conn) = &self.conn else {
            return Ok(());
        };
        let mut inbox = conn.shared.lock();
        for id in ids.iter().rev() {
            if let Some(mut r) = self.handed.remove(id) {
                r.requeued = true;
                inbox.buffer.push_front(r);
            }
        }
        Ok(())
    }

    /// MQTT cannot tell how many messages wait for a subscription.
    async fn queue_depth(&mut self) -> Result<Option<u64>, BrokerError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_without_expire_never_expire() {
        assert_eq!(session_expiry(None), u32::MAX);
        assert_eq!(session_expiry(Some(Duration::from_secs(300))), 300);
        assert_eq!(session_expiry(Some(Duration::from_millis(10))), 1);
        assert_eq!(
            session_expiry(Some(Duration::from_secs(u64::MAX))),
            u32::MAX
        );
    }

    #[test]
    fn prefetch_becomes_the_receive_maximum() {
        assert_eq!(receive_maximum(0), None);
        assert_eq!(receive_maximum(25), Some(25));
        assert_eq!(receive_maximum(100_000), Some(u16::MAX));
    }
}
