//! What the supervisor tells the rest of pitcher, through files, so that
//! `status` and `sanity` answer without asking it anything.
//!
//! * `<state>/supervisor.json` ([`SupervisorReport`]): its pid, whether
//!   systemd runs it, and a heartbeat rewritten every few seconds (a
//!   supervisor whose heartbeat stops is hung; `sanity` replaces it).
//! * `<config state>/supervisor.json` ([`ConfigReport`]): per instance, how
//!   often it was restarted, why it last exited, and until when a
//!   crash-looping instance is held back. Rewritten when something happens.
//!
//! [`health`] folds these and the instances' metrics into the one word
//! `status` shows when something is wrong: `loop`, `hung` or `wVip`.

use crate::config::Component;
use crate::state::metrics::Metrics;
use crate::state::{pidfile, InstanceFiles, Paths};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The supervisor's own heartbeat file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SupervisorReport {
    /// Its process id.
    pub pid: u32,
    /// True when systemd runs it (`pitcher supervise` from the user unit).
    pub systemd: bool,
    /// When it started and when it last wrote this file (epoch seconds).
    pub started: f64,
    pub updated: f64,
    /// Started configs and instances it is keeping up at the last beat.
    pub configs: u32,
    pub instances: u32,
}

/// One instance slot as the supervisor sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InstanceReport {
    /// Instance number (1..=instances).
    pub no: u32,
    /// Pid of the child it started last, if it still runs.
    pub pid: Option<u32>,
    /// Restarts since the supervisor started (exits it had to make up for).
    pub restarts: u32,
    /// Exits in a row, each within a minute of its start.
    pub quick_exits: u32,
    /// How the last run ended (`exit status: 1`, `signal: 9 (SIGKILL)`).
    pub last_exit: Option<String>,
    /// When it ended (epoch seconds).
    pub last_exit_at: Option<f64>,
    /// While crash-looping: not started again before this (epoch seconds).
    pub backoff_until: Option<f64>,
}

/// The supervisor's view of one config's instances.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ConfigReport {
    /// Pid of the supervisor that wrote it.
    pub supervisor_pid: u32,
    /// When it was written (epoch seconds).
    pub updated: f64,
    pub instances: Vec<InstanceReport>,
}

/// Quick exits in a row from which an instance counts as crash-looping.
pub const CRASH_LOOP_EXITS: u32 = 3;

impl ConfigReport {
    /// True when some instance keeps exiting soon after it starts.
    pub fn crash_looping(&self) -> bool {
        self.instances
            .iter()
            .any(|i| i.quick_exits >= CRASH_LOOP_EXITS)
    }
}

/// `<state>/supervisor.json`.
pub fn supervisor_file(paths: &Paths) -> PathBuf {
    paths.state_dir.join("supervisor.json")
}

/// `<config state>/supervisor.json`.
pub fn config_file(paths: &Paths, component: Component, name: &str) -> PathBuf {
    paths.config_state(component, name).join("supervisor.json")
}

fn read<T: for<'de> Deserialize<'de>>(path: &std::path::Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn write<T: Serialize>(path: &std::path::Path, value: &T) {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => {
            if let Err(e) = crate::state::write_atomic(path, &body) {
                tracing::warn!("cannot write {}: {e}", path.display());
            }
        }
        Err(e) => tracing::warn!("cannot encode {}: {e}", path.display()),
    }
}

/// Writes the supervisor's heartbeat.
pub fn save_supervisor(paths: &Paths, r: &SupervisorReport) {
    write(&supervisor_file(paths), r);
}

/// Writes one config's instance report.
pub fn save_config(paths: &Paths, component: Component, name: &str, r: &ConfigReport) {
    write(&config_file(paths, component, name), r);
}

/// The heartbeat of the supervisor that runs now, if one runs (a file left
/// by a dead one is ignored).
pub fn running_supervisor(paths: &Paths) -> Option<SupervisorReport> {
    let pid = pidfile::read_live(&paths.supervisor_pid())?;
    let r: SupervisorReport = read(&supervisor_file(paths))?;
    (r.pid as i32 == pid).then_some(r)
}

/// True when the running supervisor is systemd's (`pitcher stop` leaves
/// it running then: systemd would only start it again).
pub fn supervisor_is_systemd(paths: &Paths) -> bool {
    running_supervisor(paths).is_some_and(|r| r.systemd)
}

/// What the supervisor last wrote about a config, if it was the running
/// supervisor that wrote it.
pub fn config_report(paths: &Paths, component: Component, name: &str) -> Option<ConfigReport> {
    let r: ConfigReport = read(&config_file(paths, component, name))?;
    let live = pidfile::read_live(&paths.supervisor_pid())?;
    (r.supervisor_pid as i32 == live).then_some(r)
}

/// Something wrong with a started config that `status` should show in its
/// State column, sr3's four-letter words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// An instance keeps crashing; the supervisor holds it back (`loop`).
    CrashLoop,
    /// An instance is alive but has not refreshed its metrics for
    /// `hung_after` (`hung`).
    Hung,
    /// Every live instance is passive: none of its `vip` is here (`wVip`).
    WaitingForVip,
}

impl Health {
    /// The word for `status`.
    pub fn word(self) -> &'static str {
        match self {
            Health::CrashLoop => "loop",
            Health::Hung => "hung",
            Health::WaitingForVip => "wVip",
        }
    }
}

/// How long an instance may go without refreshing its metrics before it
/// counts as hung (sr3's runStateThreshold_hung). Instances refresh them
/// every second, idle or not.
pub const HUNG_AFTER: std::time::Duration = std::time::Duration::from_secs(450);

/// The seconds since live instance `n` of a config last showed progress:
/// its metrics file or its log written, whichever is newer (its pid file
/// when it has written neither yet).
pub fn silent_for(paths: &Paths, component: Component, name: &str, n: u32) -> Option<f64> {
    let files = InstanceFiles::new(paths, component, name, n);
    let now = crate::state::now_epoch();
    let mtime = |p: PathBuf| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
    };
    let metrics = Metrics::load(&files.metrics_file())
        .filter(|m| pidfile::read_live(&files.pid_file()) == Some(m.pid as i32))
        .map(|m| m.updated);
    let log = mtime(paths.log_file(component, name, n));
    let last = [metrics, log, mtime(files.pid_file())]
        .into_iter()
        .flatten()
        .fold(f64::MIN, f64::max);
    (last > f64::MIN).then(|| (now - last).max(0.0))
}

/// The one problem `status` should show for a started config, if any.
pub fn health(paths: &Paths, component: Component, name: &str) -> Option<Health> {
    if config_report(paths, component, name).is_some_and(|r| r.crash_looping()) {
        return Some(Health::CrashLoop);
    }
    let live = super::live_instances(paths, component, name);
    let live: Vec<u32> = live
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| *n > 0)
        .collect();
    if live.iter().any(|n| {
        silent_for(paths, component, name, *n).is_some_and(|s| s > HUNG_AFTER.as_secs_f64())
    }) {
        return Some(Health::Hung);
    }
    let passive = |n: &u32| {
        Metrics::load(&InstanceFiles::new(paths, component, name, *n).metrics_file())
            .is_some_and(|m| m.waiting_for_vip)
    };
    if !live.is_empty() && live.iter().all(passive) {
        return Some(Health::WaitingForVip);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_quick_exits_in_a_row_make_a_crash_loop() {
        let mut r = ConfigReport::default();
        r.instances.push(InstanceReport {
            no: 1,
            quick_exits: 2,
            ..Default::default()
        });
        assert!(!r.crash_looping());
        r.instances[0].quick_exits = CRASH_LOOP_EXITS;
        assert!(r.crash_looping());
    }

    #[test]
    fn a_report_left_by_a_dead_supervisor_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            config_dir: dir.path().join("c"),
            state_dir: dir.path().join("s"),
        };
        save_supervisor(
            &paths,
            &SupervisorReport {
                pid: 1,
                systemd: true,
                ..Default::default()
            },
        );
        assert!(running_supervisor(&paths).is_none());
        assert!(!supervisor_is_systemd(&paths));
        let _lock = pidfile::PidLock::acquire(&paths.supervisor_pid())
            .unwrap()
            .unwrap();
        save_supervisor(
            &paths,
            &SupervisorReport {
                pid: std::process::id(),
                systemd: true,
                ..Default::default()
            },
        );
        assert!(supervisor_is_systemd(&paths));
    }
}
