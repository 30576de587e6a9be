//! Consuming: leasing rows of one queue to this consumer, acking and
//! requeueing them, and taking back what dead or silent consumers held.

use super::owner::{owner_is_alive, Owner};
use super::store::{self, Durability, TxError};
use crate::broker::{BrokerError, Consumer, Delivery, QueueSpec};
use async_trait::async_trait;
use rusqlite::{params, Connection, Transaction};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a lease lasts without news from its owner; every `get` and
/// `ack` of the owner renews all its leases.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(600);

/// Owners of leases are checked for death at most this often.
const OWNER_CHECK_MS: i64 = 1_000;

/// Polling while the queue is empty: the first look comes soon after the
/// last (low latency for the first message of a burst), then the pause
/// doubles up to the maximum (cheap when idle).
const POLL_FIRST: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(100);

/// Consumes one queue of the embedded broker; see [`open_consumer`].
pub struct LocalConsumer {
    conn: Connection,
    db_path: PathBuf,
    queue: String,
    owner: Owner,
    prefetch: u32,
    lease_ms: i64,
    message_ttl_ms: Option<i64>,
    last_owner_check_ms: i64,
}

/// Open (creating if needed) the broker database at `db_path` to consume
/// `queue`. Call [`Consumer::declare_queue`] before `get`: it creates the
/// queue and sets the prefetch.
pub fn open_consumer(db_path: &Path, queue: &str) -> Result<LocalConsumer, BrokerError> {
    Ok(LocalConsumer {
        conn: store::open(db_path, Durability::Full)?,
        db_path: db_path.to_path_buf(),
        queue: queue.to_string(),
        owner: Owner::new(),
        prefetch: 0,
        lease_ms: store::ms(DEFAULT_LEASE),
        message_ttl_ms: None,
        last_owner_check_ms: 0,
    })
}

impl LocalConsumer {
    /// Change how long a lease outlives the last `get`/`ack` of its owner
    /// (default [`DEFAULT_LEASE`]).
    pub fn set_lease_duration(&mut self, lease: Duration) {
        self.lease_ms = store::ms(lease);
    }

    /// The queue this consumer takes from.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// One write transaction: renew this consumer's leases, take back the
    /// rows of dead or silent owners, then lease up to `max` ready rows
    /// (fewer if the prefetch is reached), oldest first.
    fn claim(&mut self, max: usize) -> Result<Vec<Delivery>, BrokerError> {
        let now = store::now_ms();
        let check_owners = now - self.last_owner_check_ms >= OWNER_CHECK_MS;
        let (queue, owner, lease_ms) = (&self.queue, &self.owner, self.lease_ms);
        let (prefetch, ttl) = (self.prefetch, self.message_ttl_ms);
        let db_path = self.db_path.clone();
        let claimed = store::write_tx(&mut self.conn, &self.db_path, |tx| {
            let touched = tx
                .prepare_cached("UPDATE queues SET last_used_ms = ?2 WHERE name = ?1")?
                .execute(params![queue, now])?;
            if touched == 0 {
                return Err(TxError::Broker(store::other(
                    &db_path,
                    format!("queue {queue} does not exist (declare it first)"),
                )));
            }
            renew(tx, queue, owner, now + lease_ms)?;
            release_expired_leases(tx, queue, now)?;
            if check_owners {
                release_dead_owners(tx, queue, owner)?;
                if let Some(ttl) = ttl {
                    drop_old_messages(tx, queue, now - ttl)?;
                }
            }
            let held: i64 = tx
                .prepare_cached(
                    "SELECT count(*) FROM messages WHERE queue = ?1 AND lease_owner = ?2",
                )?
                .query_row(params![queue, owner.token], |r| r.get(0))?;
            let room = match prefetch {
                0 => max,
                p => max.min(usize::try_from(i64::from(p) - held).unwrap_or(0)),
            };
            if room == 0 {
                return Ok(Vec::new());
            }
            let mut stmt = tx.prepare_cached(
                "UPDATE messages
                 SET lease_owner = ?2, lease_pid = ?3, lease_start = ?4,
                     lease_until_ms = ?5, deliveries = deliveries + 1
                 WHERE id IN (SELECT id FROM messages
                              WHERE queue = ?1 AND lease_owner IS NULL
                              ORDER BY id LIMIT ?6)
                 RETURNING id, exchange, topic, body, redelivered, content_type, headers",
            )?;
            let limit = i64::try_from(room).unwrap_or(i64::MAX);
            let rows = stmt.query_map(
                params![
                    queue,
                    owner.token,
                    owner.pid,
                    i64::try_from(owner.start).unwrap_or(0),
                    now + lease_ms,
                    limit
                ],
                |r| {
                    let headers: Option<String> = r.get(6)?;
                    Ok(Delivery {
                        id: r.get::<_, i64>(0)? as u64,
                        exchange: r.get(1)?,
                        topic: r.get(2)?,
                        body: r.get(3)?,
                        redelivered: r.get(4)?,
                        content_type: r.get(5)?,
                        // Written by `publish` from a map of strings.
                        headers: headers
                            .and_then(|h| serde_json::from_str(&h).ok())
                            .unwrap_or_default(),
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        });
        if check_owners {
            self.last_owner_check_ms = now;
        }
        // RETURNING gives no order: FIFO is by id.
        let mut claimed = claimed?;
        claimed.sort_by_key(|d| d.id);
        Ok(claimed)
    }

    /// Whether a `claim` could find something: a ready row, a lease run
    /// out, or the time to look for dead owners. A plain read, which in WAL
    /// mode neither waits for nor blocks the writers.
    fn worth_claiming(&self) -> Result<bool, BrokerError> {
        let now = store::now_ms();
        if now - self.last_owner_check_ms >= OWNER_CHECK_MS {
            return Ok(true);
        }
        store::retry_busy(&self.db_path, || {
            self.conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM messages WHERE queue = ?1
                                    AND (lease_owner IS NULL OR lease_until_ms < ?2))",
                )?
                .query_row(params![self.queue, now], |r| r.get(0))
        })
    }

    fn at_prefetch_limit(&self) -> Result<bool, BrokerError> {
        if self.prefetch == 0 {
            return Ok(false);
        }
        let held: i64 = store::retry_busy(&self.db_path, || {
            self.conn
                .prepare_cached(
                    "SELECT count(*) FROM messages WHERE queue = ?1 AND lease_owner = ?2",
                )?
                .query_row(params![self.queue, self.owner.token], |r| r.get(0))
        })?;
        Ok(held >= i64::from(self.prefetch))
    }

    /// Apply `sql` (with ?1 = id, ?2 = owner) to each of `ids` this consumer
    /// still leases; returns how many it held.
    fn settle(&mut self, ids: &[u64], sql: &str) -> Result<usize, BrokerError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let now = store::now_ms();
        let (queue, owner, lease_ms) = (&self.queue, &self.owner, self.lease_ms);
        store::write_tx(&mut self.conn, &self.db_path, |tx| {
            let mut stmt = tx.prepare_cached(sql)?;
            let mut done = 0;
            for &id in ids {
                let id = i64::try_from(id).unwrap_or(-1);
                done += stmt.execute(params![id, owner.token])?;
            }
            renew(tx, queue, owner, now + lease_ms)?;
            Ok(done)
        })
    }
}

#[async_trait]
impl Consumer for LocalConsumer {
    /// Creates the queue, its bindings and the exchanges they name (so a
    /// sender may start before its watch has declared the exchange). Like
    /// AMQP, bindings are only ever added here; the queue's settings take
    /// the values of the latest declare.
    async fn declare_queue(&mut self, spec: &QueueSpec) -> Result<(), BrokerError> {
        if spec.name != self.queue {
            return Err(store::other(
                &self.db_path,
                format!(
                    "consumer of queue {} cannot declare {}",
                    self.queue, spec.name
                ),
            ));
        }
        store::write_tx(&mut self.conn, &self.db_path, |tx| {
            super::admin::declare_queue(tx, spec, store::now_ms())?;
            Ok(())
        })?;
        self.prefetch = spec.prefetch;
        self.message_ttl_ms = spec.message_ttl.map(store::ms);
        Ok(())
    }

    /// Polls: SQLite has no way to wake a process when another commits, so
    /// while nothing is ready this looks again after 5 ms, then 10, 20 … up
    /// to 100 ms between looks, until `wait` is over. Each look is a plain
    /// read; the write transaction is taken only when there is something
    /// to claim.
    async fn get(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BrokerError> {
        let deadline = Instant::now() + wait;
        let mut claimed = if max == 0 {
            Vec::new()
        } else {
            self.claim(max)?
        };
        let mut pause = POLL_FIRST;
        while claimed.is_empty() && max > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if self.at_prefetch_limit()? {
                // Like a broker, deliver nothing more until some are acked;
                // sleeping out `wait` keeps a calling loop from spinning.
                tokio::time::sleep(left).await;
                break;
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(POLL_MAX);
            if self.worth_claiming()? {
                claimed = self.claim(max)?;
            }
        }
        Ok(claimed)
    }

    /// Deletes the rows still leased by this consumer. A row whose lease
    /// was lost (expired, and since given to another consumer) is left to
    /// its new owner: it will be delivered twice, never lost.
    async fn ack(&mut self, ids: &[u64]) -> Result<(), BrokerError> {
        let done = self.settle(
            ids,
            "DELETE FROM messages WHERE id = ?1 AND lease_owner = ?2",
        )?;
        if done < ids.len() {
            tracing::warn!(
                queue = %self.queue,
                lost = ids.len() - done,
                "acked deliveries no longer leased by this consumer (lease expired): \
                 they will be delivered again"
            );
        }
        Ok(())
    }

    async fn requeue(&mut self, ids: &[u64]) -> Result<(), BrokerError> {
        self.settle(
            ids,
            "UPDATE messages SET lease_owner = NULL, lease_pid = NULL, lease_start = NULL,
                                 lease_until_ms = NULL, redelivered = 1
             WHERE id = ?1 AND lease_owner = ?2",
        )?;
        Ok(())
    }

    async fn queue_depth(&mut self) -> Result<Option<u64>, BrokerError> {
        let depth: i64 = store::retry_busy(&self.db_path, || {
            self.conn
                .prepare_cached("SELECT count(*) FROM messages WHERE queue = ?1")?
                .query_row([&self.queue], |r| r.get(0))
        })?;
        Ok(Some(u64::try_from(depth).unwrap_or(0)))
    }
}

impl Drop for LocalConsumer {
    /// A consumer going away gives back what it holds, as an AMQP channel
    /// closing does; a crash leaves that to the dead-owner check.
    fn drop(&mut self) {
        let result = self
            .conn
            .prepare_cached(
                "UPDATE messages SET lease_owner = NULL, lease_pid = NULL, lease_start = NULL,
                                     lease_until_ms = NULL, redelivered = 1
                 WHERE queue = ?1 AND lease_owner = ?2",
            )
            .and_then(|mut s| s.execute(params![self.queue, self.owner.token]));
        if let Err(e) = result {
            tracing::warn!(queue = %self.queue, "could not requeue deliveries at close: {e}");
        }
    }
}

fn renew(tx: &Transaction, queue: &str, owner: &Owner, until: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE messages SET lease_until_ms = ?3 WHERE queue = ?1 AND lease_owner = ?2",
    )?
    .execute(params![queue, owner.token, until])?;
    Ok(())
}

fn release_expired_leases(tx: &Transaction, queue: &str, now: i64) -> rusqlite::Result<()> {
    let n = tx
        .prepare_cached(
            "UPDATE messages SET lease_owner = NULL, lease_pid = NULL, lease_start = NULL,
                                 lease_until_ms = NULL, redelivered = 1
             WHERE queue = ?1 AND lease_owner IS NOT NULL AND lease_until_ms < ?2",
        )?
        .execute(params![queue, now])?;
    if n > 0 {
        tracing::warn!(queue, rows = n, "leases expired: delivering again");
    }
    Ok(())
}

/// Give back the rows of every other owner whose process is gone. One
/// /proc look per owner, not per row.
fn release_dead_owners(tx: &Transaction, queue: &str, me: &Owner) -> rusqlite::Result<()> {
    let owners: Vec<(String, u32, i64)> = tx
        .prepare_cached(
            "SELECT lease_owner, lease_pid, lease_start FROM messages
             WHERE queue = ?1 AND lease_owner IS NOT NULL AND lease_owner != ?2
             GROUP BY lease_owner",
        )?
        .query_map(params![queue, me.token], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (token, pid, start) in owners {
        if owner_is_alive(pid, u64::try_from(start).unwrap_or(0)) {
            continue;
        }
        let n = tx
            .prepare_cached(
                "UPDATE messages SET lease_owner = NULL, lease_pid = NULL, lease_start = NULL,
                                     lease_until_ms = NULL, redelivered = 1
                 WHERE queue = ?1 AND lease_owner = ?2",
            )?
            .execute(params![queue, token])?;
        tracing::info!(queue, owner = %token, rows = n, "consumer died: delivering its messages again");
    }
    Ok(())
}

/// `message_ttl`: ready messages older than the limit are dropped, as AMQP
/// x-message-ttl does.
fn drop_old_messages(tx: &Transaction, queue: &str, before: i64) -> rusqlite::Result<()> {
    let n = tx
        .prepare_cached(
            "DELETE FROM messages WHERE queue = ?1 AND lease_owner IS NULL AND published_ms < ?2",
        )?
        .execute(params![queue, before])?;
    if n > 0 {
        tracing::warn!(queue, rows = n, "dropped messages older than message_ttl");
    }
    Ok(())
}
