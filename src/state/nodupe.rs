//! The nodupe cache: what was last handled at each path, kept `nodupe_ttl`.
//!
//! One SQLite file per config, shared by its instances (they share one
//! queue, so a duplicate may reach any of them). A key is recorded only
//! once its work is done: an instance that dies before finishing must not
//! make the redelivered message look like a duplicate.
//!
//! A message is a duplicate only when the *last* key recorded for its path
//! is its own (an unchanged re-announcement, within the ttl). sr3 keeps
//! every (key, path) pair and drops a message matching any of them, so a
//! file whose content goes A → B → A within the ttl keeps B at the
//! destination; here only the last one counts, so content going back to an
//! older version is new. So one row per path is all there is to keep.

use super::sqlite;
use crate::config::NodupeBasis;
use crate::message::Message;
use rusqlite::{params, Connection, OptionalExtension};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// A disk-backed map of path → last handled key.
pub struct NodupeCache {
    conn: Connection,
    ttl: f64,
    /// Within [`NodupeCache::reading`]: the key each path was given by the
    /// messages of this pass found new so far (`None`: the path was renamed
    /// away, nothing counts there). Those are recorded only once their work
    /// is done, but a later message of the same pass must be judged against
    /// them, not against the older state on disk: `remove x` then `x` with
    /// the content x had before is new.
    pass: RefCell<Option<HashMap<String, Option<String>>>>,
}

impl NodupeCache {
    /// Opens the cache at `path`; entries older than `ttl` do not count.
    pub fn open(path: &Path, ttl: Duration) -> rusqlite::Result<NodupeCache> {
        let mut conn = sqlite::open(path)?;
        // Unlike the retry queue, nothing is lost if the newest entries
        // are: a power cut at worst lets a duplicate through, which is
        // sent again whole. So no fsync per commit (a process killed
        // still loses nothing: the WAL is in the OS's cache).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // One row per path, keyed by it: a check is one primary-key
        // lookup, entries of one directory sit together, and a batch of
        // new files dirties a few pages rather than one per file.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS last_by_path (path TEXT PRIMARY KEY, key TEXT NOT NULL,
             at REAL NOT NULL) WITHOUT ROWID;",
        )?;
        // Earlier layouts kept every (key, path) pair: `seen (key, path)`
        // first, then `seen_by_path (path, key)`. The newest of each path
        // is what counts now (SQLite takes `key` from the row of max(at)).
        for old in ["seen", "seen_by_path"] {
            let present: bool = tx.query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [old],
                |r| r.get(0),
            )?;
            if present {
                tx.execute_batch(&format!(
                    "INSERT OR REPLACE INTO last_by_path (path, key, at)
                     SELECT path, key, max(at) FROM {old} GROUP BY path;
                     DROP TABLE {old};"
                ))?;
            }
        }
        tx.commit()?;
        Ok(NodupeCache {
            conn,
            ttl: ttl.as_secs_f64(),
            pass: RefCell::new(None),
        })
    }

    /// Runs `f` inside one read transaction (its checks share one snapshot
    /// and lock) as one pass: each check also sees what the pass's earlier
    /// new messages will record (see `pass`).
    pub fn reading<T>(&self, f: impl FnOnce() -> T) -> T {
        if self.pass.borrow().is_some() {
            return f(); // already in one: it goes on
        }
        *self.pass.borrow_mut() = Some(HashMap::new());
        let out = sqlite::read_together(&self.conn, f);
        *self.pass.borrow_mut() = None;
        out
    }

    /// True if `e` is a duplicate: the last key recorded at its path,
    /// within the ttl, is its own. See [`NodupeCache::recorded`].
    pub fn is_duplicate(&self, e: &NodupeEntry) -> rusqlite::Result<bool> {
        Ok(self.recorded(e)?.is_some())
    }

    /// When `e` is a duplicate, how long ago its key was recorded at its
    /// path (for saying why it is dropped); `None` when it is new. Within a
    /// pass, a new one is taken as recorded for the checks that follow.
    pub fn recorded(&self, e: &NodupeEntry) -> rusqlite::Result<Option<Recorded>> {
        let mut pass = self.pass.borrow_mut();
        let found = match pass.as_ref().and_then(|p| p.get(&e.path)) {
            Some(last) => (last.as_deref() == Some(e.key.as_str())).then_some(Recorded {
                age: Duration::ZERO,
            }),
            None => self.last(&e.key, &e.path)?,
        };
        if let (None, Some(p)) = (&found, pass.as_mut()) {
            if let Some(old) = &e.renamed_from {
                p.insert(old.clone(), None);
            }
            p.insert(e.path.clone(), Some(e.key.clone()));
        }
        Ok(found)
    }

    /// The last entry at `path`, if it is `key` and within the ttl.
    fn last(&self, key: &str, path: &str) -> rusqlite::Result<Option<Recorded>> {
        let now = sqlite::now();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, at FROM last_by_path WHERE path = ?1")?;
        let row: Option<(String, f64)> = stmt
            .query_row(params![path], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(match row {
            Some((k, at)) if k == key && at >= now - self.ttl => Some(Recorded {
                age: Duration::from_secs_f64((now - at).max(0.0)),
            }),
            _ => None,
        })
    }

    /// Records that these entries were handled now, in order: each becomes
    /// the last key of its path; a rename's old path is forgotten (what
    /// comes there next is new).
    pub fn record(&mut self, entries: &[NodupeEntry]) -> rusqlite::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let now = sqlite::now();
        let tx = self.conn.transaction()?;
        {
            let mut forget = tx.prepare_cached("DELETE FROM last_by_path WHERE path = ?1")?;
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO last_by_path (path, key, at) VALUES (?1, ?2, ?3)",
            )?;
            for e in entries {
                if let Some(old) = &e.renamed_from {
                    forget.execute(params![old])?;
                }
                put.execute(params![e.path, e.key, now])?;
            }
        }
        tx.commit()
    }

    /// Drops entries past the ttl; returns how many.
    pub fn expire(&self) -> rusqlite::Result<usize> {
        self.conn.execute(
            "DELETE FROM last_by_path WHERE at < ?1",
            params![sqlite::now() - self.ttl],
        )
    }
}

/// A duplicate found by [`NodupeCache::recorded`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recorded {
    /// How long ago its key was recorded (zero for one met earlier in the
    /// same pass).
    pub age: Duration,
}

/// What nodupe remembers of one handled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodupeEntry {
    pub key: String,
    pub path: String,
    /// For a rename, the old name's path (same basis as `path`), when it
    /// can be told: nothing was handled there any more.
    pub renamed_from: Option<String>,
}

/// The cache entry of `msg`, as sr3 derives it: a link by its target, a
/// directory by its path, a file by its identity (else mtime and size), a
/// removal by its publication time (two removals are never duplicates).
pub fn entry_for(msg: &Message, basis: NodupeBasis) -> NodupeEntry {
    let rel = msg.rel_path.trim_start_matches('/');
    let path_of = |rel: &str| match basis {
        NodupeBasis::Path => rel.to_string(),
        NodupeBasis::Name => rel.rsplit('/').next().unwrap_or(rel).to_string(),
        NodupeBasis::Data => "data".to_string(),
    };
    let path = path_of(rel);
    let op = msg.file_op.as_ref();
    let key = if let Some(target) = op.and_then(|o| o.link.as_ref()) {
        format!("link,{target}")
    } else if op.is_some_and(|o| o.remove) {
        format!("remove,{}", msg.pub_time)
    } else if op.is_some_and(|o| o.directory) {
        format!("mkdir,{rel}")
    } else if let Some(id) = &msg.identity {
        format!("{},{}", id.method, id.value)
    } else {
        format!(
            "{},{}",
            msg.mtime.as_deref().unwrap_or(&msg.pub_time),
            msg.size.map(|s| s.to_string()).unwrap_or_default()
        )
    };
    let renamed = op.and_then(|o| o.rename.as_ref());
    let renamed_from = renamed
        .and_then(|old| old_rel_path(msg, old))
        .map(|old| path_of(&old))
        .filter(|old| *old != path);
    let key = match renamed {
        Some(old) => format!("{key},rename,{old}"),
        None => key,
    };
    NodupeEntry {
        key,
        path,
        renamed_from,
    }
}

/// The relPath of a rename's old name (`fileOp.rename`): an absolute
/// local path (as the watch writes it) under the root of a `file:`
/// baseUrl, or a relative path as it is. `None` when it cannot be told.
fn old_rel_path(msg: &Message, old: &str) -> Option<String> {
    if !old.starts_with('/') {
        return Some(old.to_string());
    }
    if !msg.base_url.starts_with("file:") {
        return None;
    }
    let root = crate::transfer::file::root_of(&msg.base_url);
    let root = root.to_str()?.trim_end_matches('/');
    let rest = old.strip_prefix(root)?;
    (root.is_empty() || rest.starts_with('/')).then(|| rest.trim_start_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, path: &str) -> NodupeEntry {
        NodupeEntry {
            key: key.into(),
            path: path.into(),
            renamed_from: None,
        }
    }

    fn open(dir: &tempfile::TempDir) -> NodupeCache {
        NodupeCache::open(&dir.path().join("n.db"), Duration::from_secs(300)).unwrap()
    }

    fn dup(c: &NodupeCache, key: &str, path: &str) -> bool {
        c.is_duplicate(&entry(key, path)).unwrap()
    }

    #[test]
    fn a_recorded_entry_is_a_duplicate_until_its_path_gets_another_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir);
        assert!(!dup(&c, "sha512,abc", "a/b"));
        c.record(&[entry("sha512,abc", "a/b")]).unwrap();
        assert!(dup(&c, "sha512,abc", "a/b"));
        assert!(
            !dup(&c, "sha512,abc", "a/c"),
            "same content elsewhere is new"
        );
        c.record(&[entry("remove,1", "a/b")]).unwrap();
        assert!(!dup(&c, "sha512,abc", "a/b"), "re-created after removal");
    }

    #[test]
    fn content_going_back_to_an_older_version_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir);
        c.record(&[entry("sha512,A", "p")]).unwrap();
        c.record(&[entry("sha512,B", "p")]).unwrap();
        assert!(!dup(&c, "sha512,A", "p"), "A → B → A: the last A is new");
        assert!(dup(&c, "sha512,B", "p"), "B again is unchanged");
        // Recorded in one go, in order: the last one counts.
        c.record(&[entry("sha512,A", "q"), entry("sha512,B", "q")])
            .unwrap();
        assert!(!dup(&c, "sha512,A", "q"));
        assert!(dup(&c, "sha512,B", "q"));
    }

    #[test]
    fn recorded_tells_how_long_ago() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir);
        assert_eq!(c.recorded(&entry("sha512,a", "p")).unwrap(), None);
        c.record(&[entry("sha512,a", "p")]).unwrap();
        let r = c.recorded(&entry("sha512,a", "p")).unwrap().unwrap();
        assert!(r.age < Duration::from_secs(5), "{r:?}");
        assert_eq!(c.recorded(&entry("sha512,a", "q")).unwrap(), None);
    }

    #[test]
    fn within_a_pass_each_check_sees_the_new_messages_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir);
        c.record(&[entry("sha512,A", "x"), entry("sha512,A", "a")])
            .unwrap();
        c.reading(|| {
            // remove x, then x with its old content: the second is new.
            assert!(!dup(&c, "remove,5", "x"));
            assert!(!dup(&c, "sha512,A", "x"));
            // The same announcement twice in one pass: the second is not.
            assert!(dup(&c, "sha512,A", "x"));
            // a renamed to b: whatever comes to a next is new.
            let renamed = NodupeEntry {
                key: "sha512,A,rename,/h/a".into(),
                path: "b".into(),
                renamed_from: Some("a".into()),
            };
            assert!(!c.is_duplicate(&renamed).unwrap());
            assert!(!dup(&c, "sha512,A", "a"));
        });
        // Outside a pass, only what was recorded counts.
        assert!(dup(&c, "sha512,A", "x"));
        assert!(dup(&c, "sha512,A", "x"));
    }

    #[test]
    fn a_rename_forgets_its_old_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir);
        let to_b = NodupeEntry {
            key: "sha512,A,rename,/h/a".into(),
            path: "b".into(),
            renamed_from: Some("a".into()),
        };
        let to_a = NodupeEntry {
            key: "sha512,A,rename,/h/b".into(),
            path: "a".into(),
            renamed_from: Some("b".into()),
        };
        c.record(&[entry("sha512,A", "a")]).unwrap();
        c.record(std::slice::from_ref(&to_b)).unwrap();
        assert!(c.is_duplicate(&to_b).unwrap());
        assert!(!dup(&c, "sha512,A", "a"), "a new file at the old name");
        c.record(std::slice::from_ref(&to_a)).unwrap();
        // a → b → a → b: the second a → b is new again.
        assert!(!c.is_duplicate(&to_b).unwrap());
    }

    #[test]
    fn entry_for_a_watch_rename_names_the_old_relpath() {
        let msg = Message::for_link("file:/h", "d/b", "t").with_rename("/h/d/a".into());
        let e = entry_for(&msg, NodupeBasis::Path);
        assert_eq!(e.path, "d/b");
        assert_eq!(e.renamed_from.as_deref(), Some("d/a"));
        let e = entry_for(&msg, NodupeBasis::Name);
        assert_eq!(e.renamed_from.as_deref(), Some("a"));
        assert_eq!(entry_for(&msg, NodupeBasis::Data).renamed_from, None);
        let outside = Message::for_link("file:/h", "b", "t").with_rename("/elsewhere/a".into());
        assert_eq!(entry_for(&outside, NodupeBasis::Path).renamed_from, None);
        let relative = Message::for_link("sftp://u@h/x", "b", "t").with_rename("c/a".into());
        assert_eq!(
            entry_for(&relative, NodupeBasis::Path)
                .renamed_from
                .as_deref(),
            Some("c/a")
        );
    }

    #[test]
    fn caches_of_the_earlier_layouts_are_carried_over_newest_first() {
        for (old, create) in [
            (
                "seen",
                "CREATE TABLE seen (key TEXT NOT NULL, path TEXT NOT NULL, at REAL NOT NULL,
                 PRIMARY KEY (key, path)) WITHOUT ROWID;
                 CREATE INDEX seen_path ON seen(path);",
            ),
            (
                "seen_by_path",
                "CREATE TABLE seen_by_path (path TEXT NOT NULL, key TEXT NOT NULL,
                 at REAL NOT NULL, PRIMARY KEY (path, key)) WITHOUT ROWID;",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("n.db");
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.execute_batch(create).unwrap();
            let now = sqlite::now();
            for (key, path, at) in [
                ("sha512,old", "a/b", now - 2.0),
                ("sha512,abc", "a/b", now - 1.0),
                ("sha512,z", "z", now),
            ] {
                conn.execute(
                    &format!("INSERT INTO {old} (key, path, at) VALUES (?1, ?2, ?3)"),
                    params![key, path, at],
                )
                .unwrap();
            }
            drop(conn);
            let c = NodupeCache::open(&db, Duration::from_secs(300)).unwrap();
            assert!(dup(&c, "sha512,abc", "a/b"), "{old}");
            assert!(!dup(&c, "sha512,old", "a/b"), "{old}");
            assert!(dup(&c, "sha512,z", "z"), "{old}");
            assert!(!dup(&c, "sha512,abc", "a/c"), "{old}");
            drop(c);
            // Opening again (another instance) finds nothing left to move.
            let c = NodupeCache::open(&db, Duration::from_secs(300)).unwrap();
            assert!(dup(&c, "sha512,abc", "a/b"), "{old}");
        }
    }

    #[test]
    fn entries_past_the_ttl_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = NodupeCache::open(&dir.path().join("n.db"), Duration::ZERO).unwrap();
        c.record(&[entry("k", "p")]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!dup(&c, "k", "p"));
        assert_eq!(c.expire().unwrap(), 1);
    }
}
