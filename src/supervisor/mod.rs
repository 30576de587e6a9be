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

pub mod metrics_http;
pub mod process;
pub mod procinfo;
pub mod report;

use crate::config::{self, Component};
use crate::state::{pidfile, InstanceFiles, Paths};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

pub use process::{ensure_supervisor, spawn_instance, stop_pids};

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

/// How one instance slot has fared, for restart backoff.
#[derive(Debug)]
struct Slot {
    child: Option<Child>,
    last_start: Instant,
    /// Consecutive exits within a minute of starting.
    quick_exits: u32,
}

/// The delay before restarting an instance that exited `quick_exits` times
/// in a row soon after starting: immediate at first, then doubling to a
/// minute.
pub fn restart_delay(quick_exits: u32) -> Duration {
    match quick_exits {
        0 | 1 => Duration::ZERO,
        n => Duration::from_secs(1u64 << (n - 2).min(6)).min(Duration::from_secs(60)),
    }
}

/// The supervisor's loop: every half second, make the started configs'
/// instances match their `instances`. Returns when `stop` turns true, after
/// stopping every instance gracefully.
pub async fn supervise(paths: Paths, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut slots: HashMap<(Component, String, u32), Slot> = HashMap::new();
    let mut bad_configs: HashMap<PathBuf, std::time::SystemTime> = HashMap::new();
    tracing::info!("supervisor started (pid {})", std::process::id());
    while !*stop.borrow() {
        for (component, name) in config::list(&paths.config_dir) {
            if !started_marker(&paths, component, &name).exists() {
                continue;
            }
            let cfg = match config::load(&paths.config_dir, component, &name) {
                Ok(c) => {
                    bad_configs.remove(&paths.config_file(component, &name));
                    c
                }
                Err(e) => {
                    let file = paths.config_file(component, &name);
                    let mtime = std::fs::metadata(&file).and_then(|m| m.modified()).ok();
                    if mtime.is_some() && bad_configs.get(&file) != mtime.as_ref() {
                        tracing::error!("{e}: not starting {component}/{name}");
                        bad_configs.insert(file, mtime.unwrap_or(std::time::UNIX_EPOCH));
                    }
                    continue;
                }
            };
            let live: HashMap<u32, i32> = live_instances(&paths, component, &name)
                .into_iter()
                .collect();
            for n in 1..=cfg.instances {
                let key = (component, name.clone(), n);
                let slot = slots.entry(key).or_insert(Slot {
                    child: None,
                    last_start: Instant::now() - Duration::from_secs(3600),
                    quick_exits: 0,
                });
                if let Some(child) = slot.child.as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        if slot.last_start.elapsed() < Duration::from_secs(60) {
                            slot.quick_exits += 1;
                        } else {
                            slot.quick_exits = 1;
                        }
                        tracing::warn!("{component}/{name} instance {n} exited ({status})");
                        slot.child = None;
                    }
                }
                if live.contains_key(&n) || slot.child.is_some() {
                    continue;
                }
                if slot.last_start.elapsed()
                    < restart_delay(slot.quick_exits).max(Duration::from_millis(500))
                {
                    continue;
                }
                match spawn_instance(&paths, component, &name, n) {
                    Ok(child) => {
                        tracing::info!(
                            "started {component}/{name} instance {n} (pid {})",
                            child.id()
                        );
                        slot.child = Some(child);
                        slot.last_start = Instant::now();
                    }
                    Err(e) => tracing::error!("cannot start {component}/{name} instance {n}: {e}"),
                }
            }
            // Instances above the configured count (scaled down).
            let extra: Vec<i32> = live
                .iter()
                .filter(|(n, _)| **n > cfg.instances)
                .map(|(_, p)| *p)
                .collect();
            if !extra.is_empty() {
                stop_pids(&extra, Duration::from_secs(10));
            }
        }
        // Reap children of configs the CLI stopped (no zombies).
        for ((component, name, _), s) in slots.iter_mut() {
            if !started_marker(&paths, *component, name).exists() {
                if let Some(Ok(Some(_))) = s.child.as_mut().map(|c| c.try_wait()) {
                    s.child = None;
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), stop.changed()).await;
    }
    let pids: Vec<i32> = slots
        .values()
        .filter_map(|s| s.child.as_ref().map(|c| c.id() as i32))
        .collect();
    tracing::info!("supervisor stopping {} instances", pids.len());
    stop_pids(&pids, Duration::from_secs(15));
    for s in slots.values_mut() {
        if let Some(c) = s.child.as_mut() {
            let _ = c.wait();
        }
    }
}

/// The files of instance `n` (for callers that only have names).
pub fn instance_files(paths: &Paths, component: Component, name: &str, n: u32) -> InstanceFiles {
    InstanceFiles::new(paths, component, name, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delay_backs_off_when_an_instance_keeps_crashing() {
        assert_eq!(restart_delay(0), Duration::ZERO);
        assert_eq!(restart_delay(1), Duration::ZERO);
        assert_eq!(restart_delay(2), Duration::from_secs(1));
        assert_eq!(restart_delay(4), Duration::from_secs(4));
        assert_eq!(restart_delay(50), Duration::from_secs(60));
    }
}
