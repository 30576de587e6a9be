//! Instance processes: starting them, telling which are alive, stopping
//! them, and the supervisor that keeps the started ones running.
//!
//! Every instance is a child process running `pitcher instance --no N
//! component/config`, with its output appended to its log. It holds a lock
//! on its pid file for life, so liveness is read from the lock (see
//! [`crate::state::pidfile`]). A config is *started* while its state
//! directory holds a `started` marker; the supervisor (one per user, also
//! held by a locked pid file) runs the instances of every started config,
//! and restarts one that exits within a second or two, backing off when it
//! keeps crashing.
//!
//! * [`run`](supervise): the supervisor's loop; [`health`]: what it writes
//!   for `status` and `sanity` (restarts, crash loops, its heartbeat).
//! * [`report`]: the rows and totals of `status` and `/metrics`, from the
//!   state directory; [`procinfo`]: memory and CPU from /proc;
//!   [`metrics_http`]: the Prometheus endpoint.
//! * [`process`]: spawning and signalling; [`procs`]: finding pitcher
//!   processes in /proc (strays).
//! * [`sanity`]: the cron job that brings everything back; [`lock`]: the
//!   `sanitizing` lock that keeps it apart from `start`/`stop`.
//! * [`systemd`]: the user unit, and telling systemd how the supervisor is.

pub mod health;
pub mod lock;
pub mod metrics_http;
pub mod process;
pub mod procinfo;
pub mod procs;
pub mod report;
mod run;
pub mod sanity;
pub mod systemd;

use crate::config::Component;
use crate::state::{pidfile, Paths};
use std::path::PathBuf;

pub use health::{health, supervisor_is_systemd, Health};
pub use process::{ensure_supervisor, spawn_instance, stop_pids};
pub use run::{restart_delay, supervise};

/// The marker whose presence means "keep this config running".
pub fn started_marker(paths: &Paths, component: Component, name: &str) -> PathBuf {
    paths.config_state(component, name).join("started")
}

/// The marker that keeps a config from starting (`disable`).
pub fn disabled_marker(paths: &Paths, component: Component, name: &str) -> PathBuf {
    paths.config_state(component, name).join("disabled")
}

/// The live instances of a config: (instance number, pid), from the pid
/// files of its state directory.
pub fn live_instances(paths: &Paths, component: Component, name: &str) -> Vec<(u32, i32)> {
    let dir = paths.config_state(component, name);
    let prefix = format!("{}_{}_", component.name(), name);
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return out;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(n) = file
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".pid"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(pid) = pidfile::read_live(&e.path()) {
            out.push((n, pid));
        }
    }
    out.sort();
    out
}
