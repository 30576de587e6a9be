//! What the sftp tests share: the harness environment, the lock that
//! keeps the sshd-killing test apart, and small file and process helpers.

use pitcher::transfer::sftp::SftpTransport;
use pitcher::transfer::TransportOptions;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

pub static SSHD: RwLock<()> = RwLock::const_new(());

const HOW: &str = "start the test sshd first: `scripts/sshd-harness.sh start && eval \"$(scripts/sshd-harness.sh env)\"`, \
                   or run `scripts/sshd-harness.sh test`";

/// What the harness exported.
pub struct Harness {
    pub ssh_config: PathBuf,
    pub home: PathBuf,
    pub port: String,
    pub user: String,
}

pub fn harness() -> Harness {
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

pub fn options(h: &Harness) -> TransportOptions {
    TransportOptions {
        ssh_config: Some(h.ssh_config.clone()),
        timeout: Duration::from_secs(20),
        ssh_keyfile: None,
        byte_rate_max: 0,
    }
}

pub fn transport(h: &Harness) -> SftpTransport {
    SftpTransport::new("sftp://hpfx", &options(h)).expect("sftp://hpfx is a valid sendTo")
}

/// A fresh directory for one test, relative to the login directory, and
/// its path as the server's file system sees it.
pub fn scratch(h: &Harness, name: &str) -> (String, PathBuf) {
    let rel = format!("t-{name}-{}", std::process::id());
    let abs = h.home.join(&rel);
    let _ = std::fs::remove_dir_all(&abs);
    (rel, abs)
}

pub fn local_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write local file");
    p
}

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sshd-harness.sh")
}

pub fn harness_cmd(verb: &str) {
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
pub fn processes_with(needle: &str) -> Vec<u32> {
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

pub async fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < end, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deterministic pseudo-random bytes (xorshift), so big files do not compress.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
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

pub fn sha256sum(p: &Path) -> String {
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

/// `path` as a destination path: beneath the login directory when
/// relative, beneath `/` when absolute.
pub fn at(path: &str) -> pitcher::transfer::At<'_> {
    let root = if path.starts_with('/') { "/" } else { "" };
    pitcher::transfer::At::new(root, path)
}

/// Downloads `remote` into a new local file, as subscribe does.
pub async fn fetch(t: &SftpTransport, remote: &str, local: &Path) -> std::io::Result<u64> {
    use pitcher::transfer::Source;
    let out = std::fs::File::create(local)?;
    let r = t.get(at(remote), out).await;
    if r.is_err() {
        let _ = std::fs::remove_file(local);
    }
    r
}
