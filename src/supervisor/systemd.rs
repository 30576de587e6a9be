//! systemd: the user unit that runs the supervisor, and telling systemd how
//! the supervisor is doing (sd_notify).
//!
//! The unit runs `pitcher supervise` in the foreground (`Type=notify`,
//! `Restart=always`, a watchdog), so `systemctl --user status pitcher`
//! shows the real supervisor and its instances. `pitcher start`/`stop`
//! keep working beside it: they mark configs started or stopped, and the
//! supervisor follows. `pitcher stop` leaves a systemd supervisor running
//! (idle), since systemd would only start it again;
//! `systemctl --user stop pitcher` stops everything.
//!
//! The notify protocol is one datagram to `$NOTIFY_SOCKET`; it is written
//! here rather than pulled in as a crate.

use crate::state::Paths;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The unit's file name.
pub const UNIT_NAME: &str = "pitcher.service";

/// Set to `1` by the unit: this supervisor belongs to systemd.
pub const MANAGED_ENV: &str = "PITCHER_SYSTEMD";

/// True when this process was started by the pitcher unit.
pub fn managed() -> bool {
    std::env::var(MANAGED_ENV).is_ok_and(|v| v == "1")
}

/// Sends `state` (e.g. `READY=1`, `WATCHDOG=1`, `STATUS=…`) to systemd,
/// when systemd is listening; does nothing otherwise.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = (|| -> std::io::Result<()> {
        let sock = std::os::unix::net::UnixDatagram::unbound()?;
        let bytes = socket.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        } else {
            sock.send_to(state.as_bytes(), Path::new(&socket))?;
        }
        Ok(())
    })();
    if let Err(e) = sent {
        tracing::debug!("sd_notify: {e}");
    }
}

/// The user unit directory: `$XDG_CONFIG_HOME/systemd/user`, else
/// `~/.config/systemd/user`.
pub fn unit_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("systemd").join("user"))
}

/// Where the unit is (or would be) installed.
pub fn unit_path() -> Option<PathBuf> {
    unit_dir().map(|d| d.join(UNIT_NAME))
}

/// A value in double quotes, as systemd reads it: backslash and quote
/// escaped, `%` doubled (it starts a specifier), `$` doubled when `exec`
/// (ExecStart expands variables).
fn quote(s: &str, exec: bool) -> String {
    let mut q = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%");
    if exec {
        q = q.replace('$', "$$");
    }
    format!("\"{q}\"")
}

/// The unit for the pitcher binary `exe` and the config and state
/// directories of `paths`.
pub fn unit_text(exe: &Path, paths: &Paths) -> String {
    let env = |k: &str, v: &Path| {
        format!(
            "Environment={}\n",
            quote(&format!("{k}={}", v.display()), false)
        )
    };
    format!(
        "# Written by `pitcher systemd install`; `pitcher systemd uninstall` removes it.\n\
         [Unit]\n\
         Description=pitcher supervisor (sr3 file-delivery daemons)\n\
         Documentation=https://github.com/MetPX/sarracenia\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         ExecStart={exe} supervise\n\
         Environment={MANAGED_ENV}=1\n\
         {config}{state}\
         Restart=always\n\
         RestartSec=2\n\
         WatchdogSec=60\n\
         # SIGTERM goes to the supervisor alone: it stops its instances\n\
         # gracefully; what is left after TimeoutStopSec gets SIGKILL.\n\
         KillMode=mixed\n\
         TimeoutStopSec=40\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        exe = quote(&exe.display().to_string(), true),
        config = env("PITCHER_CONFIG_DIR", &paths.config_dir),
        state = env("PITCHER_STATE_DIR", &paths.state_dir),
    )
}

/// True when the installed unit runs the supervisor of `paths` (so
/// starting the supervisor means asking systemd).
pub fn installed_for(paths: &Paths) -> bool {
    let Some(text) = unit_path().and_then(|p| std::fs::read_to_string(p).ok()) else {
        return false;
    };
    let want = quote(
        &format!("PITCHER_STATE_DIR={}", paths.state_dir.display()),
        false,
    );
    text.lines()
        .any(|l| l.strip_prefix("Environment=") == Some(want.as_str()))
}

/// Runs `systemctl --user args…`; the error says what went wrong.
pub fn systemctl(args: &[&str]) -> Result<(), String> {
    let out = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run systemctl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "systemctl --user {} failed ({}): {}",
            args.join(" "),
            out.status,
            err.trim()
        ))
    }
}

/// One step of an install or uninstall, and how it went.
#[derive(Debug)]
pub struct Step {
    /// What was done (`systemctl --user daemon-reload`).
    pub what: String,
    /// `Err` holds why it failed.
    pub result: Result<(), String>,
}

/// What `install` or `uninstall` did.
#[derive(Debug)]
pub struct Outcome {
    /// The unit file written or removed.
    pub unit: PathBuf,
    pub steps: Vec<Step>,
    /// Whether the user's services outlive their sessions (`None`: unknown).
    pub linger: Option<bool>,
}

impl Outcome {
    /// True when every systemctl step worked.
    pub fn all_ok(&self) -> bool {
        self.steps.iter().all(|s| s.result.is_ok())
    }
}

fn step(steps: &mut Vec<Step>, args: &[&str]) -> bool {
    let result = systemctl(args);
    let ok = result.is_ok();
    steps.push(Step {
        what: format!("systemctl --user {}", args.join(" ")),
        result,
    });
    ok
}

/// This binary's absolute path (the one that exists after an upgrade in
/// place).
pub fn current_exe() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(
        match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
            Some(p) => PathBuf::from(p),
            None => exe,
        },
    )
}

/// Writes the unit for this binary and `paths`, reloads systemd, enables
/// the unit and starts it. A supervisor already running outside systemd
/// hands over to it (see [`super::lock::supervisor_lock`]).
pub fn install(paths: &Paths) -> std::io::Result<Outcome> {
    let unit = unit_path()
        .ok_or_else(|| std::io::Error::other("neither XDG_CONFIG_HOME nor HOME is set"))?;
    let exe = current_exe()?;
    crate::state::write_atomic(&unit, unit_text(&exe, paths).as_bytes())?;
    let mut steps = Vec::new();
    if step(&mut steps, &["daemon-reload"]) {
        step(&mut steps, &["enable", "--now", UNIT_NAME]);
    }
    Ok(Outcome {
        unit,
        steps,
        linger: linger(),
    })
}

/// Stops and disables the unit, removes its file, reloads systemd. The
/// configs stay started: the next `pitcher start` runs them without
/// systemd.
pub fn uninstall() -> std::io::Result<Outcome> {
    let unit = unit_path()
        .ok_or_else(|| std::io::Error::other("neither XDG_CONFIG_HOME nor HOME is set"))?;
    let mut steps = Vec::new();
    if unit.exists() {
        step(&mut steps, &["disable", "--now", UNIT_NAME]);
    }
    match std::fs::remove_file(&unit) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    step(&mut steps, &["daemon-reload"]);
    Ok(Outcome {
        unit,
        steps,
        linger: linger(),
    })
}

/// Whether logind keeps this user's services running without a session.
fn linger() -> Option<bool> {
    let user = nix::unistd::User::from_uid(nix::unistd::getuid()).ok()??;
    let dir = Path::new("/var/lib/systemd/linger");
    dir.is_dir().then(|| dir.join(&user.name).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_the_supervisor_in_the_foreground_with_the_users_dirs() {
        let paths = Paths {
            config_dir: "/home/a b/.config/pitcher".into(),
            state_dir: "/home/a b/.cache/100%".into(),
        };
        let text = unit_text(Path::new("/opt/pitcher $x/bin/pitcher"), &paths);
        assert!(
            text.contains("ExecStart=\"/opt/pitcher $$x/bin/pitcher\" supervise\n"),
            "{text}"
        );
        assert!(text.contains("Type=notify\n") && text.contains("Restart=always\n"));
        assert!(text.contains("Environment=\"PITCHER_CONFIG_DIR=/home/a b/.config/pitcher\"\n"));
        assert!(text.contains("Environment=\"PITCHER_STATE_DIR=/home/a b/.cache/100%%\"\n"));
        assert!(text.contains(&format!("Environment={MANAGED_ENV}=1\n")));
    }

    #[test]
    fn notify_sends_one_datagram_to_the_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        // Only this test sets NOTIFY_SOCKET in this test binary.
        std::env::set_var("NOTIFY_SOCKET", &path);
        notify("READY=1");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
