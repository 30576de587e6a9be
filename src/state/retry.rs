//! The on-disk retry queue of one instance.
//!
//! A message whose work failed (or whose announcement could not be
//! published) is written here *before* its delivery is acknowledged, so a
//! failure never loses it. Items come back when due, with a backoff that
//! grows per item; they survive restarts, and expire only past `retry_ttl`.
//! One file per instance, written by that instance alone; an instance adopts
//! the files of instance numbers no longer configured.

use super::sqlite;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::time::Duration;

/// What a retried item is waiting to do again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryKind {
    /// The transfer (send, download, file operation).
    Work,
    /// The announcement on post_broker, after the work succeeded.
    Post,
}

impl RetryKind {
    fn as_str(self) -> &'static str {
        match self {
            RetryKind::Work => "work",
            RetryKind::Post => "post",
        }
    }
}

/// One message waiting in the retry queue.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryItem {
    /// Row id (0 before it is stored).
    pub id: i64,
    pub kind: RetryKind,
    /// The v03 body.
    pub body: Vec<u8>,
    /// Exchange and topic it came from (work) or goes to (post).
    pub exchange: String,
    pub topic: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it first failed (epoch seconds).
    pub first_failed: f64,
    /// The last error, for the log and `status`.
    pub last_error: String,
}

impl RetryItem {
    /// A new item after its first failure.
    pub fn new(
        kind: RetryKind,
        body: Vec<u8>,
        exchange: &str,
        topic: &str,
        error: &str,
    ) -> RetryItem {
        RetryItem {
            id: 0,
            kind,
            body,
            exchange: exchange.to_string(),
            topic: topic.to_string(),
            attempts: 1,
            first_failed: sqlite::now(),
            last_error: error.to_string(),
        }
    }
}

/// The delay before attempt `attempts + 1`: 1 s doubling up to 60 s, so a
/// link that comes back is used within a minute.
pub fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// A retry queue file.
pub struct RetryQueue {
    conn: Connection,
}

impl RetryQueue {
    /// Opens (creating if needed) the queue at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<RetryQueue> {
        let conn = sqlite::open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS retry (
                id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, body BLOB NOT NULL,
                exchange TEXT NOT NULL, topic TEXT NOT NULL, attempts INTEGER NOT NULL,
                first_failed REAL NOT NULL, next_try REAL NOT NULL, last_error TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS retry_due ON retry(next_try);",
        )?;
        Ok(RetryQueue { conn })
    }

    /// Stores items (new failures) in one transaction, each due after its
    /// backoff.
    pub fn push(&mut self, items: &[RetryItem]) -> rusqlite::Result<()> {
        let now = sqlite::now();
        let tx = self.conn.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO retry (kind, body, exchange, topic, attempts, first_failed, next_try, last_error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for it in items {
                ins.execute(params![
                    it.kind.as_str(),
                    it.body,
                    it.exchange,
                    it.topic,
                    it.attempts,
                    it.first_failed,
                    now + backoff(it.attempts).as_secs_f64(),
                    it.last_error
                ])?;
            }
        }
        tx.commit()
    }

    /// Up to `limit` items of `kind` that are due now, oldest first. They
    /// stay stored until [`RetryQueue::remove`] or [`RetryQueue::failed_again`].
    pub fn due(&self, kind: RetryKind, limit: usize) -> rusqlite::Result<Vec<RetryItem>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, kind, body, exchange, topic, attempts, first_failed, last_error FROM retry
             WHERE kind = ?1 AND next_try <= ?2 ORDER BY next_try, id LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![kind.as_str(), sqlite::now(), limit as i64],
            item_of_row,
        )?;
        rows.collect()
    }

    /// The items succeeded (or were dropped): delete them.
    pub fn remove(&mut self, ids: &[i64]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut del = tx.prepare_cached("DELETE FROM retry WHERE id = ?1")?;
            for id in ids {
                del.execute(params![id])?;
            }
        }
        tx.commit()
    }

    /// The item failed once more: count it and push its next try back.
    pub fn failed_again(&mut self, id: i64, error: &str) -> rusqlite::Result<()> {
        let attempts: Option<u32> = self
            .conn
            .query_row(
                "SELECT attempts FROM retry WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?;
        let attempts = attempts.unwrap_or(0) + 1;
        self.conn.execute(
            "UPDATE retry SET attempts = ?2, next_try = ?3, last_error = ?4 WHERE id = ?1",
            params![
                id,
                attempts,
                sqlite::now() + backoff(attempts).as_secs_f64(),
                error
            ],
        )?;
        Ok(())
    }

    /// Items waiting, of both kinds.
    pub fn len(&self) -> rusqlite::Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM retry", [], |r| r.get(0))
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> rusqlite::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes and returns the items that first failed more than `ttl` ago.
    pub fn expire(&mut self, ttl: Duration) -> rusqlite::Result<Vec<RetryItem>> {
        let cutoff = sqlite::now() - ttl.as_secs_f64();
        let old: Vec<RetryItem> = {
            let mut stmt = self.conn.prepare(
                "SELECT id, kind, body, exchange, topic, attempts, first_failed, last_error
                 FROM retry WHERE first_failed < ?1",
            )?;
            let rows = stmt.query_map(params![cutoff], item_of_row)?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let ids: Vec<i64> = old.iter().map(|i| i.id).collect();
        self.remove(&ids)?;
        Ok(old)
    }

    /// Moves every item of the queue file at `other` into this one (used to
    /// adopt the queue of an instance number no longer configured), then
    /// deletes that file. Returns how many items came over.
    pub fn adopt(&mut self, other: &Path) -> rusqlite::Result<u64> {
        let n = {
            let tx = self.conn.transaction()?;
            tx.execute(
                "ATTACH DATABASE ?1 AS other",
                params![other.to_string_lossy()],
            )?;
            let n = tx.execute(
                "INSERT INTO retry (kind, body, exchange, topic, attempts, first_failed, next_try, last_error)
                 SELECT kind, body, exchange, topic, attempts, first_failed, next_try, last_error FROM other.retry",
                [],
            )?;
            tx.commit()?;
            n
        };
        self.conn.execute("DETACH DATABASE other", [])?;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", other.display()));
        }
        Ok(n as u64)
    }
}

/// A row selected as (id, kind, body, exchange, topic, attempts,
/// first_failed, last_error).
fn item_of_row(r: &rusqlite::Row) -> rusqlite::Result<RetryItem> {
    let kind: String = r.get(1)?;
    Ok(RetryItem {
        id: r.get(0)?,
        kind: if kind == "post" {
            RetryKind::Post
        } else {
            RetryKind::Work
        },
        body: r.get(2)?,
        exchange: r.get(3)?,
        topic: r.get(4)?,
        attempts: r.get(5)?,
        first_failed: r.get(6)?,
        last_error: r.get(7)?,
    })
}

/// The number of items in the retry file at `path`, without creating it.
pub fn count(path: &Path) -> u64 {
    if !path.exists() {
        return 0;
    }
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT count(*) FROM retry", [], |r| r.get(0)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_item_survives_reopen_and_comes_back_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.db");
        {
            let mut q = RetryQueue::open(&p).unwrap();
            q.push(&[RetryItem::new(
                RetryKind::Work,
                b"{}".to_vec(),
                "xs",
                "v03",
                "boom",
            )])
            .unwrap();
            assert_eq!(q.len().unwrap(), 1);
            assert!(
                q.due(RetryKind::Work, 10).unwrap().is_empty(),
                "not due before its backoff"
            );
        }
        let mut q = RetryQueue::open(&p).unwrap();
        assert_eq!(count(&p), 1);
        q.conn.execute("UPDATE retry SET next_try = 0", []).unwrap();
        let due = q.due(RetryKind::Work, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].last_error, "boom");
        assert!(q.due(RetryKind::Post, 10).unwrap().is_empty());
        q.failed_again(due[0].id, "again").unwrap();
        assert!(
            q.due(RetryKind::Work, 10).unwrap().is_empty(),
            "pushed back after a new failure"
        );
        q.remove(&[due[0].id]).unwrap();
        assert!(q.is_empty().unwrap());
    }

    #[test]
    fn expire_drops_only_items_older_than_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = RetryQueue::open(&dir.path().join("r.db")).unwrap();
        let mut old = RetryItem::new(RetryKind::Post, b"a".to_vec(), "x", "t", "e");
        old.first_failed -= 1000.0;
        q.push(&[
            old,
            RetryItem::new(RetryKind::Post, b"b".to_vec(), "x", "t", "e"),
        ])
        .unwrap();
        let gone = q.expire(Duration::from_secs(100)).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].body, b"a");
        assert_eq!(q.len().unwrap(), 1);
    }

    #[test]
    fn adopting_an_orphaned_queue_moves_its_items() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
        RetryQueue::open(&b)
            .unwrap()
            .push(&[RetryItem::new(
                RetryKind::Work,
                b"x".to_vec(),
                "x",
                "t",
                "e",
            )])
            .unwrap();
        let mut q = RetryQueue::open(&a).unwrap();
        assert_eq!(q.adopt(&b).unwrap(), 1);
        assert_eq!(q.len().unwrap(), 1);
        assert!(!b.exists());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(30), Duration::from_secs(60));
    }
}
