//! Queues as objects: declaring them, and what `pitcher status` and
//! `pitcher cleanup` ask of the database without being consumers (stats,
//! listing, deleting), none of which creates anything.

use super::publish::declare_exchange;
use super::store::{self, TxError};
use crate::broker::{BrokerError, QueueSpec};
use rusqlite::{params, OptionalExtension, Transaction};
use std::path::Path;

/// Messages of one queue: ready for a consumer, and leased but not yet
/// acked (including those of a dead consumer not yet taken back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    pub ready: u64,
    pub unacked: u64,
}

/// Create the queue, its bindings and the exchanges they name, or refresh
/// its settings if it exists.
pub(super) fn declare_queue(tx: &Transaction, spec: &QueueSpec, now: i64) -> Result<(), TxError> {
    drop_expired_queues(tx, now)?;
    tx.prepare_cached(
        "INSERT INTO queues (name, durable, expire_ms, message_ttl_ms, declared_ms, last_used_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT (name) DO UPDATE SET
             durable = excluded.durable, expire_ms = excluded.expire_ms,
             message_ttl_ms = excluded.message_ttl_ms, last_used_ms = excluded.last_used_ms",
    )?
    .execute(params![
        spec.name,
        spec.durable,
        spec.expire.map(store::ms),
        spec.message_ttl.map(store::ms),
        now
    ])?;
    let mut bind = tx.prepare_cached(
        "INSERT OR IGNORE INTO bindings (queue, exchange, pattern) VALUES (?1, ?2, ?3)",
    )?;
    for binding in &spec.bindings {
        declare_exchange(tx, &binding.exchange, now)?;
        bind.execute(params![spec.name, binding.exchange, binding.topic])?;
    }
    Ok(())
}

/// Delete the queues unused for longer than their `expire`, with their
/// messages, as AMQP x-expires does.
pub(super) fn drop_expired_queues(tx: &Transaction, now: i64) -> rusqlite::Result<()> {
    let expired: Vec<String> = tx
        .prepare_cached(
            "SELECT name FROM queues
             WHERE expire_ms IS NOT NULL AND last_used_ms + expire_ms <= ?1",
        )?
        .query_map([now], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for queue in expired {
        tracing::info!(
            queue,
            "queue unused for longer than its expire: deleting it"
        );
        delete_queue_rows(tx, &queue)?;
    }
    Ok(())
}

fn delete_queue_rows(tx: &Transaction, queue: &str) -> rusqlite::Result<bool> {
    tx.execute("DELETE FROM messages WHERE queue = ?1", [queue])?;
    tx.execute("DELETE FROM bindings WHERE queue = ?1", [queue])?;
    Ok(tx.execute("DELETE FROM queues WHERE name = ?1", [queue])? > 0)
}

/// Ready and unacked counts of `queue`; `None` when the database or the
/// queue does not exist. Creates nothing.
pub fn queue_stats(db_path: &Path, queue: &str) -> Result<Option<QueueStats>, BrokerError> {
    let Some(conn) = store::open_existing(db_path)? else {
        return Ok(None);
    };
    store::retry_busy(db_path, || {
        let exists = conn
            .query_row("SELECT 1 FROM queues WHERE name = ?1", [queue], |_| Ok(()))
            .optional()?
            .is_some();
        if !exists {
            return Ok(None);
        }
        let (ready, unacked): (i64, i64) = conn.query_row(
            "SELECT count(*) FILTER (WHERE lease_owner IS NULL),
                    count(*) FILTER (WHERE lease_owner IS NOT NULL)
             FROM messages WHERE queue = ?1",
            [queue],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(Some(QueueStats {
            ready: u64::try_from(ready).unwrap_or(0),
            unacked: u64::try_from(unacked).unwrap_or(0),
        }))
    })
}

/// Delete `queue`, its bindings and every message in it (`pitcher
/// cleanup`). Returns whether it existed. Creates nothing.
pub fn delete_queue(db_path: &Path, queue: &str) -> Result<bool, BrokerError> {
    let Some(mut conn) = store::open_existing(db_path)? else {
        return Ok(false);
    };
    store::write_tx(&mut conn, db_path, |tx| Ok(delete_queue_rows(tx, queue)?))
}

/// The names of every queue, sorted. Creates nothing.
pub fn list_queues(db_path: &Path) -> Result<Vec<String>, BrokerError> {
    let Some(conn) = store::open_existing(db_path)? else {
        return Ok(Vec::new());
    };
    store::retry_busy(db_path, || {
        conn.prepare("SELECT name FROM queues ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect()
    })
}
