//! The MQTT broker `mqtt://user:pass@host:port` (`mqtts://` over TLS), as
//! sr3's MQTT moth (sarracenia/moth/mqtt.py) uses one, so that Python sr3
//! and pitcher read each other's messages through the same broker.
//!
//! What sr3 does, and so what we do:
//! * MQTT 5 only (shared subscriptions need it), QoS 1 both ways, v03 JSON
//!   bodies with the properties content type `application/json` and payload
//!   format indicator 1 (UTF-8). sr3 reads the content type to decode, so a
//!   message without it is "malformed" there.
//! * No exchanges: the exchange is the first topic level, then topicPrefix
//!   and relPath's directories, one level each: `xs_guest/v03/cap/sub dir`
//!   (see [`publish_topic`]). `#` and `+` in names are sent as `%23` and `%2B`.
//! * A queue is a shared subscription, `$share/<queue>/<exchange>/v03/#`,
//!   so the instances of one config split the messages. Each instance has
//!   a persistent session (clean start off, session expiry = `expire`) under
//!   the client id `<queue>_iNN`, so what arrives while it is down waits in
//!   the broker for it.
//! * `exchangeSplit` needs nothing here: the flow picks an exchange per
//!   message, which is just the first topic level.
//!
//! Where MQTT differs from the trait's AMQP-shaped contract:
//! * publishing waits for every PUBACK of the batch; a PUBACK saying "no
//!   matching subscribers" (0x10, which Mosquitto sends) is
//!   [`BrokerError::Unroutable`],
//!   as on AMQP. The others of the batch were delivered, so a caller
//!   retrying the whole batch sends them twice (at-least-once). A broker
//!   that never sends 0x10 drops such messages silently.
//! * a shared subscription hands each message to one member, round robin,
//!   even to a member that is offline: that share then waits in the
//!   member's session until the same client id comes back. Client ids must
//!   therefore be stable across restarts: `NN` is the lowest instance slot
//!   free on this host (a lock file under the state directory), which is
//!   the slot of an instance that died. Lowering `instances` strands the
//!   share queued for the instances removed, until their sessions expire.
//! * requeue cannot give a message back to an MQTT broker: requeued
//!   deliveries stay with this consumer, unacknowledged, and are handed
//!   out again by the next `get` (flagged redelivered). If the consumer
//!   dies, the broker sends every unacknowledged message again to the next
//!   connection with its client id.
//! * overlapping bindings deliver a message once per matching subscription
//!   (AMQP delivers it once per queue); nodupe absorbs the copies.
//! * the queue depth is unknown (`queue_depth` is `None`), `message_ttl`
//!   has no MQTT counterpart for subscriptions, and `durable` is implied by
//!   the persistent session.
//! * Mosquitto keeps at most `max_queued_messages` (default 1000) per
//!   offline or busy client and drops the rest: raise it (0 = no limit) on
//!   a broker that must hold a backlog.
//! * an ack is never confirmed by an MQTT broker. `ack` returns once the
//!   PUBACKs are written to the connection; a consumer reopened at once
//!   under the same client id takes the session over, and the broker may
//!   drop the old connection before reading them: those come again.
//!
//! Submodules: `topic` (the topic mapping), `publish`, `consume` (the
//! consumer), `session` (the task keeping an instance's session connected),
//! `slot` (which `<queue>_iNN` this process is).

mod consume;
mod publish;
mod session;
mod slot;
mod topic;

pub use consume::{open_consumer, MqttConsumer};
pub use publish::{open_publisher, MqttPublisher};
pub use topic::{delivery_topic, publish_topic, subscription_filter};

use crate::broker::BrokerError;
use crate::config::redact_url;
use rumqttc::v5::MqttOptions;
use std::time::Duration;

/// sr3 declares its v03 bodies with this content type (postformat/v03.py).
pub const CONTENT_TYPE: &str = "application/json";

/// Keepalive pings; a dead connection is noticed within 1.5 times this.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// Seconds to wait for TCP, TLS and the CONNACK of one connection attempt.
const CONNECT_TIMEOUT_S: u64 = 10;

/// The largest packet we accept from the broker. rumqttc's default, 10 KiB,
/// is smaller than a v03 message with inline content may be; the broker
/// must not send us bigger ones (it drops them instead).
const MAX_PACKET: u32 = 16 * 1024 * 1024;

/// How to reach one broker: host, port, TLS, credentials.
#[derive(Clone)]
pub(crate) struct Settings {
    host: String,
    port: u16,
    tls: bool,
    credentials: Option<(String, String)>,
    /// The URL with its password hidden, for messages.
    shown: String,
}

impl Settings {
    /// Reads `mqtt://user:pass@host:port` (1883) or `mqtts://…` (8883).
    pub(crate) fn from_url(url: &url::Url) -> Result<Settings, BrokerError> {
        let shown = redact_url(url);
        let tls = match url.scheme() {
            "mqtt" => false,
            "mqtts" => true,
            other => {
                return Err(BrokerError::Other(anyhow::anyhow!(
                    "'{other}:' is not an MQTT URL ({shown})"
                )))
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| BrokerError::Other(anyhow::anyhow!("no host in broker URL {shown}")))?;
        // url keeps IPv6 literals bracketed; the socket wants them bare.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let credentials = if url.username().is_empty() {
            None
        } else {
            Some((
                percent_decode(url.username()),
                percent_decode(url.password().unwrap_or("")),
            ))
        };
        Ok(Settings {
            host,
            port: url.port().unwrap_or(if tls { 8883 } else { 1883 }),
            tls,
            credentials,
            shown,
        })
    }

    /// The URL, password hidden.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// Connection options for `client_id`, before the session settings.
    pub(crate) fn options(&self, client_id: &str) -> Result<MqttOptions, BrokerError> {
        let mut o = MqttOptions::new(client_id, self.host.clone(), self.port);
        o.set_keep_alive(KEEP_ALIVE)
            .set_connection_timeout(CONNECT_TIMEOUT_S)
            .set_max_packet_size(Some(MAX_PACKET));
        if let Some((user, pass)) = &self.credentials {
            o.set_credentials(user.clone(), pass.clone());
        }
        if self.tls {
            o.set_transport(tls_transport(&self.shown)?);
        }
        Ok(o)
    }
}

/// TLS with the system's root certificates. rumqttc builds that config
/// with panics on unreadable certificates or a missing crypto provider;
/// those become an error here instead of killing the instance.
fn tls_transport(shown: &str) -> Result<rumqttc::Transport, BrokerError> {
    std::panic::catch_unwind(rumqttc::Transport::tls_with_default_config).map_err(|_| {
        BrokerError::Other(anyhow::anyhow!(
            "cannot set up TLS for {shown}: the system's root certificates could not be loaded"
        ))
    })
}

/// `%XX` escapes decoded, as sr3 unquotes URL passwords; invalid escapes
/// and invalid UTF-8 are kept as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> Result<Settings, BrokerError> {
        Settings::from_url(&url::Url::parse(url).unwrap())
    }

    #[test]
    fn ports_default_to_1883_and_8883() {
        let s = settings("mqtt://u:p@broker.example").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("broker.example", 1883, false)
        );
        let s = settings("mqtts://u:p@broker.example").unwrap();
        assert_eq!((s.port, s.tls), (8883, true));
        assert_eq!(settings("mqtt://h:1999").unwrap().port, 1999);
    }

    #[test]
    fn credentials_are_percent_decoded_and_never_shown() {
        let s = settings("mqtt://bob:p%40ss%2Fw@h").unwrap();
        assert_eq!(
            s.credentials,
            Some(("bob".to_string(), "p@ss/w".to_string()))
        );
        assert!(!s.shown().contains("p%40ss"), "{}", s.shown());
        assert!(settings("mqtt://h").unwrap().credentials.is_none());
    }

    #[test]
    fn other_schemes_and_missing_hosts_are_errors() {
        assert!(settings("amqp://u:p@h").is_err());
        assert!(settings("mqtt:///x").is_err());
    }

    #[test]
    fn bad_percent_escapes_are_kept() {
        assert_eq!(percent_decode("a%zzb%4"), "a%zzb%4");
        assert_eq!(percent_decode("%41%42"), "AB");
    }
}
