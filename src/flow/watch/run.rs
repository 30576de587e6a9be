//! The watch flow: file system events become v03 announcements on
//! `post_broker`/`post_exchange`.
//!
//! At start every watched tree is scanned and compared with the inventory
//! of what was announced before, so files that arrived (or changed, or went
//! away) while pitcher was stopped are announced, and nothing unchanged is
//! announced twice. Then events are announced as they come: nothing waits
//! for sr3's 5 s `sleep`. Announcements that cannot be published (broker
//! down, no queue bound yet) wait in memory and are retried with backoff;
//! the inventory is written only after a publish succeeds, so a crash in
//! between only repeats an announcement. Meanwhile events are judged
//! against the inventory as it will be once they are out
//! ([`Unpublished`]), and a removal is published only if its path is still
//! gone by then ([`Announcer::settle_removals`]): whatever order the events
//! of a move out and back, a delete and re-create or a rename away and back
//! arrive in, the last announcement for a path says what is there.

use super::inventory::{Change, Inventory, Kind, Seen};
use super::receipts::Receipts;
use super::tree::{FsEvent, TreeWatcher};
use super::unpublished::Unpublished;
use crate::broker::{BrokerError, Outgoing, Publisher};
use crate::config::Config;
use crate::flow::{filter, Instance};
use crate::message::{FileMessageOptions, Message};
use crate::state::nodupe::{self, NodupeCache, NodupeEntry};
use anyhow::Context;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the watch reads and checksums files before it publishes what
/// it has so far.
const ANNOUNCE_EVERY: Duration = Duration::from_millis(100);

/// What the watch's own queues keep of their capacity once it is idle.
const IDLE_CAPACITY: usize = 256;

/// An announcement waiting to be published, and what to record after.
struct Pending {
    msg: Message,
    changes: Vec<Change>,
}

/// Runs a watch instance until it is asked to stop; with `vip`, only while
/// the address is here (each takeover starts with a fresh scan).
pub async fn run(mut inst: Instance) -> anyhow::Result<()> {
    let mut vip = crate::flow::vip::Vip::new(&inst.cfg.vip);
    loop {
        if vip.wait_until_here(&mut inst).await {
            return Ok(());
        }
        inst = run_active(inst, &mut vip).await?;
        if inst.stopping() {
            return Ok(());
        }
    }
}

/// Watches until a stop is asked for or the `vip` leaves this host.
async fn run_active(
    mut inst: Instance,
    vip: &mut crate::flow::vip::Vip,
) -> anyhow::Result<Instance> {
    let cfg = inst.cfg.clone();
    anyhow::ensure!(!cfg.paths.is_empty(), "a watch needs at least one `path`");
    let base_url = cfg
        .post_base_url
        .clone()
        .context("a watch needs post_baseUrl")?;
    let roots: Vec<PathBuf> = cfg.paths.iter().map(PathBuf::from).collect();
    for r in &roots {
        while !r.is_dir() {
            tracing::error!(
                "watched path {} is not a directory (yet); waiting for it",
                r.display()
            );
            if inst.pause(Duration::from_secs(5)).await {
                return Ok(inst);
            }
        }
    }
    let state_dir = inst.paths.config_state(cfg.component, &cfg.name);
    let mut inventory =
        Inventory::open(&state_dir.join("inventory.db")).context("opening the watch inventory")?;
    let mut nodupe = if cfg.nodupe_ttl.is_zero() {
        None
    } else {
        Some(NodupeCache::open(
            &crate::state::nodupe_db(&state_dir),
            cfg.nodupe_ttl,
        )?)
    };
    let mut receipts = Receipts::open(&cfg, &inst.paths, &state_dir)?;
    let mut watcher = TreeWatcher::new(&roots, cfg.recursive).context("starting inotify")?;
    let ann = Announcer {
        cfg: &cfg,
        base_url: &base_url,
    };
    let mut pending: Vec<Pending> = Vec::new();
    // The changes of `pending`, for judging new events by.
    let mut unpublished = Unpublished::default();
    for item in ann.reconcile(&roots, &watcher.scan(), &inventory) {
        unpublished.apply(&item.changes);
        pending.push(item);
    }
    tracing::info!(
        "watch {} started on {}: {} to announce from the start-up scan",
        cfg.name,
        join_paths(&roots),
        pending.len()
    );
    let mut publisher = crate::flow::connect_publisher(&mut inst).await;
    let mut delay = Duration::from_millis(200);
    let mut said_unroutable = false;
    // Events read but not yet turned into announcements.
    let mut backlog: std::collections::VecDeque<FsEvent> = Default::default();
    while !inst.stopping() && vip.still_here() {
        // First, so that the receipts queue is there before the first
        // announcement goes out: a report with no queue bound is lost.
        if let Some(r) = receipts.as_mut() {
            r.tick(&mut inst, &mut publisher).await;
        }
        if !pending.is_empty() {
            if publisher.is_none() {
                publisher = crate::flow::connect_publisher(&mut inst).await;
            }
            if let Some(p) = publisher.as_mut() {
                if ann.settle_removals(&mut pending) {
                    unpublished.clear();
                    for item in &pending {
                        unpublished.apply(&item.changes);
                    }
                }
                let stores = (&mut inventory, &mut nodupe, &mut receipts);
                match publish(&mut inst, p.as_mut(), stores, &pending).await {
                    Ok(()) => {
                        pending.clear();
                        unpublished.clear();
                        delay = Duration::from_millis(200);
                        said_unroutable = false;
                    }
                    Err(BrokerError::Unroutable { exchange, .. }) => {
                        if !said_unroutable {
                            tracing::warn!(
                                "no queue is bound to exchange {exchange} yet: {} announcements wait (start the sender, or run `pitcher declare`)",
                                pending.len()
                            );
                            said_unroutable = true;
                        }
                    }
                    Err(e) => {
                        tracing::error!(
                            "publishing {} announcements failed: {e}; will retry",
                            pending.len()
                        );
                        publisher = None;
                    }
                }
            }
        }
        inst.metrics.connected = publisher.is_some();
        inst.save_metrics(false);
        let wait = if pending.is_empty() {
            Duration::from_millis(500)
        } else {
            delay
        };
        if !pending.is_empty() {
            delay = (delay * 2).min(Duration::from_secs(10));
        }
        if backlog.is_empty() {
            let events = tokio::select! {
                r = watcher.next_batch(wait) => r,
                _ = inst.pause(wait) => continue,
            };
            match events {
                Ok(evs) if evs.is_empty() && pending.is_empty() => {
                    // Idle: give back what a burst grew (20,000 events at
                    // once leave a backlog of megabytes), so the trim after
                    // the burst can return it to the system.
                    backlog.shrink_to(IDLE_CAPACITY);
                    pending.shrink_to(IDLE_CAPACITY);
                    unpublished.shrink();
                }
                Ok(evs) => backlog.extend(evs),
                Err(e) => tracing::error!("reading file events: {e}"),
            }
        }
        // Checksumming is the slow part (64 MiB take a tenth of a second):
        // what is ready goes out every ANNOUNCE_EVERY, so the senders start
        // on the first large files while the next are still being read.
        let started = std::time::Instant::now();
        inventory.reading(|| {
            while let Some(ev) = backlog.pop_front() {
                inst.metrics.received += 1;
                inst.metrics.last_message = crate::flow::now_epoch();
                let known = Known {
                    inv: &inventory,
                    unpublished: &unpublished,
                };
                match ann.event(ev, known) {
                    Ok(items) => {
                        for item in items {
                            unpublished.apply(&item.changes);
                            pending.push(item);
                        }
                    }
                    Err(e) => tracing::warn!("{e}"),
                }
                if started.elapsed() >= ANNOUNCE_EVERY {
                    break;
                }
            }
        });
    }
    if !pending.is_empty() || !backlog.is_empty() {
        tracing::warn!(
            "stopping with {} announcements unpublished and {} events not yet read: \
             the start-up scan will find them again",
            pending.len(),
            backlog.len()
        );
    }
    inst.save_metrics(true);
    Ok(inst)
}

fn join_paths(p: &[PathBuf]) -> String {
    p.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Publishes all pending announcements that pass the masks and nodupe, then
/// records them in the inventory and nodupe cache.
async fn publish(
    inst: &mut Instance,
    p: &mut dyn Publisher,
    (inventory, nodupe, receipts): (
        &mut Inventory,
        &mut Option<NodupeCache>,
        &mut Option<Receipts>,
    ),
    pending: &[Pending],
) -> Result<(), BrokerError> {
    let cfg = inst.cfg.clone();
    let mut out: Vec<Outgoing> = Vec::new();
    // The pending item of each message of `out`.
    let mut published: Vec<&Pending> = Vec::new();
    let mut seen: Vec<NodupeEntry> = Vec::new();
    let mut logged = Vec::new();
    let mut sift = || {
        for item in pending {
            if let Some(cache) = nodupe.as_ref() {
                // Judged against the last key announced at its path (the
                // earlier ones of this publish included): unchanged is a
                // duplicate, content changed back to an older version is not.
                let e = nodupe::entry_for(&item.msg, cfg.nodupe_basis);
                let recorded = cache.recorded(&e).unwrap_or_else(|err| {
                    tracing::warn!("nodupe cache: {err}");
                    None
                });
                if let Some(r) = recorded {
                    inst.metrics.duplicates += 1;
                    tracing::info!("duplicate ignored: {}", why_duplicate(item, r, &cfg));
                    continue;
                }
                seen.push(e);
            }
            if let Some(o) = crate::flow::outgoing(&cfg, &item.msg) {
                logged.push((item.msg.rel_path.clone(), item.msg.size, o.topic.clone()));
                out.push(o);
                published.push(item);
            }
        }
    };
    match nodupe.as_ref() {
        Some(cache) => cache.reading(sift),
        None => sift(),
    }
    for chunk in out.chunks(cfg.batch.max(1) * 4) {
        p.publish(chunk).await?;
    }
    let changes: Vec<Change> = pending
        .iter()
        .flat_map(|p| p.changes.iter().cloned())
        .collect();
    if let Err(e) = inventory.apply(&changes) {
        tracing::error!("watch inventory: {e}");
    }
    if let Some(cache) = nodupe.as_mut() {
        if let Err(e) = cache.record(&seen) {
            tracing::warn!("nodupe cache: {e}");
        }
    }
    if let Some(r) = receipts.as_mut() {
        let items = published
            .iter()
            .zip(&out)
            .filter_map(|(item, o)| super::receipts::announced_of(&item.msg, &item.changes, o))
            .collect();
        r.announced(items);
    }
    inst.metrics.posted += out.len() as u64;
    if !out.is_empty() {
        inst.metrics.last_transfer = crate::flow::now_epoch();
    }
    let exchange = cfg.post_exchange.as_deref().unwrap_or("");
    for (rel, size, topic) in logged {
        match size {
            Some(s) => tracing::info!("posted: {exchange} {topic} relPath: {rel} size: {s}"),
            None => tracing::info!("posted: {exchange} {topic} relPath: {rel}"),
        }
    }
    Ok(())
}

/// The local path of a dropped duplicate and why, e.g. `/hot/a (unchanged
/// since announced 12s ago; nodupe_ttl 300s)`.
fn why_duplicate(item: &Pending, r: nodupe::Recorded, cfg: &Config) -> String {
    let path = item
        .changes
        .iter()
        .find_map(|c| match c {
            Change::Put(p, _) => Some(p.display().to_string()),
            Change::Remove(_) => None,
        })
        .unwrap_or_else(|| item.msg.rel_path.clone());
    let age = r.age.as_secs_f64();
    let age = if age < 10.0 {
        format!("{age:.1}s")
    } else {
        format!("{age:.0}s")
    };
    let ttl = cfg.nodupe_ttl.as_secs_f64();
    format!("{path} (unchanged since announced {age} ago; nodupe_ttl {ttl}s)")
}

/// The inventory as it will be once the waiting announcements are
/// published.
#[derive(Clone, Copy)]
struct Known<'a> {
    inv: &'a Inventory,
    unpublished: &'a Unpublished,
}

impl Known<'_> {
    fn get(&self, p: &Path) -> Option<Seen> {
        self.unpublished.get(p, self.inv).ok().flatten()
    }

    fn under(&self, root: &Path) -> Result<HashMap<PathBuf, Seen>, String> {
        self.unpublished
            .under(root, self.inv)
            .map_err(|e| e.to_string())
    }
}

/// The path and kind (directory or not) a removal announcement is about.
fn removal_of(item: &Pending) -> Option<(&Path, bool)> {
    let op = item.msg.file_op.as_ref().filter(|o| o.remove)?;
    item.changes.iter().find_map(|c| match c {
        Change::Remove(p) => Some((p.as_path(), op.directory)),
        Change::Put(..) => None,
    })
}

/// Turns file system facts into announcements for one watch config.
struct Announcer<'a> {
    cfg: &'a Config,
    base_url: &'a str,
}

impl Announcer<'_> {
    fn rel_path(&self, p: &Path) -> Result<String, String> {
        filter::rel_path_of_local(self.cfg, p)
    }

    fn accepted(&self, msg: &Message) -> bool {
        filter::decide(self.cfg, &msg.url()).is_some()
    }

    fn options(&self) -> FileMessageOptions {
        FileMessageOptions {
            identity_method: self.cfg.identity_method.clone(),
            time_copy: self.cfg.time_copy,
            perm_copy: self.cfg.perm_copy,
            source: self.cfg.source.clone(),
        }
    }

    /// The announcement of what is at `p` now (file, link or directory);
    /// `None` when it vanished, is unchanged since announced (when `known`
    /// is given), is rejected, or its kind of event is off.
    fn present(&self, p: &Path, known: Option<Known>) -> Result<Option<Pending>, String> {
        let meta = match std::fs::symlink_metadata(p) {
            Ok(m) => m,
            Err(_) => return Ok(None),
        };
        let seen = Seen::of(&meta);
        if known.is_some_and(|k| k.get(p) == Some(seen)) {
            return Ok(None);
        }
        let rel = self.rel_path(p)?;
        if rel.is_empty() {
            return Ok(None); // the watched directory itself
        }
        let ev = &self.cfg.file_events;
        let msg = match seen.kind {
            Kind::Dir if ev.mkdir => {
                use std::os::unix::fs::PermissionsExt;
                Message::for_mkdir(self.base_url, &rel, meta.permissions().mode() & 0o7777)
            }
            Kind::Link if ev.link => {
                let target =
                    std::fs::read_link(p).map_err(|e| format!("readlink {}: {e}", p.display()))?;
                let target = target
                    .to_str()
                    .ok_or_else(|| format!("skipped link {}: target not UTF-8", p.display()))?;
                Message::for_link(self.base_url, &rel, target)
            }
            Kind::File if ev.create || ev.modify => {
                match Message::for_file(self.base_url, &rel, p, &self.options()) {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(format!("skipped {}: cannot read it: {e}", p.display())),
                }
            }
            _ => return Ok(None),
        };
        if !self.accepted(&msg) {
            return Ok(None);
        }
        Ok(Some(Pending {
            msg,
            changes: vec![Change::Put(p.to_path_buf(), seen)],
        }))
    }

    /// The announcements that `p` is gone: for a directory, first every
    /// announced path below it not yet announced gone (a tree moved out of
    /// the watch gives one event for its top only), deepest first.
    /// Paths already announced gone (and not back since) are not again.
    fn gone(&self, p: &Path, was_dir: bool, known: Known) -> Result<Vec<Pending>, String> {
        let mut out = Vec::new();
        if was_dir {
            let mut below: Vec<(PathBuf, Seen)> = known
                .under(p)?
                .into_iter()
                .filter(|(q, _)| q != p)
                .collect();
            below.sort_by(|a, b| b.0.cmp(&a.0));
            for (q, s) in below {
                out.extend(self.gone_one(&q, s.kind == Kind::Dir)?);
            }
        }
        out.extend(self.gone_one(p, was_dir)?);
        Ok(out)
    }

    fn gone_one(&self, p: &Path, was_dir: bool) -> Result<Option<Pending>, String> {
        let rel = self.rel_path(p)?;
        let ev = &self.cfg.file_events;
        let msg = match was_dir {
            true if ev.rmdir => Message::for_rmdir(self.base_url, &rel),
            false if ev.delete => Message::for_remove(self.base_url, &rel),
            _ => return Ok(None),
        };
        Ok(self.accepted(&msg).then_some(Pending {
            msg,
            changes: vec![Change::Remove(p.to_path_buf())],
        }))
    }

    /// Announcements for one event.
    fn event(&self, ev: FsEvent, known: Known) -> Result<Vec<Pending>, String> {
        Ok(match ev {
            FsEvent::File(p) | FsEvent::Link(p) | FsEvent::Dir(p) => {
                self.present(&p, Some(known))?.into_iter().collect()
            }
            FsEvent::Removed { path, was_dir } => self.gone(&path, was_dir, known)?,
            FsEvent::Renamed { from, to, is_dir } => self.renamed(&from, &to, is_dir, known)?,
        })
    }

    /// A rename inside the tree: each new name carries `fileOp.rename` with
    /// its old absolute path when the old one had been announced (so the
    /// destination renames instead of copying again); otherwise (e.g.
    /// `x.tmp` → `x`) it is announced as a new file. When nothing at the
    /// new name is accepted (`x` → `x.tmp`), the old one is announced gone.
    /// What counts as announced includes what waits to be published (`a` →
    /// `b` → `a` in quick succession is two renames).
    fn renamed(
        &self,
        from: &Path,
        to: &Path,
        is_dir: bool,
        known_now: Known,
    ) -> Result<Vec<Pending>, String> {
        let known = known_now.under(from)?;
        let mut targets = vec![(from.to_path_buf(), to.to_path_buf())];
        if is_dir {
            for e in walkdir::WalkDir::new(to).min_depth(1).into_iter().flatten() {
                if let Ok(sub) = e.path().strip_prefix(to) {
                    targets.push((from.join(sub), e.path().to_path_buf()));
                }
            }
        }
        let mut out: Vec<Pending> = Vec::new();
        for (old, new) in targets {
            let Some(mut item) = self.present(&new, None)? else {
                continue;
            };
            if let (true, Some(old_text)) = (known.contains_key(&old), old.to_str()) {
                item.msg = item.msg.with_rename(old_text.to_string());
            }
            out.push(item);
        }
        if !known.is_empty() {
            if out.is_empty() {
                return self.gone(from, is_dir, known_now);
            }
            // The old names are gone from the inventory once this is out.
            out[0].changes.insert(0, Change::Remove(from.to_path_buf()));
        }
        Ok(out)
    }

    /// Just before publishing: a removal must not go out for a path that
    /// exists again (moved back in, re-created, renamed back, possibly after
    /// its event was read), lest the destination lose what the hot
    /// directory has. When a later waiting announcement puts that path, the
    /// removal is dropped; otherwise what is there now is announced in its
    /// place. A path now holding another kind of thing (a directory where a
    /// file was) still has the old one's removal go out, before the new one.
    /// Returns whether `pending` changed.
    fn settle_removals(&self, pending: &mut Vec<Pending>) -> bool {
        if !pending.iter().any(|item| removal_of(item).is_some()) {
            return false;
        }
        let mut last_put: HashMap<PathBuf, usize> = HashMap::new();
        for (i, item) in pending.iter().enumerate() {
            for c in &item.changes {
                if let Change::Put(p, _) = c {
                    last_put.insert(p.clone(), i);
                }
            }
        }
        let mut changed = false;
        for (i, item) in std::mem::take(pending).into_iter().enumerate() {
            let Some((path, was_dir)) = removal_of(&item).map(|(p, d)| (p.to_path_buf(), d)) else {
                pending.push(item);
                continue;
            };
            let path = path.as_path();
            let is_dir = match std::fs::symlink_metadata(path) {
                Ok(meta) => meta.is_dir(),
                Err(_) => {
                    pending.push(item);
                    continue;
                }
            };
            if is_dir != was_dir {
                pending.push(item);
                continue;
            }
            changed = true;
            if last_put.get(path).is_some_and(|&j| j > i) {
                tracing::debug!("{} is back: its removal is not announced", path.display());
                continue;
            }
            match self.present(path, None) {
                Ok(Some(now)) => {
                    tracing::info!(
                        "{} is back: announced as it is instead of removed",
                        path.display()
                    );
                    pending.push(now);
                }
                // Gone again after all: the removal stands.
                Ok(None) if std::fs::symlink_metadata(path).is_err() => pending.push(item),
                // There, but not announced (rejected, or its kind of event
                // is off): nothing goes out for it.
                Ok(None) => {}
                Err(e) => tracing::warn!("{e}; its removal is not announced either"),
            }
        }
        changed
    }

    /// Compares a start-up scan of the `roots` with the inventory: announces what
    /// is new or changed, and what was announced but is gone.
    fn reconcile(&self, roots: &[PathBuf], scan: &[FsEvent], inv: &Inventory) -> Vec<Pending> {
        let mut out = Vec::new();
        let mut present = HashSet::new();
        let nothing_waits = Unpublished::default();
        let known = Known {
            inv,
            unpublished: &nothing_waits,
        };
        for ev in scan {
            let p = match ev {
                FsEvent::File(p) | FsEvent::Link(p) | FsEvent::Dir(p) => p,
                _ => continue,
            };
            present.insert(p.clone());
            match self.present(p, Some(known)) {
                Ok(Some(item)) => out.push(item),
                Ok(None) => {}
                Err(e) => tracing::warn!("{e}"),
            }
        }
        let mut gone: Vec<(PathBuf, Seen)> = roots
            .iter()
            .flat_map(|r| inv.under(r).unwrap_or_default())
            .filter(|(p, _)| !present.contains(p))
            .collect();
        gone.sort_by(|a, b| b.0.cmp(&a.0));
        for (p, s) in gone {
            match self.gone_one(&p, s.kind == Kind::Dir) {
                Ok(Some(item)) => out.push(item),
                Ok(None) => {}
                Err(e) => tracing::warn!("{e}"),
            }
        }
        out
    }
}
