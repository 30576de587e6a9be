//! The faults the chaos run injects. Each one is injected, held for a
//! while (instant for a kill), then healed.
//!
//! The kills and the destination faults act on any shape; the service
//! faults (sshd restart, network cut, RabbitMQ restart, kill of the
//! sender's ssh master) on the tutorial's shape (see `services`). Other
//! kinds can come as executable hooks in `$CHAOS_HOOKS`, run as
//! `hook inject RUN_DIR` and `hook heal RUN_DIR` without touching this file.

use super::{services, Rng};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// One kind of fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// kill -9 of the supervisor (the cron'd sanity brings it back).
    KillSupervisor,
    /// kill -9 of a watch instance.
    KillWatch,
    /// kill -9 of a sender instance.
    KillSender,
    /// The next directory the sender needs made immutable (EPERM, even
    /// for root), thawed when healed.
    DestUnwritable,
    /// The destination file system filled up (a tmpfs of its own), freed
    /// when healed.
    DestFull,
    /// kill -9 of the ssh master a sender instance talks sftp through.
    KillSshMaster,
    /// The loopback sshd killed -9 with its sessions, started again when
    /// healed (`sshd-harness.sh kill` … `start`).
    SshdRestart,
    /// Every packet to and from the sshd port dropped (iptables on `lo`),
    /// for `CHAOS_NETCUT_SECS` (30 s).
    NetworkCut,
    /// `rabbitmqctl stop_app`, `start_app` when healed.
    RabbitRestart,
    /// kill -9 of the cluster node holding most of the run's connections
    /// (`scripts/rabbitmq-cluster.sh kill`), started again when healed.
    KillConnectedNode,
    /// kill -9 of the node leading the sender's quorum queue, started
    /// again when healed.
    KillQueueLeader,
    /// Every cluster node stopped and started again, one after another.
    RollingRestart,
    /// An executable from `$CHAOS_HOOKS`.
    Hook(PathBuf),
}

impl Fault {
    /// A short name for the report.
    pub fn name(&self) -> String {
        match self {
            Fault::KillSupervisor => "kill-9-supervisor".into(),
            Fault::KillWatch => "kill-9-watch".into(),
            Fault::KillSender => "kill-9-sender".into(),
            Fault::DestUnwritable => "dest-unwritable".into(),
            Fault::DestFull => "dest-full".into(),
            Fault::KillSshMaster => "kill-9-ssh-master".into(),
            Fault::SshdRestart => "sshd-restart".into(),
            Fault::NetworkCut => "network-cut".into(),
            Fault::RabbitRestart => "rabbitmq-restart".into(),
            Fault::KillConnectedNode => "kill-9-connected-node".into(),
            Fault::KillQueueLeader => "kill-9-queue-leader".into(),
            Fault::RollingRestart => "rolling-restart".into(),
            Fault::Hook(p) => format!(
                "hook:{}",
                p.file_name().unwrap_or_default().to_string_lossy()
            ),
        }
    }

    /// True for the faults that act on the cluster's nodes.
    pub fn on_cluster(&self) -> bool {
        matches!(
            self,
            Fault::KillConnectedNode | Fault::KillQueueLeader | Fault::RollingRestart
        )
    }

    /// True for faults that last until healed.
    pub fn held(&self) -> bool {
        !matches!(
            self,
            Fault::KillSupervisor
                | Fault::KillWatch
                | Fault::KillSender
                | Fault::KillSshMaster
                | Fault::RollingRestart
        )
    }

    /// How long this fault lasts: `default`, but a network cut lasts
    /// `CHAOS_NETCUT_SECS` (30 s), long enough for open connections to
    /// time out.
    pub fn hold(&self, default: Duration) -> Duration {
        match self {
            Fault::NetworkCut => Duration::from_secs(
                std::env::var("CHAOS_NETCUT_SECS")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(30),
            ),
            _ => default,
        }
    }
}

/// Held from a cluster fault's injection to its healing (see
/// [`Fault::on_cluster`]).
pub fn one_cluster_fault() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The executables in `$CHAOS_HOOKS`, each a fault.
pub fn hooks() -> Vec<Fault> {
    let Some(dir) = std::env::var_os("CHAOS_HOOKS") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        use std::os::unix::fs::PermissionsExt;
        let exec = e
            .metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if exec.unwrap_or(false) {
            out.push(Fault::Hook(e.path()));
        }
    }
    out.sort_by_key(|f| f.name());
    out
}

/// Where the faults act.
pub struct Target<'a> {
    pub state: &'a Path,
    pub dest: &'a Path,
    pub run_dir: &'a Path,
    /// The highest hot-tree directory index fed so far.
    pub fed_dir: usize,
}

fn live_pids(dir: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().ends_with(".pid") {
            if let Some(p) = pitcher::state::pidfile::read_live(&e.path()) {
                pids.push(p);
            }
        }
    }
    pids
}

/// ssh processes whose command line names the control directory of a
/// live sender instance (`/tmp/pitcher-<uid>/<pid>/`): the masters.
fn ssh_masters(sender_state: &Path) -> Vec<i32> {
    let uid = nix::unistd::getuid();
    let dirs: Vec<String> = live_pids(sender_state)
        .into_iter()
        .map(|p| format!("/tmp/pitcher-{uid}/{p}/"))
        .collect();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.starts_with("ssh") && dirs.iter().any(|d| cmd.contains(d.as_str())) {
            found.push(pid);
        }
    }
    found
}

/// What a held fault needs to undo it.
pub enum Undo {
    Nothing,
    Remove(PathBuf),
    /// `chattr -i` the directory.
    Thaw(PathBuf),
    Hook(PathBuf),
    StartSshd,
    RestoreNetwork,
    StartRabbit,
    /// Start cluster node N again.
    StartNode(usize),
}

/// Injects `f`; returns a line for the log and how to heal it.
pub fn inject(f: &Fault, t: &Target, rng: &mut Rng) -> (String, Undo) {
    let kill9 = |pids: Vec<i32>, what: &str, rng: &mut Rng| match pids.len() {
        0 => (format!("{what}: none running"), Undo::Nothing),
        n => {
            let p = pids[rng.below(n as u64) as usize];
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            (format!("{what} pid {p} killed"), Undo::Nothing)
        }
    };
    match f {
        Fault::KillSupervisor => kill9(
            pitcher::state::pidfile::read_live(&t.state.join("supervisor.pid"))
                .into_iter()
                .collect(),
            "supervisor",
            rng,
        ),
        Fault::KillWatch => kill9(live_pids(&t.state.join("watch/hot")), "watch", rng),
        Fault::KillSender => kill9(live_pids(&t.state.join("sender/hot")), "sender", rng),
        Fault::KillSshMaster => kill9(ssh_masters(&t.state.join("sender/hot")), "ssh master", rng),
        Fault::SshdRestart => {
            let line = match services::kill_sshd() {
                true => "sshd and its sessions killed -9".to_string(),
                false => "!!! sshd-harness.sh kill failed !!!".to_string(),
            };
            (line, Undo::StartSshd)
        }
        Fault::NetworkCut => match services::cut_network() {
            Ok(()) => (
                format!("packets to and from port {} dropped", services::sshd_port()),
                Undo::RestoreNetwork,
            ),
            Err(e) => (format!("!!! cannot cut: {e} !!!"), Undo::Nothing),
        },
        Fault::RabbitRestart => {
            let line = match services::stop_rabbitmq() {
                true => "rabbitmqctl stop_app".to_string(),
                false => "!!! rabbitmqctl stop_app failed !!!".to_string(),
            };
            (line, Undo::StartRabbit)
        }
        Fault::KillConnectedNode | Fault::KillQueueLeader => {
            use crate::cluster_support as cl;
            // One node down at a time: whatever an earlier fault left
            // down is back first (a quorum queue needs 2 of 3).
            cl::ensure_all_up();
            let node = if *f == Fault::KillQueueLeader {
                cl::leader(".sender.hot.")
            } else {
                most_connected_node(t.state)
            };
            match node {
                Some(n) => (cl::kill(n), Undo::StartNode(n)),
                None => ("!!! no node found !!!".to_string(), Undo::Nothing),
            }
        }
        Fault::RollingRestart => {
            use crate::cluster_support as cl;
            cl::ensure_all_up();
            let mut took = Vec::new();
            for n in 1..=3 {
                let t0 = std::time::Instant::now();
                let stopped = cl::ctl(n, &["stop"]).is_ok();
                let n_ = n.to_string();
                let started = cl::cluster(&["start-node", &n_], Duration::from_secs(150));
                took.push(match (stopped, started) {
                    (true, Ok(_)) => {
                        format!("node {n} restarted in {:.1}s", t0.elapsed().as_secs_f64())
                    }
                    (_, e) => format!("!!! node {n}: stopped {stopped}, started {e:?} !!!"),
                });
            }
            (took.join(", "), Undo::Nothing)
        }
        Fault::DestUnwritable => {
            // The next directory the sender will need, made immutable: no
            // one (root included) can create files in it until it is
            // thawed. A permission problem an operator fixes: transient.
            let mut k = t.fed_dir + 1;
            while t.dest.join(format!("d{k:03}")).exists() {
                k += 1;
            }
            let p = t.dest.join(format!("d{k:03}"));
            match freeze(&p, t.dest) {
                Ok(()) => (format!("{} made immutable", p.display()), Undo::Thaw(p)),
                Err(e) => {
                    let _ = std::fs::remove_dir(&p);
                    (format!("cannot freeze {}: {e}", p.display()), Undo::Nothing)
                }
            }
        }
        Fault::DestFull => {
            let p = t.dest.join(".chaos-filler");
            let filled = fill(&p);
            (
                format!("destination filled ({filled} bytes)"),
                Undo::Remove(p),
            )
        }
        Fault::Hook(h) => {
            let ok = Command::new(h).arg("inject").arg(t.run_dir).status();
            (
                format!("{} inject: {ok:?}", h.display()),
                Undo::Hook(h.clone()),
            )
        }
    }
}

/// The cluster node holding most connections of the run's watch and
/// sender instances.
fn most_connected_node(state: &Path) -> Option<usize> {
    let pids: Vec<i32> = ["watch/hot", "sender/hot"]
        .iter()
        .flat_map(|c| live_pids(&state.join(c)))
        .collect();
    let conns = crate::cluster_support::connections();
    let mut count = [0usize; 4];
    for p in pids {
        for n in crate::cluster_support::nodes_in(&conns, p) {
            count[n] += 1;
        }
    }
    (1..=3).filter(|n| count[*n] > 0).max_by_key(|n| count[*n])
}

/// Writes zeros to `p` until the file system is full.
fn fill(p: &Path) -> u64 {
    let Ok(mut f) = std::fs::File::create(p) else {
        return 0;
    };
    let chunk = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k as u64,
        }
    }
    let _ = f.sync_all();
    n
}

/// Makes the directory `p` (owned like `like`) and sets its immutable
/// attribute.
pub fn freeze(p: &Path, like: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir(p)?;
    let m = std::fs::metadata(like)?;
    std::os::unix::fs::chown(p, Some(m.uid()), Some(m.gid()))?;
    let out = Command::new("chattr").arg("+i").arg(p).output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "chattr +i: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Heals a held fault.
pub fn heal(u: Undo, run_dir: &Path) -> String {
    match u {
        Undo::Nothing => String::new(),
        Undo::Remove(p) => {
            let _ = std::fs::remove_file(&p);
            format!("removed {}", p.display())
        }
        Undo::Thaw(p) => {
            let ok = Command::new("chattr").arg("-i").arg(&p).status();
            format!("thawed {}: {ok:?}", p.display())
        }
        Undo::Hook(h) => {
            let ok = Command::new(&h).arg("heal").arg(run_dir).status();
            format!("{} heal: {ok:?}", h.display())
        }
        Undo::StartSshd => {
            // `start` checks a login, which a network cut can fail while
            // sshd itself is up; a few tries, then say which it is.
            for _ in 0..3 {
                if services::start_sshd() {
                    return "sshd started".into();
                }
            }
            match services::sshd_running() {
                true => "sshd running, its login check failed (network cut?)".into(),
                false => "!!! sshd not started !!!".into(),
            }
        }
        Undo::RestoreNetwork => {
            let removed = services::uncut_network();
            let left = services::cut_rules_left();
            match left {
                0 => format!("network back ({removed} rules removed)"),
                n => format!("{removed} rules removed; {n} left by an overlapping cut"),
            }
        }
        Undo::StartNode(n) => {
            let t0 = std::time::Instant::now();
            let n_ = n.to_string();
            match crate::cluster_support::cluster(&["start-node", &n_], Duration::from_secs(150)) {
                Ok(_) => format!("node {n} started, up in {:.1}s", t0.elapsed().as_secs_f64()),
                Err(e) => format!("!!! node {n} not started: {e} !!!"),
            }
        }
        Undo::StartRabbit => format!(
            "rabbitmqctl start_app, await_startup: {}",
            services::start_rabbitmq()
        ),
    }
}

/// A tmpfs of its own mounted on the destination (so it can fill up);
/// unmounted when dropped.
pub struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `mb` MiB on `at`; `None` when mount is not
    /// allowed here.
    pub fn mount(at: &Path, mb: u64) -> Option<SmallDisk> {
        SmallDisk::mount_owned(at, mb, None)
    }

    /// Mounts a tmpfs of `mb` MiB on `at`, its root owned by `owner`
    /// (`uid`, `gid`) when given; `None` when mount is not allowed here.
    pub fn mount_owned(at: &Path, mb: u64, owner: Option<(String, String)>) -> Option<SmallDisk> {
        let mut opts = format!("size={mb}m,mode=0755");
        if let Some((u, g)) = owner {
            opts += &format!(",uid={u},gid={g}");
        }
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(at)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        ok.then(|| SmallDisk {
            at: at.to_path_buf(),
        })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).output();
    }
}
