//! What the inventory will say once the announcements waiting to be
//! published are: the inventory as written, overlaid with their changes.
//!
//! The inventory is written only after a publish, but events keep coming
//! meanwhile; they must be judged against what is already announced, not
//! against the inventory of the last publish. A file moved out (its removal
//! waiting) and moved back in unchanged matches the inventory's row, yet
//! must be announced again, after the removal; a name renamed away and
//! back must be known by the rename still waiting.

use super::batch::take_subtree;
use super::inventory::{Change, Inventory, Seen};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The changes of the unpublished announcements, in effect.
#[derive(Debug, Default)]
pub(super) struct Unpublished {
    /// Paths put since the last publish, and what they will be recorded as.
    put: BTreeMap<PathBuf, Seen>,
    /// Roots of subtrees removed since the last publish: what the inventory
    /// holds there no longer counts (paths put since are in `put`).
    removed: BTreeMap<PathBuf, ()>,
}

impl Unpublished {
    /// Takes in the changes of one more waiting announcement.
    pub(super) fn apply(&mut self, changes: &[Change]) {
        for c in changes {
            match c {
                Change::Put(p, s) => {
                    self.put.insert(p.clone(), *s);
                }
                Change::Remove(p) => {
                    take_subtree(&mut self.put, p);
                    // A removed root below `p` is covered by `p` now.
                    take_subtree(&mut self.removed, p);
                    self.removed.insert(p.clone(), ());
                }
            }
        }
    }

    /// Everything was published (or nothing waits): only the inventory
    /// counts.
    pub(super) fn clear(&mut self) {
        self.put.clear();
        self.removed.clear();
    }

    fn is_removed(&self, p: &Path) -> bool {
        !self.removed.is_empty() && p.ancestors().any(|a| self.removed.contains_key(a))
    }

    /// What will be recorded at `p`.
    pub(super) fn get(&self, p: &Path, inv: &Inventory) -> rusqlite::Result<Option<Seen>> {
        if let Some(s) = self.put.get(p) {
            return Ok(Some(*s));
        }
        if self.is_removed(p) {
            return Ok(None);
        }
        inv.get(p)
    }

    /// Every path that will be recorded under `root` (inclusive).
    pub(super) fn under(
        &self,
        root: &Path,
        inv: &Inventory,
    ) -> rusqlite::Result<HashMap<PathBuf, Seen>> {
        let mut out = inv.under(root)?;
        if !self.removed.is_empty() {
            out.retain(|p, _| !self.is_removed(p));
        }
        let put = self
            .put
            .range::<Path, _>((std::ops::Bound::Included(root), std::ops::Bound::Unbounded))
            .take_while(|(p, _)| p.starts_with(root));
        for (p, s) in put {
            out.insert(p.clone(), *s);
        }
        Ok(out)
    }

    /// Gives back what a burst grew.
    pub(super) fn shrink(&mut self) {
        if self.put.is_empty() && self.removed.is_empty() {
            *self = Unpublished::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::inventory::Kind;
    use super::*;

    fn file(size: u64) -> Seen {
        Seen {
            kind: Kind::File,
            size,
            mtime_ns: 7,
        }
    }
    const DIR: Seen = Seen {
        kind: Kind::Dir,
        size: 0,
        mtime_ns: 7,
    };

    #[test]
    fn waiting_changes_override_the_inventory_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut inv = Inventory::open(&dir.path().join("i.db")).unwrap();
        inv.apply(&[
            Change::Put("/h/x".into(), file(1)),
            Change::Put("/h/d".into(), DIR),
            Change::Put("/h/d/f".into(), file(2)),
            Change::Put("/h/d/sub/g".into(), file(3)),
            Change::Put("/h/d0".into(), file(4)),
        ])
        .unwrap();
        let mut u = Unpublished::default();
        assert_eq!(u.get(Path::new("/h/x"), &inv).unwrap(), Some(file(1)));

        // Moved out: gone, though the inventory still has it.
        u.apply(&[Change::Remove("/h/x".into())]);
        assert_eq!(u.get(Path::new("/h/x"), &inv).unwrap(), None);
        // Moved back in: what it was put as.
        u.apply(&[Change::Put("/h/x".into(), file(1))]);
        assert_eq!(u.get(Path::new("/h/x"), &inv).unwrap(), Some(file(1)));

        // A directory removed, then made again with one new file: what it
        // held before stays gone; a sibling sharing the prefix stays.
        u.apply(&[
            Change::Remove("/h/d".into()),
            Change::Put("/h/d".into(), DIR),
            Change::Put("/h/d/new".into(), file(5)),
        ]);
        assert_eq!(u.get(Path::new("/h/d/f"), &inv).unwrap(), None);
        assert_eq!(u.get(Path::new("/h/d0"), &inv).unwrap(), Some(file(4)));
        let mut under: Vec<_> = u
            .under(Path::new("/h/d"), &inv)
            .unwrap()
            .into_keys()
            .collect();
        under.sort();
        assert_eq!(under, vec![PathBuf::from("/h/d"), "/h/d/new".into()]);
        // And removed again: the new file goes with it.
        u.apply(&[Change::Remove("/h/d".into())]);
        assert!(u.under(Path::new("/h/d"), &inv).unwrap().is_empty());

        u.clear();
        assert_eq!(u.get(Path::new("/h/d/f"), &inv).unwrap(), Some(file(2)));
    }
}
