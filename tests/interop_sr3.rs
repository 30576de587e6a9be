//! pitcher and the real Python sr3 (metpx-sr3 from PyPI) feeding each other
//! through one RabbitMQ (127.0.0.1:5672, guest/guest):
//!
//! 1. sr3's watch → pitcher's sender delivers;
//! 2. pitcher's watch → sr3's sender delivers (over SFTP to the loopback sshd);
//! 3. pitcher's sender announcement → sr3's subscribe downloads;
//! 4. `sr3_post` → pitcher's subscribe downloads.
//!
//! sr3 runs with its own throwaway HOME (its ~/.config/sr3 and ~/.ssh live
//! there). The file is not named `sr3_*`: `sr3 stop` takes any process
//! whose name starts with `sr3_` for a stray of its own and kills it, and
//! this test binary would be one. These need metpx-sr3 (`PITCHER_SR3`) and the sshd harness, which
//! `bash scripts/test.sh` sets up; a bare `cargo test` skips them (ignored).

mod common;

use common::{amqp_url, content, side_consumer, tree, unique, wait_until, Env};
use pitcher::broker::Consumer;
use pitcher::message::Message;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);
const BROKER: &str = "amqp://guest@127.0.0.1/";

fn sr3_bin(name: &str) -> PathBuf {
    let sr3 = std::env::var("PITCHER_SR3").expect(
        "PITCHER_SR3 is not set: these tests run the real metpx-sr3; run `bash scripts/test.sh`",
    );
    Path::new(&sr3).with_file_name(name)
}

/// An sr3 installation in a throwaway HOME, with its daemons killed on drop.
struct Sr3 {
    home: PathBuf,
    children: Vec<Child>,
}

impl Sr3 {
    fn new(env: &Env) -> Sr3 {
        let home = env.root.path().join("sr3home");
        std::fs::create_dir_all(home.join(".config/sr3")).unwrap();
        std::fs::write(
            home.join(".config/sr3/credentials.conf"),
            "amqp://guest:guest@127.0.0.1/\n",
        )
        .unwrap();
        Sr3 {
            home,
            children: Vec::new(),
        }
    }

    fn config(&self, rel: &str, body: &str) {
        let p = self.home.join(".config/sr3").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    fn cmd(&self, bin: &str) -> Command {
        let mut c = Command::new(sr3_bin(bin));
        c.env("HOME", &self.home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .current_dir(&self.home);
        c
    }

    /// Runs `sr3 args…` to completion.
    fn run(&self, args: &[&str]) -> String {
        let o = self.cmd("sr3").args(args).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    }

    /// Starts `sr3 foreground <config>`, its output in `<home>/<name>.log`.
    fn foreground(&mut self, config: &str) {
        let log =
            std::fs::File::create(self.home.join(format!("{}.log", config.replace('/', "_"))))
                .unwrap();
        let child = self
            .cmd("sr3")
            .args(["foreground", config])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(&self.home).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                out += &format!(
                    "==> sr3 {} <==\n{}\n",
                    e.path().display(),
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                );
            }
        }
        out
    }
}

impl Drop for Sr3 {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A queue of the test's own on `exchange`, to read what is published there.
fn side_queue(rt: &tokio::runtime::Runtime, exchange: &str) -> (Box<dyn Consumer>, String) {
    let name = format!("q_guest.test.{}", unique("side"));
    let paths =
        pitcher::state::Paths::resolve(Some("/nonexistent".into()), Some(std::env::temp_dir()));
    let c = rt.block_on(side_consumer(&paths, exchange, &name, false));
    (c, name)
}

/// Drains the side queue until `n` messages came or the time is up.
fn read_side(
    rt: &tokio::runtime::Runtime,
    c: &mut Box<dyn Consumer>,
    n: usize,
) -> Vec<(String, Message)> {
    let mut got = Vec::new();
    let t0 = std::time::Instant::now();
    while got.len() < n && t0.elapsed() < LIMIT {
        for d in rt.block_on(c.get(100, Duration::from_millis(500))).unwrap() {
            got.push((
                d.topic.clone(),
                Message::from_json(&d.body).expect("a v03 body pitcher can read"),
            ));
            rt.block_on(c.ack(&[d.id])).unwrap();
        }
    }
    got
}

fn cleanup(rt: &tokio::runtime::Runtime, queues: &[&str], exchanges: &[&str]) {
    rt.block_on(async {
        for q in queues {
            let _ = pitcher::broker::amqp::delete_queue(&amqp_url(), q).await;
        }
        for x in exchanges {
            let _ = pitcher::broker::amqp::delete_exchange(&amqp_url(), x).await;
        }
    });
}

fn queues_named(part: &str) -> Vec<String> {
    let o = Command::new("rabbitmqctl")
        .args(["list_queues", "-s", "name"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains(part))
        .map(String::from)
        .collect()
}

fn pitcher_credentials(env: &Env) {
    env.write_config("credentials.conf", "amqp://guest:guest@127.0.0.1/\n");
    std::fs::set_permissions(
        env.config.join("credentials.conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
}

/// Starts pitcher's `config` (a sender or subscribe, `extra` its own
/// lines) consuming a new exchange into `env.dest`; returns the exchange.
fn start_pitcher_consumer(env: &Env, tag: &str, config: &str, extra: &str) -> String {
    let x = format!("xs_guest_{}", unique(tag));
    pitcher_credentials(env);
    env.write_config(
        &format!("{config}.conf"),
        &format!(
            "broker {BROKER}\nexchange {x}\n{extra}directory {}\ninflight .tmp\naccept .*\n",
            env.dest.display()
        ),
    );
    env.ok(&["declare", config]);
    env.ok(&["start", config]);
    x
}

/// Writes `n` files below `dir`, file `i` at `name(i)` with `content(i,
/// size + i)`; returns what each relative path must hold.
fn drop_files(
    dir: &Path,
    n: usize,
    size: usize,
    name: impl Fn(usize) -> String,
) -> BTreeMap<String, Vec<u8>> {
    let mut expected = BTreeMap::new();
    for i in 0..n {
        let rel = name(i);
        let path = dir.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let c = content(i, size + i);
        std::fs::write(&path, &c).unwrap();
        expected.insert(rel, c);
    }
    expected
}

/// Stops pitcher, then removes `queues`, the queues whose names hold any
/// of `parts`, and `exchanges` from the broker.
fn stop_and_clean(
    env: &Env,
    rt: &tokio::runtime::Runtime,
    parts: &[&str],
    mut queues: Vec<String>,
    exchanges: &[&str],
) {
    env.ok(&["stop"]);
    for part in parts {
        queues.extend(queues_named(part));
    }
    cleanup(
        rt,
        &queues.iter().map(String::as_str).collect::<Vec<_>>(),
        exchanges,
    );
}

#[test]
#[ignore = "needs metpx-sr3 and RabbitMQ: bash scripts/test.sh"]
fn sr3_watch_feeds_pitcher_sender_and_their_messages_match_ours() {
    let env = Env::new();
    let rt = rt();
    let x = start_pitcher_consumer(&env, "i1", "sender/from_sr3", "sendTo file:\n");
    let (mut side, side_name) = side_queue(&rt, &x);
    let mut sr3 = Sr3::new(&env);
    sr3.config(
        "watch/to_pitcher.conf",
        &format!(
            "post_broker {BROKER}\npost_exchange {x}\npost_baseUrl file:{hot}\npath {hot}\nsleep 1\nreject .*\\.tmp$\naccept .*\n",
            hot = env.hot.display()
        ),
    );
    sr3.foreground("watch/to_pitcher");
    std::thread::sleep(Duration::from_secs(4));
    let expected = drop_files(&env.hot, 20, 777, |i| format!("sub dir/f#{i}*.dat"));
    let ok = wait_until(LIMIT, || tree(&env.dest) == expected);
    assert!(
        ok,
        "pitcher's sender got {} of {} from sr3's watch\n{}\n{}",
        tree(&env.dest).len(),
        expected.len(),
        sr3.logs(),
        env.logs()
    );
    // Field by field: sr3's message for each file is what pitcher would say.
    let msgs = read_side(&rt, &mut side, 20);
    let files: Vec<_> = msgs.iter().filter(|(_, m)| m.file_op.is_none()).collect();
    assert!(
        files.len() >= 20,
        "side queue got {} file messages",
        files.len()
    );
    for (topic, theirs) in files {
        let path = env.hot.join(&theirs.rel_path);
        let ours = Message::for_file(
            &theirs.base_url,
            &theirs.rel_path,
            &path,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(topic, &ours.topic("v03"), "topic of {}", theirs.rel_path);
        assert_eq!(theirs.base_url, format!("file:{}", env.hot.display()));
        assert_eq!(
            theirs.identity, ours.identity,
            "identity of {}",
            theirs.rel_path
        );
        assert_eq!(theirs.size, ours.size);
        assert_eq!(theirs.mode, ours.mode);
        let t =
            |s: &Option<String>| pitcher::message::timestamp::parse(s.as_deref().unwrap()).unwrap();
        let diff = t(&theirs.mtime)
            .duration_since(t(&ours.mtime))
            .unwrap_or_else(|e| e.duration());
        assert!(
            diff < Duration::from_micros(2),
            "mtime of {}: {:?} vs {:?}",
            theirs.rel_path,
            theirs.mtime,
            ours.mtime
        );
    }
    stop_and_clean(&env, &rt, &[".sender.from_sr3."], vec![side_name], &[&x]);
}

#[test]
#[ignore = "needs metpx-sr3, RabbitMQ and the sshd harness: bash scripts/test.sh"]
fn pitcher_watch_feeds_sr3_sender_over_sftp() {
    let home = PathBuf::from(
        std::env::var("PITCHER_SSHD_HOME").expect("PITCHER_SSHD_HOME: run bash scripts/test.sh"),
    );
    let ssh_config =
        std::env::var("PITCHER_SSH_CONFIG").expect("PITCHER_SSH_CONFIG: run bash scripts/test.sh");
    let env = Env::new();
    let rt = rt();
    let x = format!("xs_guest_{}", unique("i2"));
    let remote = home.join("on_hpfx").join(unique("sr3sender"));
    let mut sr3 = Sr3::new(&env);
    // sr3 (paramiko) reads ~/.ssh/config from HOME: give it the harness's.
    std::fs::create_dir_all(sr3.home.join(".ssh")).unwrap();
    std::fs::copy(&ssh_config, sr3.home.join(".ssh/config")).unwrap();
    sr3.config(
        "sender/from_pitcher.conf",
        &format!(
            "broker {BROKER}\nexchange {x}\nsendTo sftp://hpfx\nbaseDir {hot}\npost_baseDir {remote}\ninflight .tmp\naccept .*\n",
            hot = env.hot.display(),
            remote = remote.display()
        ),
    );
    pitcher_credentials(&env);
    env.write_config(
        "watch/to_sr3.conf",
        &format!(
            "post_broker {BROKER}\npost_exchange {x}\npost_baseUrl file:{hot}\npath {hot}\nreject .*\\.tmp$\naccept .*\n",
            hot = env.hot.display()
        ),
    );
    env.ok(&["declare", "watch/to_sr3"]);
    sr3.foreground("sender/from_pitcher");
    env.ok(&["start", "watch/to_sr3"]);
    let expected = drop_files(&env.hot, 15, 500, |i| format!("d{}/p_{i}.txt", i % 2));
    let ok = wait_until(LIMIT, || tree(&remote) == expected);
    let got = tree(&remote).len();
    let _ = std::fs::remove_dir_all(&remote);
    stop_and_clean(&env, &rt, &[".sender.from_pitcher."], Vec::new(), &[&x]);
    assert!(
        ok,
        "sr3's sender delivered {got} of {} from pitcher's watch\n{}\n{}",
        expected.len(),
        sr3.logs(),
        env.logs()
    );
}

#[test]
#[ignore = "needs metpx-sr3 and RabbitMQ: bash scripts/test.sh"]
fn pitcher_sender_announcements_feed_sr3_subscribe() {
    let env = Env::new();
    let rt = rt();
    let out = format!("xs_guest_{}", unique("i3"));
    let d2 = env.root.path().join("sr3-downloads");
    pitcher_credentials(&env);
    let extra = format!(
        "post_broker {BROKER}\npost_exchange {out}\npost_baseUrl file:{d}\npost_baseDir {d}\n",
        d = env.dest.display()
    );
    env.hot_directory(2, &extra);
    env.ok(&["declare", "sender/hot"]);
    let mut sr3 = Sr3::new(&env);
    sr3.config(
        "subscribe/from_pitcher.conf",
        &format!(
            "broker {BROKER}\nexchange {out}\ndirectory {}\nmirror on\naccept .*\n",
            d2.display()
        ),
    );
    sr3.run(&["declare", "subscribe/from_pitcher"]);
    sr3.foreground("subscribe/from_pitcher");
    assert!(
        wait_until(Duration::from_secs(30), || !queues_named(
            ".subscribe.from_pitcher."
        )
        .is_empty()),
        "sr3 subscribe declared no queue\n{}",
        sr3.logs()
    );
    std::thread::sleep(Duration::from_secs(2));
    env.ok(&["start"]);
    let expected = drop_files(&env.hot, 15, 900, |i| format!("a b/s_{i}.dat"));
    let ok = wait_until(LIMIT, || tree(&d2) == expected);
    stop_and_clean(
        &env,
        &rt,
        &[".subscribe.from_pitcher.", ".sender.hot."],
        Vec::new(),
        &[&out],
    );
    assert!(
        ok,
        "sr3's subscribe downloaded {} of {}\n{}\n{}",
        tree(&d2).len(),
        expected.len(),
        sr3.logs(),
        env.logs()
    );
}

#[test]
#[ignore = "needs metpx-sr3 and RabbitMQ: bash scripts/test.sh"]
fn sr3_post_feeds_pitcher_subscribe() {
    let env = Env::new();
    let rt = rt();
    let x = start_pitcher_consumer(&env, "i4", "subscribe/from_sr3_post", "");
    let sr3 = Sr3::new(&env);
    sr3.config(
        "post/to_pitcher.conf",
        &format!("post_broker {BROKER}\npost_exchange {x}\npost_baseUrl file:\nreject .*\\.tmp$\naccept .*\n"),
    );
    let src = env.root.path().join("posted");
    // subscribe: mirror off, so the files land flat, as they are in `src`.
    let expected = drop_files(&src, 10, 300, |i| format!("posted file {i}.txt"));
    let mut args: Vec<String> = vec!["-c".into(), "to_pitcher".into(), "-p".into()];
    args.extend(
        expected
            .keys()
            .map(|name| src.join(name).to_string_lossy().into_owned()),
    );
    let o = sr3.cmd("sr3_post").args(&args).output().unwrap();
    assert!(
        o.status.success(),
        "sr3_post failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ok = wait_until(LIMIT, || tree(&env.dest) == expected);
    stop_and_clean(&env, &rt, &[".subscribe.from_sr3_post."], Vec::new(), &[&x]);
    assert!(
        ok,
        "pitcher's subscribe got {} of {} from sr3_post\n{}",
        tree(&env.dest).len(),
        expected.len(),
        env.logs()
    );
}
