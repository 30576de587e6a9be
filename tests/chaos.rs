//! Chaos: files flow watch → local: → sender → file: while every kind of
//! pitcher process is killed -9 at random moments and the destination
//! turns unwritable or full; afterwards every file must be there, whole,
//! with no `.tmp` left and the retry queues empty.
//!
//! The short run is a normal test; the long one (10,000 files, many
//! faults) is `scripts/chaos/run.sh --long`. The figures are printed
//! (`--nocapture`).

mod chaos_support;
mod common;

use chaos_support::{run, Plan};

#[test]
fn chaos_short_nothing_is_lost_while_processes_die_and_the_destination_fails() {
    let plan = Plan::new(500, 10, 7, 90);
    let s = run(&plan);
    println!("{s}");
    assert_eq!((s.lost, s.corrupt, s.tmp_left), (0, 0, 0), "{s}");
    assert_eq!(s.retry_left, 0, "{s}");
    assert!(
        s.faults.iter().any(|f| f.contains("kill-9-supervisor")),
        "{s}"
    );
    assert!(
        s.sanity_actions
            .iter()
            .any(|a| a.contains("supervisor was not running")),
        "the cron'd sanity never brought the supervisor back: {s}"
    );
}

/// `scripts/chaos/run.sh --long`: 10,000 files, every fault many times.
#[test]
#[ignore = "long: run with scripts/chaos/run.sh --long"]
fn chaos_long() {
    let plan = Plan::new(10_000, 60, 40, 600);
    let s = run(&plan);
    println!("{s}");
    assert_eq!((s.lost, s.corrupt, s.tmp_left), (0, 0, 0), "{s}");
    assert_eq!(s.retry_left, 0, "{s}");
}
