//! A throwaway pitcher installation for integration tests: its own config
//! and state dirs, a hot directory and a destination, and the real binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub struct Env {
    pub root: tempfile::TempDir,
    pub config: PathBuf,
    pub state: PathBuf,
    pub hot: PathBuf,
    pub dest: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let mut root = tempfile::Builder::new()
            .prefix("pitcher-it")
            .tempdir()
            .unwrap();
        // PITCHER_TEST_KEEP=1 leaves the installation behind, to read its
        // logs and state after a failure.
        root.disable_cleanup(std::env::var_os("PITCHER_TEST_KEEP").is_some());
        let r = root.path().to_path_buf();
        let env = Env {
            config: r.join("config"),
            state: r.join("state"),
            hot: r.join("hot"),
            dest: r.join("dest"),
            root,
        };
        for d in [&env.config, &env.state, &env.hot, &env.dest] {
            std::fs::create_dir_all(d).unwrap();
        }
        env
    }

    /// Writes `<config>/<rel>` (e.g. `sender/x.conf`).
    pub fn write_config(&self, rel: &str, body: &str) {
        let p = self.config.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    /// The tutorial's watch and a file: sender, on the embedded broker.
    pub fn hot_directory(&self, instances: u32, extra_sender: &str) {
        self.write_config(
            "watch/hot.conf",
            &format!(
                "post_broker local:\npost_exchange xs_it_hot\npost_baseUrl file:{hot}\npath {hot}\nnodupe_ttl on\nreject .*\\.tmp$\naccept .*\n",
                hot = self.hot.display()
            ),
        );
        self.write_config(
            "sender/hot.conf",
            &format!(
                "broker local:\nexchange xs_it_hot\nsendTo file:\ndirectory {dest}\ninstances {instances}\ninflight .tmp\nnodupe_ttl on\nreject .*\\.tmp$\naccept .*\n{extra_sender}\n",
                dest = self.dest.display()
            ),
        );
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pitcher"));
        c.env("PITCHER_CONFIG_DIR", &self.config)
            .env("PITCHER_STATE_DIR", &self.state);
        c
    }

    /// Runs `pitcher args…`, returning its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run pitcher")
    }

    /// Runs `pitcher args…` and asserts it succeeded.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "pitcher {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Every log line so far, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(rd) = std::fs::read_dir(self.state.join("log")) {
            for e in rd.flatten() {
                out += &format!(
                    "==> {} <==\n{}\n",
                    e.path().display(),
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                );
            }
        }
        out
    }

    /// Pids of the live instances of `component/name`.
    pub fn instance_pids(&self, comp_name: &str) -> Vec<i32> {
        let dir = self.state.join(comp_name);
        let mut pids = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.ends_with(".pid") {
                if let Some(p) = pitcher::state::pidfile::read_live(&e.path()) {
                    pids.push(p);
                }
            }
        }
        pids
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.cmd().arg("stop").output();
    }
}

/// Regular files under `dir`: relative path → content.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read(e.path()).unwrap_or_default())
        })
        .collect()
}

/// Waits (bounded) until `f` is true; returns whether it became true.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// Waits until `dest` holds exactly the files of `expected` (no `.tmp`),
/// failing the test with a diff and the logs otherwise.
pub fn assert_delivered(env: &Env, expected: &BTreeMap<String, Vec<u8>>, limit: Duration) {
    assert_tree(env, &env.dest, expected, limit)
}

/// Waits until `dir` holds exactly the files of `expected`, failing the
/// test with a diff and the end of `env`'s logs otherwise.
pub fn assert_tree(env: &Env, dir: &Path, expected: &BTreeMap<String, Vec<u8>>, limit: Duration) {
    let ok = wait_until(limit, || &tree(dir) == expected);
    if !ok {
        let got = tree(dir);
        let missing: Vec<_> = expected
            .keys()
            .filter(|k| !got.contains_key(*k))
            .take(10)
            .collect();
        let extra: Vec<_> = got
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .take(10)
            .collect();
        let differ: Vec<_> = expected
            .iter()
            .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
            .map(|(k, _)| k)
            .take(10)
            .collect();
        let tail: String = env
            .logs()
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        panic!(
            "destination differs after {limit:?}: {} expected, {} present; missing {missing:?}; extra {extra:?}; different {differ:?}\nlogs:\n{tail}",
            expected.len(),
            got.len()
        );
    }
}

/// Deterministic content for file `i`.
pub fn content(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| ((i * 31 + k * 7) % 251) as u8).collect()
}

/// The home of the sshd harness's test user (the remote side of sftp
/// tests); panics with how to start the harness when it is not set up.
pub fn remote_home() -> PathBuf {
    let v = std::env::var("PITCHER_SSHD_HOME").expect(
        "PITCHER_SSHD_HOME is not set: these tests need the loopback sshd; run `bash scripts/test.sh` \
         (or `eval \"$(bash scripts/sshd-harness.sh env)\"` after `bash scripts/sshd-harness.sh start`)",
    );
    std::env::var("PITCHER_SSH_CONFIG")
        .expect("PITCHER_SSH_CONFIG is not set (see scripts/sshd-harness.sh)");
    PathBuf::from(v)
}

/// A unique directory under the remote user's `on_hpfx`, removed at the end.
pub struct Remote(pub PathBuf);

impl Remote {
    pub fn new(tag: &str) -> Remote {
        let p = remote_home()
            .join("on_hpfx")
            .join(format!("{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Remote(p)
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        if std::env::var_os("PITCHER_TEST_KEEP").is_some() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// RabbitMQ on loopback, as the test script starts it.
pub fn amqp_url() -> url::Url {
    url::Url::parse("amqp://guest:guest@127.0.0.1/").unwrap()
}

/// A queue of the test's own, `queue`, bound to all v03 messages of
/// `exchange` (declared if missing), to read what is published there.
/// `durable` for one that must outlive a broker restart.
pub async fn side_consumer(
    paths: &pitcher::state::Paths,
    exchange: &str,
    queue: &str,
    durable: bool,
) -> Box<dyn pitcher::broker::Consumer> {
    let url = amqp_url();
    let mut p = pitcher::broker::publisher(&url, paths).await.unwrap();
    p.declare_exchange(exchange).await.unwrap();
    let mut c = pitcher::broker::consumer(&url, paths, queue).await.unwrap();
    c.declare_queue(&pitcher::broker::QueueSpec {
        queue_type: None,
        name: queue.to_string(),
        bindings: vec![pitcher::broker::Binding {
            exchange: exchange.into(),
            topic: "v03.#".into(),
        }],
        durable,
        expire: Some(Duration::from_secs(600)),
        message_ttl: None,
        prefetch: 500,
    })
    .await
    .unwrap();
    c
}

/// A name no other test, nor another run of the tests, uses: for
/// exchanges, queues, configs and remote directories.
pub fn unique(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_micros())
        .unwrap_or(0);
    format!(
        "{tag}_{}_{}_{micros}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// A directory made immutable (`chattr +i`): creating, renaming or
/// removing anything in it fails with EPERM, even for root, as a
/// destination an operator must fix. Thawed when dropped.
pub struct Frozen(pub PathBuf);

impl Frozen {
    /// Makes `dir` (and its parents) and freezes it.
    pub fn new(dir: &Path) -> Frozen {
        std::fs::create_dir_all(dir).unwrap();
        let f = Frozen(dir.to_path_buf());
        f.set("+i");
        f
    }

    fn set(&self, flag: &str) {
        let ok = Command::new("chattr")
            .arg(flag)
            .arg(&self.0)
            .status()
            .expect("chattr");
        assert!(ok.success(), "chattr {flag} {}", self.0.display());
    }

    /// Thaws it now.
    pub fn thaw(self) {}
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.set("-i");
    }
}
