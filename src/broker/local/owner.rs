//! Who holds a lease: a consumer names itself by its process (pid plus the
//! process start time, so a pid reused by another process is not mistaken
//! for the old owner) and a random id (two consumers in one process are two
//! owners). Any other consumer can then tell whether an owner is dead.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The identity a consumer writes on the rows it leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Owner {
    /// Unique per consumer: `pid:start:random`.
    pub token: String,
    pub pid: u32,
    /// Start time of the process in clock ticks since boot (field 22 of
    /// `/proc/<pid>/stat`); 0 where it cannot be read.
    pub start: u64,
}

impl Owner {
    /// A fresh identity for a new consumer of this process.
    pub fn new() -> Owner {
        let pid = std::process::id();
        let start = match read_proc_stat(pid) {
            ProcState::Running { start } => start,
            _ => 0,
        };
        Owner {
            token: format!("{pid}:{start}:{:016x}", random_u64()),
            pid,
            start,
        }
    }
}

/// Whether the process that took a lease still runs. Only a certain death
/// counts (no such pid, a zombie, or another process under that pid): when
/// in doubt the owner is taken as alive, and the lease expiry is left to
/// recover its rows.
pub(super) fn owner_is_alive(pid: u32, start: u64) -> bool {
    match read_proc_stat(pid) {
        ProcState::Gone | ProcState::Zombie => false,
        ProcState::Running { start: now } => start == 0 || now == start,
        ProcState::Unknown => true,
    }
}

enum ProcState {
    Gone,
    Zombie,
    Running { start: u64 },
    Unknown,
}

fn read_proc_stat(pid: u32) -> ProcState {
    match crate::state::proc::stat(pid) {
        Ok(s) if s.is_zombie() => ProcState::Zombie,
        Ok(s) => ProcState::Running { start: s.start },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // No /proc at all (not Linux, or not mounted) tells nothing.
            if std::path::Path::new("/proc/self/stat").exists() {
                ProcState::Gone
            } else {
                ProcState::Unknown
            }
        }
        Err(_) => ProcState::Unknown,
    }
}

/// Enough randomness to tell consumers apart, without a dependency: std's
/// per-process random hash keys, mixed with the time and a counter.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_under_its_own_start_time() {
        let me = Owner::new();
        assert_ne!(me.start, 0, "start time read from /proc/self/stat");
        assert!(owner_is_alive(me.pid, me.start));
    }

    #[test]
    fn a_reused_pid_with_another_start_time_is_a_dead_owner() {
        let me = Owner::new();
        assert!(!owner_is_alive(me.pid, me.start + 1));
    }

    #[test]
    fn a_reaped_child_is_a_dead_owner() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(!owner_is_alive(pid, 1));
    }

    #[test]
    fn two_consumers_of_one_process_are_two_owners() {
        let (a, b) = (Owner::new(), Owner::new());
        assert_eq!((a.pid, a.start), (b.pid, b.start));
        assert_ne!(a.token, b.token);
    }
}
