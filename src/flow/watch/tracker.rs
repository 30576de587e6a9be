//! The inotify reader: turns raw events into [`FsEvent`]s.
//!
//! It keeps the watch table current (new directories watched and scanned,
//! renamed ones re-pathed, deleted or moved-out ones dropped), pairs
//! `IN_MOVED_FROM`/`IN_MOVED_TO` by cookie, and answers an `IN_Q_OVERFLOW`
//! with a refresh of every watch and a full scan. It is synchronous: the
//! [`super::tree::TreeWatcher`] runs it on a thread of its own.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use inotify::{EventMask, Inotify, WatchDescriptor};

use super::batch::Batch;
use super::table::WatchTable;
use super::tree::FsEvent;

/// How long an `IN_MOVED_FROM` that ends a read waits for its
/// `IN_MOVED_TO` before it counts as a move out of the trees. The kernel
/// queues both halves of a rename together, so this only covers a read
/// that split them.
const RENAME_GRACE: Duration = Duration::from_millis(20);

/// Raw events handled per batch before the batch is closed, so a
/// continuous stream of events still yields batches.
const MAX_EVENTS_PER_BATCH: usize = 32 * 1024;

/// The read buffer: room for hundreds of events with long names.
const BUFFER_SIZE: usize = 64 * 1024;

/// One inotify event, owned, so the buffer can be reused while it is
/// handled.
struct RawEvent {
    wd: WatchDescriptor,
    mask: EventMask,
    cookie: u32,
    name: Option<OsString>,
}

/// The inotify instance, its watch table, and the roots it watches.
pub(super) struct Tracker {
    inotify: Inotify,
    table: WatchTable,
    roots: Vec<PathBuf>,
    recursive: bool,
    buffer: Vec<u8>,
    /// How many times the kernel queue overflowed (for tests and logs).
    pub(super) overflows: u64,
}

impl Tracker {
    /// Sets up inotify and watches every root (and, when recursive, every
    /// directory below it). Nothing is reported.
    pub(super) fn new(roots: &[PathBuf], recursive: bool) -> io::Result<Tracker> {
        for root in roots {
            let meta = fs::metadata(root).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot watch {}: {e}", root.display()))
            })?;
            if !meta.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cannot watch {}: not a directory", root.display()),
                ));
            }
        }
        let inotify = Inotify::init().map_err(init_error)?;
        let table = WatchTable::new(inotify.watches(), recursive);
        let mut tracker = Tracker {
            inotify,
            table,
            roots: roots.to_vec(),
            recursive,
            buffer: vec![0; BUFFER_SIZE],
            overflows: 0,
        };
        let mut ignored = Vec::new();
        for root in roots {
            tracker.table.add_tree(root, true, false, &mut ignored)?;
        }
        Ok(tracker)
    }

    /// How many directories are watched.
    pub(super) fn watched_dirs(&self) -> usize {
        self.table.len()
    }

    /// Waits up to `timeout` for events, then handles everything the kernel
    /// has queued (and what arrives during a rename grace) as one batch.
    /// Empty if nothing came.
    pub(super) fn read_batch(&mut self, timeout: Duration) -> io::Result<Vec<FsEvent>> {
        if !self.wait_readable(timeout)? {
            return Ok(Vec::new());
        }
        let mut batch = Batch::new();
        let mut overflow = false;
        let mut handled = 0;
        loop {
            handled += self.drain(&mut batch, &mut overflow, MAX_EVENTS_PER_BATCH - handled)?;
            let more_wanted = batch.has_pending_moves() && handled < MAX_EVENTS_PER_BATCH;
            if !(more_wanted && self.wait_readable(RENAME_GRACE)?) {
                break;
            }
        }
        for dir in batch.resolve_moved_out() {
            self.table.forget_subtree(&dir, true);
        }
        if overflow {
            self.recover_from_overflow(&mut batch);
        }
        Ok(batch.finish())
    }

    /// Reads and handles events until the kernel queue is empty or `limit`
    /// events were handled; returns how many were.
    fn drain(&mut self, batch: &mut Batch, overflow: &mut bool, limit: usize) -> io::Result<usize> {
        let mut handled = 0;
        while handled < limit {
            let events: Vec<RawEvent> = match self.inotify.read_events(&mut self.buffer) {
                Ok(events) => events
                    .map(|e| RawEvent {
                        wd: e.wd,
                        mask: e.mask,
                        cookie: e.cookie,
                        name: e.name.map(|n| n.to_os_string()),
                    })
                    .collect(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            handled += events.len();
            for event in events {
                self.handle(event, batch, overflow);
            }
        }
        Ok(handled)
    }

    /// Translates one raw event.
    fn handle(&mut self, event: RawEvent, batch: &mut Batch, overflow: &mut bool) {
        let mask = event.mask;
        if mask.contains(EventMask::Q_OVERFLOW) {
            *overflow = true;
            return;
        }
        if mask.contains(EventMask::IGNORED) {
            if let Some(path) = self.table.forget_wd(&event.wd) {
                if self.roots.contains(&path) {
                    tracing::warn!("watched directory {} is gone", path.display());
                }
            }
            return;
        }
        // Events about a watched directory itself (no name) are reported
        // by its parent's watch.
        let (Some(dir), Some(name)) = (self.table.path_of(&event.wd), event.name) else {
            return;
        };
        let path = dir.join(name);
        let is_dir = mask.contains(EventMask::ISDIR);
        if mask.contains(EventMask::MOVED_FROM) {
            batch.push_moved_from(event.cookie, path, is_dir);
        } else if mask.contains(EventMask::MOVED_TO) {
            match batch.take_moved_from(event.cookie) {
                Some(from) => self.renamed(from, path, is_dir, batch),
                None => self.moved_in(path, batch),
            }
        } else if mask.contains(EventMask::CREATE) {
            if is_dir {
                self.new_dir(path, batch);
            } else {
                self.created(path, batch);
            }
        } else if mask.contains(EventMask::CLOSE_WRITE) {
            batch.push(FsEvent::File(path));
        } else if mask.contains(EventMask::DELETE) {
            if is_dir {
                // Its watches are gone with it; IN_IGNORED may come later
                // than a new directory of the same name.
                self.table.forget_subtree(&path, false);
            }
            batch.push(FsEvent::Removed {
                path,
                was_dir: is_dir,
            });
        }
    }

    /// A directory appeared: report it, then (recursive) watch it and
    /// report what is already inside, since files may have been created
    /// before the watch was in place (`mkdir -p a/b/c`, `mv` of a tree).
    fn new_dir(&mut self, path: PathBuf, batch: &mut Batch) {
        self.forget_moved_out_at(&path, batch);
        batch.push(FsEvent::Dir(path.clone()));
        if self.recursive {
            self.scan_into(&path, batch);
        }
    }

    /// Watches and reports the contents of `dir`; errors are logged (the
    /// contents are still reported).
    fn scan_into(&mut self, dir: &Path, batch: &mut Batch) {
        let mut found = Vec::new();
        if let Err(e) = self.table.add_tree(dir, false, true, &mut found) {
            tracing::error!("{e}");
        }
        batch.extend(found);
    }

    /// `IN_CREATE` of something that is not a directory. A symbolic link or
    /// a hard link is complete at once (no `IN_CLOSE_WRITE` will follow);
    /// a new regular file is reported when its writer closes it.
    fn created(&mut self, path: PathBuf, batch: &mut Batch) {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return; // already gone
        };
        if meta.file_type().is_symlink() {
            batch.push(FsEvent::Link(path));
        } else if meta.is_file() && meta.nlink() > 1 {
            batch.push(FsEvent::File(path));
        }
    }

    /// `IN_MOVED_TO` with no `IN_MOVED_FROM`: moved in from outside the
    /// trees; reported as what it is now.
    fn moved_in(&mut self, path: PathBuf, batch: &mut Batch) {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return; // already gone again
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            batch.push(FsEvent::Link(path));
        } else if kind.is_dir() {
            self.new_dir(path, batch);
        } else if kind.is_file() {
            batch.push(FsEvent::File(path));
        }
    }

    /// A rename inside the trees. A renamed directory's watches follow it;
    /// one that was not watched yet (renamed before its `IN_CREATE` was
    /// handled) is watched and scanned now.
    fn renamed(&mut self, from: PathBuf, to: PathBuf, is_dir: bool, batch: &mut Batch) {
        if is_dir {
            self.forget_moved_out_at(&to, batch);
        }
        let rewatched = is_dir && self.recursive && !self.table.rename_subtree(&from, &to);
        batch.push(FsEvent::Renamed {
            from,
            to: to.clone(),
            is_dir,
        });
        if rewatched {
            self.scan_into(&to, batch);
        }
    }

    /// A directory enters the trees at `path`: the directories that left
    /// from there (or above, or below) in this batch are moved out for
    /// good, and their watches go now, before the newcomer's are set (a
    /// directory moved out and straight back in would otherwise lose its
    /// watches when the batch ends).
    fn forget_moved_out_at(&mut self, path: &Path, batch: &mut Batch) {
        for dir in batch.resolve_moved_out_dirs_at(path) {
            self.table.forget_subtree(&dir, true);
        }
    }

    /// After `IN_Q_OVERFLOW` events were lost: re-adds a watch on every
    /// directory (fixing the paths of those renamed meanwhile), drops the
    /// watches of directories no longer in the trees, and appends a full
    /// scan to the batch.
    pub(super) fn recover_from_overflow(&mut self, batch: &mut Batch) {
        self.overflows += 1;
        tracing::warn!("inotify queue overflowed (events lost): rescanning the watched trees");
        self.table.begin_refresh();
        let roots = self.roots.clone();
        for root in &roots {
            let mut found = Vec::new();
            if let Err(e) = self.table.add_tree(root, true, true, &mut found) {
                tracing::error!("{e}");
            }
            batch.extend(found);
        }
        self.table.end_refresh();
    }

    /// Reads and throws away every queued event (tests use it to lose
    /// events the way an overflow does).
    #[cfg(test)]
    pub(super) fn discard_queued_events(&mut self) -> io::Result<()> {
        loop {
            match self.inotify.read_events(&mut self.buffer) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether events can be read within `timeout`.
    fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut poll_fd = libc::pollfd {
            fd: self.inotify.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `poll_fd` is one valid pollfd, exclusively borrowed for
        // the duration of the call, and the count passed is 1.
        let ready = unsafe { libc::poll(&mut poll_fd, 1, millis) };
        match ready {
            -1 => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
            0 => Ok(false),
            _ => Ok(true),
        }
    }
}

/// The error for an inotify instance that cannot be created; for the
/// instance limit (`EMFILE`), names the sysctl to raise.
fn init_error(e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(libc::EMFILE) => io::Error::new(
            e.kind(),
            "cannot start file watching: the inotify instance limit is reached; \
             raise the sysctl fs.inotify.max_user_instances",
        ),
        _ => io::Error::new(e.kind(), format!("cannot start file watching: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(root: &Path) -> Tracker {
        Tracker::new(&[root.to_path_buf()], true).expect("tracker starts")
    }

    /// Reads batches until nothing more comes for 200 ms.
    fn read_all(t: &mut Tracker) -> Vec<FsEvent> {
        let mut all = Vec::new();
        loop {
            let batch = t.read_batch(Duration::from_millis(200)).expect("read");
            if batch.is_empty() {
                return all;
            }
            all.extend(batch);
        }
    }

    #[test]
    fn within_one_batch_repeated_writes_coalesce_and_other_events_keep_their_order() {
        let hot = tempfile::tempdir().unwrap();
        let h = hot.path();
        let mut t = tracker(h);
        for i in 0..3 {
            fs::write(h.join("f"), format!("{i}")).unwrap();
        }
        fs::write(h.join("g"), "g").unwrap();
        fs::remove_file(h.join("g")).unwrap();
        fs::write(h.join("f"), "again").unwrap();
        let batch = t.read_batch(Duration::from_secs(1)).unwrap();
        let g_removed = FsEvent::Removed {
            path: h.join("g"),
            was_dir: false,
        };
        assert_eq!(
            batch,
            vec![
                FsEvent::File(h.join("f")),
                FsEvent::File(h.join("g")),
                g_removed
            ]
        );
    }

    #[test]
    fn overflow_recovery_rewatches_moved_directories_and_reports_a_full_scan() {
        let hot = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let h = hot.path();
        fs::create_dir_all(h.join("d/sub")).unwrap();
        fs::create_dir(h.join("leaving")).unwrap();
        let mut t = tracker(h);
        assert_eq!(t.watched_dirs(), 4);

        // Changes whose events are then lost, as in an overflow.
        fs::rename(h.join("d"), h.join("e")).unwrap();
        fs::create_dir(h.join("e/new")).unwrap();
        fs::write(h.join("e/new/f"), "f").unwrap();
        fs::rename(h.join("leaving"), outside.path().join("left")).unwrap();
        t.discard_queued_events().unwrap();

        let mut batch = Batch::new();
        t.recover_from_overflow(&mut batch);
        assert_eq!(
            batch.finish(),
            vec![
                FsEvent::Dir(h.join("e")),
                FsEvent::Dir(h.join("e/new")),
                FsEvent::File(h.join("e/new/f")),
                FsEvent::Dir(h.join("e/sub")),
            ]
        );
        assert_eq!(t.watched_dirs(), 4, "root, e, e/new, e/sub");

        // Later events carry the current paths; the moved-out directory is
        // no longer watched.
        fs::write(h.join("e/sub/g"), "g").unwrap();
        fs::write(outside.path().join("left/x"), "x").unwrap();
        assert_eq!(read_all(&mut t), vec![FsEvent::File(h.join("e/sub/g"))]);
    }

    #[test]
    fn a_burst_that_overflows_the_kernel_queue_is_still_reported_whole() {
        let max_queued: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(16384);
        if max_queued > 100_000 {
            eprintln!("max_queued_events is {max_queued}: burst test skipped");
            return;
        }
        let hot = tempfile::tempdir().unwrap();
        let h = hot.path();
        fs::create_dir(h.join("burst")).unwrap();
        let mut t = tracker(h);
        // Each file costs two events (IN_CREATE, IN_CLOSE_WRITE).
        let count = max_queued / 2 + 500;
        for i in 0..count {
            fs::write(h.join(format!("burst/f{i}")), "").unwrap();
        }
        let events = read_all(&mut t);
        assert!(t.overflows >= 1, "the queue did not overflow");
        let files: std::collections::HashSet<&Path> = events
            .iter()
            .filter(|e| matches!(e, FsEvent::File(_)))
            .map(FsEvent::path)
            .collect();
        assert_eq!(files.len(), count);
        fs::write(h.join("burst/after"), "a").unwrap();
        assert_eq!(read_all(&mut t), vec![FsEvent::File(h.join("burst/after"))]);
    }

    #[test]
    fn deleted_directories_leave_the_watch_table() {
        let hot = tempfile::tempdir().unwrap();
        let h = hot.path();
        fs::create_dir_all(h.join("d/sub/subsub")).unwrap();
        let mut t = tracker(h);
        assert_eq!(t.watched_dirs(), 4);
        fs::remove_dir_all(h.join("d")).unwrap();
        let events = read_all(&mut t);
        assert_eq!(
            events.last(),
            Some(&FsEvent::Removed {
                path: h.join("d"),
                was_dir: true
            })
        );
        assert_eq!(t.watched_dirs(), 1);
    }
}
