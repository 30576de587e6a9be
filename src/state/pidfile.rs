//! Pid files whose liveness is a held lock, not a guess.
//!
//! An instance keeps an exclusive `flock` on its pid file for its whole
//! life. Anyone can tell whether it is alive by trying to take the lock:
//! a lock that can be taken means the process is gone, whatever pid the
//! file names (so pid reuse cannot fool `status` or `sanity`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// A pid file this process holds locked; removed when dropped.
#[derive(Debug)]
pub struct PidLock {
    _file: File,
    path: PathBuf,
}

impl PidLock {
    /// Takes `path` for this process. `Ok(None)` when another live process
    /// holds it.
    ///
    /// Taking is serialized by an exclusive lock on `<path>.lock`, a file
    /// that is never renamed nor removed: without it, two takers could both
    /// find the pid file free and both rename theirs into place, each
    /// believing it holds the lock. Under that lock a fresh file is locked,
    /// written, then renamed into place, so the final path never names an
    /// unlocked file of a live process.
    pub fn acquire(path: &Path) -> io::Result<Option<PidLock>> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut gate_name = path.as_os_str().to_os_string();
        gate_name.push(".lock");
        let gate = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(PathBuf::from(gate_name))?;
        // Held only while taking: released when `gate` is dropped.
        gate.lock()?;
        if read_live(path).is_some() {
            return Ok(None);
        }
        let tmp = dir.join(format!(".pid.{}.tmp", std::process::id()));
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)?;
        file.try_lock().map_err(|e| match e {
            TryLockError::Error(e) => e,
            TryLockError::WouldBlock => io::Error::other("fresh pid file already locked"),
        })?;
        file.write_all(std::process::id().to_string().as_bytes())?;
        std::fs::rename(&tmp, path)?;
        drop(gate);
        Ok(Some(PidLock {
            _file: file,
            path: path.to_path_buf(),
        }))
    }

    /// The locked file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidLock {
    fn drop(&mut self) {
        // Only remove the file if it is still ours (not replaced since).
        if let (Ok(a), Ok(b)) = (std::fs::metadata(&self.path), self._file.metadata()) {
            use std::os::unix::fs::MetadataExt;
            if a.ino() == b.ino() && a.dev() == b.dev() {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// The pid in `path` if the process holding it is alive; `None` if the file
/// is missing, unreadable, or its lock is free (the holder died).
pub fn read_live(path: &Path) -> Option<i32> {
    let mut file = File::open(path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(TryLockError::WouldBlock) => {
            let mut s = String::new();
            file.read_to_string(&mut s).ok()?;
            s.trim().parse().ok()
        }
        Err(TryLockError::Error(_)) => None,
    }
}

/// Removes `path` if its holder is dead; true if it was removed.
pub fn remove_stale(path: &Path) -> bool {
    path.exists() && read_live(path).is_none() && std::fs::remove_file(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_pid_file_reads_as_alive_and_is_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x_01.pid");
        let lock = PidLock::acquire(&p).unwrap().expect("free");
        assert_eq!(read_live(&p), Some(std::process::id() as i32));
        // A second taker in the same process gets a different open file
        // description, so flock refuses it as it would another process.
        assert!(PidLock::acquire(&p).unwrap().is_none());
        drop(lock);
        assert!(!p.exists());
        assert_eq!(read_live(&p), None);
    }

    #[test]
    fn of_many_racing_takers_exactly_one_holds_the_pid_file() {
        // Each thread opens its own file descriptions, so flock treats the
        // threads as it treats processes.
        let dir = tempfile::tempdir().unwrap();
        for round in 0..40 {
            let p = dir.path().join(format!("race_{round:02}.pid"));
            let start = std::sync::Arc::new(std::sync::Barrier::new(12));
            let takers: Vec<_> = (0..12)
                .map(|_| {
                    let (p, start) = (p.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        PidLock::acquire(&p).unwrap()
                    })
                })
                .collect();
            let held: Vec<PidLock> = takers
                .into_iter()
                .filter_map(|t| t.join().unwrap())
                .collect();
            assert_eq!(held.len(), 1, "round {round}: {} holders", held.len());
            assert!(read_live(&p).is_some());
        }
    }

    #[test]
    fn unlocked_pid_file_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x_02.pid");
        std::fs::write(&p, "999999").unwrap();
        assert_eq!(read_live(&p), None);
        assert!(remove_stale(&p));
        assert!(!p.exists());
    }
}
