//! The [`Transport`] operations of [`SftpTransport`]: each is one or a few
//! SFTP requests on the shared connection, bounded by the timeout.

use super::errors::Failure;
use super::{Connection, SftpTransport};
use crate::transfer::{PutMode, RemoteStat, Transport};
use async_trait::async_trait;
use bytes::Bytes;
use openssh_sftp_client::file::TokioCompatFile;
use openssh_sftp_client::metadata::{MetaData, MetaDataBuilder, Permissions};
use openssh_sftp_client::UnixTimeStamp;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::time::SystemTime;
use tokio::io::{AsyncReadExt, AsyncSeek, AsyncWriteExt};

/// Write requests of one file in flight at once: with OpenSSH's 255 KiB
/// per request, about 2 MiB, enough to fill a long fat link without
/// holding much memory per file (the sender runs 32 puts at once).
const WRITE_WINDOW: usize = 8;

/// Bytes per write request: OpenSSH's limit (256 KiB less 1 KiB of
/// header room, as its `limits@openssh.com` reply says). A server with a
/// lower limit still works: the client splits a request that is too big.
const WRITE_CHUNK: usize = 255 * 1024;

/// The directory above `p`, or `None` for a top-level or relative name
/// (the root and the login directory always exist).
fn parent(p: &str) -> Option<&str> {
    match p.rfind('/') {
        Some(0) | None => None,
        Some(i) => Some(&p[..i]),
    }
}

/// `lstat` (or `stat` if `follow`); `Ok(None)` when the path is absent.
async fn metadata(c: &Connection, path: &str, follow: bool) -> Result<Option<MetaData>, Failure> {
    let mut fs = c.sftp.fs();
    let r = if follow {
        fs.metadata(path).await
    } else {
        fs.symlink_metadata(path).await
    };
    match r.map_err(Failure::of) {
        Ok(m) => Ok(Some(m)),
        Err(f) if f.is_not_found() => Ok(None),
        Err(f) => Err(f),
    }
}

fn is_dir(m: &MetaData) -> bool {
    m.file_type().is_some_and(|t| t.is_dir())
}

/// Creates `dir` and its missing parents. Stats upward to the first
/// directory that exists (usually `dir` itself: one round trip), then
/// creates downward, accepting a directory someone else just made.
async fn mkdirs(c: &Connection, dir: &str, mode: u32, what: &str) -> io::Result<()> {
    if c.dirs.contains(dir) {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut p = Some(dir);
    while let Some(here) = p {
        match metadata(c, here, true).await.map_err(|f| c.fail(f, what))? {
            Some(m) if is_dir(&m) => break,
            Some(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{what}: {here} is not a directory"),
                ))
            }
            None => missing.push(here),
        }
        p = parent(here);
    }
    for here in missing.into_iter().rev() {
        let mut fs = c.sftp.fs();
        let mut builder = fs.dir_builder();
        builder.permissions(Permissions::from((mode & 0o7777) as u16));
        if let Err(e) = builder.create(here).await {
            let f = Failure::of(e);
            // EEXIST comes back as the catch-all FAILURE: check for a race winner.
            if f.is_generic_failure() {
                if let Some(m) = metadata(c, here, true).await.map_err(|f| c.fail(f, what))? {
                    if is_dir(&m) {
                        continue;
                    }
                }
            }
            return Err(c.fail(f, what));
        }
    }
    c.dirs.insert(dir);
    Ok(())
}

/// Reads from `src` until `buf` is full or the file ends. The reads are
/// plain blocking ones: a local file, mostly in the page cache, read in
/// pieces of at most [`WRITE_CHUNK`]. Handing each to tokio's blocking pool
/// costs a thread hop per read, and each pool thread gets a malloc arena of
/// its own that stays with the process.
fn read_full(src: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    use std::io::Read;
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Opens `remote` for writing as `mode` says and copies `src` into it,
/// with up to [`WRITE_WINDOW`] write requests in flight. `size` (the
/// file's size when opened) only sizes the buffer.
async fn put(
    c: &Connection,
    (src, size): (&mut std::fs::File, u64),
    local: &Path,
    remote: &str,
    mode: PutMode,
    what: &str,
) -> io::Result<u64> {
    let mut options = c.sftp.options();
    options.write(true);
    match mode {
        PutMode::CreateNew => options.create_new(true),
        PutMode::Replace => options.create(true).truncate(true),
    };
    let mut file = match options.open(remote).await {
        Ok(f) => f,
        Err(e) => {
            let f = Failure::of(e);
            if f.is_not_found() {
                // Its directory is gone, though believed made: the retry
                // makes it again.
                c.dirs.forget_all();
            }
            // sftp-server reports an EXCL open of an existing path as FAILURE.
            if mode == PutMode::CreateNew
                && f.is_generic_failure()
                && metadata(c, remote, false).await.is_ok_and(|m| m.is_some())
            {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{what}: exists already"),
                ));
            }
            return Err(c.fail(f, what));
        }
    };
    let local_err = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("{what}: reading {}: {e}", local.display()),
        )
    };
    // A small file gets a buffer of its size (plus one byte, to see its
    // end in one read), not a whole request's 255 KiB to zero every time.
    let chunk = usize::try_from(size)
        .map_or(WRITE_CHUNK, |s| s.saturating_add(1))
        .min(WRITE_CHUNK);
    let mut buf = vec![0u8; chunk];
    let mut offset = 0u64;
    let mut pending = tokio::task::JoinSet::new();
    loop {
        let n = read_full(src, &mut buf).map_err(local_err)?;
        if n == 0 {
            break;
        }
        // Writes hand the client `Bytes`: its plain `write_all` serializes
        // the data one byte at a time (3 % of a sender's CPU on 4 KiB files).
        if offset == 0 && n < chunk {
            // The whole file in one request, the common small-file case.
            buf.truncate(n);
            file.write_all_zero_copy(&mut [Bytes::from(std::mem::take(&mut buf))])
                .await
                .map_err(|e| c.fail(Failure::of(e), what))?;
            offset = n as u64;
            break;
        }
        let mut part = file.clone();
        Pin::new(&mut part).start_seek(io::SeekFrom::Start(offset))?;
        let data = Bytes::copy_from_slice(&buf[..n]);
        pending.spawn(async move { part.write_all_zero_copy(&mut [data]).await });
        offset += n as u64;
        while pending.len() >= WRITE_WINDOW {
            join_one(c, &mut pending, what).await?;
        }
    }
    while !pending.is_empty() {
        join_one(c, &mut pending, what).await?;
    }
    file.close()
        .await
        .map_err(|e| c.fail(Failure::of(e), what))?;
    Ok(offset)
}

/// Waits for one of the in-flight writes of a put.
async fn join_one(
    c: &Connection,
    pending: &mut tokio::task::JoinSet<Result<(), openssh_sftp_client::Error>>,
    what: &str,
) -> io::Result<()> {
    match pending.join_next().await {
        Some(Ok(Ok(()))) | None => Ok(()),
        Some(Ok(Err(e))) => Err(c.fail(Failure::of(e), what)),
        Some(Err(join)) => Err(io::Error::other(format!(
            "{what}: write task failed: {join}"
        ))),
    }
}

/// Copies `remote` into the local file `local`.
async fn get(c: &Connection, remote: &str, local: &Path, what: &str) -> io::Result<u64> {
    let file = c
        .sftp
        .open(remote)
        .await
        .map_err(|e| c.fail(Failure::of(e), what))?;
    let mut input = Box::pin(TokioCompatFile::new(file));
    let local_err = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("{what}: writing {}: {e}", local.display()),
        )
    };
    let mut out = tokio::fs::File::create(local).await.map_err(local_err)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = input
            .read(&mut buf)
            .await
            .map_err(|e| c.fail(Failure::of_io(e), what))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).await.map_err(local_err)?;
        total += n as u64;
    }
    out.sync_all().await.map_err(local_err)?;
    Ok(total)
}

/// Turns "absent" into success, for removals.
fn absent_is_ok(r: Result<(), openssh_sftp_client::Error>) -> Result<(), Failure> {
    match r.map_err(Failure::of) {
        Err(f) if f.is_not_found() => Ok(()),
        other => other,
    }
}

fn timestamp(t: SystemTime, what: &str) -> io::Result<UnixTimeStamp> {
    UnixTimeStamp::new(t).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what}: time {t:?} does not fit SFTP v3 (1970..2106)"),
        )
    })
}

#[async_trait]
impl Transport for SftpTransport {
    async fn mkdirs(&self, dir: &str, mode: u32) -> io::Result<()> {
        let dir = dir.trim_end_matches('/');
        if dir.is_empty() || dir == "." {
            return Ok(());
        }
        let what = format!("sftp mkdirs {}:{dir}", self.host());
        let c = self.connection().await?;
        self.bounded(
            &c,
            self.timeout,
            || what.clone(),
            mkdirs(&c, dir, mode, &what),
        )
        .await
    }

    async fn put(&self, local: &Path, remote: &str, mode: PutMode) -> io::Result<u64> {
        let what = format!("sftp put {} to {}:{remote}", local.display(), self.host());
        let mut src = std::fs::File::open(local)
            .map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))?;
        let size = src.metadata()?.len();
        let c = self.connection().await?;
        self.bounded(
            &c,
            self.data_timeout(size),
            || what.clone(),
            put(&c, (&mut src, size), local, remote, mode, &what),
        )
        .await
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let what = format!("sftp rename {}:{from} to {to}", self.host());
        let c = self.connection().await?;
        self.bounded(&c, self.timeout, || what.clone(), async {
            // `from` may be a directory: what is known below it moves away.
            c.dirs.forget_under(from);
            let mut fs = c.sftp.fs();
            if !c.sftp.support_posix_rename() {
                // Plain SSH_FXP_RENAME will not replace: clear the way (not atomic).
                absent_is_ok(fs.remove_file(to).await).map_err(|f| c.fail(f, &what))?;
            }
            fs.rename(from, to)
                .await
                .map_err(|e| c.fail(Failure::of(e), &what))
        })
        .await
    }

    async fn remove(&self, path: &str) -> io::Result<()> {
        let what = format!("sftp remove {}:{path}", self.host());
        let c = self.connection().await?;
        self.bounded(&c, self.timeout, || what.clone(), async {
            absent_is_ok(c.sftp.fs().remove_file(path).await).map_err(|f| c.fail(f, &what))
        })
        .await
    }

    async fn rmdir(&self, path: &str) -> io::Result<()> {
        let what = format!("sftp rmdir {}:{path}", self.host());
        let c = self.connection().await?;
        c.dirs.forget_under(path);
        self.bounded(&c, self.timeout, || what.clone(), async {
            absent_is_ok(c.sftp.fs().remove_dir(path).await).map_err(|f| c.fail(f, &what))
        })
        .await
    }

    async fn symlink(&self, target: &str, path: &str) -> io::Result<()> {
        let what = format!("sftp symlink {}:{path} -> {target}", self.host());
        let c = self.connection().await?;
        self.bounded(&c, self.timeout, || what.clone(), async {
            let mut fs = c.sftp.fs();
            absent_is_ok(fs.remove_file(path).await).map_err(|f| c.fail(f, &what))?;
            fs.symlink(target, path)
                .await
                .map_err(|e| c.fail(Failure::of(e), &what))
        })
        .await
    }

    async fn setstat(
        &self,
        path: &str,
        mode: Option<u32>,
        times: Option<(SystemTime, SystemTime)>,
    ) -> io::Result<()> {
        let what = format!("sftp setstat {}:{path}", self.host());
        let mut attrs = MetaDataBuilder::new();
        if let Some(m) = mode {
            attrs.permissions(Permissions::from((m & 0o7777) as u16));
        }
        if let Some((atime, mtime)) = times {
            attrs.time(timestamp(atime, &what)?, timestamp(mtime, &what)?);
        }
        if mode.is_none() && times.is_none() {
            return Ok(());
        }
        let c = self.connection().await?;
        self.bounded(&c, self.timeout, || what.clone(), async {
            c.sftp
                .fs()
                .set_metadata(path, attrs.create())
                .await
                .map_err(|e| c.fail(Failure::of(e), &what))
        })
        .await
    }

    async fn stat(&self, path: &str) -> io::Result<Option<RemoteStat>> {
        let what = format!("sftp stat {}:{path}", self.host());
        let c = self.connection().await?;
        let m = self
            .bounded(&c, self.timeout, || what.clone(), async {
                metadata(&c, path, false)
                    .await
                    .map_err(|f| c.fail(f, &what))
            })
            .await?;
        Ok(m.map(|m| RemoteStat {
            size: m.len().unwrap_or(0),
            is_dir: is_dir(&m),
            mtime: m.modified().map(|t| t.as_system_time()),
        }))
    }

    async fn get(&self, remote: &str, local: &Path) -> io::Result<u64> {
        let what = format!("sftp get {}:{remote} to {}", self.host(), local.display());
        let c = self.connection().await?;
        let size = self
            .bounded(&c, self.timeout, || what.clone(), async {
                metadata(&c, remote, true)
                    .await
                    .map_err(|f| c.fail(f, &what))
            })
            .await?
            .and_then(|m| m.len())
            .unwrap_or(0);
        self.bounded(
            &c,
            self.data_timeout(size),
            || what.clone(),
            get(&c, remote, local, &what),
        )
        .await
    }

    async fn put_large(&self, local: &Path, remote: &str, accel_command: &str) -> io::Result<u64> {
        self.put_accelerated(local, remote, accel_command).await
    }

    async fn checksum(
        &self,
        path: &str,
        method: &str,
        command: Option<&str>,
    ) -> io::Result<String> {
        let command = command
            .or(crate::transfer::default_checksum_command(method))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("no checksum command known for {method}: set checksumCommand"),
                )
            })?;
        crate::transfer::identity_of_hex(&self.remote_output(command, path).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::parent;

    #[test]
    fn parents_stop_at_the_root_and_at_the_login_directory() {
        assert_eq!(parent("/a/b/c"), Some("/a/b"));
        assert_eq!(parent("/a"), None);
        assert_eq!(parent("rel/sub"), Some("rel"));
        assert_eq!(parent("rel"), None);
    }
}
