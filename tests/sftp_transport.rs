//! The sftp transport against a real OpenSSH server on loopback.
//!
//! These tests need the throwaway sshd of `scripts/sshd-harness.sh` and run
//! as root (they read the test user's home to check what arrived). They are
//! `#[ignore]`d so a plain `cargo test` on a machine without sshd stays
//! green; `scripts/sshd-harness.sh test` starts the harness and runs them
//! with `--include-ignored`. Run that way without the harness environment,
//! they fail with a message saying how to start it: never a silent skip.
//!
//! The test that kills sshd takes a write lock that the others take for
//! reading, so it never pulls the server from under another test.

use pitcher::transfer::sftp::{master, SftpTransport};
use pitcher::transfer::{for_url_with, PutMode, Transport, TransportOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::RwLock;

static SSHD: RwLock<()> = RwLock::const_new(());

const HOW: &str = "start the test sshd first: `scripts/sshd-harness.sh start && eval \"$(scripts/sshd-harness.sh env)\"`, \
                   or run `scripts/sshd-harness.sh test`";

/// What the harness exported.
struct Harness {
    ssh_config: PathBuf,
    home: PathBuf,
    port: String,
    user: String,
}

fn harness() -> Harness {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: the sftp tests need the harness sshd; {HOW}")
        })
    };
    let h = Harness {
        ssh_config: var("PITCHER_SSH_CONFIG").into(),
        home: var("PITCHER_SSHD_HOME").into(),
        port: var("PITCHER_SSHD_PORT"),
        user: var("PITCHER_SSHD_USER"),
    };
    assert!(
        h.ssh_config.is_file(),
        "{} is missing; {HOW}",
        h.ssh_config.display()
    );
    h
}

fn options(h: &Harness) -> TransportOptions {
    TransportOptions {
        ssh_config: Some(h.ssh_config.clone()),
        timeout: Duration::from_secs(20),
        ssh_keyfile: None,
    }
}

fn transport(h: &Harness) -> SftpTransport {
    SftpTransport::new("sftp://hpfx", &options(h)).expect("sftp://hpfx is a valid sendTo")
}

/// A fresh directory for one test, relative to the login directory, and
/// its path as the server's file system sees it.
fn scratch(h: &Harness, name: &str) -> (String, PathBuf) {
    let rel = format!("t-{name}-{}", std::process::id());
    let abs = h.home.join(&rel);
    let _ = std::fs::remove_dir_all(&abs);
    (rel, abs)
}

fn local_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write local file");
    p
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sshd-harness.sh")
}

fn harness_cmd(verb: &str) {
    let out = Command::new("bash")
        .arg(script())
        .arg(verb)
        .output()
        .expect("run sshd-harness.sh");
    assert!(
        out.status.success(),
        "sshd-harness.sh {verb}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pids of processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) {
                pids.push(pid);
            }
        }
    }
    pids
}

async fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < end, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deterministic pseudo-random bytes (xorshift), so big files do not compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn sha256sum(p: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("sha256sum");
    assert!(out.status.success(), "sha256sum {}", p.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn put_under_temp_name_then_rename_delivers_and_replaces_the_final_file() {
    let _g = SSHD.read().await;
    let h = harness();
    let t = transport(&h);
    let (rel, abs) = scratch(&h, "rename");
    let local = tempfile::tempdir().expect("tempdir");
    let first = local_file(local.path(), "a", b"first version, longer");
    let second = local_file(local.path(), "b", b"second");

    t.mkdirs(&rel, 0o755).await.expect("mkdirs");
    let n = t
        .put(&first, &format!("{rel}/x.tmp"), PutMode::CreateNew)
        .await
        .expect("put");
    assert_eq!(n, 21);
    t.rename(&format!("{rel}/x.tmp"), &format!("{rel}/x"))
        .await
        .expect("rename");
    assert_eq!(
        std::fs::read(abs.join("x")).expect("x"),
        b"first version, longer"
    );
    assert!(!abs.join("x.tmp").exists());

    t.put(&second, &format!("{rel}/x.tmp"), PutMode::CreateNew)
        .await
        .expect("put again");
    t.rename(&format!("{rel}/x.tmp"), &format!("{rel}/x"))
        .await
        .expect("rename over an existing file");
    assert_eq!(std::fs::read(abs.join("x")).expect("x"), b"second");

    t.put(&first, &format!("{rel}/x"), PutMode::Replace)
        .await
        .expect("replace");
    t.put(&second, &format!("{rel}/x"), PutMode::Replace)
        .await
        .expect("replace with shorter");
    assert_eq!(
        std::fs::read(abs.join("x")).expect("x"),
        b"second",
        "Replace truncates"
    );

    let e = t
        .rename(&format!("{rel}/absent"), &format!("{rel}/y"))
        .await
        .expect_err("absent source");
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn create_new_over_an_existing_file_is_already_exists_and_leaves_it_alone() {
    let _g = SSHD.read().await;
    let h = harness();
    let t = transport(&h);
    let (rel, abs) = scratch(&h, "excl");
    let local = tempfile::tempdir().expect("tempdir");
    let a = local_file(local.path(), "a", b"owner's bytes");
    let b = local_file(local.path(), "b", b"intruder");
    t.mkdirs(&rel, 0o755).await.expect("mkdirs");
    t.put(&a, &format!("{rel}/f.tmp"), PutMode::CreateNew)
        .await
        .expect("first put");
    let e = t
        .put(&b, &format!("{rel}/f.tmp"), PutMode::CreateNew)
        .await
        .expect_err("second CreateNew");
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    assert_eq!(
        std::fs::read(abs.join("f.tmp")).expect("f.tmp"),
        b"owner's bytes"
    );

    // A missing directory is NotFound, not AlreadyExists.
    let e = t
        .put(&b, &format!("{rel}/no/such/f"), PutMode::CreateNew)
        .await
        .expect_err("no dir");
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn mkdirs_creates_missing_parents_and_accepts_existing_ones() {
    let _g = SSHD.read().await;
    let h = harness();
    let t = transport(&h);
    let (rel, abs) = scratch(&h, "mkdirs");
    t.mkdirs(&format!("{rel}/a/b/c/"), 0o750)
        .await
        .expect("nested");
    assert!(abs.join("a/b/c").is_dir());
    assert_eq!(
        std::fs::metadata(abs.join("a/b"))
            .expect("a/b")
            .permissions()
            .mode()
            & 0o777,
        0o750 & !0o022
    );
    t.mkdirs(&format!("{rel}/a/b/c"), 0o750)
        .await
        .expect("again");
    let absolute = abs.join("d/e").to_string_lossy().into_owned();
    t.mkdirs(&absolute, 0o755).await.expect("absolute path");
    assert!(abs.join("d/e").is_dir());

    std::fs::write(abs.join("plain"), b"x").expect("file");
    let e = t
        .mkdirs(&format!("{rel}/plain/sub"), 0o755)
        .await
        .expect_err("through a file");
    assert_ne!(e.kind(), io::ErrorKind::NotFound, "{e}");
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn remove_and_rmdir_of_absent_paths_succeed_and_remove_present_ones() {
    let _g = SSHD.read().await;
    let h = harness();
    let t = transport(&h);
    let (rel, abs) = scratch(&h, "remove");
    t.remove(&format!("{rel}/nothing"))
        .await
        .expect("remove absent");
    t.rmdir(&format!("{rel}/nothing"))
        .await
        .expect("rmdir absent");
    t.mkdirs(&format!("{rel}/d"), 0o755).await.expect("mkdirs");
    std::fs::write(abs.join("f"), b"x").expect("file");
    t.remove(&format!("{rel}/f")).await.expect("remove file");
    t.rmdir(&format!("{rel}/d")).await.expect("rmdir dir");
    assert!(!abs.join("f").exists() && !abs.join("d").exists());
    std::fs::create_dir(abs.join("full")).expect("dir");
    std::fs::write(abs.join("full/f"), b"x").expect("file");
    t.rmdir(&format!("{rel}/full"))
        .await
        .expect_err("non-empty directory");
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn symlink_points_at_its_target_and_replaces_what_was_there() {
    let _g = SSHD.read().await;
    let h = harness();
    let t = transport(&h);
    let (rel, abs) = scratch(&h, "symlink");
    t.mkdirs(&rel, 0o755).await.expect("mkdirs");
    t.symlink("target-one", &format!("{rel}/l"))
        .await
        .expect("symlink");
    assert_eq!(
        std::fs::read_link(abs.join("l")).expect("is a link"),
        PathBuf::from("target-one")
    );
    t.symlink("../elsewhere", &format!("{rel}/l"))
        .await
        .expect("replace link");
    assert_eq!(
        std::fs::read_link(abs.join("l")).expect("is a link"),
        PathBuf::from("../elsewhere")
    );
    std::fs::write(abs.join("f"), b"x").expect("file");
    t.symlink("target-two", &format!("{rel}/f"))
        .await
        .expect("replace file");
    assert_eq!(
        std::fs::read_link(abs.join("f")).expect("is a link"),
        PathBuf::from("target-two")
    );
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn setstat_sets_mode_and_times_and_stat_reports_them() {
    let _g = SSHD.read().await;
    let h = harness();
    let t = transport(&h);
    let (rel, abs) = scratch(&h, "setstat");
    let local = tempfile::tempdir().expect("tempdir");
    let f = local_file(local.path(), "f", b"12345");
    t.mkdirs(&rel, 0o755).await.expect("mkdirs");
    t.put(&f, &format!("{rel}/f"), PutMode::Replace)
        .await
        .expect("put");
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let atime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_100);
    t.setstat(&format!("{rel}/f"), Some(0o640), Some((atime, mtime)))
        .await
        .expect("setstat");
    let m = std::fs::metadata(abs.join("f")).expect("stat");
    assert_eq!(m.permissions().mode() & 0o7777, 0o640);
    assert_eq!(m.mtime(), 1_700_000_000);
    assert_eq!(m.atime(), 1_700_000_100);

    let s = t
        .stat(&format!("{rel}/f"))
        .await
        .expect("stat")
        .expect("present");
    assert_eq!((s.size, s.is_dir, s.mtime), (5, false, Some(mtime)));
    assert!(
        t.stat(&rel)
            .await
            .expect("stat dir")
            .expect("present")
            .is_dir
    );
    assert_eq!(
        t.stat(&format!("{rel}/absent")).await.expect("stat absent"),
        None
    );
    std::os::unix::fs::symlink(".", abs.join("link-to-dir")).expect("symlink");
    let l = t
        .stat(&format!("{rel}/link-to-dir"))
        .await
        .expect("stat link")
        .expect("present");
    assert!(!l.is_dir, "stat does not follow a final symlink");
    t.setstat(&format!("{rel}/absent"), Some(0o600), None)
        .await
        .expect_err("setstat absent");
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn get_downloads_the_remote_bytes() {
    let _g = SSHD.read().await;
    let h = harness();
    let t = transport(&h);
    let (rel, abs) = scratch(&h, "get");
    std::fs::create_dir_all(&abs).expect("dir");
    let content = noise(3 * 1024 * 1024 + 17, 7);
    std::fs::write(abs.join("big"), &content).expect("remote file");
    let local = tempfile::tempdir().expect("tempdir");
    let n = t
        .get(&format!("{rel}/big"), &local.path().join("big"))
        .await
        .expect("get");
    assert_eq!(n, content.len() as u64);
    assert!(std::fs::read(local.path().join("big")).expect("local") == content);
    let e = t
        .get(&format!("{rel}/absent"), &local.path().join("x"))
        .await
        .expect_err("absent");
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn a_multi_megabyte_put_arrives_intact() {
    let _g = SSHD.read().await;
    let h = harness();
    let t = transport(&h);
    let (rel, abs) = scratch(&h, "bigput");
    let local = tempfile::tempdir().expect("tempdir");
    let content = noise(20 * 1024 * 1024 + 3, 11);
    let f = local_file(local.path(), "f", &content);
    t.mkdirs(&rel, 0o755).await.expect("mkdirs");
    let n = t
        .put(&f, &format!("{rel}/f"), PutMode::CreateNew)
        .await
        .expect("put");
    assert_eq!(n, content.len() as u64);
    assert!(std::fs::read(abs.join("f")).expect("remote") == content);
    let _ = std::fs::remove_dir_all(&abs);
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn names_with_spaces_unicode_and_a_leading_dash_survive_sftp_and_scp() {
    let _g = SSHD.read().await;
    let h = harness();
    let t = transport(&h);
    let (rel, abs) = scratch(&h, "names");
    let local = tempfile::tempdir().expect("tempdir");
    let sub = "dir with space/été";
    t.mkdirs(&format!("{rel}/{sub}"), 0o755)
        .await
        .expect("mkdirs");
    for (i, name) in ["a file.txt", "données-ünï.dat", "-rf", "--help me", "a:b"]
        .iter()
        .enumerate()
    {
        let body = format!("content {i} of {name}");
        let f = local_file(local.path(), name, body.as_bytes());
        let remote = format!("{rel}/{sub}/{name}");
        t.put(&f, &format!("{remote}.tmp"), PutMode::CreateNew)
            .await
            .expect(name);
        t.rename(&format!("{remote}.tmp"), &remote)
            .await
            .expect(name);
        assert_eq!(
            std::fs::read_to_string(abs.join(sub).join(name)).expect(name),
            body
        );

        let accel = format!("{remote}.scp");
        // A relative local path starting with a dash: must not become an option.
        let cwd_relative = Path::new(name);
        std::env::set_current_dir(local.path()).expect("cd");
        t.put_accelerated(cwd_relative, &accel, "/usr/bin/scp %s %d")
            .await
            .expect(name);
        assert_eq!(
            std::fs::read_to_string(abs.join(sub).join(format!("{name}.scp"))).expect(name),
            body
        );
    }
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn two_thousand_small_files_in_nested_dirs_arrive_byte_for_byte() {
    let _g = SSHD.read().await;
    let h = harness();
    let t = Arc::new(transport(&h));
    let (rel, abs) = scratch(&h, "many");
    let local = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for i in 0..2000 {
        let dir = format!("{rel}/d{:02}/e{}", i % 40, i % 3);
        let body = format!("file {i}\n").repeat(1 + i % 50).into_bytes();
        files.push((
            local_file(local.path(), &format!("f{i}"), &body),
            dir,
            format!("f{i}"),
            body,
        ));
    }
    let started = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    for (path, dir, name, _) in &files {
        let (t, limit) = (Arc::clone(&t), Arc::clone(&limit));
        let (path, dir, name) = (path.clone(), dir.clone(), name.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore");
            // What the sender does for each file.
            t.mkdirs(&dir, 0o755).await?;
            let tmp = format!("{dir}/{name}.tmp");
            t.put(&path, &tmp, PutMode::CreateNew).await?;
            t.rename(&tmp, &format!("{dir}/{name}")).await?;
            t.setstat(&format!("{dir}/{name}"), Some(0o644), None).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task").expect("delivery");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "2000 small files (mkdirs+put+rename+setstat, 64 in flight): {secs:.2} s, {:.0} files/s",
        2000.0 / secs
    );
    for (_, dir, name, body) in &files {
        let server_side = abs
            .join(dir.strip_prefix(&format!("{rel}/")).expect("prefix"))
            .join(name);
        assert!(
            std::fs::read(&server_side).expect("delivered") == *body,
            "{}",
            server_side.display()
        );
    }
    let _ = std::fs::remove_dir_all(&abs);
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn five_fifty_megabyte_files_through_put_large_match_by_sha256() {
    let _g = SSHD.read().await;
    let h = harness();
    let t: Box<dyn Transport> = for_url_with("sftp://hpfx", &options(&h)).expect("factory");
    let (rel, abs) = scratch(&h, "large");
    let local = tempfile::tempdir().expect("tempdir");
    t.mkdirs(&rel, 0o755).await.expect("mkdirs");
    let started = Instant::now();
    for i in 0..5u64 {
        let f = local_file(
            local.path(),
            &format!("big {i}.dat"),
            &noise(50_000_000, i + 1),
        );
        let n = t
            .put_large(&f, &format!("{rel}/big {i}.dat.tmp"), "/usr/bin/scp %s %d")
            .await
            .expect("put_large");
        assert_eq!(n, 50_000_000);
        t.rename(
            &format!("{rel}/big {i}.dat.tmp"),
            &format!("{rel}/big {i}.dat"),
        )
        .await
        .expect("rename");
        assert_eq!(
            sha256sum(&abs.join(format!("big {i}.dat"))),
            sha256sum(&f),
            "file {i}"
        );
        std::fs::remove_file(&f).expect("cleanup");
    }
    println!(
        "5 × 50 MB via put_large (scp) incl. sha256: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&abs);
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn url_user_and_port_work_without_an_alias() {
    let _g = SSHD.read().await;
    let h = harness();
    let url = format!("sftp://{}@127.0.0.1:{}/", h.user, h.port);
    let t = SftpTransport::new(&url, &options(&h)).expect("url");
    let (rel, abs) = scratch(&h, "url");
    let local = tempfile::tempdir().expect("tempdir");
    let f = local_file(local.path(), "f", b"by url");
    t.mkdirs(&rel, 0o755).await.expect("mkdirs");
    t.put(&f, &format!("{rel}/f"), PutMode::Replace)
        .await
        .expect("put");
    t.put_accelerated(&f, &format!("{rel}/g"), "/usr/bin/scp %s %d")
        .await
        .expect("scp");
    assert_eq!(std::fs::read(abs.join("f")).expect("f"), b"by url");
    assert_eq!(std::fs::read(abs.join("g")).expect("g"), b"by url");
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn an_unknown_host_key_is_refused_and_never_added() {
    let _g = SSHD.read().await;
    let h = harness();
    let dir = tempfile::tempdir().expect("tempdir");
    let known = dir.path().join("known_hosts");
    std::fs::write(&known, b"").expect("empty known_hosts");
    let key = h
        .ssh_config
        .parent()
        .expect("harness dir")
        .join("id_ed25519");
    let cfg = dir.path().join("ssh_config");
    let mut c = std::fs::File::create(&cfg).expect("config");
    // No StrictHostKeyChecking here: ssh's default (ask) under BatchMode.
    writeln!(
        c,
        "Host stranger\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}",
        h.port,
        h.user,
        key.display(),
        known.display()
    )
    .expect("write config");
    let opts = TransportOptions {
        ssh_config: Some(cfg),
        ..options(&h)
    };
    let t = SftpTransport::new("sftp://stranger", &opts).expect("url");
    let e = t.connect().await.expect_err("unknown host key");
    assert!(e.to_string().to_lowercase().contains("host key"), "{e}");
    assert_eq!(
        std::fs::read(&known).expect("known_hosts"),
        b"",
        "known_hosts untouched"
    );
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn dropping_the_transport_stops_its_ssh_master() {
    let _g = SSHD.read().await;
    let h = harness();
    let t = transport(&h);
    t.connect().await.expect("connect");
    let ctl = t.control_socket().await.expect("connected");
    let needle = ctl.to_string_lossy().into_owned();
    assert_eq!(processes_with(&needle).len(), 1, "one master for {needle}");
    drop(t);
    wait_until("master exits after drop", 10, || {
        processes_with(&needle).is_empty()
    })
    .await;
    wait_until("control dir removed", 10, || {
        !ctl.parent().expect("dir").exists()
    })
    .await;
}

/// Not a test of its own: the child process of
/// `a_master_left_by_a_killed_process_is_stopped_by_the_next_one`. It
/// connects, prints its control socket, and waits to be killed.
#[tokio::test]
#[ignore = "helper process for the kill -9 test"]
async fn helper_process_holding_a_connection() {
    if std::env::var_os("PITCHER_TEST_CHILD").is_none() {
        return;
    }
    let t = transport(&harness());
    t.connect().await.expect("child connects");
    println!(
        "PITCHER_CTL={}",
        t.control_socket().await.expect("socket").display()
    );
    io::stdout().flush().expect("flush");
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn a_master_left_by_a_killed_process_is_stopped_by_the_next_one() {
    let _g = SSHD.read().await;
    let _h = harness();
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "helper_process_holding_a_connection",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PITCHER_TEST_CHILD", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let ctl = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read child") {
            // libtest prints "test name ... " on the same line first.
            if let Some((_, p)) = line.split_once("PITCHER_CTL=") {
                return PathBuf::from(p.trim());
            }
        }
        panic!("child ended without printing its control socket");
    })
    .await
    .expect("child connected in time");
    let needle = ctl.to_string_lossy().into_owned();
    child.start_kill().expect("kill -9 the child");
    child.wait().await.expect("reap");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        processes_with(&needle).len(),
        1,
        "the master outlives its killed owner (ControlPersist)"
    );

    master::sweep_stale().await;
    wait_until("orphaned master stopped", 10, || {
        processes_with(&needle).is_empty()
    })
    .await;
    let process_dir = ctl.parent().and_then(Path::parent).expect("process dir");
    assert!(!process_dir.exists(), "{} removed", process_dir.display());
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn deliveries_resume_after_sshd_is_killed_and_restarted_mid_run() {
    let _g = SSHD.write().await;
    let h = harness();
    let t = Arc::new(transport(&h));
    let (rel, abs) = scratch(&h, "restart");
    let local = tempfile::tempdir().expect("tempdir");
    t.mkdirs(&rel, 0o755).await.expect("mkdirs");
    let first_ctl = t.control_socket().await.expect("connected");
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let limit = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..600 {
        let f = local_file(
            local.path(),
            &format!("f{i}"),
            format!("payload {i}").as_bytes(),
        );
        let (t, limit, done, failures, rel) = (
            Arc::clone(&t),
            Arc::clone(&limit),
            Arc::clone(&done),
            Arc::clone(&failures),
            rel.clone(),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore");
            // The sender's retry, compressed: try again later until it works.
            for _ in 0..100 {
                let tmp = format!("{rel}/f{i}.tmp");
                let r = async {
                    t.put(&f, &tmp, PutMode::Replace).await?;
                    t.rename(&tmp, &format!("{rel}/f{i}")).await
                }
                .await;
                match r {
                    Ok(()) => {
                        done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        return;
                    }
                    Err(_) => {
                        failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            panic!("f{i} never delivered");
        });
    }
    wait_until("some files delivered", 30, || {
        done.load(std::sync::atomic::Ordering::SeqCst) >= 100
    })
    .await;
    harness_cmd("kill");
    tokio::time::sleep(Duration::from_secs(1)).await;
    harness_cmd("start");
    while let Some(r) = tasks.join_next().await {
        r.expect("every file delivered eventually");
    }
    assert!(
        failures.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the kill was noticed"
    );
    let second_ctl = t.control_socket().await.expect("reconnected");
    assert_ne!(first_ctl, second_ctl, "a new master after the restart");
    assert!(
        processes_with(&first_ctl.to_string_lossy()).is_empty(),
        "the dead master is gone"
    );
    for i in 0..600 {
        assert_eq!(
            std::fs::read_to_string(abs.join(format!("f{i}"))).expect("delivered"),
            format!("payload {i}")
        );
    }
    let _ = std::fs::remove_dir_all(&abs);
}

/// Figures, not assertions: `scripts/sshd-harness.sh bench`. Compares the
/// transport with the OpenSSH command-line tools on the same files.
#[tokio::test]
#[ignore = "benchmark: scripts/sshd-harness.sh bench"]
async fn benchmark_against_sftp_batch_and_scp() {
    let _g = SSHD.write().await;
    let h = harness();
    let cfg = h.ssh_config.to_string_lossy().into_owned();
    let (rel, abs) = scratch(&h, "bench");
    let local = tempfile::tempdir().expect("tempdir");
    let small: Vec<PathBuf> = (0..2000)
        .map(|i| local_file(local.path(), &format!("s{i:04}"), &noise(4096, i + 1)))
        .collect();

    for in_flight in [1usize, 16, 64] {
        let t = Arc::new(transport(&h));
        let dir = format!("{rel}/transport-{in_flight}");
        t.mkdirs(&dir, 0o755).await.expect("mkdirs");
        let started = Instant::now();
        let limit = Arc::new(tokio::sync::Semaphore::new(in_flight));
        let mut tasks = tokio::task::JoinSet::new();
        for p in &small {
            let (t, limit, p, dir) = (Arc::clone(&t), Arc::clone(&limit), p.clone(), dir.clone());
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("semaphore");
                let name = p.file_name().expect("name").to_string_lossy().into_owned();
                t.put(&p, &format!("{dir}/{name}.tmp"), PutMode::CreateNew)
                    .await?;
                t.rename(&format!("{dir}/{name}.tmp"), &format!("{dir}/{name}"))
                    .await
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("task").expect("put");
        }
        let s = started.elapsed().as_secs_f64();
        println!("BENCH transport put+rename 2000 x 4 KiB, {in_flight:>2} in flight: {:>6.0} files/s ({s:.2} s)", 2000.0 / s);
    }

    // Made by the test user: a directory made here as root would not be writable.
    transport(&h).mkdirs(&format!("{rel}/sftp-b"), 0o755).await.expect("mkdirs");
    let batch = local.path().join("batch");
    let mut b = std::fs::File::create(&batch).expect("batch");
    for p in &small {
        let name = p.file_name().expect("name").to_string_lossy().into_owned();
        writeln!(b, "put {} {rel}/sftp-b/{name}", p.display()).expect("batch line");
    }
    drop(b);
    let started = Instant::now();
    let st = Command::new("sftp")
        .args(["-q", "-F", &cfg, "-b"])
        .arg(&batch)
        .arg("hpfx")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("sftp -b");
    assert!(st.success(), "sftp -b failed");
    let s = started.elapsed().as_secs_f64();
    println!(
        "BENCH sftp -b put 2000 x 4 KiB (one session, sequential):     {:>6.0} files/s ({s:.2} s)",
        2000.0 / s
    );

    let big = local_file(local.path(), "big", &noise(200_000_000, 99));
    let t = transport(&h);
    t.connect().await.expect("connect");
    let started = Instant::now();
    t.put_accelerated(&big, &format!("{rel}/big-accel"), "/usr/bin/scp %s %d")
        .await
        .expect("put_large");
    let s = started.elapsed().as_secs_f64();
    println!(
        "BENCH put_large (scp over the master) 200 MB: {:>6.1} MB/s ({s:.2} s)",
        200.0 / s
    );

    let started = Instant::now();
    let st = Command::new("scp")
        .args(["-q", "-F", &cfg])
        .arg(&big)
        .arg(format!("hpfx:{rel}/big-scp"))
        .status()
        .expect("scp");
    assert!(st.success(), "scp failed");
    let s = started.elapsed().as_secs_f64();
    println!(
        "BENCH plain scp (own connection) 200 MB:      {:>6.1} MB/s ({s:.2} s)",
        200.0 / s
    );

    let started = Instant::now();
    t.put(&big, &format!("{rel}/big-sftp"), PutMode::Replace)
        .await
        .expect("put");
    let s = started.elapsed().as_secs_f64();
    println!(
        "BENCH transport sftp put 200 MB:              {:>6.1} MB/s ({s:.2} s)",
        200.0 / s
    );
    assert_eq!(sha256sum(&abs.join("big-sftp")), sha256sum(&big));
    let _ = std::fs::remove_dir_all(&abs);
}
