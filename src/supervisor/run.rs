//! The supervisor's loop: keep every started config's instances running.
//!
//! Every half second it compares the started configs with the live
//! instances (read from their pid file locks, so instances started by an
//! earlier supervisor are adopted, not doubled) and starts what is missing.
//! An instance that keeps exiting soon after its start is held back with a
//! growing delay (a crash loop), which it reports in
//! `<config state>/supervisor.json` for `status`; starting the config again
//! or changing its file clears the delay. On SIGTERM it stops every
//! instance gracefully before it exits.

use super::health::{self, ConfigReport, InstanceReport, SupervisorReport};
use super::{live_instances, spawn_instance, started_marker, stop_pids, systemd};
use crate::config::{self, Component};
use crate::state::now_epoch;
use crate::state::Paths;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant, SystemTime};

/// How often the loop looks.
const TICK: Duration = Duration::from_millis(500);
/// How often the heartbeat file (and systemd's watchdog) is refreshed.
const BEAT: Duration = Duration::from_secs(5);
/// An exit this soon after the start counts towards a crash loop.
const QUICK: Duration = Duration::from_secs(60);
/// How long instances have to finish their batch when the supervisor stops.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// The delay before restarting an instance that exited `quick_exits` times
/// in a row soon after starting: immediate at first, then doubling to a
/// minute.
pub fn restart_delay(quick_exits: u32) -> Duration {
    match quick_exits {
        0 | 1 => Duration::ZERO,
        n => Duration::from_secs(1u64 << (n - 2).min(6)).min(Duration::from_secs(60)),
    }
}

/// How one instance slot has fared.
#[derive(Debug, Default)]
struct Slot {
    child: Option<Child>,
    last_start: Option<Instant>,
    /// Consecutive exits within [`QUICK`] of starting.
    quick_exits: u32,
    /// Restarts since this supervisor started.
    restarts: u32,
    /// Whether an instance ran in this slot (so the next start is a restart).
    ran: bool,
    last_exit: Option<String>,
    last_exit_at: Option<f64>,
}

impl Slot {
    /// When the slot may start an instance again.
    fn ready_at(&self) -> Option<Instant> {
        self.last_start
            .map(|t| t + restart_delay(self.quick_exits).max(TICK))
    }

    fn report(&self, no: u32) -> InstanceReport {
        let now = Instant::now();
        let backoff_until = self
            .ready_at()
            .filter(|at| *at > now && self.child.is_none() && self.quick_exits > 1)
            .map(|at| now_epoch() + (at - now).as_secs_f64());
        InstanceReport {
            no,
            pid: self.child.as_ref().map(|c| c.id()),
            restarts: self.restarts,
            quick_exits: self.quick_exits,
            last_exit: self.last_exit.clone(),
            last_exit_at: self.last_exit_at,
            backoff_until,
        }
    }
}

/// What identifies "the same start" of a config: its started marker and
/// its file, as last modified. When either changes, crash counts reset.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

fn mtime(p: PathBuf) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The supervisor's state across passes.
struct Supervisor {
    paths: Paths,
    slots: HashMap<(Component, String, u32), Slot>,
    stamps: HashMap<(Component, String), Stamp>,
    bad_configs: HashMap<PathBuf, SystemTime>,
    beat: SupervisorReport,
    last_beat: Option<Instant>,
}

/// The supervisor's loop: every half second, make the started configs'
/// instances match their `instances`. Returns when `stop` turns true, after
/// stopping every instance gracefully.
pub async fn supervise(paths: Paths, mut stop: tokio::sync::watch::Receiver<bool>) {
    let now = now_epoch();
    let mut sup = Supervisor {
        beat: SupervisorReport {
            pid: std::process::id(),
            systemd: systemd::managed(),
            started: now,
            updated: now,
            configs: 0,
            instances: 0,
        },
        paths,
        slots: HashMap::new(),
        stamps: HashMap::new(),
        bad_configs: HashMap::new(),
        last_beat: None,
    };
    tracing::info!(
        "supervisor started (pid {}{})",
        std::process::id(),
        if sup.beat.systemd {
            ", under systemd"
        } else {
            ""
        }
    );
    systemd::notify("READY=1\nSTATUS=supervising");
    while !*stop.borrow() {
        sup.pass();
        let _ = tokio::time::timeout(TICK, stop.changed()).await;
    }
    systemd::notify("STOPPING=1\nSTATUS=stopping instances");
    sup.stop_all();
}

impl Supervisor {
    /// One look at every config.
    fn pass(&mut self) {
        let (mut configs, mut instances) = (0, 0);
        for (component, name) in config::list(&self.paths.config_dir) {
            if !started_marker(&self.paths, component, &name).exists() {
                self.reap_stopped(component, &name);
                continue;
            }
            configs += 1;
            instances += self.keep_up(component, &name);
        }
        self.heartbeat(configs, instances);
    }

    /// Makes one started config's instances run; returns how many are
    /// expected.
    fn keep_up(&mut self, component: Component, name: &str) -> u32 {
        let Some(cfg) = self.load(component, name) else {
            return 0;
        };
        self.reset_if_restarted(component, name);
        let live: HashMap<u32, i32> = live_instances(&self.paths, component, name)
            .into_iter()
            .collect();
        let mut changed = false;
        for n in 1..=cfg.instances {
            let slot = self
                .slots
                .entry((component, name.to_string(), n))
                .or_default();
            changed |= reap(slot, component, name, n);
            if live.contains_key(&n) || slot.child.is_some() {
                slot.ran = true;
                // Up for a while: whatever loop it was in is over.
                if slot.quick_exits > 0 && slot.last_start.is_some_and(|t| t.elapsed() > QUICK) {
                    slot.quick_exits = 0;
                    changed = true;
                }
                continue;
            }
            if slot.ready_at().is_some_and(|at| Instant::now() < at) {
                continue;
            }
            match spawn_instance(&self.paths, component, name, n) {
                Ok(child) => {
                    tracing::info!(
                        "started {component}/{name} instance {n} (pid {})",
                        child.id()
                    );
                    if slot.ran {
                        slot.restarts += 1;
                    }
                    slot.child = Some(child);
                    slot.last_start = Some(Instant::now());
                    slot.ran = true;
                    changed = true;
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
        let path = health::config_file(&self.paths, component, name);
        if changed || !path.exists() {
            self.save_report(component, name, cfg.instances);
        }
        cfg.instances
    }

    /// Loads a config; a broken one is logged once per change of its file.
    fn load(&mut self, component: Component, name: &str) -> Option<config::Config> {
        let file = self.paths.config_file(component, name);
        match config::load(&self.paths.config_dir, component, name) {
            Ok(c) => {
                self.bad_configs.remove(&file);
                Some(c)
            }
            Err(e) => {
                let m = mtime(file.clone()).unwrap_or(SystemTime::UNIX_EPOCH);
                if self.bad_configs.get(&file) != Some(&m) {
                    tracing::error!("{e}: not starting {component}/{name}");
                    self.bad_configs.insert(file, m);
                }
                None
            }
        }
    }

    /// Forgets the crash counts of a config started again (`pitcher
    /// start`/`restart` rewrite its marker) or whose file changed: the
    /// user did something, so the next start should be immediate.
    fn reset_if_restarted(&mut self, component: Component, name: &str) {
        let stamp = (
            mtime(started_marker(&self.paths, component, name)),
            mtime(self.paths.config_file(component, name)),
        );
        let key = (component, name.to_string());
        match self.stamps.insert(key, stamp) {
            Some(old) if old != stamp => {
                for ((c, n, _), s) in self.slots.iter_mut() {
                    if *c == component && n == name {
                        s.quick_exits = 0;
                        s.last_start = None;
                    }
                }
            }
            _ => {}
        }
    }

    /// Reaps the children of a config the CLI stopped (no zombies; their
    /// exits are not crashes).
    fn reap_stopped(&mut self, component: Component, name: &str) {
        for ((c, n, _), s) in self.slots.iter_mut() {
            if *c == component && n == name {
                if let Some(Ok(Some(_))) = s.child.as_mut().map(|c| c.try_wait()) {
                    s.child = None;
                }
                s.quick_exits = 0;
                s.ran = false;
            }
        }
    }

    fn save_report(&self, component: Component, name: &str, instances: u32) {
        let r = ConfigReport {
            supervisor_pid: std::process::id(),
            updated: now_epoch(),
            instances: (1..=instances)
                .map(|n| {
                    self.slots
                        .get(&(component, name.to_string(), n))
                        .map(|s| s.report(n))
                        .unwrap_or(InstanceReport {
                            no: n,
                            ..Default::default()
                        })
                })
                .collect(),
        };
        health::save_config(&self.paths, component, name, &r);
    }

    /// Refreshes the heartbeat file and systemd's watchdog every [`BEAT`].
    fn heartbeat(&mut self, configs: u32, instances: u32) {
        if self.last_beat.is_some_and(|t| t.elapsed() < BEAT) {
            return;
        }
        self.last_beat = Some(Instant::now());
        self.beat.updated = now_epoch();
        self.beat.configs = configs;
        self.beat.instances = instances;
        health::save_supervisor(&self.paths, &self.beat);
        systemd::notify(&format!(
            "WATCHDOG=1\nSTATUS={configs} configs started, {instances} instances"
        ));
    }

    /// Stops every instance of this state directory: its children and
    /// those it adopted (foreground runs, instance 0, are left alone).
    fn stop_all(&mut self) {
        let mut pids: Vec<i32> = self
            .slots
            .values()
            .filter_map(|s| s.child.as_ref().map(|c| c.id() as i32))
            .collect();
        for (component, name) in config::list(&self.paths.config_dir) {
            for (n, pid) in live_instances(&self.paths, component, &name) {
                if n > 0 && !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
        tracing::info!("supervisor stopping {} instances", pids.len());
        stop_pids(&pids, STOP_GRACE);
        for s in self.slots.values_mut() {
            if let Some(c) = s.child.as_mut() {
                let _ = c.wait();
            }
        }
    }
}

/// Notices the exit of a slot's child; true if it exited.
fn reap(slot: &mut Slot, component: Component, name: &str, n: u32) -> bool {
    let Some(child) = slot.child.as_mut() else {
        return false;
    };
    let Ok(Some(status)) = child.try_wait() else {
        return false;
    };
    let quick = slot.last_start.is_some_and(|t| t.elapsed() < QUICK);
    slot.quick_exits = if quick { slot.quick_exits + 1 } else { 1 };
    slot.child = None;
    slot.last_exit = Some(status.to_string());
    slot.last_exit_at = Some(now_epoch());
    let delay = restart_delay(slot.quick_exits);
    if delay.is_zero() {
        tracing::warn!("{component}/{name} instance {n} exited ({status}); restarting");
    } else {
        tracing::warn!(
            "{component}/{name} instance {n} exited ({status}), {} times in a row soon after its start; restarting in {}s",
            slot.quick_exits,
            delay.as_secs()
        );
    }
    true
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

    #[test]
    fn a_crash_looping_slot_reports_when_it_may_start_again() {
        let slot = Slot {
            last_start: Some(Instant::now()),
            quick_exits: 5,
            restarts: 4,
            ran: true,
            ..Default::default()
        };
        let r = slot.report(2);
        assert_eq!((r.no, r.restarts, r.quick_exits), (2, 4, 5));
        let until = r.backoff_until.expect("held back");
        let wait = until - now_epoch();
        assert!(wait > 7.0 && wait <= 8.1, "{wait}");
    }
}
