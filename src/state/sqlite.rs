//! Opening the small SQLite stores the same way everywhere.

use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// The page cache each connection may keep, in KiB. SQLite's default (2 MiB)
/// would fill as a store grows (a nodupe cache of 100,000 files) and stay:
/// in every instance process, for every store. What does not fit is read
/// again from the OS's page cache, which all processes share.
pub const CACHE_KIB: i64 = 256;

/// Opens (creating if needed) a database in WAL mode, safe to share between
/// processes on a local disk, with `synchronous=FULL`: these stores decide
/// whether a message may be acknowledged, so a commit must survive a crash.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    Ok(conn)
}

/// Runs `f` inside one read transaction on `conn` (see
/// `Inventory::reading`); plain autocommit if it cannot begin.
pub fn read_together<T>(conn: &Connection, f: impl FnOnce() -> T) -> T {
    let began = conn.execute_batch("BEGIN").is_ok();
    let out = f();
    if began {
        if let Err(e) = conn.execute_batch("COMMIT") {
            tracing::debug!("ending a read transaction: {e}");
        }
    }
    out
}

/// Seconds since the epoch, as a float (the stores' time unit).
pub fn now() -> f64 {
    super::now_epoch()
}
