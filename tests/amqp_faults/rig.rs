//! The rig of the fault tests: a watch and a 3-instance sender on
//! RabbitMQ in a throwaway pitcher installation, `rabbitmqctl` with a
//! bound on every call, and the checks every test ends with.

use crate::common::{amqp_url, content, side_consumer, unique, wait_until, Env};
use pitcher::broker::Consumer;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The broker URL the configs name; the password is in credentials.conf.
const BROKER: &str = "amqp://guest@127.0.0.1/";
/// How long the files have, after the fault, to arrive.
pub(crate) const DELIVERY: Duration = Duration::from_secs(90);

/// One test at a time in this process: each one disturbs the broker.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub(crate) fn one_at_a_time() -> MutexGuard<'static, ()> {
    // A failed test poisons the lock; the next one may still run.
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `rabbitmqctl args…`, killed after `limit` (coreutils `timeout`, so
/// the output is read as it comes): its output, or why it failed.
pub(crate) fn rabbitmqctl(args: &[&str], limit: Duration) -> Result<String, String> {
    let o = Command::new("timeout")
        .arg(format!("{}s", limit.as_secs().max(1)))
        .arg("rabbitmqctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("rabbitmqctl: {e}"))?;
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    match o.status.code() {
        Some(0) => Ok(out),
        Some(124) => Err(format!("rabbitmqctl {args:?}: no answer within {limit:?}")),
        _ => Err(format!(
            "rabbitmqctl {args:?}: {}{out}{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )),
    }
}

/// `start_app` then `await_startup`: RabbitMQ serves again when it returns.
pub(crate) fn start_rabbitmq() -> Result<(), String> {
    rabbitmqctl(&["start_app"], Duration::from_secs(60))?;
    rabbitmqctl(&["await_startup"], Duration::from_secs(60)).map(|_| ())
}

/// Leaves RabbitMQ running when the test ends, however it ends.
pub(crate) struct RabbitRunning;

impl Drop for RabbitRunning {
    fn drop(&mut self) {
        if let Err(e) = start_rabbitmq() {
            eprintln!("could not start RabbitMQ again: {e}");
        }
    }
}

/// A watch and a 3-instance sender on RabbitMQ, in a throwaway pitcher
/// installation; everything it made on the broker is deleted on drop.
pub(crate) struct Rig {
    pub(crate) env: Env,
    pub(crate) rt: tokio::runtime::Runtime,
    /// Both configs' name: `watch/<name>` and `sender/<name>`.
    pub(crate) name: String,
    /// The watch announces here; the sender consumes it.
    pub(crate) x_in: String,
    /// The sender announces what it delivered here.
    pub(crate) x_out: String,
    /// The test's queue on `x_out`.
    pub(crate) side: String,
    /// A supervisor started by the test itself, not by `pitcher start`.
    pub(crate) supervisor: Option<Child>,
}

impl Rig {
    pub(crate) fn new(tag: &str) -> Rig {
        let env = Env::new();
        let id = unique(tag);
        let name = format!("faults_{id}");
        let x_in = format!("xs_guest_faults_{id}");
        let x_out = format!("xs_guest_faults_{id}_out");
        env.write_config("credentials.conf", "amqp://guest:guest@127.0.0.1/\n");
        std::fs::set_permissions(
            env.config.join("credentials.conf"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        env.write_config(
            &format!("watch/{name}.conf"),
            &format!(
                "post_broker {BROKER}\npost_exchange {x_in}\npost_baseUrl file:{hot}\npath {hot}\nnodupe_ttl on\nreject .*\\.tmp$\naccept .*\n",
                hot = env.hot.display()
            ),
        );
        env.write_config(
            &format!("sender/{name}.conf"),
            &format!(
                "broker {BROKER}\nexchange {x_in}\nsendTo file:\ndirectory {dest}\ninstances 3\ninflight .tmp\nnodupe_ttl on\npost_broker {BROKER}\npost_exchange {x_out}\npost_baseUrl file:{dest}\npost_baseDir {dest}\nreject .*\\.tmp$\naccept .*\n",
                dest = env.dest.display()
            ),
        );
        let side = format!("q_guest.faults.{id}");
        let rig = Rig {
            env,
            rt: rt(),
            name,
            x_in,
            x_out,
            side,
            supervisor: None,
        };
        // Declared now, read at the end: its connection would not survive
        // the faults, the durable queue and persistent messages do.
        drop(rig.side_consumer());
        rig
    }

    /// A consumer of the side queue, declared (and bound) if need be.
    pub(crate) fn side_consumer(&self) -> Box<dyn Consumer> {
        let paths = pitcher::state::Paths::resolve(
            Some(self.env.config.clone()),
            Some(self.env.state.clone()),
        );
        self.rt
            .block_on(side_consumer(&paths, &self.x_out, &self.side, true))
    }

    /// The relPaths the sender announced, read from the side queue until
    /// `want` are there or `limit` passed.
    pub(crate) fn announced(&self, want: &BTreeSet<String>, limit: Duration) -> BTreeSet<String> {
        let mut c = self.side_consumer();
        let mut got = BTreeSet::new();
        let t0 = Instant::now();
        while !want.is_subset(&got) && t0.elapsed() < limit {
            let ds = self
                .rt
                .block_on(c.get(500, Duration::from_millis(500)))
                .unwrap();
            let ids: Vec<u64> = ds.iter().map(|d| d.id).collect();
            for d in ds {
                let m = pitcher::message::Message::from_json(&d.body).unwrap();
                got.insert(m.rel_path);
            }
            self.rt.block_on(c.ack(&ids)).unwrap();
        }
        got
    }

    /// Writes `n` files at once; see [`write_files`].
    pub(crate) fn drop_files(
        &self,
        prefix: &str,
        n: usize,
        expected: &mut BTreeMap<String, Vec<u8>>,
    ) {
        expected.extend(write_files(&self.env.hot, prefix, n, Duration::ZERO));
    }

    /// Files at the destination, `.tmp` ones included (names only: cheap
    /// enough to poll while a thousand files arrive).
    pub(crate) fn arrived(&self) -> usize {
        walkdir::WalkDir::new(&self.env.dest)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .count()
    }

    /// The rows of `pitcher status --json` for the watch and the sender.
    pub(crate) fn status(&self) -> (serde_json::Value, serde_json::Value) {
        let out = self.env.ok(&["status", "--json"]);
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        let row = |c: &str| {
            rows.iter()
                .find(|r| r["config"] == format!("{c}/{}", self.name))
                .cloned()
                .unwrap_or(serde_json::Value::Null)
        };
        (row("watch"), row("sender"))
    }

    /// Waits until both configs run all their instances, with empty retry
    /// queues and nothing left in the sender's queue (neither ready nor
    /// unacked); panics with the status otherwise.
    pub(crate) fn assert_settled(&self, limit: Duration) {
        let settled = |r: &serde_json::Value| {
            r["running"].as_u64().is_some()
                && r["running"] == r["expected"]
                && r["retry"].as_u64() == Some(0)
        };
        let ok = wait_until(limit, || {
            let (w, s) = self.status();
            settled(&w) && settled(&s) && s["running"] == 3 && self.sender_queue_depth() == Some(0)
        });
        if !ok {
            let (w, s) = self.status();
            panic!(
                "not settled after {limit:?}:\nwatch {w}\nsender {s}\nqueue depth {:?}\n{}",
                self.sender_queue_depth(),
                tail(&self.env.logs(), 60)
            );
        }
    }

    /// Ready plus unacked messages in the sender's queue, as the broker
    /// counts them.
    fn sender_queue_depth(&self) -> Option<u64> {
        let out = rabbitmqctl(
            &[
                "list_queues",
                "-q",
                "--no-table-headers",
                "name",
                "messages",
            ],
            Duration::from_secs(30),
        )
        .ok()?;
        let line = out
            .lines()
            .find(|l| l.contains(&format!(".sender.{}.", self.name)))?;
        line.split('\t').nth(1)?.trim().parse().ok()
    }

    /// The connections (Erlang pids, what `close_connection` takes) the
    /// watch's and the sender's instances hold.
    pub(crate) fn pitcher_connections(&self) -> Vec<String> {
        let pids: Vec<i32> = ["watch", "sender"]
            .iter()
            .flat_map(|c| self.env.instance_pids(&format!("{c}/{}", self.name)))
            .collect();
        let out = rabbitmqctl(
            &[
                "list_connections",
                "-q",
                "--no-table-headers",
                "pid",
                "client_properties",
            ],
            Duration::from_secs(30),
        )
        .unwrap();
        out.lines()
            .filter(|l| pids.iter().any(|p| l.contains(&format!("pitcher[{p}]"))))
            .filter_map(|l| l.split('\t').next())
            .map(String::from)
            .collect()
    }

    /// Lines of `sender/<name>` instance `no`'s log holding `text`.
    pub(crate) fn sender_log_lines(&self, no: u32, text: &str) -> Vec<String> {
        let log = self
            .env
            .state
            .join("log")
            .join(format!("sender_{}_{no:02}.log", self.name));
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(text))
            .map(String::from)
            .collect()
    }

    /// Runs the supervisor as systemd does at boot (`pitcher supervise`),
    /// with the sender marked started: its instances start without the
    /// `declare` that `pitcher start` does first.
    pub(crate) fn boot_sender_without_declare(&mut self) {
        let paths = pitcher::state::Paths::resolve(
            Some(self.env.config.clone()),
            Some(self.env.state.clone()),
        );
        let marker = pitcher::supervisor::started_marker(
            &paths,
            pitcher::config::Component::Sender,
            &self.name,
        );
        std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
        std::fs::write(&marker, b"0").unwrap();
        let child = self
            .env
            .cmd()
            .arg("supervise")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.supervisor = Some(child);
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.env.run(&["stop"]);
        if let Some(mut s) = self.supervisor.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let mut queues: Vec<String> = rabbitmqctl(
            &["list_queues", "-q", "--no-table-headers", "-s", "name"],
            Duration::from_secs(30),
        )
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!(".sender.{}.", self.name)))
        .map(String::from)
        .collect();
        queues.push(self.side.clone());
        self.rt.block_on(async {
            for q in &queues {
                let _ = pitcher::broker::amqp::delete_queue(&amqp_url(), q).await;
            }
            for x in [&self.x_in, &self.x_out] {
                let _ = pitcher::broker::amqp::delete_exchange(&amqp_url(), x).await;
            }
        });
    }
}

/// Writes `n` files `<prefix>_<i>.dat` (1–8 KiB) into `hot`, half of them
/// in subdirectories, one every `pace`; returns what must arrive.
pub(crate) fn write_files(
    hot: &std::path::Path,
    prefix: &str,
    n: usize,
    pace: Duration,
) -> BTreeMap<String, Vec<u8>> {
    let mut written = BTreeMap::new();
    for i in 0..n {
        let rel = if i % 2 == 0 {
            format!("{prefix}_{i:04}.dat")
        } else {
            format!("{prefix}/d{}/{prefix}_{i:04}.dat", i % 5)
        };
        let p = hot.join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let c = content(i + prefix.len() * 7919, 1024 + (i * 37) % 7168);
        std::fs::write(&p, &c).unwrap();
        written.insert(rel, c);
        std::thread::sleep(pace);
    }
    written
}

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The relPaths the sender announces for `expected` (post_baseDir is the
/// destination, so they are the same relative paths).
fn names(expected: &BTreeMap<String, Vec<u8>>) -> BTreeSet<String> {
    expected.keys().cloned().collect()
}

/// Asserts every file was announced onward at least once.
pub(crate) fn assert_announced(rig: &Rig, expected: &BTreeMap<String, Vec<u8>>) {
    let want = names(expected);
    let got = rig.announced(&want, Duration::from_secs(30));
    let missing: Vec<_> = want.difference(&got).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} of {} delivered files were not announced, e.g. {missing:?}\n{}",
        want.difference(&got).count(),
        want.len(),
        tail(&rig.env.logs(), 60)
    );
}

/// Closes, all at once, every connection the rig's instances hold;
/// returns how many.
pub(crate) fn close_pitcher_connections(rig: &Rig) -> usize {
    let conns = rig.pitcher_connections();
    // At least the 3 consumers and the watch's publisher.
    assert!(conns.len() >= 4, "pitcher connections: {conns:?}");
    // In parallel: one rabbitmqctl takes a second or more.
    let refused: Vec<String> = std::thread::scope(|s| {
        let closing: Vec<_> = conns
            .iter()
            .map(|c| {
                s.spawn(move || {
                    rabbitmqctl(
                        &["close_connection", c, "fault test: closed by the broker"],
                        Duration::from_secs(30),
                    )
                })
            })
            .collect();
        closing
            .into_iter()
            .filter_map(|h| h.join().unwrap().err())
            .collect()
    });
    assert!(refused.is_empty(), "close_connection failed: {refused:#?}");
    conns.len()
}
