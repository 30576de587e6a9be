//! How the transport connects and lets go: URL overrides, ProxyJump, host
//! keys, masters stopped on drop and after a kill -9, reconnection after
//! sshd dies mid-run.

use super::support::*;
use pitcher::transfer::sftp::{master, SftpTransport};
use pitcher::transfer::{PutMode, Transport, TransportOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn url_user_and_port_work_without_an_alias() {
    let _g = SSHD.read().await;
    let h = harness();
    let url = format!("sftp://{}@127.0.0.1:{}/", h.user, h.port);
    put_by_sftp_and_scp(&h, &url, "url", b"by url").await;
}

/// Through the transport for `url`: a file put over sftp and one over scp
/// arrive in a scratch directory `tag` with `data`.
async fn put_by_sftp_and_scp(h: &Harness, url: &str, tag: &str, data: &[u8]) {
    let t = SftpTransport::new(url, &options(h)).expect("url");
    let (rel, abs) = scratch(h, tag);
    let local = tempfile::tempdir().expect("tempdir");
    let f = local_file(local.path(), "f", data);
    t.mkdirs(at(&rel), 0o755).await.expect("mkdirs");
    t.put(&f, at(&format!("{rel}/f")), PutMode::Replace)
        .await
        .expect("put");
    t.put_accelerated(&f, &format!("{rel}/g"), "/usr/bin/scp %s %d")
        .await
        .expect("scp");
    assert_eq!(std::fs::read(abs.join("f")).expect("f"), data);
    assert_eq!(std::fs::read(abs.join("g")).expect("g"), data);
}

#[tokio::test]
#[ignore = "needs the harness sshd: scripts/sshd-harness.sh test"]
async fn proxy_jump_from_the_ssh_config_is_followed_by_sftp_and_scp() {
    let _g = SSHD.read().await;
    let h = harness();
    put_by_sftp_and_scp(&h, "sftp://hpfx-jump", "jump", b"jumped").await;
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
    // This process's own once-only sweep must not run between the kill and
    // the first assertion (another test's first connection would do it).
    master::sweep_stale_once().await;
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "connection::helper_process_holding_a_connection",
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
    t.mkdirs(at(&rel), 0o755).await.expect("mkdirs");
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
                    t.put(&f, at(&tmp), PutMode::Replace).await?;
                    t.rename(at(&tmp), at(&format!("{rel}/f{i}"))).await
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
