//! What the kernel says of a process, from `/proc`: one parser of
//! `/proc/<pid>/stat` for every caller (the supervisor's liveness and
//! zombie checks, `status`'s CPU times, `sanity`'s ages, the embedded
//! broker's owner checks), and the clock and page sizes to read it with.
//!
//! A process that vanishes while being read is simply absent (`None`).

use std::time::Duration;

/// The fields of `/proc/<pid>/stat` pitcher uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The state letter: `R`, `S`, `D`, `Z` (zombie), `X` (dead)…
    pub state: char,
    /// CPU time in user mode, in clock ticks.
    pub utime: u64,
    /// CPU time in kernel mode, in clock ticks.
    pub stime: u64,
    /// When the process started, in clock ticks after boot.
    pub start: u64,
}

impl Stat {
    /// A zombie (or dead) process: exited, not yet reaped.
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }

    /// (user, system) CPU time.
    pub fn cpu(&self) -> (Duration, Duration) {
        let ticks = clock_ticks();
        (
            Duration::from_secs_f64(self.utime as f64 / ticks),
            Duration::from_secs_f64(self.stime as f64 / ticks),
        )
    }
}

/// Parses a `/proc/<pid>/stat` line: `pid (comm) state ppid …`. The
/// command name may hold spaces and parentheses, so fields are counted
/// after the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field n is f[n - 3].
    Some(Stat {
        state: f.first()?.chars().next()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

/// The stat of `pid`; `Err` with `NotFound` when it is gone.
pub fn stat(pid: u32) -> std::io::Result<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat: unexpected format"),
        )
    })
}

/// True when `pid` is a zombie (exited, not reaped).
pub fn is_zombie(pid: i32) -> bool {
    u32::try_from(pid)
        .ok()
        .and_then(|p| stat(p).ok())
        .is_some_and(|s| s.is_zombie())
}

/// True when `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok() && !is_zombie(pid)
}

/// How long ago `pid` started.
pub fn age(pid: i32) -> Option<Duration> {
    let start = stat(u32::try_from(pid).ok()?).ok()?.start as f64 / clock_ticks();
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(Duration::from_secs_f64((uptime - start).max(0.0)))
}

/// Clock ticks per second (`CLK_TCK`), 100 if unknown.
pub fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64
}

/// The memory page size, 4096 if unknown.
pub fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .filter(|p| *p > 0)
        .unwrap_or(4096) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_after_a_command_name_with_spaces_and_parentheses() {
        let line =
            "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 987654 1000 100";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                utime: 250,
                stime: 50,
                start: 987654
            })
        );
        let zombie = "42 (x) Z 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 0 0";
        assert!(parse_stat(zombie).unwrap().is_zombie());
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_young() {
        let me = std::process::id();
        let s = stat(me).expect("self");
        assert!(!s.is_zombie() && s.start > 0);
        assert!(alive(me as i32));
        assert!(age(me as i32).expect("age") < Duration::from_secs(24 * 3600));
        assert!(age(-1).is_none());
    }

    #[test]
    fn a_fresh_process_is_young() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let a = age(child.id() as i32);
        let _ = child.kill();
        let _ = child.wait();
        assert!(a.is_some_and(|a| a < Duration::from_secs(3)), "{a:?}");
    }

    #[test]
    fn a_reaped_child_is_gone_and_an_unreaped_one_a_zombie() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id() as i32;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !is_zombie(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(is_zombie(pid) && !alive(pid));
        child.wait().expect("wait");
        assert!(!alive(pid) && stat(pid as u32).is_err());
    }
}
