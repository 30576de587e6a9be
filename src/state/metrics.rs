//! Per-instance counters, written to the state directory for `status`.
//!
//! Each instance rewrites its own small JSON file (atomically) every second,
//! idle or not, and on exit (so a file that stops changing means a hung
//! instance), so `pitcher status` answers from disk without asking
//! any process or broker.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// What one instance has done since it started.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    /// Process id.
    pub pid: u32,
    /// When the instance started (epoch seconds).
    pub started: f64,
    /// When this file was written (epoch seconds).
    pub updated: f64,
    /// Last time a message was received or a file noticed (epoch seconds).
    pub last_message: f64,
    /// Last time a file was transferred or posted (epoch seconds).
    pub last_transfer: f64,
    /// Messages received (or file events gathered).
    pub received: u64,
    /// Messages rejected by masks, age or size.
    pub rejected: u64,
    /// Malformed messages set aside.
    pub malformed: u64,
    /// Duplicates suppressed by nodupe.
    pub duplicates: u64,
    /// Files (and file operations) done.
    pub files_done: u64,
    /// Bytes transferred.
    pub bytes_done: u64,
    /// Work that failed and went to the retry queue.
    pub failed: u64,
    /// Messages published.
    pub posted: u64,
    /// Sum and maximum of the lag (now − pubTime at accept), seconds.
    pub lag_total: f64,
    pub lag_max: f64,
    /// Items in this instance's retry queue.
    pub retry: u64,
    /// Messages waiting in the consumed queue, when known.
    pub queued: Option<u64>,
    /// Whether the broker connection is up.
    pub connected: bool,
    /// True while the instance is passive because none of its `vip`
    /// addresses is on this host (`status` shows `wVip`).
    #[serde(default)]
    pub waiting_for_vip: bool,
}

impl Metrics {
    /// Writes the counters to `path` atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let body = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        super::write_atomic(path, &body)
    }

    /// Reads counters from `path`, if it holds any.
    pub fn load(path: &Path) -> Option<Metrics> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }
}
