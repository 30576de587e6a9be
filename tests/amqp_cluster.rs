//! pitcher on a 3-node RabbitMQ cluster (`scripts/rabbitmq-cluster.sh`,
//! ports 5682–5684) with quorum queues, its configs naming every node:
//! `broker amqp://guest@127.0.0.1:5682,127.0.0.1:5683,127.0.0.1:5684/`.
//!
//! 1. a quorum queue declared through one node is consumed through another;
//! 2. the broker layer: the node a consumer and a publisher are connected
//!    to is killed -9; they are on the next node at once, the deliveries
//!    not acked come back, the publish in flight is reported, not lost;
//! 3. the tutorial's shape as real daemons (watch → cluster → sender ×3 →
//!    `sendTo file:`, announcing onward): the node they are connected to
//!    (and the queue's leader) is killed -9 mid-flow; every file arrives
//!    whole and is announced, duplicates counted;
//! 4. senders on two hosts (network namespaces, when this machine allows
//!    them; two installations side by side otherwise) share one quorum
//!    queue; one host is killed mid-flow and the other finishes.
//!
//! They kill cluster nodes, so they are ignored by a bare `cargo test`,
//! take a process-wide lock, and `bash scripts/test.sh` runs them after
//! starting the cluster. Each leaves the three nodes running.

mod cluster_support;
mod common;

use cluster_support as cl;
use common::{assert_tree, content, unique, wait_until, Env};
use pitcher::broker::{Binding, Consumer, Outgoing, QueueSpec, QueueType};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn paths(dir: &Path) -> pitcher::state::Paths {
    pitcher::state::Paths::resolve(Some(dir.join("config")), Some(dir.join("state")))
}

fn quorum(name: &str, exchange: &str) -> QueueSpec {
    QueueSpec {
        name: name.to_string(),
        bindings: vec![Binding {
            exchange: exchange.to_string(),
            topic: "v03.#".into(),
        }],
        durable: true,
        expire: None,
        message_ttl: None,
        prefetch: 500,
        queue_type: Some(QueueType::Quorum),
    }
}

fn messages(exchange: &str, from: usize, n: usize) -> Vec<Outgoing> {
    (from..from + n)
        .map(|i| {
            Outgoing::new(
                exchange,
                &format!("v03.m.{i}"),
                format!("m{i}").into_bytes(),
            )
        })
        .collect()
}

/// Takes from `c` until `want` distinct bodies are in `got` or `limit`
/// passes; acks what it takes. Returns how many deliveries were flagged
/// redelivered.
async fn drain(
    c: &mut Box<dyn Consumer>,
    got: &mut BTreeMap<String, usize>,
    want: usize,
    limit: Duration,
) -> usize {
    let t0 = Instant::now();
    let mut redelivered = 0;
    while got.len() < want && t0.elapsed() < limit {
        let ds = c.get(500, Duration::from_millis(500)).await.unwrap();
        let ids: Vec<u64> = ds.iter().map(|d| d.id).collect();
        for d in ds {
            redelivered += usize::from(d.redelivered);
            *got.entry(String::from_utf8(d.body).unwrap()).or_default() += 1;
        }
        c.ack(&ids).await.unwrap();
    }
    redelivered
}

#[test]
#[ignore = "needs the RabbitMQ cluster: bash scripts/test.sh"]
fn a_quorum_queue_declared_through_one_node_is_consumed_through_another() {
    let _alone = cl::one_at_a_time();
    cl::require();
    let tmp = tempfile::tempdir().unwrap();
    let paths = paths(tmp.path());
    let id = unique("cluster_a");
    let (x, q) = (format!("xs_guest_{id}"), format!("q_guest.{id}"));
    rt().block_on(async {
        let mut p1 = pitcher::broker::publisher(&cl::node_url(1), &paths)
            .await
            .unwrap();
        p1.declare_exchange(&x).await.unwrap();
        // Declared through node 1, published to through node 3, consumed
        // through node 2.
        let mut c1 = pitcher::broker::consumer(&cl::node_url(1), &paths, &q)
            .await
            .unwrap();
        c1.declare_queue(&quorum(&q, &x)).await.unwrap();
        drop(c1);
        let mut p3 = pitcher::broker::publisher(&cl::node_url(3), &paths)
            .await
            .unwrap();
        p3.publish(&messages(&x, 0, 300)).await.unwrap();
        let mut c2 = pitcher::broker::consumer(&cl::node_url(2), &paths, &q)
            .await
            .unwrap();
        c2.declare_queue(&quorum(&q, &x)).await.unwrap();
        let mut got = BTreeMap::new();
        drain(&mut c2, &mut got, 300, Duration::from_secs(30)).await;
        assert_eq!(got.len(), 300, "through node 2: {} of 300", got.len());
    });
    assert_eq!(cl::queue_type(&q).as_deref(), Some("quorum"));
    assert!(
        wait_until(Duration::from_secs(10), || cl::depth(&q) == Some(0)),
        "{:?}",
        cl::depth(&q)
    );
    cl::delete(&[q], &[x]);
}

#[test]
#[ignore = "needs the RabbitMQ cluster: bash scripts/test.sh"]
fn a_cluster_url_moves_to_the_next_node_at_once_and_nothing_unacked_is_lost() {
    let _alone = cl::one_at_a_time();
    cl::require();
    let _up = cl::AllUp;
    let tmp = tempfile::tempdir().unwrap();
    let paths = paths(tmp.path());
    let id = unique("cluster_b");
    let (x, q) = (format!("xs_guest_{id}"), format!("q_guest.{id}"));
    let url = cl::url();
    let me = std::process::id() as i32;
    let figures = rt().block_on(async {
        let mut c = pitcher::broker::consumer(&url, &paths, &q).await.unwrap();
        let mut p = pitcher::broker::publisher(&url, &paths).await.unwrap();
        p.declare_exchange(&x).await.unwrap();
        c.declare_queue(&quorum(&q, &x)).await.unwrap();
        let on = cl::nodes_of(me);
        assert_eq!(on.len(), 1, "publisher and consumer on nodes {on:?}");
        let node = on[0];
        p.publish(&messages(&x, 0, 200)).await.unwrap();
        // Take all 200, ack 100: the other 100 are held when the node dies.
        let mut held = Vec::new();
        let t0 = Instant::now();
        while held.len() < 200 && t0.elapsed() < Duration::from_secs(20) {
            held.extend(c.get(500, Duration::from_millis(500)).await.unwrap());
        }
        assert_eq!(held.len(), 200);
        let mut got: BTreeMap<String, usize> = BTreeMap::new();
        let acked: Vec<u64> = held[..100].iter().map(|d| d.id).collect();
        c.ack(&acked).await.unwrap();
        for d in &held[..100] {
            got.insert(String::from_utf8(d.body.clone()).unwrap(), 1);
        }
        let killed = cl::kill(node);
        // The consumer finds its connection gone.
        let t = Instant::now();
        let mut lost = false;
        while t.elapsed() < Duration::from_secs(20) {
            if c.get(10, Duration::from_millis(200)).await.is_err() {
                lost = true;
                break;
            }
        }
        assert!(lost, "the consumer did not notice {killed}");
        let noticed = t.elapsed();
        // A publish on the dead connection fails: the caller publishes
        // again (the flows do), nothing is dropped silently.
        assert!(p.publish(&messages(&x, 200, 50)).await.is_err());
        drop(c);
        drop(p);
        let t = Instant::now();
        let mut c = pitcher::broker::consumer(&url, &paths, &q).await.unwrap();
        c.declare_queue(&quorum(&q, &x)).await.unwrap();
        let reconnected = t.elapsed();
        let mut p = pitcher::broker::publisher(&url, &paths).await.unwrap();
        p.publish(&messages(&x, 200, 50)).await.unwrap();
        let now_on = cl::nodes_of(me);
        assert!(
            !now_on.contains(&node) && !now_on.is_empty(),
            "after {killed}: on nodes {now_on:?}"
        );
        let redelivered = drain(&mut c, &mut got, 250, Duration::from_secs(60)).await;
        let missing: Vec<usize> = (0..250)
            .filter(|i| !got.contains_key(&format!("m{i}")))
            .collect();
        assert!(missing.is_empty(), "lost across the failover: {missing:?}");
        assert!(redelivered >= 100, "{redelivered} flagged redelivered");
        format!(
            "{killed}: the consumer noticed in {noticed:.1?}; on node(s) {now_on:?} {reconnected:.1?} later (declare included); the 100 unacked came back ({redelivered} redelivered), 250 of 250 received"
        )
    });
    eprintln!("cluster failover (broker layer): {figures}");
    cl::ensure_all_up();
    cl::delete(&[q], &[x]);
}

/// Writes `n` files (1–8 KiB, half in subdirectories) into `hot`, one
/// every `pace`; returns what must arrive.
fn write_files(hot: &Path, prefix: &str, n: usize, pace: Duration) -> BTreeMap<String, Vec<u8>> {
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
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, &c).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        written.insert(rel, c);
        std::thread::sleep(pace);
    }
    written
}

/// Regular files under `dir` (names only), `.tmp` ones counted apart.
fn count_files(dir: &Path) -> (usize, usize) {
    let mut n = (0, 0);
    for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
        if e.file_type().is_file() {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                n.1 += 1;
            } else {
                n.0 += 1;
            }
        }
    }
    n
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn write_credentials(env: &Env, text: &str) {
    env.write_config("credentials.conf", text);
    std::fs::set_permissions(
        env.config.join("credentials.conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
}

fn watch_config(env: &Env, broker: &str, exchange: &str) {
    env.write_config(
        "watch/hot.conf",
        &format!(
            "post_broker {broker}\npost_exchange {exchange}\npost_baseUrl file:{hot}\npath {hot}\nnodupe_ttl on\nreject .*\\.tmp$\naccept .*\n",
            hot = env.hot.display()
        ),
    );
}

/// Reads the relPaths announced on `queue` until `want` are there.
fn announced(
    paths: &pitcher::state::Paths,
    queue: &str,
    x: &str,
    want: usize,
) -> BTreeMap<String, usize> {
    rt().block_on(async {
        let mut c = pitcher::broker::consumer(&cl::url(), paths, queue)
            .await
            .unwrap();
        c.declare_queue(&quorum(queue, x)).await.unwrap();
        let mut got: BTreeMap<String, usize> = BTreeMap::new();
        let t0 = Instant::now();
        while got.len() < want && t0.elapsed() < Duration::from_secs(60) {
            let ds = c.get(500, Duration::from_millis(500)).await.unwrap();
            let ids: Vec<u64> = ds.iter().map(|d| d.id).collect();
            for d in ds {
                let m = pitcher::message::Message::from_json(&d.body).unwrap();
                *got.entry(m.rel_path).or_default() += 1;
            }
            c.ack(&ids).await.unwrap();
        }
        got
    })
}

/// The nodes the pitcher processes `pids` hold connections on.
fn connected_nodes(conns: &[(usize, String)], pids: &[i32]) -> BTreeSet<usize> {
    pids.iter().flat_map(|p| cl::nodes_in(conns, *p)).collect()
}

/// The daemons' flow: long enough for the kill, the failover and the
/// node's return to happen while files still arrive.
const FILES: usize = 1500;
const PACE: Duration = Duration::from_millis(20);

#[test]
#[ignore = "needs the RabbitMQ cluster: bash scripts/test.sh"]
fn daemons_lose_nothing_when_their_node_is_killed_mid_flow() {
    let _alone = cl::one_at_a_time();
    cl::require();
    let _up = cl::AllUp;
    let env = Env::new();
    let id = unique("cluster_d");
    let (x_in, x_out) = (format!("xs_guest_{id}"), format!("xs_guest_{id}_out"));
    let side = format!("q_guest.{id}.side");
    let broker = cl::config_url("127.0.0.1");
    write_credentials(&env, &cl::credentials("127.0.0.1"));
    watch_config(&env, &broker, &x_in);
    env.write_config(
        "sender/hot.conf",
        &format!(
            "broker {broker}\nexchange {x_in}\nqueueType quorum\nsendTo file:\ndirectory {dest}\ninstances 3\ninflight .tmp\nnodupe_ttl on\npost_broker {broker}\npost_exchange {x_out}\npost_baseUrl file:{dest}\npost_baseDir {dest}\nreject .*\\.tmp$\naccept .*\n",
            dest = env.dest.display()
        ),
    );
    let side_paths = paths(env.root.path());
    // The side queue reads what the sender announces (it must exist:
    // pitcher publishes mandatory).
    rt().block_on(async {
        let mut p = pitcher::broker::publisher(&cl::url(), &side_paths)
            .await
            .unwrap();
        p.declare_exchange(&x_out).await.unwrap();
        let mut c = pitcher::broker::consumer(&cl::url(), &side_paths, &side)
            .await
            .unwrap();
        c.declare_queue(&quorum(&side, &x_out)).await.unwrap();
    });
    env.ok(&["start"]);
    let queue_part = ".sender.hot.".to_string();
    let mut expected = BTreeMap::new();
    let mut figures = String::new();
    std::thread::scope(|s| {
        let flow = s.spawn(|| write_files(&env.hot, "flow", FILES, PACE));
        assert!(
            wait_until(Duration::from_secs(60), || count_files(&env.dest).0 >= 100),
            "nothing flows\n{}",
            tail(&env.logs(), 60)
        );
        let watch = env.instance_pids("watch/hot");
        let senders = env.instance_pids("sender/hot");
        let conns = cl::connections();
        let node = *connected_nodes(&conns, &watch)
            .iter()
            .next()
            .unwrap_or_else(|| panic!("the watch {watch:?} holds no connection: {conns:?}"));
        let senders_there = senders
            .iter()
            .filter(|p| cl::nodes_in(&conns, **p).contains(&node))
            .count();
        let leader = cl::leader(&queue_part);
        let at_kill = count_files(&env.dest).0;
        let killed = cl::kill(node);
        let t = Instant::now();
        assert!(
            wait_until(Duration::from_secs(60), || count_files(&env.dest).0
                >= at_kill + 100),
            "the flow did not resume after {killed}\n{}",
            tail(&env.logs(), 60)
        );
        let resumed = t.elapsed();
        let watch_now = connected_nodes(&cl::connections(), &watch);
        // The node comes back while the files still flow.
        let t = Instant::now();
        cl::start_node(node);
        let restarted = t.elapsed();
        expected = flow.join().unwrap();
        figures = format!(
            "{killed} at {at_kill} files (the watch's node; {senders_there} of {} sender instances there; queue leader node {leader:?}); 100 more arrived {resumed:.1?} later, the watch now on {watch_now:?}; the node was back {restarted:.1?} after start-node",
            senders.len()
        );
    });
    let t = Instant::now();
    assert_tree(&env, &env.dest, &expected, Duration::from_secs(90));
    let drained = t.elapsed();
    let (tmp_left, depth) = (count_files(&env.dest).1, cl::depth(&queue_part));
    let got = announced(&side_paths, &side, &x_out, expected.len());
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "not announced: {missing:?}");
    let (duplicates, _) = cl::sends(&[env.state.join("log")], "sender_hot_");
    let announced_twice: usize = got.values().map(|n| n - 1).sum();
    eprintln!(
        "cluster, daemons: {} files, 0 lost, 0 corrupt, {tmp_left} .tmp left, {duplicates} sent twice, {announced_twice} announced twice, queue depth {depth:?}; {figures}; the rest delivered {drained:.1?} after the last file was written",
        expected.len()
    );
    assert_eq!(tmp_left, 0);
    // At most what the instances held unacked when the node died.
    assert!(duplicates <= 3 * 25, "{duplicates} duplicates");
    assert!(
        wait_until(Duration::from_secs(30), || cl::depth(&queue_part)
            == Some(0)),
        "queue depth {:?}",
        cl::depth(&queue_part)
    );
    let _ = env.run(&["stop"]);
    let _ = env.run(&["cleanup", "sender/hot", "watch/hot"]);
    let mut queues = cl::queues_named(&queue_part);
    queues.push(side);
    cl::delete(&queues, &[x_in, x_out]);
}

/// One sending host: a pitcher installation of its own (config and state
/// dirs), in a network namespace when `host` is one.
struct SendingHost {
    env: Env,
    host: Option<cl::Host>,
}

impl SendingHost {
    fn pitcher(&self, args: &[&str]) -> String {
        let bin = Path::new(env!("CARGO_BIN_EXE_pitcher"));
        let mut c = match &self.host {
            Some(h) => h.command(bin),
            None => std::process::Command::new(bin),
        };
        let o = c
            .args(args)
            .env("PITCHER_CONFIG_DIR", &self.env.config)
            .env("PITCHER_STATE_DIR", &self.env.state)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "pitcher {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// kill -9 of the supervisor, then of every instance: the host dies.
    fn kill(&self) -> usize {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let mut pids: Vec<i32> =
            pitcher::state::pidfile::read_live(&self.env.state.join("supervisor.pid"))
                .into_iter()
                .collect();
        pids.extend(self.env.instance_pids("sender/hot"));
        for p in &pids {
            let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
        pids.len()
    }

    fn log_dir(&self) -> PathBuf {
        self.env.state.join("log")
    }
}

impl Drop for SendingHost {
    fn drop(&mut self) {
        // The instances go before the namespace.
        let _ = self.env.run(&["stop"]);
        self.host.take();
    }
}

#[test]
#[ignore = "needs the RabbitMQ cluster: bash scripts/test.sh"]
fn senders_on_two_hosts_share_a_quorum_queue_and_one_finishes_when_the_other_dies() {
    let _alone = cl::one_at_a_time();
    cl::require();
    let _up = cl::AllUp;
    let id = unique("cluster_h");
    let x_in = format!("xs_guest_{id}");
    let queue = format!("q_guest.sender.shared_{id}");
    // The feeding side: the watch, on this machine's loopback.
    let feed = Env::new();
    write_credentials(&feed, &cl::credentials("127.0.0.1"));
    watch_config(&feed, &cl::config_url("127.0.0.1"), &x_in);
    let dest = feed.dest.clone();
    let mut how = String::new();
    let hosts: Vec<SendingHost> = ["ha", "hb"]
        .iter()
        .zip([81u8, 82])
        .map(|(tag, net)| {
            let host = match cl::Host::new(tag, net) {
                Ok(h) => Some(h),
                Err(e) => {
                    how = format!("two installations side by side (no network namespaces here: {e})");
                    None
                }
            };
            let env = Env::new();
            let addr = host.as_ref().map_or("127.0.0.1".to_string(), |h| h.gateway.clone());
            write_credentials(&env, &cl::credentials(&addr));
            env.write_config(
                "sender/hot.conf",
                &format!(
                    "broker {broker}\nexchange {x_in}\nqueueName {queue}\nqueueType quorum\nsendTo file:\ndirectory {dest}\ninstances 2\ninflight .tmp\nnodupe_ttl on\nreject .*\\.tmp$\naccept .*\n",
                    broker = cl::config_url(&addr),
                    dest = dest.display()
                ),
            );
            SendingHost { env, host }
        })
        .collect();
    if how.is_empty() {
        how = "two network namespaces, each its own pitcher installation".into();
    }
    for h in &hosts {
        h.pitcher(&["start"]);
    }
    feed.ok(&["start"]);
    let logs: Vec<PathBuf> = hosts.iter().map(SendingHost::log_dir).collect();
    let mut expected = BTreeMap::new();
    let mut figures = String::new();
    std::thread::scope(|s| {
        let flow = s.spawn(|| write_files(&feed.hot, "multi", 1200, Duration::from_millis(10)));
        assert!(
            wait_until(Duration::from_secs(60), || count_files(&dest).0 >= 300),
            "nothing flows\n{}\n{}",
            tail(&hosts[0].env.logs(), 30),
            tail(&hosts[1].env.logs(), 30)
        );
        let (_, shares) = cl::sends(&logs, "sender_hot_");
        assert!(
            shares.iter().all(|n| *n > 0),
            "the hosts do not share the work: {shares:?} files sent by each"
        );
        let at_kill = count_files(&dest).0;
        let killed = hosts[0].kill();
        expected = flow.join().unwrap();
        figures = format!(
            "host A killed (-9, {killed} processes) at {at_kill} files, when the hosts had sent {shares:?}"
        );
    });
    let t = Instant::now();
    assert_tree(&hosts[1].env, &dest, &expected, Duration::from_secs(90));
    let drained = t.elapsed();
    let (duplicates, sent) = cl::sends(&logs, "sender_hot_");
    let tmp_left = count_files(&dest).1;
    eprintln!(
        "cluster, two hosts ({how}): {} files, 0 lost, 0 corrupt, {tmp_left} .tmp left, {duplicates} sent twice; sent by host A {}, by host B {}; {figures}; host B delivered the rest {drained:.1?} after the last file was written",
        expected.len(),
        sent[0],
        sent[1]
    );
    assert_eq!(tmp_left, 0);
    // At most what host A's 2 instances held unacked (prefetch 25 each).
    assert!(duplicates <= 2 * 25, "{duplicates} duplicates");
    assert!(
        wait_until(Duration::from_secs(30), || cl::depth(&queue) == Some(0)),
        "queue depth {:?}",
        cl::depth(&queue)
    );
    drop(hosts);
    let _ = feed.run(&["stop"]);
    cl::delete(&[queue], &[x_in]);
}
