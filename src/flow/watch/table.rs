//! Which directory each inotify watch stands for.
//!
//! inotify reports events as (watch descriptor, name); the table turns the
//! descriptor back into a path. A watch follows its directory's inode, so
//! when a watched directory is renamed the table must rewrite its path and
//! the paths of every watched directory below it; when a directory is
//! deleted or moved out of the trees its entries go. Adding watches and
//! listing new directories (watch first, then list, so nothing created in
//! between is missed) also lives here.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use inotify::{WatchDescriptor, WatchMask, Watches};

use super::batch::take_subtree;
use super::tree::FsEvent;

/// The events that say something is ready, plus nothing else: no
/// `IN_OPEN`, `IN_ACCESS`, `IN_MODIFY` or `IN_CLOSE_NOWRITE`, so senders
/// reading the files produce no events. `IN_IGNORED` always comes.
/// `EXCL_UNLINK` drops events of files already unlinked (a temp file
/// deleted while still open).
fn event_mask() -> WatchMask {
    WatchMask::CLOSE_WRITE
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::ONLYDIR
        | WatchMask::EXCL_UNLINK
}

#[derive(Debug)]
struct Watch {
    wd: WatchDescriptor,
    path: PathBuf,
    /// The refresh pass that last confirmed this watch (see
    /// [`WatchTable::begin_refresh`]).
    generation: u64,
}

/// The watch descriptor ↔ directory map of one inotify instance.
#[derive(Debug)]
pub(super) struct WatchTable {
    watches: Watches,
    recursive: bool,
    by_wd: HashMap<i32, Watch>,
    by_path: BTreeMap<PathBuf, i32>,
    generation: u64,
}

impl WatchTable {
    pub(super) fn new(watches: Watches, recursive: bool) -> WatchTable {
        WatchTable {
            watches,
            recursive,
            by_wd: HashMap::new(),
            by_path: BTreeMap::new(),
            generation: 0,
        }
    }

    /// The directory a watch descriptor stands for.
    pub(super) fn path_of(&self, wd: &WatchDescriptor) -> Option<&Path> {
        self.by_wd
            .get(&wd.get_watch_descriptor_id())
            .map(|w| w.path.as_path())
    }

    /// How many directories are watched.
    pub(super) fn len(&self) -> usize {
        self.by_wd.len()
    }

    /// Watches `dir`. `Ok(false)` if it is gone or no longer a directory by
    /// now (it vanished between the event and this call); symbolic links
    /// are never followed except for a root (`follow`).
    fn watch(&mut self, dir: &Path, follow: bool) -> io::Result<bool> {
        let mask = if follow {
            event_mask()
        } else {
            event_mask() | WatchMask::DONT_FOLLOW
        };
        let wd = match self.watches.add(dir, mask) {
            Ok(wd) => wd,
            Err(e) => {
                return match e.raw_os_error() {
                    Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP) => Ok(false),
                    _ => Err(watch_error(dir, e)),
                }
            }
        };
        // The kernel returns the existing descriptor for an inode already
        // watched: then only the path may have changed (a rename we missed).
        let id = wd.get_watch_descriptor_id();
        if let Some(old) = self.by_wd.get(&id) {
            if old.path != dir && self.by_path.get(&old.path) == Some(&id) {
                self.by_path.remove(&old.path);
            }
        }
        self.by_wd.insert(
            id,
            Watch {
                wd,
                path: dir.to_path_buf(),
                generation: self.generation,
            },
        );
        self.by_path.insert(dir.to_path_buf(), id);
        Ok(true)
    }

    /// Watches `top` and, when recursive, every directory below it, each
    /// before listing it. With `report`, pushes a `Dir`, `File` or `Link`
    /// for everything found below `top` (not for `top` itself), parents
    /// before children, siblings by name.
    ///
    /// A directory that cannot be watched (watch limit) is still listed and
    /// reported; the first such error is returned once the walk is done.
    pub(super) fn add_tree(
        &mut self,
        top: &Path,
        follow_top: bool,
        report: bool,
        out: &mut Vec<FsEvent>,
    ) -> io::Result<()> {
        let mut first_error = None;
        // One entry per directory being walked: its remaining children,
        // reversed so that pop() yields them by name.
        let mut stack: Vec<Vec<(PathBuf, fs::FileType)>> = Vec::new();
        if let Some(children) = self.watch_then_list(top, follow_top, &mut first_error) {
            stack.push(children);
        }
        while let Some(level) = stack.last_mut() {
            let Some((path, kind)) = level.pop() else {
                stack.pop();
                continue;
            };
            if kind.is_symlink() {
                if report {
                    out.push(FsEvent::Link(path));
                }
            } else if kind.is_dir() {
                if report {
                    out.push(FsEvent::Dir(path.clone()));
                }
                if self.recursive {
                    if let Some(children) = self.watch_then_list(&path, false, &mut first_error) {
                        stack.push(children);
                    }
                }
            } else if kind.is_file() && report {
                out.push(FsEvent::File(path));
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Watches `dir`, then lists it (children reversed by name). `None` if
    /// it vanished.
    fn watch_then_list(
        &mut self,
        dir: &Path,
        follow: bool,
        first_error: &mut Option<io::Error>,
    ) -> Option<Vec<(PathBuf, fs::FileType)>> {
        match self.watch(dir, follow) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                tracing::error!("{e}");
                first_error.get_or_insert(e);
            }
        }
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("cannot list {}: {e}", dir.display());
                }
                return None;
            }
        };
        let mut children: Vec<(PathBuf, fs::FileType)> = entries
            .filter_map(|entry| {
                // An entry that vanished while being read is skipped.
                let entry = entry.ok()?;
                let kind = entry.file_type().ok()?;
                Some((entry.path(), kind))
            })
            .collect();
        children.sort_by(|a, b| b.0.file_name().cmp(&a.0.file_name()));
        Some(children)
    }

    /// A watched directory moved from `from` to `to`: rewrites its path and
    /// those of the watched directories below it. Returns false if `from`
    /// was not watched.
    pub(super) fn rename_subtree(&mut self, from: &Path, to: &Path) -> bool {
        let moved = take_subtree(&mut self.by_path, from);
        if moved.is_empty() {
            return false;
        }
        // Whatever was watched at the destination was replaced (an empty
        // directory renamed over); its IN_IGNORED will clean up by_wd.
        take_subtree(&mut self.by_path, to);
        for (old_path, id) in moved {
            let new_path = match old_path.strip_prefix(from) {
                Ok(rest) if rest.as_os_str().is_empty() => to.to_path_buf(),
                Ok(rest) => to.join(rest),
                Err(_) => continue,
            };
            if let Some(watch) = self.by_wd.get_mut(&id) {
                watch.path = new_path.clone();
            }
            self.by_path.insert(new_path, id);
        }
        true
    }

    /// Forgets `root` and every watched directory below it: deleted, or
    /// moved out of the trees. A moved-out directory still exists, so its
    /// watches are removed too (`remove_watches`), lest its events come
    /// back under stale paths.
    pub(super) fn forget_subtree(&mut self, root: &Path, remove_watches: bool) {
        for (_, id) in take_subtree(&mut self.by_path, root) {
            if let Some(watch) = self.by_wd.remove(&id) {
                if remove_watches {
                    // Fails harmlessly if the kernel already dropped it.
                    let _ = self.watches.remove(watch.wd);
                }
            }
        }
    }

    /// The kernel dropped a watch (`IN_IGNORED`: directory deleted, file
    /// system unmounted, or watch removed). Returns its path if it was
    /// still in the table.
    pub(super) fn forget_wd(&mut self, wd: &WatchDescriptor) -> Option<PathBuf> {
        let id = wd.get_watch_descriptor_id();
        let watch = self.by_wd.remove(&id)?;
        if self.by_path.get(&watch.path) == Some(&id) {
            self.by_path.remove(&watch.path);
        }
        Some(watch.path)
    }

    /// Starts a refresh pass (after an overflow): every watch confirmed by
    /// [`WatchTable::add_tree`] from now on is kept by
    /// [`WatchTable::end_refresh`]; the others are stale.
    pub(super) fn begin_refresh(&mut self) {
        self.generation += 1;
    }

    /// Ends a refresh pass: removes the watches not seen again (their
    /// directories are gone or were moved out while events were lost).
    pub(super) fn end_refresh(&mut self) {
        let generation = self.generation;
        let stale: Vec<i32> = self
            .by_wd
            .iter()
            .filter(|(_, w)| w.generation != generation)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some(watch) = self.by_wd.remove(&id) {
                if self.by_path.get(&watch.path) == Some(&id) {
                    self.by_path.remove(&watch.path);
                }
                let _ = self.watches.remove(watch.wd);
            }
        }
    }
}

/// The error for a directory that cannot be watched, naming it; for the
/// watch limit (`ENOSPC`), also the sysctl to raise.
pub(super) fn watch_error(dir: &Path, e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "cannot watch {}: the inotify watch limit is reached; \
                 raise the sysctl fs.inotify.max_user_watches",
                dir.display()
            ),
        ),
        _ => io::Error::new(e.kind(), format!("cannot watch {}: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_that_mean_ready_are_subscribed() {
        let mask = event_mask();
        // A sender opening and reading the files it announces must cost
        // nothing, and a file being written is announced once, when closed.
        for noisy in [
            WatchMask::OPEN,
            WatchMask::ACCESS,
            WatchMask::MODIFY,
            WatchMask::CLOSE_NOWRITE,
            WatchMask::ATTRIB,
        ] {
            assert!(!mask.contains(noisy), "{noisy:?} is subscribed");
        }
        for wanted in [
            WatchMask::CLOSE_WRITE,
            WatchMask::CREATE,
            WatchMask::DELETE,
            WatchMask::MOVED_FROM,
            WatchMask::MOVED_TO,
        ] {
            assert!(mask.contains(wanted), "{wanted:?} is not subscribed");
        }
    }
}
