//! `amqp://` and `amqps://` brokers (RabbitMQ) through lapin, behind the
//! [`Publisher`](crate::broker::Publisher) and
//! [`Consumer`](crate::broker::Consumer) traits.
//!
//! On the wire it is what sr3 does (sr3-behaviour §1.2, §2), so pitcher and
//! Python sr3 daemons can share exchanges and queues:
//! * exchanges are `topic`, durable, not auto-delete; a publisher declares
//!   its own, a consumer never declares any: binding to a missing exchange
//!   fails with `NoExchange` until the publisher (or `declare`) made it;
//! * messages carry `content_type application/json`, `content_encoding
//!   utf-8`, `delivery_mode 2` (1 when not persistent) and empty
//!   `application_headers`; the routing key is the topic;
//! * queues are declared `durable` as configured, never exclusive nor
//!   auto-delete, with `x-expires` and `x-message-ttl` in milliseconds.
//!
//! Where pitcher differs, on purpose:
//! * sr3 publishes in a transaction per message; pitcher uses publisher
//!   confirms with the whole batch in flight, and `mandatory` so that a
//!   message no queue receives comes back as `Unroutable` instead of being
//!   dropped by the broker without a word. The rest of such a batch *was*
//!   delivered: a caller that publishes the batch again sends those twice
//!   (at-least-once; receivers have nodupe);
//! * sr3 polls with `basic_get`; pitcher consumes with `basic_consume` (a
//!   push consumer with manual acks, at most `prefetch` unacked).
//!
//! Failures: every broker round trip is bounded by a timeout (default 30 s)
//! and heartbeats (default 30 s) notice a silent peer, so no call hangs. A
//! lost connection makes the current call fail with
//! [`BrokerError::Connection`]; the caller then makes a new publisher or
//! consumer through the factory, as the flows do. There is no automatic
//! recovery inside: deliveries of a dead connection are delivered again by
//! the broker to whoever consumes next, and acking them through the old
//! consumer fails without touching anything else.
//!
//! Clusters: a URL may name several nodes (`amqp://u@h1:5682,h2:5683/`);
//! a connection goes to the first that answers, a node that just failed
//! tried last, so the new publisher or consumer made after a lost
//! connection is on the next node at once ([`nodes`]).
//!
//! `amqps://` uses lapin's rustls with the aws-lc-rs provider (the only one
//! compiled in) and the platform's trust store.

mod consume;
mod nodes;
mod publish;

#[cfg(test)]
mod tests;

pub use consume::AmqpConsumer;
pub use publish::AmqpPublisher;

use crate::broker::BrokerError;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{Connection, ConnectionProperties, ErrorKind};
use std::future::Future;
use std::time::Duration;

/// How a connection is made and used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpOptions {
    /// Heartbeat interval asked of the broker (it may lower it): a peer
    /// silent for two intervals is taken for dead.
    pub heartbeat: Duration,
    /// Bound on every broker round trip, the connection included.
    pub timeout: Duration,
    /// Publish with `delivery_mode` 2 (kept across a broker restart in a
    /// durable queue) rather than 1: sr3's `persistent`.
    pub persistent: bool,
    /// Shown by `rabbitmqctl list_connections client_properties` and in
    /// the management UI, to tell pitcher's connections apart.
    pub connection_name: String,
}

impl Default for AmqpOptions {
    fn default() -> Self {
        AmqpOptions {
            heartbeat: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            persistent: true,
            connection_name: format!("pitcher[{}]", std::process::id()),
        }
    }
}

/// The largest frame asked of the broker. lapin keeps a send and a receive
/// buffer of 32 frames per connection, written through: at RabbitMQ's
/// 128 KiB that is 8 MiB of memory per connection, most of an instance's.
/// A v03 announcement is well under 8 KiB; a larger message is split into
/// several body frames, as AMQP allows.
const FRAME_MAX: u32 = 8192;

/// Open a publisher on `url` (`amqp://user:pass@host:port/vhost`); see
/// [`AmqpPublisher`].
pub async fn open_publisher(
    url: &url::Url,
    opts: &AmqpOptions,
) -> Result<AmqpPublisher, BrokerError> {
    AmqpPublisher::connect(url, opts).await
}

/// Open a consumer of `queue` on `url`; call
/// [`Consumer::declare_queue`](crate::broker::Consumer::declare_queue)
/// before `get`. See [`AmqpConsumer`].
pub async fn open_consumer(
    url: &url::Url,
    queue: &str,
    opts: &AmqpOptions,
) -> Result<AmqpConsumer, BrokerError> {
    AmqpConsumer::connect(url, queue, opts).await
}

/// Delete queue `name` and the messages in it (`pitcher cleanup`). A queue
/// that does not exist is not an error.
pub async fn delete_queue(url: &url::Url, name: &str) -> Result<(), BrokerError> {
    admin(url, "delete queue", |ch| async move {
        ch.queue_delete(name.into(), lapin::options::QueueDeleteOptions::default())
            .await
            .map(|_| ())
    })
    .await
}

/// Delete exchange `name` (`pitcher cleanup`); its bindings go with it. An
/// exchange that does not exist is not an error.
pub async fn delete_exchange(url: &url::Url, name: &str) -> Result<(), BrokerError> {
    admin(url, "delete exchange", |ch| async move {
        ch.exchange_delete(
            name.into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await
    })
    .await
}

/// One operation on a connection of its own, closed after.
async fn admin<F, Fut>(url: &url::Url, what: &str, op: F) -> Result<(), BrokerError>
where
    F: FnOnce(lapin::Channel) -> Fut,
    Fut: Future<Output = lapin::Result<()>>,
{
    let opts = AmqpOptions::default();
    let (conn, _) = connect(url, &opts).await?;
    let ch = bounded(opts.timeout, what, conn.create_channel()).await?;
    let result = bounded(opts.timeout, what, op(ch)).await;
    // Close politely; dropping the connection would close it too.
    let _ = tokio::time::timeout(opts.timeout, conn.close(200, "OK".into())).await;
    match result {
        // RabbitMQ deletes what is missing without complaint; should an
        // older or other broker answer 404, what was asked is true anyway.
        Err(BrokerError::NoExchange(_)) => Ok(()),
        other => other,
    }
}

/// The lapin URI for a broker URL, sr3's way: vhost = the URL path without
/// its leading `/`, percent-decoded (`%2f` is `/`), `/` when empty; ports
/// 5672 and 5671 by default; no user means `anonymous:anonymous`.
pub(crate) fn amqp_uri(url: &url::Url, opts: &AmqpOptions) -> Result<AMQPUri, BrokerError> {
    let scheme = match url.scheme() {
        "amqp" => AMQPScheme::AMQP,
        "amqps" => AMQPScheme::AMQPS,
        other => {
            return Err(BrokerError::Other(anyhow::anyhow!(
                "not an AMQP broker URL (scheme {other}:): {}",
                crate::config::redact_url(url)
            )))
        }
    };
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| {
        BrokerError::Other(anyhow::anyhow!(
            "broker URL has no host: {}",
            crate::config::redact_url(url)
        ))
    })?;
    let port = url.port().unwrap_or(match scheme {
        AMQPScheme::AMQP => 5672,
        AMQPScheme::AMQPS => 5671,
    });
    let username = percent_decode(url.username());
    let (username, password) = if username.is_empty() {
        ("anonymous".to_string(), "anonymous".to_string())
    } else {
        (username, percent_decode(url.password().unwrap_or("")))
    };
    let vhost = percent_decode(url.path().strip_prefix('/').unwrap_or(url.path()));
    let heartbeat = u16::try_from(opts.heartbeat.as_secs()).unwrap_or(u16::MAX);
    let timeout_ms = u64::try_from(opts.timeout.as_millis()).unwrap_or(u64::MAX);
    Ok(AMQPUri {
        scheme,
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo { username, password },
            // url keeps IPv6 literals in brackets; the socket wants them bare.
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
        },
        vhost: if vhost.is_empty() { "/".into() } else { vhost },
        query: AMQPQueryString {
            heartbeat: Some(heartbeat),
            connection_timeout: Some(timeout_ms),
            frame_max: Some(FRAME_MAX),
            ..AMQPQueryString::default()
        },
    })
}

/// `%XX` escapes to bytes, then UTF-8 (lossy: a broker name is text).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A connection to the broker, and which node of its list took it: the
/// first that answers, in the order [`nodes::order`] gives (see
/// [`nodes`]). A refusal (bad credentials, a vhost not there) is not
/// tried on the other nodes: they share their users. Each attempt is
/// bounded by `opts.timeout` (by [`nodes::PER_NODE`] at most when there
/// are several).
pub(crate) async fn connect(
    url: &url::Url,
    opts: &AmqpOptions,
) -> Result<(Connection, nodes::Node), BrokerError> {
    let list = crate::config::broker_nodes(url);
    if list.len() == 1 {
        let conn = connect_node(url, opts, opts.timeout).await?;
        return Ok((conn, nodes::Node::single()));
    }
    let key = crate::config::redact_url(url);
    let limit = opts.timeout.min(nodes::PER_NODE);
    let mut failed = Vec::new();
    for i in nodes::order(&key, list.len()) {
        let node = nodes::Node::of(&key, i, list.len());
        match connect_node(&list[i], opts, limit).await {
            Ok(conn) => {
                node.answered();
                if !failed.is_empty() {
                    tracing::warn!(
                        "connected to broker {} ({}) after: {}",
                        crate::config::redact_url(&list[i]),
                        node.position().unwrap_or_default(),
                        failed.join("; ")
                    );
                }
                return Ok((conn, node));
            }
            Err(e @ BrokerError::Other(_)) => return Err(e),
            Err(e) => {
                node.failed();
                failed.push(e.to_string());
            }
        }
    }
    Err(BrokerError::Connection(format!(
        "no node of {key} answers: {}",
        failed.join("; ")
    )))
}

/// A connection to one node, bounded by `limit`.
async fn connect_node(
    url: &url::Url,
    opts: &AmqpOptions,
    limit: Duration,
) -> Result<Connection, BrokerError> {
    let uri = amqp_uri(url, opts)?;
    let props =
        ConnectionProperties::default().with_connection_name(opts.connection_name.clone().into());
    let shown = crate::config::redact_url(url);
    match tokio::time::timeout(limit, Connection::connect_uri(uri, props)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(match classify(&e) {
            Failure::Refused(why) => BrokerError::Other(anyhow::anyhow!("{shown}: {why}")),
            _ => BrokerError::Connection(format!("cannot connect to {shown}: {e}")),
        }),
        Err(_) => Err(BrokerError::Connection(format!(
            "cannot connect to {shown}: no answer within {limit:?}"
        ))),
    }
}

/// What became of a connection that is not connected, for messages.
pub(crate) fn connection_state(conn: &Connection) -> &'static str {
    let s = conn.status();
    if s.errored() {
        "lost"
    } else if s.closing() || s.closed() {
        "closed"
    } else if s.connecting() || s.reconnecting() {
        "not established yet"
    } else {
        "not usable"
    }
}

/// Await `fut`, at most `limit`; lapin errors become [`BrokerError`]s
/// through [`classify`] (a 404 on its own is `NoExchange` of the name in
/// the broker's message).
pub(crate) async fn bounded<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = lapin::Result<T>>,
) -> Result<T, BrokerError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_broker_error(&e, what, None)),
        Err(_) => Err(BrokerError::Connection(format!(
            "{what}: no answer from the broker within {limit:?}"
        ))),
    }
}

/// What a lapin error means to a caller.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// 404: the named thing does not exist. The channel is closed.
    NotFound(String),
    /// The broker refused (403 access, 406 precondition, …): retrying the
    /// same thing will not help. The channel is closed.
    Refused(String),
    /// The connection or the channel is gone: reconnect.
    Lost(String),
}

pub(crate) fn classify(e: &lapin::Error) -> Failure {
    match e.kind() {
        ErrorKind::ProtocolError(amqp) => {
            let text = amqp.get_message().to_string();
            match amqp.kind() {
                AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => Failure::NotFound(text),
                AMQPErrorKind::Soft(
                    AMQPSoftError::ACCESSREFUSED
                    | AMQPSoftError::PRECONDITIONFAILED
                    | AMQPSoftError::RESOURCELOCKED
                    | AMQPSoftError::CONTENTTOOLARGE,
                ) => Failure::Refused(text),
                // Hard errors close the connection (320 CONNECTION_FORCED
                // by close_all_connections, 501 frame errors, …); an
                // access refused at login is reported as a hard 403.
                AMQPErrorKind::Hard(h) if text.starts_with("ACCESS_REFUSED") => {
                    Failure::Refused(format!("{text} ({h:?})"))
                }
                _ => Failure::Lost(text),
            }
        }
        _ => Failure::Lost(e.to_string()),
    }
}

/// The [`BrokerError`] for a lapin error; `exchange` is the one a 404 is
/// blamed on when the broker's text names none.
pub(crate) fn to_broker_error(e: &lapin::Error, what: &str, exchange: Option<&str>) -> BrokerError {
    match classify(e) {
        Failure::NotFound(text) => match exchange_named_in(&text).or(exchange) {
            Some(x) if text.contains("exchange") || exchange.is_some() => {
                BrokerError::NoExchange(x.to_string())
            }
            _ => BrokerError::Other(anyhow::anyhow!("{what}: {text}")),
        },
        Failure::Refused(text) if text.contains("inequivalent arg") => BrokerError::Other(
            anyhow::anyhow!(
                "{what}: {text} (the queue exists with other settings, e.g. another queueType or durable: stop the config and `pitcher cleanup` it, which deletes the queue and what it holds, or keep the old settings)"
            ),
        ),
        Failure::Refused(text) => BrokerError::Other(anyhow::anyhow!("{what}: {text}")),
        Failure::Lost(text) => BrokerError::Connection(format!("{what}: {text}")),
    }
}

/// `NOT_FOUND - no exchange 'xs_bob' in vhost '/'` → `xs_bob`.
pub(crate) fn exchange_named_in(text: &str) -> Option<&str> {
    let rest = &text[text.find("no exchange '")? + "no exchange '".len()..];
    Some(&rest[..rest.find('\'')?])
}

/// Run all of `futs` at once and return their outputs in order: the first
/// poll of each comes in order, so the frames they queue (publishes, acks)
/// keep the order of the slice. lapin resolves each send only once the io
/// thread has written it; awaited one by one, every message would cost a
/// round trip between threads.
pub(crate) async fn join_in_order<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    // Everything before `done` has its output: completion is mostly in
    // order, so a wake-up seldom polls more than the unfinished tail.
    let mut done = 0;
    std::future::poll_fn(|cx| {
        for (fut, out) in futs.iter_mut().zip(outputs.iter_mut()).skip(done) {
            if out.is_none() {
                if let std::task::Poll::Ready(v) = fut.as_mut().poll(cx) {
                    *out = Some(v);
                }
            }
        }
        while done < outputs.len() && outputs[done].is_some() {
            done += 1;
        }
        if done == outputs.len() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
