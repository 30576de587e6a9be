//! Daemons that never stay down: the supervisor's restarts and crash
//! loops, `pitcher sanity`, systemd's supervisor beside `start`/`stop`,
//! and `vip` (in a network namespace of its own).

mod common;

use common::{assert_delivered, content, wait_until, Env};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn supervisor_pid(env: &Env) -> Option<i32> {
    pitcher::state::pidfile::read_live(&env.state.join("supervisor.pid"))
}

fn status_state(env: &Env, config: &str) -> String {
    let out = env.ok(&["status", "--json", config]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["state"].as_str().unwrap_or("").to_string()
}

fn signal(pid: i32, s: Signal) {
    let _ = kill(Pid::from_raw(pid), s);
}

/// A config dir for systemd's user units, apart from the real one.
fn isolated(env: &Env, cmd: &mut Command) {
    cmd.env("XDG_CONFIG_HOME", env.root.path().join("xdg"));
}

#[test]
fn a_crash_looping_instance_is_held_back_shown_as_loop_and_runs_once_its_config_is_fixed() {
    let env = Env::new();
    env.hot_directory(1, "");
    let bad = format!(
        "broker local:\nexchange xs_it_loop\nsendTo gopher://nowhere\ndirectory {}\n",
        env.dest.display()
    );
    env.write_config("sender/loop.conf", &bad);
    env.ok(&["start", "watch/hot"]);
    // Started by hand, so `start` does not wait 15 s for it.
    let marker = env.state.join("sender/loop/started");
    std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
    std::fs::write(&marker, "0").unwrap();
    assert!(
        wait_until(LIMIT, || status_state(&env, "sender/loop") == "loop"),
        "never shown as a crash loop: {}",
        env.ok(&["status"])
    );
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.state.join("sender/loop/supervisor.json")).unwrap(),
    )
    .unwrap();
    let i = &report["instances"][0];
    assert!(i["restarts"].as_u64().unwrap() >= 2, "{report}");
    assert!(
        i["last_exit"].as_str().unwrap().contains("exit status"),
        "{report}"
    );
    // Held back: exits are spaced by the growing delay, not every 0.5 s.
    let exits = |env: &Env| env.logs().matches("sender/loop instance 1 exited").count();
    let n0 = exits(&env);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        exits(&env) - n0 <= 2,
        "not backing off: {}",
        exits(&env) - n0
    );
    // Fixing the file clears the delay: the instance starts and stays up.
    env.write_config(
        "sender/loop.conf",
        &bad.replace("gopher://nowhere", "file:"),
    );
    assert!(
        wait_until(Duration::from_secs(20), || env
            .instance_pids("sender/loop")
            .len()
            == 1),
        "{}",
        env.logs()
    );
    assert!(wait_until(Duration::from_secs(5), || status_state(
        &env,
        "sender/loop"
    ) == "run"));
}

#[test]
fn sanity_brings_back_a_killed_supervisor_which_restarts_the_missing_instance() {
    let env = Env::new();
    env.hot_directory(2, "");
    env.ok(&["start"]);
    let sup = supervisor_pid(&env).expect("supervisor");
    signal(sup, Signal::SIGKILL);
    let senders = env.instance_pids("sender/hot");
    signal(senders[0], Signal::SIGKILL);
    assert!(wait_until(LIMIT, || supervisor_pid(&env).is_none()
        && env.instance_pids("sender/hot").len() == 1));
    let out = env.ok(&["sanity"]);
    assert!(out.contains("supervisor was not running: started"), "{out}");
    assert!(
        out.contains("sender/hot had 1/2 instances; all 2 running again"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 2, "{out}");
    assert_eq!(env.instance_pids("sender/hot").len(), 2);
    // Nothing left to do: one summary line.
    let out = env.ok(&["sanity"]);
    assert!(
        out.starts_with("sanity: nothing to fix (2 configs started, 3 instances"),
        "{out}"
    );
    // Files still flow.
    std::fs::write(env.hot.join("after"), b"after").unwrap();
    let mut expected = BTreeMap::new();
    expected.insert("after".to_string(), b"after".to_vec());
    assert_delivered(&env, &expected, LIMIT);
}

#[test]
fn sanity_starts_no_supervisor_when_nothing_is_started() {
    let env = Env::new();
    env.hot_directory(1, "");
    let out = env.ok(&["sanity"]);
    assert!(out.contains("nothing to fix (0 configs started"), "{out}");
    assert!(supervisor_pid(&env).is_none());
}

#[test]
fn sanity_kills_hung_instances_and_ends_strays() {
    let env = Env::new();
    env.hot_directory(1, "");
    env.ok(&["start"]);
    let watch = env.instance_pids("watch/hot")[0];
    // A stray: an instance of a config nobody started (the supervisor
    // itself ends instances above a started config's count).
    env.write_config(
        "sender/other.conf",
        &format!(
            "broker local:\nexchange xs_other\nsendTo file:\ndirectory {}\n",
            env.dest.display()
        ),
    );
    let log = std::fs::File::create(env.root.path().join("stray.log")).unwrap();
    let mut stray = env
        .cmd()
        .args(["instance", "--no", "1", "sender/other"])
        .stderr(log)
        .spawn()
        .unwrap();
    // Hung: stopped, it holds its pid lock but writes nothing.
    signal(watch, Signal::SIGSTOP);
    // Strays younger than 10 s are not judged (they may be starting).
    std::thread::sleep(Duration::from_secs(11));
    let out = env.ok(&["sanity", "--hung-after", "5"]);
    let _ = stray.wait();
    assert!(
        out.contains(&format!("watch/hot instance 1 (pid {watch}) hung")),
        "{out}"
    );
    assert!(
        out.contains(&format!("stray pid {}", stray.id()))
            && out.contains("(its config is not started): stopped"),
        "{out}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            let p = env.instance_pids("watch/hot");
            p.len() == 1 && p[0] != watch
        }),
        "the hung watch was not replaced"
    );
    assert_eq!(env.instance_pids("sender/hot").len(), 1);
}

#[test]
fn idle_instances_refresh_their_metrics_every_second() {
    let env = Env::new();
    env.hot_directory(1, "");
    env.ok(&["start"]);
    std::thread::sleep(Duration::from_secs(3));
    for m in ["watch/hot/watch_hot_01", "sender/hot/sender_hot_01"] {
        let path = env.state.join(format!("{m}.metrics.json"));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let age = pitcher::flow::now_epoch() - v["updated"].as_f64().unwrap();
        assert!(age < 2.5, "{m}: metrics {age:.1}s old while idle");
    }
}

#[test]
fn sigterm_to_the_supervisor_stops_every_instance_gracefully() {
    let env = Env::new();
    env.hot_directory(2, "");
    env.ok(&["start"]);
    // (An instance killed before it set up its signal handling just dies:
    // it had nothing in flight.)
    std::thread::sleep(Duration::from_secs(1));
    let sup = supervisor_pid(&env).unwrap();
    signal(sup, Signal::SIGTERM);
    assert!(wait_until(Duration::from_secs(20), || supervisor_pid(&env)
        .is_none()
        && env.instance_pids("sender/hot").is_empty()
        && env.instance_pids("watch/hot").is_empty()));
    for (log, last) in [
        ("sender_hot_01", "instance 1 stopped"),
        ("sender_hot_02", "instance 2 stopped"),
        ("watch_hot_01", "asked to stop"),
    ] {
        let text = std::fs::read_to_string(env.state.join(format!("log/{log}.log"))).unwrap();
        assert!(
            text.contains("asked to stop") && text.contains(last),
            "{log}: {text}"
        );
    }
}

#[test]
fn restart_applies_a_changed_config() {
    let env = Env::new();
    env.hot_directory(1, "");
    env.ok(&["start"]);
    assert_eq!(env.instance_pids("sender/hot").len(), 1);
    let conf = env.config.join("sender/hot.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, text.replace("instances 1", "instances 3")).unwrap();
    env.ok(&["restart", "sender/hot"]);
    assert_eq!(env.instance_pids("sender/hot").len(), 3);
}

/// Spawns `pitcher supervise` as the systemd unit would, its notifications
/// going to a socket of the test's.
fn systemd_supervisor(env: &Env, socket: &Path) -> Child {
    let mut c = env.cmd();
    isolated(env, &mut c);
    c.arg("supervise")
        .env("PITCHER_SYSTEMD", "1")
        .env("NOTIFY_SOCKET", socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(env.root.path().join("systemd-supervisor.log")).unwrap())
        .spawn()
        .unwrap()
}

#[test]
fn a_systemd_supervisor_takes_over_notifies_and_stays_through_pitcher_stop() {
    let env = Env::new();
    env.hot_directory(1, "");
    env.ok(&["start"]);
    let detached = supervisor_pid(&env).unwrap();
    let sock_path = env.root.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut sup = systemd_supervisor(&env, &sock_path);
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    assert_eq!(supervisor_pid(&env), Some(sup.id() as i32), "no takeover");
    assert!(
        wait_until(LIMIT, || kill(Pid::from_raw(detached), None).is_err()),
        "the detached supervisor is still running"
    );
    // It runs the started configs again.
    assert!(wait_until(LIMIT, || env.instance_pids("sender/hot").len()
        == 1
        && env.instance_pids("watch/hot").len() == 1));
    let n = sock.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1"));
    // `pitcher stop` stops every config but leaves systemd's supervisor.
    let mut stop = env.cmd();
    isolated(&env, &mut stop);
    let out = stop.arg("stop").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("stays under systemd"));
    assert!(
        env.instance_pids("sender/hot").is_empty() && env.instance_pids("watch/hot").is_empty()
    );
    assert_eq!(supervisor_pid(&env), Some(sup.id() as i32));
    // `start` hands the configs back to it.
    let mut start = env.cmd();
    isolated(&env, &mut start);
    assert!(start.arg("start").output().unwrap().status.success());
    assert_eq!(env.instance_pids("sender/hot").len(), 1);
    assert_eq!(supervisor_pid(&env), Some(sup.id() as i32));
    // systemctl stop: SIGTERM to the supervisor stops everything.
    signal(sup.id() as i32, Signal::SIGTERM);
    let _ = sup.wait();
    assert!(
        env.instance_pids("sender/hot").is_empty() && env.instance_pids("watch/hot").is_empty()
    );
}

/// A `systemctl` that logs its arguments and fails `start` (so pitcher
/// falls back to a detached supervisor) and anything when `fail` is set.
fn fake_systemctl(dir: &Path, fail: bool) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\necho \"$@\" >> {log}\n{fail}case \"$2\" in start) echo 'no bus' >&2; exit 1;; esac\nexit 0\n",
        log = dir.join("systemctl.log").display(),
        fail = if fail { "echo 'Failed to connect to bus' >&2; exit 1\n" } else { "" }
    );
    let p = bin.join("systemctl");
    std::fs::write(&p, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn with_path(cmd: &mut Command, bin: &Path) {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.env("PATH", path);
}

#[test]
fn systemd_install_writes_the_unit_enables_it_and_uninstall_removes_it() {
    let env = Env::new();
    env.hot_directory(1, "");
    let bin = fake_systemctl(env.root.path(), false);
    let run = |args: &[&str]| {
        let mut c = env.cmd();
        isolated(&env, &mut c);
        with_path(&mut c, &bin);
        let o = c.args(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = run(&["systemd", "install"]);
    let unit = env.root.path().join("xdg/systemd/user/pitcher.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_pitcher")).unwrap();
    assert!(
        text.contains(&format!("ExecStart=\"{}\" supervise", exe.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("PITCHER_STATE_DIR={}", env.state.display())),
        "{text}"
    );
    assert!(
        out.contains("ran: systemctl --user enable --now pitcher.service"),
        "{out}"
    );
    let log = std::fs::read_to_string(env.root.path().join("systemctl.log")).unwrap();
    assert_eq!(
        log,
        "--user daemon-reload\n--user enable --now pitcher.service\n"
    );
    // With the unit installed, `start` asks systemd first (this fake
    // refuses), then starts the supervisor itself.
    run(&["start"]);
    let log = std::fs::read_to_string(env.root.path().join("systemctl.log")).unwrap();
    assert!(log.ends_with("--user start pitcher.service\n"), "{log}");
    assert!(supervisor_pid(&env).is_some());
    let out = run(&["systemd", "uninstall"]);
    assert!(!unit.exists());
    assert!(
        out.contains("ran: systemctl --user disable --now pitcher.service"),
        "{out}"
    );
}

#[test]
fn systemd_install_without_a_user_bus_says_what_to_run() {
    let env = Env::new();
    let bin = fake_systemctl(env.root.path(), true);
    let mut c = env.cmd();
    isolated(&env, &mut c);
    with_path(&mut c, &bin);
    let o = c.args(["systemd", "install"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        out.contains("could not: systemctl --user daemon-reload failed"),
        "{out}"
    );
    assert!(
        out.contains("systemctl --user enable --now pitcher.service"),
        "{out}"
    );
    assert!(out.contains("loginctl enable-linger"), "{out}");
    assert!(env
        .root
        .path()
        .join("xdg/systemd/user/pitcher.service")
        .exists());
}

/// A network namespace of the test's own, with a veth pair to put the vip
/// on; deleted when dropped.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Option<Netns> {
        let ok = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        let name = format!("pitcher-vip-{}", std::process::id());
        if !nix::unistd::geteuid().is_root() || !ok(&["netns", "add", &name]) {
            return None;
        }
        let ns = Netns { name };
        let inside = |args: &[&str]| {
            let mut a = vec!["netns", "exec", ns.name.as_str(), "ip"];
            a.extend_from_slice(args);
            ok(&a)
        };
        let up = inside(&["link", "set", "lo", "up"])
            && inside(&["link", "add", "pv0", "type", "veth", "peer", "name", "pv1"])
            && inside(&["link", "set", "pv0", "up"])
            && inside(&["link", "set", "pv1", "up"]);
        up.then_some(ns)
    }

    fn ip(&self, args: &[&str]) {
        let mut a = vec!["netns", "exec", self.name.as_str(), "ip"];
        a.extend_from_slice(args);
        let o = Command::new("ip").args(&a).output().unwrap();
        assert!(
            o.status.success(),
            "ip {a:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// `pitcher args…` inside the namespace.
    fn pitcher(&self, env: &Env, args: &[&str]) -> String {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.name, env!("CARGO_BIN_EXE_pitcher")])
            .args(args)
            .env("PITCHER_CONFIG_DIR", &env.config)
            .env("PITCHER_STATE_DIR", &env.state)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

#[test]
fn with_vip_instances_work_only_while_the_address_is_here() {
    let Some(ns) = Netns::new() else {
        eprintln!("\n!!! SKIPPED with_vip_instances_work_only_while_the_address_is_here: needs root and `ip netns` with veth !!!\n");
        return;
    };
    const VIP: &str = "10.213.77.1";
    let env = Env::new();
    env.hot_directory(1, &format!("vip {VIP}\n"));
    let watch = env.config.join("watch/hot.conf");
    let text = std::fs::read_to_string(&watch).unwrap();
    std::fs::write(&watch, format!("{text}vip {VIP}\n")).unwrap();
    ns.pitcher(&env, &["start"]);
    std::fs::write(env.hot.join("while_passive"), b"1").unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || status_state(&env, "sender/hot")
            == "wVip"
            && status_state(&env, "watch/hot") == "wVip"),
        "{}",
        env.ok(&["status"])
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !env.dest.join("while_passive").exists(),
        "passive instances delivered"
    );
    // The address arrives: both take over within seconds; the watch's
    // start-up scan finds what came while it was passive.
    ns.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "pv0"]);
    let mut expected = BTreeMap::new();
    expected.insert("while_passive".to_string(), b"1".to_vec());
    assert_delivered(&env, &expected, Duration::from_secs(15));
    assert_eq!(status_state(&env, "sender/hot"), "run");
    // It leaves: passive again, new files wait.
    ns.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "pv0"]);
    assert!(wait_until(Duration::from_secs(10), || status_state(
        &env,
        "sender/hot"
    ) == "wVip"));
    std::fs::write(env.hot.join("after_leaving"), content(1, 100)).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !env.dest.join("after_leaving").exists(),
        "delivered without the vip"
    );
    // And back.
    ns.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "pv0"]);
    expected.insert("after_leaving".to_string(), content(1, 100));
    assert_delivered(&env, &expected, Duration::from_secs(15));
    ns.pitcher(&env, &["stop"]);
}
