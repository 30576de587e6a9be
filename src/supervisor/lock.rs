//! Keeping `sanity` apart from `start`/`stop`, and one supervisor per user.
//!
//! `<state>/sanitizing` is an flock: `sanity` takes it exclusively (and
//! skips its run when it cannot, like sr3, which refuses to sanitize while
//! start or stop runs); `start` and `stop` take it shared, so they run side
//! by side but wait for a sanity run to end. A cron'd sanity can so never
//! restart what a `stop` is stopping.

use super::health;
use crate::state::pidfile::{self, PidLock};
use crate::state::Paths;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `<state>/sanitizing`.
pub fn sanitizing_file(paths: &Paths) -> PathBuf {
    paths.state_dir.join("sanitizing")
}

fn open(paths: &Paths) -> io::Result<File> {
    std::fs::create_dir_all(&paths.state_dir)?;
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(sanitizing_file(paths))
}

/// Held while `sanity` runs; released when dropped.
#[derive(Debug)]
pub struct Sanitizing(#[allow(dead_code)] File);

/// Takes the sanitizing lock for a sanity run; `None` while a `start`,
/// `stop` or another sanity holds it.
pub fn try_sanitizing(paths: &Paths) -> io::Result<Option<Sanitizing>> {
    let f = open(paths)?;
    match f.try_lock() {
        Ok(()) => {
            use std::io::Write;
            let mut w = &f;
            let _ = f.set_len(0);
            let _ = write!(w, "{} {}", std::process::id(), crate::state::now_epoch());
            Ok(Some(Sanitizing(f)))
        }
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Held while `start` or `stop` runs; released when dropped.
#[derive(Debug)]
pub struct Managing(#[allow(dead_code)] File);

/// Takes the lock `start` and `stop` share, waiting for a running sanity
/// to finish (at most `limit`; after that it goes ahead anyway, since a
/// stuck sanity must not keep a user from stopping pitcher).
pub fn managing(paths: &Paths, limit: Duration) -> io::Result<Option<Managing>> {
    let f = open(paths)?;
    let t0 = Instant::now();
    loop {
        match f.try_lock_shared() {
            Ok(()) => return Ok(Some(Managing(f))),
            Err(TryLockError::WouldBlock) if t0.elapsed() < limit => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Takes the user's supervisor lock. A supervisor systemd runs waits for
/// one started outside systemd (by `pitcher start`) and asks it to stop
/// first: systemd's takes over, and starts the same configs again.
pub fn supervisor_lock(paths: &Paths) -> io::Result<Option<PidLock>> {
    let file = paths.supervisor_pid();
    if !super::systemd::managed() {
        return PidLock::acquire(&file);
    }
    let t0 = Instant::now();
    let mut asked = false;
    loop {
        if let Some(lock) = PidLock::acquire(&file)? {
            return Ok(Some(lock));
        }
        if let Some(other) = pidfile::read_live(&file) {
            let systemds = health::running_supervisor(paths).is_some_and(|r| r.systemd);
            if systemds {
                return Ok(None);
            }
            if !asked {
                tracing::info!(
                    "taking over from the supervisor started outside systemd (pid {other})"
                );
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(other),
                    nix::sys::signal::Signal::SIGTERM,
                );
                asked = true;
            }
        }
        if t0.elapsed() > Duration::from_secs(60) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &std::path::Path) -> Paths {
        Paths {
            config_dir: dir.join("c"),
            state_dir: dir.join("s"),
        }
    }

    #[test]
    fn sanity_is_skipped_while_a_start_or_stop_runs_and_runs_after() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let m = managing(&p, Duration::ZERO).unwrap().expect("free");
        let m2 = managing(&p, Duration::ZERO).unwrap();
        assert!(m2.is_some(), "start and stop share the lock");
        assert!(try_sanitizing(&p).unwrap().is_none());
        drop((m, m2));
        let s = try_sanitizing(&p).unwrap().expect("free again");
        assert!(managing(&p, Duration::from_millis(200)).unwrap().is_none());
        assert!(
            try_sanitizing(&p).unwrap().is_none(),
            "one sanity at a time"
        );
        drop(s);
    }
}
