//! The work phase of the consuming components: make the destination match
//! one message.
//!
//! The same steps serve the sender (the destination is remote, the file is
//! local) and subscribe (the destination is this machine, the file is
//! fetched from the message's baseUrl): file operations (remove, rmdir,
//! mkdir, link, rename) are applied at the destination; file content is
//! written under its inflight name, renamed into place, then given its
//! mode and times.

use super::filter::{self, Destination};
use crate::config::{Config, Inflight, Verify};
use crate::message::Message;
use crate::transfer::{self, refused, At, PutMode, Source, Transport, TransportOptions};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// An inflight file younger than this is taken to be another writer's
/// transfer in progress; older, a leftover of an interrupted one.
const STALE_INFLIGHT: Duration = Duration::from_secs(30);

/// What the work did.
#[derive(Debug)]
pub enum Outcome {
    /// Bytes moved (0 for a file operation).
    Done(u64),
    /// Nothing to do, for a reason worth one log line.
    Skipped(String),
}

/// Which way files move.
pub enum Direction {
    /// From this machine to `sendTo` (sender).
    Send,
    /// From each message's baseUrl to this machine (subscribe).
    Download(Sources),
}

/// The transports that reach the baseUrls messages come from, one per
/// server, made on first use and kept.
pub struct Sources {
    opts: TransportOptions,
    credentials: crate::config::Credentials,
    by_server: Mutex<HashMap<String, Arc<dyn Source>>>,
}

impl Sources {
    /// An empty set, making transports with `opts`; a server that
    /// credentials.conf has an entry for gets its password (http) or its
    /// `ssh_keyfile` (sftp) from there, as sr3 looks them up.
    pub fn new(opts: TransportOptions, credentials: crate::config::Credentials) -> Sources {
        Sources {
            opts,
            credentials,
            by_server: Mutex::new(HashMap::new()),
        }
    }

    /// The source for a baseUrl, the root it names and the remote path of
    /// `rel` under that root, as sr3 3.3.1 reads its URLs: `file:/x` reads
    /// `/x/rel` here; `sftp://host/dir` and `sftp://host//dir` both read the
    /// absolute `/dir/rel` (a URL without a path, `rel` in the login
    /// directory); `http(s)://host/dir` reads the request path `/dir/rel`,
    /// each relPath component percent-encoded. A baseUrl no source speaks
    /// is refused.
    fn resolve(&self, base_url: &str, rel: &str) -> io::Result<(Arc<dyn Source>, String, String)> {
        let rel = rel.trim_start_matches('/');
        if base_url.starts_with("file:") {
            let root = transfer::file::root_of(base_url)
                .to_string_lossy()
                .into_owned();
            let path = filter::join(&root, rel);
            return Ok((self.get_or_make("file:")?, root, path));
        }
        let url =
            url::Url::parse(base_url).map_err(|e| refused(format!("baseUrl {base_url}: {e}")))?;
        if matches!(url.scheme(), "http" | "https") {
            // The server keeps its user:password (for Basic auth; the http
            // transport never shows it).
            let server = &url[..url::Position::BeforePath];
            let root = url.path().to_string();
            let path = transfer::http::remote_path(&root, rel);
            return Ok((self.get_or_make(server)?, root, path));
        }
        let server = format!(
            "{}://{}{}",
            url.scheme(),
            auth(&url),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        let base = crate::config::sftp_path(&url);
        let root = match base.trim_end_matches('/') {
            "" if base.starts_with('/') => "/".to_string(),
            r => r.to_string(),
        };
        let path = filter::join(&root, rel);
        Ok((self.get_or_make(&server)?, root, path))
    }

    fn get_or_make(&self, server: &str) -> io::Result<Arc<dyn Source>> {
        let mut map = self
            .by_server
            .lock()
            .map_err(|_| io::Error::other("sources lock poisoned"))?;
        if let Some(t) = map.get(server) {
            return Ok(t.clone());
        }
        let (url, opts) = self.with_credentials(server);
        let t: Arc<dyn Source> = Arc::from(transfer::source_for_url(&url, &opts)?);
        map.insert(server.to_string(), t.clone());
        Ok(t)
    }

    /// `server` (`scheme://[user@]host[:port]`) with what credentials.conf
    /// adds to it: a password, a key.
    fn with_credentials(&self, server: &str) -> (String, TransportOptions) {
        let mut opts = self.opts.clone();
        let parsed = url::Url::parse(server).ok().filter(|u| u.has_host());
        let Some(u) = parsed else {
            return (server.to_string(), opts);
        };
        let (full, details) = self.credentials.complete(&u);
        if let Some(key) = details.and_then(|d| d.ssh_keyfile) {
            opts.ssh_keyfile = Some(key);
        }
        (full[..url::Position::BeforePath].to_string(), opts)
    }
}

fn auth(url: &url::Url) -> String {
    match (url.username(), url.host_str()) {
        ("", Some(h)) => h.to_string(),
        (u, Some(h)) => format!("{u}@{h}"),
        (_, None) => String::new(),
    }
}

/// Makes the destination match `msg`: `dest` is where its file goes, and
/// `old_dest` (for a rename) where its old name went.
pub async fn deliver(
    t: &dyn Transport,
    dir: &Direction,
    cfg: &Config,
    msg: &Message,
    dest: &Destination,
    old_dest: Option<&str>,
) -> io::Result<Outcome> {
    let ev = &cfg.file_events;
    let path = dest.path();
    let op = msg.file_op.clone().unwrap_or_default();
    if op.remove {
        if op.directory {
            if !ev.rmdir {
                return Ok(Outcome::Skipped("rmdir not in fileEvents".into()));
            }
            t.rmdir(dest.at(&path)).await?;
        } else {
            if !ev.delete {
                return Ok(Outcome::Skipped("delete not in fileEvents".into()));
            }
            t.remove(dest.at(&path)).await?;
        }
        return Ok(Outcome::Done(0));
    }
    if let Some(target) = &op.link {
        if !ev.link {
            return Ok(Outcome::Skipped("link not in fileEvents".into()));
        }
        t.mkdirs(dest.at(&dest.dir), cfg.perm_dir_default).await?;
        t.symlink(target, dest.at(&path)).await?;
        if let Some(old) = old_dest.filter(|o| *o != path && dest.at(o).parts().is_ok()) {
            t.remove(dest.at(old)).await?;
        }
        return Ok(Outcome::Done(0));
    }
    if op.directory {
        if !ev.mkdir {
            return Ok(Outcome::Skipped("mkdir not in fileEvents".into()));
        }
        if let Some(old) = old_dest {
            if rename_if_present(t, cfg, old, dest).await? {
                return Ok(Outcome::Done(0));
            }
        }
        let mode = mode_of(msg)
            .filter(|_| cfg.perm_copy)
            .unwrap_or(cfg.perm_dir_default);
        t.mkdirs(dest.at(&path), mode).await?;
        return Ok(Outcome::Done(0));
    }
    if !(ev.create || ev.modify) {
        return Ok(Outcome::Skipped(
            "create and modify not in fileEvents".into(),
        ));
    }
    if let Some(old) = old_dest {
        if rename_if_present(t, cfg, old, dest).await? {
            set_meta(t, cfg, msg, dest.at(&path)).await?;
            return Ok(Outcome::Done(0));
        }
        if already_there(t, msg, dest.at(&path)).await? {
            // The old name is gone because an earlier rename (of its
            // directory) already brought the file here.
            return Ok(Outcome::Done(0));
        }
        // The old name never reached the destination: copy the file itself.
    }
    // byteRateMax: wait for this file's turn, then book what really moved.
    let pace = super::throttle::for_rate(cfg.byte_rate_max);
    let expected = msg.size.unwrap_or(0);
    pace.wait_turn(expected).await;
    let r = copy_file(t, dir, cfg, msg, dest).await;
    if let Ok(Outcome::Done(moved)) = &r {
        pace.settle(expected, *moved);
    }
    r
}

/// Renames `old` to `dest` at the destination; false if `old` is absent.
/// A directory whose new name already exists (its files came first) is
/// left in place.
async fn rename_if_present(
    t: &dyn Transport,
    cfg: &Config,
    old: &str,
    dest: &Destination,
) -> io::Result<bool> {
    let path = dest.path();
    if old == path || dest.at(old).parts().is_err() {
        // Not beneath this root: nothing to rename here.
        return Ok(false);
    }
    t.mkdirs(dest.at(&dest.dir), cfg.perm_dir_default).await?;
    match t.rename(dest.at(old), dest.at(&path)).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => match t.stat(dest.at(&path)).await {
            Ok(Some(s)) if s.is_dir => {
                tracing::warn!(
                    "cannot rename {old} onto existing directory {}: {e}; keeping both",
                    dest.path()
                );
                Ok(false)
            }
            _ => Err(e),
        },
    }
}

/// True when `path` already holds the message's file (same size, and same
/// mtime to the second when the message has one).
async fn already_there(t: &dyn Transport, msg: &Message, path: At<'_>) -> io::Result<bool> {
    let Some(st) = t.stat(path).await? else {
        return Ok(false);
    };
    let mtime = msg
        .mtime
        .as_deref()
        .and_then(|m| crate::message::timestamp::parse(m).ok());
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    Ok(!st.is_dir
        && Some(st.size) == msg.size
        && match (mtime, st.mtime) {
            (Some(a), Some(b)) => secs(a) == secs(b),
            _ => true,
        })
}

/// Copies the message's file to `dest`: under the inflight name, then
/// renamed into place, then mode and times.
async fn copy_file(
    t: &dyn Transport,
    dir: &Direction,
    cfg: &Config,
    msg: &Message,
    dest: &Destination,
) -> io::Result<Outcome> {
    let final_path = dest.path();
    let temp = filter::join(&dest.dir, &cfg.inflight.temp_name(&dest.file));
    let (fin, tmp) = (dest.at(&final_path), dest.at(&temp));
    let rel = msg.retrieve_path.as_deref().unwrap_or(&msg.rel_path);
    let bytes = match dir {
        Direction::Send => {
            // The local file, named by the message: never by climbing.
            At::new("", rel.trim_start_matches('/')).parts()?;
            let Some(local) = filter::local_source(cfg, msg) else {
                return Err(refused(format!(
                    "a sender sends local files: baseUrl {} is not file: and there is no baseDir",
                    crate::config::redact_text(&msg.base_url)
                )));
            };
            if let Some(why) = unsendable(&local) {
                return Ok(Outcome::Skipped(why));
            }
            make_dirs(t, cfg, dest).await?;
            let large =
                cfg.accel_threshold > 0 && msg.size.is_some_and(|s| s >= cfg.accel_threshold);
            if temp == final_path {
                let n = put(t, &local, fin, PutMode::Replace, large, cfg).await?;
                verify(t, cfg, msg, &local, fin, n).await?;
                n
            } else {
                let n = put_exclusive(t, &local, tmp, large, cfg).await?;
                // Checked under the inflight name: a bad copy never shows
                // under the final one.
                if let Err(e) = verify(t, cfg, msg, &local, tmp, n).await {
                    let _ = t.remove(tmp).await;
                    return Err(e);
                }
                if let Err(e) = t.rename(tmp, fin).await {
                    // Ours, and complete: remove it so the retry need not
                    // wait for it to go stale.
                    let _ = t.remove(tmp).await;
                    return Err(e);
                }
                n
            }
        }
        Direction::Download(sources) => {
            let (src, root, remote) = sources.resolve(&msg.base_url, rel)?;
            make_dirs(t, cfg, dest).await?;
            // Without an inflight name there is no telling another
            // writer's file from the old copy: it is simply replaced.
            if temp != final_path && inflight_busy(t, tmp).await? {
                return Err(busy(&temp));
            }
            // A stale inflight file (or, without inflight, the old copy).
            t.remove(tmp).await?;
            let out = t.create(tmp).await?;
            let n = match src.get(At::new(&root, &remote), out).await {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let _ = t.remove(tmp).await;
                    return Ok(Outcome::Skipped(format!(
                        "{remote} is gone from {}",
                        crate::config::redact_text(&msg.base_url)
                    )));
                }
                Err(e) => {
                    let _ = t.remove(tmp).await;
                    return Err(e);
                }
            };
            if temp != final_path {
                t.rename(tmp, fin).await?;
            }
            n
        }
    };
    set_meta(t, cfg, msg, fin).await?;
    Ok(Outcome::Done(bytes))
}

/// Checks a copy at the destination (`verifyDelivery`): its size is the
/// bytes sent; with `checksum`, its checksum computed there is the
/// message's identity — when the local file is still the one announced
/// (else the newer announcement checks the newer content). A mismatch is an
/// error: the work is retried, never acknowledged as done — unless the
/// local file itself does not match what the message announced, which no
/// retry can change: that is refused.
async fn verify(
    t: &dyn Transport,
    cfg: &Config,
    msg: &Message,
    local: &Path,
    remote: At<'_>,
    sent: u64,
) -> io::Result<()> {
    if cfg.verify_delivery == Verify::Off {
        return Ok(());
    }
    let mismatch = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("verification of {} failed: {what}", remote.path),
        )
    };
    match t.stat(remote).await? {
        Some(st) if st.size == sent => {}
        Some(st) => return Err(mismatch(format!("{} bytes there, {sent} sent", st.size))),
        None => return Err(mismatch("it is not there".into())),
    }
    if cfg.verify_delivery == Verify::Checksum {
        let Some(id) = msg
            .identity
            .as_ref()
            .filter(|i| matches!(i.method.as_str(), "sha512" | "md5"))
        else {
            return Ok(());
        };
        if !super::autoclean::unchanged(local, msg) {
            return Ok(());
        }
        let there = t
            .checksum(remote, &id.method, cfg.checksum_command.as_deref())
            .await?;
        if there != id.value {
            let here = crate::message::compute_identity(local, &id.method)?.map(|i| i.value);
            if here.as_deref() != Some(id.value.as_str()) {
                return Err(refused(format!(
                    "{} does not match its announced {} identity (the message lies, or the file changed without a new announcement)",
                    local.display(),
                    id.method
                )));
            }
            return Err(mismatch(format!(
                "{} there is {there}, announced {}",
                id.method, id.value
            )));
        }
    }
    Ok(())
}

/// Why a local file cannot be sent, if it cannot.
fn unsendable(local: &PathBuf) -> Option<String> {
    match std::fs::File::open(local).and_then(|f| f.metadata()) {
        Ok(m) if m.is_file() => None,
        Ok(_) => Some(format!("{} is not a regular file", local.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Some(format!("{} vanished before it was sent", local.display()))
        }
        Err(e) => Some(format!("{} cannot be read: {e}", local.display())),
    }
}

async fn make_dirs(t: &dyn Transport, cfg: &Config, dest: &Destination) -> io::Result<()> {
    t.mkdirs(dest.at(&dest.dir), cfg.perm_dir_default).await?;
    if let Inflight::Subdir(sub) = &cfg.inflight {
        let sub = filter::join(&dest.dir, sub.trim_end_matches('/'));
        t.mkdirs(dest.at(&sub), cfg.perm_dir_default).await?;
    }
    Ok(())
}

async fn put(
    t: &dyn Transport,
    local: &Path,
    remote: At<'_>,
    mode: PutMode,
    large: bool,
    cfg: &Config,
) -> io::Result<u64> {
    if large {
        // A large file goes through the accelerator, which replaces.
        let _ = mode;
        t.put_large(local, remote, &cfg.accel_scp_command).await
    } else {
        t.put(local, remote, mode).await
    }
}

/// Writes `temp` unless another writer is using it; replaces a stale one.
/// A write that fails half way (disk full, link lost) removes its partial
/// file, so its retry finds the name free.
async fn put_exclusive(
    t: &dyn Transport,
    local: &Path,
    temp: At<'_>,
    large: bool,
    cfg: &Config,
) -> io::Result<u64> {
    let written = if large {
        if inflight_busy(t, temp).await? {
            return Err(busy(temp.path));
        }
        put(t, local, temp, PutMode::Replace, true, cfg).await
    } else {
        match t.put(local, temp, PutMode::CreateNew).await {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if inflight_busy(t, temp).await? {
                    return Err(busy(temp.path));
                }
                tracing::info!("replacing stale inflight file {}", temp.path);
                t.put(local, temp, PutMode::Replace).await
            }
            other => other,
        }
    };
    if written.is_err() {
        let _ = t.remove(temp).await;
    }
    written
}

/// True when `temp` exists, is not a directory, and was written to within
/// [`STALE_INFLIGHT`].
async fn inflight_busy(t: &dyn Transport, temp: At<'_>) -> io::Result<bool> {
    Ok(t.stat(temp)
        .await?
        .filter(|s| !s.is_dir)
        .and_then(|s| s.mtime)
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|age| age < STALE_INFLIGHT))
}

fn busy(temp: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        format!("{temp} is being written by another transfer; will retry"),
    )
}

/// Applies the message's mode and times (permCopy, timeCopy).
async fn set_meta(t: &dyn Transport, cfg: &Config, msg: &Message, path: At<'_>) -> io::Result<()> {
    let mode = if cfg.perm_copy {
        mode_of(msg)
    } else {
        Some(cfg.perm_default).filter(|m| *m != 0)
    };
    let times = if cfg.time_copy {
        let parse = |s: &Option<String>| {
            s.as_deref()
                .and_then(|s| crate::message::timestamp::parse(s).ok())
        };
        parse(&msg.mtime).map(|m| (parse(&msg.atime).unwrap_or(m), m))
    } else {
        None
    };
    if mode.is_some() || times.is_some() {
        t.setstat(path, mode, times).await?;
    }
    Ok(())
}

fn mode_of(msg: &Message) -> Option<u32> {
    msg.mode
        .as_deref()
        .and_then(|m| u32::from_str_radix(m, 8).ok())
        .map(|m| m & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Component;
    use crate::transfer::file::FileTransport;
    use crate::transfer::RemoteStat;
    use async_trait::async_trait;

    /// A destination whose disk fills up half way through every write.
    struct FillsUp(FileTransport);

    #[async_trait]
    impl Transport for FillsUp {
        async fn mkdirs(&self, dir: At<'_>, mode: u32) -> io::Result<()> {
            self.0.mkdirs(dir, mode).await
        }
        async fn put(&self, _local: &Path, remote: At<'_>, _mode: PutMode) -> io::Result<u64> {
            std::fs::write(remote.path, b"half")?;
            Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device",
            ))
        }
        async fn rename(&self, from: At<'_>, to: At<'_>) -> io::Result<()> {
            self.0.rename(from, to).await
        }
        async fn remove(&self, path: At<'_>) -> io::Result<()> {
            self.0.remove(path).await
        }
        async fn rmdir(&self, path: At<'_>) -> io::Result<()> {
            self.0.rmdir(path).await
        }
        async fn symlink(&self, target: &str, path: At<'_>) -> io::Result<()> {
            self.0.symlink(target, path).await
        }
        async fn setstat(
            &self,
            path: At<'_>,
            mode: Option<u32>,
            times: Option<(SystemTime, SystemTime)>,
        ) -> io::Result<()> {
            self.0.setstat(path, mode, times).await
        }
        async fn stat(&self, path: At<'_>) -> io::Result<Option<RemoteStat>> {
            self.0.stat(path).await
        }
    }

    #[tokio::test]
    async fn a_send_that_fails_half_way_leaves_no_inflight_file_for_its_retry() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dest) = (dir.path().join("src"), dir.path().join("dest"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(dir.path().join("cfg/sender")).unwrap();
        std::fs::write(
            dir.path().join("cfg/sender/t.conf"),
            format!(
                "broker local:\nexchange x\nsendTo file:\ndirectory {}\ninflight .tmp\n",
                dest.display()
            ),
        )
        .unwrap();
        let cfg = crate::config::load(&dir.path().join("cfg"), Component::Sender, "t").unwrap();
        std::fs::write(src.join("a.dat"), b"whole content").unwrap();
        let msg = Message::for_file(
            &format!("file:{}", src.display()),
            "a.dat",
            &src.join("a.dat"),
            &crate::message::FileMessageOptions::default(),
        )
        .unwrap();
        let placement = filter::decide(&cfg, &msg.url()).expect("accepted");
        let d = filter::destination(&cfg, &placement, &msg.rel_path).unwrap();
        let t = FillsUp(FileTransport::new(PathBuf::from("/")));
        let err = deliver(&t, &Direction::Send, &cfg, &msg, &d, None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert!(dest.is_dir(), "the directory was made");
        assert!(
            !dest.join("a.dat.tmp").exists() && !dest.join("a.dat").exists(),
            "a partial inflight file was left behind"
        );
    }
}
