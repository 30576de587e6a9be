//! Delivery reports of the consuming flows (`report`, on by default for
//! sender and subscribe): once a message's work is finished, the message
//! goes back on `report_exchange` of `report_broker` with what became of it,
//! as sr3's report callback sends it (sarracenia/flowcb/report.py):
//!
//! ```text
//! { …the message as received…,
//!   "report": {"code": 201, "timeCompleted": "20260101T000000.123", "message": "file sent"},
//!   "reporter": "sender/to_hpfx" }
//! ```
//!
//! under the topic `<report_topicPrefix>.<relPath dirs>`. `reporter` (pitcher's
//! own field) names the config, not the instance nor the host: the instances
//! of one config, wherever they run, are one receiver to the watch that
//! reads these reports as delivery receipts ([`super::watch::receipts`]).
//!
//! Codes, from sr3's `known_report_codes`: 201 done (sent, downloaded, a
//! file operation applied); 304 nothing to do (a duplicate nodupe dropped,
//! an autoclean removal not passed on, an event kind that is off); 404 no
//! mask accepts it; 422 refused because no path beneath the destination can
//! hold it; 499 failed for good (refused by the destination, given up after
//! retryCountMax, expired past retry_ttl). A message waiting in the retry
//! queue is reported only once it is finally done.
//!
//! Reports are best effort and never hold a delivery up: each pass hands
//! its reports to a task of their own, with its own broker connection,
//! which publishes them without routing checks (an exchange nobody reads
//! is no error), non-persistent on AMQP, keeps a few thousand in memory
//! while the broker is away and drops the rest, with one log line per
//! outage. They are never kept on disk: a report lost costs the watch one
//! more announcement, which nodupe answers with a 304.

use crate::broker::{self, BrokerError, Outgoing, Publisher};
use crate::config::Config;
use crate::message::{Format, Message};
use crate::state::Paths;
use serde_json::Value;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Reports kept in memory while the report broker cannot take them.
const KEEP: usize = 5000;
/// Passes' worth of reports that may wait for the task.
const QUEUED_PASSES: usize = 64;
/// Reports per publish (one confirm round trip each).
const CHUNK: usize = 200;
/// How long a stopping flow waits for its last reports to go out.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 201: delivered, downloaded, or its file operation applied.
    Done,
    /// 304: nothing to do (duplicate, autoclean echo, event kind off).
    NotModified,
    /// 404: no mask accepts it.
    NoMatch,
    /// 422: refused: no path beneath the destination can hold it.
    Unplaceable,
    /// 499: failed for good.
    Failed,
}

impl Code {
    pub fn number(self) -> u16 {
        match self {
            Code::Done => 201,
            Code::NotModified => 304,
            Code::NoMatch => 404,
            Code::Unplaceable => 422,
            Code::Failed => 499,
        }
    }
}

/// A report to send once the pass is over.
#[derive(Debug, Clone)]
pub struct Report {
    pub msg: Message,
    pub code: Code,
    pub text: String,
}

impl Report {
    pub fn new(msg: Message, code: Code, text: impl Into<String>) -> Report {
        Report {
            msg,
            code,
            text: text.into(),
        }
    }
}

/// The reporting side of one consuming instance.
pub struct Reporter {
    exchange: String,
    prefix: String,
    /// `component/config`.
    name: String,
    tx: Option<mpsc::Sender<Vec<Outgoing>>>,
    task: tokio::task::JoinHandle<()>,
    /// Whether reports were dropped because the task fell behind (said
    /// once until it catches up).
    behind: bool,
}

impl Reporter {
    /// The reporter of `cfg`, when it reports (`report on` and a report
    /// broker); its task starts at once.
    pub fn start(cfg: &Config, paths: &Paths) -> Option<Reporter> {
        if !cfg.report {
            return None;
        }
        let url = cfg.report_broker.clone()?;
        let exchange = cfg.report_exchange.clone()?;
        let (tx, rx) = mpsc::channel(QUEUED_PASSES);
        let task = tokio::spawn(publish_reports(url, paths.clone(), exchange.clone(), rx));
        Some(Reporter {
            exchange,
            prefix: cfg.report_topic_prefix.clone(),
            name: format!("{}/{}", cfg.component, cfg.name),
            tx: Some(tx),
            task,
            behind: false,
        })
    }

    /// The report of `r` as it is published.
    pub fn outgoing(&self, r: Report) -> Outgoing {
        report_message(&self.exchange, &self.prefix, &self.name, r)
    }

    /// Hands a pass's reports to the publishing task, without waiting: if
    /// it is that far behind, they are dropped.
    pub fn send(&mut self, reports: Vec<Report>) {
        if reports.is_empty() {
            return;
        }
        let batch: Vec<Outgoing> = reports.into_iter().map(|r| self.outgoing(r)).collect();
        let Some(tx) = &self.tx else { return };
        match tx.try_send(batch) {
            Ok(()) => self.behind = false,
            Err(mpsc::error::TrySendError::Full(b)) => {
                if !self.behind {
                    tracing::warn!(
                        "reports fall behind: {} dropped (and more until they catch up)",
                        b.len()
                    );
                    self.behind = true;
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Lets the task publish what it holds, for a few seconds at most.
    pub async fn close(mut self) {
        drop(self.tx.take());
        let _ = tokio::time::timeout(CLOSE_WAIT, &mut self.task).await;
        self.task.abort();
    }
}

/// `r.msg` with its `report` and `reporter`, on `exchange` under
/// `prefix`: a v03 body whatever the received format was.
pub fn report_message(exchange: &str, prefix: &str, reporter: &str, r: Report) -> Outgoing {
    let mut msg = r.msg;
    // Not sent back: inline content (sr3 drops it too), and a topic field
    // that would override the report's own topic.
    msg.extra.remove("content");
    msg.extra.remove("topic");
    msg.extra.insert(
        "report".into(),
        serde_json::json!({
            "code": r.code.number(),
            "timeCompleted": crate::message::timestamp::now(),
            "message": r.text,
        }),
    );
    msg.extra
        .insert("reporter".into(), Value::String(reporter.to_string()));
    let e = msg.encode(Format::V03, prefix);
    Outgoing::new(exchange, &e.topic, e.body)
}

/// The publishing task: connects (and reconnects, with backoff) to the
/// report broker, declares the exchange and publishes what comes, until
/// the flow closes the channel.
async fn publish_reports(
    url: url::Url,
    paths: Paths,
    exchange: String,
    mut rx: mpsc::Receiver<Vec<Outgoing>>,
) {
    let shown = crate::config::redact_url(&url);
    let mut publisher: Option<Box<dyn Publisher>> = None;
    let mut waiting: VecDeque<Outgoing> = VecDeque::new();
    // During an outage: when it began, and how many reports were dropped.
    let mut outage: Option<(Instant, u64)> = None;
    let mut retry_at = Instant::now();
    let mut delay = Duration::from_millis(500);
    let mut open = true;
    while open || !waiting.is_empty() {
        if open {
            let next = if waiting.is_empty() {
                rx.recv().await
            } else {
                match tokio::time::timeout_at(retry_at.into(), rx.recv()).await {
                    Ok(b) => b,
                    Err(_) => Some(Vec::new()),
                }
            };
            match next {
                Some(b) => keep(&mut waiting, b, &mut outage),
                None => open = false,
            }
            while let Ok(b) = rx.try_recv() {
                keep(&mut waiting, b, &mut outage);
            }
        }
        if waiting.is_empty() {
            continue;
        }
        if publisher.is_none() {
            if open && Instant::now() < retry_at {
                continue;
            }
            match connect(&url, &paths, &exchange).await {
                Ok(p) => publisher = Some(p),
                Err(e) => {
                    if outage.is_none() {
                        tracing::warn!(
                            "cannot publish reports to {shown} (exchange {exchange}): {e}; deliveries go on, reports wait in memory (up to {KEEP}) until it is back"
                        );
                        outage = Some((Instant::now(), 0));
                    }
                    if !open {
                        return; // stopping: no waiting for a broker that is away
                    }
                    retry_at = Instant::now() + delay;
                    delay = (delay * 2).min(Duration::from_secs(30));
                    continue;
                }
            }
        }
        let Some(p) = publisher.as_mut() else {
            continue;
        };
        while !waiting.is_empty() {
            let n = waiting.len().min(CHUNK);
            let chunk: Vec<Outgoing> = waiting.range(..n).cloned().collect();
            match p.publish(&chunk).await {
                // Nobody reads that exchange (or not these topics): reports
                // are for whoever listens, and none is.
                Ok(()) | Err(BrokerError::Unroutable { .. }) => {
                    waiting.drain(..n);
                }
                Err(e) => {
                    if outage.is_none() {
                        tracing::warn!(
                            "publishing reports to {shown} (exchange {exchange}) failed: {e}; deliveries go on, reports wait in memory (up to {KEEP}) until it is back"
                        );
                        outage = Some((Instant::now(), 0));
                    }
                    publisher = None;
                    retry_at = Instant::now() + delay;
                    delay = (delay * 2).min(Duration::from_secs(30));
                    break;
                }
            }
        }
        if publisher.is_some() {
            delay = Duration::from_millis(500);
            if let Some((since, dropped)) = outage.take() {
                tracing::info!(
                    "reports to {shown} flow again after {:.0}s ({dropped} dropped meanwhile)",
                    since.elapsed().as_secs_f64()
                );
            }
            if waiting.capacity() > 4 * CHUNK {
                waiting.shrink_to(CHUNK);
            }
        }
    }
}

/// Adds a batch to what waits, dropping the oldest beyond [`KEEP`].
fn keep(
    waiting: &mut VecDeque<Outgoing>,
    batch: Vec<Outgoing>,
    outage: &mut Option<(Instant, u64)>,
) {
    waiting.extend(batch);
    if waiting.len() > KEEP {
        let over = waiting.len() - KEEP;
        waiting.drain(..over);
        match outage {
            Some((_, dropped)) => *dropped += over as u64,
            None => *outage = Some((Instant::now(), over as u64)),
        }
    }
}

async fn connect(
    url: &url::Url,
    paths: &Paths,
    exchange: &str,
) -> Result<Box<dyn Publisher>, BrokerError> {
    let mut p = broker::transient_publisher(url, paths).await?;
    match p.declare_exchange(exchange).await {
        Ok(()) => {}
        Err(e @ BrokerError::Connection(_)) => return Err(e),
        // Not allowed to declare it (an sr3 site's permissions), or
        // declared otherwise: publish to it as it is.
        Err(e) => tracing::debug!("cannot declare report exchange {exchange}: {e}"),
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_the_message_with_its_disposition_and_reporter() {
        let mut m = Message::for_link("file:/hot", "a/b/l", "t");
        m.extra
            .insert("topic".into(), Value::String("v03.x".into()));
        let o = report_message(
            "xr_bob",
            "v03",
            "sender/to_hpfx",
            Report::new(m.clone(), Code::NotModified, "Not modified (nodupe check)"),
        );
        assert_eq!(o.exchange, "xr_bob");
        assert_eq!(o.topic, "v03.a.b");
        assert_eq!(o.content_type, None);
        let back = Message::from_json(&o.body).unwrap();
        assert_eq!(back.pub_time, m.pub_time);
        assert_eq!(back.rel_path, "a/b/l");
        assert_eq!(back.extra["reporter"], "sender/to_hpfx");
        assert_eq!(back.extra["report"]["code"], 304);
        assert_eq!(
            back.extra["report"]["message"],
            "Not modified (nodupe check)"
        );
        let done = back.extra["report"]["timeCompleted"].as_str().unwrap();
        assert!(crate::message::timestamp::parse(done).is_ok(), "{done}");
        assert!(!back.extra.contains_key("topic"));
    }

    #[test]
    fn what_waits_is_bounded_and_the_drops_counted() {
        let mut waiting = VecDeque::new();
        let mut outage = None;
        let batch = |n: usize| vec![Outgoing::new("x", "v03", b"{}".to_vec()); n];
        keep(&mut waiting, batch(KEEP - 1), &mut outage);
        assert!(outage.is_none());
        keep(&mut waiting, batch(11), &mut outage);
        assert_eq!(waiting.len(), KEEP);
        assert_eq!(outage.map(|o| o.1), Some(10));
    }
}
