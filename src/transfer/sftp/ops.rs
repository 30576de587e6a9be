//! The [`Transport`] operations of [`SftpTransport`]: each is one or a few
//! SFTP requests on the shared connection, bounded by the timeout.
//!
//! **Confinement.** SFTP v3 has no `openat`: the server resolves every
//! path it is given, following symlinks. So each operation first resolves
//! the directory its path lies in with the server's `realpath`, checks
//! that the result lies beneath the root's own `realpath`, and then acts on
//! that canonical directory joined with the last component (which
//! `rename`, `remove`, `symlink` and an exclusive open do not follow; a
//! `setstat` is skipped on a symlink). Directories are made one component
//! at a time, checking each symlink met on the way before going through
//! it. Resolved directories are cached per connection ([`super::dirs`]).
//! What remains is a race no single sender can open: another client of
//! the same account replacing a checked directory with a symlink between
//! the check and the write.

use super::errors::Failure;
use super::{Connection, SftpTransport};
use crate::transfer::{refused, At, PutMode, RemoteStat, Source, Transport};
use async_trait::async_trait;
use bytes::Bytes;
use openssh_sftp_client::file::TokioCompatFile;
use openssh_sftp_client::metadata::{MetaData, MetaDataBuilder, Permissions};
use openssh_sftp_client::UnixTimeStamp;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
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

/// The longest path the server is given (Linux's PATH_MAX less its NUL).
const PATH_MAX: usize = 4095;

/// `lstat` (or `stat` if `follow`); `Ok(None)` when the path is absent.
async fn metadata(
    c: &Connection,
    path: impl AsRef<Path>,
    follow: bool,
) -> Result<Option<MetaData>, Failure> {
    let path = path.as_ref();
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

/// True when `p` is a directory (not through a final symlink).
async fn is_dir_at(c: &Connection, p: &Path) -> bool {
    metadata(c, p, false)
        .await
        .is_ok_and(|m| m.as_ref().is_some_and(is_dir))
}

fn is_dir(m: &MetaData) -> bool {
    m.file_type().is_some_and(|t| t.is_dir())
}

/// Creates the trusted directory `dir` (a configured root) and its
/// missing parents. Stats upward to the first directory that exists, then
/// creates downward, accepting a directory someone else just made.
async fn mkdirs_trusted(c: &Connection, dir: &str, mode: u32, what: &str) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut p = Some(dir);
    while let Some(here) = p {
        match metadata(c, here, true).await.map_err(|f| c.fail(f, what))? {
            Some(m) if is_dir(&m) => break,
            Some(_) => return Err(not_a_directory(what, Path::new(here))),
            None => missing.push(here),
        }
        p = parent(here);
    }
    for here in missing.into_iter().rev() {
        mkdir(c, Path::new(here), mode, what).await?;
    }
    Ok(())
}

fn not_a_directory(what: &str, p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotADirectory,
        format!("{what}: {} is not a directory", p.display()),
    )
}

/// Makes one directory, accepting one that someone else just made.
async fn mkdir(c: &Connection, here: &Path, mode: u32, what: &str) -> io::Result<()> {
    let mut fs = c.sftp.fs();
    let mut builder = fs.dir_builder();
    builder.permissions(Permissions::from((mode & 0o7777) as u16));
    if let Err(e) = builder.create(here).await {
        let f = Failure::of(e);
        // EEXIST comes back as the catch-all FAILURE: check for a race winner.
        if f.is_generic_failure() {
            if let Some(m) = metadata(c, here, false)
                .await
                .map_err(|f| c.fail(f, what))?
            {
                if is_dir(&m) {
                    return Ok(());
                }
            }
        }
        return Err(c.fail(f, what));
    }
    Ok(())
}

/// The server's `realpath` of `p`; `Ok(None)` when it does not exist.
async fn canonical(c: &Connection, p: &Path, what: &str) -> io::Result<Option<PathBuf>> {
    match c.sftp.fs().canonicalize(p).await.map_err(Failure::of) {
        Ok(p) => Ok(Some(p)),
        Err(f) if f.is_not_found() => Ok(None),
        Err(f) => Err(c.fail(f, what)),
    }
}

/// The canonical path of `at`'s root, made first when `make` and missing.
/// `NotFound` when it is missing and not to be made.
async fn root_of(c: &Connection, at: At<'_>, make: Option<u32>, what: &str) -> io::Result<PathBuf> {
    if let Some(r) = c.dirs.root(at.root) {
        return Ok(r);
    }
    let text = match at.root.trim_end_matches('/') {
        "" if at.root.starts_with('/') => "/",
        "" => ".",
        r => r,
    };
    // OpenSSH's realpath accepts a missing last component: look.
    let existing = match canonical(c, Path::new(text), what).await? {
        Some(p) if is_dir_at(c, &p).await => Some(p),
        _ => None,
    };
    let found = match existing {
        Some(p) => Some(p),
        None => match make {
            Some(mode) => {
                mkdirs_trusted(c, text, mode, what).await?;
                canonical(c, Path::new(text), what).await?
            }
            None => None,
        },
    };
    let root = found.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{what}: {text} does not exist"),
        )
    })?;
    c.dirs.insert_root(at.root, &root);
    Ok(root)
}

/// The refusal for a path that resolved outside its root.
fn leads_out(what: &str, asked: &Path, canon: Option<&Path>, root: &Path) -> io::Error {
    refused(match canon {
        Some(c) => format!(
            "{what}: {} leads to {}, outside {}",
            asked.display(),
            c.display(),
            root.display()
        ),
        None => format!(
            "{what}: {} is a symbolic link that leads nowhere",
            asked.display()
        ),
    })
}

/// The canonical directory `dirs` beneath `root`, checked to lie there.
/// `NotFound` when some part is missing.
async fn dir_beneath(
    c: &Connection,
    root: &Path,
    dirs: &[&str],
    what: &str,
) -> io::Result<PathBuf> {
    if dirs.is_empty() {
        return Ok(root.to_path_buf());
    }
    let asked = root.join(dirs.join("/"));
    if let Some(known) = c.dirs.get(&asked) {
        return Ok(known);
    }
    let canon = canonical(c, &asked, what).await?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{what}: {} does not exist", asked.display()),
        )
    })?;
    if !canon.starts_with(root) {
        return Err(leads_out(what, &asked, Some(&canon), root));
    }
    match metadata(c, &canon, false)
        .await
        .map_err(|f| c.fail(f, what))?
    {
        Some(m) if is_dir(&m) => {}
        Some(_) => return Err(not_a_directory(what, &asked)),
        None => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{what}: {} vanished", asked.display()),
            ))
        }
    }
    c.dirs.insert(&asked, &canon);
    Ok(canon)
}

/// Where `at` is on the server: its canonical directory joined with its
/// last component. Refused for the root itself, for anything that would
/// resolve outside the root, and for a path longer than the server takes.
async fn place(c: &Connection, at: At<'_>, what: &str) -> io::Result<PathBuf> {
    let parts = at.parts()?;
    let (name, dirs) = parts
        .split_last()
        .ok_or_else(|| refused(format!("{what}: the destination root itself")))?;
    let root = root_of(c, at, None, what).await?;
    let target = dir_beneath(c, &root, dirs, what).await?.join(name);
    if target.as_os_str().len() > PATH_MAX {
        return Err(refused(format!(
            "{what}: a path of {} bytes (the server takes {PATH_MAX})",
            target.as_os_str().len()
        )));
    }
    Ok(target)
}

/// Creates `at` and its missing directories beneath its root, making the
/// root itself if missing. A symlink on the way is gone through only when
/// it resolves to a directory beneath the root.
async fn mkdirs(c: &Connection, at: At<'_>, mode: u32, what: &str) -> io::Result<()> {
    let parts = at.parts()?;
    let root = root_of(c, at, Some(mode), what).await?;
    if parts.is_empty() || c.dirs.get(&root.join(parts.join("/"))).is_some() {
        return Ok(());
    }
    let mut here = root.clone();
    for i in 0..parts.len() {
        let asked = root.join(parts[..=i].join("/"));
        if let Some(known) = c.dirs.get(&asked) {
            here = known;
            continue;
        }
        let next = here.join(parts[i]);
        let found = metadata(c, &next, false)
            .await
            .map_err(|f| c.fail(f, what))?;
        match found {
            Some(m) if is_dir(&m) => here = next,
            Some(m) if m.file_type().is_some_and(|t| t.is_symlink()) => {
                let canon = canonical(c, &next, what).await?;
                match canon {
                    Some(canon) if canon.starts_with(&root) => {
                        let m = metadata(c, &canon, false)
                            .await
                            .map_err(|f| c.fail(f, what))?;
                        if !m.as_ref().is_some_and(is_dir) {
                            return Err(not_a_directory(what, &next));
                        }
                        here = canon;
                    }
                    other => return Err(leads_out(what, &next, other.as_deref(), &root)),
                }
            }
            Some(_) => return Err(not_a_directory(what, &next)),
            None => {
                mkdir(c, &next, mode, what).await?;
                here = next;
            }
        }
        c.dirs.insert(&asked, &here);
    }
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
    remote: &Path,
    mode: PutMode,
    what: &str,
) -> io::Result<u64> {
    if mode == PutMode::Replace {
        // A new file, never a write through a symlink standing there.
        absent_is_ok(c.sftp.fs().remove_file(remote).await).map_err(|f| c.fail(f, what))?;
    }
    let mut options = c.sftp.options();
    options.write(true).create_new(true);
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
            if f.is_generic_failure() && metadata(c, remote, false).await.is_ok_and(|m| m.is_some())
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

/// Copies `remote` into `out`.
async fn get(c: &Connection, remote: &str, out: std::fs::File, what: &str) -> io::Result<u64> {
    let file = c
        .sftp
        .open(remote)
        .await
        .map_err(|e| c.fail(Failure::of(e), what))?;
    let mut input = Box::pin(TokioCompatFile::new(file));
    let local_err = |e: io::Error| io::Error::new(e.kind(), format!("{what}: writing: {e}"));
    let mut out = tokio::fs::File::from_std(out);
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

impl SftpTransport {
    /// The current connection, and where `at` is on it (see [`place`]).
    async fn placed(&self, at: At<'_>, what: &str) -> io::Result<(Arc<Connection>, PathBuf)> {
        let c = self.connection().await?;
        let target = self
            .bounded(&c, self.timeout, || what.to_string(), place(&c, at, what))
            .await?;
        Ok((c, target))
    }
}

#[async_trait]
impl Transport for SftpTransport {
    async fn mkdirs(&self, dir: At<'_>, mode: u32) -> io::Result<()> {
        let what = format!("sftp mkdirs {}:{}", self.host(), dir.path);
        let c = self.connection().await?;
        self.bounded(
            &c,
            self.timeout,
            || what.clone(),
            mkdirs(&c, dir, mode, &what),
        )
        .await
    }

    async fn put(&self, local: &Path, remote: At<'_>, mode: PutMode) -> io::Result<u64> {
        let what = format!(
            "sftp put {} to {}:{}",
            local.display(),
            self.host(),
            remote.path
        );
        let mut src = std::fs::File::open(local)
            .map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))?;
        let size = src.metadata()?.len();
        let c = self.connection().await?;
        self.bounded(&c, self.data_timeout(size), || what.clone(), async {
            let target = place(&c, remote, &what).await?;
            put(&c, (&mut src, size), local, &target, mode, &what).await
        })
        .await
    }

    async fn rename(&self, from: At<'_>, to: At<'_>) -> io::Result<()> {
        let what = format!("sftp rename {}:{} to {}", self.host(), from.path, to.path);
        let c = self.connection().await?;
        self.bounded(&c, self.timeout, || what.clone(), async {
            let (a, b) = (place(&c, from, &what).await?, place(&c, to, &what).await?);
            // `a` may be a directory: what is known below it moves away.
            c.dirs.forget_under(&a);
            let mut fs = c.sftp.fs();
            if !c.sftp.support_posix_rename() {
                // Plain SSH_FXP_RENAME will not replace: clear the way (not atomic).
                absent_is_ok(fs.remove_file(&b).await).map_err(|f| c.fail(f, &what))?;
            }
            match fs.rename(&a, &b).await.map_err(Failure::of) {
                Ok(()) => Ok(()),
                // A file onto a directory fails the same way every time.
                Err(f) if f.is_generic_failure() && is_dir_at(&c, &b).await => Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!("{what}: {} is a directory", b.display()),
                )),
                Err(f) => Err(c.fail(f, &what)),
            }
        })
        .await
    }

    async fn remove(&self, path: At<'_>) -> io::Result<()> {
        let what = format!("sftp remove {}:{}", self.host(), path.path);
        let (c, target) = match self.placed(path, &what).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other?,
        };
        self.bounded(&c, self.timeout, || what.clone(), async {
            absent_is_ok(c.sftp.fs().remove_file(&target).await).map_err(|f| c.fail(f, &what))
        })
        .await
    }

    async fn rmdir(&self, path: At<'_>) -> io::Result<()> {
        let what = format!("sftp rmdir {}:{}", self.host(), path.path);
        let (c, target) = match self.placed(path, &what).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other?,
        };
        c.dirs.forget_under(&target);
        self.bounded(&c, self.timeout, || what.clone(), async {
            absent_is_ok(c.sftp.fs().remove_dir(&target).await).map_err(|f| c.fail(f, &what))
        })
        .await
    }

    async fn symlink(&self, target: &str, path: At<'_>) -> io::Result<()> {
        let what = format!("sftp symlink {}:{} -> {target}", self.host(), path.path);
        let (c, at) = self.placed(path, &what).await?;
        self.bounded(&c, self.timeout, || what.clone(), async {
            let mut fs = c.sftp.fs();
            absent_is_ok(fs.remove_file(&at).await).map_err(|f| c.fail(f, &what))?;
            fs.symlink(target, &at)
                .await
                .map_err(|e| c.fail(Failure::of(e), &what))
        })
        .await
    }

    async fn setstat(
        &self,
        path: At<'_>,
        mode: Option<u32>,
        times: Option<(SystemTime, SystemTime)>,
    ) -> io::Result<()> {
        let what = format!("sftp setstat {}:{}", self.host(), path.path);
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
        let attrs = attrs.create();
        let (c, target) = self.placed(path, &what).await?;
        self.bounded(&c, self.timeout, || what.clone(), async {
            // SETSTAT follows a symlink: a link there is left alone.
            let m = metadata(&c, &target, false)
                .await
                .map_err(|f| c.fail(f, &what))?;
            if m.is_some_and(|m| m.file_type().is_some_and(|t| t.is_symlink())) {
                return Ok(());
            }
            c.sftp
                .fs()
                .set_metadata(&target, attrs)
                .await
                .map_err(|e| c.fail(Failure::of(e), &what))
        })
        .await
    }

    async fn stat(&self, path: At<'_>) -> io::Result<Option<RemoteStat>> {
        let what = format!("sftp stat {}:{}", self.host(), path.path);
        let (c, target) = match self.placed(path, &what).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            other => other?,
        };
        let m = self
            .bounded(&c, self.timeout, || what.clone(), async {
                metadata(&c, &target, false)
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

    async fn put_large(
        &self,
        local: &Path,
        remote: At<'_>,
        accel_command: &str,
    ) -> io::Result<u64> {
        let what = format!(
            "accel put {} to {}:{}",
            local.display(),
            self.host(),
            remote.path
        );
        // scp opens its target following a symlink: nothing may stand there.
        let (c, target) = self.placed(remote, &what).await?;
        self.bounded(&c, self.timeout, || what.clone(), async {
            absent_is_ok(c.sftp.fs().remove_file(&target).await).map_err(|f| c.fail(f, &what))
        })
        .await?;
        let target = target
            .to_str()
            .ok_or_else(|| refused(format!("{}: not a UTF-8 path", target.display())))?;
        self.put_accelerated(local, target, accel_command).await
    }

    async fn checksum(
        &self,
        path: At<'_>,
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
        let what = format!("checksum {}:{}", self.host(), path.path);
        let (_, target) = self.placed(path, &what).await?;
        crate::transfer::identity_of_hex(
            &self
                .remote_output(command, &target.to_string_lossy())
                .await?,
        )
    }
}

#[async_trait]
impl Source for SftpTransport {
    async fn get(&self, remote: At<'_>, out: std::fs::File) -> io::Result<u64> {
        remote.parts()?;
        let remote = remote.path;
        let what = format!("sftp get {}:{remote}", self.host());
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
            get(&c, remote, out, &what),
        )
        .await
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
