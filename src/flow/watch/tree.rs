//! The file-event source of `watch`: what in the watched trees is ready to
//! announce, from Linux inotify.
//!
//! A [`TreeWatcher`] watches one or more root directories (recursively, as
//! sr3 does) and reports [`FsEvent`]s: complete files, links, directories,
//! removals and renames, not raw inotify noise. It subscribes only to the
//! events that mean "something is ready" (`IN_CLOSE_WRITE`, `IN_CREATE`,
//! `IN_DELETE`, `IN_MOVED_FROM`, `IN_MOVED_TO`), so a sender reading the
//! files it announced produces nothing.
//!
//! Limits worth knowing:
//! * A file found by a scan (start-up, a new directory, an overflow) is
//!   reported even if a writer still holds it open; the caller's
//!   `fileAgeMin`/`inflight` check is where settling time belongs.
//! * A hard link is recognised by a link count above one when its
//!   `IN_CREATE` is handled; a link whose other name is already gone by then
//!   is reported only when it is next written.
//! * inotify sees nothing on network file systems (NFS): use
//!   [`poll_scan`] there (sr3's `force_polling`).
//!
//! Why a dedicated thread rather than the crate's tokio `EventStream`: the
//! thread keeps draining the kernel queue while the flow is busy
//! checksumming and posting (a full kernel queue overflows, which costs a
//! full rescan), it sees each `read()` separately (renames are paired within
//! one read plus a short grace), and the directory scans it does after a
//! `mkdir` or a move-in are blocking file-system work that should not sit on
//! an async worker. Batches reach [`TreeWatcher::next_batch`] over an
//! unbounded channel, so the thread never blocks on a slow consumer.

use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use tokio::sync::mpsc;
use walkdir::WalkDir;

use super::batch::Batch;
use super::tracker::Tracker;

/// Something in a watched tree that is ready to announce.
///
/// Paths are the root as given to [`TreeWatcher::new`] joined with the path
/// below it; names are kept as raw bytes (`OsStr`), never lossily decoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FsEvent {
    /// A regular file that is complete: closed after writing
    /// (`IN_CLOSE_WRITE`), moved in from outside the tree (`IN_MOVED_TO`
    /// with no matching `IN_MOVED_FROM`), hard-linked in (`IN_CREATE` of a
    /// regular file with more than one link), or found by a scan.
    File(PathBuf),
    /// A symbolic link, created, moved in or found by a scan. Links are
    /// never followed: a link to a directory is reported as a `Link` and
    /// nothing under it is watched.
    Link(PathBuf),
    /// A directory created, moved in or found by a scan. In recursive mode
    /// it is watched from then on and everything already inside it follows
    /// as further events (parents before children).
    Dir(PathBuf),
    /// Something deleted (`IN_DELETE`) or moved out of the trees
    /// (`IN_MOVED_FROM` with no `IN_MOVED_TO` in the same read or within a
    /// 20 ms grace). `was_dir` comes from the event's `IN_ISDIR`. A removed
    /// or moved-out directory is no longer watched.
    Removed {
        /// Where the object was.
        path: PathBuf,
        /// Whether it was a directory.
        was_dir: bool,
    },
    /// Renamed inside the trees (`IN_MOVED_FROM` and `IN_MOVED_TO` with the
    /// same cookie). For a directory, everything under it is from now on
    /// reported under the new path.
    Renamed {
        /// The old path.
        from: PathBuf,
        /// The new path.
        to: PathBuf,
        /// Whether the renamed object is a directory.
        is_dir: bool,
    },
}

impl FsEvent {
    /// The path the event is about (the new path of a rename).
    pub fn path(&self) -> &Path {
        match self {
            FsEvent::File(p) | FsEvent::Link(p) | FsEvent::Dir(p) => p,
            FsEvent::Removed { path, .. } => path,
            FsEvent::Renamed { to, .. } => to,
        }
    }
}

/// How often the watcher thread checks that its [`TreeWatcher`] still
/// exists while the trees are quiet.
const THREAD_POLL: Duration = Duration::from_millis(100);

/// What the watcher thread sends: one batch, or the error that stopped it.
type BatchResult = io::Result<Vec<FsEvent>>;

/// Watches directory trees with inotify and hands out coalesced batches of
/// [`FsEvent`]s. Dropping it stops its thread (within about 100 ms) and
/// closes the inotify instance.
#[derive(Debug)]
pub struct TreeWatcher {
    roots: Vec<PathBuf>,
    recursive: bool,
    batches: mpsc::UnboundedReceiver<BatchResult>,
    /// An error met while merging batches, returned by the next call.
    deferred_error: Option<io::Error>,
}

impl TreeWatcher {
    /// Starts watching every root (recursively when `recursive`), with a
    /// watch on every existing subdirectory. Nothing already in the trees
    /// is reported: call [`TreeWatcher::scan`] for that.
    ///
    /// Fails if a root is not a directory, if inotify cannot be set up, or
    /// if the watch limit is reached (the error names the directory and the
    /// sysctl `fs.inotify.max_user_watches`).
    pub fn new(roots: &[PathBuf], recursive: bool) -> io::Result<TreeWatcher> {
        let tracker = Tracker::new(roots, recursive)?;
        tracing::debug!("watching {} directories", tracker.watched_dirs());
        let (tx, rx) = mpsc::unbounded_channel();
        thread::Builder::new()
            .name("watch-inotify".into())
            .spawn(move || run_tracker(tracker, tx))?;
        Ok(TreeWatcher {
            roots: roots.to_vec(),
            recursive,
            batches: rx,
            deferred_error: None,
        })
    }

    /// Every file, link and directory now in the trees, parents before
    /// children, as [`FsEvent::File`], [`FsEvent::Link`] and
    /// [`FsEvent::Dir`] (the roots themselves excluded). Used at start-up;
    /// the caller decides which were already posted.
    pub fn scan(&self) -> Vec<FsEvent> {
        poll_scan(&self.roots, self.recursive)
    }

    /// Waits up to `max_wait` for events and returns everything that has
    /// arrived by then as one coalesced batch: a path closed after writing
    /// several times is reported once (at its first place), otherwise the
    /// order is the order things happened. Empty on timeout.
    ///
    /// After an inotify queue overflow the batch ends with a full scan of
    /// the trees. An error means the watcher has stopped (the inotify
    /// instance failed); watch-limit errors on new directories do not stop
    /// it: they are logged and the directory's contents are still reported.
    ///
    /// Cancel-safe: dropping the future (in a `select!`) loses no events.
    pub async fn next_batch(&mut self, max_wait: Duration) -> io::Result<Vec<FsEvent>> {
        if let Some(e) = self.deferred_error.take() {
            return Err(e);
        }
        let first = match tokio::time::timeout(max_wait, self.batches.recv()).await {
            Err(_elapsed) => return Ok(Vec::new()),
            Ok(None) => return Err(thread_stopped()),
            Ok(Some(result)) => result?,
        };
        let mut batch = Batch::new();
        batch.extend(first);
        // Whatever else the thread has already sent joins this batch, so a
        // burst comes out as one coalesced batch rather than many.
        while let Ok(more) = self.batches.try_recv() {
            match more {
                Ok(events) => batch.extend(events),
                Err(e) => {
                    self.deferred_error = Some(e);
                    break;
                }
            }
        }
        Ok(batch.finish())
    }
}

/// Every file, link and directory under `roots` (only the top level of each
/// root unless `recursive`), parents before children, siblings by name.
/// Symbolic links are reported as links, never followed; entries that
/// vanish or cannot be read during the walk are skipped. This is the whole
/// of a polling pass (sr3's `force_polling`); comparing passes is the
/// caller's job.
pub fn poll_scan(roots: &[PathBuf], recursive: bool) -> Vec<FsEvent> {
    let mut events = Vec::new();
    for root in roots {
        let walk = WalkDir::new(root)
            .min_depth(1)
            .max_depth(if recursive { usize::MAX } else { 1 })
            .follow_links(false)
            .sort_by_file_name();
        for entry in walk {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::debug!("scan of {}: {e}", root.display());
                    continue;
                }
            };
            let kind = entry.file_type();
            let path = entry.into_path();
            if kind.is_symlink() {
                events.push(FsEvent::Link(path));
            } else if kind.is_dir() {
                events.push(FsEvent::Dir(path));
            } else if kind.is_file() {
                events.push(FsEvent::File(path));
            }
        }
    }
    events
}

/// The watcher thread: read, translate, send, until the [`TreeWatcher`] is
/// dropped or inotify fails.
fn run_tracker(mut tracker: Tracker, tx: mpsc::UnboundedSender<BatchResult>) {
    while !tx.is_closed() {
        match tracker.read_batch(THREAD_POLL) {
            Ok(events) if events.is_empty() => {}
            Ok(events) => {
                if tx.send(Ok(events)).is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::error!("file watching stopped: {e}");
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

fn thread_stopped() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the file-watching thread has stopped",
    )
}
