//! The watch's delivery receipts: what it announced and still waits to
//! hear was delivered, per receiver, and the receivers it knows.
//!
//! One SQLite file per watch config (`receipts.db` in its state directory,
//! WAL). A *pending* row is one announced path waiting for one receiver's
//! receipt: the announcement (v03 body and topic, to announce it again),
//! the pubTime of the first announcement of that content (older receipts
//! are of older content), what the path was then (to tell whether it is
//! still what was announced), and when to announce it again. A *receiver*
//! is a config (`sender/to_hpfx`) heard from, with its last receipt time.
//! [`ANY`] stands for "whoever reports first" while no receiver is known.

use super::sqlite;
use rusqlite::{params, Connection, OptionalExtension};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The receiver of a row any receipt clears.
pub const ANY: &str = "*";

/// What a path was when it was announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// A file of this size and mtime.
    File { size: u64, mtime_ns: i128 },
    /// A directory.
    Dir,
    /// A symbolic link to this target.
    Link(String),
    /// Nothing (a removal).
    Absent,
}

impl Expect {
    fn code(&self) -> i64 {
        match self {
            Expect::File { .. } => 0,
            Expect::Dir => 1,
            Expect::Link(_) => 2,
            Expect::Absent => 3,
        }
    }

    /// Whether `path` is still what was announced.
    pub fn holds_at(&self, path: &Path) -> bool {
        let meta = std::fs::symlink_metadata(path);
        match (self, meta) {
            (Expect::Absent, Err(e)) => e.kind() == std::io::ErrorKind::NotFound,
            (Expect::Absent, Ok(_)) => false,
            (_, Err(_)) => false,
            (Expect::Dir, Ok(m)) => m.is_dir(),
            (Expect::Link(target), Ok(m)) => {
                m.file_type().is_symlink()
                    && std::fs::read_link(path).is_ok_and(|t| t.as_os_str() == target.as_str())
            }
            (Expect::File { size, mtime_ns }, Ok(m)) => {
                use std::os::unix::fs::MetadataExt;
                let mtime = m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128;
                m.is_file() && m.len() == *size && mtime == *mtime_ns
            }
        }
    }
}

/// One announcement to wait for receipts of.
#[derive(Debug, Clone)]
pub struct Announced {
    pub rel_path: String,
    /// The v03 body as announced.
    pub body: Vec<u8>,
    pub topic: String,
    /// What the content is known by (its nodupe key): an announcement of
    /// the same content keeps the first one's pubTime.
    pub content: String,
    /// Its pubTime, epoch seconds.
    pub pub_time: f64,
    /// The local path, and what it was.
    pub path: PathBuf,
    pub expect: Expect,
}

/// A pending row due to be announced again.
#[derive(Debug, Clone)]
pub struct Due {
    pub rel_path: String,
    pub receiver: String,
    pub body: Vec<u8>,
    pub topic: String,
    pub announced: f64,
    /// When it was last announced (again), epoch seconds.
    pub last_sent: f64,
    pub tries: u32,
    pub path: PathBuf,
    pub expect: Expect,
}

/// How many files wait for a receipt, and since when the oldest does.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub files: u64,
    /// When the oldest was announced (epoch seconds).
    pub oldest: Option<f64>,
}

/// The receipts store of one watch.
pub struct Receipts {
    conn: Connection,
}

/// The file of a watch's store, in its config state directory.
pub fn db_path(config_state: &Path) -> PathBuf {
    config_state.join("receipts.db")
}

impl Receipts {
    pub fn open(path: &Path) -> rusqlite::Result<Receipts> {
        let conn = sqlite::open(path)?;
        // Losing the newest rows in a power cut at worst leaves a file
        // unconfirmed: the start-up scan does not announce it again, and
        // nothing waits for its receipt (as before receipts).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // A rowid table: rows hold a whole announcement (about 700 bytes),
        // too big to sit in the key's b-tree, whose pages would split and
        // merge on every insert and delete.
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS pending (id INTEGER PRIMARY KEY,
                rel_path TEXT NOT NULL, receiver TEXT NOT NULL,
                body BLOB NOT NULL, topic TEXT NOT NULL, content TEXT NOT NULL,
                first_pub REAL NOT NULL, announced REAL NOT NULL, last_sent REAL NOT NULL,
                next_at REAL NOT NULL, tries INTEGER NOT NULL,
                path BLOB NOT NULL, kind INTEGER NOT NULL, size INTEGER NOT NULL,
                mtime_ns TEXT NOT NULL, target TEXT,
                UNIQUE (rel_path, receiver));
             CREATE INDEX IF NOT EXISTS pending_next ON pending(next_at);
             CREATE TABLE IF NOT EXISTS receivers (
                name TEXT PRIMARY KEY, last_receipt REAL NOT NULL) WITHOUT ROWID;",
        )?;
        Ok(Receipts { conn })
    }

    /// Records announcements just published, each awaited from every one
    /// of `receivers`, due again `timeout` from now. A path already waiting
    /// for the same content keeps its first pubTime and announce time.
    pub fn expect(
        &mut self,
        items: &[Announced],
        receivers: &[String],
        timeout: Duration,
    ) -> rusqlite::Result<()> {
        if items.is_empty() || receivers.is_empty() {
            return Ok(());
        }
        let now = sqlite::now();
        let next = now + timeout.as_secs_f64();
        let tx = self.conn.transaction()?;
        {
            let mut up = tx.prepare_cached(
                "INSERT INTO pending (rel_path, receiver, body, topic, content, first_pub,
                    announced, last_sent, next_at, tries, path, kind, size, mtime_ns, target)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, 0, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT (rel_path, receiver) DO UPDATE SET
                    first_pub = CASE WHEN content = excluded.content THEN min(first_pub, excluded.first_pub) ELSE excluded.first_pub END,
                    announced = CASE WHEN content = excluded.content THEN announced ELSE excluded.announced END,
                    last_sent = excluded.last_sent,
                    body = excluded.body, topic = excluded.topic, content = excluded.content,
                    next_at = excluded.next_at, tries = 0, path = excluded.path,
                    kind = excluded.kind, size = excluded.size, mtime_ns = excluded.mtime_ns,
                    target = excluded.target",
            )?;
            for it in items {
                let (size, mtime_ns, target) = match &it.expect {
                    Expect::File { size, mtime_ns } => (*size as i64, *mtime_ns, None),
                    Expect::Link(t) => (0, 0, Some(t.as_str())),
                    _ => (0, 0, None),
                };
                for r in receivers {
                    up.execute(params![
                        it.rel_path,
                        r,
                        it.body,
                        it.topic,
                        it.content,
                        it.pub_time,
                        now,
                        next,
                        it.path.as_os_str().as_bytes(),
                        it.expect.code(),
                        size,
                        mtime_ns.to_string(),
                        target,
                    ])?;
                }
            }
        }
        tx.commit()
    }

    /// A receipt from `receiver` for `rel_path` of a message published at
    /// `pub_time`: clears that receiver's row and the [`ANY`] row, unless
    /// they wait for newer content. Returns how many rows it cleared.
    pub fn clear(
        &mut self,
        rel_path: &str,
        receiver: &str,
        pub_time: f64,
    ) -> rusqlite::Result<usize> {
        // pubTimes are kept to the microsecond; floats of epoch seconds
        // are not that exact.
        self.conn
            .prepare_cached(
                "DELETE FROM pending WHERE rel_path = ?1 AND receiver IN (?2, ?3)
                 AND first_pub <= ?4 + 0.0005",
            )?
            .execute(params![rel_path, receiver, ANY, pub_time])
    }

    /// Runs `f` in one write transaction (a batch of receipts).
    pub fn together<T>(&mut self, f: impl FnOnce(&mut Receipts) -> T) -> T {
        let began = self.conn.execute_batch("BEGIN IMMEDIATE").is_ok();
        let out = f(self);
        if began {
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                tracing::warn!("receipts store: {e}");
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
        out
    }

    /// The receivers heard from, with their last receipt time.
    pub fn receivers(&self) -> rusqlite::Result<Vec<(String, f64)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, last_receipt FROM receivers ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    }

    /// `name` was heard from at `at` (added if new).
    pub fn heard(&mut self, name: &str, at: f64) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO receivers (name, last_receipt) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET last_receipt = max(last_receipt, excluded.last_receipt)",
            )?
            .execute(params![name, at])?;
        Ok(())
    }

    /// Forgets receiver `name` and the rows waiting for it; returns how
    /// many files waited for it.
    pub fn forget(&mut self, name: &str) -> rusqlite::Result<usize> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM receivers WHERE name = ?1", [name])?;
        let n = tx.execute("DELETE FROM pending WHERE receiver = ?1", [name])?;
        tx.commit()?;
        Ok(n)
    }

    /// Drops the rows waiting for receivers other than [`ANY`] and
    /// `expected` (a receiver no longer listed in receiptsFrom).
    pub fn keep_only(&mut self, expected: &[String]) -> rusqlite::Result<usize> {
        let mut gone = 0;
        let others: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT DISTINCT receiver FROM pending WHERE receiver != ?1")?;
            let rows = stmt.query_map([ANY], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for r in others.iter().filter(|r| !expected.contains(r)) {
            gone += self
                .conn
                .execute("DELETE FROM pending WHERE receiver = ?1", [r])?;
        }
        Ok(gone)
    }

    /// Drops [`ANY`] rows announced before `before`; returns how many.
    pub fn drop_any_before(&mut self, before: f64) -> rusqlite::Result<usize> {
        self.conn.execute(
            "DELETE FROM pending WHERE receiver = ?1 AND announced < ?2",
            params![ANY, before],
        )
    }

    /// The rows waiting for `receiver`, and the [`ANY`] rows, are due at
    /// `at` (a receiver heard from again after a silence: what it held
    /// meanwhile gets the time to come through).
    pub fn due_at(&mut self, receiver: &str, at: f64) -> rusqlite::Result<usize> {
        self.conn.execute(
            "UPDATE pending SET next_at = ?3 WHERE receiver IN (?1, ?2)",
            params![receiver, ANY, at],
        )
    }

    /// These rows are not announced again now: each is due `backoff(tries)`
    /// from now instead, tries unchanged.
    pub fn put_off(
        &mut self,
        rows: &[(String, String, u32)],
        backoff: impl Fn(u32) -> Duration,
    ) -> rusqlite::Result<()> {
        let now = sqlite::now();
        let tx = self.conn.transaction()?;
        {
            let mut up = tx.prepare_cached(
                "UPDATE pending SET next_at = ?3 WHERE rel_path = ?1 AND receiver = ?2",
            )?;
            for (rel, receiver, tries) in rows {
                up.execute(params![rel, receiver, now + backoff(*tries).as_secs_f64()])?;
            }
        }
        tx.commit()
    }

    /// Up to `limit` rows due now, soonest first; [`ANY`] rows only when
    /// `with_any`.
    pub fn due(&self, limit: usize, with_any: bool) -> rusqlite::Result<Vec<Due>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT rel_path, receiver, body, topic, announced, tries, path, kind, size,
                    mtime_ns, target, last_sent
             FROM pending WHERE next_at <= ?1 AND (?2 OR receiver != ?3)
             ORDER BY next_at LIMIT ?4",
        )?;
        let rows = stmt.query_map(params![sqlite::now(), with_any, ANY, limit as i64], |r| {
            let path: Vec<u8> = r.get(6)?;
            let kind: i64 = r.get(7)?;
            let size: i64 = r.get(8)?;
            let mtime: String = r.get(9)?;
            let target: Option<String> = r.get(10)?;
            let expect = match kind {
                0 => Expect::File {
                    size: size as u64,
                    mtime_ns: mtime.parse().unwrap_or(0),
                },
                1 => Expect::Dir,
                2 => Expect::Link(target.unwrap_or_default()),
                _ => Expect::Absent,
            };
            Ok(Due {
                rel_path: r.get(0)?,
                receiver: r.get(1)?,
                body: r.get(2)?,
                topic: r.get(3)?,
                announced: r.get(4)?,
                last_sent: r.get(11)?,
                tries: r.get::<_, i64>(5)? as u32,
                path: PathBuf::from(std::ffi::OsStr::from_bytes(&path)),
                expect,
            })
        })?;
        rows.collect()
    }

    /// The rows were announced again: each is due after `backoff(tries)`
    /// of its new try count.
    pub fn announced_again(
        &mut self,
        rows: &[(String, String, u32)],
        backoff: impl Fn(u32) -> Duration,
    ) -> rusqlite::Result<()> {
        let now = sqlite::now();
        let tx = self.conn.transaction()?;
        {
            let mut up = tx.prepare_cached(
                "UPDATE pending SET tries = ?3, next_at = ?4, last_sent = ?5
                 WHERE rel_path = ?1 AND receiver = ?2",
            )?;
            for (rel, receiver, tries) in rows {
                up.execute(params![
                    rel,
                    receiver,
                    tries,
                    now + backoff(*tries).as_secs_f64(),
                    now
                ])?;
            }
        }
        tx.commit()
    }

    /// Drops these rows (their path changed or went since announced).
    pub fn drop_rows(&mut self, rows: &[(String, String)]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut del =
                tx.prepare_cached("DELETE FROM pending WHERE rel_path = ?1 AND receiver = ?2")?;
            for (rel, receiver) in rows {
                del.execute(params![rel, receiver])?;
            }
        }
        tx.commit()
    }

    /// How many files wait, and the oldest.
    pub fn summary(&self) -> rusqlite::Result<Summary> {
        summary_of(&self.conn)
    }
}

fn summary_of(conn: &Connection) -> rusqlite::Result<Summary> {
    conn.query_row(
        "SELECT count(DISTINCT rel_path), min(announced) FROM pending",
        [],
        |r| {
            Ok(Summary {
                files: r.get::<_, i64>(0)? as u64,
                oldest: r.get(1)?,
            })
        },
    )
    .optional()
    .map(Option::unwrap_or_default)
}

/// The summary of the store at `path`, read only (for `status`); `None`
/// when there is no store.
pub fn summary(path: &Path) -> Option<Summary> {
    if !path.exists() {
        return None;
    }
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.busy_timeout(Duration::from_secs(2)).ok()?;
    summary_of(&conn).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(rel: &str, content: &str, pub_time: f64) -> Announced {
        Announced {
            rel_path: rel.into(),
            body: b"{}".to_vec(),
            topic: "v03".into(),
            content: content.into(),
            pub_time,
            path: PathBuf::from("/nowhere").join(rel),
            expect: Expect::Absent,
        }
    }

    #[test]
    fn a_receipt_clears_its_receiver_and_any_but_not_newer_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receipts::open(&db_path(dir.path())).unwrap();
        let both = vec!["sender/a".to_string(), "sender/b".to_string()];
        r.expect(&[item("x", "k1", 100.0)], &both, Duration::from_secs(60))
            .unwrap();
        assert_eq!(r.summary().unwrap().files, 1);
        // An older receipt (of older content) clears nothing.
        assert_eq!(r.clear("x", "sender/a", 99.0).unwrap(), 0);
        assert_eq!(r.clear("x", "sender/a", 100.0).unwrap(), 1);
        assert_eq!(r.summary().unwrap().files, 1, "b still waits");
        // The same content announced again keeps its first pubTime.
        r.expect(&[item("x", "k1", 200.0)], &both, Duration::from_secs(60))
            .unwrap();
        assert_eq!(r.clear("x", "sender/b", 150.0).unwrap(), 1);
        // New content does not.
        r.expect(&[item("x", "k2", 300.0)], &both, Duration::from_secs(60))
            .unwrap();
        assert_eq!(r.clear("x", "sender/a", 250.0).unwrap(), 0);
        // ANY is cleared by anyone.
        r.expect(&[item("y", "k", 10.0)], &[ANY.to_string()], Duration::ZERO)
            .unwrap();
        assert_eq!(r.clear("y", "sender/zz", 10.0).unwrap(), 1);
    }

    #[test]
    fn due_rows_back_off_and_any_waits_for_a_receiver() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receipts::open(&db_path(dir.path())).unwrap();
        r.expect(&[item("a", "k", 1.0)], &[ANY.to_string()], Duration::ZERO)
            .unwrap();
        r.expect(
            &[item("b", "k", 1.0)],
            &["sender/s".to_string()],
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(r.due(10, false).unwrap().len(), 1);
        let due = r.due(10, true).unwrap();
        assert_eq!(due.len(), 2);
        let bumped: Vec<_> = due
            .iter()
            .map(|d| (d.rel_path.clone(), d.receiver.clone(), d.tries + 1))
            .collect();
        r.announced_again(&bumped, |_| Duration::from_secs(60))
            .unwrap();
        assert!(r.due(10, true).unwrap().is_empty());
        r.heard("sender/s", 5.0).unwrap();
        r.heard("sender/s", 4.0).unwrap();
        assert_eq!(r.receivers().unwrap(), vec![("sender/s".to_string(), 5.0)]);
        assert_eq!(r.forget("sender/s").unwrap(), 1);
        assert_eq!(r.summary().unwrap().files, 1);
        assert_eq!(summary(&db_path(dir.path())).unwrap().files, 1);
    }

    #[test]
    fn rows_put_off_keep_their_tries_and_a_returning_receiver_makes_them_due() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receipts::open(&db_path(dir.path())).unwrap();
        let s = vec!["sender/s".to_string()];
        r.expect(&[item("a", "k", 1.0)], &s, Duration::ZERO)
            .unwrap();
        r.expect(&[item("b", "k", 1.0)], &[ANY.to_string()], Duration::ZERO)
            .unwrap();
        let d = r.due(10, true).unwrap();
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(|d| d.tries == 0 && d.last_sent >= d.announced));
        let rows: Vec<_> = d
            .iter()
            .map(|d| (d.rel_path.clone(), d.receiver.clone(), 3))
            .collect();
        r.put_off(&rows, |_| Duration::from_secs(3600)).unwrap();
        assert!(r.due(10, true).unwrap().is_empty());
        assert_eq!(r.due_at("sender/s", 0.0).unwrap(), 2, "its rows and any's");
        assert_eq!(r.due(10, true).unwrap().len(), 2);
        assert_eq!(r.due(10, false).unwrap().len(), 1);
    }

    #[test]
    fn what_a_path_was_is_checked_again() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"abc").unwrap();
        let m = std::fs::symlink_metadata(&f).unwrap();
        use std::os::unix::fs::MetadataExt;
        let e = Expect::File {
            size: 3,
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        };
        assert!(e.holds_at(&f));
        std::fs::write(&f, b"abcd").unwrap();
        assert!(!e.holds_at(&f));
        assert!(Expect::Absent.holds_at(&dir.path().join("nothing")));
        assert!(Expect::Dir.holds_at(dir.path()));
        std::os::unix::fs::symlink("t", dir.path().join("l")).unwrap();
        assert!(Expect::Link("t".into()).holds_at(&dir.path().join("l")));
        assert!(!Expect::Link("u".into()).holds_at(&dir.path().join("l")));
    }
}
