//! The nodupe cache: keys of messages already handled, kept `nodupe_ttl`.
//!
//! One SQLite file per config, shared by its instances (they share one
//! queue, so a duplicate may reach any of them). A key is recorded only
//! once its work is done: an instance that dies before finishing must not
//! make the redelivered message look like a duplicate.

use super::sqlite;
use crate::config::NodupeBasis;
use crate::message::Message;
use rusqlite::{params, Connection};
use std::path::Path;
use std::time::Duration;

/// A disk-backed set of recently handled (key, path) pairs.
pub struct NodupeCache {
    conn: Connection,
    ttl: f64,
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
        // Keyed by path first: entries of one directory sit together, a
        // removal's "forget this path" needs no second index, and a batch
        // of new files dirties a few pages rather than one per file (the
        // identity keys of the first layout, `seen (key, path)` plus an
        // index on path, scattered every insert over two trees).
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS seen_by_path (path TEXT NOT NULL, key TEXT NOT NULL,
             at REAL NOT NULL, PRIMARY KEY (path, key)) WITHOUT ROWID;",
        )?;
        let old_layout: bool = tx.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'seen'",
            [],
            |r| r.get(0),
        )?;
        if old_layout {
            tx.execute_batch(
                "INSERT OR REPLACE INTO seen_by_path (path, key, at) SELECT path, key, at FROM seen;
                 DROP TABLE seen;",
            )?;
        }
        tx.commit()?;
        Ok(NodupeCache {
            conn,
            ttl: ttl.as_secs_f64(),
        })
    }

    /// Runs `f` inside one read transaction (its `is_duplicate` calls
    /// share one snapshot and lock).
    pub fn reading<T>(&self, f: impl FnOnce() -> T) -> T {
        sqlite::read_together(&self.conn, f)
    }

    /// True if (key, path) was recorded within the ttl.
    pub fn is_duplicate(&self, key: &str, path: &str) -> rusqlite::Result<bool> {
        let cutoff = sqlite::now() - self.ttl;
        let mut stmt = self.conn.prepare_cached(
            "SELECT 1 FROM seen_by_path WHERE path = ?1 AND key = ?2 AND at >= ?3",
        )?;
        stmt.exists(params![path, key, cutoff])
    }

    /// When (key, path) was recorded within the ttl, for saying why a
    /// duplicate is dropped: how long ago, and whether another key was
    /// recorded at `path` since (the content changed and changed back).
    pub fn recorded(&self, key: &str, path: &str) -> rusqlite::Result<Option<Recorded>> {
        let now = sqlite::now();
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.at, EXISTS (SELECT 1 FROM seen_by_path o WHERE o.path = ?1
             AND o.key != ?2 AND o.at >= s.at)
             FROM seen_by_path s WHERE s.path = ?1 AND s.key = ?2 AND s.at >= ?3",
        )?;
        let mut rows = stmt.query(params![path, key, now - self.ttl])?;
        match rows.next()? {
            Some(r) => Ok(Some(Recorded {
                age: Duration::from_secs_f64((now - r.get::<_, f64>(0)?).max(0.0)),
                changed_since: r.get(1)?,
            })),
            None => Ok(None),
        }
    }

    /// Records that these (key, path) pairs were handled now. A removal
    /// forgets every earlier entry of its path, so a file deleted and then
    /// written again with the same content is not taken for a duplicate.
    pub fn record(&mut self, entries: &[NodupeEntry]) -> rusqlite::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let now = sqlite::now();
        let tx = self.conn.transaction()?;
        {
            let mut forget = tx.prepare_cached("DELETE FROM seen_by_path WHERE path = ?1")?;
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO seen_by_path (path, key, at) VALUES (?1, ?2, ?3)",
            )?;
            for e in entries {
                if e.forget_path {
                    forget.execute(params![e.path])?;
                }
                put.execute(params![e.path, e.key, now])?;
            }
        }
        tx.commit()
    }

    /// Drops entries past the ttl; returns how many.
    pub fn expire(&self) -> rusqlite::Result<usize> {
        self.conn.execute(
            "DELETE FROM seen_by_path WHERE at < ?1",
            params![sqlite::now() - self.ttl],
        )
    }
}

/// A (key, path) found in the cache by [`NodupeCache::recorded`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recorded {
    /// How long ago it was recorded.
    pub age: Duration,
    /// Another key was recorded at its path since.
    pub changed_since: bool,
}

/// What nodupe remembers of one handled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodupeEntry {
    pub key: String,
    pub path: String,
    /// The message removed its path: forget what was seen there before.
    pub forget_path: bool,
}

/// The cache entry of `msg`, as sr3 derives it: a link by its target, a
/// directory by its path, a file by its identity (else mtime and size), a
/// removal by its publication time (two removals are never duplicates).
pub fn entry_for(msg: &Message, basis: NodupeBasis) -> NodupeEntry {
    let rel = msg.rel_path.trim_start_matches('/');
    let path = match basis {
        NodupeBasis::Path => rel.to_string(),
        NodupeBasis::Name => rel.rsplit('/').next().unwrap_or(rel).to_string(),
        NodupeBasis::Data => "data".to_string(),
    };
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
    let key = match op.and_then(|o| o.rename.as_ref()) {
        Some(old) => format!("{key},rename,{old}"),
        None => key,
    };
    NodupeEntry {
        key,
        path,
        forget_path: op.is_some_and(|o| o.remove),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, path: &str, forget: bool) -> NodupeEntry {
        NodupeEntry {
            key: key.into(),
            path: path.into(),
            forget_path: forget,
        }
    }

    #[test]
    fn recorded_entry_is_a_duplicate_until_its_path_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = NodupeCache::open(&dir.path().join("n.db"), Duration::from_secs(300)).unwrap();
        assert!(!c.is_duplicate("sha512,abc", "a/b").unwrap());
        c.record(&[entry("sha512,abc", "a/b", false)]).unwrap();
        assert!(c.is_duplicate("sha512,abc", "a/b").unwrap());
        assert!(
            !c.is_duplicate("sha512,abc", "a/c").unwrap(),
            "same content elsewhere is new"
        );
        c.record(&[entry("remove,1", "a/b", true)]).unwrap();
        assert!(
            !c.is_duplicate("sha512,abc", "a/b").unwrap(),
            "re-created after removal"
        );
    }

    #[test]
    fn recorded_tells_how_long_ago_and_whether_the_path_changed_since() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = NodupeCache::open(&dir.path().join("n.db"), Duration::from_secs(300)).unwrap();
        assert_eq!(c.recorded("sha512,a", "p").unwrap(), None);
        c.record(&[entry("sha512,a", "p", false)]).unwrap();
        let r = c.recorded("sha512,a", "p").unwrap().unwrap();
        assert!(r.age < Duration::from_secs(5), "{r:?}");
        assert!(!r.changed_since);
        std::thread::sleep(Duration::from_millis(5));
        c.record(&[entry("sha512,b", "p", false)]).unwrap();
        assert!(c.recorded("sha512,a", "p").unwrap().unwrap().changed_since);
        assert!(!c.recorded("sha512,b", "p").unwrap().unwrap().changed_since);
        assert_eq!(c.recorded("sha512,a", "q").unwrap(), None);
    }

    #[test]
    fn a_cache_of_the_first_layout_is_carried_over() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("n.db");
        let old = rusqlite::Connection::open(&db).unwrap();
        old.execute_batch(
            "CREATE TABLE seen (key TEXT NOT NULL, path TEXT NOT NULL, at REAL NOT NULL,
             PRIMARY KEY (key, path)) WITHOUT ROWID;
             CREATE INDEX seen_path ON seen(path);",
        )
        .unwrap();
        old.execute(
            "INSERT INTO seen (key, path, at) VALUES ('sha512,abc', 'a/b', ?1)",
            params![sqlite::now()],
        )
        .unwrap();
        drop(old);
        let c = NodupeCache::open(&db, Duration::from_secs(300)).unwrap();
        assert!(c.is_duplicate("sha512,abc", "a/b").unwrap());
        assert!(!c.is_duplicate("sha512,abc", "a/c").unwrap());
        drop(c);
        // Opening again (another instance) finds nothing left to move.
        let c = NodupeCache::open(&db, Duration::from_secs(300)).unwrap();
        assert!(c.is_duplicate("sha512,abc", "a/b").unwrap());
    }

    #[test]
    fn entries_past_the_ttl_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = NodupeCache::open(&dir.path().join("n.db"), Duration::ZERO).unwrap();
        c.record(&[entry("k", "p", false)]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!c.is_duplicate("k", "p").unwrap());
        assert_eq!(c.expire().unwrap(), 1);
    }
}
