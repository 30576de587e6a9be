//! Things that leave a path of the hot directory and come back: the
//! destination must end up matching the hot directory whatever order the
//! events arrive in. The real watch and a `sendTo file:` sender on the
//! embedded broker, with `nodupe_ttl` on (the tutorial's) and off.
//!
//! Each scenario runs many times in a row, to catch races between the
//! events of its two halves. After each round a marker file is dropped and
//! waited for: the watch announces in order and the one sender instance
//! applies in order, so once the marker is at the destination everything
//! announced before it has been applied, and the two trees are compared.

mod common;

use common::{wait_until, Env};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ROUNDS: usize = 20;
const LIMIT: Duration = Duration::from_secs(30);

/// Every directory (`name/`) and regular file (with its content) under
/// `dir`.
fn listing(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let rel = e
                .path()
                .strip_prefix(dir)
                .ok()?
                .to_string_lossy()
                .into_owned();
            if e.file_type().is_dir() {
                Some((format!("{rel}/"), None))
            } else if e.file_type().is_file() {
                Some((rel, Some(std::fs::read(e.path()).unwrap_or_default())))
            } else {
                None
            }
        })
        .collect()
}

/// A started watch and sender, `nodupe_ttl` on or off in both, and a
/// directory outside the hot one (same file system) to move things to.
fn start(nodupe: bool) -> (Env, PathBuf) {
    let env = Env::new();
    env.hot_directory(1, "");
    if !nodupe {
        for conf in ["watch/hot.conf", "sender/hot.conf"] {
            let p = env.config.join(conf);
            let body = std::fs::read_to_string(&p).unwrap();
            std::fs::write(&p, body.replace("nodupe_ttl on", "nodupe_ttl off")).unwrap();
        }
    }
    env.ok(&["start"]);
    let elsewhere = env.root.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    (env, elsewhere)
}

/// Drops a marker, waits for it at the destination, then checks that the
/// destination equals the hot directory.
fn assert_in_step(env: &Env, round: &str) {
    let marker = format!("sync-{round}");
    std::fs::write(env.hot.join(&marker), round.as_bytes()).unwrap();
    assert!(
        wait_until(LIMIT, || std::fs::read(env.dest.join(&marker))
            .ok()
            .as_deref()
            == Some(round.as_bytes())),
        "{round}: the marker never arrived\n{}",
        env.logs()
    );
    // Everything before the marker is applied; allow a moment for the
    // directory listing to settle all the same.
    let same = wait_until(Duration::from_secs(3), || {
        listing(&env.hot) == listing(&env.dest)
    });
    if !same {
        let (hot, dest) = (listing(&env.hot), listing(&env.dest));
        let missing: Vec<_> = hot.keys().filter(|k| !dest.contains_key(*k)).collect();
        let extra: Vec<_> = dest.keys().filter(|k| !hot.contains_key(*k)).collect();
        let differ: Vec<_> = hot
            .iter()
            .filter(|(k, v)| dest.get(*k).is_some_and(|d| d != *v))
            .map(|(k, _)| k)
            .collect();
        panic!(
            "{round}: the destination differs from the hot directory: missing {missing:?}, \
             extra {extra:?}, different {differ:?}\n{}",
            env.logs()
        );
    }
}

/// Waits until `rel` is at the destination with `body`.
fn wait_delivered(env: &Env, rel: &str, body: &[u8]) {
    assert!(
        wait_until(LIMIT, || std::fs::read(env.dest.join(rel)).ok().as_deref()
            == Some(body)),
        "{rel} was not delivered\n{}",
        env.logs()
    );
}

fn move_file_out_and_back(nodupe: bool) {
    let (env, elsewhere) = start(nodupe);
    let (hot, away) = (env.hot.join("x"), elsewhere.join("x"));
    std::fs::write(&hot, b"moved out and back\n").unwrap();
    wait_delivered(&env, "x", b"moved out and back\n");
    for round in 0..ROUNDS {
        std::fs::rename(&hot, &away).unwrap();
        std::fs::rename(&away, &hot).unwrap();
        assert_in_step(&env, &format!("file-{round}"));
    }
}

#[test]
fn a_file_moved_out_and_back_in_stays_at_the_destination() {
    move_file_out_and_back(true);
}

#[test]
fn a_file_moved_out_and_back_in_stays_at_the_destination_without_nodupe() {
    move_file_out_and_back(false);
}

fn move_dir_out_and_back(nodupe: bool) {
    let (env, elsewhere) = start(nodupe);
    let (hot, away) = (env.hot.join("d"), elsewhere.join("d"));
    std::fs::create_dir_all(hot.join("sub")).unwrap();
    std::fs::write(hot.join("f"), b"f\n").unwrap();
    std::fs::write(hot.join("sub/g"), b"g\n").unwrap();
    wait_delivered(&env, "d/f", b"f\n");
    wait_delivered(&env, "d/sub/g", b"g\n");
    for round in 0..ROUNDS {
        std::fs::rename(&hot, &away).unwrap();
        std::fs::rename(&away, &hot).unwrap();
        // Still watched once back: a file written in it now arrives too.
        std::fs::write(hot.join(format!("sub/new-{round}")), b"new\n").unwrap();
        assert_in_step(&env, &format!("dir-{round}"));
    }
}

#[test]
fn a_directory_moved_out_and_back_in_stays_at_the_destination_and_watched() {
    move_dir_out_and_back(true);
}

#[test]
fn a_directory_moved_out_and_back_in_stays_at_the_destination_without_nodupe() {
    move_dir_out_and_back(false);
}

fn delete_and_recreate(nodupe: bool) {
    let (env, _) = start(nodupe);
    let hot = env.hot.join("y");
    let body = b"the same content every time\n";
    std::fs::write(&hot, body).unwrap();
    wait_delivered(&env, "y", body);
    for round in 0..ROUNDS {
        std::fs::remove_file(&hot).unwrap();
        std::fs::write(&hot, body).unwrap();
        assert_in_step(&env, &format!("recreate-{round}"));
    }
}

#[test]
fn a_file_deleted_and_recreated_with_the_same_content_stays_at_the_destination() {
    delete_and_recreate(true);
}

#[test]
fn a_file_deleted_and_recreated_with_the_same_content_stays_without_nodupe() {
    delete_and_recreate(false);
}

fn rename_away_and_back(nodupe: bool) {
    let (env, _) = start(nodupe);
    let (a, b) = (env.hot.join("a"), env.hot.join("b"));
    let body = b"renamed away and back\n";
    std::fs::write(&a, body).unwrap();
    wait_delivered(&env, "a", body);
    for round in 0..ROUNDS {
        // At once.
        std::fs::rename(&a, &b).unwrap();
        std::fs::rename(&b, &a).unwrap();
        assert_in_step(&env, &format!("rename-{round}"));
        // And one step at a time: each name must come back every round.
        std::fs::rename(&a, &b).unwrap();
        assert_in_step(&env, &format!("rename-{round}-b"));
        std::fs::rename(&b, &a).unwrap();
        assert_in_step(&env, &format!("rename-{round}-a"));
    }
}

#[test]
fn a_file_renamed_away_and_back_stays_at_the_destination() {
    rename_away_and_back(true);
}

#[test]
fn a_file_renamed_away_and_back_stays_at_the_destination_without_nodupe() {
    rename_away_and_back(false);
}
