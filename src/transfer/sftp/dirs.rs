//! The remote directories one connection knows to exist, so that sending
//! many files into the same few directories costs one `stat` per directory
//! rather than one per file (a round trip saved on every small file).
//!
//! What could make a remembered directory false is forgotten: an `rmdir`
//! or a rename through this connection forgets the path and everything
//! below it; a write that finds its directory missing (removed by someone
//! else) forgets everything, so the retry makes it again. A new connection
//! starts empty.

use std::collections::HashSet;
use std::sync::Mutex;

/// More than this many remembered directories and the set starts over:
/// the memory stays bounded however many directories a sender serves.
const MAX_KNOWN: usize = 1024;

/// Directories known to exist on the server, by absolute or login-relative
/// path without a trailing `/`.
#[derive(Default)]
pub struct KnownDirs(Mutex<HashSet<String>>);

impl KnownDirs {
    /// True when `dir` was made or seen on this connection and not forgotten.
    pub fn contains(&self, dir: &str) -> bool {
        self.0.lock().is_ok_and(|s| s.contains(dir))
    }

    /// Remembers that `dir` exists.
    pub fn insert(&self, dir: &str) {
        if let Ok(mut s) = self.0.lock() {
            if s.len() >= MAX_KNOWN {
                s.clear();
            }
            s.insert(dir.to_string());
        }
    }

    /// Forgets `path` and every directory below it.
    pub fn forget_under(&self, path: &str) {
        let path = path.trim_end_matches('/');
        if let Ok(mut s) = self.0.lock() {
            s.retain(|d| {
                !(d == path
                    || d.strip_prefix(path)
                        .is_some_and(|rest| rest.starts_with('/')))
            });
        }
    }

    /// Forgets every directory.
    pub fn forget_all(&self) {
        if let Ok(mut s) = self.0.lock() {
            s.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_directory_is_forgotten_with_everything_below_it() {
        let k = KnownDirs::default();
        for d in ["/r/a", "/r/a/b", "/r/ab", "/r/c"] {
            k.insert(d);
        }
        k.forget_under("/r/a/");
        assert!(!k.contains("/r/a") && !k.contains("/r/a/b"));
        assert!(k.contains("/r/ab"), "a sibling sharing a prefix stays");
        assert!(k.contains("/r/c"));
        k.forget_all();
        assert!(!k.contains("/r/c"));
    }

    #[test]
    fn the_set_starts_over_instead_of_growing_without_bound() {
        let k = KnownDirs::default();
        for i in 0..=MAX_KNOWN {
            k.insert(&format!("/d{i}"));
        }
        assert!(k.contains(&format!("/d{MAX_KNOWN}")));
        assert!(!k.contains("/d0"));
    }
}
