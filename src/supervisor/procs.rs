//! Finding this user's pitcher processes in /proc, to tell strays.
//!
//! A pitcher process is recognised by its command line (`… instance --no N
//! component/config` or `… supervise`, from a binary named `pitcher*`), and
//! tied to a state directory by its `--state-dir` argument, else its
//! `PITCHER_STATE_DIR`, `XDG_CACHE_HOME` or `HOME` (read from
//! /proc/PID/environ, which only the same user can read), as
//! [`Paths::resolve`] would have chosen it.

use crate::config::Component;
use crate::state::Paths;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a pitcher process is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// `pitcher instance --no N component/config`.
    Instance {
        component: Component,
        name: String,
        no: u32,
    },
    /// `pitcher supervise`.
    Supervisor,
}

/// One pitcher process of this user and state directory.
#[derive(Debug, Clone)]
pub struct PitcherProcess {
    pub pid: i32,
    pub role: Role,
    /// Its command line, spaces between arguments, for reports.
    pub cmdline: String,
}

/// The pitcher processes of this user whose state directory is
/// `paths.state_dir`.
pub fn pitcher_processes(paths: &Paths) -> Vec<PitcherProcess> {
    let me = nix::unistd::getuid().as_raw();
    let want = canonical(&paths.state_dir);
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        if e.metadata().map(|m| m.uid()).ok() != Some(me) {
            continue;
        }
        let Some(args) = read_nul_list(&e.path().join("cmdline")) else {
            continue;
        };
        let Some((role, state_arg)) = parse_args(&args) else {
            continue;
        };
        let state = state_arg.or_else(|| {
            let env = read_nul_list(&e.path().join("environ"))?;
            Some(state_dir_from_env(&env))
        });
        if state.map(|s| canonical(&s)) != Some(want.clone()) {
            continue;
        }
        let cmdline = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        out.push(PitcherProcess { pid, role, cmdline });
    }
    out.sort_by_key(|p| p.pid);
    out
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn read_nul_list(p: &Path) -> Option<Vec<OsString>> {
    let raw = std::fs::read(p).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| OsString::from_vec(s.to_vec()))
            .collect(),
    )
}

/// The role and `--state-dir` of a pitcher command line, `None` when it is
/// not one of pitcher's daemons.
pub fn parse_args(args: &[OsString]) -> Option<(Role, Option<PathBuf>)> {
    let exe = Path::new(args.first()?).file_name()?.to_str()?;
    if !exe.starts_with("pitcher") {
        return None;
    }
    let mut state = None;
    let mut words = Vec::new();
    let mut it = args[1..].iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix("--state-dir=") {
            state = Some(PathBuf::from(v));
        } else if a == "--state-dir" {
            state = it.next().map(PathBuf::from);
        } else if a == "--config-dir" {
            it.next();
        } else if !a.starts_with("--config-dir=") {
            words.push(a);
        }
    }
    let role = match words.first().map(String::as_str) {
        Some("supervise") => Role::Supervisor,
        Some("instance") => {
            let mut no = None;
            let mut spec = None;
            let mut w = words[1..].iter();
            while let Some(a) = w.next() {
                if a == "--no" {
                    no = w.next().and_then(|n| n.parse().ok());
                } else if let Some(n) = a.strip_prefix("--no=") {
                    no = n.parse().ok();
                } else {
                    spec = Some(a.clone());
                }
            }
            let spec = spec?;
            let (c, name) = spec.trim_end_matches(".conf").split_once('/')?;
            Role::Instance {
                component: Component::parse(c)?,
                name: name.to_string(),
                no: no?,
            }
        }
        _ => return None,
    };
    Some((role, state))
}

/// The state directory an environment makes pitcher use.
pub fn state_dir_from_env(env: &[OsString]) -> PathBuf {
    let get = |k: &str| {
        env.iter().find_map(|kv| {
            let kv = kv.to_str()?;
            kv.strip_prefix(k)?
                .strip_prefix('=')
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    };
    get("PITCHER_STATE_DIR")
        .or_else(|| get("XDG_CACHE_HOME").map(|x| x.join("pitcher")))
        .unwrap_or_else(|| {
            get("HOME")
                .unwrap_or_else(|| PathBuf::from("/"))
                .join(".cache/pitcher")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    #[test]
    fn instance_command_lines_are_recognised_with_their_state_dir() {
        let (role, state) = parse_args(&args(&[
            "/usr/bin/pitcher",
            "--state-dir",
            "/s",
            "instance",
            "--no",
            "3",
            "sender/to_hpfx",
        ]))
        .unwrap();
        assert_eq!(
            role,
            Role::Instance {
                component: Component::Sender,
                name: "to_hpfx".into(),
                no: 3
            }
        );
        assert_eq!(state, Some(PathBuf::from("/s")));
        let (role, state) = parse_args(&args(&["pitcher", "supervise"])).unwrap();
        assert_eq!((role, state), (Role::Supervisor, None));
    }

    #[test]
    fn other_programs_and_verbs_are_not_daemons() {
        assert!(parse_args(&args(&["/bin/bash", "instance", "--no", "1", "sender/x"])).is_none());
        assert!(parse_args(&args(&["pitcher", "status"])).is_none());
        assert!(parse_args(&args(&["pitcher", "instance", "sender/x"])).is_none());
    }

    #[test]
    fn the_state_dir_follows_the_environment_as_pitcher_resolves_it() {
        assert_eq!(
            state_dir_from_env(&args(&["HOME=/h", "PITCHER_STATE_DIR=/s"])),
            PathBuf::from("/s")
        );
        assert_eq!(
            state_dir_from_env(&args(&["HOME=/h", "XDG_CACHE_HOME=/x"])),
            PathBuf::from("/x/pitcher")
        );
        assert_eq!(
            state_dir_from_env(&args(&["HOME=/h"])),
            PathBuf::from("/h/.cache/pitcher")
        );
    }
}
