//! `pitcher stop`: clear the started marker, then SIGTERM the instances
//! and SIGKILL those still alive after a bounded wait. With no config
//! named, everything stops, the supervisor too, unless systemd runs it:
//! then it stays, idle, since systemd would only start it again.

use super::select;
use crate::state::{pidfile, Paths};
use crate::supervisor::{self, started_marker};
use std::process::ExitCode;
use std::time::Duration;

/// How long an instance has to finish its batch after SIGTERM.
const GRACE: Duration = Duration::from_secs(10);

/// `pitcher stop [configs]`.
pub fn run(paths: &Paths, specs: &[String]) -> anyhow::Result<ExitCode> {
    let targets = select(paths, specs)?;
    let _managing = supervisor::lock::managing(paths, Duration::from_secs(60))?;
    for (component, name) in &targets {
        let _ = std::fs::remove_file(started_marker(paths, *component, name));
    }
    // What runs now: the supervisor may take its instances down with it.
    let running: Vec<usize> = targets
        .iter()
        .map(|(c, n)| supervisor::live_instances(paths, *c, n).len())
        .collect();
    let mut said = false;
    if specs.is_empty() {
        if supervisor::supervisor_is_systemd(paths) {
            // systemd would only start it again: it stays, idle.
            println!("the supervisor stays under systemd (systemctl --user stop pitcher stops it)");
            said = true;
        } else if let Some(pid) = pidfile::read_live(&paths.supervisor_pid()) {
            let killed = supervisor::stop_pids(&[pid], GRACE + Duration::from_secs(5));
            match killed.is_empty() {
                true => println!("stopped the supervisor (pid {pid})"),
                false => println!(
                    "stopped the supervisor (pid {pid}; killed after {}s)",
                    GRACE.as_secs() + 5
                ),
            }
            said = true;
        }
    }
    for ((component, name), before) in targets.iter().zip(running) {
        // A supervisor may have been starting one as the marker went: look twice.
        let mut killed = Vec::new();
        let mut stopped = 0;
        for _ in 0..2 {
            let pids: Vec<i32> = supervisor::live_instances(paths, *component, name)
                .into_iter()
                .map(|(_, p)| p)
                .collect();
            stopped += pids.len();
            killed.extend(supervisor::stop_pids(&pids, GRACE));
            std::thread::sleep(Duration::from_millis(100));
        }
        // Those the supervisor's own stop ended count too.
        let n = stopped.max(before);
        match (n, killed.len()) {
            (0, _) => {}
            (n, 0) => println!("stopped {component}/{name} ({n} instances)"),
            (n, k) => println!(
                "stopped {component}/{name} ({n} instances; {k} killed after {}s)",
                GRACE.as_secs()
            ),
        }
        said |= n > 0;
    }
    if !said {
        println!("nothing was running");
    }
    Ok(ExitCode::SUCCESS)
}
