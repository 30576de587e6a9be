//! What `pitcher status`, `pitcher top` and the `/metrics` endpoint show,
//! gathered from the state directory alone: pid file locks, each
//! instance's metrics file, retry queues, the embedded broker's queue
//! counts, and `/proc` for memory, CPU time and strays. No daemon or broker
//! is asked, so a report of 100 configs takes milliseconds.

use super::procinfo::{self, ProcUsage};
use crate::config::{self, Component};
use crate::state::metrics::{Metrics, LAG_BUCKETS};
use crate::state::{pidfile, retry, Paths};
use serde::Serialize;

/// A metrics file older than this (seconds) contributes no rate: its writer
/// is gone or hung.
const STALE: f64 = 10.0;

/// One config's line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `component/name`.
    pub config: String,
    /// sr3's four-letter state: run, fore, part, miss, stop, stra, disa,
    /// bad, and for running ones lag, rtry, reje, idle.
    pub state: String,
    /// Live instances, and those a started config should have.
    pub running: u32,
    pub expected: u32,
    /// Messages in the retry queues.
    pub retry: u64,
    /// Messages waiting in the consumed queue (ready + unacked), when known.
    pub queued: Option<u64>,
    /// Mean and maximum lag (now − pubTime at accept), seconds.
    pub lag_avg: Option<f64>,
    pub lag_max: Option<f64>,
    /// Seconds since the last file was transferred or posted (else since
    /// the last message).
    pub last: Option<f64>,
    pub received: u64,
    pub files: u64,
    pub bytes: u64,
    pub rejected: u64,
    pub malformed: u64,
    pub duplicates: u64,
    pub posted: u64,
    pub failed: u64,
    /// (rejected + malformed) / received, percent.
    pub rejected_pct: Option<f64>,
    /// Messages received per second, over the last 5–10 s.
    pub msg_rate: f64,
    /// Files done per second.
    pub file_rate: f64,
    /// Bytes moved per second.
    pub data_rate: f64,
    /// ERROR and WARN log lines of the instances.
    pub errors: u64,
    pub warnings: u64,
    /// Pids of the live instances.
    pub pids: Vec<i32>,
    /// Memory of the live instances, bytes.
    pub rss: u64,
    pub uss: u64,
    /// CPU time of the live instances, seconds.
    pub cpu_user: f64,
    pub cpu_system: f64,
    /// A watch with receipts on: the files announced and still waiting for
    /// a delivery receipt, and how long the oldest has waited (seconds).
    pub receipts_pending: Option<u64>,
    pub receipts_oldest_s: Option<f64>,
    /// The instances' counters added up (for `/metrics`).
    #[serde(skip)]
    pub sum: Metrics,
    /// The component (for `/metrics`' direction of files).
    #[serde(skip)]
    pub component: Option<Component>,
}

/// The footer: everything added up.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub configs: usize,
    /// Configs whose state is `run` (or a running sub-state).
    pub running_configs: usize,
    pub processes: u32,
    pub missing: u32,
    pub strays: Vec<Stray>,
    pub rss: u64,
    pub uss: u64,
    pub cpu_user: f64,
    pub cpu_system: f64,
    pub msg_rate: f64,
    pub data_rate: f64,
    pub queued: u64,
    pub retry: u64,
    /// The supervisor's pid, when it runs.
    pub supervisor: Option<i32>,
}

/// A `pitcher instance` process of this state directory that no pid file
/// accounts for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stray {
    pub pid: i32,
    pub cmdline: String,
}

/// Rows for `configs`, and the totals over them.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
    pub totals: Totals,
}

/// The row of one config.
pub fn row(paths: &Paths, component: Component, name: &str) -> Row {
    let cfg = config::load(&paths.config_dir, component, name);
    let started = super::started_marker(paths, component, name).exists();
    let disabled = super::disabled_marker(paths, component, name).exists();
    let live = super::live_instances(paths, component, name);
    let expected = match (&cfg, started) {
        (Ok(c), true) => c.instances,
        _ => 0,
    };
    let foreground = live.iter().any(|(n, _)| *n == 0);
    let running = live.len() as u32;
    let now = crate::state::now_epoch();
    let mut r = Row {
        config: format!("{component}/{name}"),
        state: String::new(),
        running,
        expected,
        retry: 0,
        queued: None,
        lag_avg: None,
        lag_max: None,
        last: None,
        received: 0,
        files: 0,
        bytes: 0,
        rejected: 0,
        malformed: 0,
        duplicates: 0,
        posted: 0,
        failed: 0,
        rejected_pct: None,
        msg_rate: 0.0,
        file_rate: 0.0,
        data_rate: 0.0,
        errors: 0,
        warnings: 0,
        pids: live.iter().map(|(_, p)| *p).collect(),
        rss: 0,
        uss: 0,
        cpu_user: 0.0,
        cpu_system: 0.0,
        receipts_pending: None,
        receipts_oldest_s: None,
        sum: Metrics::default(),
        component: Some(component),
    };
    let (mut last_transfer, mut last_message, mut metrics_queued) = (0f64, 0f64, None);
    let dir = paths.config_state(component, name);
    let sum = &mut r.sum;
    sum.lag_buckets = vec![0; LAG_BUCKETS.len()];
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let f = e.file_name().to_string_lossy().into_owned();
        if f.ends_with(".retry.db") {
            r.retry += retry::count(&e.path());
        } else if f.ends_with(".metrics.json") {
            let Some(m) = Metrics::load(&e.path()) else {
                continue;
            };
            add_counters(sum, &m);
            if m.lag_count == 0 {
                // Written before lags were counted: each file had one.
                sum.lag_count += m.files_done + m.failed;
            }
            last_transfer = last_transfer.max(m.last_transfer);
            last_message = last_message.max(m.last_message);
            if let Some(q) = m.queued.filter(|_| now - m.updated < STALE) {
                metrics_queued = Some(metrics_queued.unwrap_or(0u64).max(q));
            }
            let rates = m.rates(now, STALE);
            r.msg_rate += rates.messages;
            r.file_rate += rates.files;
            r.data_rate += rates.bytes;
        }
    }
    r.received = sum.received;
    r.files = sum.files_done;
    r.bytes = sum.bytes_done;
    r.rejected = sum.rejected;
    r.malformed = sum.malformed;
    r.duplicates = sum.duplicates;
    r.posted = sum.posted;
    r.failed = sum.failed;
    r.errors = sum.errors;
    r.warnings = sum.warnings;
    if sum.lag_count > 0 {
        r.lag_avg = Some(sum.lag_total / sum.lag_count as f64);
        r.lag_max = Some(sum.lag_max);
    }
    if sum.received > 0 {
        r.rejected_pct = Some(100.0 * (sum.rejected + sum.malformed) as f64 / sum.received as f64);
    }
    let last = if last_transfer > 0.0 {
        last_transfer
    } else {
        last_message
    };
    if last > 0.0 {
        r.last = Some((now - last).max(0.0));
    }
    r.queued = metrics_queued;
    if component == Component::Watch {
        if let Some(s) = crate::state::receipts::summary(&crate::state::receipts::db_path(&dir)) {
            r.receipts_pending = Some(s.files);
            r.receipts_oldest_s = s.oldest.map(|t| (now - t).max(0.0));
        }
    }
    if let Ok(c) = &cfg {
        if component.consumes() && c.broker.as_ref().is_some_and(|u| u.scheme() == "local") {
            // Exact, from the embedded broker itself.
            if let Ok(q) = crate::state::queue_name(paths, c) {
                if let Ok(Some(s)) = crate::broker::local::queue_stats(&paths.local_broker_db(), &q)
                {
                    r.queued = Some(s.ready + s.unacked);
                }
            }
        }
    }
    let mut usage = ProcUsage::default();
    for pid in &r.pids {
        if let Some(u) = procinfo::usage(*pid) {
            usage += u;
        }
    }
    (r.rss, r.uss, r.cpu_user, r.cpu_system) =
        (usage.rss, usage.uss, usage.cpu_user, usage.cpu_system);
    r.state = match super::health(paths, component, name) {
        // The supervisor's and sanity's view (crash loop, hung, waiting for
        // the vip) of a started config comes before the counters'.
        Some(h) if started && cfg.is_ok() && !disabled => h.word().to_string(),
        _ => state_of(&r, cfg.is_ok(), started, disabled, foreground, now - last),
    };
    r
}

fn add_counters(sum: &mut Metrics, m: &Metrics) {
    sum.received += m.received;
    sum.rejected += m.rejected;
    sum.malformed += m.malformed;
    sum.duplicates += m.duplicates;
    sum.files_done += m.files_done;
    sum.bytes_done += m.bytes_done;
    sum.failed += m.failed;
    sum.posted += m.posted;
    sum.lag_total += m.lag_total;
    sum.lag_max = sum.lag_max.max(m.lag_max);
    sum.lag_count += m.lag_count;
    for (i, b) in m.lag_buckets.iter().enumerate().take(LAG_BUCKETS.len()) {
        sum.lag_buckets[i] += b;
    }
    sum.errors += m.errors;
    sum.warnings += m.warnings;
    sum.retry += m.retry;
}

/// sr3's state words, the checks of a running config last.
fn state_of(
    r: &Row,
    config_ok: bool,
    started: bool,
    disabled: bool,
    foreground: bool,
    quiet_for: f64,
) -> String {
    let s = if !config_ok {
        "bad"
    } else if disabled {
        "disa"
    } else if foreground && !started {
        "fore"
    } else if !started && r.running == 0 {
        "stop"
    } else if !started {
        "stra"
    } else if r.running == 0 {
        "miss"
    } else if r.running < r.expected {
        "part"
    } else if r.retry > 1000 {
        "rtry"
    } else if r.lag_avg.is_some_and(|l| l > 30.0) && quiet_for < 900.0 {
        "lag"
    } else if r.rejected_pct.is_some_and(|p| p > 80.0) {
        "reje"
    } else {
        "run"
    };
    s.to_string()
}

/// The report of `configs`, with totals and this state directory's strays.
pub fn collect(paths: &Paths, configs: &[(Component, String)]) -> Report {
    let rows: Vec<Row> = configs.iter().map(|(c, n)| row(paths, *c, n)).collect();
    let mut t = Totals {
        configs: rows.len(),
        supervisor: pidfile::read_live(&paths.supervisor_pid()),
        ..Totals::default()
    };
    for r in &rows {
        if r.running > 0 && r.running >= r.expected && r.expected > 0 {
            t.running_configs += 1;
        }
        t.processes += r.running;
        t.missing += r.expected.saturating_sub(r.running);
        t.rss += r.rss;
        t.uss += r.uss;
        t.cpu_user += r.cpu_user;
        t.cpu_system += r.cpu_system;
        t.msg_rate += r.msg_rate;
        t.data_rate += r.data_rate;
        t.queued += r.queued.unwrap_or(0);
        t.retry += r.retry;
    }
    t.strays = strays(paths);
    Report { rows, totals: t }
}

/// Instance processes of this state directory that hold no config's pid
/// file (their config was removed, or their pid file was): `stop` cannot
/// reach them.
pub fn strays(paths: &Paths) -> Vec<Stray> {
    let mut known: Vec<i32> = Vec::new();
    for (c, n) in config::list(&paths.config_dir) {
        known.extend(
            super::live_instances(paths, c, &n)
                .into_iter()
                .map(|(_, p)| p),
        );
    }
    super::procs::pitcher_processes(paths)
        .into_iter()
        .filter(|p| matches!(p.role, super::procs::Role::Instance { .. }))
        .filter(|p| !known.contains(&p.pid))
        .map(|p| Stray {
            pid: p.pid,
            cmdline: p.cmdline,
        })
        .collect()
}
