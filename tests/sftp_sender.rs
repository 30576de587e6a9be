//! The tutorial's sender, unchanged but for names, against a real OpenSSH
//! sshd on loopback (started by scripts/sshd-harness.sh, which the test
//! script runs): `sendTo sftp://hpfx` through a Host alias, `instances 5`,
//! `accelThreshold 1M` (scp for large files), `inflight .tmp`.
//!
//! These need the harness, so a bare `cargo test` skips them (ignored);
//! `bash scripts/test.sh` runs them, and they fail loudly without it.

mod common;

use common::{content, wait_until, Env, Remote};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::RwLock;
use std::time::Duration;

/// Taken for writing by the test that kills sshd, for reading by the rest.
static SSHD: RwLock<()> = RwLock::new(());

const LIMIT: Duration = Duration::from_secs(240);

/// The tutorial's watch (on the embedded broker) and its sender, with the
/// destination under `remote`.
fn tutorial(env: &Env, remote: &Path, instances: u32) {
    env.write_config(
        "watch/to_hpfx.conf",
        &format!(
            "post_broker local:\npost_exchange xs_pas037_loli_bob_to_hpfx\n\npost_baseUrl file:{hot}\npath {hot}\n\nnodupe_ttl on\n\n# exclude working files (that end in .tmp)\nreject .*.tmp$\naccept .*\n",
            hot = env.hot.display()
        ),
    );
    env.write_config(
        "sender/to_hpfx.conf",
        &format!(
            "broker local:\nexchange xs_pas037_loli_bob_to_hpfx\n\n# sento host should match Host in ~/.ssh/config\nsendTo sftp://hpfx\n\n\
             instances {instances}\n\naccelThreshold 1M\n\ninflight .tmp\n\nnodupe_ttl on\n\nreject .*.tmp$\naccept .*\n\n\
             post_baseUrl sftp://pas037@hpfx.collab.science.gc.ca/on_hpfx\n\npost_baseDir {remote}\n",
            remote = remote.display()
        ),
    );
}

#[test]
#[ignore = "needs the loopback sshd: bash scripts/test.sh"]
fn tutorial_sender_delivers_2000_small_and_5_large_files_over_sftp_and_scp() {
    let _g = SSHD.read().unwrap();
    let remote = Remote::new("bulk");
    let env = Env::new();
    tutorial(&env, &remote.0, 5);
    env.ok(&["start"]);
    let mut expected = BTreeMap::new();
    for i in 0..2000 {
        let rel = format!("d{}/e{}/s_{i:04}.dat", i % 10, i % 7);
        let p = env.hot.join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let c = content(i, 1024 + (i * 37) % 4096);
        std::fs::write(&p, &c).unwrap();
        expected.insert(rel, c);
    }
    for (i, mb) in [50usize, 80, 110, 150, 200].into_iter().enumerate() {
        let rel = format!("large/l_{i}.bin");
        std::fs::create_dir_all(env.hot.join("large")).unwrap();
        let c = content(i + 77, mb * 1_000_000);
        // Written under a .tmp name and renamed, as careful writers do.
        std::fs::write(env.hot.join(format!("{rel}.tmp")), &c).unwrap();
        std::fs::rename(env.hot.join(format!("{rel}.tmp")), env.hot.join(&rel)).unwrap();
        expected.insert(rel, c);
    }
    common::assert_tree(&env, &remote.0, &expected, LIMIT);
    let logs = env.logs();
    assert!(
        logs.contains("l_4.bin") && logs.contains("sent:"),
        "no sender log lines"
    );
}

#[test]
#[ignore = "needs the loopback sshd: bash scripts/test.sh"]
fn deletes_renames_and_awkward_names_over_sftp() {
    let _g = SSHD.read().unwrap();
    let remote = Remote::new("names");
    let env = Env::new();
    tutorial(&env, &remote.0, 2);
    env.ok(&["start"]);
    let names = [
        "with space.txt",
        "ünïcödé-文件.txt",
        "-leading-dash",
        "--help me",
        "a:b",
    ];
    for n in names {
        std::fs::write(env.hot.join(n), n.as_bytes()).unwrap();
    }
    std::fs::create_dir_all(env.hot.join("sub dir")).unwrap();
    std::fs::write(env.hot.join("sub dir/gone.txt"), b"bye").unwrap();
    std::fs::write(env.hot.join("before.txt"), b"renamed").unwrap();
    std::os::unix::fs::symlink("with space.txt", env.hot.join("link")).unwrap();
    assert!(wait_until(LIMIT, || remote.0.join("before.txt").exists()
        && remote.0.join("sub dir/gone.txt").exists()));
    std::fs::rename(env.hot.join("before.txt"), env.hot.join("after.txt")).unwrap();
    std::fs::remove_file(env.hot.join("sub dir/gone.txt")).unwrap();
    std::fs::remove_dir(env.hot.join("sub dir")).unwrap();
    let mut expected: BTreeMap<String, Vec<u8>> = names
        .iter()
        .map(|n| (n.to_string(), n.as_bytes().to_vec()))
        .collect();
    expected.insert("after.txt".into(), b"renamed".to_vec());
    common::assert_tree(&env, &remote.0, &expected, LIMIT);
    assert!(
        wait_until(LIMIT, || !remote.0.join("sub dir").exists()),
        "rmdir not applied over sftp"
    );
    assert_eq!(
        std::fs::read_link(remote.0.join("link")).unwrap().to_str(),
        Some("with space.txt")
    );
}

#[test]
#[ignore = "needs the loopback sshd: bash scripts/test.sh"]
fn sshd_killed_mid_run_and_restarted_loses_nothing() {
    let _g = SSHD.write().unwrap();
    let remote = Remote::new("kill");
    let env = Env::new();
    tutorial(&env, &remote.0, 3);
    env.ok(&["start"]);
    let mut expected = BTreeMap::new();
    for i in 0..800 {
        let rel = format!("k{}/f_{i:03}", i % 4);
        std::fs::create_dir_all(env.hot.join(format!("k{}", i % 4))).unwrap();
        let c = content(i, 4096);
        std::fs::write(env.hot.join(&rel), &c).unwrap();
        expected.insert(rel, c);
    }
    assert!(
        wait_until(Duration::from_secs(60), || common::tree(&remote.0).len()
            > 50),
        "{}",
        env.logs()
    );
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sshd-harness.sh");
    let run = |arg: &str| {
        let o = std::process::Command::new("bash")
            .arg(&harness)
            .arg(arg)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "harness {arg}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run("kill");
    std::thread::sleep(Duration::from_secs(3));
    run("start");
    common::assert_tree(&env, &remote.0, &expected, LIMIT);
}

/// ssh processes whose command line names the control directory of `pid`.
fn masters_of(pid: i32) -> Vec<String> {
    let needle = format!("/tmp/pitcher-{}/{pid}/", nix::unistd::getuid());
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.starts_with("ssh") && cmd.contains(&needle) {
                found.push(cmd);
            }
        }
    }
    found
}

#[test]
#[ignore = "needs the loopback sshd: bash scripts/test.sh"]
fn no_ssh_master_outlives_a_stopped_or_killed_instance() {
    let _g = SSHD.read().unwrap();
    let remote = Remote::new("masters");
    let env = Env::new();
    tutorial(&env, &remote.0, 2);
    env.ok(&["start"]);
    std::fs::write(env.hot.join("one"), b"1").unwrap();
    assert!(
        wait_until(LIMIT, || remote.0.join("one").exists()),
        "{}",
        env.logs()
    );
    let pids = env.instance_pids("sender/to_hpfx");
    assert_eq!(pids.len(), 2);
    let with_master: Vec<i32> = pids
        .iter()
        .copied()
        .filter(|p| !masters_of(*p).is_empty())
        .collect();
    assert!(!with_master.is_empty(), "no instance holds an ssh master");
    // kill -9: the replacement instance sweeps the dead one's master.
    let victim = with_master[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    for i in 0..40 {
        std::fs::write(env.hot.join(format!("after_{i}")), b"2").unwrap();
    }
    assert!(
        wait_until(LIMIT, || (0..40)
            .all(|i| remote.0.join(format!("after_{i}")).exists())),
        "{}",
        env.logs()
    );
    assert!(
        wait_until(Duration::from_secs(70), || masters_of(victim).is_empty()),
        "master of killed {victim} left: {:?}",
        masters_of(victim)
    );
    // stop: every instance's master goes with it.
    let live = env.instance_pids("sender/to_hpfx");
    env.ok(&["stop"]);
    assert!(
        wait_until(Duration::from_secs(10), || live
            .iter()
            .all(|p| masters_of(*p).is_empty())),
        "masters left after stop"
    );
}

#[test]
#[ignore = "needs the loopback sshd: bash scripts/test.sh"]
fn permission_denied_at_the_destination_is_retried_until_it_clears() {
    use std::os::unix::fs::PermissionsExt;
    let _g = SSHD.read().unwrap();
    let remote = Remote::new("perm");
    let env = Env::new();
    tutorial(&env, &remote.0, 2);
    // The remote directory exists but the login user may not write in it.
    let locked = remote.0.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    let user = std::env::var("PITCHER_SSHD_USER").unwrap_or_else(|_| "pitchertest".into());
    let owner = nix::unistd::User::from_name(&user)
        .unwrap()
        .expect("the harness's test user");
    for d in [remote.0.as_path(), locked.as_path()] {
        nix::unistd::chown(d, Some(owner.uid), Some(owner.gid)).unwrap();
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    env.ok(&["start"]);
    std::fs::create_dir_all(env.hot.join("locked")).unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..30 {
        let c = content(i, 1500);
        std::fs::write(env.hot.join(format!("locked/p_{i:02}")), &c).unwrap();
        expected.insert(format!("locked/p_{i:02}"), c);
    }
    assert!(
        wait_until(LIMIT, || env.logs().matches("queued for retry").count()
            >= 30),
        "permission denied did not go to the retry queue:\n{}",
        env.logs()
    );
    assert!(
        env.logs().to_lowercase().contains("permission denied"),
        "{}",
        env.logs()
    );
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    common::assert_tree(&env, &remote.0, &expected, LIMIT);
}
