//! How bytes and file operations reach the destination.
//!
//! One trait, [`Transport`], with primitive operations on remote paths
//! (absolute, `/`-separated), and a factory from a `sendTo` URL. The sender
//! composes them (put under the inflight name, rename, setstat); a
//! transport only knows how to do each step on its kind of destination.
//! Errors are `std::io::Error` so callers can tell `NotFound` (e.g. a
//! rename whose old name is absent) from the rest.
//!
//! * [`file`]: `file:` — a local or NFS-mounted directory.
//! * [`sftp`]: `sftp://` — SFTP through the system OpenSSH client (ssh config
//!   aliases, keys, ProxyJump), with large files through scp.
//! * [`http`]: `http://` and `https://` — downloads from a web server
//!   (subscribe); every other operation is `Unsupported`.
//! * [`accel`]: running an accel command (`accelScpCommand`) for large files.
//! * [`beneath`]: local file operations that cannot leave a root directory.
//!
//! **Confinement.** Messages are untrusted, so every path a destination
//! operation takes is an [`At`]: the path, and the root it must stay
//! beneath (the config's `directory`). Each transport resolves it beneath
//! that root — `openat2(RESOLVE_BENEATH)` here, the server's `realpath`
//! over SFTP — and refuses, with an error that [`is_permanent`] knows,
//! whatever would climb out: `..`, a symlink leading elsewhere, a name no
//! file system takes. The flow never checks paths itself, so no hop can
//! forget to.

pub mod accel;
pub mod beneath;
pub mod file;
pub mod http;
pub mod sftp;

use async_trait::async_trait;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The longest file name (one path component) file systems take, in bytes.
pub const NAME_MAX: usize = 255;

/// A destination path and the root it must stay beneath. `root` is the
/// config's destination directory (absolute, or relative to where the
/// transport starts: the login directory over SFTP, the `sendTo` path for
/// `file:`; empty for that place itself); `path` is `root` followed by
/// the message's components. Logs show `path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At<'a> {
    pub root: &'a str,
    pub path: &'a str,
}

impl<'a> At<'a> {
    /// `path`, which must lie beneath `root`.
    pub fn new(root: &'a str, path: &'a str) -> At<'a> {
        At { root, path }
    }

    /// The components of `path` below `root`, each a plain file name:
    /// not `.` or `..`, no NUL, at most [`NAME_MAX`] bytes. Anything else
    /// is refused ([`is_permanent`]): it could never be written beneath
    /// the root, however often it is tried.
    pub fn parts(&self) -> io::Result<Vec<&'a str>> {
        let root = self.root.trim_end_matches('/');
        let rest = if self.root.is_empty() {
            Some(self.path).filter(|p| !p.starts_with('/'))
        } else {
            self.path
                .strip_prefix(root)
                .filter(|r| r.is_empty() || r.starts_with('/'))
        };
        let rest = rest.ok_or_else(|| {
            refused(format!(
                "{} does not lie beneath {}",
                self.path,
                if self.root.is_empty() { "." } else { self.root }
            ))
        })?;
        rest.split('/')
            .filter(|p| !p.is_empty())
            .map(|p| check_name(p, self.path))
            .collect()
    }
}

/// `name` if it can be one component of a path beneath a root.
fn check_name<'a>(name: &'a str, path: &str) -> io::Result<&'a str> {
    if name == "." || name == ".." {
        return Err(refused(format!("{path}: a '{name}' component")));
    }
    if name.contains('\0') {
        return Err(refused(format!("{path:?}: a NUL byte in a name")));
    }
    if name.len() > NAME_MAX {
        return Err(refused(format!(
            "{path}: a name of {} bytes (file systems take {NAME_MAX})",
            name.len()
        )));
    }
    Ok(name)
}

/// Why a message's work was refused: it would reach outside the
/// destination, or names what no destination can hold. Retrying cannot
/// change that.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// An error refusing the work for `why` ([`is_permanent`]).
pub fn refused(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, Refused(why.into()))
}

/// True for an error that retrying cannot fix: a refusal, a path component
/// that is not a directory, a directory where a file should go, a name the
/// file system will not take. Network trouble, a full disk or a permission
/// are transient: an operator can fix them, and the work is retried.
pub fn is_permanent(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<Refused>())
        || matches!(
            e.kind(),
            io::ErrorKind::NotADirectory
                | io::ErrorKind::IsADirectory
                | io::ErrorKind::InvalidFilename
        )
}

/// What a stat of a remote path tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStat {
    pub size: u64,
    pub is_dir: bool,
    pub mtime: Option<SystemTime>,
}

/// Whether `put` may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there.
    Replace,
    /// Fail with `AlreadyExists` if the path exists.
    CreateNew,
}

/// What a destination does: the operations a sender (or subscribe, whose
/// destination is this machine) needs at the other end. Every path is an
/// [`At`], resolved beneath its root.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Creates `dir` and any missing parents, each with `mode`. The root
    /// itself is made too when missing (the config named it).
    async fn mkdirs(&self, dir: At<'_>, mode: u32) -> io::Result<()>;
    /// Copies the local file to `remote`; returns the bytes written. With
    /// [`PutMode::CreateNew`], an existing `remote` is an `AlreadyExists`
    /// error (another writer may be using that inflight name). Never
    /// writes through a symlink standing at `remote`.
    async fn put(&self, local: &Path, remote: At<'_>, mode: PutMode) -> io::Result<u64>;
    /// Renames `from` to `to`, replacing `to` if it exists.
    async fn rename(&self, from: At<'_>, to: At<'_>) -> io::Result<()>;
    /// Removes a file or link; an absent one is not an error.
    async fn remove(&self, path: At<'_>) -> io::Result<()>;
    /// Removes an empty directory; an absent one is not an error.
    async fn rmdir(&self, path: At<'_>) -> io::Result<()>;
    /// Makes `path` a symbolic link to `target`, replacing what was there.
    /// The target is data, whatever it says: nothing follows it here.
    async fn symlink(&self, target: &str, path: At<'_>) -> io::Result<()>;
    /// Sets the mode and/or the (atime, mtime) of `path` itself (a
    /// symlink there is not followed).
    async fn setstat(
        &self,
        path: At<'_>,
        mode: Option<u32>,
        times: Option<(SystemTime, SystemTime)>,
    ) -> io::Result<()>;
    /// Stats `path` (not following a final symlink); `None` if absent.
    async fn stat(&self, path: At<'_>) -> io::Result<Option<RemoteStat>>;
    /// Creates the local file `path` for a download to write into, failing
    /// with `AlreadyExists` if the name is taken. Only a destination on
    /// this machine can; the default is `Unsupported`.
    async fn create(&self, path: At<'_>) -> io::Result<std::fs::File> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{}: downloads go to a local directory", path.path),
        ))
    }
    /// The checksum of `path` computed at the destination, as a v03
    /// identity value (standard base64 of the digest) for `method`
    /// (`sha512` or `md5`). Where commands run remotely, `command` (its
    /// first word of output the hex digest; default `sha512sum`/`md5sum`)
    /// does it there. `Unsupported` where the transport cannot.
    async fn checksum(
        &self,
        path: At<'_>,
        method: &str,
        command: Option<&str>,
    ) -> io::Result<String> {
        let _ = (path, command);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("no {method} checksum at this destination"),
        ))
    }
    /// Copies a large local file (size ≥ accelThreshold) to `remote`,
    /// replacing it, with `accel_command` (e.g. accelScpCommand
    /// `/usr/bin/scp %s %d`) where the transport has a faster path; returns
    /// the bytes written. The default is a plain [`Transport::put`].
    async fn put_large(
        &self,
        local: &Path,
        remote: At<'_>,
        accel_command: &str,
    ) -> io::Result<u64> {
        let _ = accel_command;
        self.put(local, remote, PutMode::Replace).await
    }
}

/// What a source does: where subscribe downloads from (a message's
/// baseUrl). `remote`'s root is the baseUrl's path; a source on this
/// machine reads only beneath it.
#[async_trait]
pub trait Source: Send + Sync {
    /// Copies `remote` into `out` (a file just created at the
    /// destination); returns the bytes read. An absent `remote` is a
    /// `NotFound` error.
    async fn get(&self, remote: At<'_>, out: std::fs::File) -> io::Result<u64>;
}

/// The default command that prints the hex digest of a file for `method`.
pub fn default_checksum_command(method: &str) -> Option<&'static str> {
    match method {
        "sha512" | "" => Some("sha512sum"),
        "md5" => Some("md5sum"),
        _ => None,
    }
}

/// The v03 identity value (base64 of the digest) of a hex digest: the first
/// word of a `sha512sum`-style output.
pub fn identity_of_hex(output: &str) -> io::Result<String> {
    use base64::Engine;
    let hex = output
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_start_matches('\\');
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .filter(|b| !b.is_empty() && hex.len().is_multiple_of(2))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a hex digest: {:?}", output.trim()),
            )
        })?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// How a transport reaches its destination, beyond the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportOptions {
    /// The ssh_config file ssh is given with `-F` (`sshConfig`); `None`
    /// leaves ssh to read `~/.ssh/config`.
    pub ssh_config: Option<PathBuf>,
    /// The bound on one operation (`timeout`); data transfers get one more
    /// second per MiB.
    pub timeout: Duration,
    /// A key to log in with (credentials.conf `ssh_keyfile`), used alone.
    pub ssh_keyfile: Option<PathBuf>,
    /// `byteRateMax` in bytes per second (0: none). The flow keeps the
    /// pace between files; a transport that hands a large file to a
    /// program of its own asks that program to keep it within the file.
    pub byte_rate_max: u64,
}

impl Default for TransportOptions {
    /// sr3's `timeout` of 300 s, no key, and the ssh config from
    /// `PITCHER_SSH_CONFIG` when that is set and not empty.
    fn default() -> TransportOptions {
        TransportOptions {
            ssh_config: std::env::var_os("PITCHER_SSH_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            timeout: Duration::from_secs(300),
            ssh_keyfile: None,
            byte_rate_max: 0,
        }
    }
}

/// The destination for a `sendTo` URL, with default [`TransportOptions`].
pub fn for_url(send_to: &str) -> io::Result<Box<dyn Transport>> {
    for_url_with(send_to, &TransportOptions::default())
}

/// The destination for a `sendTo` URL. Nothing connects yet: network
/// transports connect on first use (and reconnect after a failure).
pub fn for_url_with(send_to: &str, opts: &TransportOptions) -> io::Result<Box<dyn Transport>> {
    match scheme_of(send_to) {
        "file" => Ok(Box::new(file::FileTransport::new(file::root_of(send_to)))),
        "sftp" => Ok(Box::new(sftp::SftpTransport::new(send_to, opts)?)),
        "http" | "https" => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("sendTo {send_to}: http(s) is for downloading (subscribe); send with file: or sftp://"),
        )),
        other => Err(unknown_scheme(other)),
    }
}

/// The source for a baseUrl's server (`file:`, `sftp://…`, `http(s)://…`).
pub fn source_for_url(url: &str, opts: &TransportOptions) -> io::Result<Box<dyn Source>> {
    match scheme_of(url) {
        "file" => Ok(Box::new(file::FileTransport::new("/".into()))),
        "sftp" => Ok(Box::new(sftp::SftpTransport::new(url, opts)?)),
        "http" | "https" => Ok(Box::new(http::HttpTransport::new(url, opts)?)),
        other => Err(unknown_scheme(other)),
    }
}

fn scheme_of(url: &str) -> &str {
    url.split(':').next().unwrap_or("")
}

/// A scheme no transport speaks: permanent for the message that names it.
fn unknown_scheme(scheme: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        Refused(format!(
            "scheme '{scheme}:' is not supported (known: file:, sftp:, and http:, https: for downloads)"
        )),
    )
}

#[cfg(test)]
mod checksum_tests {
    use super::*;

    #[test]
    fn hex_digests_become_identity_values() {
        // sha512 of "hello\n", as sha512sum prints it and as sr3 announces it.
        let out = "e7c22b994c59d9cf2b48e549b1e24666636045930d3da7c1acb299d1c3b7f931f94aae41edda2c2b207a36e10f8bcb8d45223e54878f5b316e7ce3b6bc019629  /x/hello\n";
        assert_eq!(
            identity_of_hex(out).unwrap(),
            "58IrmUxZ2c8rSOVJseJGZmNgRZMNPafBrLKZ0cO3+TH5Sq5B7dosKyB6NuEPi8uNRSI+VIePWzFufOO2vAGWKQ=="
        );
        assert!(identity_of_hex("not hex at all").is_err());
        assert!(identity_of_hex("").is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sftp_send_to_gives_a_transport_that_connects_only_when_used() {
        // An unresolvable host: creating the transport must not touch the network.
        let t = for_url_with(
            "sftp://pitcher-no-such-host.invalid/",
            &TransportOptions::default(),
        );
        assert!(t.is_ok());
        let e = for_url_with("ftp://host/", &TransportOptions::default())
            .err()
            .expect("ftp: is unknown");
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        let e = for_url_with("sftp://", &TransportOptions::default())
            .err()
            .expect("no host");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn paths_are_taken_apart_beneath_their_root_and_refused_otherwise() {
        let parts = |root, path| At::new(root, path).parts();
        assert_eq!(parts("/d", "/d/a/b").unwrap(), ["a", "b"]);
        assert_eq!(parts("/d/", "/d//a/").unwrap(), ["a"]);
        assert_eq!(parts("/", "/a").unwrap(), ["a"]);
        assert_eq!(parts("", "a/b").unwrap(), ["a", "b"]);
        assert!(parts("/d", "/d").unwrap().is_empty(), "the root itself");
        let long = "n".repeat(NAME_MAX);
        let fits = format!("/d/{long}");
        assert_eq!(parts("/d", &fits).unwrap(), [long.as_str()]);
        for (root, path) in [
            ("/d", "/dx/a"),
            ("/d", "/e/a"),
            ("", "/abs"),
            ("/d", "/d/../x"),
            ("/d", "/d/a/./b"),
            ("/d", "/d/a\0b"),
        ] {
            let e = parts(root, path).unwrap_err();
            assert!(is_permanent(&e), "{root} {path}: {e}");
        }
        let e = parts("/d", &format!("/d/{long}n")).unwrap_err();
        assert!(
            is_permanent(&e) && e.to_string().contains("256 bytes"),
            "{e}"
        );
    }

    #[test]
    fn only_what_retrying_cannot_fix_is_permanent() {
        assert!(is_permanent(&refused("no")));
        for k in [
            io::ErrorKind::NotADirectory,
            io::ErrorKind::IsADirectory,
            io::ErrorKind::InvalidFilename,
        ] {
            assert!(is_permanent(&io::Error::from(k)), "{k:?}");
        }
        for k in [
            io::ErrorKind::PermissionDenied,
            io::ErrorKind::StorageFull,
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::TimedOut,
            io::ErrorKind::NotFound,
            io::ErrorKind::InvalidData,
            io::ErrorKind::InvalidInput,
        ] {
            assert!(!is_permanent(&io::Error::from(k)), "{k:?}");
        }
    }

    #[tokio::test]
    async fn put_large_of_a_transport_without_accel_is_a_plain_put() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::write(&src, b"large enough").expect("write");
        std::fs::create_dir(dir.path().join("dst")).expect("mkdir");
        let t = file::FileTransport::new(dir.path().join("dst"));
        let n = t
            .put_large(&src, At::new("/", "/f"), "/bin/false %s %d")
            .await
            .expect("put_large");
        assert_eq!(n, 12);
        assert_eq!(
            std::fs::read(dir.path().join("dst/f")).expect("read"),
            b"large enough"
        );
    }
}
