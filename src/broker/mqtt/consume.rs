//! Consuming: one persistent session per instance, subscribed to the
//! queue's shared subscriptions, whose publishes are buffered by a task
//! that polls the connection all the time, and acknowledged one by one
//! once the flow is done with them.

use super::session::{drive, Received, Shared};
use super::slot::InstanceSlot;
use super::{delivery_topic, subscription_filter, Settings};
use crate::broker::{BrokerError, Consumer, Delivery, QueueSpec};
use async_trait::async_trait;
use rumqttc::v5::mqttbytes::QoS;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

/// How long `declare_queue` waits for the broker to confirm the
/// subscriptions.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `ack` waits for its PUBACKs to be written.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// PUBACKs queued on the connection of epoch `.0`.
    acks_queued: (u64, u64),
}

/// The session task and what it shares with the consumer.
struct Connection {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Connection {
    /// A clean DISCONNECT keeps the session (and what it holds) on the
    /// broker; the task sends the acks queued before it, then ends.
    fn drop(&mut self) {
        self.shared.close();
        if self.shared.lock().client.is_none() {
            // Not connected: nothing to send, nobody to wait for.
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
        acks_queued: (0, 0),
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
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(drive(opts, shared.clone(), self.filters.clone()));
        self.conn = Some(Connection { shared, task });
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
                let props = r.publish.properties.as_ref();
                let d = Delivery {
                    id,
                    exchange,
                    topic,
                    body: r.publish.payload.to_vec(),
                    content_type: props.and_then(|p| p.content_type.clone()),
                    headers: props
                        .map(|p| p.user_properties.iter().cloned().collect())
                        .unwrap_or_default(),
                    redelivered: r.publish.dup || r.requeued,
                };
                self.handed.insert(id, r);
                d
            })
            .collect()
    }
}

fn ack_timeout(shown: &str) -> BrokerError {
    BrokerError::Connection(format!(
        "{shown}: acks not written within {}s; the broker will deliver them again",
        ACK_TIMEOUT.as_secs()
    ))
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

    /// PUBACKs for the deliveries, sent on the connection that delivered
    /// them; returns once they are written to it. Deliveries of an earlier
    /// connection are skipped: the broker sends them again (or forgot them
    /// with its session). MQTT never confirms an ack: if the connection
    /// fails right after, the broker may deliver them again.
    async fn ack(&mut self, ids: &[u64]) -> Result<(), BrokerError> {
        let Some(conn) = &self.conn else {
            return Ok(());
        };
        let (epoch, client) = {
            let inbox = conn.shared.lock();
            (inbox.epoch, inbox.client.clone())
        };
        if self.acks_queued.0 != epoch {
            self.acks_queued = (epoch, 0);
        }
        let shown = self.settings.shown().to_string();
        let deadline = Instant::now() + ACK_TIMEOUT;
        for id in ids {
            let Some(r) = self.handed.remove(id) else {
                continue;
            };
            let Some(client) = client.as_ref().filter(|_| r.epoch == epoch) else {
                continue;
            };
            if r.publish.qos == QoS::AtMostOnce {
                continue;
            }
            match tokio::time::timeout_at(deadline, client.ack(&r.publish)).await {
                Ok(Ok(())) => self.acks_queued.1 += 1,
                // The connection is gone, and its acks with it.
                Ok(Err(_)) => return Ok(()),
                Err(_) => return Err(ack_timeout(&shown)),
            }
        }
        // Wait for the writes, unless the connection changes meanwhile.
        loop {
            let changed = conn.shared.changed.notified();
            {
                let inbox = conn.shared.lock();
                if inbox.epoch != epoch || inbox.acks_written >= self.acks_queued.1 {
                    return Ok(());
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(ack_timeout(&shown));
            }
        }
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
