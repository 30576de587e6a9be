//! The `file:` transport: the destination is a directory on this machine
//! (a local disk, or a cluster file system mounted here).
//!
//! Every write goes through [`Beneath`]: resolved beneath the root that
//! its [`At`] names, never through a symlink that leads out. Copies run on
//! tokio's blocking pool, so a large copy never stalls the flow.
//!
//! As a [`Source`] (subscribe from a `file:` baseUrl) it reads the path a
//! message names, `..` refused; which local files a subscribe may read at
//! all is for its accept/reject masks to say, as in sr3.

use super::beneath::Beneath;
use super::{At, PutMode, RemoteStat, Source, Transport};
use async_trait::async_trait;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The root a `file:` URL names: `file:` and `file:/` are `/`,
/// `file:/data/x` and `file:///data/x` are `/data/x`. Remote paths are
/// taken relative to it.
pub fn root_of(url: &str) -> PathBuf {
    let rest = url.strip_prefix("file:").unwrap_or(url);
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    if rest.is_empty() {
        PathBuf::from("/")
    } else {
        PathBuf::from(format!("/{}", rest.trim_start_matches('/')))
    }
}

/// Copies to and from directories of this machine.
#[derive(Debug, Clone)]
pub struct FileTransport {
    root: PathBuf,
}

impl FileTransport {
    /// A transport whose paths are under `root`.
    pub fn new(root: PathBuf) -> FileTransport {
        FileTransport { root }
    }

    /// The local directory of `at`'s root.
    fn root_of(&self, at: At<'_>) -> PathBuf {
        self.root.join(at.root.trim_start_matches('/'))
    }

    /// Runs `op` on the blocking pool with `at`'s root opened and its path
    /// taken apart beneath it.
    async fn beneath<T: Send + 'static>(
        &self,
        at: At<'_>,
        op: impl FnOnce(&Beneath, &[&str]) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let parts: Vec<String> = at.parts()?.into_iter().map(String::from).collect();
        let root = self.root_of(at);
        blocking(move || {
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            op(&Beneath::open(&root)?, &parts)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

#[async_trait]
impl Transport for FileTransport {
    async fn mkdirs(&self, dir: At<'_>, mode: u32) -> io::Result<()> {
        let root = self.root_of(dir);
        let parts: Vec<String> = dir.parts()?.into_iter().map(String::from).collect();
        blocking(move || {
            let b = match Beneath::open(&root) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // The configured directory itself: made as named.
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(mode)
                        .create(&root)?;
                    Beneath::open(&root)?
                }
                other => other?,
            };
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            b.mkdirs(&parts, mode)
        })
        .await
    }

    async fn put(&self, local: &Path, remote: At<'_>, mode: PutMode) -> io::Result<u64> {
        let src = local.to_path_buf();
        self.beneath(remote, move |b, parts| {
            let mut input = std::fs::File::open(&src)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", src.display())))?;
            if mode == PutMode::Replace {
                // A new inode, never a rewrite of one someone may be
                // reading, nor a write through a link standing there.
                b.remove(parts)?;
            }
            let mut out = b.create_new(parts)?;
            let n = io::copy(&mut input, &mut out)?;
            out.sync_all()?;
            Ok(n)
        })
        .await
    }

    async fn rename(&self, from: At<'_>, to: At<'_>) -> io::Result<()> {
        let to_parts: Vec<String> = to.parts()?.into_iter().map(String::from).collect();
        if self.root_of(from) != self.root_of(to) {
            return Err(super::refused(format!(
                "rename {} to {}: not beneath the same root",
                from.path, to.path
            )));
        }
        self.beneath(from, move |b, parts| {
            let to: Vec<&str> = to_parts.iter().map(String::as_str).collect();
            b.rename(parts, &to)
        })
        .await
    }

    async fn remove(&self, path: At<'_>) -> io::Result<()> {
        self.beneath(path, |b, parts| b.remove(parts)).await
    }

    async fn rmdir(&self, path: At<'_>) -> io::Result<()> {
        self.beneath(path, |b, parts| b.rmdir(parts)).await
    }

    async fn symlink(&self, target: &str, path: At<'_>) -> io::Result<()> {
        let target = target.to_string();
        self.beneath(path, move |b, parts| b.symlink(&target, parts))
            .await
    }

    async fn setstat(
        &self,
        path: At<'_>,
        mode: Option<u32>,
        times: Option<(SystemTime, SystemTime)>,
    ) -> io::Result<()> {
        self.beneath(path, move |b, parts| b.setstat(parts, mode, times))
            .await
    }

    async fn stat(&self, path: At<'_>) -> io::Result<Option<RemoteStat>> {
        let r = self
            .beneath(path, |b, parts| {
                Ok(b.lstat(parts)?.map(|s| RemoteStat {
                    size: s.size,
                    is_dir: s.is_dir,
                    mtime: s.mtime,
                }))
            })
            .await;
        match r {
            // The root not made yet: nothing beneath it either.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            other => other,
        }
    }

    async fn create(&self, path: At<'_>) -> io::Result<std::fs::File> {
        self.beneath(path, |b, parts| b.create_new(parts)).await
    }

    async fn checksum(
        &self,
        path: At<'_>,
        method: &str,
        _command: Option<&str>,
    ) -> io::Result<String> {
        let method = method.to_string();
        self.beneath(path, move |b, parts| {
            let f = b.open_read(parts)?;
            // The very file opened beneath the root, by its descriptor.
            let fd_path = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
            crate::message::compute_identity(&fd_path, &method)?
                .map(|i| i.value)
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!("no checksum for identity method {method}"),
                    )
                })
        })
        .await
    }
}

#[async_trait]
impl Source for FileTransport {
    async fn get(&self, remote: At<'_>, mut out: std::fs::File) -> io::Result<u64> {
        remote.parts()?;
        let src = self.root.join(remote.path.trim_start_matches('/'));
        blocking(move || {
            let mut input = std::fs::File::open(&src)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", src.display())))?;
            let n = io::copy(&mut input, &mut out)?;
            out.sync_all()?;
            Ok(n)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn file_url_roots() {
        assert_eq!(root_of("file:"), PathBuf::from("/"));
        assert_eq!(root_of("file:/data/x"), PathBuf::from("/data/x"));
        assert_eq!(root_of("file:///data/x/"), PathBuf::from("/data/x/"));
    }

    #[tokio::test]
    async fn put_then_rename_replaces_and_setstat_applies() {
        let dir = tempfile::tempdir().unwrap();
        let t = FileTransport::new(dir.path().to_path_buf());
        let at = |p| At::new("/out", p);
        let src = dir.path().join("src");
        std::fs::write(&src, b"hello").unwrap();
        t.mkdirs(at("/out/a b"), 0o755).await.unwrap();
        std::fs::write(dir.path().join("out/a b/f"), b"old").unwrap();
        assert_eq!(
            t.put(&src, at("/out/a b/f.tmp"), PutMode::CreateNew)
                .await
                .unwrap(),
            5
        );
        let busy = t
            .put(&src, at("/out/a b/f.tmp"), PutMode::CreateNew)
            .await
            .unwrap_err();
        assert_eq!(busy.kind(), io::ErrorKind::AlreadyExists);
        t.rename(at("/out/a b/f.tmp"), at("/out/a b/f"))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("out/a b/f")).unwrap(),
            b"hello"
        );
        let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        t.setstat(at("/out/a b/f"), Some(0o600), Some((when, when)))
            .await
            .unwrap();
        let m = std::fs::metadata(dir.path().join("out/a b/f")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        assert_eq!(m.modified().unwrap(), when);
        let err = t
            .rename(at("/out/nothing"), at("/out/x"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        t.remove(at("/out/never-there")).await.unwrap();
    }
}
