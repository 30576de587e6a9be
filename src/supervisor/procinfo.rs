//! What the kernel says of instance processes: memory and CPU time, and the
//! `pitcher instance` processes of one state directory (to find strays).
//!
//! Everything is read from `/proc`; a process that vanishes while being
//! read is simply left out.

use std::path::{Path, PathBuf};

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
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (cpu_user, cpu_system) = cpu_times(&stat)?;
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

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// utime and stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in
/// seconds. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last `)`.
fn cpu_times(stat: &str) -> Option<(f64, f64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = clock_ticks();
    // rest starts at field 3 (state): field n is f[n - 3].
    let user: f64 = f.get(11)?.parse().ok()?;
    let system: f64 = f.get(12)?.parse().ok()?;
    Some((user / ticks, system / ticks))
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
    Some((
        resident * page_size(),
        resident.saturating_sub(shared) * page_size(),
    ))
}

/// A `pitcher instance` process.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceProcess {
    pub pid: i32,
    /// Its command line, arguments joined by spaces.
    pub cmdline: String,
}

/// This user's `pitcher instance …` processes whose state directory
/// (`PITCHER_STATE_DIR` in their environment, or `--state-dir`) is
/// `state_dir`.
pub fn instance_processes(state_dir: &Path) -> Vec<InstanceProcess> {
    let ours = canonical(state_dir);
    let uid = nix::unistd::getuid().as_raw();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        use std::os::unix::fs::MetadataExt;
        if e.metadata().map(|m| m.uid()).ok() != Some(uid) {
            continue;
        }
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !is_pitcher_instance(&args) {
            continue;
        }
        let dir = state_dir_arg(&args).or_else(|| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            env.split(|b| *b == 0).find_map(|kv| {
                let kv = std::str::from_utf8(kv).ok()?;
                kv.strip_prefix("PITCHER_STATE_DIR=").map(PathBuf::from)
            })
        });
        if dir.is_some_and(|d| canonical(&d) == ours) {
            out.push(InstanceProcess {
                pid,
                cmdline: args.join(" "),
            });
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// `…/pitcher [global options] instance --no N comp/cfg`.
fn is_pitcher_instance(args: &[String]) -> bool {
    let Some(exe) = args.first() else {
        return false;
    };
    let base = exe.rsplit('/').next().unwrap_or(exe);
    base.starts_with("pitcher")
        && args.iter().skip(1).any(|a| a == "instance")
        && args.iter().any(|a| a == "--no" || a.starts_with("--no="))
}

fn state_dir_arg(args: &[String]) -> Option<PathBuf> {
    let i = args.iter().position(|a| a == "--state-dir")?;
    args.get(i + 1).map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_are_read_past_a_command_name_with_spaces() {
        let line = "42 (pitcher (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1 1 1";
        let ticks = clock_ticks();
        assert_eq!(cpu_times(line), Some((250.0 / ticks, 50.0 / ticks)));
    }

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

    #[test]
    fn only_pitcher_instance_command_lines_count() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert!(is_pitcher_instance(&v(
            "/usr/bin/pitcher instance --no 2 sender/x"
        )));
        assert!(!is_pitcher_instance(&v("/usr/bin/pitcher status")));
        assert!(!is_pitcher_instance(&v("/bin/vi instance --no 2")));
    }
}
