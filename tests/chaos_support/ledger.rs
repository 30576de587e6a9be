//! The ledger: the files fed into the hot directory, with their hashes,
//! and the comparison of the destination with it at the end.

use super::Rng;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Files per directory of the hot tree (`d000/f00000` …).
pub const PER_DIR: usize = 25;

/// The relative path of file `i`.
pub fn rel(i: usize) -> String {
    format!("d{:03}/f{i:05}", i / PER_DIR)
}

/// Every file fed: relative path → sha256 (hex).
#[derive(Default)]
pub struct Ledger {
    pub files: BTreeMap<String, String>,
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Ledger {
    /// Writes file `i` into `hot` (mostly as `x.tmp` renamed to `x`, as
    /// careful producers do; one in five written in place) and records it.
    pub fn feed(&mut self, hot: &Path, i: usize, rng: &mut Rng) -> std::io::Result<()> {
        let rel = rel(i);
        let len = 64 + rng.below(8128) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let path = hot.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap_or(hot))?;
        if rng.below(5) == 0 {
            std::fs::write(&path, &data)?;
        } else {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &data)?;
            std::fs::rename(&tmp, &path)?;
        }
        self.files.insert(rel, sha256(&data));
        Ok(())
    }

    /// Saves `rel<TAB>sha256` lines.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text: String = self
            .files
            .iter()
            .map(|(k, v)| format!("{k}\t{v}\n"))
            .collect();
        std::fs::write(path, text)
    }

    /// Compares `dest` with the ledger.
    pub fn check(&self, dest: &Path) -> Check {
        let mut c = Check::default();
        for (rel, hash) in &self.files {
            match std::fs::read(dest.join(rel)) {
                Ok(data) if sha256(&data) == *hash => c.ok += 1,
                Ok(_) => {
                    c.corrupt += 1;
                    c.examples.push(format!("corrupt {rel}"));
                }
                Err(_) => {
                    c.lost += 1;
                    c.examples.push(format!("missing {rel}"));
                }
            }
        }
        for e in walkdir::WalkDir::new(dest).into_iter().flatten() {
            let name = e.file_name().to_string_lossy();
            if e.file_type().is_file() && name.ends_with(".tmp") {
                c.tmp_left += 1;
                c.examples.push(format!("left {}", e.path().display()));
            }
        }
        c.examples.truncate(10);
        c
    }
}

/// How the destination compares with the ledger.
#[derive(Default, Debug)]
pub struct Check {
    pub ok: usize,
    pub lost: usize,
    pub corrupt: usize,
    pub tmp_left: usize,
    pub examples: Vec<String>,
}

impl Check {
    /// Everything there, whole, and nothing half-written left.
    pub fn complete(&self) -> bool {
        self.lost == 0 && self.corrupt == 0 && self.tmp_left == 0
    }
}

/// Files delivered more than once, counted from the senders' `sent:` log
/// lines (a redelivery after a kill -9 is allowed, and counted here).
pub fn duplicates(log_dir: &Path, sender_prefix: &str) -> usize {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for e in std::fs::read_dir(log_dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(sender_prefix) {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for line in text.lines() {
            let Some(rest) = line.split_once("sent: ").map(|(_, r)| r) else {
                continue;
            };
            if let Some((_, to)) = rest.split_once(" to ") {
                let path = to.rsplit_once(" size: ").map(|(p, _)| p).unwrap_or(to);
                *count.entry(path.to_string()).or_default() += 1;
            }
        }
    }
    count.values().filter(|n| **n > 1).map(|n| n - 1).sum()
}
