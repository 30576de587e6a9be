//! Random message sequences against a real tree with a canary beside the
//! destination: shared by the `placement` fuzz target and by
//! tests/placement_sequences.rs (a bounded, seeded run in the test suite).
//!
//! Each sequence is decoded from bytes into v03 messages — files, links
//! (absolute, relative, climbing out, into the canary), renames, removes,
//! rmdirs and mkdirs — over relPaths built from hostile components (`..`,
//! `.`, empty, NUL, newline, names of 255 and 256 bytes, the names of the
//! links made before). Each message goes through the sender's or
//! subscribe's own placement ([`pitcher::flow::consume::place`]) and work
//! ([`pitcher::flow::deliver::deliver`]) into a `file:` destination.
//! Afterwards nothing outside the destination may have changed: the
//! canary (content, modes, links) and the temporary directory's top level
//! are as they were. Errors are fine; escapes and panics are not.

use pitcher::config::{Component, Config};
use pitcher::flow::deliver::{deliver, Direction, Sources};
use pitcher::message::Message;
use pitcher::transfer::file::FileTransport;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which way files move.
#[derive(Clone, Copy, Debug)]
pub enum Way {
    Send,
    Download,
}

/// A temporary tree: `src` (the announced files), `dest` (the root) and
/// `canary` beside it.
pub struct Tree {
    _tmp: tempfile::TempDir,
    top: PathBuf,
    src: PathBuf,
    dest: PathBuf,
    canary: PathBuf,
    cfg: Config,
    way: Way,
    rt: tokio::runtime::Runtime,
    before: BTreeMap<String, String>,
    top_before: Vec<String>,
}

/// Every path below `dir` with what it is: content, mode, link target.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).follow_links(false) {
        let Ok(e) = e else { continue };
        let p = e.path();
        let key = p.strip_prefix(dir).unwrap_or(p).display().to_string();
        let Ok(m) = std::fs::symlink_metadata(p) else {
            continue;
        };
        let mode = m.permissions().mode();
        let what = if m.file_type().is_symlink() {
            format!("link {:?}", std::fs::read_link(p).ok())
        } else if m.is_dir() {
            format!("dir {mode:o}")
        } else {
            format!("file {mode:o} {:?}", std::fs::read(p).ok())
        };
        out.insert(key, what);
    }
    out
}

fn top_names(top: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(top)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

impl Tree {
    pub fn new(way: Way) -> Tree {
        let tmp = tempfile::Builder::new()
            .prefix("pitcher-placement")
            .tempdir()
            .expect("tempdir");
        let top = tmp.path().to_path_buf();
        let (src, dest, canary) = (top.join("src"), top.join("dest"), top.join("canary"));
        for d in [&src, &dest, &canary, &canary.join("empty")] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(canary.join("secret"), b"canary").expect("canary");
        std::fs::write(src.join("plain"), b"plain").expect("src");
        let mut cfg = Config::new(
            match way {
                Way::Send => Component::Sender,
                Way::Download => Component::Subscribe,
            },
            "fuzz",
        );
        cfg.directory = Some(dest.display().to_string());
        cfg.mirror = true;
        cfg.inflight = pitcher::config::Inflight::Suffix(".tmp".into());
        cfg.accept_unmatched = true;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let before = snapshot(&canary);
        let top_before = top_names(&top);
        Tree {
            _tmp: tmp,
            top,
            src,
            dest,
            canary,
            cfg,
            way,
            rt,
            before,
            top_before,
        }
    }

    /// A relPath of hostile components chosen by `a` and `b`.
    fn rel(&self, a: u8, b: u8) -> String {
        let long = "n".repeat(255);
        let longer = "m".repeat(256);
        let canary = self.canary.display().to_string();
        let parts: [&str; 16] = [
            "a",
            "b",
            "lnk",
            "rel",
            "up",
            "..",
            ".",
            "",
            "sub",
            &long,
            &longer,
            "nul\0x",
            "new\nline",
            "f",
            "canary",
            &canary,
        ];
        let first = parts[usize::from(a) % parts.len()];
        let second = parts[usize::from(b) % parts.len()];
        match b / 16 % 4 {
            0 => first.to_string(),
            1 => format!("{first}/{second}"),
            2 => format!("/{first}/{second}"),
            _ => format!(
                "{first}/{second}/{}",
                parts[usize::from(a / 16) % parts.len()]
            ),
        }
    }

    fn target(&self, c: u8) -> String {
        let canary = self.canary.display().to_string();
        let targets = [
            canary.clone(),
            format!("{canary}/secret"),
            "../canary".to_string(),
            "../../..".to_string(),
            "/".to_string(),
            "sub".to_string(),
            "a".to_string(),
            format!("{}", self.top.display()),
        ];
        targets[usize::from(c) % targets.len()].clone()
    }

    /// Makes `src/<rel>` when `rel` names a place under `src` plainly.
    fn source_file(&self, rel: &str) {
        let plain = rel
            .split('/')
            .filter(|p| !p.is_empty())
            .all(|p| p != "." && p != ".." && !p.contains('\0') && p.len() <= 255);
        if !plain || rel.trim_matches('/').is_empty() {
            return;
        }
        let p = self.src.join(rel.trim_start_matches('/'));
        if let Some(parent) = p.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&p, b"payload");
    }

    /// The message of one 4-byte operation.
    fn message(&self, op: &[u8]) -> Option<Message> {
        let (kind, a, b, c) = (op[0], op[1], op[2], op[3]);
        let rel = self.rel(a, b);
        let base = format!("file:{}", self.src.display());
        let mut body = serde_json::json!({
            "pubTime": "20261205T050000.000",
            "baseUrl": base,
            "relPath": rel,
        });
        match kind % 8 {
            0 | 1 => {
                self.source_file(&rel);
                body["size"] = 7.into();
                body["mode"] = if c % 2 == 0 { "777" } else { "644" }.into();
            }
            2 => body["fileOp"] = serde_json::json!({"link": self.target(c)}),
            3 => {
                self.source_file(&rel);
                let old = format!("{}/{}", self.src.display(), self.rel(c, a));
                body["fileOp"] = serde_json::json!({"rename": old});
            }
            4 => body["fileOp"] = serde_json::json!({"remove": ""}),
            5 => body["fileOp"] = serde_json::json!({"remove": "", "directory": ""}),
            6 => body["fileOp"] = serde_json::json!({"directory": ""}),
            _ => {
                self.source_file("plain");
                body["retrievePath"] = self.rel(c, b).into();
            }
        }
        Message::from_json(body.to_string().as_bytes()).ok()
    }

    /// Applies the operations that `data` encodes (4 bytes each).
    pub fn apply(&self, data: &[u8]) {
        let here = FileTransport::new("/".into());
        let direction = match self.way {
            Way::Send => Direction::Send,
            Way::Download => {
                Direction::Download(Sources::new(Default::default(), Default::default()))
            }
        };
        for op in data.chunks_exact(4).take(64) {
            let Some(msg) = self.message(op) else {
                continue;
            };
            let Ok(Some((dest, old))) = pitcher::flow::consume::place(&self.cfg, &msg) else {
                continue;
            };
            let _ = self.rt.block_on(deliver(
                &here,
                &direction,
                &self.cfg,
                &msg,
                &dest,
                old.as_deref(),
            ));
        }
    }

    /// Panics if anything outside `dest` (and the announced `src`) changed.
    pub fn check(&self) {
        assert_eq!(
            top_names(&self.top),
            self.top_before,
            "something appeared or vanished beside the destination"
        );
        let after = snapshot(&self.canary);
        assert_eq!(after, self.before, "the canary changed");
        assert!(self.dest.is_dir(), "the destination root is gone");
    }
}
