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
//!
//! * this file: each Transport operation, many small files, large files.
//! * [`connection`]: connecting, host keys, reconnection, master cleanup.
//! * [`bench`]: `scripts/sshd-harness.sh bench` figures.

// A test crate's root resolves modules beside it, hence the paths.
#[path = "sftp_transport/bench.rs"]
mod bench;
#[path = "sftp_transport/connection.rs"]
mod connection;
#[path = "sftp_transport/support.rs"]
mod support;

use pitcher::transfer::{for_url_with, PutMode, Transport};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use support::*;

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

    t.mkdirs(at(&rel), 0o755).await.expect("mkdirs");
    let n = t
        .put(&first, at(&format!("{rel}/x.tmp")), PutMode::CreateNew)
        .await
        .expect("put");
    assert_eq!(n, 21);
    t.rename(at(&format!("{rel}/x.tmp")), at(&format!("{rel}/x")))
        .await
        .expect("rename");
    assert_eq!(
        std::fs::read(abs.join("x")).expect("x"),
        b"first version, longer"
    );
    assert!(!abs.join("x.tmp").exists());

    t.put(&second, at(&format!("{rel}/x.tmp")), PutMode::CreateNew)
        .await
        .expect("put again");
    t.rename(at(&format!("{rel}/x.tmp")), at(&format!("{rel}/x")))
        .await
        .expect("rename over an existing file");
    assert_eq!(std::fs::read(abs.join("x")).expect("x"), b"second");

    t.put(&first, at(&format!("{rel}/x")), PutMode::Replace)
        .await
        .expect("replace");
    t.put(&second, at(&format!("{rel}/x")), PutMode::Replace)
        .await
        .expect("replace with shorter");
    assert_eq!(
        std::fs::read(abs.join("x")).expect("x"),
        b"second",
        "Replace truncates"
    );

    let e = t
        .rename(at(&format!("{rel}/absent")), at(&format!("{rel}/y")))
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
    t.mkdirs(at(&rel), 0o755).await.expect("mkdirs");
    t.put(&a, at(&format!("{rel}/f.tmp")), PutMode::CreateNew)
        .await
        .expect("first put");
    let e = t
        .put(&b, at(&format!("{rel}/f.tmp")), PutMode::CreateNew)
        .await
        .expect_err("second CreateNew");
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    assert_eq!(
        std::fs::read(abs.join("f.tmp")).expect("f.tmp"),
        b"owner's bytes"
    );

    // A missing directory is NotFound, not AlreadyExists.
    let e = t
        .put(&b, at(&format!("{rel}/no/such/f")), PutMode::CreateNew)
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
    t.mkdirs(at(&format!("{rel}/a/b/c/")), 0o750)
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
    t.mkdirs(at(&format!("{rel}/a/b/c")), 0o750)
        .await
        .expect("again");
    let absolute = abs.join("d/e").to_string_lossy().into_owned();
    t.mkdirs(at(&absolute), 0o755).await.expect("absolute path");
    assert!(abs.join("d/e").is_dir());

    std::fs::write(abs.join("plain"), b"x").expect("file");
    let e = t
        .mkdirs(at(&format!("{rel}/plain/sub")), 0o755)
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
    t.remove(at(&format!("{rel}/nothing")))
        .await
        .expect("remove absent");
    t.rmdir(at(&format!("{rel}/nothing")))
        .await
        .expect("rmdir absent");
    t.mkdirs(at(&format!("{rel}/d")), 0o755)
        .await
        .expect("mkdirs");
    std::fs::write(abs.join("f"), b"x").expect("file");
    t.remove(at(&format!("{rel}/f")))
        .await
        .expect("remove file");
    t.rmdir(at(&format!("{rel}/d"))).await.expect("rmdir dir");
    assert!(!abs.join("f").exists() && !abs.join("d").exists());
    std::fs::create_dir(abs.join("full")).expect("dir");
    std::fs::write(abs.join("full/f"), b"x").expect("file");
    t.rmdir(at(&format!("{rel}/full")))
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
    t.mkdirs(at(&rel), 0o755).await.expect("mkdirs");
    t.symlink("target-one", at(&format!("{rel}/l")))
        .await
        .expect("symlink");
    assert_eq!(
        std::fs::read_link(abs.join("l")).expect("is a link"),
        PathBuf::from("target-one")
    );
    t.symlink("../elsewhere", at(&format!("{rel}/l")))
        .await
        .expect("replace link");
    assert_eq!(
        std::fs::read_link(abs.join("l")).expect("is a link"),
        PathBuf::from("../elsewhere")
    );
    std::fs::write(abs.join("f"), b"x").expect("file");
    t.symlink("target-two", at(&format!("{rel}/f")))
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
    t.mkdirs(at(&rel), 0o755).await.expect("mkdirs");
    t.put(&f, at(&format!("{rel}/f")), PutMode::Replace)
        .await
        .expect("put");
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let atime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_100);
    t.setstat(at(&format!("{rel}/f")), Some(0o640), Some((atime, mtime)))
        .await
        .expect("setstat");
    let m = std::fs::metadata(abs.join("f")).expect("stat");
    assert_eq!(m.permissions().mode() & 0o7777, 0o640);
    assert_eq!(m.mtime(), 1_700_000_000);
    assert_eq!(m.atime(), 1_700_000_100);

    let s = t
        .stat(at(&format!("{rel}/f")))
        .await
        .expect("stat")
        .expect("present");
    assert_eq!((s.size, s.is_dir, s.mtime), (5, false, Some(mtime)));
    assert!(
        t.stat(at(&rel))
            .await
            .expect("stat dir")
            .expect("present")
            .is_dir
    );
    assert_eq!(
        t.stat(at(&format!("{rel}/absent")))
            .await
            .expect("stat absent"),
        None
    );
    std::os::unix::fs::symlink(".", abs.join("link-to-dir")).expect("symlink");
    let l = t
        .stat(at(&format!("{rel}/link-to-dir")))
        .await
        .expect("stat link")
        .expect("present");
    assert!(!l.is_dir, "stat does not follow a final symlink");
    t.setstat(at(&format!("{rel}/absent")), Some(0o600), None)
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
    let n = fetch(&t, &format!("{rel}/big"), &local.path().join("big"))
        .await
        .expect("get");
    assert_eq!(n, content.len() as u64);
    assert!(std::fs::read(local.path().join("big")).expect("local") == content);
    let e = fetch(&t, &format!("{rel}/absent"), &local.path().join("x"))
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
    t.mkdirs(at(&rel), 0o755).await.expect("mkdirs");
    let n = t
        .put(&f, at(&format!("{rel}/f")), PutMode::CreateNew)
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
    t.mkdirs(at(&format!("{rel}/{sub}")), 0o755)
        .await
        .expect("mkdirs");
    for (i, name) in ["a file.txt", "données-ünï.dat", "-rf", "--help me", "a:b"]
        .iter()
        .enumerate()
    {
        let body = format!("content {i} of {name}");
        let f = local_file(local.path(), name, body.as_bytes());
        let remote = format!("{rel}/{sub}/{name}");
        t.put(&f, at(&format!("{remote}.tmp")), PutMode::CreateNew)
            .await
            .expect(name);
        t.rename(at(&format!("{remote}.tmp")), at(&remote))
            .await
            .expect(name);
        assert_eq!(
            std::fs::read_to_string(abs.join(sub).join(name)).expect(name),
            body
        );

        let accel = format!("{remote}.scp");
        // scp is given the full local path, so "-rf" or "a:b" is a file
        // name, never an option or a host (relative names: accel's unit tests).
        t.put_accelerated(&f, &accel, "/usr/bin/scp %s %d")
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
            t.mkdirs(at(&dir), 0o755).await?;
            let tmp = format!("{dir}/{name}.tmp");
            t.put(&path, at(&tmp), PutMode::CreateNew).await?;
            t.rename(at(&tmp), at(&format!("{dir}/{name}"))).await?;
            t.setstat(at(&format!("{dir}/{name}")), Some(0o644), None)
                .await
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
    t.mkdirs(at(&rel), 0o755).await.expect("mkdirs");
    let started = Instant::now();
    for i in 0..5u64 {
        let f = local_file(
            local.path(),
            &format!("big {i}.dat"),
            &noise(50_000_000, i + 1),
        );
        let n = t
            .put_large(
                &f,
                at(&format!("{rel}/big {i}.dat.tmp")),
                "/usr/bin/scp %s %d",
            )
            .await
            .expect("put_large");
        assert_eq!(n, 50_000_000);
        t.rename(
            at(&format!("{rel}/big {i}.dat.tmp")),
            at(&format!("{rel}/big {i}.dat")),
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

/// Every operation resolves beneath its root over SFTP: a symlink that an
/// earlier message made (`abs -> canary`, `rel -> ../canary`) is never
/// gone through; one that stays beneath the root is.
#[tokio::test]
#[ignore = "needs the loopback sshd: bash scripts/test.sh"]
async fn no_operation_goes_through_a_symlink_out_of_the_root() {
    use std::os::unix::fs::symlink;
    let _g = SSHD.read().await;
    let h = harness();
    let t = transport(&h);
    let (rel, abs) = scratch(&h, "confine");
    let (root, canary) = (abs.join("dest"), abs.join("canary"));
    std::fs::create_dir_all(root.join("sub")).expect("dest");
    std::fs::create_dir_all(canary.join("empty")).expect("canary");
    std::fs::write(canary.join("secret"), b"canary").expect("canary file");
    symlink(&canary, root.join("abs")).expect("abs link");
    symlink("../canary", root.join("rel")).expect("rel link");
    symlink("sub", root.join("inside")).expect("inside link");
    symlink(canary.join("secret"), root.join("f")).expect("file link");
    // The tree belongs to the remote user, as one it made would.
    let chown = std::process::Command::new("chown")
        .args(["-h", "-R", &h.user])
        .arg(&abs)
        .status()
        .expect("chown");
    assert!(chown.success());
    let local = tempfile::tempdir().expect("tempdir");
    let f = local_file(local.path(), "f", b"payload");
    let root_text = format!("{rel}/dest");
    let p = |sub: &str| format!("{root_text}/{sub}");
    let at = |path: &str| -> pitcher::transfer::At<'_> {
        // Leaked for the test's lifetime: At borrows its texts.
        let root: &'static str = Box::leak(root_text.clone().into_boxed_str());
        let path: &'static str = Box::leak(path.to_string().into_boxed_str());
        pitcher::transfer::At::new(root, path)
    };
    let refused = |r: io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert!(pitcher::transfer::is_permanent(&e), "{what}: {e}");
    };
    for via in ["abs", "rel"] {
        refused(
            t.put(&f, at(&p(&format!("{via}/evil"))), PutMode::CreateNew)
                .await
                .map(drop),
            "put",
        );
        refused(
            t.put_large(&f, at(&p(&format!("{via}/big"))), "/usr/bin/scp %s %d")
                .await
                .map(drop),
            "put_large",
        );
        refused(t.mkdirs(at(&p(&format!("{via}/d"))), 0o755).await, "mkdirs");
        refused(t.remove(at(&p(&format!("{via}/secret")))).await, "remove");
        refused(t.rmdir(at(&p(&format!("{via}/empty")))).await, "rmdir");
        refused(
            t.symlink("/x", at(&p(&format!("{via}/l")))).await,
            "symlink",
        );
        refused(
            t.rename(at(&p(&format!("{via}/secret"))), at(&p("stolen")))
                .await,
            "rename",
        );
        refused(
            t.setstat(at(&p(&format!("{via}/secret"))), Some(0o777), None)
                .await,
            "setstat",
        );
    }
    refused(t.rmdir(at(&root_text)).await, "rmdir of the root");
    // A final symlink is never written through, nor given the mode.
    t.setstat(at(&p("f")), Some(0o777), None)
        .await
        .expect("setstat of a link does nothing");
    t.put(&f, at(&p("f")), PutMode::Replace)
        .await
        .expect("replaces the link");
    assert_eq!(std::fs::read(root.join("f")).expect("f"), b"payload");
    // Links that stay beneath the root keep working.
    t.mkdirs(at(&p("inside/deeper")), 0o755)
        .await
        .expect("mkdirs through an inside link");
    t.put(&f, at(&p("inside/deeper/ok")), PutMode::CreateNew)
        .await
        .expect("put through an inside link");
    assert_eq!(
        std::fs::read(root.join("sub/deeper/ok")).expect("ok"),
        b"payload"
    );
    let names: Vec<_> = std::fs::read_dir(&canary)
        .expect("canary")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "the canary holds only what it held: {names:?}"
    );
    assert_eq!(
        std::fs::read(canary.join("secret")).expect("secret"),
        b"canary"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(canary.join("secret"))
        .expect("meta")
        .permissions()
        .mode();
    assert_ne!(mode & 0o777, 0o777, "the canary's mode is untouched");
    assert!(canary.join("empty").is_dir());
}

/// A 255-byte name arrives over sftp and scp, under a short enough
/// inflight name; a 256-byte one is refused at once.
#[tokio::test]
#[ignore = "needs the loopback sshd: bash scripts/test.sh"]
async fn a_name_of_255_bytes_arrives_and_one_of_256_is_refused() {
    let _g = SSHD.read().await;
    let h = harness();
    let t = transport(&h);
    let (rel, abs) = scratch(&h, "long");
    t.mkdirs(at(&rel), 0o755).await.expect("mkdirs");
    let local = tempfile::tempdir().expect("tempdir");
    let f = local_file(local.path(), "f", b"long name");
    let name = "é".repeat(127) + "x";
    assert_eq!(name.len(), 255);
    t.put(&f, at(&format!("{rel}/{name}")), PutMode::CreateNew)
        .await
        .expect("sftp put of 255 bytes");
    let big = name.clone();
    let sub = format!("{rel}/scp");
    t.mkdirs(at(&sub), 0o755).await.expect("mkdirs");
    t.put_large(&f, at(&format!("{sub}/{big}")), "/usr/bin/scp %s %d")
        .await
        .expect("scp of 255 bytes");
    assert_eq!(std::fs::read(abs.join(&name)).expect("sftp"), b"long name");
    assert_eq!(
        std::fs::read(abs.join("scp").join(&big)).expect("scp"),
        b"long name"
    );
    let e = t
        .put(&f, at(&format!("{rel}/{name}y")), PutMode::CreateNew)
        .await
        .expect_err("256 bytes");
    assert!(pitcher::transfer::is_permanent(&e), "{e}");
}

/// A destination root that does not exist yet is made by the first
/// `mkdirs` of it (OpenSSH's realpath answers for a missing last
/// component, so asking it is not enough), and files land in it.
#[tokio::test]
#[ignore = "needs the loopback sshd: bash scripts/test.sh"]
async fn a_missing_root_is_made_and_files_land_in_it() {
    let _g = SSHD.read().await;
    let h = harness();
    let t = transport(&h);
    let (rel, abs) = scratch(&h, "newroot");
    let root = format!("{rel}/not/yet");
    let local = tempfile::tempdir().expect("tempdir");
    let f = local_file(local.path(), "f", b"in the new root");
    let at = |p: &str| -> pitcher::transfer::At<'static> {
        let root: &'static str = Box::leak(root.clone().into_boxed_str());
        pitcher::transfer::At::new(root, Box::leak(p.to_string().into_boxed_str()))
    };
    assert!(t
        .stat(at(&format!("{root}/f")))
        .await
        .expect("stat")
        .is_none());
    t.mkdirs(at(&root), 0o755)
        .await
        .expect("mkdirs of the root");
    t.put(&f, at(&format!("{root}/f")), PutMode::CreateNew)
        .await
        .expect("put at the root");
    assert_eq!(
        std::fs::read(abs.join("not/yet/f")).expect("f"),
        b"in the new root"
    );
}
