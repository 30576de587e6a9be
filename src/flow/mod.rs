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
pub mod sender;
pub mod subscribe;
pub mod throttle;
pub mod vip;
pub mod watch;

use crate::broker::{self, BrokerError, Outgoing, Publisher};
use crate::config::Config;
use crate::message::Message;
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

/// Seconds since the epoch.
pub fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

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

/// The exchange and topic a message is published with by this config.
pub fn outgoing(cfg: &Config, msg: &Message) -> Option<Outgoing> {
    Some(Outgoing {
        exchange: cfg.post_exchange.clone()?,
        topic: msg.topic(&cfg.post_topic_prefix),
        body: msg.to_json().into_bytes(),
    })
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

/// True for errors that say "try again later" rather than "never".
pub fn is_transient(e: &BrokerError) -> bool {
    !matches!(e, BrokerError::Other(_))
}
