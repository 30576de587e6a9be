//! The chaos run: feed a ledger of files into the hot directory while
//! faults are injected at random moments, with `pitcher sanity` run every
//! couple of seconds as cron would; then wait for quiescence and compare
//! the destination with the ledger.
//!
//! Three shapes ([`Shape`]):
//! * `Local`: watch → `local:` → sender ×N → `file:` destination (which
//!   `CHAOS_SEND_TO`/`CHAOS_DEST_DIR` can move elsewhere);
//! * `SftpAmqp`, the tutorial's: watch → RabbitMQ → sender ×3–5 →
//!   `sendTo sftp://hpfx` (see `tutorial`), with sshd restarts, network
//!   cuts and RabbitMQ restarts besides (see `services`);
//! * `ClusterSftp`: the tutorial's shape on the 3-node cluster of
//!   `scripts/rabbitmq-cluster.sh` (every node in the configs' broker
//!   URLs, a quorum queue) while cluster nodes die: the node most
//!   connections are on and the queue's leader killed -9 (each twice),
//!   then a rolling restart of the three.
//!
//! Knobs (environment): `CHAOS_FILES`, `CHAOS_FEED_SECS`, `CHAOS_FAULTS`,
//! `CHAOS_SEED`, `CHAOS_DEADLINE_SECS`, `CHAOS_HOOKS`, `CHAOS_NETCUT_SECS`.

pub mod faults;
pub mod ledger;
pub mod services;
pub mod tutorial;

use crate::common::Env;
use faults::{Fault, SmallDisk, Target};
use ledger::Ledger;
use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift64*), so a run can be replayed
/// with its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The pipeline a run drives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// watch → `local:` → sender → `file:`.
    Local,
    /// The tutorial's: watch → RabbitMQ → sender → `sftp://hpfx`.
    SftpAmqp,
    /// The tutorial's on the 3-node cluster (quorum queue).
    ClusterSftp,
}

/// What one run does.
#[derive(Debug, Clone)]
pub struct Plan {
    pub shape: Shape,
    pub files: usize,
    /// Files are fed evenly over this time.
    pub feed: Duration,
    /// How many faults, at random moments of the feed.
    pub faults: usize,
    /// Fault kinds to draw from (each used at least once when `faults`
    /// allows).
    pub kinds: Vec<Fault>,
    pub sender_instances: u32,
    /// How long a held fault lasts.
    pub hold: Duration,
    /// Give up waiting for quiescence after this (from the end of faults).
    pub deadline: Duration,
    pub seed: u64,
}

fn env_num(k: &str) -> Option<u64> {
    std::env::var(k).ok()?.parse().ok()
}

impl Plan {
    /// `files` over `feed` with `faults` faults, then what the environment
    /// overrides.
    pub fn new(files: usize, feed_secs: u64, faults: usize, deadline_secs: u64) -> Plan {
        let seed = env_num("CHAOS_SEED").unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        });
        let mut kinds = vec![
            Fault::KillSender,
            Fault::KillWatch,
            Fault::KillSupervisor,
            Fault::DestUnwritable,
            Fault::DestFull,
        ];
        kinds.extend(faults::hooks());
        Plan {
            shape: Shape::Local,
            files: env_num("CHAOS_FILES").map_or(files, |n| n as usize),
            feed: Duration::from_secs(env_num("CHAOS_FEED_SECS").unwrap_or(feed_secs)),
            faults: env_num("CHAOS_FAULTS").map_or(faults, |n| n as usize),
            kinds,
            sender_instances: 3,
            hold: Duration::from_secs(3),
            deadline: Duration::from_secs(env_num("CHAOS_DEADLINE_SECS").unwrap_or(deadline_secs)),
            seed,
        }
    }

    /// The tutorial's shape: like [`Plan::new`], with 3–5 sender
    /// instances (drawn from the seed) and every fault kind: the kills
    /// (the sender's ssh master too), sshd restart, network cut, RabbitMQ
    /// restart, remote disk full and unwritable.
    pub fn sftp_amqp(files: usize, feed_secs: u64, faults: usize, deadline_secs: u64) -> Plan {
        let mut plan = Plan::new(files, feed_secs, faults, deadline_secs);
        plan.shape = Shape::SftpAmqp;
        plan.sender_instances = 3 + (plan.seed % 3) as u32;
        let hooks: Vec<Fault> = plan
            .kinds
            .drain(..)
            .filter(|k| matches!(k, Fault::Hook(_)))
            .collect();
        // In the order of their slots (see `schedule`): the network cut
        // last, as it outlasts the feed.
        plan.kinds = vec![
            Fault::KillSshMaster,
            Fault::DestFull,
            Fault::KillSender,
            Fault::RabbitRestart,
            Fault::KillWatch,
            Fault::SshdRestart,
            Fault::DestUnwritable,
            Fault::KillSupervisor,
            Fault::NetworkCut,
        ];
        plan.kinds.extend(hooks);
        plan
    }

    /// The tutorial's shape on the 3-node cluster, 5 sender instances: in
    /// this order, each at a slot of its own (`faults` 5), the node most
    /// connections are on and the queue's leader killed -9, twice, then a
    /// rolling restart. Extra faults fall among them at random.
    pub fn cluster_sftp(files: usize, feed_secs: u64, faults: usize, deadline_secs: u64) -> Plan {
        let mut plan = Plan::new(files, feed_secs, faults, deadline_secs);
        plan.shape = Shape::ClusterSftp;
        plan.sender_instances = 5;
        plan.hold = Duration::from_secs(4);
        plan.kinds = vec![
            Fault::KillConnectedNode,
            Fault::KillQueueLeader,
            Fault::KillConnectedNode,
            Fault::KillQueueLeader,
            Fault::RollingRestart,
        ];
        plan
    }
}

/// The figures of a run.
#[derive(Debug)]
pub struct Summary {
    pub shape: Shape,
    pub sender_instances: u32,
    pub files: usize,
    pub lost: usize,
    pub corrupt: usize,
    pub duplicates: usize,
    pub tmp_left: usize,
    pub retry_left: u64,
    /// Log lines with terminal escape codes (colour) in them.
    pub escaped_log_lines: usize,
    pub faults: Vec<String>,
    pub sanity_actions: Vec<String>,
    /// From the last fault healed (and the last file fed) to all delivered.
    pub drain: Duration,
    pub total: Duration,
    pub examples: Vec<String>,
    pub seed: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "chaos ({:?}, {} sender instances): files {}, lost {}, corrupt {}, duplicates {}, tmp left {}, retry left {}, escaped log lines {}; drained {:.1}s after the last fault, total {:.1}s (seed {}; logs in {})",
            self.shape,
            self.sender_instances,
            self.files,
            self.lost,
            self.corrupt,
            self.duplicates,
            self.tmp_left,
            self.retry_left,
            self.escaped_log_lines,
            self.drain.as_secs_f64(),
            self.total.as_secs_f64(),
            self.seed,
            evidence_dir(self.seed).display()
        )?;
        writeln!(f, "faults ({}):", self.faults.len())?;
        for l in &self.faults {
            writeln!(f, "  {l}")?;
        }
        writeln!(f, "sanity actions ({}):", self.sanity_actions.len())?;
        for l in &self.sanity_actions {
            writeln!(f, "  {l}")?;
        }
        for e in &self.examples {
            writeln!(f, "  e.g. {e}")?;
        }
        Ok(())
    }
}

/// The fault schedule: (offset from the start, fault), sorted. The first
/// of each kind gets a slot of its own, in the order of `kinds`, spread
/// over 10–95 % of the feed, so that each one bites at least once instead
/// of hiding inside another (a 30 s network cut would swallow most of a
/// short run); the rest fall at random moments and overlap freely.
fn schedule(plan: &Plan, rng: &mut Rng, kinds: &[Fault]) -> Vec<(Duration, Fault)> {
    let slots = kinds.len().min(plan.faults);
    let mut out: Vec<(Duration, Fault)> = (0..plan.faults)
        .map(|i| {
            let (kind, fraction) = if i < slots {
                let jitter = rng.below(100) as f64 / 100.0;
                (kinds[i].clone(), (i as f64 + jitter) / slots as f64)
            } else {
                let kind = kinds[rng.below(kinds.len() as u64) as usize].clone();
                (kind, rng.below(1000) as f64 / 1000.0)
            };
            (plan.feed.mul_f64(0.1 + 0.85 * fraction), kind)
        })
        .collect();
    out.sort_by_key(|(at, _)| *at);
    out
}

/// Runs sanity every `every` in the background, collecting what it did.
fn cron_sanity(
    env: &Env,
    every: Duration,
) -> (
    std::sync::mpsc::Sender<()>,
    std::thread::JoinHandle<Vec<String>>,
) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut cmd = env.cmd();
    cmd.args(["sanity", "--quiet"]);
    let handle = std::thread::spawn(move || {
        let mut lines = Vec::new();
        while rx.recv_timeout(every).is_err() {
            if let Ok(o) = cmd.output() {
                lines.extend(String::from_utf8_lossy(&o.stdout).lines().map(String::from));
            }
        }
        lines
    });
    (tx, handle)
}

fn retry_left(env: &Env) -> u64 {
    let out = env.run(&["status", "--json"]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| {
            v.as_array()
                .map(|a| a.iter().filter_map(|r| r["retry"].as_u64()).sum())
        })
        .unwrap_or(u64::MAX)
}

/// Where a run's logs, ledger and status are kept for reading afterwards:
/// `target/tmp/chaos-<seed>/`.
pub fn evidence_dir(seed: u64) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chaos-{seed}"))
}

fn keep_evidence(env: &Env, seed: u64) {
    let dir = evidence_dir(seed);
    let _ = std::fs::create_dir_all(dir.join("log"));
    for e in std::fs::read_dir(env.state.join("log"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::copy(e.path(), dir.join("log").join(e.file_name()));
    }
    let _ = std::fs::copy(env.root.path().join("ledger.tsv"), dir.join("ledger.tsv"));
    let _ = std::fs::write(dir.join("status.txt"), env.run(&["status"]).stdout);
}

/// The destination of a run and what undoes its setup. Fields drop in
/// order: the services come back first (the broker is needed to delete
/// the queue), then the tutorial's configs and remote tmpfs go, then the
/// local tmpfs.
struct Setup {
    /// Every cluster node running again (before the broker clean-up).
    _cluster: Option<crate::cluster_support::AllUp>,
    _services: Option<services::Services>,
    tutorial: Option<tutorial::Tutorial>,
    disk: Option<SmallDisk>,
    dest: std::path::PathBuf,
    /// The fault kinds this setup allows.
    kinds: Vec<Fault>,
}

/// Writes the configs of `plan.shape` into `env` and prepares the
/// destination (a tmpfs of its own, so that it can fill up).
fn prepare(plan: &Plan, env: &Env) -> Setup {
    let mut kinds = plan.kinds.clone();
    let mb = (plan.files as u64 * 16 / 1024).max(32);
    let mut setup = match plan.shape {
        Shape::Local => {
            let send_to = std::env::var("CHAOS_SEND_TO").unwrap_or_else(|_| "file:".into());
            let dest = std::env::var_os("CHAOS_DEST_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| env.dest.clone());
            let disk = if kinds.contains(&Fault::DestFull) && dest == env.dest {
                SmallDisk::mount(&env.dest, mb)
            } else {
                None
            };
            if dest != env.dest {
                kinds.retain(|k| !matches!(k, Fault::DestFull | Fault::DestUnwritable));
            }
            env.hot_directory(plan.sender_instances, "");
            if send_to != "file:" {
                let p = env.config.join("sender/hot.conf");
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let text = text.replace("sendTo file:", &format!("sendTo {send_to}"));
                std::fs::write(p, text).expect("sender config");
            }
            Setup {
                _cluster: None,
                _services: None,
                tutorial: None,
                disk,
                dest,
                kinds: Vec::new(),
            }
        }
        Shape::SftpAmqp => {
            // Whatever a killed earlier run left (a rule, a stopped
            // broker) is put back before the broker is needed.
            for line in services::restore_all() {
                eprintln!("chaos: before the run: {line}");
            }
            let t = tutorial::Tutorial::setup(env, plan.sender_instances, mb);
            if !services::can_cut_network() {
                eprintln!("!!! chaos: iptables is not usable here (apt-get install -y iptables, as root): no network cuts !!!");
                kinds.retain(|k| *k != Fault::NetworkCut);
            }
            Setup {
                _cluster: None,
                _services: Some(services::Services::arm()),
                dest: t.remote.clone(),
                disk: None,
                tutorial: Some(t),
                kinds: Vec::new(),
            }
        }
        Shape::ClusterSftp => {
            crate::cluster_support::require();
            for line in services::restore_all() {
                eprintln!("chaos: before the run: {line}");
            }
            let site = tutorial::BrokerSite::cluster();
            let t = tutorial::Tutorial::setup_on(env, plan.sender_instances, mb, &site);
            Setup {
                _cluster: Some(crate::cluster_support::AllUp),
                _services: Some(services::Services::arm()),
                dest: t.remote.clone(),
                disk: None,
                tutorial: Some(t),
                kinds: Vec::new(),
            }
        }
    };
    let has_disk =
        setup.disk.is_some() || setup.tutorial.as_ref().is_some_and(|t| t.disk.is_some());
    if !has_disk && kinds.contains(&Fault::DestFull) {
        eprintln!("!!! chaos: cannot mount a tmpfs on the destination: no dest-full faults !!!");
        kinds.retain(|k| *k != Fault::DestFull);
    }
    setup.kinds = kinds;
    setup
}

/// Where a fault acts (owned, for its thread).
struct Where {
    state: std::path::PathBuf,
    dest: std::path::PathBuf,
    run_dir: std::path::PathBuf,
    fed_dir: usize,
}

/// One fault, in a thread of its own so that a slow one (a broker
/// stopping, sshd waiting for a login through a cut network) neither
/// delays the feed nor the other faults: injected, held, healed, each
/// step logged to `log` with its time from `start`.
fn fault_thread(
    f: Fault,
    w: Where,
    hold: Duration,
    seed: u64,
    start: Instant,
    log: std::sync::mpsc::Sender<String>,
) {
    // Cluster faults one at a time, each healed before the next: two
    // nodes down at once would stop the quorum queue (and a node started
    // while another is down waits for it), which is another test.
    let _one_node = f.on_cluster().then(faults::one_cluster_fault);
    let mut rng = Rng::new(seed);
    let target = Target {
        state: &w.state,
        dest: &w.dest,
        run_dir: &w.run_dir,
        fed_dir: w.fed_dir,
    };
    let at = start.elapsed();
    let (line, undo) = faults::inject(&f, &target, &mut rng);
    let _ = log.send(format!("{:5.1}s {}: {line}", at.as_secs_f64(), f.name()));
    if f.held() {
        std::thread::sleep(hold);
        let line = faults::heal(undo, &w.run_dir);
        if !line.is_empty() {
            let t = start.elapsed().as_secs_f64();
            let _ = log.send(format!("{t:5.1}s healed {}: {line}", f.name()));
        }
    }
}

/// The fault threads of a run; dropping joins them (each is bounded:
/// its hold plus bounded commands), so a panicking run still heals every
/// fault before the guards put the services back.
struct FaultThreads(Vec<std::thread::JoinHandle<()>>);

impl FaultThreads {
    fn done(&self) -> bool {
        self.0.iter().all(|h| h.is_finished())
    }
}

impl Drop for FaultThreads {
    fn drop(&mut self) {
        for h in self.0.drain(..) {
            let _ = h.join();
        }
    }
}

/// Runs `plan` and returns its figures.
pub fn run(plan: &Plan) -> Summary {
    let t0 = Instant::now();
    let mut rng = Rng::new(plan.seed);
    let env = Env::new();
    // Declared after `env`, so it is undone before the tree is removed.
    let setup = prepare(plan, &env);
    let dest = setup.dest.clone();
    let kinds = setup.kinds.clone();
    env.ok(&["start"]);
    let (stop_cron, cron) = cron_sanity(&env, Duration::from_secs(2));
    let mut plan_faults = schedule(plan, &mut rng, &kinds).into_iter().peekable();
    let (log_tx, log_rx) = std::sync::mpsc::channel::<String>();
    // Declared after `setup`: every fault is healed before the guards run.
    let mut faults_running = FaultThreads(Vec::new());
    let mut fault_log = Vec::new();
    let mut ledger = Ledger::default();
    let start = Instant::now();
    let mut i = 0;
    while i < plan.files || plan_faults.peek().is_some() || !faults_running.done() {
        let now = start.elapsed();
        let due = ((now.as_secs_f64() / plan.feed.as_secs_f64().max(0.001)) * plan.files as f64)
            .ceil() as usize;
        while i < plan.files.min(due) {
            ledger
                .feed(&env.hot, i, &mut rng)
                .expect("feeding the hot directory");
            i += 1;
        }
        while plan_faults.peek().is_some_and(|(at, _)| *at <= now) {
            let Some((_, f)) = plan_faults.next() else {
                break;
            };
            let where_ = Where {
                state: env.state.clone(),
                dest: dest.clone(),
                run_dir: env.root.path().to_path_buf(),
                fed_dir: i / ledger::PER_DIR,
            };
            let hold = f.hold(plan.hold);
            let seed = rng.next();
            let tx = log_tx.clone();
            faults_running.0.push(std::thread::spawn(move || {
                fault_thread(f, where_, hold, seed, start, tx)
            }));
        }
        fault_log.extend(log_rx.try_iter());
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(faults_running);
    fault_log.extend(log_rx.try_iter());
    let _ = ledger.save(&env.root.path().join("ledger.tsv"));
    let calm = Instant::now();
    let mut check = ledger.check(&dest);
    let mut retry = u64::MAX;
    while calm.elapsed() < plan.deadline {
        check = ledger.check(&dest);
        if check.complete() {
            retry = retry_left(&env);
            if retry == 0 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let drain = calm.elapsed();
    if retry != 0 {
        retry = retry_left(&env);
    }
    let _ = stop_cron.send(());
    let sanity_actions = cron.join().unwrap_or_default();
    let duplicates = ledger::duplicates(&env.state.join("log"), "sender_hot_");
    let mut examples = check.examples.clone();
    if !check.complete() {
        let logs = env.logs();
        let tail: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("ERROR"))
            .take(10)
            .collect();
        examples.extend(tail.into_iter().map(String::from));
    }
    let escaped_log_lines = env.logs().lines().filter(|l| l.contains('\x1b')).count();
    let summary = Summary {
        shape: plan.shape,
        sender_instances: plan.sender_instances,
        files: plan.files,
        lost: check.lost,
        corrupt: check.corrupt,
        duplicates,
        tmp_left: check.tmp_left,
        retry_left: retry,
        escaped_log_lines,
        faults: fault_log,
        sanity_actions,
        drain,
        total: t0.elapsed(),
        examples,
        seed: plan.seed,
    };
    keep_evidence(&env, plan.seed);
    let _ = env.run(&["stop"]);
    drop(setup);
    summary
}
