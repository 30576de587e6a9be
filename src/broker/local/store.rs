//! The SQLite file itself: opening it (creating it 0600 with its parent
//! directory), the pragmas every connection sets, the schema and its
//! version, and write transactions that wait out a busy database instead of
//! failing.

use super::super::BrokerError;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The schema this code reads and writes (`PRAGMA user_version`).
pub(super) const SCHEMA_VERSION: i32 = 1;

/// How long one statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Whole transactions retried after `BUSY_TIMEOUT` ran out, before giving
/// up with [`BrokerError::Connection`] (the caller then keeps its messages
/// and tries again later: busy never loses anything).
const BUSY_RETRIES: u32 = 5;

/// When a commit is on disk: see the module doc of `local` for the choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// fsync the WAL at every commit: survives power loss.
    Full,
    /// fsync only at checkpoints: survives process crashes only.
    #[cfg_attr(not(test), allow(dead_code))]
    Normal,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS exchanges (
    name        TEXT PRIMARY KEY,
    declared_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queues (
    name           TEXT PRIMARY KEY,
    durable        INTEGER NOT NULL,
    expire_ms      INTEGER,
    message_ttl_ms INTEGER,
    declared_ms    INTEGER NOT NULL,
    last_used_ms   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bindings (
    queue    TEXT NOT NULL,
    exchange TEXT NOT NULL,
    pattern  TEXT NOT NULL,
    PRIMARY KEY (queue, exchange, pattern)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bindings_by_exchange ON bindings (exchange);
CREATE TABLE IF NOT EXISTS messages (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    queue          TEXT NOT NULL,
    exchange       TEXT NOT NULL,
    topic          TEXT NOT NULL,
    body           BLOB NOT NULL,
    content_type   TEXT,
    headers        TEXT,
    published_ms   INTEGER NOT NULL,
    redelivered    INTEGER NOT NULL DEFAULT 0,
    deliveries     INTEGER NOT NULL DEFAULT 0,
    lease_owner    TEXT,
    lease_pid      INTEGER,
    lease_start    INTEGER,
    lease_until_ms INTEGER
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, lease_owner, id);
";

/// Open the broker database, creating the file (mode 0600), its parent
/// directory and the schema if missing.
pub(super) fn open(db_path: &Path, sync: Durability) -> Result<Connection, BrokerError> {
    if let Some(dir) = db_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                other(
                    db_path,
                    format!("creating directory {}: {e}", dir.display()),
                )
            })?;
    }
    // Created here rather than by SQLite so its mode is 0600; SQLite gives
    // the -wal and -shm files the same permissions as the database. Only
    // when it does not exist: closing any descriptor of the file drops
    // every POSIX lock this process holds on it, those of its open SQLite
    // connections included (a sender's reports, its consumer made again
    // after a vip comes back); another process may then take the database
    // for unused, checkpoint and delete the WAL under them, and the
    // database is corrupt.
    if !db_path.exists() {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(db_path)
            .map_err(|e| other(db_path, format!("creating: {e}")))?;
    }
    let mut conn = Connection::open(db_path).map_err(|e| db(db_path, e))?;
    configure(&conn, db_path, sync)?;
    retry_busy(db_path, || {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Ok(())
    })?;
    write_tx(&mut conn, db_path, |tx| {
        let version: i32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(TxError::Broker(other(
                db_path,
                format!(
                    "schema version {version} was written by a newer pitcher \
                     (this one knows {SCHEMA_VERSION})"
                ),
            )));
        }
        tx.execute_batch(SCHEMA)?;
        add_message_columns(tx)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(())
    })?;
    Ok(conn)
}

/// Adds `content_type` and `headers` (a JSON object; NULL when there are
/// none) to a `messages` table made before they existed. Both are NULL for
/// the rows already there, and a pitcher without them ignores them, so the
/// schema version stays.
fn add_message_columns(tx: &Transaction) -> rusqlite::Result<()> {
    let columns: Vec<String> = tx
        .prepare("SELECT name FROM pragma_table_info('messages')")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for column in ["content_type", "headers"] {
        if !columns.iter().any(|c| c == column) {
            tx.execute_batch(&format!("ALTER TABLE messages ADD COLUMN {column} TEXT"))?;
        }
    }
    Ok(())
}

/// Open an existing broker database without creating anything; `None` when
/// there is no file or no schema yet (nothing was ever declared).
pub(super) fn open_existing(db_path: &Path) -> Result<Option<Connection>, BrokerError> {
    if !db_path.exists() {
        return Ok(None);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(db_path, flags).map_err(|e| db(db_path, e))?;
    configure(&conn, db_path, Durability::Full)?;
    let version: i32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| db(db_path, e))?;
    Ok((version > 0).then_some(conn))
}

fn configure(conn: &Connection, db_path: &Path, sync: Durability) -> Result<(), BrokerError> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| db(db_path, e))?;
    let synchronous = match sync {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(|e| db(db_path, e))?;
    // A busy queue is read at its head: a small cache serves it, and every
    // instance process has its own.
    conn.pragma_update(None, "cache_size", -4 * crate::state::sqlite::CACHE_KIB)
        .map_err(|e| db(db_path, e))?;
    // After a burst the WAL is truncated back to this size at checkpoints,
    // instead of keeping its high-water mark on disk.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(|e| db(db_path, e))?;
    Ok(())
}

/// What a transaction body can fail with: a database error (retried when
/// it is SQLITE_BUSY) or a broker answer such as `Unroutable`.
pub(super) enum TxError {
    Db(rusqlite::Error),
    Broker(BrokerError),
}

impl From<rusqlite::Error> for TxError {
    fn from(e: rusqlite::Error) -> Self {
        TxError::Db(e)
    }
}

/// Run `body` in a `BEGIN IMMEDIATE` transaction and commit. IMMEDIATE takes
/// the write lock first, so the transaction never fails half-way because a
/// reader turned writer lost a race; busy_timeout waits for the lock, and a
/// still-busy database reruns the whole body (it must keep no state outside
/// the transaction). Any error rolls everything back.
pub(super) fn write_tx<T>(
    conn: &mut Connection,
    db_path: &Path,
    mut body: impl FnMut(&Transaction) -> Result<T, TxError>,
) -> Result<T, BrokerError> {
    let mut attempt = 0;
    loop {
        let result = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(TxError::Db)
            .and_then(|tx| {
                let value = body(&tx)?;
                tx.commit()?;
                Ok(value)
            });
        match result {
            Ok(value) => return Ok(value),
            Err(TxError::Db(e)) if is_busy(&e) && attempt < BUSY_RETRIES => {
                attempt += 1;
                tracing::warn!(db = %db_path.display(), attempt, "broker database busy; retrying");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(TxError::Db(e)) => return Err(db(db_path, e)),
            Err(TxError::Broker(e)) => return Err(e),
        }
    }
}

/// Run a statement outside a transaction, retrying while the database is
/// busy.
pub(super) fn retry_busy<T>(
    db_path: &Path,
    mut f: impl FnMut() -> rusqlite::Result<T>,
) -> Result<T, BrokerError> {
    let mut attempt = 0;
    loop {
        match f() {
            Err(e) if is_busy(&e) && attempt < BUSY_RETRIES => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            result => return result.map_err(|e| db(db_path, e)),
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// A database error, with the file it is about. Busy means "try again
/// later" to the caller, hence `Connection`.
pub(super) fn db(db_path: &Path, e: rusqlite::Error) -> BrokerError {
    if is_busy(&e) {
        BrokerError::Connection(format!("local broker {}: {e}", db_path.display()))
    } else {
        other(db_path, e.to_string())
    }
}

pub(super) fn other(db_path: &Path, msg: impl std::fmt::Display) -> BrokerError {
    BrokerError::Other(anyhow::anyhow!("local broker {}: {msg}", db_path.display()))
}

/// Wall-clock milliseconds since the epoch: what the rows store, since
/// several processes must agree on it.
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A duration as stored milliseconds.
pub(super) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
