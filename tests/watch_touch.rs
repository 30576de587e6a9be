//! `touch` of a delivered file in the hot directory, against `nodupe_ttl`:
//! the real watch and a `sendTo file:` sender on the embedded broker.
//!
//! Within `nodupe_ttl` the watch drops the unchanged file and says so (one
//! INFO line, counted in `duplicates`); new content is sent at once; once
//! `nodupe_ttl` has passed a touch sends the file again.

mod common;

use common::{wait_until, Env};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

const LIMIT: Duration = Duration::from_secs(30);

fn watch_log(env: &Env) -> String {
    std::fs::read_to_string(env.state.join("log/watch_hot_01.log")).unwrap_or_default()
}

/// How many times the sender delivered `rel` (its `sent:` lines).
fn sent(env: &Env, rel: &str) -> usize {
    let dest = env.dest.join(rel);
    let to = format!(" to {} size:", dest.display());
    std::fs::read_to_string(env.state.join("log/sender_hot_01.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("sent: ") && l.contains(&to))
        .count()
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

fn touch(p: &Path) {
    let st = Command::new("touch").arg(p).status().expect("run touch");
    assert!(st.success(), "touch {} failed", p.display());
}

fn watch_duplicates(env: &Env) -> u64 {
    let m = std::fs::read_to_string(env.state.join("watch/hot/watch_hot_01.metrics.json"))
        .unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&m)
        .ok()
        .and_then(|v| v["duplicates"].as_u64())
        .unwrap_or(0)
}

/// Writes `rel` in the hot directory and waits until the sender has
/// delivered exactly that content, with its mtime (`timeCopy`).
fn drop_and_wait(env: &Env, rel: &str, body: &[u8]) {
    let hot = env.hot.join(rel);
    std::fs::write(&hot, body).unwrap();
    let dest = env.dest.join(rel);
    assert!(
        wait_until(LIMIT, || std::fs::read(&dest).ok().as_deref() == Some(body)
            && mtime(&dest) == mtime(&hot)),
        "{rel} was not delivered with its content\n{}",
        env.logs()
    );
}

#[test]
fn a_touch_within_nodupe_ttl_is_logged_as_a_duplicate_and_not_sent_but_new_content_is() {
    let env = Env::new();
    env.hot_directory(1, ""); // the tutorial's `nodupe_ttl on` (300 s), both sides
    env.ok(&["start"]);
    drop_and_wait(&env, "a.txt", b"first\n");
    let hot = env.hot.join("a.txt");
    let dest = env.dest.join("a.txt");
    let delivered_mtime = mtime(&dest);

    std::thread::sleep(Duration::from_millis(50));
    touch(&hot);
    assert_ne!(mtime(&hot), delivered_mtime, "touch changed nothing");
    let line = format!(
        "[INFO] duplicate ignored: {} (unchanged since announced ",
        hot.display()
    );
    assert!(
        wait_until(LIMIT, || watch_log(&env).contains(&line)),
        "no INFO duplicate line for the touched file\n{}",
        env.logs()
    );
    let log = watch_log(&env);
    let dup: Vec<&str> = log.lines().filter(|l| l.contains(&line)).collect();
    assert_eq!(dup.len(), 1, "one line per touch: {dup:?}");
    assert!(dup[0].ends_with(" ago; nodupe_ttl 300s)"), "{}", dup[0]);
    assert!(
        wait_until(LIMIT, || watch_duplicates(&env) == 1),
        "the watch's duplicates metric is {}",
        watch_duplicates(&env)
    );
    // Not sent again: give a resend time to happen, then look.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sent(&env, "a.txt"), 1, "sent again\n{}", env.logs());
    assert_eq!(
        mtime(&dest),
        delivered_mtime,
        "the destination was rewritten"
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("posted: ") && l.contains("relPath: a.txt"))
            .count(),
        1,
        "announced again\n{log}"
    );

    // New content within nodupe_ttl is announced and sent at once.
    drop_and_wait(&env, "a.txt", b"second, longer\n");
    assert_eq!(sent(&env, "a.txt"), 2, "{}", env.logs());
}

#[test]
fn a_touch_after_nodupe_ttl_sends_the_file_again() {
    let env = Env::new();
    env.hot_directory(1, "");
    for conf in ["watch/hot.conf", "sender/hot.conf"] {
        let p = env.config.join(conf);
        let body = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, body.replace("nodupe_ttl on", "nodupe_ttl 3")).unwrap();
    }
    env.ok(&["start"]);
    drop_and_wait(&env, "b.txt", b"same\n");
    let hot = env.hot.join("b.txt");
    // Within the 3 s: dropped, and said.
    touch(&hot);
    assert!(
        wait_until(LIMIT, || watch_log(&env).contains("duplicate ignored: ")),
        "{}",
        env.logs()
    );
    assert_eq!(sent(&env, "b.txt"), 1, "{}", env.logs());
    // After them: sent again, with the touched mtime.
    std::thread::sleep(Duration::from_millis(3500));
    touch(&hot);
    let touched = mtime(&hot);
    assert!(
        wait_until(LIMIT, || sent(&env, "b.txt") == 2
            && mtime(&env.dest.join("b.txt")) == touched),
        "not sent again after nodupe_ttl\n{}",
        env.logs()
    );
    assert_eq!(
        watch_log(&env).matches("duplicate ignored: ").count(),
        1,
        "{}",
        env.logs()
    );
}

#[test]
fn content_changed_back_within_nodupe_ttl_reaches_the_destination() {
    let env = Env::new();
    env.hot_directory(1, ""); // `nodupe_ttl on` (300 s) in the watch and the sender
    env.ok(&["start"]);
    let (a, b) = (b"version A\n".as_slice(), b"version B, longer\n".as_slice());
    // One step at a time: A → B → A → B → A, each delivered before the next.
    for (round, body) in [a, b, a, b, a].into_iter().enumerate() {
        // Distinct mtimes, so a rewrite is never mistaken for a touch.
        std::thread::sleep(Duration::from_millis(20));
        drop_and_wait(&env, "c.txt", body);
        assert_eq!(sent(&env, "c.txt"), round + 1, "{}", env.logs());
    }
    // And at once: whatever was announced last is what the hot file holds.
    let hot = env.hot.join("c.txt");
    for body in [b, a, b, a] {
        std::fs::write(&hot, body).unwrap();
    }
    std::fs::write(env.hot.join("sync"), b"sync").unwrap();
    assert!(
        wait_until(LIMIT, || std::fs::read(env.dest.join("sync"))
            .ok()
            .as_deref()
            == Some(b"sync".as_slice())),
        "{}",
        env.logs()
    );
    assert!(
        wait_until(LIMIT, || std::fs::read(env.dest.join("c.txt"))
            .ok()
            .as_deref()
            == Some(a)),
        "the destination does not hold the hot directory's content\n{}",
        env.logs()
    );
    assert!(
        !watch_log(&env).contains("back to the content announced"),
        "{}",
        env.logs()
    );
}
