//! The remote directories one connection has resolved beneath a root, so
//! that sending many files into the same few directories costs one
//! `realpath` per directory rather than several round trips per file.
//!
//! Each entry maps a directory as asked (the canonical root joined with
//! the message's components) to its canonical path, which was checked to
//! lie beneath the root when it was made or resolved. Operations then act
//! on the canonical path, so a stale entry can only ever point at a
//! directory that was beneath the root.
//!
//! What could make an entry false is forgotten: an `rmdir` or a rename
//! through this connection forgets every entry whose path as asked or
//! canonical path is at or below it; a write that finds its directory
//! missing forgets everything, so the retry resolves again. A new
//! connection starts empty.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// More than this many remembered directories and the set starts over:
/// the memory stays bounded however many directories a sender serves.
const MAX_KNOWN: usize = 1024;

#[derive(Default)]
struct Known {
    /// Canonical roots, by the root text a config gives.
    roots: HashMap<String, PathBuf>,
    /// Canonical directories, by the path as asked.
    dirs: HashMap<PathBuf, PathBuf>,
}

/// Directories known to exist on the server, beneath their roots.
#[derive(Default)]
pub struct KnownDirs(Mutex<Known>);

impl KnownDirs {
    /// The canonical path of the root `root` (a config's directory text).
    pub fn root(&self, root: &str) -> Option<PathBuf> {
        self.0.lock().ok()?.roots.get(root).cloned()
    }

    /// Remembers the canonical path of the root `root`.
    pub fn insert_root(&self, root: &str, canonical: &Path) {
        if let Ok(mut k) = self.0.lock() {
            if k.roots.len() >= MAX_KNOWN {
                k.roots.clear();
            }
            k.roots.insert(root.to_string(), canonical.to_path_buf());
        }
    }

    /// The canonical path of `asked`, when known.
    pub fn get(&self, asked: &Path) -> Option<PathBuf> {
        self.0.lock().ok()?.dirs.get(asked).cloned()
    }

    /// Remembers that `asked` is the directory `canonical`.
    pub fn insert(&self, asked: &Path, canonical: &Path) {
        if let Ok(mut k) = self.0.lock() {
            if k.dirs.len() >= MAX_KNOWN {
                k.dirs.clear();
            }
            k.dirs.insert(asked.to_path_buf(), canonical.to_path_buf());
        }
    }

    /// Forgets every directory at or below `path`, as asked or canonical.
    pub fn forget_under(&self, path: &Path) {
        if let Ok(mut k) = self.0.lock() {
            k.dirs
                .retain(|asked, canon| !(asked.starts_with(path) || canon.starts_with(path)));
            k.roots.retain(|_, canon| !canon.starts_with(path));
        }
    }

    /// Forgets every directory and root.
    pub fn forget_all(&self) {
        if let Ok(mut k) = self.0.lock() {
            k.dirs.clear();
            k.roots.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_directory_is_forgotten_with_everything_resolved_below_it() {
        let k = KnownDirs::default();
        let p = Path::new;
        k.insert(p("/r/a"), p("/r/a"));
        k.insert(p("/r/a/b"), p("/r/a/b"));
        k.insert(p("/r/ab"), p("/r/ab"));
        k.insert(p("/r/link"), p("/r/a/c"));
        k.insert(p("/r/c"), p("/r/c"));
        k.forget_under(p("/r/a"));
        assert!(k.get(p("/r/a")).is_none() && k.get(p("/r/a/b")).is_none());
        assert!(
            k.get(p("/r/link")).is_none(),
            "a link that resolved below it goes too"
        );
        assert!(
            k.get(p("/r/ab")).is_some(),
            "a sibling sharing a prefix stays"
        );
        assert_eq!(k.get(p("/r/c")), Some(PathBuf::from("/r/c")));
        k.insert_root("dest", p("/home/u/dest"));
        k.forget_all();
        assert!(k.get(p("/r/c")).is_none() && k.root("dest").is_none());
    }

    #[test]
    fn the_set_starts_over_instead_of_growing_without_bound() {
        let k = KnownDirs::default();
        for i in 0..=MAX_KNOWN {
            let d = PathBuf::from(format!("/d{i}"));
            k.insert(&d, &d);
        }
        assert!(k.get(Path::new(&format!("/d{MAX_KNOWN}"))).is_some());
        assert!(k.get(Path::new("/d0")).is_none());
    }
}
