//! Delivery receipts: the watch keeps every file it announced pending until
//! a receiver reports it done, and announces again what never arrived.
//!
//! A broker that accepts an announcement and drops it later (Mosquitto's
//! `max_queued_messages` for an offline session, a RabbitMQ queue's length
//! limit, TTL or `expire`, an operator's purge) loses it without a word;
//! the hop-by-hop confirms cannot tell. So the receivers (senders and
//! subscribes, `report on`) report each message they finished
//! ([`crate::flow::report`]) on `report_exchange` of the watch's
//! post_broker, and the watch reads those reports through a durable queue
//! of its own as *receipts*:
//!
//! * after each publish, one pending row per expected receiver: those of
//!   `receiptsFrom` if set, else every receiver heard from, else one row
//!   for any receiver (cleared by the first receipt from anyone);
//! * a receipt (any report code) from receiver R for this watch's baseUrl
//!   and a relPath, of a message not older than the row's first pubTime,
//!   clears (relPath, R) and (relPath, any); an R not heard from before is
//!   remembered (one line), unless receiptsFrom fixes the list;
//! * a sweep every few seconds announces again each row past its time
//!   whose path is still what was announced (same size and mtime, still a
//!   directory, the same link, still absent), if some receiver is known:
//!   the same message with a new pubTime (a removal keeps its own: it is
//!   what nodupe and autoclean know it by), past the watch's nodupe; the
//!   next time backs off (receiptTimeout × 2^tries, at most an hour). A
//!   row whose path changed is dropped: the change was announced already;
//! * a receiver silent for 24 h is forgotten with its rows (one line); so
//!   are rows for any receiver older than that.
//!
//! A receiver's nodupe lets a re-announcement through when it never got
//! the file, and drops it (reporting 304) when only the receipt was lost:
//! a lost receipt costs at most one duplicate transfer.

use super::inventory::{Change, Kind};
use crate::broker::{self, BrokerError, Consumer, Outgoing, Publisher, QueueSpec};
use crate::config::{Binding, Config, NodupeBasis};
use crate::flow::Instance;
use crate::message::Message;
use crate::state::receipts::{self as store, Announced, Expect, ANY};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

/// How often rows past their time are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// How often silent receivers are looked for.
const FORGET_EVERY: Duration = Duration::from_secs(60);
/// A receiver silent this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The longest wait between two announcements of one file.
const BACKOFF_MAX: Duration = Duration::from_secs(3600);
/// Rows announced again per sweep, at most.
const SWEEP_LIMIT: usize = 5000;
/// Receipts read per batch, and batches per pass of the watch's loop.
const READ_BATCH: usize = 1000;
const READ_BATCHES: usize = 10;
/// How long the receipts queue outlives a stopped watch (when `expire`
/// does not say).
const QUEUE_EXPIRE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The receiver of a report without `reporter` (sr3's reports).
const UNNAMED: &str = "unnamed";

/// What a receipt says: the fields of a report the watch reads.
#[derive(Debug, serde::Deserialize)]
struct Receipt {
    #[serde(rename = "pubTime")]
    pub_time: String,
    #[serde(rename = "baseUrl")]
    base_url: String,
    #[serde(rename = "relPath")]
    rel_path: String,
    /// Whether it has a `report` at all.
    #[serde(default, deserialize_with = "present")]
    report: bool,
    #[serde(default)]
    reporter: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    <serde::de::IgnoredAny as serde::Deserialize>::deserialize(d).map(|_| true)
}

impl Receipt {
    /// The receipt in a delivery: v03 read for the few fields it needs
    /// (most of a message is not), anything else through the full decoder.
    fn of(d: &mut crate::broker::Delivery) -> Option<Receipt> {
        use serde::Deserialize;
        if let Ok(r) = Receipt::deserialize(&mut serde_json::Deserializer::from_slice(&d.body)) {
            return Some(Receipt {
                rel_path: r.rel_path.trim_start_matches('/').to_string(),
                ..r
            });
        }
        let m = crate::flow::decode_delivery(d).ok()?;
        Some(Receipt {
            report: m.extra.contains_key("report"),
            reporter: m
                .extra
                .get("reporter")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            pub_time: m.pub_time,
            base_url: m.base_url,
            rel_path: m.rel_path,
        })
    }
}

/// The receipts of one watch instance.
pub struct Receipts {
    store: store::Receipts,
    paths: crate::state::Paths,
    timeout: Duration,
    base_url: String,
    url: url::Url,
    exchange: String,
    spec: QueueSpec,
    /// receiptsFrom: when set, the only receivers.
    listed: Vec<String>,
    /// Receivers heard from, with their last receipt (epoch seconds).
    known: BTreeMap<String, f64>,
    consumer: Option<Box<dyn Consumer>>,
    connect_at: Instant,
    delay: Duration,
    /// Whether the current outage of the receipts queue was logged.
    said: bool,
    exchange_declared: bool,
    next_sweep: Instant,
    next_forget: Instant,
}

/// Seconds since the epoch of a pubTime.
fn epoch(pub_time: &str) -> Option<f64> {
    let t = crate::message::timestamp::parse(pub_time).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64())
}

/// The wait before the next announcement of a row announced `tries` times
/// again already.
fn backoff(timeout: Duration, tries: u32) -> Duration {
    timeout
        .checked_mul(1u32 << tries.min(16))
        .unwrap_or(BACKOFF_MAX)
        .min(BACKOFF_MAX)
}

/// What to wait receipts for, of `msg` published as `o` after `changes`.
pub(super) fn announced_of(msg: &Message, changes: &[Change], o: &Outgoing) -> Option<Announced> {
    let pub_time = epoch(&msg.pub_time)?;
    let (path, expect) = if msg.file_op.as_ref().is_some_and(|op| op.remove) {
        let p = changes.iter().rev().find_map(|c| match c {
            Change::Remove(p) => Some(p.clone()),
            Change::Put(..) => None,
        })?;
        (p, Expect::Absent)
    } else {
        let (p, seen) = changes.iter().rev().find_map(|c| match c {
            Change::Put(p, s) => Some((p.clone(), *s)),
            Change::Remove(_) => None,
        })?;
        let expect = match seen.kind {
            Kind::Dir => Expect::Dir,
            Kind::Link => Expect::Link(msg.file_op.as_ref()?.link.clone()?),
            Kind::File => Expect::File {
                size: seen.size,
                mtime_ns: seen.mtime_ns,
            },
        };
        (p, expect)
    };
    let v03 = o.content_type.is_none() && o.headers.is_empty();
    Some(Announced {
        rel_path: msg.rel_path.clone(),
        body: if v03 {
            o.body.clone()
        } else {
            msg.to_json().into_bytes()
        },
        topic: o.topic.clone(),
        content: crate::state::nodupe::entry_for(msg, NodupeBasis::Path).key,
        pub_time,
        path,
        expect,
    })
}

/// The receipts queue of a watch, named as other queues are and kept in
/// its state directory: `q_<user>.watch.<config>.receipts.<queueShare>`.
fn queue_name(state_dir: &Path, cfg: &Config, user: &str) -> std::io::Result<String> {
    if let Some(q) = &cfg.queue_name {
        return Ok(format!("{q}.receipts"));
    }
    let file = state_dir.join(format!("watch.{}.{user}.receipts.qname", cfg.name));
    if let Ok(name) = std::fs::read_to_string(&file) {
        if !name.trim().is_empty() {
            return Ok(name.trim().to_string());
        }
    }
    let share = crate::state::expand_share(&cfg.queue_share);
    let name = format!("q_{user}.watch.{}.receipts.{share}", cfg.name);
    std::fs::create_dir_all(state_dir)?;
    crate::state::write_atomic(&file, name.as_bytes())?;
    Ok(name)
}

impl Receipts {
    /// The receipts of the watch `cfg`, `None` when they are off
    /// (`receiptTimeout 0`, whose store is then removed).
    pub fn open(
        cfg: &Config,
        paths: &crate::state::Paths,
        state_dir: &Path,
    ) -> anyhow::Result<Option<Receipts>> {
        let db = store::db_path(state_dir);
        let (Some(url), Some(exchange), Some(base_url)) = (
            cfg.post_broker.clone(),
            cfg.report_exchange.clone(),
            cfg.post_base_url.clone(),
        ) else {
            return Ok(None);
        };
        if cfg.receipt_timeout.is_zero() {
            if let Some(s) = store::summary(&db).filter(|s| s.files > 0) {
                tracing::info!(
                    "receipts are off (receiptTimeout 0): {} files no longer wait for one",
                    s.files
                );
            }
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            return Ok(None);
        }
        let mut st = store::Receipts::open(&db)
            .map_err(|e| anyhow::anyhow!("opening the receipts store {}: {e}", db.display()))?;
        let known: BTreeMap<String, f64> = st.receivers()?.into_iter().collect();
        let listed = cfg.receipts_from.clone();
        let expected: Vec<String> = if listed.is_empty() {
            known.keys().cloned().collect()
        } else {
            listed.clone()
        };
        let gone = st.keep_only(&expected)?;
        if gone > 0 {
            tracing::info!(
                "{gone} receipts no longer awaited: their receivers are not expected any more"
            );
        }
        let user = match url.username() {
            "" => "anonymous",
            u => u,
        };
        let spec = QueueSpec {
            name: queue_name(state_dir, cfg, user)?,
            bindings: vec![Binding {
                exchange: exchange.clone(),
                topic: format!("{}.#", cfg.report_topic_prefix),
            }],
            durable: cfg.durable,
            expire: Some(cfg.expire.unwrap_or(QUEUE_EXPIRE)),
            message_ttl: None,
            prefetch: READ_BATCH as u32,
            queue_type: cfg.queue_type,
        };
        let s = st.summary()?;
        tracing::info!(
            "receipts: read from queue {} on exchange {exchange}; expected from {}; {} files wait for one",
            spec.name,
            if !listed.is_empty() {
                listed.join(", ")
            } else if !known.is_empty() {
                known.keys().cloned().collect::<Vec<_>>().join(", ")
            } else {
                "whoever reports first".to_string()
            },
            s.files
        );
        let now = Instant::now();
        Ok(Some(Receipts {
            store: st,
            paths: paths.clone(),
            timeout: cfg.receipt_timeout,
            base_url,
            url,
            exchange,
            spec,
            listed,
            known,
            consumer: None,
            connect_at: now,
            delay: Duration::from_millis(500),
            said: false,
            exchange_declared: false,
            next_sweep: now,
            next_forget: now,
        }))
    }

    /// The receivers a new announcement waits for.
    fn expected(&self) -> Vec<String> {
        if !self.listed.is_empty() {
            self.listed.clone()
        } else if !self.known.is_empty() {
            self.known.keys().cloned().collect()
        } else {
            vec![ANY.to_string()]
        }
    }

    /// Announcements were published: they wait for their receipts.
    pub fn announced(&mut self, items: Vec<Announced>) {
        let receivers = self.expected();
        if let Err(e) = self.store.expect(&items, &receivers, self.timeout) {
            tracing::error!("receipts store: {e}");
        }
    }

    /// One turn of the watch's loop: reads what receipts came, announces
    /// again what is past its time, forgets silent receivers.
    pub async fn tick(&mut self, inst: &mut Instance, publisher: &mut Option<Box<dyn Publisher>>) {
        self.read(inst, publisher).await;
        let now = Instant::now();
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_EVERY;
            if let Some(p) = publisher.as_mut() {
                if let Err(e) = self.sweep(inst, p.as_mut()).await {
                    tracing::error!("announcing again what has no receipt: {e}; will retry");
                    *publisher = None;
                }
            }
        }
        if now >= self.next_forget {
            self.next_forget = now + FORGET_EVERY;
            self.forget();
        }
    }

    /// Connects the receipts queue when it is time to, and reads it.
    async fn read(&mut self, inst: &mut Instance, publisher: &mut Option<Box<dyn Publisher>>) {
        if self.consumer.is_none() {
            if Instant::now() < self.connect_at {
                return;
            }
            match self.connect(publisher).await {
                Ok(c) => {
                    if self.said {
                        tracing::info!("receipts: queue {} bound; reading", self.spec.name);
                    }
                    self.said = false;
                    self.delay = Duration::from_millis(500);
                    self.consumer = Some(c);
                }
                Err(e) => {
                    if !self.said {
                        tracing::warn!(
                            "receipts: cannot read queue {} yet: {e}; retrying (files wait for their receipts meanwhile)",
                            self.spec.name
                        );
                        self.said = true;
                    }
                    self.connect_at = Instant::now() + self.delay;
                    self.delay = (self.delay * 2).min(Duration::from_secs(30));
                    return;
                }
            }
        }
        for _ in 0..READ_BATCHES {
            let Some(c) = self.consumer.as_mut() else {
                return;
            };
            let mut ds = match c.get(READ_BATCH, Duration::from_millis(1)).await {
                Ok(ds) => ds,
                Err(e) => {
                    tracing::warn!(
                        "receipts: reading queue {}: {e}; reconnecting",
                        self.spec.name
                    );
                    self.said = true;
                    self.consumer = None;
                    self.connect_at = Instant::now() + self.delay;
                    return;
                }
            };
            if ds.is_empty() {
                return;
            }
            let ids: Vec<u64> = ds.iter().map(|d| d.id).collect();
            let full = ds.len() == READ_BATCH;
            let receipts: Vec<Receipt> = ds.iter_mut().filter_map(Receipt::of).collect();
            self.receipts(inst, receipts);
            if let Some(c) = self.consumer.as_mut() {
                if let Err(e) = c.ack(&ids).await {
                    tracing::debug!("receipts: ack: {e}");
                }
            }
            if !full {
                return;
            }
        }
    }

    async fn connect(
        &mut self,
        publisher: &mut Option<Box<dyn Publisher>>,
    ) -> Result<Box<dyn Consumer>, BrokerError> {
        // A consumer never declares exchanges: the watch's publisher makes
        // the one its receivers report to, so the queue can be bound.
        if !self.exchange_declared {
            let Some(p) = publisher.as_mut() else {
                return Err(BrokerError::Connection("post_broker not connected".into()));
            };
            match p.declare_exchange(&self.exchange).await {
                Ok(()) => {}
                Err(e @ BrokerError::Connection(_)) => return Err(e),
                // Not allowed to declare it, or declared otherwise: bind to
                // it as it is.
                Err(e) => tracing::debug!("cannot declare exchange {}: {e}", self.exchange),
            }
            self.exchange_declared = true;
        }
        let mut c = broker::consumer(&self.url, &self.paths, &self.spec.name).await?;
        c.declare_queue(&self.spec).await?;
        Ok(c)
    }

    /// Applies a batch of receipts.
    fn receipts(&mut self, inst: &mut Instance, msgs: Vec<Receipt>) {
        let now = crate::flow::now_epoch();
        let mut heard: HashMap<String, f64> = HashMap::new();
        let mut cleared = 0usize;
        let base_url = self.base_url.clone();
        let listed = self.listed.clone();
        self.store.together(|st| {
            for m in msgs {
                if m.base_url != base_url || !m.report {
                    continue; // another source's report, or not a report
                }
                let reporter = m.reporter.unwrap_or_else(|| UNNAMED.to_string());
                let Some(pub_time) = epoch(&m.pub_time) else {
                    continue;
                };
                match st.clear(&m.rel_path, &reporter, pub_time) {
                    Ok(n) => cleared += n,
                    Err(e) => tracing::error!("receipts store: {e}"),
                }
                if listed.is_empty() || listed.contains(&reporter) {
                    heard.insert(reporter, now);
                }
            }
        });
        inst.metrics.last_message = now;
        if cleared > 0 {
            tracing::debug!("receipts: {cleared} cleared");
        }
        for (r, at) in heard {
            let previous = self.known.get(&r).copied();
            if previous.is_none() && self.listed.is_empty() {
                tracing::info!("receipts now expected from {r}");
            }
            // Heard from for the first time, or again after a silence (it
            // was stopped, say): what it holds still comes through now, so
            // its files (and those any receiver may confirm) get a whole
            // receiptTimeout before they are announced again.
            let timeout = self.timeout.as_secs_f64();
            if previous.is_none_or(|p| now - p > timeout) {
                if let Err(e) = self.store.due_at(&r, now + timeout) {
                    tracing::error!("receipts store: {e}");
                }
            }
            self.known.insert(r.clone(), at);
            if let Err(e) = self.store.heard(&r, at) {
                tracing::error!("receipts store: {e}");
            }
        }
    }

    /// Announces again what is past its time and unchanged; drops what
    /// changed.
    async fn sweep(
        &mut self,
        inst: &mut Instance,
        p: &mut dyn Publisher,
    ) -> Result<(), BrokerError> {
        if self.known.is_empty() && self.listed.is_empty() {
            return Ok(()); // nobody to announce it again for
        }
        let due = match self.store.due(SWEEP_LIMIT, true) {
            Ok(d) if !d.is_empty() => d,
            Ok(_) => return Ok(()),
            Err(e) => {
                tracing::error!("receipts store: {e}");
                return Ok(());
            }
        };
        let now = crate::flow::now_epoch();
        let cfg = &inst.cfg;
        let mut out: Vec<Outgoing> = Vec::new();
        let mut again: Vec<(String, String, u32)> = Vec::new();
        let mut later: Vec<(String, String, u32)> = Vec::new();
        let mut dropped: Vec<(String, String)> = Vec::new();
        let mut sent: HashMap<String, ()> = HashMap::new();
        let mut oldest = now;
        for d in due {
            if !d.expect.holds_at(&d.path) {
                dropped.push((d.rel_path, d.receiver));
                continue;
            }
            // Announced again already, and its receiver silent since: it
            // is away (and may hold the file), not losing it; one more copy
            // would only wait beside the first. Heard from again, it gets
            // its time (see `receipts`).
            if d.tries > 0 && !self.heard_since(&d.receiver, d.last_sent) {
                later.push((d.rel_path, d.receiver, d.tries));
                continue;
            }
            if !sent.contains_key(&d.rel_path) {
                let Ok(mut msg) = Message::from_json(&d.body) else {
                    dropped.push((d.rel_path, d.receiver));
                    continue;
                };
                if !msg.file_op.as_ref().is_some_and(|o| o.remove) {
                    msg.pub_time = crate::message::timestamp::now();
                }
                let Some(o) = crate::flow::outgoing(cfg, &msg) else {
                    continue;
                };
                out.push(o);
                sent.insert(d.rel_path.clone(), ());
                oldest = oldest.min(d.announced);
            }
            again.push((d.rel_path, d.receiver, d.tries + 1));
        }
        if !dropped.is_empty() {
            tracing::info!(
                "receipts: {} files changed or went since announced: no longer waiting for their receipt",
                dropped.len()
            );
            if let Err(e) = self.store.drop_rows(&dropped) {
                tracing::error!("receipts store: {e}");
            }
        }
        let timeout = self.timeout;
        if !later.is_empty() {
            if let Err(e) = self.store.put_off(&later, |tries| backoff(timeout, tries)) {
                tracing::error!("receipts store: {e}");
            }
        }
        if out.is_empty() {
            return Ok(());
        }
        for chunk in out.chunks(cfg.batch.max(1) * 4) {
            match p.publish(chunk).await {
                // Published where queues are bound; a receiver whose queue
                // is gone gets the next try.
                Ok(()) | Err(BrokerError::Unroutable { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        inst.metrics.posted += out.len() as u64;
        tracing::warn!(
            "re-announced {} files without a receipt after receiptTimeout {}s (oldest announced {:.0}s ago)",
            out.len(),
            self.timeout.as_secs(),
            (now - oldest).max(0.0)
        );
        if let Err(e) = self
            .store
            .announced_again(&again, |tries| backoff(timeout, tries))
        {
            tracing::error!("receipts store: {e}");
        }
        Ok(())
    }

    /// Whether `receiver` (any receiver, for [`ANY`]) sent a receipt after
    /// `t`.
    fn heard_since(&self, receiver: &str, t: f64) -> bool {
        if receiver == ANY {
            self.known.values().any(|last| *last > t)
        } else {
            self.known.get(receiver).is_some_and(|last| *last > t)
        }
    }

    /// Forgets receivers silent for a day, and gives up rows for any
    /// receiver that old.
    fn forget(&mut self) {
        let cutoff = crate::flow::now_epoch() - FORGET_AFTER.as_secs_f64();
        if self.listed.is_empty() {
            let silent: Vec<String> = self
                .known
                .iter()
                .filter(|(_, last)| **last < cutoff)
                .map(|(r, _)| r.clone())
                .collect();
            for r in silent {
                match self.store.forget(&r) {
                    Ok(n) => tracing::warn!(
                        "receipts: no receipt from {r} for {}h: forgotten; {n} files no longer wait for its receipt",
                        FORGET_AFTER.as_secs() / 3600
                    ),
                    Err(e) => tracing::error!("receipts store: {e}"),
                }
                self.known.remove(&r);
            }
        }
        match self.store.drop_any_before(cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                "receipts: {n} files announced over {}h ago got no receipt from any receiver: no longer waiting (receivers send receipts with `report on`, pitcher's default; sr3's senders do not report by default)",
                FORGET_AFTER.as_secs() / 3600
            ),
            Err(e) => tracing::error!("receipts store: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_is_read_from_a_report() {
        let m = Message::for_remove("file:/hot", "a/b");
        let o = crate::flow::report::report_message(
            "xr",
            "v03",
            "sender/s",
            crate::flow::report::Report::new(m.clone(), crate::flow::report::Code::Done, "ok"),
        );
        let mut d = crate::broker::Delivery {
            id: 1,
            exchange: o.exchange,
            topic: o.topic,
            body: o.body,
            content_type: None,
            headers: Default::default(),
            redelivered: false,
        };
        let r = Receipt::of(&mut d).unwrap();
        assert_eq!(
            (
                r.pub_time.as_str(),
                r.base_url.as_str(),
                r.rel_path.as_str()
            ),
            (m.pub_time.as_str(), "file:/hot", "a/b")
        );
        assert!(r.report);
        assert_eq!(r.reporter.as_deref(), Some("sender/s"));
        // A plain announcement is no receipt.
        d.body = m.to_json().into_bytes();
        let r = Receipt::of(&mut d).unwrap();
        assert!(!r.report && r.reporter.is_none());
    }

    #[test]
    fn the_wait_doubles_per_try_up_to_an_hour() {
        let t = Duration::from_secs(300);
        assert_eq!(backoff(t, 0), t);
        assert_eq!(backoff(t, 1), Duration::from_secs(600));
        assert_eq!(backoff(t, 3), Duration::from_secs(2400));
        assert_eq!(backoff(t, 4), BACKOFF_MAX);
        assert_eq!(backoff(t, 40), BACKOFF_MAX);
    }
}
