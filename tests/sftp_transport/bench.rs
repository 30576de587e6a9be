//! Throughput figures, printed rather than asserted.

use super::support::*;
use pitcher::transfer::PutMode;
use pitcher::transfer::Transport;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

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
        t.mkdirs(at(&dir), 0o755).await.expect("mkdirs");
        let started = Instant::now();
        let limit = Arc::new(tokio::sync::Semaphore::new(in_flight));
        let mut tasks = tokio::task::JoinSet::new();
        for p in &small {
            let (t, limit, p, dir) = (Arc::clone(&t), Arc::clone(&limit), p.clone(), dir.clone());
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("semaphore");
                let name = p.file_name().expect("name").to_string_lossy().into_owned();
                t.put(&p, at(&format!("{dir}/{name}.tmp")), PutMode::CreateNew)
                    .await?;
                t.rename(
                    at(&format!("{dir}/{name}.tmp")),
                    at(&format!("{dir}/{name}")),
                )
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
    transport(&h)
        .mkdirs(at(&format!("{rel}/sftp-b")), 0o755)
        .await
        .expect("mkdirs");
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
    t.put(&big, at(&format!("{rel}/big-sftp")), PutMode::Replace)
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
