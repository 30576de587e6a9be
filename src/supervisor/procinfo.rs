//! What the kernel says of instance processes: memory and CPU time (the
//! `/proc` parsing itself is [`crate::state::proc`]'s; finding processes,
//! [`super::procs`]'s).
//!
//! Everything is read from `/proc`; a process that vanishes while being
//! read is simply left out.

/// Memory and CPU time of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcUsage {
    /// Resident set size, bytes.
    pub rss: u64,
    /// Unique set size (private pages), bytes.
    pub uss: u64,
    /// CPU time in user mode, seconds.
    pub cpu_user: f64,
    /// CPU time in kernel mode, seconds.
    pub cpu_system: f64,
}

impl std::ops::AddAssign for ProcUsage {
    fn add_assign(&mut self, o: ProcUsage) {
        self.rss += o.rss;
        self.uss += o.uss;
        self.cpu_user += o.cpu_user;
        self.cpu_system += o.cpu_system;
    }
}

/// Memory (from `smaps_rollup`, else `statm`) and CPU time (from `stat`)
/// of `pid`; `None` if it is gone.
pub fn usage(pid: i32) -> Option<ProcUsage> {
    let (user, system) = crate::state::proc::stat(u32::try_from(pid).ok()?)
        .ok()?
        .cpu();
    let (cpu_user, cpu_system) = (user.as_secs_f64(), system.as_secs_f64());
    let (rss, uss) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| memory_from_smaps(&s))
        .or_else(|| {
            let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
            memory_from_statm(&statm)
        })
        .unwrap_or((0, 0));
    Some(ProcUsage {
        rss,
        uss,
        cpu_user,
        cpu_system,
    })
}

/// (RSS, USS) in bytes from `smaps_rollup`.
fn memory_from_smaps(s: &str) -> Option<(u64, u64)> {
    let kb = |key: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    };
    let rss = kb("Rss:")?;
    let uss = kb("Private_Clean:").unwrap_or(0) + kb("Private_Dirty:").unwrap_or(0);
    Some((rss, uss))
}

/// (RSS, USS ≈ resident − shared) in bytes from `statm`.
fn memory_from_statm(s: &str) -> Option<(u64, u64)> {
    let f: Vec<u64> = s
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let (resident, shared) = (*f.get(1)?, *f.get(2)?);
    let page_size = crate::state::proc::page_size();
    Some((
        resident * page_size,
        resident.saturating_sub(shared) * page_size,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_rollup_gives_rss_and_private_pages() {
        let s = "00400000-7ffc r--p 00000000 00:00 0 [rollup]\nRss:  2000 kB\nPss: 1500 kB\nPrivate_Clean: 100 kB\nPrivate_Dirty: 900 kB\n";
        assert_eq!(memory_from_smaps(s), Some((2000 * 1024, 1000 * 1024)));
    }

    #[test]
    fn this_process_has_usage() {
        let u = usage(std::process::id() as i32).expect("self");
        assert!(u.rss > 0 && u.uss > 0 && u.uss <= u.rss, "{u:?}");
    }
}
