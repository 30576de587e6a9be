//! The task behind a consumer: it keeps one instance's session connected,
//! polls the connection all the time (keepalives, incoming publishes,
//! outgoing acks), and shares what arrives with the consumer.
//!
//! Every connection attempt gets a client and event loop of its own,
//! numbered by an *epoch*. Packet ids name a message only on the
//! connection that delivered it: a PUBACK queued for connection 3 must
//! never be sent on connection 4, where the same id may already name
//! another message, which would be acknowledged before it was handled.
//! rumqttc reconnects an event loop in place and keeps its request queue;
//! dropping the whole client at each failure instead discards whatever was
//! queued for the connection that is gone.

use rumqttc::v5::mqttbytes::v5::{Filter, Publish, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, Incoming, MqttOptions};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{sleep, timeout};

/// Pause after a failed connection, doubling up to the maximum.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// While closing, how long to wait for the broker before giving up.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests queued between a client and its event loop.
const REQUEST_CAPACITY: usize = 1024;

/// A publish from the broker, with the connection it came on.
pub(super) struct Received {
    pub publish: Publish,
    /// The epoch of the connection that delivered it.
    pub epoch: u64,
    /// Given back by `requeue`.
    pub requeued: bool,
}

/// What the task and the consumer share, under one lock.
#[derive(Default)]
pub(super) struct Inbox {
    /// Publishes received and not yet handed out, oldest first.
    pub buffer: VecDeque<Received>,
    /// The current connection attempt, counted from 1.
    pub epoch: u64,
    /// The client of the current connection attempt.
    pub client: Option<AsyncClient>,
    /// The current connection got its CONNACK and has not failed since.
    pub connected: bool,
    /// The broker's answer to the subscriptions on the current connection.
    pub subscribed: Option<Result<(), String>>,
    /// PUBACKs written to the current connection.
    pub acks_written: u64,
    pub last_error: Option<String>,
}

/// The inbox, a signal for every change to it, and the wish to close.
#[derive(Default)]
pub(super) struct Shared {
    inbox: Mutex<Inbox>,
    pub changed: Notify,
    pub closing: AtomicBool,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Inbox> {
        // A panic while holding the lock leaves plain data behind; use it.
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the task to send a DISCONNECT after the requests already
    /// queued (acks first), which keeps the session on the broker, then
    /// to stop.
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        if let Some(client) = &self.lock().client {
            let _ = client.try_disconnect();
        }
        self.changed.notify_waiters();
    }
}

/// Keeps the session connected until the consumer closes it: buffers
/// publishes, subscribes to `filters` after every CONNACK (the broker may
/// have lost the session), and reconnects with backoff after failures.
pub(super) async fn drive(opts: MqttOptions, shared: Arc<Shared>, filters: Vec<String>) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        if shared.closing.load(Ordering::SeqCst) {
            return;
        }
        let (client, mut eventloop) = AsyncClient::new(opts.clone(), REQUEST_CAPACITY);
        let epoch = {
            let mut inbox = shared.lock();
            inbox.epoch += 1;
            inbox.client = Some(client.clone());
            inbox.connected = false;
            inbox.subscribed = None;
            inbox.acks_written = 0;
            inbox.epoch
        };
        loop {
            let closing = shared.closing.load(Ordering::SeqCst);
            let polled = if closing {
                match timeout(CLOSE_TIMEOUT, eventloop.poll()).await {
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
                        inbox.connected = true;
                        inbox.last_error = None;
                        if ack.session_present {
                            // The broker sends every unacknowledged publish
                            // again: the copies from before go.
                            inbox.buffer.retain(|r| r.epoch == epoch);
                        }
                        if filters.is_empty() {
                            inbox.subscribed = Some(Ok(()));
                        }
                    }
                    if !filters.is_empty() {
                        subscribe(&client, &filters);
                    }
                    shared.changed.notify_waiters();
                }
                Ok(Event::Incoming(Incoming::Publish(publish))) => {
                    shared.lock().buffer.push_back(Received {
                        publish,
                        epoch,
                        requeued: false,
                    });
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
                Ok(Event::Outgoing(rumqttc::Outgoing::PubAck(_))) => {
                    shared.lock().acks_written += 1;
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
                        inbox.client = None;
                        inbox.last_error = Some(e.to_string());
                    }
                    shared.changed.notify_waiters();
                    tracing::debug!("MQTT connection: {e}; again in {backoff:?}");
                    break;
                }
            }
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
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
            let queued = timeout(BACKOFF_MAX, client.subscribe_many(subs(&filters))).await;
            if !matches!(queued, Ok(Ok(()))) {
                tracing::warn!("cannot queue the MQTT subscriptions {filters:?}");
            }
        });
    }
}
