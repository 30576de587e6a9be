//! `byteRateMax`: keeping an instance's data rate under a limit.
//!
//! The pace is kept between files, not inside one: before a file moves, its
//! transfer waits for its turn on a schedule where each file takes
//! `size / byteRateMax` seconds; after it moves, the schedule is corrected
//! with the bytes that really moved. So over any stretch of several files
//! the instance moves at most `byteRateMax` bytes per second (plus one
//! file); inside one file only scp (the accelerator) is held to the rate,
//! by its `-l` (see [`crate::transfer::accel::rate_limit`]). Files that
//! move concurrently share one schedule: the limit is per instance (one
//! instance is one process), as in sr3.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A schedule of transfers at a maximum byte rate.
#[derive(Debug)]
pub struct Pace {
    /// Bytes per second.
    rate: u64,
    /// When the next transfer may start.
    next_free: Mutex<Option<Instant>>,
}

impl Pace {
    /// A schedule at `rate` bytes per second (0 = no limit).
    pub fn new(rate: u64) -> Pace {
        Pace {
            rate,
            next_free: Mutex::new(None),
        }
    }

    fn cost(&self, bytes: u64) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.rate as f64)
    }

    /// Waits for the turn of a transfer of about `expected` bytes, and
    /// books its time on the schedule.
    pub async fn wait_turn(&self, expected: u64) {
        if self.rate == 0 {
            return;
        }
        let start = {
            let Ok(mut next) = self.next_free.lock() else {
                return;
            };
            let now = Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + self.cost(expected));
            start
        };
        tokio::time::sleep_until(start).await;
    }

    /// Corrects the schedule once a transfer booked for `expected` bytes
    /// really moved `moved`.
    pub fn settle(&self, expected: u64, moved: u64) {
        if self.rate == 0 || moved <= expected {
            return;
        }
        if let Ok(mut next) = self.next_free.lock() {
            let extra = self.cost(moved - expected);
            *next = Some(next.map_or(Instant::now(), |n| n) + extra);
        }
    }
}

/// The schedule of this process at `rate` bytes per second (one per rate;
/// an instance has one config, so in practice one).
pub fn for_rate(rate: u64) -> &'static Pace {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static PACES: OnceLock<Mutex<HashMap<u64, &'static Pace>>> = OnceLock::new();
    let map = PACES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = match map.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    map.entry(rate)
        .or_insert_with(|| Box::leak(Box::new(Pace::new(rate))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn five_files_at_a_fifth_of_the_rate_each_start_over_four_fifths_of_a_second() {
        let pace = Pace::new(10_000_000);
        let t0 = Instant::now();
        for _ in 0..5 {
            pace.wait_turn(2_000_000).await;
        }
        // The fifth file starts after four files' worth: 0.8 s.
        assert!(
            t0.elapsed() >= Duration::from_millis(800),
            "{:?}",
            t0.elapsed()
        );
    }

    #[tokio::test]
    async fn concurrent_transfers_share_one_schedule() {
        let pace = std::sync::Arc::new(Pace::new(10_000_000));
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let p = pace.clone();
            tasks.spawn(async move { p.wait_turn(2_000_000).await });
        }
        while tasks.join_next().await.is_some() {}
        assert!(
            t0.elapsed() >= Duration::from_millis(600),
            "{:?}",
            t0.elapsed()
        );
    }

    #[tokio::test]
    async fn bytes_beyond_the_booking_delay_the_next_transfer() {
        let pace = Pace::new(1_000_000);
        let t0 = Instant::now();
        pace.wait_turn(0).await;
        pace.settle(0, 300_000);
        pace.wait_turn(0).await;
        assert!(t0.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn no_limit_never_waits() {
        let pace = Pace::new(0);
        let t0 = Instant::now();
        for _ in 0..100 {
            pace.wait_turn(u64::MAX / 2).await;
        }
        assert!(t0.elapsed() < Duration::from_millis(100));
    }
}
