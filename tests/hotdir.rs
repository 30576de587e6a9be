//! The hot directory on one machine: watch → embedded queue → sender →
//! destination directory, run as real daemons by the real binary.

mod common;

use common::{assert_delivered, content, tree, wait_until, Env, Frozen};
use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

#[test]
fn thousand_files_dropped_every_way_arrive_whole_without_tmp() {
    let env = Env::new();
    env.hot_directory(3, "");
    env.ok(&["start"]);
    let mut expected = BTreeMap::new();
    // Flat.
    for i in 0..300 {
        let c = content(i, 100 + i);
        std::fs::write(env.hot.join(format!("flat_{i:03}.dat")), &c).unwrap();
        expected.insert(format!("flat_{i:03}.dat"), c);
    }
    // Nested, created as they are written (mkdir -p then write at once).
    for i in 0..300 {
        let rel = format!("deep/a{}/b{}/c{}/n_{i:03}.dat", i % 3, i % 5, i % 7);
        let p = env.hot.join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let c = content(i + 1000, 50 + i % 200);
        std::fs::write(&p, &c).unwrap();
        expected.insert(rel, c);
    }
    // cp from outside.
    let outside = env.root.path().join("outside");
    std::fs::create_dir_all(outside.join("tree/sub")).unwrap();
    for i in 0..200 {
        let c = content(i + 2000, 300);
        let src = outside.join(format!("cp_{i:03}.dat"));
        std::fs::write(&src, &c).unwrap();
        std::fs::copy(&src, env.hot.join(format!("cp_{i:03}.dat"))).unwrap();
        expected.insert(format!("cp_{i:03}.dat"), c);
    }
    // mv of a whole tree from outside.
    for i in 0..100 {
        let c = content(i + 3000, 64);
        let sub = if i % 2 == 0 { "tree" } else { "tree/sub" };
        std::fs::write(outside.join(sub).join(format!("mv_{i:03}.dat")), &c).unwrap();
        let rel = format!("{}/mv_{i:03}.dat", sub.replacen("tree", "moved", 1));
        expected.insert(rel, c);
    }
    std::fs::rename(outside.join("tree"), env.hot.join("moved")).unwrap();
    // Written under a rejected name, then renamed to an accepted one.
    for i in 0..100 {
        let c = content(i + 4000, 2000);
        std::fs::write(env.hot.join(format!("r_{i:03}.csv.tmp")), &c).unwrap();
        std::fs::rename(
            env.hot.join(format!("r_{i:03}.csv.tmp")),
            env.hot.join(format!("r_{i:03}.csv")),
        )
        .unwrap();
        expected.insert(format!("r_{i:03}.csv"), c);
    }
    assert_eq!(expected.len(), 1000);
    assert_delivered(&env, &expected, LIMIT);
    let status = env.ok(&["status"]);
    assert!(
        status.contains("sender/hot") && status.contains("3/3"),
        "{status}"
    );
}

#[test]
fn files_written_while_stopped_arrive_after_start_and_nothing_is_lost_across_stop() {
    let env = Env::new();
    env.hot_directory(2, "");
    env.ok(&["start"]);
    let mut expected = BTreeMap::new();
    for i in 0..400 {
        let c = content(i, 500);
        std::fs::write(env.hot.join(format!("a_{i:03}")), &c).unwrap();
        expected.insert(format!("a_{i:03}"), c);
    }
    // Stop in the middle of the flow.
    std::thread::sleep(Duration::from_millis(300));
    env.ok(&["stop"]);
    assert!(
        env.instance_pids("sender/hot").is_empty(),
        "instances left after stop"
    );
    for i in 0..200 {
        let c = content(i + 9000, 700);
        std::fs::write(env.hot.join(format!("b_{i:03}")), &c).unwrap();
        expected.insert(format!("b_{i:03}"), c);
    }
    env.ok(&["start"]);
    assert_delivered(&env, &expected, LIMIT);
    // A second restart announces nothing again: the files are unchanged.
    env.ok(&["stop"]);
    let posted_before = posted(&env);
    env.ok(&["start"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        posted(&env),
        posted_before,
        "unchanged files were announced again after a restart"
    );
}

fn posted(env: &Env) -> usize {
    env.logs()
        .lines()
        .filter(|l| l.contains("posted: "))
        .count()
}

#[test]
fn kill_9_of_a_sender_instance_mid_run_loses_nothing() {
    let env = Env::new();
    env.hot_directory(2, "");
    env.ok(&["start"]);
    let mut expected = BTreeMap::new();
    for i in 0..600 {
        let c = content(i, 4096);
        std::fs::write(env.hot.join(format!("k_{i:03}")), &c).unwrap();
        expected.insert(format!("k_{i:03}"), c);
    }
    assert!(
        wait_until(Duration::from_secs(20), || tree(&env.dest).len() > 20),
        "nothing arrived: {}",
        env.logs()
    );
    let pids = env.instance_pids("sender/hot");
    assert_eq!(pids.len(), 2, "expected 2 sender instances");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_delivered(&env, &expected, LIMIT);
    // The supervisor brought the killed instance back.
    assert!(wait_until(Duration::from_secs(10), || env
        .instance_pids("sender/hot")
        .len()
        == 2));
    assert!(!env.instance_pids("sender/hot").contains(&pids[0]));
}

#[test]
fn deletes_renames_links_and_awkward_names_reach_the_destination() {
    let env = Env::new();
    env.hot_directory(1, "");
    env.ok(&["start"]);
    let names = [
        "with space.txt",
        "ünïcödé-文件.txt",
        "-leading-dash",
        "new\nline",
        "zero",
    ];
    for n in names {
        std::fs::write(
            env.hot.join(n),
            if n == "zero" {
                vec![]
            } else {
                n.as_bytes().to_vec()
            },
        )
        .unwrap();
    }
    std::fs::create_dir_all(env.hot.join("d/e")).unwrap();
    std::fs::write(env.hot.join("d/e/gone.txt"), b"bye").unwrap();
    std::fs::write(env.hot.join("old-name.txt"), b"renamed").unwrap();
    symlink("with space.txt", env.hot.join("link")).unwrap();
    assert!(wait_until(LIMIT, || env.dest.join("d/e/gone.txt").exists()
        && env.dest.join("old-name.txt").exists()));
    std::fs::rename(env.hot.join("old-name.txt"), env.hot.join("new-name.txt")).unwrap();
    std::fs::remove_file(env.hot.join("d/e/gone.txt")).unwrap();
    std::fs::remove_dir(env.hot.join("d/e")).unwrap();
    let mut expected: BTreeMap<String, Vec<u8>> = names
        .iter()
        .map(|n| {
            (
                n.to_string(),
                if *n == "zero" {
                    vec![]
                } else {
                    n.as_bytes().to_vec()
                },
            )
        })
        .collect();
    expected.insert("new-name.txt".into(), b"renamed".to_vec());
    // (tree() lists regular files only; the symlink is checked on its own.)
    assert_delivered(&env, &expected, LIMIT);
    assert_eq!(
        std::fs::read_link(env.dest.join("link")).unwrap().to_str(),
        Some("with space.txt")
    );
    assert!(
        wait_until(LIMIT, || !env.dest.join("d/e").exists()),
        "rmdir not applied"
    );
    assert!(env.dest.join("d").is_dir());
}

#[test]
fn unreadable_and_vanishing_files_are_skipped_with_one_log_line_each() {
    if nix::unistd::geteuid().is_root() {
        // root reads everything; make the file unreadable another way: a FIFO
        // is not a regular file and must be skipped, not block the sender.
    }
    let env = Env::new();
    env.hot_directory(1, "");
    env.ok(&["start"]);
    nix::unistd::mkfifo(&env.hot.join("a-fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::fs::write(env.hot.join("fine.txt"), b"fine").unwrap();
    let mut expected = BTreeMap::new();
    expected.insert("fine.txt".to_string(), b"fine".to_vec());
    assert_delivered(&env, &expected, LIMIT);
    assert!(!env.dest.join("a-fifo").exists());
}

#[test]
fn a_bad_config_line_fails_with_file_and_line() {
    let env = Env::new();
    env.write_config(
        "sender/bad.conf",
        "broker local:\nsendTo file:\nacelThreshold 1M\n",
    );
    let o = env.run(&["start", "sender/bad"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("sender/bad.conf:3"), "{err}");
    assert!(err.contains("accelThreshold"), "no suggestion: {err}");
}

#[test]
fn a_malformed_message_is_set_aside_and_the_flow_goes_on() {
    let env = Env::new();
    env.hot_directory(1, "");
    env.ok(&["start", "sender/hot"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use pitcher::broker::{Outgoing, Publisher};
        let db = env.state.join("local/broker.db");
        let mut p = pitcher::broker::local::open_publisher(&db).unwrap();
        p.publish(&[Outgoing::new("xs_it_hot", "v03", b"{not json".to_vec())])
            .await
            .unwrap();
    });
    env.ok(&["start"]);
    std::fs::write(env.hot.join("after.txt"), b"after").unwrap();
    let mut expected = BTreeMap::new();
    expected.insert("after.txt".to_string(), b"after".to_vec());
    assert_delivered(&env, &expected, LIMIT);
    let aside = env.state.join("sender/hot/malformed");
    assert!(wait_until(Duration::from_secs(10), || std::fs::read_dir(
        &aside
    )
    .map(|d| d.count() == 1)
    .unwrap_or(false)));
    assert!(env.logs().contains("malformed message set aside"));
}

#[test]
fn failed_sends_wait_in_the_retry_queue_across_a_restart_then_arrive() {
    let env = Env::new();
    env.hot_directory(1, "");
    // An immutable destination directory: creating files in it fails
    // (EPERM), even for root, until an operator thaws it.
    let frozen = Frozen::new(&env.dest.join("blocked"));
    env.ok(&["start"]);
    std::fs::create_dir_all(env.hot.join("blocked")).unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..20 {
        let c = content(i, 333);
        std::fs::write(env.hot.join(format!("blocked/r_{i:02}")), &c).unwrap();
        expected.insert(format!("blocked/r_{i:02}"), c);
    }
    assert!(
        wait_until(LIMIT, || env.logs().matches("queued for retry").count()
            >= 20),
        "sends did not fail into the retry queue: {}",
        env.logs()
    );
    let retry = |env: &Env| -> u64 {
        let out = env.ok(&["status", "--json", "sender/hot"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0]["retry"].as_u64().unwrap()
    };
    assert!(
        wait_until(Duration::from_secs(10), || retry(&env) >= 20),
        "status shows no retries"
    );
    env.ok(&["stop"]);
    assert!(retry(&env) >= 20, "retries did not survive the stop");
    frozen.thaw();
    env.ok(&["start"]);
    assert_delivered(&env, &expected, LIMIT);
    assert!(
        wait_until(Duration::from_secs(10), || retry(&env) == 0),
        "retry queue not drained"
    );
}

#[test]
fn the_sender_announces_what_it_delivered_with_post_baseurl_and_post_basedir() {
    use pitcher::broker::{Binding, Consumer, QueueSpec};
    let env = Env::new();
    let extra = format!(
        "post_broker local:\npost_exchange xs_it_out\npost_baseUrl sftp://pas037@hpfx/on_hpfx\npost_baseDir {}\n",
        env.dest.display()
    );
    env.hot_directory(1, &extra);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = env.state.join("local/broker.db");
    let mut c = pitcher::broker::local::open_consumer(&db, "q_test.out").unwrap();
    rt.block_on(c.declare_queue(&QueueSpec {
        queue_type: None,
        name: "q_test.out".into(),
        bindings: vec![Binding {
            exchange: "xs_it_out".into(),
            topic: "v03.#".into(),
        }],
        durable: true,
        expire: None,
        message_ttl: None,
        prefetch: 100,
    }))
    .unwrap();
    env.ok(&["start"]);
    std::fs::create_dir_all(env.hot.join("cap/sub dir")).unwrap();
    std::fs::write(env.hot.join("cap/sub dir/hello world.txt"), b"hello\n").unwrap();
    let mut got = Vec::new();
    let t0 = std::time::Instant::now();
    while t0.elapsed() < LIMIT
        && !got
            .iter()
            .any(|m: &pitcher::message::Message| m.rel_path.ends_with("hello world.txt"))
    {
        for d in rt.block_on(c.get(10, Duration::from_millis(500))).unwrap() {
            got.push(pitcher::message::Message::from_json(&d.body).unwrap());
            rt.block_on(c.ack(&[d.id])).unwrap();
        }
    }
    let m = got
        .iter()
        .find(|m| m.rel_path == "cap/sub dir/hello world.txt")
        .unwrap_or_else(|| panic!("no announcement: {got:?}"));
    assert_eq!(m.base_url, "sftp://pas037@hpfx/on_hpfx");
    assert_eq!(m.size, Some(6));
    assert_eq!(
        m.identity.as_ref().map(|i| i.method.as_str()),
        Some("sha512")
    );
    assert_eq!(m.topic("v03"), "v03.cap.sub dir");
}

#[test]
fn mode_and_mtime_are_kept_and_file_events_can_stop_deletes() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.hot_directory(1, "fileEvents -delete,rmdir\n");
    env.ok(&["start"]);
    let p = env.hot.join("kept.txt");
    std::fs::write(&p, b"keep me").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    let when = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(when)
        .unwrap();
    // Touching the mtime is not a close-after-write: rewrite to announce it.
    std::fs::write(env.hot.join("trigger"), b"x").unwrap();
    let d = env.dest.join("kept.txt");
    assert!(
        wait_until(LIMIT, || d.exists() && env.dest.join("trigger").exists()),
        "{}",
        env.logs()
    );
    let m = std::fs::metadata(&d).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o640);
    std::fs::remove_file(&p).unwrap();
    std::fs::write(env.hot.join("after-delete"), b"y").unwrap();
    assert!(wait_until(LIMIT, || env.dest.join("after-delete").exists()));
    assert!(
        d.exists(),
        "a delete propagated although fileEvents excludes it"
    );
    assert!(env.logs().contains("delete not in fileEvents"));
}

#[test]
fn mtime_is_copied_with_time_copy() {
    let env = Env::new();
    env.hot_directory(1, "");
    env.ok(&["start"]);
    let src = env.root.path().join("old.txt");
    std::fs::write(&src, b"old content").unwrap();
    let when = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    std::fs::File::options()
        .write(true)
        .open(&src)
        .unwrap()
        .set_modified(when)
        .unwrap();
    // Moved in: the file arrives complete with its old mtime.
    std::fs::rename(&src, env.hot.join("old.txt")).unwrap();
    let d = env.dest.join("old.txt");
    assert!(wait_until(LIMIT, || d.exists()), "{}", env.logs());
    assert_eq!(std::fs::metadata(&d).unwrap().modified().unwrap(), when);
}

#[test]
fn list_and_show_name_the_configs_and_hide_passwords() {
    let env = Env::new();
    env.hot_directory(1, "");
    env.write_config("credentials.conf", "amqp://bob:s3cret@broker.example/\n");
    env.write_config(
        "subscribe/in.conf",
        "broker amqp://bob@broker.example/\nexchange xs_bob\ndirectory /tmp/in\n",
    );
    let list = env.ok(&["list"]);
    for c in ["sender/hot", "watch/hot", "subscribe/in"] {
        assert!(list.contains(c), "{list}");
    }
    let show = env.ok(&["show", "subscribe/in"]);
    assert!(show.contains("broker.example"), "{show}");
    assert!(!show.contains("s3cret"), "password shown: {show}");
}

#[test]
fn post_announces_named_files_by_absolute_path_for_a_sender() {
    // The tutorial's "Do I need to copy files into a hot directory?".
    let env = Env::new();
    env.write_config(
        "post/queue_for_hpfx.conf",
        "post_broker local:\npost_exchange xs_it_queue\npost_baseUrl file:\nnodupe_ttl on\nreject .*\\.tmp$\naccept .*\n",
    );
    env.write_config(
        "sender/queue_for_hpfx.conf",
        &format!(
            "broker local:\nexchange xs_it_queue\nsendTo file:\ndirectory {}\ninflight .tmp\nreject .*\\.tmp$\naccept .*\n",
            env.dest.display()
        ),
    );
    env.ok(&["start", "sender/queue_for_hpfx"]);
    let elsewhere = env.root.path().join("elsewhere/sub");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("1stfile"), b"lala\n").unwrap();
    std::fs::write(elsewhere.join("2nd.tmp"), b"rejected\n").unwrap();
    let out = env.ok(&[
        "post",
        "-c",
        "queue_for_hpfx",
        "-p",
        elsewhere.to_str().unwrap(),
    ]);
    assert!(out.contains("posted 1 "), "{out}");
    let rel = elsewhere
        .join("1stfile")
        .to_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let mut expected = BTreeMap::new();
    expected.insert(rel, b"lala\n".to_vec());
    assert_delivered(&env, &expected, LIMIT);
}

#[test]
fn a_subscriber_pulls_what_the_sender_announced_onward() {
    let env = Env::new();
    let dest2 = env.root.path().join("second-cluster");
    let extra = format!(
        "post_broker local:\npost_exchange xs_it_onward\npost_baseUrl file:{d}\npost_baseDir {d}\n",
        d = env.dest.display()
    );
    env.hot_directory(2, &extra);
    env.write_config(
        "subscribe/onward.conf",
        &format!("broker local:\nexchange xs_it_onward\ndirectory {}\nmirror on\ninflight .tmp\naccept .*\n", dest2.display()),
    );
    env.ok(&["start"]);
    let mut expected = BTreeMap::new();
    for i in 0..50 {
        let rel = format!("s{}/f_{i:02}", i % 3);
        std::fs::create_dir_all(env.hot.join(format!("s{}", i % 3))).unwrap();
        let c = content(i, 1000 + i);
        std::fs::write(env.hot.join(&rel), &c).unwrap();
        expected.insert(rel, c);
    }
    assert_delivered(&env, &expected, LIMIT);
    let ok = wait_until(LIMIT, || tree(&dest2) == expected);
    assert!(
        ok,
        "the subscriber got {} of {}: {}",
        tree(&dest2).len(),
        expected.len(),
        env.logs()
    );
    // A removal flows onward too.
    std::fs::remove_file(env.hot.join("s0/f_00")).unwrap();
    assert!(
        wait_until(LIMIT, || !dest2.join("s0/f_00").exists()),
        "removal not applied onward"
    );
}
