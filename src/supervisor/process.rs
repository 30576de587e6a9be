//! Spawning and signalling processes: instances, and the supervisor
//! itself when `start` or `sanity` finds it gone.

use crate::config::Component;
use crate::state::{pidfile, Paths};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Opens (creating) a log file for appending, mode 0600.
fn log_for_append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// This program, with the config and state roots passed on explicitly.
fn pitcher(paths: &Paths) -> std::io::Result<Command> {
    // After an upgrade in place, /proc/self/exe reads "<path> (deleted)":
    // start the new binary at that path.
    let mut cmd = Command::new(super::systemd::current_exe()?);
    cmd.env("PITCHER_CONFIG_DIR", &paths.config_dir)
        .env("PITCHER_STATE_DIR", &paths.state_dir);
    Ok(cmd)
}

/// Starts instance `n` of `component/name` in its own process group, with
/// stdin from /dev/null and its output appended to its log.
pub fn spawn_instance(
    paths: &Paths,
    component: Component,
    name: &str,
    n: u32,
) -> std::io::Result<Child> {
    let log = log_for_append(&paths.log_file(component, name, n))?;
    pitcher(paths)?
        .args([
            "instance",
            "--no",
            &n.to_string(),
            &format!("{}/{}", component.name(), name),
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
}

/// Makes sure the user's supervisor runs; starts it if not: through
/// systemd when the pitcher unit is installed for these directories,
/// detached otherwise (and when systemd fails). Returns its pid.
pub fn ensure_supervisor(paths: &Paths) -> std::io::Result<i32> {
    if let Some(pid) = pidfile::read_live(&paths.supervisor_pid()) {
        return Ok(pid);
    }
    if super::systemd::installed_for(paths) && !super::systemd::managed() {
        match super::systemd::systemctl(&["start", super::systemd::UNIT_NAME]) {
            Ok(()) => {
                if let Some(pid) = wait_for_supervisor(paths, Duration::from_secs(10)) {
                    return Ok(pid);
                }
                tracing::warn!("systemd did not start the supervisor; starting it detached");
            }
            Err(e) => tracing::warn!("{e}; starting the supervisor detached"),
        }
    }
    let log = log_for_append(&paths.supervisor_log())?;
    let mut child = pitcher(paths)?
        .arg("supervise")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(pid) = pidfile::read_live(&paths.supervisor_pid()) {
            // It reparents to init when we exit; nothing to wait for here.
            std::mem::forget(child);
            return Ok(pid);
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Another supervisor may have won the race for the lock.
            if let Some(pid) = pidfile::read_live(&paths.supervisor_pid()) {
                return Ok(pid);
            }
            return Err(std::io::Error::other(format!(
                "the supervisor exited at once ({status}); see {}",
                paths.supervisor_log().display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(std::io::Error::other(
        "the supervisor did not start within 10 s",
    ))
}

/// The supervisor's pid once one holds the lock (at most `limit`).
fn wait_for_supervisor(paths: &Paths, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(pid) = pidfile::read_live(&paths.supervisor_pid()) {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

use crate::state::proc::alive;

/// Stops processes gracefully: SIGTERM, then SIGKILL for those still alive
/// after `grace`. Returns the pids that had to be killed.
pub fn stop_pids(pids: &[i32], grace: Duration) -> Vec<i32> {
    for &p in pids {
        let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    let mut left: Vec<i32> = pids.to_vec();
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left.retain(|&p| alive(p));
    }
    for &p in &left {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    left
}
