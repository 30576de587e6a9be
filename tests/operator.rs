//! The operator's view, run with the real binary: `status` against a known
//! load, `/metrics` over HTTP, log rotation and `log`, the config tools
//! (edit, remove, enable, disable), completions, strays and byteRateMax.

mod common;

use common::{assert_delivered, content, wait_until, Env, Frozen};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read, Write};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

/// A post config and a sender reading what it posts (`sender/q`), on the
/// embedded broker; the sender writes into `env.dest`.
fn queue_pair(env: &Env, extra_sender: &str) {
    env.write_config(
        "post/q.conf",
        "post_broker local:\npost_exchange xs_op_q\npost_baseUrl file:\naccept .*\n",
    );
    env.write_config(
        "sender/q.conf",
        &format!(
            "broker local:\nexchange xs_op_q\nsendTo file:\ndirectory {}\ninflight .tmp\naccept .*\n{extra_sender}\n",
            env.dest.display()
        ),
    );
}

/// `status --json` of one config, as JSON.
fn status_of(env: &Env, config: &str) -> serde_json::Value {
    let out = env.ok(&["status", "--json", config]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    v[0].clone()
}

/// Writes `n` files under `dir` and posts them with `post/q`.
fn post_files(env: &Env, dir: &std::path::Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        std::fs::write(dir.join(format!("f_{i:02}")), content(i, 100)).unwrap();
    }
    let out = env.ok(&["post", "-c", "q", "-p", dir.to_str().unwrap()]);
    assert!(out.contains(&format!("posted {n} ")), "{out}");
}

#[test]
fn status_shows_the_exact_queue_depth_and_retry_count() {
    let env = Env::new();
    queue_pair(&env, "");
    env.ok(&["declare", "sender/q"]);
    let src = env.root.path().join("src");
    post_files(&env, &src.join("blocked"), 7);
    let row = status_of(&env, "sender/q");
    assert_eq!(row["queued"], 7, "{row}");
    assert_eq!(row["retry"], 0, "{row}");
    assert_eq!(row["state"], "stop", "{row}");
    let text = env.ok(&["status", "sender/q"]);
    assert!(text.contains("Que") && text.contains("%rej"), "{text}");

    // An immutable destination directory: every send fails (EPERM) into
    // the retry queue.
    let blocked = env.dest.join(
        src.join("blocked")
            .to_str()
            .unwrap()
            .trim_start_matches('/'),
    );
    let _frozen = Frozen::new(&blocked);
    env.ok(&["start", "sender/q"]);
    let settled = wait_until(LIMIT, || {
        let r = status_of(&env, "sender/q");
        r["retry"] == 7 && r["queued"] == 0
    });
    assert!(settled, "{}\n{}", status_of(&env, "sender/q"), env.logs());
    env.ok(&["stop"]);
    let row = status_of(&env, "sender/q");
    assert_eq!(
        (row["retry"].as_u64(), row["queued"].as_u64()),
        (Some(7), Some(0))
    );
    assert_eq!(row["failed"], 7, "{row}");
    assert_eq!(row["received"], 7, "{row}");
}

#[test]
fn status_of_a_hundred_configs_answers_within_a_second() {
    let env = Env::new();
    for i in 0..100 {
        env.write_config(
            &format!("sender/s{i:03}.conf"),
            "broker local:\nexchange xs_op_many\nsendTo file:\ndirectory /tmp/x\n",
        );
    }
    let t0 = Instant::now();
    let out = env.ok(&["status"]);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert!(
        out.contains("sender/s099") && out.contains("0 / 100"),
        "{out}"
    );
}

/// `GET path` on `addr`: (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// Exposition lines `name{labels} value` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_supervisor_serves_prometheus_metrics_over_http() {
    let env = Env::new();
    env.hot_directory(2, "");
    let addr = format!("127.0.0.1:{}", free_port());
    env.ok(&["start", "--metrics", &addr]);
    let mut expected = BTreeMap::new();
    for i in 0..12 {
        let c = content(i, 1000);
        std::fs::write(env.hot.join(format!("m_{i:02}")), &c).unwrap();
        expected.insert(format!("m_{i:02}"), c);
    }
    assert_delivered(&env, &expected, LIMIT);
    let key = |s: &str| s.to_string();
    let mut last = HashMap::new();
    let ok = wait_until(Duration::from_secs(10), || {
        let (status, body) = http_get(&addr, "/metrics");
        assert!(status.contains("200"), "{status}");
        last = samples(&body);
        last.get(&key(
            r#"pitcher_files_total{config="sender/hot",direction="out"}"#,
        )) == Some(&12.0)
    });
    assert!(ok, "{last:?}");
    let (_, body) = http_get(&addr, "/metrics");
    assert!(
        body.contains("# TYPE pitcher_files_total counter"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE pitcher_lag_seconds histogram"),
        "{body}"
    );
    let s = samples(&body);
    assert_eq!(s[&key(r#"pitcher_instances_up{config="sender/hot"}"#)], 2.0);
    assert_eq!(
        s[&key(r#"pitcher_instances_expected{config="watch/hot"}"#)],
        1.0
    );
    assert_eq!(
        s[&key(r#"pitcher_bytes_total{config="sender/hot",direction="out"}"#)],
        12_000.0
    );
    assert_eq!(
        s[&key(r#"pitcher_messages_posted_total{config="watch/hot"}"#)],
        12.0
    );
    assert_eq!(
        s[&key(r#"pitcher_lag_seconds_count{config="sender/hot"}"#)],
        12.0
    );
    assert_eq!(
        s[&key(r#"pitcher_lag_seconds_bucket{config="sender/hot",le="+Inf"}"#)],
        12.0
    );
    assert_eq!(
        s[&key(r#"pitcher_retry_queue_messages{config="sender/hot"}"#)],
        0.0
    );
    assert_eq!(
        s[&key(r#"pitcher_queue_messages{config="sender/hot"}"#)],
        0.0
    );
    assert!(http_get(&addr, "/nothing").0.contains("404"));
}

#[test]
fn instance_logs_rotate_and_only_the_newest_are_kept() {
    let env = Env::new();
    env.hot_directory(1, "logRotateInterval 1\nlogRotateCount 2\n");
    env.ok(&["start"]);
    let log_dir = env.state.join("log");
    let rotated = || -> Vec<String> {
        std::fs::read_dir(&log_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("sender_hot_01.log."))
            .collect()
    };
    // Each delivery logs a line; a line after the period rotates the file.
    let mut i = 0;
    let ok = wait_until(LIMIT, || {
        i += 1;
        std::fs::write(env.hot.join(format!("r_{i:03}")), b"x").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        i > 15 && rotated().len() >= 2
    });
    assert!(ok, "rotated: {:?}\n{}", rotated(), env.logs());
    assert!(
        rotated().len() <= 2,
        "more kept than logRotateCount: {:?}",
        rotated()
    );
    env.ok(&["stop"]);
    let current = std::fs::read_to_string(log_dir.join("sender_hot_01.log")).unwrap();
    assert!(
        !current.contains("r_001"),
        "the first lines were rotated out"
    );
    let tail = env.ok(&["log", "sender/hot", "--no-follow", "--lines", "1"]);
    assert_eq!(
        tail.lines().collect::<Vec<_>>(),
        current.lines().last().into_iter().collect::<Vec<_>>()
    );
}

#[test]
fn log_follows_an_instance_log_as_it_grows() {
    let env = Env::new();
    env.hot_directory(1, "");
    env.ok(&["start"]);
    let mut child = env
        .cmd()
        .args(["log", "sender/hot", "--lines", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(env.hot.join("followed.txt"), b"x").unwrap();
    let t0 = Instant::now();
    let mut seen = false;
    while t0.elapsed() < LIMIT && !seen {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen = l.contains("followed.txt");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen, "log did not follow: {}", env.logs());
}

#[test]
fn a_disabled_config_does_not_start_and_running_ones_cannot_be_disabled() {
    let env = Env::new();
    queue_pair(&env, "");
    let o = env.ok(&["disable", "sender/q"]);
    assert!(o.contains("disabled"), "{o}");
    let o = env.ok(&["start", "sender/q"]);
    assert!(o.contains("disabled"), "{o}");
    assert!(env.instance_pids("sender/q").is_empty());
    assert_eq!(status_of(&env, "sender/q")["state"], "disa");
    env.ok(&["enable", "sender/q"]);
    env.ok(&["start", "sender/q"]);
    assert_eq!(env.instance_pids("sender/q").len(), 1);
    let o = env.run(&["disable", "sender/q"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("stop it first"));
    assert!(!env.state.join("sender/q/disabled").exists());
}

#[test]
fn remove_refuses_a_running_config_and_deletes_a_stopped_one_with_its_state() {
    let env = Env::new();
    queue_pair(&env, "");
    env.ok(&["start", "sender/q"]);
    let o = env.run(&["remove", "sender/q"]);
    assert!(!o.status.success());
    assert!(env.config.join("sender/q.conf").exists());
    env.ok(&["stop", "sender/q"]);
    env.ok(&["remove", "sender/q"]);
    assert!(!env.config.join("sender/q.conf").exists());
    assert!(!env.state.join("sender/q").exists());
    let list = env.ok(&["list"]);
    assert!(!list.contains("sender/q"), "{list}");
    assert!(list.contains("post/q"), "{list}");
}

/// An $EDITOR that appends `line` to the file it is given.
fn editor_appending(env: &Env, line: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = env.root.path().join(format!("editor-{}.sh", line.len()));
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s\\n' '{line}' >> \"$1\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn edit_runs_the_editor_then_reports_errors_with_file_and_line() {
    let env = Env::new();
    queue_pair(&env, "");
    let good = editor_appending(&env, "batch 10");
    let o = env
        .cmd()
        .env("EDITOR", &good)
        .args(["edit", "sender/q"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let body = std::fs::read_to_string(env.config.join("sender/q.conf")).unwrap();
    assert!(body.ends_with("batch 10\n"), "{body}");
    let lines = body.lines().count();
    let bad = editor_appending(&env, "acelThreshold 1M");
    let o = env
        .cmd()
        .env("EDITOR", &bad)
        .args(["edit", "sender/q"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("sender/q.conf:{}:", lines + 1)),
        "{err}"
    );
}

#[test]
fn completions_are_printed_for_common_shells() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = env.ok(&["completions", shell]);
        assert!(out.len() > 500 && out.contains("pitcher"), "{shell}: {out}");
        assert!(out.contains("status"), "{shell} lacks verbs");
    }
    assert!(!env.run(&["completions", "tcsh"]).status.success());
}

#[test]
fn features_tell_what_this_build_has() {
    let env = Env::new();
    let out = env.ok(&["features"]);
    let line = |area: &str, name: &str| {
        out.lines()
            .find(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.first() == Some(&area) && w.get(1) == Some(&name)
            })
            .unwrap_or_else(|| panic!("no {area} {name} in {out}"))
            .to_string()
    };
    assert!(line("broker", "local").contains("yes"));
    assert!(line("transport", "file").contains("yes"));
    line("broker", "amqp");
    line("transport", "sftp");
}

#[test]
fn an_instance_without_a_pid_file_is_reported_as_a_stray() {
    let env = Env::new();
    queue_pair(&env, "");
    let mut child = env
        .cmd()
        .args(["instance", "--no", "1", "sender/q"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = env.state.join("sender/q/sender_q_01.pid");
    assert!(wait_until(LIMIT, || pitcher::state::pidfile::read_live(
        &pid_file
    )
    .is_some()));
    std::fs::remove_file(&pid_file).unwrap();
    let out = env.ok(&["status"]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(out.contains("stray: 1"), "{out}");
    assert!(
        out.contains(&format!("pid:{} ", child.id()))
            && out.contains("is not a configured instance"),
        "{out}"
    );
}

#[test]
fn byte_rate_max_holds_five_megabytes_to_at_least_two_seconds() {
    let env = Env::new();
    queue_pair(&env, "byteRateMax 2M\nbatch 10\n");
    env.ok(&["declare", "sender/q"]);
    let src = env.root.path().join("big");
    std::fs::create_dir_all(&src).unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..5 {
        let c = content(i, 1 << 20);
        std::fs::write(src.join(format!("b_{i}")), &c).unwrap();
        let rel = src.join(format!("b_{i}"));
        expected.insert(rel.to_str().unwrap().trim_start_matches('/').to_string(), c);
    }
    env.ok(&["post", "-c", "q", "-p", src.to_str().unwrap()]);
    let t0 = Instant::now();
    env.ok(&["start", "sender/q"]);
    assert_delivered(&env, &expected, LIMIT);
    // 5 MiB at 2 MiB/s: the fifth file may start only after four files' time.
    assert!(
        t0.elapsed() >= Duration::from_millis(1900),
        "5 MiB arrived in {:?} despite byteRateMax 2M",
        t0.elapsed()
    );
}

#[test]
fn stop_of_everything_says_what_it_stopped() {
    let env = Env::new();
    queue_pair(&env, "instances 2");
    env.ok(&["start", "sender/q"]);
    assert!(
        wait_until(LIMIT, || env.instance_pids("sender/q").len() == 2),
        "{}",
        env.logs()
    );
    let out = env.ok(&["stop"]);
    assert!(out.contains("stopped the supervisor (pid "), "{out}");
    assert!(out.contains("stopped sender/q (2 instances)"), "{out}");
    let again = env.ok(&["stop"]);
    assert!(again.contains("nothing was running"), "{again}");
}
