//! The consuming flow shared by the sender and subscribe: take
//! announcements from a queue, do each one's work at the destination
//! ([`super::deliver`]), announce what was done on `post_broker`, and only
//! then acknowledge.
//!
//! Work that fails goes to the instance's on-disk retry queue before its
//! message is acked; it comes back with a growing backoff, beside new work
//! (never starving it). Within one batch, plain files to different paths
//! move concurrently (the transport pipelines them); a batch holding
//! renames, removals or links runs in order, so `a.tmp → a → b` lands as it
//! happened.

use super::announce::{announcement, publish_or_keep, repost};
use super::autoclean::Autoclean;
use super::deliver::{deliver, Direction, Outcome};
use super::filter::{self, Destination};
use super::report::{Code, Report, Reporter};
use super::{now_epoch, Instance};
use crate::broker::{self, BrokerError, Consumer, Delivery, Outgoing, Publisher, QueueSpec};
use crate::config::Config;
use crate::message::Message;
use crate::state::nodupe::{self, NodupeCache, NodupeEntry};
use crate::state::retry::{RetryItem, RetryKind, RetryQueue};
use crate::transfer::Transport;
use anyhow::Context;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many files one instance moves at once.
const CONCURRENCY: usize = 32;

/// Where a piece of work came from, to finish it the right way.
#[derive(Debug, Clone, Copy)]
enum Origin {
    Delivery(u64),
    /// A retry item, with the attempts it has failed already.
    Retry(i64, u32),
}

/// One accepted message with its destination.
#[derive(Debug, Clone)]
struct Work {
    origin: Origin,
    msg: Message,
    body: Vec<u8>,
    exchange: String,
    topic: String,
    dest: Destination,
    /// For a rename: the old name's destination, when it maps to one.
    old_dest: Option<String>,
}

/// Runs a consuming instance (sender or subscribe) until it is asked to
/// stop: `transport` reaches the destination; `direction` says where files
/// come from.
pub async fn run(
    mut inst: Instance,
    transport: Arc<dyn Transport>,
    direction: Direction,
) -> anyhow::Result<()> {
    let cfg = Arc::new(inst.cfg.clone());
    let broker_url = cfg
        .broker
        .clone()
        .context("a consuming component needs broker")?;
    let direction = Arc::new(direction);
    let component = cfg.component;
    let mut retry = RetryQueue::open(&inst.files.retry_db()).context("opening the retry queue")?;
    adopt_orphans(&inst, &mut retry);
    let mut nodupe = if cfg.nodupe_ttl.is_zero() {
        None
    } else {
        let dir = inst.paths.config_state(cfg.component, &cfg.name);
        Some(NodupeCache::open(
            &crate::state::nodupe_db(&dir),
            cfg.nodupe_ttl,
        )?)
    };
    let autoclean = match (&*direction, cfg.delete_source) {
        (Direction::Send, true) => {
            let dir = inst.paths.config_state(cfg.component, &cfg.name);
            Some(
                Autoclean::open(&dir, cfg.clean_dir_grace)
                    .context("opening the autoclean marks")?,
            )
        }
        _ => None,
    };
    let spec = QueueSpec {
        // Two batches: the next one is already here when a pass ends, so
        // a pass never starts with the few that arrived since the last ack.
        prefetch: cfg.prefetch.max(2 * cfg.batch as u32),
        ..QueueSpec::of_config(&cfg, crate::state::queue_name(&inst.paths, &cfg)?)
    };
    tracing::info!(
        "{component} {} instance {} starting: queue {}",
        cfg.name,
        inst.files.instance,
        spec.name
    );
    let mut vip = super::vip::Vip::new(&cfg.vip);
    if vip.wait_until_here(&mut inst).await {
        return Ok(());
    }
    let Some(mut consumer) = connect_consumer(&mut inst, &broker_url, &spec).await else {
        return Ok(());
    };
    let mut publisher = super::connect_publisher(&mut inst).await;
    let mut reporter = Reporter::start(&cfg, &inst.paths);
    let mut last_housekeeping = Instant::now();
    inst.metrics.retry = retry.len().unwrap_or(0);
    inst.save_metrics(true);

    while !inst.stopping() {
        if !vip.still_here() {
            // Passive: every delivery is acked by now; let go of the broker.
            drop(consumer);
            drop(publisher.take());
            if vip.wait_until_here(&mut inst).await {
                break;
            }
            consumer = match connect_consumer(&mut inst, &broker_url, &spec).await {
                Some(c) => c,
                None => break,
            };
            publisher = super::connect_publisher(&mut inst).await;
        }
        let deliveries = match consumer.get(cfg.batch, Duration::from_millis(500)).await {
            Ok(d) => d,
            Err(e) => {
                inst.metrics.connected = false;
                tracing::error!("receiving from queue {}: {e}; reconnecting", spec.name);
                match connect_consumer(&mut inst, &broker_url, &spec).await {
                    Some(c) => consumer = c,
                    None => break,
                }
                continue;
            }
        };
        inst.metrics.connected = true;
        let had_work = !deliveries.is_empty();
        let mut pass = Pass {
            reporting: reporter.is_some(),
            ..Pass::default()
        };
        gather(&mut inst, &cfg, &nodupe, &autoclean, deliveries, &mut pass);
        take_retries(&cfg, &retry, &mut pass);
        let results = work(&transport, &direction, &cfg, std::mem::take(&mut pass.work)).await;
        finish(
            &mut inst,
            &cfg,
            &mut retry,
            (&mut nodupe, &autoclean),
            &mut publisher,
            results,
            &mut pass,
        )
        .await;
        if let Some(ac) = &autoclean {
            for d in ac.sweep_dirs() {
                tracing::info!("autoclean: removed empty directory {}", d.display());
            }
        }
        repost(&mut inst, &mut retry, &mut publisher).await;
        if !pass.requeue.is_empty() {
            if let Err(e) = consumer.requeue(&pass.requeue).await {
                tracing::warn!("requeue of {} messages failed: {e}", pass.requeue.len());
            }
        }
        match consumer.ack(&pass.acks).await {
            Ok(()) => {
                if let Some(ac) = &autoclean {
                    if let Err(e) = ac.consumed(&pass.echoes) {
                        tracing::warn!("autoclean marks: {e}");
                    }
                }
            }
            // The broker will deliver them again; the sender is idempotent.
            Err(e) => tracing::warn!("ack of {} messages failed: {e}", pass.acks.len()),
        }
        if last_housekeeping.elapsed() >= cfg.housekeeping {
            housekeeping(&cfg, &mut retry, &nodupe, &mut pass);
            if let Some(ac) = &autoclean {
                ac.expire();
            }
            last_housekeeping = Instant::now();
        }
        if let Some(r) = reporter.as_mut() {
            r.send(std::mem::take(&mut pass.reports));
        }
        if had_work || last_housekeeping.elapsed() > Duration::from_secs(5) {
            inst.metrics.retry = retry.len().unwrap_or(inst.metrics.retry);
            inst.metrics.queued = consumer.queue_depth().await.ok().flatten();
        }
        inst.save_metrics(false);
    }
    if let Some(r) = reporter {
        r.close().await;
    }
    inst.save_metrics(true);
    tracing::info!(
        "sender {} instance {} stopped",
        cfg.name,
        inst.files.instance
    );
    Ok(())
}

/// A message's URL for the log, with any password in its baseUrl hidden
/// and control characters escaped (a name holding a newline must not
/// forge a log line).
fn shown(msg: &Message) -> String {
    escape_controls(&crate::config::redact_text(&msg.url()))
}

/// `text` with control characters written as escapes (`\n`, `\u{1b}`).
pub(crate) fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A removal announcement that autoclean caused: its mark's path and the
/// announcement's pubTime (to close the mark with once it is
/// acknowledged). `None` for everything else.
fn own_echo(ac: &Autoclean, cfg: &Config, msg: &Message) -> Option<(String, String)> {
    if !msg.file_op.as_ref().is_some_and(|o| o.remove) {
        return None;
    }
    let local = filter::local_source(cfg, msg)?;
    let local = local.to_str()?;
    match ac.is_echo(local, &msg.pub_time) {
        Ok(true) => Some((local.to_string(), msg.pub_time.clone())),
        Ok(false) => None,
        Err(e) => {
            tracing::warn!("autoclean marks: {e}");
            None
        }
    }
}

/// Removes the local file of delivered content (`delete_source`), unless
/// it changed since it was announced.
fn clean_source(ac: &Autoclean, cfg: &Config, msg: &Message) {
    let op = msg.file_op.as_ref();
    if op.is_some_and(|o| o.remove || o.directory || o.link.is_some() || o.hlink.is_some()) {
        return;
    }
    let Some(local) = filter::local_source(cfg, msg) else {
        return;
    };
    // Directories are removed only below a known hot directory.
    let root = if msg.base_url.starts_with("file:") {
        crate::transfer::file::root_of(&msg.base_url)
    } else {
        cfg.base_dir.as_deref().unwrap_or("/").into()
    };
    match ac.clean_file(&local, msg, &root) {
        Ok(what) => tracing::info!("autoclean: {what}"),
        Err(e) => tracing::warn!("autoclean: {e}"),
    }
}

/// How often a consumer whose exchange is missing tries to bind again: a
/// queue declare and a bind on the connection it keeps, cheap enough to
/// bind within a second of the publisher declaring the exchange.
const EXCHANGE_POLL: Duration = Duration::from_secs(1);

/// Connects to the broker and declares the queue, retrying with backoff;
/// `None` if a stop is asked for first. Says once why it cannot consume,
/// and once that it can.
async fn connect_consumer(
    inst: &mut Instance,
    url: &url::Url,
    spec: &QueueSpec,
) -> Option<Box<dyn Consumer>> {
    let mut delay = Duration::from_millis(500);
    let mut said = false;
    // Kept while only the exchange is missing: no reconnection per try.
    let mut kept: Option<Box<dyn Consumer>> = None;
    loop {
        let connected = match kept.take() {
            Some(c) => Ok(c),
            None => broker::consumer(url, &inst.paths, &spec.name).await,
        };
        let (e, pause) = match connected {
            Ok(mut c) => match c.declare_queue(spec).await {
                Ok(()) => {
                    if said {
                        tracing::info!("queue {} bound; consuming", spec.name);
                    }
                    return Some(c);
                }
                // The publisher (or `pitcher declare`) has not made it yet:
                // look again soon, it is the only thing missing.
                Err(e @ BrokerError::NoExchange(_)) => {
                    kept = Some(c);
                    (e, EXCHANGE_POLL)
                }
                Err(e) => (e, delay),
            },
            Err(e) => (e, delay),
        };
        if !said {
            tracing::error!("cannot consume queue {} yet: {e}; retrying", spec.name);
            said = true;
        }
        // Waiting is not hanging: keep the metrics fresh for `sanity`.
        inst.metrics.connected = false;
        inst.save_metrics(false);
        if inst.pause(pause).await {
            return None;
        }
        if kept.is_none() {
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
}

/// What one pass collects.
#[derive(Default)]
struct Pass {
    work: Vec<Work>,
    /// Deliveries to acknowledge at the end of the pass.
    acks: Vec<u64>,
    /// Deliveries to give back to the broker.
    requeue: Vec<u64>,
    /// Retry items that succeeded or were dropped.
    retry_done: Vec<i64>,
    /// Autoclean marks whose removal announcements are acked this pass.
    echoes: Vec<(String, String)>,
    /// Whether this config reports what it finished (`report`).
    reporting: bool,
    /// What to report once the pass is over.
    reports: Vec<Report>,
}

impl Pass {
    /// Reports `msg` as `code`, when this config reports.
    fn report(&mut self, msg: &Message, code: Code, text: impl Into<String>) {
        if self.reporting {
            self.reports.push(Report::new(msg.clone(), code, text));
        }
    }
}

/// Parses, filters and de-duplicates the deliveries into work.
fn gather(
    inst: &mut Instance,
    cfg: &Config,
    nodupe: &Option<NodupeCache>,
    autoclean: &Option<Autoclean>,
    ds: Vec<Delivery>,
    pass: &mut Pass,
) {
    // One read transaction for the pass's nodupe lookups (see
    // `NodupeCache::reading`).
    let each = || {
        for mut d in ds {
            inst.metrics.received += 1;
            inst.metrics.last_message = now_epoch();
            let msg = match super::decode_delivery(&mut d) {
                Ok(m) => m,
                Err(e) => {
                    set_aside(inst, &d, &e.to_string());
                    pass.acks.push(d.id);
                    continue;
                }
            };
            if let Some(mark) = autoclean.as_ref().and_then(|ac| own_echo(ac, cfg, &msg)) {
                tracing::info!(
                    "not propagated: {} (removed by autoclean after delivery)",
                    shown(&msg)
                );
                pass.acks.push(d.id);
                pass.echoes.push(mark);
                pass.report(
                    &msg,
                    Code::NotModified,
                    "not propagated: removed by autoclean after delivery",
                );
                continue;
            }
            match place(cfg, &msg) {
                Ok(Some((dest, old_dest))) => {
                    if !d.redelivered && is_duplicate(nodupe, cfg, &msg) {
                        inst.metrics.duplicates += 1;
                        tracing::info!("duplicate ignored: {}", shown(&msg));
                        pass.acks.push(d.id);
                        pass.report(&msg, Code::NotModified, "Not modified (nodupe check)");
                        continue;
                    }
                    inst.note_lag(&msg);
                    pass.work.push(Work {
                        origin: Origin::Delivery(d.id),
                        msg,
                        body: d.body,
                        exchange: d.exchange,
                        topic: d.topic,
                        dest,
                        old_dest,
                    });
                }
                Ok(None) => {
                    inst.metrics.rejected += 1;
                    tracing::info!("rejected: {} (mask)", shown(&msg));
                    pass.acks.push(d.id);
                    pass.report(&msg, Code::NoMatch, "Not Found: no pattern match");
                }
                Err(e) => {
                    inst.metrics.rejected += 1;
                    tracing::error!(
                        "refused: {}: {}",
                        shown(&msg),
                        escape_controls(&e.to_string())
                    );
                    pass.acks.push(d.id);
                    pass.report(
                        &msg,
                        Code::Unplaceable,
                        format!("Unprocessable Content: {e}"),
                    );
                }
            }
        }
    };
    match nodupe {
        Some(cache) => cache.reading(each),
        None => each(),
    }
}

/// The destination of an accepted message (and of its rename's old name),
/// `None` when a mask rejects it.
pub fn place(
    cfg: &Config,
    msg: &Message,
) -> Result<Option<(Destination, Option<String>)>, filter::PlacementError> {
    let Some(placement) = filter::decide(cfg, &msg.url()) else {
        return Ok(None);
    };
    let dest = filter::destination(cfg, &placement, &msg.rel_path)?;
    let old_dest = msg
        .file_op
        .as_ref()
        .and_then(|o| o.rename.as_deref())
        .and_then(|old| filter::rel_of_local(cfg, msg, old))
        .and_then(|rel| filter::destination(cfg, &placement, &rel).ok())
        .map(|d| d.path());
    Ok(Some((dest, old_dest)))
}

fn is_duplicate(nodupe: &Option<NodupeCache>, cfg: &Config, msg: &Message) -> bool {
    let Some(cache) = nodupe else { return false };
    // Judged against the last key handled at its path (this pass's earlier
    // messages included), so content changed back is new.
    let e = nodupe::entry_for(msg, cfg.nodupe_basis);
    cache.is_duplicate(&e).unwrap_or_else(|err| {
        tracing::warn!("nodupe cache: {err}");
        false
    })
}

/// Writes a malformed message aside (one file each) and logs it.
fn set_aside(inst: &mut Instance, d: &Delivery, why: &str) {
    inst.metrics.malformed += 1;
    let dir = crate::state::malformed_dir(&inst.files.dir);
    let file = dir.join(format!(
        "{:.6}_{}_{}.msg",
        now_epoch(),
        inst.files.instance,
        d.id
    ));
    let saved = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&file, &d.body));
    match saved {
        Ok(()) => tracing::error!("malformed message set aside in {}: {why}", file.display()),
        Err(e) => tracing::error!("malformed message dropped ({why}); could not set it aside: {e}"),
    }
}

/// Adds due retries, up to half a batch, so new work is never starved.
fn take_retries(cfg: &Config, retry: &RetryQueue, pass: &mut Pass) {
    let room = (cfg.batch / 2).max(1);
    let items = match retry.due(RetryKind::Work, room) {
        Ok(items) => items,
        Err(e) => {
            tracing::error!("reading the retry queue: {e}");
            return;
        }
    };
    for it in items {
        let placed = Message::from_json(&it.body)
            .ok()
            .and_then(|m| place(cfg, &m).ok().flatten().map(|p| (m, p)));
        match placed {
            Some((msg, (dest, old_dest))) => pass.work.push(Work {
                origin: Origin::Retry(it.id, it.attempts),
                msg,
                body: it.body,
                exchange: it.exchange,
                topic: it.topic,
                dest,
                old_dest,
            }),
            None => {
                let what = Message::from_json(&it.body)
                    .map(|m| m.url())
                    .unwrap_or_else(|_| String::from_utf8_lossy(&it.body).into_owned());
                tracing::warn!(
                    "dropped from the retry queue: {what}: no longer accepted by this config"
                );
                pass.retry_done.push(it.id);
                if let Ok(m) = Message::from_json(&it.body) {
                    pass.report(&m, Code::NoMatch, "Not Found: no longer accepted");
                }
            }
        }
    }
}

/// Does the work of a pass: concurrently across paths, in order within one.
async fn work(
    t: &Arc<dyn Transport>,
    direction: &Arc<Direction>,
    cfg: &Arc<Config>,
    items: Vec<Work>,
) -> Vec<(Work, io::Result<Outcome>)> {
    let in_order = items.iter().any(|w| w.msg.file_op.is_some());
    let mut lanes: Vec<Vec<Work>> = Vec::new();
    if in_order {
        lanes.push(items);
    } else {
        let mut by_path: std::collections::HashMap<String, usize> = Default::default();
        for w in items {
            let i = *by_path.entry(w.dest.path()).or_insert_with(|| {
                lanes.push(Vec::new());
                lanes.len() - 1
            });
            lanes[i].push(w);
        }
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    // What each task holds, to fail it into the retry queue if the task
    // dies (a panic must not leave its deliveries neither acked nor kept).
    let mut held: std::collections::HashMap<tokio::task::Id, (usize, Vec<Work>)> =
        Default::default();
    for (lane_no, lane) in lanes.into_iter().enumerate() {
        let (t, direction, cfg, limit) = (t.clone(), direction.clone(), cfg.clone(), limit.clone());
        let copy = lane.clone();
        let task = tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let mut done = Vec::with_capacity(lane.len());
            for w in lane {
                let r = deliver(
                    &*t,
                    &direction,
                    &cfg,
                    &w.msg,
                    &w.dest,
                    w.old_dest.as_deref(),
                )
                .await;
                done.push((w, r));
            }
            (lane_no, done)
        });
        held.insert(task.id(), (lane_no, copy));
    }
    let mut lanes_done = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(x) => lanes_done.push(x),
            Err(e) => {
                tracing::error!("a transfer task failed: {e}");
                if let Some((lane_no, lane)) = held.remove(&e.id()) {
                    let failed = lane
                        .into_iter()
                        .map(|w| {
                            (
                                w,
                                Err(io::Error::other(format!("transfer task failed: {e}"))),
                            )
                        })
                        .collect();
                    lanes_done.push((lane_no, failed));
                }
            }
        }
    }
    lanes_done.sort_by_key(|(n, _)| *n);
    lanes_done.into_iter().flat_map(|(_, d)| d).collect()
}

/// Ends a pass: retries stored, announcements published, nodupe recorded.
async fn finish(
    inst: &mut Instance,
    cfg: &Config,
    retry: &mut RetryQueue,
    (nodupe, autoclean): (&mut Option<NodupeCache>, &Option<Autoclean>),
    publisher: &mut Option<Box<dyn Publisher>>,
    results: Vec<(Work, io::Result<Outcome>)>,
    pass: &mut Pass,
) {
    let mut failed_new = Vec::new();
    let mut failed_ids = Vec::new();
    let mut announce = Vec::new();
    let mut seen: Vec<NodupeEntry> = Vec::new();
    // Reports of work done, sent only if its announcement is out (or kept).
    let mut done_reports: Vec<(Origin, Report)> = Vec::new();
    for (w, r) in results {
        match r {
            Ok(outcome) => {
                if pass.reporting {
                    let (code, text) = match &outcome {
                        Outcome::Done(_) => (Code::Done, done_text(cfg, &w.msg)),
                        Outcome::Skipped(why) => (Code::NotModified, format!("skipped: {why}")),
                    };
                    done_reports.push((w.origin, Report::new(w.msg.clone(), code, text)));
                }
                match &outcome {
                    Outcome::Done(bytes) => {
                        inst.metrics.files_done += 1;
                        inst.metrics.bytes_done += bytes;
                        inst.metrics.last_transfer = now_epoch();
                        tracing::info!(
                            "sent: {} to {} size: {bytes}",
                            shown(&w.msg),
                            escape_controls(&w.dest.path())
                        );
                        if let Some(o) =
                            announcement(cfg, &w.msg, &w.dest.path(), w.old_dest.as_deref())
                        {
                            announce.push((o, w.origin));
                        }
                        if let Some(ac) = autoclean {
                            clean_source(ac, cfg, &w.msg);
                        }
                    }
                    Outcome::Skipped(why) => {
                        tracing::warn!("skipped: {}: {}", shown(&w.msg), escape_controls(why))
                    }
                }
                if nodupe.is_some() {
                    seen.push(nodupe::entry_for(&w.msg, cfg.nodupe_basis));
                }
                match w.origin {
                    Origin::Delivery(id) => pass.acks.push(id),
                    Origin::Retry(id, _) => pass.retry_done.push(id),
                }
            }
            Err(e) if crate::transfer::is_permanent(&e) => {
                // Retrying cannot change it: one line, and done with it.
                inst.metrics.rejected += 1;
                tracing::error!(
                    "refused: {} to {}: {}",
                    shown(&w.msg),
                    escape_controls(&w.dest.path()),
                    escape_controls(&e.to_string())
                );
                pass.report(&w.msg, Code::Failed, format!("Failure: Not Copied: {e}"));
                match w.origin {
                    Origin::Delivery(id) => pass.acks.push(id),
                    Origin::Retry(id, _) => pass.retry_done.push(id),
                }
            }
            Err(e) => {
                inst.metrics.failed += 1;
                tracing::error!(
                    "failed: {} to {}: {}; queued for retry",
                    shown(&w.msg),
                    escape_controls(&w.dest.path()),
                    escape_controls(&e.to_string())
                );
                match w.origin {
                    Origin::Delivery(id) => {
                        failed_new.push(RetryItem::new(
                            RetryKind::Work,
                            w.body,
                            &w.exchange,
                            &w.topic,
                            &e.to_string(),
                        ));
                        failed_ids.push(id);
                    }
                    Origin::Retry(id, attempts)
                        if cfg.retry_count_max > 0 && attempts >= cfg.retry_count_max =>
                    {
                        tracing::error!(
                            "given up: {} after {} attempts (retryCountMax {}): {}",
                            shown(&w.msg),
                            attempts + 1,
                            cfg.retry_count_max,
                            escape_controls(&e.to_string())
                        );
                        pass.retry_done.push(id);
                        pass.report(
                            &w.msg,
                            Code::Failed,
                            format!("Failure: given up after {} attempts: {e}", attempts + 1),
                        );
                    }
                    Origin::Retry(id, _) => {
                        if let Err(e) = retry.failed_again(id, &e.to_string()) {
                            tracing::error!("retry queue: {e}");
                        }
                    }
                }
            }
        }
    }
    if !failed_new.is_empty() {
        match retry.push(&failed_new) {
            Ok(()) => pass.acks.extend(failed_ids),
            // Not saved: give them back to the broker, to be delivered again.
            Err(e) => {
                tracing::error!(
                    "cannot save {} failed messages for retry: {e}; requeued",
                    failed_new.len()
                );
                pass.requeue.extend(failed_ids);
            }
        }
    }
    let (msgs, origins): (Vec<Outgoing>, Vec<Origin>) = announce.into_iter().unzip();
    let announced = publish_or_keep(inst, retry, publisher, msgs).await;
    for (origin, report) in done_reports {
        // Work whose announcement is lost is done again: reported then.
        let again = !announced && origins.iter().any(|o| same_origin(o, &origin));
        if !again {
            pass.reports.push(report);
        }
    }
    if !announced {
        // Neither published nor kept: do the work again later rather than
        // lose its announcement (the work is idempotent).
        for o in origins {
            match o {
                Origin::Delivery(id) => {
                    pass.acks.retain(|a| *a != id);
                    pass.requeue.push(id);
                }
                Origin::Retry(id, _) => pass.retry_done.retain(|r| *r != id),
            }
        }
    }
    if let Some(cache) = nodupe {
        if let Err(e) = cache.record(&seen) {
            tracing::warn!("nodupe cache: {e}");
        }
    }
    if let Err(e) = retry.remove(&pass.retry_done) {
        tracing::error!("retry queue: {e}");
    }
}

/// Expires old retries (one log line each, and a report for work given up)
/// and old nodupe entries.
fn housekeeping(
    cfg: &Config,
    retry: &mut RetryQueue,
    nodupe: &Option<NodupeCache>,
    pass: &mut Pass,
) {
    if let Some(ttl) = cfg.retry_ttl {
        match retry.expire(ttl) {
            Ok(gone) => {
                for it in gone {
                    let msg = Message::from_json(&it.body);
                    let what = msg.as_ref().map(|m| m.url()).unwrap_or_else(|_| "?".into());
                    tracing::warn!(
                        "retry_ttl expired after {} attempts: dropping {what} (last error: {})",
                        it.attempts,
                        it.last_error
                    );
                    if let (Ok(m), RetryKind::Work) = (&msg, it.kind) {
                        pass.report(
                            m,
                            Code::Failed,
                            format!("Failure: given up past retry_ttl: {}", it.last_error),
                        );
                    }
                }
            }
            Err(e) => tracing::error!("retry queue: {e}"),
        }
    }
    if let Some(c) = nodupe {
        let _ = c.expire();
    }
}

/// Whether two pieces of work came from the same delivery or retry item.
fn same_origin(a: &Origin, b: &Origin) -> bool {
    match (a, b) {
        (Origin::Delivery(x), Origin::Delivery(y)) => x == y,
        (Origin::Retry(x, _), Origin::Retry(y, _)) => x == y,
        _ => false,
    }
}

/// What a report says of work done, in sr3's words.
fn done_text(cfg: &Config, msg: &Message) -> String {
    let download = cfg.component == crate::config::Component::Subscribe;
    let text = match msg.file_op.as_ref() {
        Some(o) if o.remove => "file or directory removed",
        Some(o) if o.link.is_some() || o.hlink.is_some() => "file linked",
        Some(o) if o.directory => "directory created",
        Some(o) if o.rename.is_some() => "file renamed",
        _ if download => "Download successful",
        _ => "file sent",
    };
    text.to_string()
}

/// Takes over the retry queues of instance numbers above `instances` (the
/// config was scaled down) whose owners are gone.
fn adopt_orphans(inst: &Instance, retry: &mut RetryQueue) {
    if inst.files.instance != 1 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(&inst.files.dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(n) = name
            .strip_prefix(&format!("{}_{}_", inst.cfg.component.name(), inst.cfg.name))
            .and_then(|r| r.strip_suffix(".retry.db"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let other =
            crate::state::InstanceFiles::new(&inst.paths, inst.cfg.component, &inst.cfg.name, n);
        if n > inst.cfg.instances && crate::state::pidfile::read_live(&other.pid_file()).is_none() {
            match retry.adopt(&e.path()) {
                Ok(k) if k > 0 => tracing::info!("adopted {k} retries of instance {n}"),
                Ok(_) => {}
                Err(err) => tracing::error!("cannot adopt {}: {err}", e.path().display()),
            }
        }
    }
}
