//! Freeing the hot directory once delivery is verified (`delete_source`),
//! without deleting anything upstream.
//!
//! After a sender has put a file in place (and verified it), it removes the
//! local file — unless the file changed since it was announced (size or
//! mtime differ): then the newer announcement will send it again. The watch
//! sees that removal like any other and announces it; the sender must not
//! pass it on, or the file it just delivered would be deleted at the
//! destination. So before removing, the sender writes a *mark* for the path
//! in a small SQLite file shared by its instances; a removal announcement
//! that finds a mark is not propagated. Once that announcement is
//! acknowledged the mark remembers it (by its pubTime) rather than going:
//! a broker may deliver the same announcement again (an instance killed
//! before its ack, an ack lost with its connection), and it is still the
//! echo. A user's own `rm` is another announcement, finds no open mark, and
//! propagates as `fileEvents` says.
//!
//! Directories emptied this way are removed after `cleanDirGrace` (never
//! the hot directory itself, and never anything when the hot directory is
//! `/`), marked the same way so their rmdir is not propagated either.

use crate::message::Message;
use crate::state::sqlite;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long an unconsumed mark is kept (a removal announcement that never
/// came, e.g. the watch was stopped): long enough for any queue to drain.
const MARK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The marks and pending directories of one sender config.
pub struct Autoclean {
    conn: Connection,
    grace: Duration,
}

impl Autoclean {
    /// Opens `<config state>/autoclean.db`.
    pub fn open(config_state: &Path, grace: Duration) -> rusqlite::Result<Autoclean> {
        let conn = sqlite::open(&config_state.join("autoclean.db"))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS marks (path TEXT PRIMARY KEY, at REAL NOT NULL, echo TEXT) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS dirs (path TEXT PRIMARY KEY, root TEXT NOT NULL, since REAL NOT NULL) WITHOUT ROWID;",
        )?;
        // Marks of an earlier version had no `echo`.
        let has_echo = conn.prepare("SELECT echo FROM marks LIMIT 0").is_ok();
        if !has_echo {
            conn.execute_batch("ALTER TABLE marks ADD COLUMN echo TEXT")?;
        }
        Ok(Autoclean { conn, grace })
    }

    /// Marks `path` as removed by autoclean.
    pub fn mark(&self, path: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO marks (path, at, echo) VALUES (?1, ?2, NULL)",
            params![path, sqlite::now()],
        )?;
        Ok(())
    }

    /// A removal of `path`, published at `pub_time`, was announced: true
    /// when autoclean made it — the mark is open, or it was consumed by
    /// this very announcement (delivered again).
    pub fn is_echo(&self, path: &str, pub_time: &str) -> rusqlite::Result<bool> {
        self.conn
            .query_row(
                "SELECT 1 FROM marks WHERE path = ?1 AND (echo IS NULL OR echo = ?2)",
                params![path, pub_time],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
    }

    /// The removal announcements `(path, pubTime)` were acknowledged:
    /// their marks are closed, open to those announcements only.
    pub fn consumed(&self, echoes: &[(String, String)]) -> rusqlite::Result<()> {
        if echoes.is_empty() {
            return Ok(());
        }
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut close =
                tx.prepare_cached("UPDATE marks SET echo = ?2 WHERE path = ?1 AND echo IS NULL")?;
            for (path, pub_time) in echoes {
                close.execute(params![path, pub_time])?;
            }
        }
        tx.commit()
    }

    /// A file was (re)delivered at `path`: a mark left from before (a crash
    /// between marking and removing) no longer stands for a removal.
    pub fn clear(&self, path: &str) -> rusqlite::Result<()> {
        self.conn
            .execute("DELETE FROM marks WHERE path = ?1", params![path])?;
        Ok(())
    }

    /// Removes the local file of a delivered message, if it is still the
    /// file that was announced. Returns what happened, for the log.
    pub fn clean_file(&self, local: &Path, msg: &Message, root: &Path) -> Result<String, String> {
        let text = local.to_str().ok_or("not UTF-8")?;
        if !unchanged(local, msg) {
            // A mark left by a crash must not swallow a later user's rm.
            let _ = self.clear(text);
            return Ok(format!("kept {text}: it changed since it was announced"));
        }
        self.mark(text)
            .map_err(|e| format!("cannot mark {text}: {e}"))?;
        match std::fs::remove_file(local) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = self.clear(text);
                return Ok(format!("{text} was already gone"));
            }
            Err(e) => {
                let _ = self.clear(text);
                return Err(format!("cannot remove {text}: {e}"));
            }
        }
        if let Some(dir) = local.parent() {
            self.note_dir(dir, root);
        }
        Ok(format!("removed {text} (delivered)"))
    }

    /// Remembers that `dir` may now be empty.
    fn note_dir(&self, dir: &Path, root: &Path) {
        if !removable(dir, root) {
            return;
        }
        if let (Some(d), Some(r)) = (dir.to_str(), root.to_str()) {
            let _ = self.conn.execute(
                "INSERT OR IGNORE INTO dirs (path, root, since) VALUES (?1, ?2, ?3)",
                params![d, r, sqlite::now()],
            );
        }
    }

    /// Removes the noted directories that have been empty past the grace;
    /// returns the ones removed. A directory that is not empty is dropped
    /// from the list (a later autoclean in it notes it again).
    pub fn sweep_dirs(&self) -> Vec<PathBuf> {
        if self.grace.is_zero() {
            return Vec::new();
        }
        let cutoff = sqlite::now() - self.grace.as_secs_f64();
        let due: Vec<(String, String)> = self
            .conn
            .prepare("SELECT path, root FROM dirs WHERE since <= ?1 ORDER BY length(path) DESC")
            .and_then(|mut s| {
                s.query_map(params![cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .unwrap_or_default();
        let mut removed = Vec::new();
        for (dir, root) in due {
            let _ = self
                .conn
                .execute("DELETE FROM dirs WHERE path = ?1", params![dir]);
            let p = Path::new(&dir);
            let empty = std::fs::read_dir(p)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if !empty || !removable(p, Path::new(&root)) {
                continue;
            }
            if self.mark(&dir).is_err() {
                continue;
            }
            if std::fs::remove_dir(p).is_ok() {
                removed.push(p.to_path_buf());
                if let Some(parent) = p.parent() {
                    self.note_dir(parent, Path::new(&root));
                }
            } else {
                let _ = self.clear(&dir);
            }
        }
        removed
    }

    /// Forgets marks no removal announcement came for.
    pub fn expire(&self) {
        let _ = self.conn.execute(
            "DELETE FROM marks WHERE at < ?1",
            params![sqlite::now() - MARK_TTL.as_secs_f64()],
        );
    }

    /// Marks waiting for their removal announcement (for tests and status).
    pub fn pending_marks(&self) -> u64 {
        self.conn
            .query_row("SELECT count(*) FROM marks", [], |r| r.get(0))
            .optional()
            .ok()
            .flatten()
            .unwrap_or(0)
    }
}

/// A directory autoclean may remove: strictly below a hot directory that
/// is not `/`.
fn removable(dir: &Path, root: &Path) -> bool {
    root != Path::new("/") && dir != root && dir.starts_with(root)
}

/// True when the local file is still what `msg` announced: same size, and
/// the same mtime (to the microsecond) when the message has one.
pub fn unchanged(local: &Path, msg: &Message) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(local) else {
        return false;
    };
    if !meta.is_file() || msg.size.is_some_and(|s| s != meta.len()) {
        return false;
    }
    match (
        msg.mtime
            .as_deref()
            .and_then(|m| crate::message::timestamp::parse(m).ok()),
        meta.modified().ok(),
    ) {
        (Some(announced), Some(now)) => {
            let d = announced
                .duration_since(now)
                .unwrap_or_else(|e| e.duration());
            d < Duration::from_micros(2)
        }
        (None, _) => true,
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_autocleaned_file_leaves_one_mark_that_its_removal_consumes() {
        let dir = tempfile::tempdir().unwrap();
        let hot = dir.path().join("hot");
        std::fs::create_dir_all(hot.join("sub")).unwrap();
        let f = hot.join("sub/a");
        std::fs::write(&f, b"abc").unwrap();
        let base = format!("file:{}", hot.display());
        let msg = Message::for_file(&base, "sub/a", &f, &Default::default()).unwrap();
        let ac = Autoclean::open(dir.path(), Duration::ZERO).unwrap();
        assert!(ac
            .clean_file(&f, &msg, &hot)
            .unwrap()
            .starts_with("removed"));
        assert!(!f.exists());
        let text = f.to_str().unwrap();
        let (echo, users) = ("20261129T060000.1", "20261129T060105.2");
        assert!(
            ac.is_echo(text, echo).unwrap(),
            "the removal announcement is autoclean's echo"
        );
        assert!(
            ac.is_echo(text, echo).unwrap(),
            "until it is acknowledged, a redelivery of it is still the echo"
        );
        ac.consumed(&[(text.to_string(), echo.to_string())])
            .unwrap();
        assert!(
            ac.is_echo(text, echo).unwrap(),
            "acknowledged, then delivered again (a lost ack): still the echo"
        );
        assert!(
            !ac.is_echo(text, users).unwrap(),
            "another removal (a user's) propagates"
        );
        ac.mark(text).unwrap();
        assert!(
            ac.is_echo(text, users).unwrap(),
            "a new autoclean of the path opens a new mark"
        );
    }

    #[test]
    fn a_file_changed_since_it_was_announced_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        std::fs::write(&f, b"abc").unwrap();
        let msg = Message::for_file("file:/", "a", &f, &Default::default()).unwrap();
        std::fs::write(&f, b"abcdef").unwrap();
        let ac = Autoclean::open(dir.path(), Duration::ZERO).unwrap();
        assert!(ac
            .clean_file(&f, &msg, dir.path())
            .unwrap()
            .starts_with("kept"));
        assert!(f.exists());
        assert_eq!(ac.pending_marks(), 0);
    }

    #[test]
    fn emptied_directories_go_after_the_grace_but_never_the_hot_directory() {
        let dir = tempfile::tempdir().unwrap();
        let hot = dir.path().join("hot");
        std::fs::create_dir_all(hot.join("a/b")).unwrap();
        let f = hot.join("a/b/x");
        std::fs::write(&f, b"1").unwrap();
        let msg = Message::for_file("file:/", "x", &f, &Default::default()).unwrap();
        let ac = Autoclean::open(dir.path(), Duration::from_millis(1)).unwrap();
        ac.clean_file(&f, &msg, &hot).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(ac.sweep_dirs(), vec![hot.join("a/b")]);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(ac.sweep_dirs(), vec![hot.join("a")]);
        assert!(ac.sweep_dirs().is_empty());
        assert!(hot.is_dir(), "the hot directory itself stays");
        assert!(ac
            .is_echo(hot.join("a").to_str().unwrap(), "20261129T0600")
            .unwrap());
        assert!(!removable(Path::new("/x"), Path::new("/")));
    }
}
