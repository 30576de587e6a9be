//! The `sftp:` transport: SFTP over the system OpenSSH client.
//!
//! `sendTo sftp://hpfx` runs `ssh hpfx` as a ControlMaster, so everything the
//! user's ssh config says about `hpfx` applies (HostName, User, Port,
//! IdentityFile, ProxyJump, Include, Match…); `sftp://user@host:port/` sets
//! the user and port only when the URL has them. The URL's path is not used:
//! as in sr3, remote paths come from the sender, and a relative one is
//! relative to the login directory.
//!
//! One master connection per transport, opened on first use and shared by
//! every call: requests of concurrent calls are pipelined over one SFTP
//! channel (openssh-sftp-client batches them), which is where the speed
//! for many small files comes from. A call that fails because the
//! connection died returns an error (the sender retries it later) and
//! marks the connection, so the next call reconnects. Every call is bounded
//! by the `timeout` option (data transfers get one more second per MiB);
//! one that runs out also marks the connection.
//!
//! Large files can go through `accelScpCommand` ([`SftpTransport::put_accelerated`]),
//! which reuses the master's control socket.
//!
//! * [`master`]: starting the ssh master, control sockets, stale cleanup.
//! * [`errors`]: SFTP statuses and lost connections as `io::Error`s.
//! * [`dirs`]: the remote directories a connection knows to exist.

pub mod dirs;
pub mod errors;
pub mod master;
mod ops;

use super::{accel, TransportOptions};
use errors::Failure;
use master::SshTarget;
use openssh::Session;
use openssh_sftp_client::{Sftp, SftpOptions};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection idle for longer than this is checked (one round trip to
/// the local master) before reuse, so a master that exited is replaced
/// without failing a call first.
const IDLE_CHECK: Duration = Duration::from_secs(10);

/// Accelerated copies running at once over one master. Each is an ssh
/// session on the master, and sshd's default `MaxSessions` is 10, one of
/// which the SFTP channel holds; more would fail with "channel open failed".
const ACCEL_SESSIONS: usize = 8;

/// Sends to (and fetches from) a host over SFTP through OpenSSH.
pub struct SftpTransport {
    target: SshTarget,
    timeout: Duration,
    /// `byteRateMax`, for scp's `-l`.
    byte_rate_max: u64,
    link: tokio::sync::Mutex<Option<Arc<Connection>>>,
    accel_slots: tokio::sync::Semaphore,
}

impl std::fmt::Debug for SftpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpTransport")
            .field("target", &self.target)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One ssh master with one SFTP channel on it.
struct Connection {
    sftp: Sftp,
    /// Kept for `check()`; its drop (after the channel's) stops the master.
    session: Arc<Session>,
    ctl: PathBuf,
    broken: AtomicBool,
    last_used: std::sync::Mutex<Instant>,
    /// Directories made or seen through this connection.
    dirs: dirs::KnownDirs,
}

impl Connection {
    /// Turns a failure into the caller's error, marking the connection
    /// unusable when the failure was not a server status.
    fn fail(&self, f: Failure, what: &str) -> io::Error {
        if let Failure::Link(msg) = &f {
            if !self.broken.swap(true, Ordering::SeqCst) {
                tracing::warn!("{what}: sftp connection lost ({msg}); will reconnect");
            }
        }
        f.into_io(what)
    }

    fn touch(&self) {
        if let Ok(mut t) = self.last_used.lock() {
            *t = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or(IDLE_CHECK)
    }
}

/// The ssh target of an `sftp://[user@]host[:port][/path]` URL.
pub fn target_of(send_to: &str, opts: &TransportOptions) -> io::Result<SshTarget> {
    let bad = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("sendTo {send_to}: {why}"),
        )
    };
    let url = url::Url::parse(send_to).map_err(|e| bad(e.to_string()))?;
    if url.scheme() != "sftp" {
        return Err(bad(format!("scheme '{}:' is not sftp:", url.scheme())));
    }
    let host = url.host_str().unwrap_or("");
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.starts_with('-') {
        return Err(bad("no usable host".into()));
    }
    if url.password().is_some() {
        // BatchMode: ssh cannot be given a password; keys or an agent it is.
        tracing::warn!(
            "sendTo {}: password ignored, ssh logs in with keys only",
            host
        );
    }
    let user = match url.username() {
        "" => None,
        u => Some(percent_decode(u).ok_or_else(|| bad("bad %-escape in user".into()))?),
    };
    Ok(SshTarget {
        host: host.to_string(),
        user,
        port: url.port(),
        ssh_config: opts.ssh_config.clone(),
        keyfile: opts.ssh_keyfile.clone(),
    })
}

/// `%XX` escapes of a URL component decoded; `None` if malformed.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl SftpTransport {
    /// A transport for `send_to`; connects on first use.
    pub fn new(send_to: &str, opts: &TransportOptions) -> io::Result<SftpTransport> {
        Ok(SftpTransport {
            target: target_of(send_to, opts)?,
            timeout: opts.timeout,
            byte_rate_max: opts.byte_rate_max,
            link: tokio::sync::Mutex::new(None),
            accel_slots: tokio::sync::Semaphore::new(ACCEL_SESSIONS),
        })
    }

    /// The host (or Host alias) ssh is asked to reach.
    pub fn host(&self) -> &str {
        &self.target.host
    }

    /// The control socket of the current master, if connected.
    pub async fn control_socket(&self) -> Option<PathBuf> {
        self.link
            .lock()
            .await
            .as_ref()
            .filter(|c| !c.broken.load(Ordering::SeqCst))
            .map(|c| c.ctl.clone())
    }

    /// Connects now (else the first call does); an error says why ssh failed.
    pub async fn connect(&self) -> io::Result<()> {
        self.connection().await.map(|_| ())
    }

    /// Closes the SFTP channel and stops the master, reporting errors that a
    /// plain drop would lose. Calls still running keep their connection.
    pub async fn close(&self) -> io::Result<()> {
        let Some(c) = self.link.lock().await.take() else {
            return Ok(());
        };
        match Arc::try_unwrap(c) {
            Ok(c) => {
                let Connection { sftp, session, .. } = c;
                let r = sftp.close().await;
                drop(session);
                r.map_err(|e| {
                    Failure::of(e).into_io(&format!("closing sftp to {}", self.target.host))
                })
            }
            Err(_) => Ok(()),
        }
    }

    /// The connection to use: the current one if it is sound, else a new one.
    async fn connection(&self) -> io::Result<Arc<Connection>> {
        let mut link = self.link.lock().await;
        if let Some(c) = link.as_ref() {
            if !c.broken.load(Ordering::SeqCst) {
                if c.idle_for() < IDLE_CHECK || c.session.check().await.is_ok() {
                    c.touch();
                    return Ok(Arc::clone(c));
                }
                tracing::info!("ssh master for {} is gone; reconnecting", self.target.host);
            }
        }
        // Dropping the old connection stops its master once in-flight calls end.
        *link = None;
        let (session, ctl) = master::launch(&self.target, self.timeout).await?;
        let session = Arc::new(session);
        let sftp = tokio::time::timeout(
            self.timeout,
            Sftp::from_clonable_session(Arc::clone(&session), SftpOptions::new()),
        )
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "sftp to {}: no subsystem within {:?}",
                    self.target.host, self.timeout
                ),
            )
        })?
        .map_err(|e| Failure::of(e).into_io(&format!("sftp subsystem on {}", self.target.host)))?;
        tracing::info!(
            "connected to {} (control socket {})",
            self.target.host,
            ctl.display()
        );
        let c = Arc::new(Connection {
            sftp,
            session,
            ctl,
            broken: AtomicBool::new(false),
            last_used: std::sync::Mutex::new(Instant::now()),
            dirs: dirs::KnownDirs::default(),
        });
        *link = Some(Arc::clone(&c));
        Ok(c)
    }

    /// Runs `work` on the current connection within `limit`; running out of
    /// time marks the connection broken (a hung link looks like this).
    async fn bounded<T>(
        &self,
        c: &Connection,
        limit: Duration,
        what: impl FnOnce() -> String,
        work: impl std::future::Future<Output = io::Result<T>>,
    ) -> io::Result<T> {
        match tokio::time::timeout(limit, work).await {
            Ok(r) => {
                c.touch();
                r
            }
            Err(_) => {
                c.broken.store(true, Ordering::SeqCst);
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{}: no answer within {limit:?}", what()),
                ))
            }
        }
    }

    /// The time allowed to move `size` bytes: the timeout, plus one second
    /// per MiB (a floor rate of 1 MiB/s).
    fn data_timeout(&self, size: u64) -> Duration {
        let paced = match self.byte_rate_max {
            0 => Duration::ZERO,
            rate => Duration::from_secs(size / rate),
        };
        self.timeout + Duration::from_secs(size >> 20) + paced
    }

    /// `[user@]host:remote` for scp (an IPv6 address in brackets).
    fn scp_destination(&self, remote: &str) -> OsString {
        let host = if self.target.host.contains(':') {
            format!("[{}]", self.target.host)
        } else {
            self.target.host.clone()
        };
        match &self.target.user {
            Some(u) => format!("{u}@{host}:{remote}").into(),
            None => format!("{host}:{remote}").into(),
        }
    }

    /// Runs `command` on the server over this transport's master
    /// connection, with `remote` as its last argument (quoted for the
    /// remote shell), and returns its standard output. Used to checksum a
    /// delivered file where it landed (`checksumCommand`).
    pub async fn remote_output(&self, command: &str, remote: &str) -> io::Result<String> {
        let c = self.connection().await?;
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.arg("-o")
            .arg(format!("ControlPath={}", c.ctl.display()));
        cmd.args(["-o", "BatchMode=yes"]);
        if let Some(cfg) = &self.target.ssh_config {
            cmd.arg("-F").arg(cfg);
        }
        if let Some(u) = &self.target.user {
            cmd.arg("-l").arg(u);
        }
        if let Some(p) = self.target.port {
            cmd.arg("-p").arg(p.to_string());
        }
        let quoted = format!("'{}'", remote.replace('\'', "'\\''"));
        cmd.arg("--")
            .arg(&self.target.host)
            .arg(format!("{command} {quoted}"));
        cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
        let size = 0;
        let out = tokio::time::timeout(self.data_timeout(size), cmd.output())
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{command} on {}: timed out", self.target.host),
                )
            })??;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(io::Error::other(format!(
                "{command} {remote} on {}: {} {}",
                self.target.host,
                out.status,
                err.trim()
            )));
        }
        c.touch();
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Copies `local` to `remote` by running `command` (accelScpCommand,
    /// e.g. `/usr/bin/scp %s %d`) over this transport's master connection:
    /// `-o ControlPath=<socket> -o BatchMode=yes [-F <ssh_config>]` are
    /// inserted after the program name, `%s` becomes the absolute local
    /// path and `%d` `[user@]host:remote`. Returns the local file's size.
    /// The copy is killed after the timeout plus one second per MiB. At most
    /// 8 run at once per transport (sshd's MaxSessions); others wait.
    pub async fn put_accelerated(
        &self,
        local: &Path,
        remote: &str,
        command: &str,
    ) -> io::Result<u64> {
        if remote.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty remote path",
            ));
        }
        let local = accel::absolute(local)?;
        let size = tokio::fs::metadata(&local)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", local.display())))?
            .len();
        let _slot = self
            .accel_slots
            .acquire()
            .await
            .map_err(|_| io::Error::other("accel slots closed"))?;
        let c = self.connection().await?;
        let mut extra: Vec<OsString> = vec![
            "-o".into(),
            format!("ControlPath={}", c.ctl.display()).into(),
        ];
        extra.extend(["-o".into(), "BatchMode=yes".into()]);
        if let Some(cfg) = &self.target.ssh_config {
            extra.extend(["-F".into(), cfg.clone().into_os_string()]);
        }
        extra.extend(accel::rate_limit(command, self.byte_rate_max));
        let argv = accel::argv(
            command,
            local.as_os_str(),
            &self.scp_destination(remote),
            &extra,
        )?;
        tracing::debug!("accel: {argv:?}");
        match accel::run(&argv, self.data_timeout(size)).await {
            Ok(()) => {
                c.touch();
                Ok(size)
            }
            Err(e) => {
                if c.session.check().await.is_err() {
                    c.broken.store(true, Ordering::SeqCst);
                }
                Err(io::Error::new(
                    e.kind(),
                    format!(
                        "accel put {} to {}:{remote}: {e}",
                        local.display(),
                        self.target.host
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> TransportOptions {
        TransportOptions {
            ssh_config: None,
            timeout: Duration::from_secs(30),
            ssh_keyfile: None,
            byte_rate_max: 0,
        }
    }

    #[test]
    fn alias_url_leaves_user_and_port_to_the_ssh_config() {
        let t = target_of("sftp://hpfx", &opts()).expect("parses");
        assert_eq!((t.host.as_str(), t.user, t.port), ("hpfx", None, None));
        let t = target_of("sftp://hpfx/", &opts()).expect("trailing slash");
        assert_eq!(t.host, "hpfx");
    }

    #[test]
    fn user_and_port_in_the_url_override() {
        let t = target_of("sftp://peter%40x@127.0.0.1:2222/data", &opts()).expect("parses");
        assert_eq!(
            (t.host.as_str(), t.user.as_deref(), t.port),
            ("127.0.0.1", Some("peter@x"), Some(2222))
        );
        let t = target_of("sftp://[::1]:22/", &opts()).expect("ipv6");
        assert_eq!(t.host, "::1");
    }

    #[test]
    fn urls_without_a_host_or_of_another_scheme_are_refused() {
        for bad in ["sftp://", "file:/x", "sftp:///x", "not a url"] {
            let e = target_of(bad, &opts()).expect_err(bad);
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn scp_destination_names_user_host_and_brackets_ipv6() {
        let t = SftpTransport::new("sftp://peter@hpfx", &opts()).expect("new");
        assert_eq!(
            t.scp_destination("/d/a b"),
            OsString::from("peter@hpfx:/d/a b")
        );
        let t = SftpTransport::new("sftp://[::1]", &opts()).expect("new");
        assert_eq!(t.scp_destination("-x"), OsString::from("[::1]:-x"));
    }

    #[test]
    fn data_timeout_allows_one_second_per_mib() {
        let t = SftpTransport::new("sftp://hpfx", &opts()).expect("new");
        assert_eq!(t.data_timeout(0), Duration::from_secs(30));
        assert_eq!(t.data_timeout(50 << 20), Duration::from_secs(80));
        let paced = SftpTransport::new(
            "sftp://hpfx",
            &TransportOptions {
                byte_rate_max: 1 << 20,
                ..opts()
            },
        )
        .expect("new");
        assert_eq!(
            paced.data_timeout(50 << 20),
            Duration::from_secs(130),
            "plus the time byteRateMax takes"
        );
    }
}
