//! The flow every component runs, and one module per component.
//!
//! As in sr3, each instance loops: gather → filter (accept/reject) →
//! nodupe → work → post → ack. A message is acknowledged only once its work
//! is done, or it is safely in the on-disk retry queue.
//!
//! * [`consume`]: the loop shared by sender and subscribe (gather, filter,
//!   nodupe, work, post, ack, retry); [`deliver`]: its work phase.
//! * [`sender`]: sends files with a transport; [`subscribe`]: downloads.
//! * [`watch`]: turns file system events into announcements; [`post`]:
//!   announces named files once.
//! * [`filter`]: masks and destinations, shared by all.
//! * [`report`]: the delivery reports a consuming flow sends back, which a
//!   watch reads as receipts ([`watch::receipts`]).
//! * [`vip`]: active only while a `vip` address is on this host.
//!
//! [`Instance`] holds what every component needs: its config, its state
//! files, its counters and the stop signal.

mod announce;
pub mod autoclean;
pub mod consume;
pub mod deliver;
pub mod filter;
pub mod post;
pub mod report;
pub mod sender;
pub mod subscribe;
pub mod throttle;
pub mod vip;
pub mod watch;

use crate::broker::{self, Delivery, Outgoing, Publisher};
use crate::config::Config;
use crate::message::{Format, Message, MessageError};
use crate::state::metrics::Metrics;
use crate::state::{InstanceFiles, Paths};
use std::time::{Duration, Instant};
use tokio::sync::watch as signal;

/// One running instance of one config.
pub struct Instance {
    pub paths: Paths,
    pub cfg: Config,
    pub files: InstanceFiles,
    pub metrics: Metrics,
    stop: signal::Receiver<bool>,
    last_saved: Instant,
    /// Work counted at the last save, and whether memory was handed back
    /// since the work last moved.
    last_work: u64,
    trimmed: bool,
}

impl Instance {
    /// An instance of `cfg` numbered `instance` (0 = foreground), stopping
    /// when `stop` turns true.
    pub fn new(paths: Paths, cfg: Config, instance: u32, stop: signal::Receiver<bool>) -> Instance {
        let files = InstanceFiles::new(&paths, cfg.component, &cfg.name, instance);
        let now = now_epoch();
        let metrics = Metrics {
            pid: std::process::id(),
            started: now,
            updated: now,
            ..Metrics::default()
        };
        Instance {
            paths,
            cfg,
            files,
            metrics,
            stop,
            last_saved: Instant::now(),
            last_work: 0,
            trimmed: true,
        }
    }

    /// True once a stop was asked for.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps up to `d`, returning early (true) when a stop is asked for.
    pub async fn pause(&mut self, d: Duration) -> bool {
        if self.stopping() {
            return true;
        }
        let _ = tokio::time::timeout(d, self.stop.changed()).await;
        self.stopping()
    }

    /// Writes the counters for `status`, at most every second unless
    /// `force`.
    pub fn save_metrics(&mut self, force: bool) {
        if force || self.last_saved.elapsed() >= Duration::from_secs(1) {
            if let Some(summary) = self.metrics.tick(now_epoch()) {
                tracing::info!("{summary}");
            }
            if let Err(e) = self.metrics.save(&self.files.metrics_file()) {
                tracing::warn!(
                    "cannot write metrics {}: {e}",
                    self.files.metrics_file().display()
                );
            }
            self.last_saved = Instant::now();
            self.trim_after_burst();
        }
    }

    /// Once a burst of work is over (a second without any), hands the
    /// memory it freed back to the system. The allocator keeps freed memory
    /// of a fragmented heap for reuse: after 20,000 files at once the watch
    /// held 12 MiB it no longer used, and the next burst would not need it.
    fn trim_after_burst(&mut self) {
        let m = &self.metrics;
        let work = m.received + m.posted + m.files_done + m.failed;
        if work != self.last_work {
            self.last_work = work;
            self.trimmed = false;
        } else if !self.trimmed {
            self.trimmed = true;
            crate::state::release_free_memory();
        }
    }

    /// Records the lag of a message accepted now.
    pub fn note_lag(&mut self, msg: &Message) {
        if let Ok(t) = crate::message::timestamp::parse(&msg.pub_time) {
            let lag = t.elapsed().map(|d| d.as_secs_f64()).unwrap_or(0.0);
            self.metrics.observe_lag(lag);
        }
    }
}

pub use crate::state::now_epoch;

/// Runs the component of `inst.cfg` until a stop is asked for.
pub async fn run(inst: Instance) -> anyhow::Result<()> {
    use crate::config::Component;
    match inst.cfg.component {
        Component::Sender => sender::run(inst).await,
        Component::Subscribe => subscribe::run(inst).await,
        Component::Watch => watch::run::run(inst).await,
        other => anyhow::bail!("component {other} is not implemented by pitcher yet"),
    }
}

/// The format this config publishes in (`post_format`, v03 or v02).
pub fn post_format(cfg: &Config) -> Format {
    Format::from_name(&cfg.post_format).unwrap_or(Format::V03)
}

/// The message as this config publishes it: on post_exchange, in
/// post_format under post_topicPrefix. What v02 cannot carry is logged, one
/// line for the message.
pub fn outgoing(cfg: &Config, msg: &Message) -> Option<Outgoing> {
    let exchange = cfg.post_exchange.clone()?;
    let format = post_format(cfg);
    let e = msg.encode(format, &cfg.post_topic_prefix);
    if !e.lost.is_empty() {
        tracing::warn!(
            "post_format v02 cannot carry all of {}: {}",
            msg.url(),
            e.lost.join(", ")
        );
    }
    Some(Outgoing {
        exchange,
        topic: e.topic,
        body: e.body,
        content_type: (format != Format::V03).then(|| e.content_type.to_string()),
        headers: e.headers,
    })
}

/// Reads a delivery, v02 or v03 (see [`Message::decode`]).
///
/// A v02 delivery's body is then replaced by the v03 body of the same
/// message, since what the flow keeps of a delivery (the retry queue) is
/// v03. A v02 delivery that cannot be read gets its headers (as JSON) on a
/// second line of its body, so the copy set aside holds all of it.
pub(crate) fn decode_delivery(d: &mut Delivery) -> Result<Message, MessageError> {
    let format = Format::of_received(&d.topic, d.content_type.as_deref(), &d.body);
    let decoded = Message::decode(&d.topic, d.content_type.as_deref(), &d.body, &d.headers);
    if format == Format::V02 {
        match &decoded {
            Ok(msg) => {
                d.body = msg.to_json().into_bytes();
                d.content_type = Some(Format::V03.content_type().to_string());
                d.headers.clear();
            }
            Err(_) => {
                d.body.push(b'\n');
                d.body
                    .extend(serde_json::to_vec(&d.headers).unwrap_or_default());
            }
        }
    }
    decoded
}

/// Connects a publisher to `post_broker`, retrying with backoff (up to
/// 10 s, so a broker that comes back is used soon) until it works or a stop
/// is asked for, and declares `post_exchange`.
pub async fn connect_publisher(inst: &mut Instance) -> Option<Box<dyn Publisher>> {
    let url = inst.cfg.post_broker.clone()?;
    let exchange = inst.cfg.post_exchange.clone()?;
    let mut delay = Duration::from_millis(500);
    let mut said = false;
    loop {
        let failure = match broker::publisher(&url, &inst.paths).await {
            Ok(mut p) => match p.declare_exchange(&exchange).await {
                Ok(()) => {
                    if said {
                        tracing::info!("post_broker {} is back", crate::config::redact_url(&url));
                    }
                    return Some(p);
                }
                Err(e) => format!("cannot declare exchange {exchange}: {e}"),
            },
            Err(e) => format!(
                "cannot connect to post_broker {}: {e}",
                crate::config::redact_url(&url)
            ),
        };
        // One line per outage, not one per attempt.
        if !said {
            tracing::error!("{failure}; retrying");
            said = true;
        }
        // Waiting is not hanging: keep the metrics fresh for `sanity`.
        inst.metrics.connected = false;
        inst.save_metrics(false);
        if inst.pause(delay).await {
            return None;
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Component;

    fn cfg(format: &str, prefix: &str) -> Config {
        let mut c = Config::new(Component::Watch, "t");
        c.post_exchange = Some("xs_u".into());
        c.post_format = format.into();
        c.post_topic_prefix = prefix.into();
        c
    }

    #[test]
    fn outgoing_follows_post_format() {
        let m = Message::for_link("file:/h", "a b/l", "t");
        let v03 = outgoing(&cfg("v03", "v03"), &m).unwrap();
        assert_eq!(
            v03,
            Outgoing::new("xs_u", "v03.a b", m.to_json().into_bytes())
        );
        let v02 = outgoing(&cfg("v02", "v02.post"), &m).unwrap();
        assert_eq!(v02.topic, "v02.post.a b");
        assert_eq!(v02.content_type.as_deref(), Some("text/plain"));
        assert!(String::from_utf8_lossy(&v02.body).ends_with(" file:/h a%20b/l"));
        assert_eq!(v02.headers["link"], "t");
        assert!(v02.headers["sum"].starts_with("L,"));
    }

    #[test]
    fn a_v02_delivery_is_read_and_kept_as_v03() {
        let m = Message::for_remove("file:/h", "d/f");
        let o = outgoing(&cfg("v02", "v02.post"), &m).unwrap();
        let mut d = Delivery {
            id: 1,
            exchange: o.exchange,
            topic: o.topic,
            body: o.body,
            content_type: None,
            headers: o.headers,
            redelivered: false,
        };
        assert_eq!(decode_delivery(&mut d).unwrap(), m);
        assert_eq!(d.body, m.to_json().into_bytes());
        // A v03 one is left as it came.
        let before = d.clone();
        decode_delivery(&mut d).unwrap();
        assert_eq!(d, before);
        // A bad v02 one keeps its headers for the copy set aside.
        d.content_type = None;
        d.body = b"20261129014903 two".to_vec();
        let err = decode_delivery(&mut d).unwrap_err().to_string();
        assert!(err.starts_with("bad v02 message:"), "{err}");
        assert!(
            d.body.ends_with(b" two\n{}"),
            "{:?}",
            String::from_utf8_lossy(&d.body)
        );
    }
}
