//! Publishing: route each message of a batch through the topic bindings
//! and copy it into every queue that wants it, all in one transaction.

use super::store::{self, Durability, TxError};
use super::topic::topic_matches;
use crate::broker::{BrokerError, Outgoing, Publisher};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// How often a publisher drops the queues whose `expire` ran out.
const EXPIRE_SWEEP_MS: i64 = 60_000;

/// Publishes into the embedded broker; see [`open_publisher`].
pub struct LocalPublisher {
    conn: Connection,
    db_path: PathBuf,
    last_sweep_ms: i64,
}

/// Open (creating if needed) the broker database at `db_path` to publish.
pub fn open_publisher(db_path: &Path) -> Result<LocalPublisher, BrokerError> {
    open_publisher_with(db_path, Durability::Full)
}

pub(super) fn open_publisher_with(
    db_path: &Path,
    sync: Durability,
) -> Result<LocalPublisher, BrokerError> {
    Ok(LocalPublisher {
        conn: store::open(db_path, sync)?,
        db_path: db_path.to_path_buf(),
        last_sweep_ms: 0,
    })
}

#[async_trait]
impl Publisher for LocalPublisher {
    async fn declare_exchange(&mut self, name: &str) -> Result<(), BrokerError> {
        store::write_tx(&mut self.conn, &self.db_path, |tx| {
            declare_exchange(tx, name, store::now_ms())?;
            Ok(())
        })
    }

    /// All or nothing: an undeclared exchange or a message no queue is
    /// bound for fails the whole batch and stores none of it, so the
    /// caller can keep the batch and publish it again later.
    async fn publish(&mut self, msgs: &[Outgoing]) -> Result<(), BrokerError> {
        if msgs.is_empty() {
            return Ok(());
        }
        if store::now_ms() - self.last_sweep_ms >= EXPIRE_SWEEP_MS {
            // A transaction of its own: an unroutable batch must not undo it.
            store::write_tx(&mut self.conn, &self.db_path, |tx| {
                Ok(super::admin::drop_expired_queues(tx, store::now_ms())?)
            })?;
            self.last_sweep_ms = store::now_ms();
        }
        store::write_tx(&mut self.conn, &self.db_path, |tx| {
            let now = store::now_ms();
            let routes = route(tx, msgs, now)?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages
                     (queue, exchange, topic, body, content_type, headers, published_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (msg, queues) in msgs.iter().zip(&routes) {
                let headers = (!msg.headers.is_empty())
                    .then(|| serde_json::to_string(&msg.headers).unwrap_or_default());
                for queue in queues {
                    insert.execute(params![
                        queue,
                        msg.exchange,
                        msg.topic,
                        msg.body,
                        msg.content_type,
                        headers,
                        now
                    ])?;
                }
            }
            Ok(())
        })
    }
}

pub(super) fn declare_exchange(tx: &Transaction, name: &str, now: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT OR IGNORE INTO exchanges (name, declared_ms) VALUES (?1, ?2)")?
        .execute(params![name, now])?;
    Ok(())
}

/// The queues each message goes to (each queue once, however many of its
/// bindings match), or the reason the batch cannot be published.
fn route(tx: &Transaction, msgs: &[Outgoing], now: i64) -> Result<Vec<BTreeSet<String>>, TxError> {
    // Bindings per exchange, read once per batch: the table is small.
    let mut bindings: HashMap<&str, Vec<(String, String)>> = HashMap::new();
    for msg in msgs {
        if bindings.contains_key(msg.exchange.as_str()) {
            continue;
        }
        let exists = tx
            .prepare_cached("SELECT 1 FROM exchanges WHERE name = ?1")?
            .query_row([&msg.exchange], |_| Ok(()))
            .optional()?
            .is_some();
        if !exists {
            return Err(TxError::Broker(BrokerError::NoExchange(
                msg.exchange.clone(),
            )));
        }
        // A queue past its `expire` no longer receives, even before the
        // sweep deletes it.
        let mut stmt = tx.prepare_cached(
            "SELECT b.queue, b.pattern FROM bindings b JOIN queues q ON q.name = b.queue
             WHERE b.exchange = ?1
               AND (q.expire_ms IS NULL OR q.last_used_ms + q.expire_ms > ?2)",
        )?;
        let rows = stmt
            .query_map(params![msg.exchange, now], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        bindings.insert(&msg.exchange, rows);
    }
    msgs.iter()
        .map(|msg| {
            let queues: BTreeSet<String> = bindings
                .get(msg.exchange.as_str())
                .into_iter()
                .flatten()
                .filter(|(_, pattern)| topic_matches(pattern, &msg.topic))
                .map(|(queue, _)| queue.clone())
                .collect();
            if queues.is_empty() {
                Err(TxError::Broker(BrokerError::Unroutable {
                    exchange: msg.exchange.clone(),
                    topic: msg.topic.clone(),
                }))
            } else {
                Ok(queues)
            }
        })
        .collect()
}
