//! `pitcher status`: one row per config, read from the state directory
//! (pid file locks, metrics files, retry queues, the embedded broker), so
//! it answers at once without asking any daemon.

use super::select;
use crate::config::{self, Component};
use crate::state::metrics::Metrics;
use crate::state::{retry, InstanceFiles, Paths};
use crate::supervisor;
use serde::Serialize;
use std::process::ExitCode;

/// What `status` knows of one config.
#[derive(Debug, Serialize)]
pub struct Row {
    pub config: String,
    pub state: String,
    pub running: u32,
    pub expected: u32,
    pub retry: u64,
    pub queued: Option<u64>,
    pub lag_avg: Option<f64>,
    /// Seconds since the last file was transferred or posted.
    pub last: Option<f64>,
    pub files: u64,
    pub rejected: u64,
    pub posted: u64,
    pub failed: u64,
}

/// The row of one config.
pub fn row(paths: &Paths, component: Component, name: &str) -> Row {
    let cfg = config::load(&paths.config_dir, component, name);
    let started = supervisor::started_marker(paths, component, name).exists();
    let disabled = supervisor::disabled_marker(paths, component, name).exists();
    let live = supervisor::live_instances(paths, component, name);
    let expected = match (&cfg, started) {
        (Ok(c), true) => c.instances,
        _ => 0,
    };
    let running = live.len() as u32;
    let state = if cfg.is_err() {
        "bad"
    } else if disabled {
        "disa"
    } else if !started && running == 0 {
        "stop"
    } else if !started {
        "stra"
    } else if let Some(h) = supervisor::health(paths, component, name) {
        h.word() // loop, hung, wVip
    } else if running == 0 {
        "miss"
    } else if running < expected {
        "part"
    } else {
        "run"
    };
    let dir = paths.config_state(component, name);
    let mut r = Row {
        config: format!("{component}/{name}"),
        state: state.into(),
        running,
        expected,
        retry: 0,
        queued: None,
        lag_avg: None,
        last: None,
        files: 0,
        rejected: 0,
        posted: 0,
        failed: 0,
    };
    let (mut lag, mut lag_n) = (0.0, 0u64);
    let mut last: f64 = 0.0;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            if f.ends_with(".retry.db") {
                r.retry += retry::count(&e.path());
            } else if f.ends_with(".metrics.json") {
                if let Some(m) = Metrics::load(&e.path()) {
                    r.files += m.files_done;
                    r.rejected += m.rejected;
                    r.posted += m.posted;
                    r.failed += m.failed;
                    lag += m.lag_total;
                    lag_n += m.files_done + m.failed;
                    last = last.max(m.last_transfer);
                }
            }
        }
    }
    if lag_n > 0 {
        r.lag_avg = Some(lag / lag_n as f64);
    }
    if last > 0.0 {
        r.last = Some((crate::flow::now_epoch() - last).max(0.0));
    }
    if let Ok(c) = &cfg {
        if super::declare::consumes(c) && c.broker.as_ref().is_some_and(|u| u.scheme() == "local") {
            if let Ok(q) = crate::state::queue_name(paths, c) {
                r.queued = crate::broker::local::queue_stats(&paths.local_broker_db(), &q)
                    .ok()
                    .flatten()
                    .map(|s| s.ready + s.unacked);
            }
        }
    }
    let _ = InstanceFiles::new(paths, component, name, 1);
    r
}

fn ago(s: Option<f64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s < 60.0 => format!("{s:.0}s"),
        Some(s) if s < 3600.0 => format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
        Some(s) => format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        ),
    }
}

/// `pitcher status [configs] [--json]`.
pub fn run(paths: &Paths, specs: &[String], json: bool) -> anyhow::Result<ExitCode> {
    let rows: Vec<Row> = select(paths, specs)?
        .into_iter()
        .map(|(c, n)| row(paths, c, &n))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let width = rows
        .iter()
        .map(|r| r.config.len())
        .max()
        .unwrap_or(0)
        .max(16);
    println!(
        "{:width$}  {:5} {:>5} {:>6} {:>7} {:>7} {:>7} {:>8} {:>8} {:>7}",
        "Component/Config",
        "State",
        "Run",
        "Retry",
        "Que",
        "LagAvg",
        "Last",
        "Files",
        "Posted",
        "Rejected"
    );
    for r in &rows {
        println!(
            "{:width$}  {:5} {:>5} {:>6} {:>7} {:>7} {:>7} {:>8} {:>8} {:>7}",
            r.config,
            r.state,
            format!("{}/{}", r.running, r.expected),
            r.retry,
            r.queued
                .map(|q| q.to_string())
                .unwrap_or_else(|| "-".into()),
            r.lag_avg
                .map(|l| format!("{l:.2}s"))
                .unwrap_or_else(|| "-".into()),
            ago(r.last),
            r.files,
            r.posted,
            r.rejected
        );
    }
    let sup = crate::state::pidfile::read_live(&paths.supervisor_pid());
    let running: u32 = rows.iter().map(|r| r.running).sum();
    let missing: u32 = rows
        .iter()
        .map(|r| r.expected.saturating_sub(r.running))
        .sum();
    println!(
        "      Total configs: {} ( Processes: {running} missing: {missing} ) supervisor: {}",
        rows.len(),
        sup.map(|p| format!("pid {p}"))
            .unwrap_or_else(|| "not running".into())
    );
    Ok(ExitCode::SUCCESS)
}
