//! Fuzz the config language: arbitrary bytes as a config, an included file
//! and credentials.conf.
//!
//! Input: up to three parts separated by NUL bytes,
//! `<main .conf> \0 <inc.conf> \0 <credentials.conf>`. The main part is
//! `<component>/f.conf` (one file, reached through a symlink in every
//! component's directory), the second is `inc.conf` at the top of the
//! config dir (so `include inc.conf` reaches it), the third
//! `credentials.conf` (0600). The component it is loaded as is picked by
//! the input's byte sum: loading as all eleven each time made a run ten
//! times slower, and mutations soon try every component anyway.
//! Loading must return `Ok` or a `ConfigError`, never panic; an `Ok`
//! config must also `show()` without panicking.
//!
//! One temp dir serves every run: the files are rewritten each time.
//! `HOME` is that dir, so `~/…` includes stay inside it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pitcher::config::{load_with, Component, Environment};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The config dir shared by all runs, kept alive for the whole process.
struct Site {
    _dir: tempfile::TempDir,
    root: PathBuf,
    env: Environment,
}

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        std::fs::write(root.join("main.conf"), "").expect("write main.conf");
        for component in Component::ALL {
            let sub = root.join(component.name());
            std::fs::create_dir_all(&sub).expect("mkdir component");
            std::os::unix::fs::symlink(root.join("main.conf"), sub.join("f.conf"))
                .expect("symlink");
        }
        let credentials = root.join("credentials.conf");
        std::fs::write(&credentials, "").expect("write credentials.conf");
        std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600))
            .expect("chmod credentials.conf");
        let home = root.to_string_lossy().into_owned();
        let env = Environment::new(
            [("HOME", home.as_str()), ("USER", "bob"), ("PBD", "pbd")],
            "loli",
        );
        Site {
            _dir: dir,
            root,
            env,
        }
    })
}

/// Whether the input might name a file outside the temp dir that can
/// block or is huge to read (`include /proc/kmsg`, `/dev/…`): such inputs
/// test the machine, not the parser.
fn touches_system_files(data: &[u8]) -> bool {
    [&b"/proc"[..], b"/sys", b"/dev", b"/run"]
        .iter()
        .any(|needle| data.windows(needle.len()).any(|w| w == *needle))
}

fuzz_target!(|data: &[u8]| {
    if touches_system_files(data) {
        return;
    }
    let site = site();
    let mut parts = data.splitn(3, |&b| b == 0);
    let main = parts.next().unwrap_or_default();
    let include = parts.next().unwrap_or_default();
    let credentials = parts.next().unwrap_or_default();
    std::fs::write(site.root.join("main.conf"), main).expect("write main.conf");
    std::fs::write(site.root.join("inc.conf"), include).expect("write inc.conf");
    std::fs::write(site.root.join("credentials.conf"), credentials)
        .expect("write credentials.conf");

    let sum = data.iter().map(|&b| usize::from(b)).sum::<usize>();
    let component = Component::ALL[sum % Component::ALL.len()];
    match load_with(&site.root, component, "f", &site.env) {
        Ok(cfg) => {
            let _ = cfg.show();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
