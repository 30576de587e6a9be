//! Per-instance counters, written to the state directory for `status` and
//! the supervisor's `/metrics`.
//!
//! Each instance rewrites its own small JSON file (atomically) every second,
//! idle or not (so a file that stops changing means a hung instance), and on
//! exit, so `pitcher status` answers from disk without asking
//! any process or broker. Counters count from the instance's start. Beside
//! them the file keeps an earlier [`Sample`] of the counters, 5 to 10
//! seconds old, so a reader derives rates (messages/s, bytes/s) from one
//! read: `(now − sample) / (updated − sample.at)`.
//!
//! [`Metrics::tick`] is called before each write: it refreshes `updated`,
//! rolls the rate sample, copies the log's error and warning counts, and
//! returns the housekeeping summary line (counts since the last one) once
//! every [`SUMMARY_INTERVAL`].

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the lag histogram's buckets; the last bucket,
/// `+Inf`, is implicit (it is the observation count).
pub const LAG_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Rates are taken over at least this many seconds (and at most twice it).
pub const RATE_WINDOW: f64 = 5.0;

/// How often an instance logs its housekeeping summary line, seconds.
pub const SUMMARY_INTERVAL: f64 = 300.0;

/// ERROR and WARN log lines written by this process so far (the log
/// formatter counts them; [`Metrics::tick`] copies them into the file).
static ERRORS_LOGGED: AtomicU64 = AtomicU64::new(0);
static WARNINGS_LOGGED: AtomicU64 = AtomicU64::new(0);

/// Counts one ERROR log line of this process.
pub fn count_error_logged() {
    ERRORS_LOGGED.fetch_add(1, Ordering::Relaxed);
}

/// Counts one WARN log line of this process.
pub fn count_warning_logged() {
    WARNINGS_LOGGED.fetch_add(1, Ordering::Relaxed);
}

/// The counters a rate is derived from, at one moment.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// When (epoch seconds).
    pub at: f64,
    pub received: u64,
    pub rejected: u64,
    pub files_done: u64,
    pub bytes_done: u64,
    pub posted: u64,
    pub failed: u64,
}

/// What one instance has done since it started.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
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
    /// How many lags were observed (the histogram's count).
    pub lag_count: u64,
    /// Observations per [`LAG_BUCKETS`] bound, not cumulative: entry `i`
    /// counts lags in `(LAG_BUCKETS[i-1], LAG_BUCKETS[i]]`; lags above the
    /// last bound are `lag_count − sum`.
    pub lag_buckets: Vec<u64>,
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
    /// ERROR lines this instance logged.
    pub errors: u64,
    /// WARN lines this instance logged.
    pub warnings: u64,
    /// The counters 5–10 s before `updated`, to derive rates.
    pub sample: Sample,
    /// A newer sample that becomes `sample` once it is a window old.
    pub pending_sample: Sample,
    /// The counters at the last summary line (not written to the file).
    #[serde(skip)]
    pub summarized: Option<Sample>,
}

/// Rates over the last few seconds, per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rates {
    pub messages: f64,
    pub files: f64,
    pub bytes: f64,
    pub posted: f64,
    pub rejected: f64,
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

    /// The counters now, stamped `at`.
    pub fn snapshot(&self, at: f64) -> Sample {
        Sample {
            at,
            received: self.received,
            rejected: self.rejected,
            files_done: self.files_done,
            bytes_done: self.bytes_done,
            posted: self.posted,
            failed: self.failed,
        }
    }

    /// Records one lag observation (seconds) in the sum, maximum and
    /// histogram.
    pub fn observe_lag(&mut self, lag: f64) {
        let lag = lag.max(0.0);
        self.lag_total += lag;
        self.lag_max = self.lag_max.max(lag);
        self.lag_count += 1;
        if self.lag_buckets.len() != LAG_BUCKETS.len() {
            self.lag_buckets.resize(LAG_BUCKETS.len(), 0);
        }
        if let Some(i) = LAG_BUCKETS.iter().position(|b| lag <= *b) {
            self.lag_buckets[i] += 1;
        }
    }

    /// The histogram as Prometheus wants it: cumulative counts per bound,
    /// ending with `+Inf` (= `lag_count`).
    pub fn lag_cumulative(&self) -> Vec<u64> {
        let mut acc = 0;
        let mut out: Vec<u64> = (0..LAG_BUCKETS.len())
            .map(|i| {
                acc += self.lag_buckets.get(i).copied().unwrap_or(0);
                acc
            })
            .collect();
        out.push(self.lag_count.max(acc));
        out
    }

    /// Prepares the counters to be written at `now`: stamps them, rolls the
    /// rate samples, copies this process's log counts, and returns the
    /// summary line when one is due.
    pub fn tick(&mut self, now: f64) -> Option<String> {
        self.errors = ERRORS_LOGGED.load(Ordering::Relaxed);
        self.warnings = WARNINGS_LOGGED.load(Ordering::Relaxed);
        self.tick_at(now, SUMMARY_INTERVAL)
    }

    /// [`Metrics::tick`] without the process-wide log counts, with the
    /// summary interval given (for tests).
    pub fn tick_at(&mut self, now: f64, summary_every: f64) -> Option<String> {
        self.updated = now;
        if self.sample.at == 0.0 {
            // The instance's start: every counter was zero then.
            let start = self.started.min(now);
            self.sample = Sample {
                at: start,
                ..Sample::default()
            };
            self.pending_sample = self.sample;
        }
        if now - self.pending_sample.at >= RATE_WINDOW {
            self.sample = self.pending_sample;
            self.pending_sample = self.snapshot(now);
        }
        let base = *self.summarized.get_or_insert(Sample {
            at: self.started.min(now),
            ..Sample::default()
        });
        if now - base.at < summary_every {
            return None;
        }
        let now_s = self.snapshot(now);
        self.summarized = Some(now_s);
        Some(format!(
            "housekeeping: in the last {:.0}s: received {}, rejected {}, files {} ({} bytes), posted {}, failed {}; retry queue {}{}",
            now - base.at,
            now_s.received - base.received.min(now_s.received),
            now_s.rejected - base.rejected.min(now_s.rejected),
            now_s.files_done - base.files_done.min(now_s.files_done),
            now_s.bytes_done - base.bytes_done.min(now_s.bytes_done),
            now_s.posted - base.posted.min(now_s.posted),
            now_s.failed - base.failed.min(now_s.failed),
            self.retry,
            self.queued.map(|q| format!(", queued {q}")).unwrap_or_default()
        ))
    }

    /// Rates between the stored sample and the current counters; zero when
    /// the file is stale (its writer stopped `stale_after` seconds before
    /// `now`) or has no interval yet.
    pub fn rates(&self, now: f64, stale_after: f64) -> Rates {
        let dt = self.updated - self.sample.at;
        if dt <= 0.0 || now - self.updated > stale_after {
            return Rates::default();
        }
        let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / dt;
        Rates {
            messages: per(self.received, self.sample.received),
            files: per(self.files_done, self.sample.files_done),
            bytes: per(self.bytes_done, self.sample.bytes_done),
            posted: per(self.posted, self.sample.posted),
            rejected: per(self.rejected, self.sample.rejected),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_histogram_counts_each_observation_in_its_bucket_and_cumulates() {
        let mut m = Metrics::default();
        for lag in [0.05, 0.3, 0.3, 4.0, 1000.0] {
            m.observe_lag(lag);
        }
        assert_eq!(m.lag_count, 5);
        assert_eq!(m.lag_max, 1000.0);
        let c = m.lag_cumulative();
        assert_eq!(c.len(), LAG_BUCKETS.len() + 1);
        assert_eq!(c[0], 1, "≤0.1");
        assert_eq!(c[2], 3, "≤0.5");
        assert_eq!(c[5], 4, "≤5");
        assert_eq!(c[9], 4, "≤300");
        assert_eq!(c[10], 5, "+Inf");
    }

    #[test]
    fn rates_come_from_the_sample_a_window_old() {
        let mut m = Metrics {
            started: 100.0,
            ..Metrics::default()
        };
        m.tick_at(100.0, 1e9);
        m.received = 50;
        m.bytes_done = 5_000;
        m.tick_at(105.0, 1e9); // the start sample is now 5 s old
        assert_eq!(m.rates(105.0, 60.0).messages, 10.0);
        assert_eq!(m.rates(105.0, 60.0).bytes, 1000.0);
        m.received = 100;
        m.tick_at(110.0, 1e9); // sample rolls to t=105 (50 received)
        assert_eq!(m.sample.at, 105.0);
        assert_eq!(m.rates(110.0, 60.0).messages, 10.0);
        assert_eq!(m.rates(500.0, 60.0), Rates::default(), "stale file");
    }

    #[test]
    fn summary_line_comes_once_per_interval_with_counts_since_the_last() {
        let mut m = Metrics {
            started: 0.0,
            ..Metrics::default()
        };
        assert_eq!(m.tick_at(1.0, 300.0), None);
        m.files_done = 7;
        let line = m.tick_at(301.0, 300.0).expect("due");
        assert!(line.contains("files 7"), "{line}");
        assert_eq!(m.tick_at(302.0, 300.0), None);
        m.files_done = 10;
        let line = m.tick_at(602.0, 300.0).expect("due again");
        assert!(line.contains("files 3"), "{line}");
    }

    #[test]
    fn files_written_before_the_new_fields_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        std::fs::write(&p, br#"{"pid":1,"received":4,"retry":2}"#).unwrap();
        let m = Metrics::load(&p).unwrap();
        assert_eq!((m.received, m.retry, m.lag_count), (4, 2, 0));
    }
}
