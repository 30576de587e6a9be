//! The 3-node RabbitMQ cluster of `scripts/rabbitmq-cluster.sh` for the
//! tests: its URL, its nodes (kill -9, start again, which node holds a
//! connection or leads a queue), and stand-in hosts in network namespaces.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// AMQP ports of nodes 1, 2 and 3.
pub const PORTS: [u16; 3] = [5682, 5683, 5684];

/// The cluster as a config names it (the password in credentials.conf).
pub fn config_url(host: &str) -> String {
    let hosts: Vec<String> = PORTS.iter().map(|p| format!("{host}:{p}")).collect();
    format!("amqp://guest@{}/", hosts.join(","))
}

/// The credentials.conf line for the cluster (matched by its first node).
pub fn credentials(host: &str) -> String {
    format!("amqp://guest:guest@{host}:{}/\n", PORTS[0])
}

/// The cluster as the library takes it: every node, with the password.
pub fn url() -> url::Url {
    let (first, rest) = PORTS.split_first().unwrap();
    let others: Vec<String> = rest.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    url::Url::parse(&format!(
        "amqp://guest:guest@127.0.0.1:{first}/?failover={}",
        others.join(",")
    ))
    .unwrap()
}

/// Node `n` (1..=3) alone.
pub fn node_url(n: usize) -> url::Url {
    url::Url::parse(&format!("amqp://guest:guest@127.0.0.1:{}/", PORTS[n - 1])).unwrap()
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/rabbitmq-cluster.sh")
}

/// `rabbitmq-cluster.sh args…`, killed after `limit`: its output, or why
/// it failed.
pub fn cluster(args: &[&str], limit: Duration) -> Result<String, String> {
    let o = Command::new("timeout")
        .args(["-k", "5", &limit.as_secs().max(1).to_string(), "bash"])
        .arg(script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("rabbitmq-cluster.sh: {e}"))?;
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    if o.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "rabbitmq-cluster.sh {args:?}: {}: {out}{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

/// `rabbitmqctl -n <node n> args…`.
pub fn ctl(n: usize, args: &[&str]) -> Result<String, String> {
    let mut a = vec!["ctl".to_string(), n.to_string()];
    a.extend(args.iter().map(|s| s.to_string()));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    cluster(&a, Duration::from_secs(60))
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .is_ok()
}

/// Node `n` serves AMQP.
pub fn up(n: usize) -> bool {
    port_open(PORTS[n - 1])
}

/// Panics with how to start the cluster unless its first node answers;
/// then brings back any node down (a killed earlier test's).
pub fn require() {
    assert!(
        PORTS.iter().any(|p| port_open(*p)),
        "the RabbitMQ cluster is not running: `bash scripts/rabbitmq-cluster.sh start` \
         (bash scripts/test.sh does it)"
    );
    ensure_all_up();
}

/// Every node up and clustered (`start` is idempotent).
pub fn ensure_all_up() {
    if let Err(e) = cluster(&["start"], Duration::from_secs(180)) {
        panic!("cannot bring the cluster back: {e}");
    }
}

/// kill -9 of node `n`'s Erlang VM.
pub fn kill(n: usize) -> String {
    cluster(&["kill", &n.to_string()], Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"))
        .trim()
        .to_string()
}

/// Node `n` started again, serving when this returns.
pub fn start_node(n: usize) {
    cluster(&["start-node", &n.to_string()], Duration::from_secs(150))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Restarts whatever node is down when dropped, so the next test finds
/// three.
pub struct AllUp;

impl Drop for AllUp {
    fn drop(&mut self) {
        if let Err(e) = cluster(&["start"], Duration::from_secs(180)) {
            eprintln!("could not bring the cluster back: {e}");
        }
    }
}

/// One test at a time: each kills nodes.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The first node that is up, to ask things of.
pub fn live_node() -> usize {
    (1..=3)
        .find(|n| up(*n))
        .expect("no node of the cluster is up")
}

/// Every client connection of the cluster: (node 1..=3, its client
/// properties), in one `rabbitmqctl` call (a connection's Erlang pid names
/// its node: `<pitcher2@localhost.…>`).
pub fn connections() -> Vec<(usize, String)> {
    ctl(
        live_node(),
        &[
            "list_connections",
            "-q",
            "--no-table-headers",
            "pid",
            "client_properties",
        ],
    )
    .unwrap_or_default()
    .lines()
    .filter_map(|l| {
        let (pid, props) = l.split_once('\t')?;
        let n = pid.split("pitcher").nth(1)?.chars().next()?.to_digit(10)?;
        Some((n as usize, props.to_string()))
    })
    .collect()
}

/// The nodes (1..=3) holding a connection of process `pid` (pitcher names
/// its connections `pitcher[<pid>]…`).
pub fn nodes_of(pid: i32) -> Vec<usize> {
    nodes_in(&connections(), pid)
}

/// [`nodes_of`] in a list from [`connections`].
pub fn nodes_in(conns: &[(usize, String)], pid: i32) -> Vec<usize> {
    let tag = format!("pitcher[{pid}]");
    let mut nodes: Vec<usize> = conns
        .iter()
        .filter(|(_, props)| props.contains(&tag))
        .map(|(n, _)| *n)
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes
}

/// The node (1..=3) leading the quorum queue whose name contains `part`;
/// asked again for up to 20 s while the cluster does not say (a leader
/// being elected after a node came back).
pub fn leader(part: &str) -> Option<usize> {
    let t0 = std::time::Instant::now();
    loop {
        if let Some(n) = leader_now(part) {
            return Some(n);
        }
        if t0.elapsed() > Duration::from_secs(20) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn leader_now(part: &str) -> Option<usize> {
    let out = ctl(
        live_node(),
        &["list_queues", "-q", "--no-table-headers", "name", "leader"],
    )
    .ok()?;
    let line = out.lines().find(|l| l.contains(part))?;
    let node = line.split('\t').nth(1)?;
    let digit = node.strip_prefix("pitcher")?.chars().next()?;
    digit.to_digit(10).map(|d| d as usize)
}

/// Ready plus unacked messages of the queue whose name contains `part`.
pub fn depth(part: &str) -> Option<u64> {
    let out = ctl(
        live_node(),
        &[
            "list_queues",
            "-q",
            "--no-table-headers",
            "name",
            "messages",
        ],
    )
    .ok()?;
    let line = out.lines().find(|l| l.contains(part))?;
    line.split('\t').nth(1)?.trim().parse().ok()
}

/// The queue's type, as the cluster says (`quorum`, `classic`).
pub fn queue_type(name: &str) -> Option<String> {
    let out = ctl(
        live_node(),
        &["list_queues", "-q", "--no-table-headers", "name", "type"],
    )
    .ok()?;
    let line = out.lines().find(|l| l.split('\t').next() == Some(name))?;
    Some(line.split('\t').nth(1)?.trim().to_string())
}

/// Deletes queues and exchanges a test made (through whichever node is up).
pub fn delete(queues: &[String], exchanges: &[String]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = url();
        let limit = Duration::from_secs(30);
        for q in queues {
            let _ = tokio::time::timeout(limit, pitcher::broker::amqp::delete_queue(&url, q)).await;
        }
        for x in exchanges {
            let _ =
                tokio::time::timeout(limit, pitcher::broker::amqp::delete_exchange(&url, x)).await;
        }
    });
}

/// Full names of the queues whose name contains `part`.
pub fn queues_named(part: &str) -> Vec<String> {
    ctl(
        live_node(),
        &["list_queues", "-q", "--no-table-headers", "-s", "name"],
    )
    .unwrap_or_default()
    .lines()
    .filter(|l| l.contains(part))
    .map(|l| l.trim().to_string())
    .collect()
}

/// A stand-in host: a network namespace of its own, joined to this one by
/// a veth pair (`10.213.<net>.2` inside, `10.213.<net>.1` here), where
/// the cluster's ports are relayed to the nodes on loopback (the nodes
/// listen on 127.0.0.1 only). Its pitcher processes reach the cluster at
/// `10.213.<net>.1:5682,…`. Removed when dropped.
pub struct Host {
    pub name: String,
    pub gateway: String,
    veth: String,
    relays: Vec<Relay>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

impl Host {
    /// `None` (with why) when namespaces or veth pairs cannot be made here.
    pub fn new(tag: &str, net: u8) -> Result<Host, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("not root".into());
        }
        let name = format!("pitcher-{tag}-{}", std::process::id());
        let veth = format!("pc{tag}{}", std::process::id() % 100_000);
        let peer = format!("{veth}p");
        let gateway = format!("10.213.{net}.1");
        let inside = format!("10.213.{net}.2");
        // Leftovers of a killed run with the same names.
        let _ = ip(&["link", "del", &veth]);
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name])?;
        let mut host = Host {
            name: name.clone(),
            gateway: gateway.clone(),
            veth: veth.clone(),
            relays: Vec::new(),
        };
        let ns = |args: &[&str]| {
            let mut a = vec!["netns", "exec", name.as_str(), "ip"];
            a.extend_from_slice(args);
            ip(&a)
        };
        ns(&["link", "set", "lo", "up"])?;
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer])?;
        ip(&["link", "set", &peer, "netns", &name])?;
        ip(&["addr", "add", &format!("{gateway}/30"), "dev", &veth])?;
        ip(&["link", "set", &veth, "up"])?;
        ns(&["addr", "add", &format!("{inside}/30"), "dev", &peer])?;
        ns(&["link", "set", &peer, "up"])?;
        for p in PORTS {
            host.relays.push(Relay::start(&gateway, p)?);
        }
        Ok(host)
    }

    /// `program args…` run inside the namespace.
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for r in &self.relays {
            r.stop();
        }
        let _ = ip(&["link", "del", &self.veth]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Relays `addr:port` to `127.0.0.1:port`, one thread pair per
/// connection; a side that closes closes the other (a node killed: the
/// client sees its connection drop; a client killed: the node sees it go).
struct Relay {
    stop: Arc<AtomicBool>,
    addr: String,
}

impl Relay {
    fn start(addr: &str, port: u16) -> Result<Relay, String> {
        let listener =
            TcpListener::bind((addr, port)).map_err(|e| format!("bind {addr}:{port}: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((down, _)) => {
                        let _ = down.set_nonblocking(false);
                        let Ok(up) = TcpStream::connect(("127.0.0.1", port)) else {
                            continue;
                        };
                        let _ = up.set_nodelay(true);
                        let _ = down.set_nodelay(true);
                        pipe(down, up);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(Relay {
            stop,
            addr: format!("{addr}:{port}"),
        })
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies both ways until either side ends, then shuts both down.
fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let one_way = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
    };
    one_way(a, b2);
    one_way(b, a2);
}

/// Files sent more than once, from the `sent: … to <path> size:` lines of
/// the logs under each of `log_dirs` whose name starts with `prefix`:
/// (duplicates, sends per log directory).
pub fn sends(log_dirs: &[PathBuf], prefix: &str) -> (usize, Vec<usize>) {
    let mut count: std::collections::BTreeMap<String, usize> = Default::default();
    let mut per_dir = Vec::new();
    for dir in log_dirs {
        let mut here = 0;
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if !e.file_name().to_string_lossy().starts_with(prefix) {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            for line in text.lines() {
                let Some((_, rest)) = line.split_once("sent: ") else {
                    continue;
                };
                if let Some((_, to)) = rest.split_once(" to ") {
                    let path = to.rsplit_once(" size: ").map(|(p, _)| p).unwrap_or(to);
                    *count.entry(path.to_string()).or_default() += 1;
                    here += 1;
                }
            }
        }
        per_dir.push(here);
    }
    (
        count.values().filter(|n| **n > 1).map(|n| n - 1).sum(),
        per_dir,
    )
}
