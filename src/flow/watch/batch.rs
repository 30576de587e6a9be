//! One batch of [`FsEvent`]s as it is built: coalescing of repeats, and
//! places held for `IN_MOVED_FROM` events until their `IN_MOVED_TO` shows up
//! (a rename) or does not (a move out of the trees).
//!
//! A `File`, `Link` or `Dir` already announced in the batch is not repeated
//! (the first place is kept), unless the path was removed or renamed in
//! between: then the object is new and is announced again, after the
//! removal, so the caller sees things in the order they happened.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use super::tree::FsEvent;

/// Which kinds of announcement a path already has in the batch (bit set).
type Kinds = u8;

/// A batch under construction.
#[derive(Debug, Default)]
pub(super) struct Batch {
    slots: Vec<Slot>,
    /// Paths already announced as File/Link/Dir in this batch.
    announced: BTreeMap<PathBuf, Kinds>,
    /// `IN_MOVED_FROM` events still waiting for their `IN_MOVED_TO`, by
    /// cookie: the index of their slot.
    pending_moves: HashMap<u32, usize>,
}

#[derive(Debug)]
enum Slot {
    Event(FsEvent),
    /// A `IN_MOVED_FROM` not yet paired: becomes `Removed` if no
    /// `IN_MOVED_TO` follows, or is emptied when the rename is pushed.
    MovedFrom {
        path: PathBuf,
        is_dir: bool,
    },
    Empty,
}

impl Batch {
    pub(super) fn new() -> Batch {
        Batch::default()
    }

    /// Adds an event, unless it repeats an announcement already made in
    /// this batch for the same path.
    pub(super) fn push(&mut self, event: FsEvent) {
        match &event {
            FsEvent::File(p) | FsEvent::Link(p) | FsEvent::Dir(p) => {
                let bit = kind_bit(&event);
                let kinds = self.announced.entry(p.clone()).or_insert(0);
                if *kinds & bit != 0 {
                    return;
                }
                *kinds |= bit;
            }
            FsEvent::Removed { path, .. } => forget_subtree(&mut self.announced, path),
            FsEvent::Renamed { from, to, .. } => {
                forget_subtree(&mut self.announced, from);
                forget_subtree(&mut self.announced, to);
            }
        }
        self.slots.push(Slot::Event(event));
    }

    /// Adds every event in order.
    pub(super) fn extend(&mut self, events: impl IntoIterator<Item = FsEvent>) {
        for event in events {
            self.push(event);
        }
    }

    /// Holds a place for an `IN_MOVED_FROM`: the object left `path`, to be
    /// told later whether it went elsewhere in the trees or out of them.
    pub(super) fn push_moved_from(&mut self, cookie: u32, path: PathBuf, is_dir: bool) {
        // Whatever was announced at the old path is gone from there now.
        forget_subtree(&mut self.announced, &path);
        self.pending_moves.insert(cookie, self.slots.len());
        self.slots.push(Slot::MovedFrom { path, is_dir });
    }

    /// The old path of the `IN_MOVED_FROM` with this cookie, if one is
    /// waiting; its place is given up (the rename is pushed where the
    /// `IN_MOVED_TO` was seen).
    pub(super) fn take_moved_from(&mut self, cookie: u32) -> Option<PathBuf> {
        let index = self.pending_moves.remove(&cookie)?;
        match std::mem::replace(self.slots.get_mut(index)?, Slot::Empty) {
            Slot::MovedFrom { path, .. } => Some(path),
            other => {
                // Cannot happen: pending_moves only indexes MovedFrom slots.
                self.slots[index] = other;
                None
            }
        }
    }

    /// Whether some `IN_MOVED_FROM` still waits for its pair.
    pub(super) fn has_pending_moves(&self) -> bool {
        !self.pending_moves.is_empty()
    }

    /// Turns every unpaired `IN_MOVED_FROM` into a removal (moved out of
    /// the trees), in its own place, and returns the directories among
    /// them, which are no longer in the trees.
    pub(super) fn resolve_moved_out(&mut self) -> Vec<PathBuf> {
        let mut moved_out_dirs = Vec::new();
        for (_, index) in self.pending_moves.drain() {
            let Some(slot) = self.slots.get_mut(index) else {
                continue;
            };
            if let Slot::MovedFrom { path, is_dir } = std::mem::replace(slot, Slot::Empty) {
                if is_dir {
                    moved_out_dirs.push(path.clone());
                }
                *slot = Slot::Event(FsEvent::Removed {
                    path,
                    was_dir: is_dir,
                });
            }
        }
        moved_out_dirs
    }

    /// Something is entering the trees at `p`: every directory still
    /// waiting for its `IN_MOVED_TO` whose path is `p`, above it or below it
    /// has left the trees (the other half of a rename comes right after the
    /// first, before anything else can be done at its old path). Each
    /// becomes a removal, in its own place, and is returned, so its watches
    /// go before the newcomer's are set: the same directory moved back in
    /// keeps its watch descriptors, which forgetting it at the end of the
    /// batch would remove.
    pub(super) fn resolve_moved_out_dirs_at(&mut self, p: &Path) -> Vec<PathBuf> {
        let overlapping: Vec<u32> = self
            .pending_moves
            .iter()
            .filter(|(_, &index)| {
                matches!(self.slots.get(index), Some(Slot::MovedFrom { path, is_dir: true })
                    if path.starts_with(p) || p.starts_with(path))
            })
            .map(|(&cookie, _)| cookie)
            .collect();
        let mut out = Vec::new();
        for cookie in overlapping {
            let Some(index) = self.pending_moves.remove(&cookie) else {
                continue;
            };
            if let Some(slot) = self.slots.get_mut(index) {
                if let Slot::MovedFrom { path, is_dir } = std::mem::replace(slot, Slot::Empty) {
                    out.push(path.clone());
                    *slot = Slot::Event(FsEvent::Removed {
                        path,
                        was_dir: is_dir,
                    });
                }
            }
        }
        out
    }

    /// The events of the batch, in order. Unpaired moves still waiting
    /// count as moved out.
    pub(super) fn finish(mut self) -> Vec<FsEvent> {
        self.resolve_moved_out();
        self.slots
            .into_iter()
            .filter_map(|slot| match slot {
                Slot::Event(event) => Some(event),
                Slot::MovedFrom { .. } | Slot::Empty => None,
            })
            .collect()
    }
}

fn kind_bit(event: &FsEvent) -> Kinds {
    match event {
        FsEvent::File(_) => 1,
        FsEvent::Link(_) => 2,
        FsEvent::Dir(_) => 4,
        FsEvent::Removed { .. } | FsEvent::Renamed { .. } => 0,
    }
}

/// Removes `root` and every path under it from a path-keyed map, returning
/// them. `Path` orders by components, so a subtree is one contiguous range
/// starting at its root (`a/b`, `a/b/c`, … all sort before `a/b0`).
pub(super) fn take_subtree<V>(map: &mut BTreeMap<PathBuf, V>, root: &Path) -> Vec<(PathBuf, V)> {
    let keys: Vec<PathBuf> = map
        .range::<Path, _>((Bound::Included(root), Bound::Unbounded))
        .take_while(|(path, _)| path.starts_with(root))
        .map(|(path, _)| path.clone())
        .collect();
    keys.into_iter()
        .filter_map(|path| map.remove(&path).map(|value| (path, value)))
        .collect()
}

fn forget_subtree(announced: &mut BTreeMap<PathBuf, Kinds>, root: &Path) {
    take_subtree(announced, root);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(p: &str) -> FsEvent {
        FsEvent::File(PathBuf::from(p))
    }

    #[test]
    fn repeated_close_write_is_reported_once_at_its_first_place() {
        let mut batch = Batch::new();
        batch.extend([file("/h/a"), file("/h/b"), file("/h/a")]);
        assert_eq!(batch.finish(), vec![file("/h/a"), file("/h/b")]);
    }

    #[test]
    fn a_file_recreated_after_its_removal_is_reported_again_in_order() {
        let mut batch = Batch::new();
        let removed = FsEvent::Removed {
            path: "/h/a".into(),
            was_dir: false,
        };
        batch.extend([file("/h/a"), removed.clone(), file("/h/a")]);
        assert_eq!(batch.finish(), vec![file("/h/a"), removed, file("/h/a")]);
    }

    #[test]
    fn unpaired_moved_from_becomes_a_removal_in_its_own_place() {
        let mut batch = Batch::new();
        batch.push(file("/h/x"));
        batch.push_moved_from(7, "/h/x".into(), false);
        // A new x appears after the old one left: announced again, after.
        batch.push(file("/h/x"));
        assert_eq!(batch.resolve_moved_out(), Vec::<PathBuf>::new());
        let removed = FsEvent::Removed {
            path: "/h/x".into(),
            was_dir: false,
        };
        assert_eq!(batch.finish(), vec![file("/h/x"), removed, file("/h/x")]);
    }

    #[test]
    fn a_directory_entering_where_one_left_resolves_the_move_out_at_once() {
        let mut batch = Batch::new();
        batch.push_moved_from(1, "/h/d".into(), true);
        batch.push_moved_from(2, "/h/d/sub".into(), true);
        batch.push_moved_from(3, "/h/e".into(), true);
        batch.push_moved_from(4, "/h/d2".into(), true);
        batch.push_moved_from(5, "/h/x".into(), false);
        let mut resolved = batch.resolve_moved_out_dirs_at(Path::new("/h/d"));
        resolved.sort();
        assert_eq!(resolved, vec![PathBuf::from("/h/d"), "/h/d/sub".into()]);
        batch.push(FsEvent::Dir("/h/d".into()));
        assert!(batch.take_moved_from(1).is_none());
        assert_eq!(batch.take_moved_from(3), Some(PathBuf::from("/h/e")));
        let mut left = batch.resolve_moved_out();
        left.sort();
        assert_eq!(left, vec![PathBuf::from("/h/d2")]);
        let removed = |p: &str, was_dir| FsEvent::Removed {
            path: p.into(),
            was_dir,
        };
        assert_eq!(
            batch.finish(),
            vec![
                removed("/h/d", true),
                removed("/h/d/sub", true),
                removed("/h/d2", true),
                removed("/h/x", false),
                FsEvent::Dir("/h/d".into()),
            ]
        );
    }

    #[test]
    fn paired_moved_from_gives_its_place_to_the_rename() {
        let mut batch = Batch::new();
        batch.push_moved_from(9, "/h/d".into(), true);
        assert!(batch.has_pending_moves());
        assert_eq!(batch.take_moved_from(9), Some(PathBuf::from("/h/d")));
        assert_eq!(batch.take_moved_from(9), None);
        assert!(!batch.has_pending_moves());
        assert!(batch.finish().is_empty());
    }

    #[test]
    fn take_subtree_takes_descendants_but_not_siblings_sharing_a_prefix() {
        let mut map: BTreeMap<PathBuf, u8> =
            ["/a/b", "/a/b/c", "/a/b/c/d", "/a/b0", "/a/b.x", "/a"]
                .iter()
                .map(|p| (PathBuf::from(p), 0))
                .collect();
        let mut taken: Vec<PathBuf> = take_subtree(&mut map, Path::new("/a/b"))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        taken.sort();
        assert_eq!(
            taken,
            vec![PathBuf::from("/a/b"), "/a/b/c".into(), "/a/b/c/d".into()]
        );
        assert_eq!(map.len(), 3);
    }
}
