//! Freeing the hot directory once delivery is verified (`delete_source`),
//! against the real loopback sshd: files leave the hot directory only once
//! they are at the destination, whole; the removals autoclean makes are not
//! echoed to the destination; a user's own `rm` still is.
//!
//! These need the sshd harness (`bash scripts/test.sh` starts it); a bare
//! `cargo test` skips them (ignored), and without the harness they fail.

mod common;

use common::{content, tree, wait_until, Env, Remote};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(180);

/// The tutorial's watch and sender (sftp to the harness), with autoclean.
fn setup(env: &Env, remote: &Path, instances: u32, extra: &str) {
    env.write_config(
        "watch/to_hpfx.conf",
        &format!(
            "post_broker local:\npost_exchange xs_ac\npost_baseUrl file:{hot}\npath {hot}\nnodupe_ttl on\nreject .*\\.tmp$\naccept .*\n",
            hot = env.hot.display()
        ),
    );
    env.write_config(
        "sender/to_hpfx.conf",
        &format!(
            "broker local:\nexchange xs_ac\nsendTo sftp://hpfx\ninstances {instances}\naccelThreshold 1M\ninflight .tmp\n\
             nodupe_ttl on\nreject .*\\.tmp$\naccept .*\npost_baseDir {remote}\n\
             delete_source on\ncleanDirGrace 1s\n{extra}\n",
            remote = remote.display()
        ),
    );
}

fn hot_files(env: &Env) -> usize {
    walkdir::WalkDir::new(&env.hot)
        .min_depth(1)
        .into_iter()
        .flatten()
        .count()
}

#[test]
#[ignore = "needs the loopback sshd: bash scripts/test.sh"]
fn a_thousand_files_arrive_whole_and_leave_the_hot_directory_empty() {
    let remote = Remote::new("ac-bulk");
    let env = Env::new();
    setup(&env, &remote.0, 3, "verifyDelivery checksum\n");
    env.ok(&["start"]);
    let mut expected = BTreeMap::new();
    for i in 0..1000 {
        let rel = format!("a{}/b{}/f_{i:04}", i % 5, i % 3);
        let p = env.hot.join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let c = content(i, 200 + i);
        std::fs::write(&p, &c).unwrap();
        expected.insert(rel, c);
    }
    common::assert_tree(&env, &remote.0, &expected, LIMIT);
    // Files, then (after the grace) the emptied directories, but never the
    // hot directory itself.
    assert!(
        wait_until(LIMIT, || hot_files(&env) == 0),
        "{} entries left in the hot directory",
        hot_files(&env)
    );
    assert!(env.hot.is_dir());
    // None of autoclean's removals reached the destination.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        tree(&remote.0).len(),
        1000,
        "autoclean's removals were echoed to the destination"
    );
    assert!(env.logs().contains("not propagated"));
}

#[test]
#[ignore = "needs the loopback sshd: bash scripts/test.sh"]
fn a_file_rewritten_between_post_and_delivery_is_sent_new_and_not_removed_early() {
    let remote = Remote::new("ac-rewrite");
    let env = Env::new();
    setup(&env, &remote.0, 1, "");
    env.ok(&["start", "watch/to_hpfx"]);
    env.ok(&["declare", "sender/to_hpfx"]);
    let f = env.hot.join("report.csv");
    std::fs::write(&f, b"version 1\n").unwrap();
    let posted = |n: usize| env.logs().matches("relPath: report.csv").count() >= n;
    assert!(wait_until(LIMIT, || posted(1)), "{}", env.logs());
    // Rewritten (new size and mtime) before any sender has seen it.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&f, b"version 2, longer\n").unwrap();
    assert!(wait_until(LIMIT, || posted(2)), "{}", env.logs());
    env.ok(&["start", "sender/to_hpfx"]);
    let mut expected = BTreeMap::new();
    expected.insert("report.csv".to_string(), b"version 2, longer\n".to_vec());
    common::assert_tree(&env, &remote.0, &expected, LIMIT);
    assert!(
        wait_until(LIMIT, || !f.exists()),
        "the new version was never cleaned"
    );
    assert!(
        env.logs().contains("changed since it was announced"),
        "the first announcement removed the file early"
    );
}

#[test]
#[ignore = "needs the loopback sshd: bash scripts/test.sh"]
fn a_corrupted_remote_copy_is_caught_by_the_checksum_and_sent_again() {
    let remote = Remote::new("ac-corrupt");
    let env = Env::new();
    // An accelerator that damages its first copy (after copying), as a bad
    // link or disk might.
    let wrapper = env.root.path().join("bad-scp");
    let flag = env.root.path().join("corrupted-once");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n/usr/bin/scp \"$@\" || exit $?\nif [ ! -e {flag} ]; then\n  touch {flag}\n  \
             dst=$(eval echo \\${{$#}}); ssh $(printf '%s\\n' \"$@\" | grep -E '^(ControlPath|BatchMode)=' | sed 's/^/-o /') \
             -F \"$PITCHER_SSH_CONFIG\" hpfx \"printf X | dd of='${{dst#*:}}' bs=1 seek=10 conv=notrunc 2>/dev/null\"\nfi\n",
            flag = flag.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    setup(
        &env,
        &remote.0,
        1,
        &format!(
            "verifyDelivery checksum\naccelScpCommand {} %s %d\n",
            wrapper.display()
        ),
    );
    env.ok(&["start"]);
    let c = content(5, 3_000_000);
    std::fs::write(env.hot.join("big.bin"), &c).unwrap();
    let mut expected = BTreeMap::new();
    expected.insert("big.bin".to_string(), c);
    common::assert_tree(&env, &remote.0, &expected, LIMIT);
    assert!(
        flag.exists(),
        "the wrapper never ran: the large file did not go through accelScpCommand"
    );
    let logs = env.logs();
    assert!(
        logs.contains("verification of") && logs.contains("sha512 there is"),
        "the corruption was not caught:\n{logs}"
    );
    assert!(
        wait_until(LIMIT, || !env.hot.join("big.bin").exists()),
        "not cleaned after the good copy"
    );
}

#[test]
#[ignore = "needs the loopback sshd: bash scripts/test.sh"]
fn a_users_rm_still_propagates_while_autocleans_do_not() {
    let remote = Remote::new("ac-rm");
    let env = Env::new();
    setup(&env, &remote.0, 1, "");
    env.ok(&["start"]);
    std::fs::write(env.hot.join("kept-remotely"), b"x").unwrap();
    assert!(wait_until(LIMIT, || remote
        .0
        .join("kept-remotely")
        .exists()
        && !env.hot.join("kept-remotely").exists()));
    assert!(
        wait_until(LIMIT, || env.logs().contains("not propagated")),
        "no echo seen:\n{}",
        env.logs()
    );
    // With the sender stopped, a user writes and removes a file whose older
    // copy is at the destination: that removal must reach it.
    env.ok(&["stop", "sender/to_hpfx"]);
    std::fs::write(remote.0.join("users-file"), b"older copy").unwrap();
    std::fs::write(env.hot.join("users-file"), b"new").unwrap();
    assert!(wait_until(LIMIT, || env
        .logs()
        .contains("relPath: users-file size")));
    std::fs::remove_file(env.hot.join("users-file")).unwrap();
    assert!(wait_until(LIMIT, || env
        .logs()
        .matches("relPath: users-file")
        .count()
        >= 2));
    env.ok(&["start", "sender/to_hpfx"]);
    assert!(
        wait_until(LIMIT, || !remote.0.join("users-file").exists()),
        "the user's rm did not propagate:\n{}",
        env.logs()
    );
    assert!(
        remote.0.join("kept-remotely").exists(),
        "an autoclean removal reached the destination"
    );
}

#[test]
#[ignore = "needs the loopback sshd: bash scripts/test.sh"]
fn kill_9_during_cleanup_loses_nothing() {
    let remote = Remote::new("ac-kill");
    let env = Env::new();
    setup(&env, &remote.0, 2, "");
    env.ok(&["start"]);
    let mut expected = BTreeMap::new();
    for i in 0..400 {
        let rel = format!("k{}/f_{i:03}", i % 4);
        std::fs::create_dir_all(env.hot.join(format!("k{}", i % 4))).unwrap();
        let c = content(i, 2048);
        std::fs::write(env.hot.join(&rel), &c).unwrap();
        expected.insert(rel, c);
    }
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(400));
        for pid in env.instance_pids("sender/to_hpfx") {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    common::assert_tree(&env, &remote.0, &expected, LIMIT);
    assert!(
        wait_until(LIMIT, || hot_files(&env) == 0),
        "{} entries left in the hot directory",
        hot_files(&env)
    );
    // A removal announcement delivered again after a kill is still
    // autoclean's echo: nothing delivered is deleted later.
    std::thread::sleep(Duration::from_secs(2));
    common::assert_tree(&env, &remote.0, &expected, Duration::ZERO);
}
