//! The ssh master connection behind an sftp transport.
//!
//! pitcher starts the system `ssh` itself as a ControlMaster (`-M -f -N`)
//! rather than through `openssh::SessionBuilder`, because the builder always
//! adds `-o StrictHostKeyChecking=…` on the command line, and command-line
//! options beat the ssh config. Host keys stay the business of the user's
//! ssh config: pitcher passes no StrictHostKeyChecking at all. Under
//! `BatchMode=yes` ssh's default (`ask`) then refuses unknown and changed
//! host keys and never writes known_hosts; a config that says `accept-new`
//! or `no` gets exactly that.
//!
//! What pitcher does put on the command line, and so overrides in the ssh
//! config: `-S`/`-M` (its own control socket: a user's ControlPath and
//! ControlMaster do not apply to this master), `ControlPersist=60s`,
//! `BatchMode=yes` (no prompt can be answered by a daemon), `ConnectTimeout`
//! (the `timeout` option), and `-l`/`-p`/`-i` only when the sendTo URL or
//! the credentials give a user, port or key.
//!
//! Control sockets live in `/tmp/pitcher-<uid>/<pid>/<random>/master`: short
//! enough for the 108-byte Unix socket limit, one directory per process so a
//! later process can tell which are stale. A master outlives a kill -9 of
//! its process by at most the ControlPersist idle time; the next pitcher
//! process to connect also stops such masters and removes their directories.

use openssh::Session;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long an idle master (no sftp or scp session on it) stays up.
pub const CONTROL_PERSIST_SECS: u64 = 60;

/// Where and how to reach the remote host with ssh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The host or Host alias, as ssh is given it (no brackets for IPv6).
    pub host: String,
    /// Login from the URL; `None` leaves it to the ssh config.
    pub user: Option<String>,
    /// Port from the URL; `None` leaves it to the ssh config.
    pub port: Option<u16>,
    /// `-F` file; `None` is ssh's own default (`~/.ssh/config`).
    pub ssh_config: Option<PathBuf>,
    /// `-i` key (with IdentitiesOnly) from credentials, if any.
    pub keyfile: Option<PathBuf>,
}

impl SshTarget {
    /// The arguments of the master command after `ssh`, control options excluded.
    fn connection_args(&self, connect_timeout: Duration) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        let mut opt = |a: &str, b: std::ffi::OsString| {
            args.push(a.into());
            args.push(b);
        };
        opt("-o", "BatchMode=yes".into());
        opt(
            "-o",
            format!("ConnectTimeout={}", connect_timeout.as_secs().max(1)).into(),
        );
        if let Some(cfg) = &self.ssh_config {
            opt("-F", cfg.into());
        }
        if let Some(user) = &self.user {
            opt("-l", user.into());
        }
        if let Some(port) = self.port {
            opt("-p", port.to_string().into());
        }
        if let Some(key) = &self.keyfile {
            opt("-o", "IdentitiesOnly=yes".into());
            opt("-i", key.into());
        }
        args
    }
}

/// This process's control directory, `/tmp/pitcher-<uid>/<pid>`, made on
/// first use with mode 0700.
pub fn process_control_dir() -> io::Result<PathBuf> {
    let user_dir = user_control_dir()?;
    let dir = user_dir.join(std::process::id().to_string());
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    Ok(dir)
}

/// `/tmp/pitcher-<uid>`, made if missing; refused if someone else owns it or
/// it is not a private directory (a shared /tmp must not let another user
/// plant sockets where ours go).
fn user_control_dir() -> io::Result<PathBuf> {
    let uid = nix::unistd::getuid().as_raw();
    let dir = PathBuf::from(format!("/tmp/pitcher-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot create {}: {e}", dir.display()),
            ))
        }
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    if !meta.is_dir() || meta.uid() != uid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a directory owned by uid {uid}; remove it",
                dir.display()
            ),
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

/// Whether process `pid` is alive (EPERM means alive, someone else's).
fn pid_alive(pid: i32) -> bool {
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

static SWEPT: AtomicBool = AtomicBool::new(false);

/// Once per process, before its first connection: [`sweep_stale`].
pub async fn sweep_stale_once() {
    if !SWEPT.swap(true, Ordering::SeqCst) {
        sweep_stale().await;
    }
}

/// Stops the ssh masters left by dead pitcher processes of this user (a
/// kill -9 gives no chance to stop them) and removes their control
/// directories. Directories of live processes are left alone.
pub async fn sweep_stale() {
    let Ok(user_dir) = user_control_dir() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(&user_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid_alive(pid) {
            continue;
        }
        let dir = entry.path();
        for socket in master_sockets(&dir) {
            // "Stop listening": the master exits once its sessions are
            // gone, and the dead process's sessions are gone already.
            let stop = Session::resume_mux(socket.clone().into_boxed_path(), None).close();
            match tokio::time::timeout(Duration::from_secs(5), stop).await {
                Ok(Ok(())) => tracing::info!(
                    "stopped the ssh master {} of dead process {pid}",
                    socket.display()
                ),
                _ => tracing::debug!("no live ssh master at {}", socket.display()),
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!("cannot remove stale control dir {}: {e}", dir.display());
        }
    }
}

/// The `*/master` sockets under a process control directory.
fn master_sockets(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path().join("master"))
        .filter(|p| p.exists())
        .collect()
}

/// Starts an ssh master for `target`; returns the session (whose drop stops
/// the master and removes its directory) and the control socket path.
pub async fn launch(target: &SshTarget, timeout: Duration) -> io::Result<(Session, PathBuf)> {
    sweep_stale_once().await;
    let tmp = tempfile::Builder::new()
        .prefix("m")
        .tempdir_in(process_control_dir()?)?;
    let ctl = tmp.path().join("master");
    let log = tmp.path().join("log");
    if target.host.is_empty() || target.host.starts_with('-') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad ssh host '{}'", target.host),
        ));
    }
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    cmd.arg("-E")
        .arg(&log)
        .arg("-S")
        .arg(&ctl)
        .args(["-M", "-f", "-N"]);
    cmd.arg("-o")
        .arg(format!("ControlPersist={CONTROL_PERSIST_SECS}s"));
    cmd.args(target.connection_args(timeout));
    cmd.arg("--").arg(&target.host);
    // -f: ssh forks once authenticated, so this returns when the master is up.
    let status = match tokio::time::timeout(timeout + Duration::from_secs(5), cmd.status()).await {
        Ok(r) => r.map_err(|e| io::Error::new(e.kind(), format!("cannot run ssh: {e}")))?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "ssh to {} did not connect within {:?}",
                    target.host, timeout
                ),
            ))
        }
    };
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let why = text
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("no message")
            .to_string();
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("ssh to {} failed ({status}): {why}", target.host),
        ));
    }
    Ok((Session::new_native_mux(tmp), ctl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SshTarget {
        SshTarget {
            host: "hpfx".into(),
            user: None,
            port: None,
            ssh_config: None,
            keyfile: None,
        }
    }

    fn strings(args: Vec<std::ffi::OsString>) -> Vec<String> {
        args.into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn alias_without_overrides_leaves_user_port_and_host_keys_to_the_ssh_config() {
        let args = strings(target().connection_args(Duration::from_secs(30)));
        assert_eq!(args, ["-o", "BatchMode=yes", "-o", "ConnectTimeout=30"]);
        assert!(!args.iter().any(|a| a.contains("StrictHostKeyChecking")));
    }

    #[test]
    fn url_user_port_config_and_key_are_passed_as_options() {
        let t = SshTarget {
            user: Some("peter".into()),
            port: Some(2222),
            ssh_config: Some("/etc/p/ssh_config".into()),
            keyfile: Some("/k/id".into()),
            ..target()
        };
        let args = strings(t.connection_args(Duration::from_millis(10)));
        let joined = args.join(" ");
        assert!(joined.contains("ConnectTimeout=1"), "{joined}");
        assert!(joined.contains("-F /etc/p/ssh_config"), "{joined}");
        assert!(joined.contains("-l peter -p 2222"), "{joined}");
        assert!(
            joined.contains("-o IdentitiesOnly=yes -i /k/id"),
            "{joined}"
        );
    }

    #[test]
    fn process_control_dir_is_private_and_short() {
        let dir = process_control_dir().expect("control dir");
        let meta = std::fs::metadata(&dir).expect("stat");
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        // Room for "/mXXXXXX/master" plus ssh's ~17-byte temporary suffix.
        assert!(dir.as_os_str().len() + 40 < 108, "{}", dir.display());
    }

    #[test]
    fn a_dead_pid_is_not_alive() {
        assert!(pid_alive(std::process::id() as i32));
        assert!(!pid_alive(i32::MAX - 1));
    }
}
