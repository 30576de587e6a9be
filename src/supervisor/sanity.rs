//! `pitcher sanity`: the cron job that puts things right, as sr3's.
//!
//! One run, under the `sanitizing` lock (skipped while a `start`/`stop`
//! runs):
//!
//! 1. hung instances (alive, but neither metrics nor log written for
//!    `hung_after`; instances refresh their metrics every second even when
//!    idle) get SIGKILL, and the supervisor starts them again;
//! 2. strays (pitcher instances of this state directory that no started
//!    config accounts for) are stopped, SIGTERM then SIGKILL;
//! 3. the supervisor is brought back when it is gone (only if some config
//!    is started), or replaced when its heartbeat stopped;
//! 4. missing instances are left to the supervisor, and the run waits a
//!    little to report whether they came back.
//!
//! Every action is one [`Finding`], one line in the report.

use super::health::{self, CRASH_LOOP_EXITS};
use super::procs::{self, Role};
use super::{disabled_marker, ensure_supervisor, live_instances, started_marker, stop_pids};
use crate::config::{self, Component};
use crate::state::{pidfile, InstanceFiles, Paths};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

/// How a sanity run judges and acts.
#[derive(Debug, Clone)]
pub struct Options {
    /// Instances silent this long are hung (sr3: 450 s).
    pub hung_after: Duration,
    /// A supervisor whose heartbeat is this old is hung.
    pub supervisor_hung_after: Duration,
    /// How long strays have after SIGTERM.
    pub grace: Duration,
    /// How long to wait for missing instances to come back before
    /// reporting.
    pub wait: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            hung_after: health::HUNG_AFTER,
            supervisor_hung_after: Duration::from_secs(60),
            grace: Duration::from_secs(10),
            wait: Duration::from_secs(10),
        }
    }
}

/// One thing sanity found and did.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// The supervisor was not running: started.
    SupervisorStarted { pid: i32 },
    /// The supervisor's heartbeat had stopped: killed (then started again).
    SupervisorHung { pid: i32, silent: u64 },
    /// The supervisor could not be started.
    SupervisorFailed { error: String },
    /// An instance was alive but silent: killed.
    Hung {
        config: String,
        no: u32,
        pid: i32,
        silent: u64,
    },
    /// A pitcher instance no started config accounts for: stopped.
    Stray {
        pid: i32,
        cmdline: String,
        why: String,
        killed: bool,
    },
    /// A config had fewer instances than configured.
    Missing {
        config: String,
        before: u32,
        after: u32,
        expected: u32,
        /// Why some are still missing, when the supervisor says so.
        note: Option<String>,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::SupervisorStarted { pid } => {
                write!(f, "supervisor was not running: started (pid {pid})")
            }
            Finding::SupervisorHung { pid, silent } => write!(
                f,
                "supervisor pid {pid} hung (no heartbeat for {silent}s): killed"
            ),
            Finding::SupervisorFailed { error } => {
                write!(f, "supervisor was not running and could not be started: {error}")
            }
            Finding::Hung {
                config,
                no,
                pid,
                silent,
            } => write!(
                f,
                "{config} instance {no} (pid {pid}) hung (silent for {silent}s): killed; the supervisor restarts it"
            ),
            Finding::Stray {
                pid,
                cmdline,
                why,
                killed,
            } => write!(
                f,
                "stray pid {pid} \"{cmdline}\" ({why}): {}",
                if *killed { "killed after SIGTERM" } else { "stopped" }
            ),
            Finding::Missing {
                config,
                before,
                after,
                expected,
                note,
            } => {
                write!(f, "{config} had {before}/{expected} instances; ")?;
                if after >= expected {
                    write!(f, "all {expected} running again")
                } else {
                    write!(f, "{after}/{expected} so far")?;
                    match note {
                        Some(n) => write!(f, " ({n})"),
                        None => Ok(()),
                    }
                }
            }
        }
    }
}

/// What a sanity run did.
#[derive(Debug)]
pub enum Outcome {
    /// A `start`, `stop` or another sanity was running: nothing done.
    Skipped,
    /// The run happened.
    Done {
        findings: Vec<Finding>,
        /// Started configs, their expected instances, the supervisor.
        configs: u32,
        instances: u32,
        supervisor: Option<i32>,
    },
}

/// A started config and how many instances it wants.
struct Started {
    component: Component,
    name: String,
    instances: u32,
}

impl Started {
    fn label(&self) -> String {
        format!("{}/{}", self.component, self.name)
    }
}

/// Runs sanity once for the configs and processes of `paths`.
pub fn run(paths: &Paths, opts: &Options) -> std::io::Result<Outcome> {
    let Some(_lock) = super::lock::try_sanitizing(paths)? else {
        return Ok(Outcome::Skipped);
    };
    let started = started_configs(paths);
    let mut findings = Vec::new();
    let before: HashMap<String, u32> = started
        .iter()
        .map(|s| {
            (
                s.label(),
                live_instances(paths, s.component, &s.name).len() as u32,
            )
        })
        .collect();
    let killed = end_hung(paths, &started, opts, &mut findings);
    end_strays(paths, &started, &killed, opts, &mut findings);
    let supervisor = if started.is_empty() {
        pidfile::read_live(&paths.supervisor_pid())
    } else {
        keep_supervisor(paths, opts, &mut findings)
    };
    let missing: Vec<&Started> = started
        .iter()
        .filter(|s| before.get(&s.label()).copied().unwrap_or(0) < s.instances)
        .collect();
    if (!missing.is_empty() || !killed.is_empty()) && supervisor.is_some() {
        wait_for_instances(paths, &started, opts.wait);
    }
    for s in missing {
        let after = live_instances(paths, s.component, &s.name).len() as u32;
        findings.push(Finding::Missing {
            config: s.label(),
            before: before.get(&s.label()).copied().unwrap_or(0),
            after,
            expected: s.instances,
            note: crash_note(paths, s),
        });
    }
    Ok(Outcome::Done {
        findings,
        configs: started.len() as u32,
        instances: started.iter().map(|s| s.instances).sum(),
        supervisor,
    })
}

/// The configs marked started (not disabled) whose files load.
fn started_configs(paths: &Paths) -> Vec<Started> {
    config::list(&paths.config_dir)
        .into_iter()
        .filter(|(c, n)| {
            started_marker(paths, *c, n).exists() && !disabled_marker(paths, *c, n).exists()
        })
        .filter_map(|(component, name)| {
            let cfg = config::load(&paths.config_dir, component, &name).ok()?;
            Some(Started {
                component,
                name,
                instances: cfg.instances,
            })
        })
        .collect()
}

/// SIGKILLs the instances of started configs that have been silent for
/// `hung_after`; returns their pids.
fn end_hung(
    paths: &Paths,
    started: &[Started],
    opts: &Options,
    findings: &mut Vec<Finding>,
) -> Vec<i32> {
    let mut killed = Vec::new();
    for s in started {
        for (no, pid) in live_instances(paths, s.component, &s.name) {
            if no == 0 || no > s.instances {
                continue; // a foreground run is its user's business; extras are strays
            }
            let Some(silent) = health::silent_for(paths, s.component, &s.name, no) else {
                continue;
            };
            if silent <= opts.hung_after.as_secs_f64() {
                continue;
            }
            // SIGCONT first, so a stopped (SIGSTOP) process dies at once.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
            killed.push(pid);
            findings.push(Finding::Hung {
                config: s.label(),
                no,
                pid,
                silent: silent as u64,
            });
        }
    }
    // The supervisor notices the exits; wait until the locks are free.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5)
        && killed.iter().any(|p| crate::state::proc::alive(*p))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    killed
}

/// Processes younger than this are not judged: a supervisor may have just
/// started them, before they took their pid file.
const YOUNG: f64 = 10.0;

/// Stops the pitcher instances of this state directory that no started
/// config accounts for.
fn end_strays(
    paths: &Paths,
    started: &[Started],
    skip: &[i32],
    opts: &Options,
    findings: &mut Vec<Finding>,
) {
    let mut strays = Vec::new();
    for p in procs::pitcher_processes(paths) {
        let Role::Instance {
            component,
            name,
            no,
        } = &p.role
        else {
            continue;
        };
        if *no == 0
            || skip.contains(&p.pid)
            || crate::state::proc::age(p.pid).is_none_or(|a| a.as_secs_f64() < YOUNG)
        {
            continue;
        }
        let why = match started
            .iter()
            .find(|s| s.component == *component && s.name == *name)
        {
            None if !paths.config_file(*component, name).exists() => "no such config".to_string(),
            None => "its config is not started".to_string(),
            Some(s) if *no > s.instances => {
                format!("instance {no} above instances {}", s.instances)
            }
            Some(_) => {
                let pid_file = InstanceFiles::new(paths, *component, name, *no).pid_file();
                if pidfile::read_live(&pid_file) == Some(p.pid) {
                    continue;
                }
                "not the holder of its pid file".to_string()
            }
        };
        strays.push((p, why));
    }
    if strays.is_empty() {
        return;
    }
    let pids: Vec<i32> = strays.iter().map(|(p, _)| p.pid).collect();
    let killed = stop_pids(&pids, opts.grace);
    for (p, why) in strays {
        findings.push(Finding::Stray {
            pid: p.pid,
            cmdline: p.cmdline,
            why,
            killed: killed.contains(&p.pid),
        });
    }
}

/// Makes sure a live, beating supervisor runs; returns its pid.
fn keep_supervisor(paths: &Paths, opts: &Options, findings: &mut Vec<Finding>) -> Option<i32> {
    if let Some(pid) = pidfile::read_live(&paths.supervisor_pid()) {
        let silent = health::running_supervisor(paths)
            .map(|r| crate::state::now_epoch() - r.updated)
            .unwrap_or(0.0);
        if silent <= opts.supervisor_hung_after.as_secs_f64() {
            return Some(pid);
        }
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
        findings.push(Finding::SupervisorHung {
            pid,
            silent: silent as u64,
        });
        let t0 = Instant::now();
        while pidfile::read_live(&paths.supervisor_pid()).is_some()
            && t0.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    match ensure_supervisor(paths) {
        Ok(pid) => {
            findings.push(Finding::SupervisorStarted { pid });
            Some(pid)
        }
        Err(e) => {
            findings.push(Finding::SupervisorFailed {
                error: e.to_string(),
            });
            None
        }
    }
}

/// Waits (at most `limit`) until every started config runs its instances.
fn wait_for_instances(paths: &Paths, started: &[Started], limit: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        let all = started
            .iter()
            .all(|s| live_instances(paths, s.component, &s.name).len() as u32 >= s.instances);
        if all {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Why the supervisor holds instances back, when they crash-loop.
fn crash_note(paths: &Paths, s: &Started) -> Option<String> {
    let r = health::config_report(paths, s.component, &s.name)?;
    let i = r
        .instances
        .iter()
        .filter(|i| i.quick_exits >= CRASH_LOOP_EXITS)
        .max_by_key(|i| i.quick_exits)?;
    Some(format!(
        "crash loop: instance {} exited {} times in a row{}; see {}",
        i.no,
        i.quick_exits,
        i.last_exit
            .as_ref()
            .map(|e| format!(", last {e}"))
            .unwrap_or_default(),
        paths.log_file(s.component, &s.name, i.no).display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_finding_is_one_line_naming_what_was_done() {
        let lines = [
            Finding::SupervisorStarted { pid: 7 }.to_string(),
            Finding::Hung {
                config: "sender/x".into(),
                no: 2,
                pid: 9,
                silent: 500,
            }
            .to_string(),
            Finding::Stray {
                pid: 3,
                cmdline: "pitcher instance --no 4 sender/x".into(),
                why: "instance 4 above instances 2".into(),
                killed: false,
            }
            .to_string(),
            Finding::Missing {
                config: "sender/x".into(),
                before: 1,
                after: 1,
                expected: 2,
                note: Some("crash loop".into()),
            }
            .to_string(),
        ];
        for l in &lines {
            assert!(!l.contains('\n'), "{l}");
        }
        assert!(lines[0].contains("started (pid 7)"));
        assert!(lines[1].contains("sender/x instance 2 (pid 9) hung"));
        assert!(lines[2].starts_with("stray pid 3"));
        assert_eq!(
            lines[3],
            "sender/x had 1/2 instances; 1/2 so far (crash loop)"
        );
    }
}
