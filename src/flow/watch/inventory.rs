//! What the watch has announced: one row per path, with the size and mtime
//! it had when announced.
//!
//! It lets the watch (a) post, at start-up, only what changed while it was
//! stopped — new files, changed files, and removals — and (b) skip a second
//! close-after-write of an unchanged file without hashing it again. A row is
//! written only after its announcement was published, so a crash between
//! the two makes the file be announced again, never forgotten.

use rusqlite::{params, Connection};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The kind of thing announced at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Link,
}

impl Kind {
    fn code(self) -> i64 {
        match self {
            Kind::File => 0,
            Kind::Dir => 1,
            Kind::Link => 2,
        }
    }
    fn from_code(c: i64) -> Kind {
        match c {
            1 => Kind::Dir,
            2 => Kind::Link,
            _ => Kind::File,
        }
    }
}

/// The state of one path when it was announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub kind: Kind,
    pub size: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i128,
}

impl Seen {
    /// The state of `meta` (from `symlink_metadata`).
    pub fn of(meta: &std::fs::Metadata) -> Seen {
        use std::os::unix::fs::MetadataExt;
        let kind = if meta.is_dir() {
            Kind::Dir
        } else if meta.file_type().is_symlink() {
            Kind::Link
        } else {
            Kind::File
        };
        Seen {
            kind,
            size: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        }
    }
}

/// A change to record once its announcement is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put(PathBuf, Seen),
    /// The path and everything below it are gone.
    Remove(PathBuf),
}

/// The inventory database of one watch config.
pub struct Inventory {
    conn: Connection,
}

fn key(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

impl Inventory {
    /// Opens (creating if needed) the inventory at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<Inventory> {
        if let Some(d) = path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -crate::state::sqlite::CACHE_KIB)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS seen (path BLOB PRIMARY KEY, kind INTEGER NOT NULL,
             size INTEGER NOT NULL, mtime_ns TEXT NOT NULL) WITHOUT ROWID;",
        )?;
        Ok(Inventory { conn })
    }

    /// Runs `f` inside one read transaction, so the lookups it makes share
    /// one snapshot and one lock instead of taking them per statement (four
    /// `fcntl` calls per file before). Without the transaction if it
    /// cannot begin: each lookup then takes its own.
    pub fn reading<T>(&self, f: impl FnOnce() -> T) -> T {
        crate::state::sqlite::read_together(&self.conn, f)
    }

    /// What was announced at `path`, if anything.
    pub fn get(&self, path: &Path) -> rusqlite::Result<Option<Seen>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT kind, size, mtime_ns FROM seen WHERE path = ?1")?;
        let mut rows = stmt.query(params![key(path)])?;
        match rows.next()? {
            Some(r) => {
                let m: String = r.get(2)?;
                Ok(Some(Seen {
                    kind: Kind::from_code(r.get(0)?),
                    size: r.get::<_, i64>(1)? as u64,
                    mtime_ns: m.parse().unwrap_or(0),
                }))
            }
            None => Ok(None),
        }
    }

    /// Every path announced under `root` (inclusive).
    pub fn under(&self, root: &Path) -> rusqlite::Result<HashMap<PathBuf, Seen>> {
        let mut out = HashMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT path, kind, size, mtime_ns FROM seen")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let p: Vec<u8> = r.get(0)?;
            let p = PathBuf::from(std::ffi::OsStr::from_bytes(&p));
            if p.starts_with(root) {
                let m: String = r.get(3)?;
                out.insert(
                    p,
                    Seen {
                        kind: Kind::from_code(r.get(1)?),
                        size: r.get::<_, i64>(2)? as u64,
                        mtime_ns: m.parse().unwrap_or(0),
                    },
                );
            }
        }
        Ok(out)
    }

    /// Records published changes, in order, in one transaction.
    pub fn apply(&mut self, changes: &[Change]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO seen (path, kind, size, mtime_ns) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut del =
                tx.prepare_cached("DELETE FROM seen WHERE path = ?1 OR (path > ?2 AND path < ?3)")?;
            for c in changes {
                match c {
                    Change::Put(p, s) => {
                        put.execute(params![
                            key(p),
                            s.kind.code(),
                            s.size as i64,
                            s.mtime_ns.to_string()
                        ])?;
                    }
                    Change::Remove(p) => {
                        // Children sort between "p/" and "p0" ('0' follows '/').
                        let mut lo = key(p).to_vec();
                        lo.push(b'/');
                        let mut hi = key(p).to_vec();
                        hi.push(b'0');
                        del.execute(params![key(p), lo, hi])?;
                    }
                }
            }
        }
        tx.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_a_directory_forgets_its_subtree_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut inv = Inventory::open(&dir.path().join("i.db")).unwrap();
        let s = Seen {
            kind: Kind::File,
            size: 1,
            mtime_ns: 5,
        };
        let d = Seen {
            kind: Kind::Dir,
            size: 0,
            mtime_ns: 5,
        };
        inv.apply(&[
            Change::Put("/h/a".into(), d),
            Change::Put("/h/a/x".into(), s),
            Change::Put("/h/a/b/y".into(), s),
            Change::Put("/h/a-b".into(), s),
            Change::Put("/h/ab".into(), s),
        ])
        .unwrap();
        inv.apply(&[Change::Remove("/h/a".into())]).unwrap();
        let left = inv.under(Path::new("/h")).unwrap();
        let mut names: Vec<_> = left.keys().cloned().collect();
        names.sort();
        assert_eq!(names, vec![PathBuf::from("/h/a-b"), PathBuf::from("/h/ab")]);
        assert_eq!(inv.get(Path::new("/h/ab")).unwrap(), Some(s));
    }
}
