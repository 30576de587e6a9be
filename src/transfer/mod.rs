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

pub mod accel;
pub mod file;
pub mod http;
pub mod sftp;

use async_trait::async_trait;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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

/// The operations a sender (or subscriber) needs at the other end.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Creates `dir` and any missing parents, each with `mode`.
    async fn mkdirs(&self, dir: &str, mode: u32) -> io::Result<()>;
    /// Copies the local file to `remote`; returns the bytes written. With
    /// [`PutMode::CreateNew`], an existing `remote` is an `AlreadyExists`
    /// error (another writer may be using that inflight name).
    async fn put(&self, local: &Path, remote: &str, mode: PutMode) -> io::Result<u64>;
    /// Renames `from` to `to`, replacing `to` if it exists.
    async fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes a file or link; an absent one is not an error.
    async fn remove(&self, path: &str) -> io::Result<()>;
    /// Removes an empty directory; an absent one is not an error.
    async fn rmdir(&self, path: &str) -> io::Result<()>;
    /// Makes `path` a symbolic link to `target`, replacing what was there.
    async fn symlink(&self, target: &str, path: &str) -> io::Result<()>;
    /// Sets the mode and/or the (atime, mtime) of `path`.
    async fn setstat(
        &self,
        path: &str,
        mode: Option<u32>,
        times: Option<(SystemTime, SystemTime)>,
    ) -> io::Result<()>;
    /// Stats `path` (not following a final symlink); `None` if absent.
    async fn stat(&self, path: &str) -> io::Result<Option<RemoteStat>>;
    /// Copies `remote` into the local file `local`; returns the bytes read.
    async fn get(&self, remote: &str, local: &Path) -> io::Result<u64>;
    /// The checksum of `path` computed at the destination, as a v03
    /// identity value (standard base64 of the digest) for `method`
    /// (`sha512` or `md5`). Where commands run remotely, `command` (its
    /// first word of output the hex digest; default `sha512sum`/`md5sum`)
    /// does it there. `Unsupported` where the transport cannot.
    async fn checksum(
        &self,
        path: &str,
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
    async fn put_large(&self, local: &Path, remote: &str, accel_command: &str) -> io::Result<u64> {
        let _ = accel_command;
        self.put(local, remote, PutMode::Replace).await
    }
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

/// The transport for a `sendTo` URL, with default [`TransportOptions`].
pub fn for_url(send_to: &str) -> io::Result<Box<dyn Transport>> {
    for_url_with(send_to, &TransportOptions::default())
}

/// The transport for a `sendTo` URL. Nothing connects yet: network
/// transports connect on first use (and reconnect after a failure).
pub fn for_url_with(send_to: &str, opts: &TransportOptions) -> io::Result<Box<dyn Transport>> {
    let scheme = send_to.split(':').next().unwrap_or("");
    match scheme {
        "file" => Ok(Box::new(file::FileTransport::new(file::root_of(send_to)))),
        "sftp" => Ok(Box::new(sftp::SftpTransport::new(send_to, opts)?)),
        "http" | "https" => Ok(Box::new(http::HttpTransport::new(send_to, opts)?)),
        other => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("sendTo scheme '{other}:' is not supported (known: file:, sftp:, and http:, https: for downloads)"),
        )),
    }
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

    #[tokio::test]
    async fn put_large_of_a_transport_without_accel_is_a_plain_put() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::write(&src, b"large enough").expect("write");
        std::fs::create_dir(dir.path().join("dst")).expect("mkdir");
        let t = file::FileTransport::new(dir.path().join("dst"));
        let n = t
            .put_large(&src, "/f", "/bin/false %s %d")
            .await
            .expect("put_large");
        assert_eq!(n, 12);
        assert_eq!(
            std::fs::read(dir.path().join("dst/f")).expect("read"),
            b"large enough"
        );
    }
}
