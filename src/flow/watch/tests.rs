//! Specifications of [`TreeWatcher`], against the real file system in temp
//! directories with real inotify. Waits are bounded: events are collected
//! until what is expected has been seen or 5 s have passed.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::tree::{poll_scan, FsEvent, TreeWatcher};

const PATIENCE: Duration = Duration::from_secs(5);
/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_millis(500);

fn watch(root: &Path) -> TreeWatcher {
    TreeWatcher::new(&[root.to_path_buf()], true).expect("watcher starts")
}

/// Collects events until `done` holds for all of them or PATIENCE passes.
async fn collect_until(w: &mut TreeWatcher, done: impl Fn(&[FsEvent]) -> bool) -> Vec<FsEvent> {
    let deadline = Instant::now() + PATIENCE;
    let mut all = Vec::new();
    while !done(&all) && Instant::now() < deadline {
        let batch = w
            .next_batch(Duration::from_millis(100))
            .await
            .expect("batch");
        all.extend(batch);
    }
    all
}

/// Collects events until every one of `expected` has been seen.
async fn collect_all_of(w: &mut TreeWatcher, expected: &[FsEvent]) -> Vec<FsEvent> {
    let events = collect_until(w, |seen| expected.iter().all(|e| seen.contains(e))).await;
    for e in expected {
        assert!(events.contains(e), "{e:?} not reported; got {events:?}");
    }
    events
}

/// Everything reported during QUIET.
async fn collect_quietly(w: &mut TreeWatcher) -> Vec<FsEvent> {
    let deadline = Instant::now() + QUIET;
    let mut all = Vec::new();
    while Instant::now() < deadline {
        all.extend(
            w.next_batch(Duration::from_millis(50))
                .await
                .expect("batch"),
        );
    }
    all
}

fn position(events: &[FsEvent], e: &FsEvent) -> usize {
    events
        .iter()
        .position(|x| x == e)
        .unwrap_or_else(|| panic!("{e:?} missing from {events:?}"))
}

fn file(p: impl Into<PathBuf>) -> FsEvent {
    FsEvent::File(p.into())
}
fn dir(p: impl Into<PathBuf>) -> FsEvent {
    FsEvent::Dir(p.into())
}
fn link(p: impl Into<PathBuf>) -> FsEvent {
    FsEvent::Link(p.into())
}
fn removed(p: impl Into<PathBuf>, was_dir: bool) -> FsEvent {
    FsEvent::Removed {
        path: p.into(),
        was_dir,
    }
}
fn renamed(from: impl Into<PathBuf>, to: impl Into<PathBuf>, is_dir: bool) -> FsEvent {
    FsEvent::Renamed {
        from: from.into(),
        to: to.into(),
        is_dir,
    }
}

#[tokio::test]
async fn mkdir_p_and_files_written_at_once_are_all_reported_and_watched() {
    let hot = tempfile::tempdir().unwrap();
    let h = hot.path();
    let mut w = watch(h);
    fs::create_dir_all(h.join("a/b/c")).unwrap();
    fs::write(h.join("a/f1"), "1").unwrap();
    fs::write(h.join("a/b/f2"), "2").unwrap();
    fs::write(h.join("a/b/c/f3"), "3").unwrap();
    let expected = [
        dir(h.join("a")),
        dir(h.join("a/b")),
        dir(h.join("a/b/c")),
        file(h.join("a/f1")),
        file(h.join("a/b/f2")),
        file(h.join("a/b/c/f3")),
    ];
    let events = collect_all_of(&mut w, &expected).await;
    assert!(
        position(&events, &dir(h.join("a/b/c"))) < position(&events, &file(h.join("a/b/c/f3")))
    );
    assert!(position(&events, &dir(h.join("a"))) < position(&events, &dir(h.join("a/b"))));

    // The new directories are watched from now on.
    fs::write(h.join("a/b/c/later"), "x").unwrap();
    collect_all_of(&mut w, &[file(h.join("a/b/c/later"))]).await;
}

#[tokio::test]
async fn a_tree_moved_in_from_outside_is_reported_whole_and_watched() {
    let hot = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let (h, x) = (hot.path(), outside.path().join("x"));
    fs::create_dir_all(x.join("sub/deeper")).unwrap();
    fs::write(x.join("f"), "f").unwrap();
    fs::write(x.join("sub/g"), "g").unwrap();
    symlink("../f", x.join("sub/to_f")).unwrap();
    let mut w = watch(h);

    fs::rename(&x, h.join("x")).unwrap();
    let events = collect_all_of(
        &mut w,
        &[
            dir(h.join("x")),
            file(h.join("x/f")),
            dir(h.join("x/sub")),
            file(h.join("x/sub/g")),
            link(h.join("x/sub/to_f")),
            dir(h.join("x/sub/deeper")),
        ],
    )
    .await;
    assert!(position(&events, &dir(h.join("x/sub"))) < position(&events, &file(h.join("x/sub/g"))));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.path() == h.join("x/sub/g"))
            .count(),
        1
    );

    fs::write(h.join("x/sub/deeper/new"), "n").unwrap();
    collect_all_of(&mut w, &[file(h.join("x/sub/deeper/new"))]).await;
}

#[tokio::test]
async fn a_directory_renamed_inside_the_tree_is_followed_under_its_new_path() {
    let hot = tempfile::tempdir().unwrap();
    let h = hot.path();
    let mut w = watch(h);
    fs::create_dir_all(h.join("d/sub")).unwrap();
    collect_all_of(&mut w, &[dir(h.join("d")), dir(h.join("d/sub"))]).await;

    fs::rename(h.join("d"), h.join("e")).unwrap();
    fs::write(h.join("e/sub/f"), "f").unwrap();
    fs::write(h.join("e/g"), "g").unwrap();
    let events = collect_all_of(
        &mut w,
        &[
            renamed(h.join("d"), h.join("e"), true),
            file(h.join("e/sub/f")),
            file(h.join("e/g")),
        ],
    )
    .await;
    assert!(
        events.iter().all(|e| !e.path().starts_with(h.join("d"))),
        "stale path in {events:?}"
    );
}

#[tokio::test]
async fn renames_pair_by_cookie_and_unpaired_halves_are_moves_out_or_in() {
    let hot = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let (h, o) = (hot.path(), outside.path());
    fs::write(h.join("stays"), "s").unwrap();
    fs::write(h.join("leaves"), "l").unwrap();
    fs::create_dir(h.join("gone_dir")).unwrap();
    fs::write(o.join("arrives"), "a").unwrap();
    let mut w = watch(h);

    fs::rename(h.join("stays"), h.join("renamed")).unwrap();
    fs::rename(h.join("leaves"), o.join("left")).unwrap();
    fs::rename(h.join("gone_dir"), o.join("gone_dir")).unwrap();
    fs::rename(o.join("arrives"), h.join("arrived")).unwrap();
    let events = collect_all_of(
        &mut w,
        &[
            renamed(h.join("stays"), h.join("renamed"), false),
            removed(h.join("leaves"), false),
            removed(h.join("gone_dir"), true),
            file(h.join("arrived")),
        ],
    )
    .await;
    assert_eq!(events.len(), 4, "{events:?}");

    // The moved-out directory is no longer watched.
    fs::write(o.join("gone_dir/f"), "f").unwrap();
    assert_eq!(collect_quietly(&mut w).await, vec![]);
}

#[tokio::test]
async fn a_directory_moved_out_and_straight_back_in_is_removed_then_new_and_still_watched() {
    let hot = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let (h, o) = (hot.path(), outside.path());
    fs::create_dir_all(h.join("d/sub")).unwrap();
    fs::write(h.join("d/sub/f"), "f").unwrap();
    let mut w = watch(h);
    for round in 0..20 {
        fs::rename(h.join("d"), o.join("d")).unwrap();
        fs::rename(o.join("d"), h.join("d")).unwrap();
        let events = collect_all_of(
            &mut w,
            &[
                removed(h.join("d"), true),
                dir(h.join("d")),
                dir(h.join("d/sub")),
                file(h.join("d/sub/f")),
            ],
        )
        .await;
        assert!(
            position(&events, &removed(h.join("d"), true)) < position(&events, &dir(h.join("d"))),
            "round {round}: {events:?}"
        );
        // Its watches (and its subdirectory's) are in place.
        let new = h.join(format!("d/sub/new{round}"));
        fs::write(&new, "n").unwrap();
        collect_all_of(&mut w, &[file(new)]).await;
    }
}

#[tokio::test]
async fn a_file_written_under_a_temp_name_then_renamed_is_a_file_then_a_rename() {
    let hot = tempfile::tempdir().unwrap();
    let h = hot.path();
    let mut w = watch(h);
    fs::write(h.join("x.tmp"), "data").unwrap();
    fs::rename(h.join("x.tmp"), h.join("x")).unwrap();
    let rename = renamed(h.join("x.tmp"), h.join("x"), false);
    let events = collect_all_of(&mut w, &[file(h.join("x.tmp")), rename.clone()]).await;
    assert_eq!(events, vec![file(h.join("x.tmp")), rename]);
}

#[tokio::test]
async fn a_file_is_reported_only_once_closed_and_reading_files_reports_nothing() {
    let hot = tempfile::tempdir().unwrap();
    let h = hot.path();
    fs::write(h.join("old"), "already there").unwrap();
    let mut w = watch(h);

    let mut writer = fs::File::create(h.join("growing")).unwrap();
    writer.write_all(b"part one").unwrap();
    let mut content = String::new();
    fs::File::open(h.join("old"))
        .unwrap()
        .read_to_string(&mut content)
        .unwrap();
    assert_eq!(collect_quietly(&mut w).await, vec![]);

    writer.write_all(b"part two").unwrap();
    drop(writer);
    let events = collect_all_of(&mut w, &[file(h.join("growing"))]).await;
    assert_eq!(events, vec![file(h.join("growing"))]);
}

#[tokio::test]
async fn deleted_directories_are_reported_and_their_name_can_be_watched_again() {
    let hot = tempfile::tempdir().unwrap();
    let h = hot.path();
    fs::create_dir_all(h.join("d/sub")).unwrap();
    fs::write(h.join("d/sub/f"), "f").unwrap();
    let mut w = watch(h);

    fs::remove_dir_all(h.join("d")).unwrap();
    let events = collect_all_of(
        &mut w,
        &[
            removed(h.join("d/sub/f"), false),
            removed(h.join("d/sub"), true),
            removed(h.join("d"), true),
        ],
    )
    .await;
    assert!(
        position(&events, &removed(h.join("d/sub"), true))
            < position(&events, &removed(h.join("d"), true))
    );

    fs::create_dir_all(h.join("d/sub")).unwrap();
    collect_all_of(&mut w, &[dir(h.join("d")), dir(h.join("d/sub"))]).await;
    fs::write(h.join("d/sub/again"), "a").unwrap();
    collect_all_of(&mut w, &[file(h.join("d/sub/again"))]).await;
}

#[tokio::test]
async fn symlinks_are_links_never_followed_and_hard_links_are_files() {
    let hot = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let (h, o) = (hot.path(), outside.path());
    fs::write(o.join("original"), "o").unwrap();
    let mut w = watch(h);

    symlink(o, h.join("to_outside_dir")).unwrap();
    symlink("nowhere", h.join("dangling")).unwrap();
    fs::hard_link(o.join("original"), h.join("hard")).unwrap();
    let events = collect_all_of(
        &mut w,
        &[
            link(h.join("to_outside_dir")),
            link(h.join("dangling")),
            file(h.join("hard")),
        ],
    )
    .await;
    assert_eq!(events.len(), 3, "{events:?}");

    // Nothing behind the directory link is watched or scanned.
    fs::write(o.join("behind_link"), "b").unwrap();
    assert_eq!(collect_quietly(&mut w).await, vec![]);
    assert_eq!(
        w.scan(),
        vec![
            link(h.join("dangling")),
            file(h.join("hard")),
            link(h.join("to_outside_dir")),
        ]
    );
}

#[tokio::test]
async fn a_file_closed_after_writing_several_times_in_one_batch_is_reported_once() {
    let hot = tempfile::tempdir().unwrap();
    let h = hot.path();
    let mut w = watch(h);
    for i in 0..5 {
        fs::write(h.join("f"), format!("version {i}")).unwrap();
    }
    fs::write(h.join("g"), "g").unwrap();
    // Let the watcher thread read everything before the batch is taken.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = collect_all_of(&mut w, &[file(h.join("f")), file(h.join("g"))]).await;
    assert_eq!(events, vec![file(h.join("f")), file(h.join("g"))]);
}

#[tokio::test]
async fn names_with_spaces_newlines_unicode_and_invalid_utf8_are_kept_exactly() {
    let hot = tempfile::tempdir().unwrap();
    let h = hot.path();
    let mut w = watch(h);
    let names: Vec<&OsStr> = vec![
        OsStr::new("with space"),
        OsStr::new("new\nline"),
        OsStr::new("ünïcødé ✓"),
        OsStr::from_bytes(b"latin1 \xe9t\xe9"),
    ];
    fs::create_dir(h.join("dir with\nnewline")).unwrap();
    for name in &names {
        fs::write(h.join(name), "x").unwrap();
        fs::write(h.join("dir with\nnewline").join(name), "x").unwrap();
    }
    let mut expected: Vec<FsEvent> = names.iter().map(|n| file(h.join(n))).collect();
    expected.extend(
        names
            .iter()
            .map(|n| file(h.join("dir with\nnewline").join(n))),
    );
    collect_all_of(&mut w, &expected).await;
}

#[tokio::test]
async fn things_that_vanish_before_they_are_looked_at_do_not_break_the_watcher() {
    let hot = tempfile::tempdir().unwrap();
    let h = hot.path();
    let mut w = watch(h);
    for i in 0..50 {
        let d = h.join(format!("flash{i}"));
        fs::create_dir_all(d.join("inner")).unwrap();
        fs::write(d.join("inner/f"), "f").unwrap();
        fs::remove_dir_all(&d).unwrap();
        fs::write(h.join("src"), "s").unwrap();
        fs::hard_link(h.join("src"), h.join("hard")).unwrap();
        fs::remove_file(h.join("hard")).unwrap();
        fs::remove_file(h.join("src")).unwrap();
        symlink("x", h.join("l")).unwrap();
        fs::remove_file(h.join("l")).unwrap();
    }
    fs::write(h.join("survivor"), "s").unwrap();
    let events = collect_all_of(&mut w, &[file(h.join("survivor"))]).await;
    // The last thing that happened to every flash directory is its removal.
    for i in 0..50 {
        let d = h.join(format!("flash{i}"));
        let last = events.iter().rev().find(|e| e.path().starts_with(&d));
        assert_eq!(last, Some(&removed(&d, true)), "{events:?}");
    }
}

#[tokio::test]
async fn a_thousand_files_created_quickly_in_nested_directories_are_all_reported() {
    let hot = tempfile::tempdir().unwrap();
    let h = hot.path();
    let mut w = watch(h);
    let mut expected = HashSet::new();
    for a in 0..10 {
        for b in 0..10 {
            let d = h.join(format!("a{a}/b{b}"));
            fs::create_dir_all(&d).unwrap();
            for f in 0..10 {
                let p = d.join(format!("f{f}"));
                fs::write(&p, "x").unwrap();
                expected.insert(p);
            }
        }
    }
    let events = collect_until(&mut w, |seen| {
        let files: HashSet<&Path> = seen
            .iter()
            .filter(|e| matches!(e, FsEvent::File(_)))
            .map(FsEvent::path)
            .collect();
        expected.iter().all(|p| files.contains(p.as_path()))
    })
    .await;
    let files: HashSet<PathBuf> = events
        .iter()
        .filter(|e| matches!(e, FsEvent::File(_)))
        .map(|e| e.path().to_path_buf())
        .collect();
    assert_eq!(files, expected);
    // Duplicates across batches are allowed, but must stay rare.
    let file_events = events
        .iter()
        .filter(|e| matches!(e, FsEvent::File(_)))
        .count();
    assert!(
        file_events < 1100,
        "{file_events} file events for 1000 files"
    );
}

#[tokio::test]
async fn what_exists_at_start_is_only_reported_by_scan() {
    let hot = tempfile::tempdir().unwrap();
    let h = hot.path();
    fs::create_dir_all(h.join("a/b")).unwrap();
    fs::write(h.join("a/b/f"), "f").unwrap();
    fs::write(h.join("top"), "t").unwrap();
    let mut w = watch(h);
    assert_eq!(collect_quietly(&mut w).await, vec![]);
    assert_eq!(
        w.scan(),
        vec![
            dir(h.join("a")),
            dir(h.join("a/b")),
            file(h.join("a/b/f")),
            file(h.join("top"))
        ]
    );
}

#[tokio::test]
async fn without_recursion_only_the_top_level_is_watched_and_scanned() {
    let hot = tempfile::tempdir().unwrap();
    let h = hot.path();
    fs::create_dir(h.join("sub")).unwrap();
    fs::write(h.join("sub/f"), "f").unwrap();
    let mut w = TreeWatcher::new(&[h.to_path_buf()], false).unwrap();
    assert_eq!(w.scan(), vec![dir(h.join("sub"))]);
    assert_eq!(
        poll_scan(&[h.to_path_buf()], false),
        vec![dir(h.join("sub"))]
    );

    fs::create_dir(h.join("new")).unwrap();
    fs::write(h.join("new/inside"), "i").unwrap();
    fs::write(h.join("sub/g"), "g").unwrap();
    fs::write(h.join("top"), "t").unwrap();
    let events = collect_all_of(&mut w, &[dir(h.join("new")), file(h.join("top"))]).await;
    assert_eq!(events, vec![dir(h.join("new")), file(h.join("top"))]);
}

#[test]
fn watching_a_missing_root_or_a_file_fails_naming_it() {
    let hot = tempfile::tempdir().unwrap();
    let missing = hot.path().join("missing");
    let e = TreeWatcher::new(std::slice::from_ref(&missing), true).unwrap_err();
    assert!(e.to_string().contains(&*missing.to_string_lossy()), "{e}");

    let a_file = hot.path().join("a_file");
    fs::write(&a_file, "f").unwrap();
    let e = TreeWatcher::new(std::slice::from_ref(&a_file), true).unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
}

#[test]
fn the_watch_limit_error_names_the_directory_and_the_sysctl() {
    let e = super::table::watch_error(
        Path::new("/srv/hot/deep"),
        std::io::Error::from_raw_os_error(libc::ENOSPC),
    );
    assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
    let text = e.to_string();
    assert!(text.contains("/srv/hot/deep"), "{text}");
    assert!(text.contains("fs.inotify.max_user_watches"), "{text}");
}
