//! The `file:` transport: the destination is a directory on this machine
//! (a local disk, or a cluster file system mounted here).
//!
//! Files are copied with `std::fs::copy` (copy_file_range where the kernel
//! can) on tokio's blocking pool, so a large copy never stalls the flow.

use super::{PutMode, RemoteStat, Transport};
use async_trait::async_trait;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
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
    /// A transport whose remote paths are under `root`.
    pub fn new(root: PathBuf) -> FileTransport {
        FileTransport { root }
    }

    fn local(&self, remote: &str) -> PathBuf {
        self.root.join(remote.trim_start_matches('/'))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[async_trait]
impl Transport for FileTransport {
    async fn mkdirs(&self, dir: &str, mode: u32) -> io::Result<()> {
        let path = self.local(dir);
        blocking(move || {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(path)
        })
        .await
    }

    async fn put(&self, local: &Path, remote: &str, mode: PutMode) -> io::Result<u64> {
        let (src, dst) = (local.to_path_buf(), self.local(remote));
        blocking(move || {
            let mut input = std::fs::File::open(&src)?;
            if mode == PutMode::Replace {
                // A new inode, never a rewrite of one someone may be reading.
                ignore_missing(std::fs::remove_file(&dst))?;
            }
            let mut out = std::fs::File::options()
                .write(true)
                .create_new(true)
                .open(&dst)?;
            let n = io::copy(&mut input, &mut out)?;
            out.sync_all()?;
            Ok(n)
        })
        .await
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (a, b) = (self.local(from), self.local(to));
        blocking(move || std::fs::rename(a, b)).await
    }

    async fn remove(&self, path: &str) -> io::Result<()> {
        let p = self.local(path);
        blocking(move || ignore_missing(std::fs::remove_file(p))).await
    }

    async fn rmdir(&self, path: &str) -> io::Result<()> {
        let p = self.local(path);
        blocking(move || ignore_missing(std::fs::remove_dir(p))).await
    }

    async fn symlink(&self, target: &str, path: &str) -> io::Result<()> {
        let (t, p) = (PathBuf::from(target), self.local(path));
        blocking(move || {
            ignore_missing(std::fs::remove_file(&p))?;
            std::os::unix::fs::symlink(t, p)
        })
        .await
    }

    async fn setstat(
        &self,
        path: &str,
        mode: Option<u32>,
        times: Option<(SystemTime, SystemTime)>,
    ) -> io::Result<()> {
        let p = self.local(path);
        blocking(move || {
            if let Some(m) = mode {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m))?;
            }
            if let Some((atime, mtime)) = times {
                let f = std::fs::File::options().write(true).open(&p)?;
                f.set_times(
                    std::fs::FileTimes::new()
                        .set_accessed(atime)
                        .set_modified(mtime),
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn stat(&self, path: &str) -> io::Result<Option<RemoteStat>> {
        let p = self.local(path);
        blocking(move || match std::fs::symlink_metadata(&p) {
            Ok(m) => Ok(Some(RemoteStat {
                size: m.len(),
                is_dir: m.is_dir(),
                mtime: m.modified().ok(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn checksum(
        &self,
        path: &str,
        method: &str,
        _command: Option<&str>,
    ) -> io::Result<String> {
        let (p, method) = (self.local(path), method.to_string());
        blocking(move || {
            crate::message::compute_identity(&p, &method)?
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

    async fn get(&self, remote: &str, local: &Path) -> io::Result<u64> {
        let (src, dst) = (self.local(remote), local.to_path_buf());
        blocking(move || {
            let n = std::fs::copy(&src, &dst)?;
            std::fs::File::open(&dst)?.sync_all()?;
            Ok(n)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let src = dir.path().join("src");
        std::fs::write(&src, b"hello").unwrap();
        t.mkdirs("/out/a b", 0o755).await.unwrap();
        std::fs::write(dir.path().join("out/a b/f"), b"old").unwrap();
        assert_eq!(
            t.put(&src, "/out/a b/f.tmp", PutMode::CreateNew)
                .await
                .unwrap(),
            5
        );
        let busy = t
            .put(&src, "/out/a b/f.tmp", PutMode::CreateNew)
            .await
            .unwrap_err();
        assert_eq!(busy.kind(), io::ErrorKind::AlreadyExists);
        t.rename("/out/a b/f.tmp", "/out/a b/f").await.unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("out/a b/f")).unwrap(),
            b"hello"
        );
        let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        t.setstat("/out/a b/f", Some(0o600), Some((when, when)))
            .await
            .unwrap();
        let m = std::fs::metadata(dir.path().join("out/a b/f")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        assert_eq!(m.modified().unwrap(), when);
        let err = t.rename("/out/nothing", "/out/x").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        t.remove("/out/never-there").await.unwrap();
    }
}
