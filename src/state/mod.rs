//! Where things live on disk, and the small durable stores each instance
//! keeps.
//!
//! * configs: `~/.config/pitcher/<component>/<name>.conf` (moved by
//!   `PITCHER_CONFIG_DIR`), laid out as sr3's `~/.config/sr3`;
//! * state: `~/.cache/pitcher/<component>/<name>/` (moved by
//!   `PITCHER_STATE_DIR`): pid files, queue name, nodupe cache, retry
//!   queue, metrics; logs in `~/.cache/pitcher/log/`; the embedded broker in
//!   `~/.cache/pitcher/local/broker.db`.

pub mod metrics;
pub mod nodupe;
pub mod pidfile;
pub mod proc;
pub mod receipts;
pub mod retry;
pub mod sqlite;

use crate::config::Component;
use std::path::{Path, PathBuf};

/// The config and state roots of one user.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Holds `default.conf`, `credentials.conf` and `<component>/<name>.conf`.
    pub config_dir: PathBuf,
    /// Holds per-config state, logs and the embedded broker.
    pub state_dir: PathBuf,
}

impl Paths {
    /// The roots from explicit overrides, else `PITCHER_CONFIG_DIR` /
    /// `PITCHER_STATE_DIR`, else `~/.config/pitcher` and `~/.cache/pitcher`
    /// (honouring `XDG_CONFIG_HOME` / `XDG_CACHE_HOME`).
    pub fn resolve(config_dir: Option<PathBuf>, state_dir: Option<PathBuf>) -> Paths {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        let pick = |explicit: Option<PathBuf>, var: &str, xdg: &str, fallback: &str| {
            explicit
                .or_else(|| {
                    std::env::var_os(var)
                        .filter(|v| !v.is_empty())
                        .map(PathBuf::from)
                })
                .unwrap_or_else(|| {
                    std::env::var_os(xdg)
                        .filter(|v| !v.is_empty())
                        .map(PathBuf::from)
                        .unwrap_or_else(|| home.join(fallback))
                        .join("pitcher")
                })
        };
        Paths {
            config_dir: pick(
                config_dir,
                "PITCHER_CONFIG_DIR",
                "XDG_CONFIG_HOME",
                ".config",
            ),
            state_dir: pick(state_dir, "PITCHER_STATE_DIR", "XDG_CACHE_HOME", ".cache"),
        }
    }

    /// `<config_dir>/<component>/<name>.conf`.
    pub fn config_file(&self, component: Component, name: &str) -> PathBuf {
        self.config_dir
            .join(component.name())
            .join(format!("{name}.conf"))
    }

    /// `<state_dir>/<component>/<name>/`: everything one config keeps.
    pub fn config_state(&self, component: Component, name: &str) -> PathBuf {
        self.state_dir.join(component.name()).join(name)
    }

    /// `<state_dir>/log/`.
    pub fn log_dir(&self) -> PathBuf {
        self.state_dir.join("log")
    }

    /// The log of one instance: `<state_dir>/log/<component>_<name>_NN.log`.
    pub fn log_file(&self, component: Component, name: &str, instance: u32) -> PathBuf {
        self.log_dir()
            .join(format!("{}_{}_{:02}.log", component.name(), name, instance))
    }

    /// The embedded broker's database, shared by every config of the user.
    pub fn local_broker_db(&self) -> PathBuf {
        self.state_dir.join("local").join("broker.db")
    }

    /// The supervisor's lock and pid file.
    pub fn supervisor_pid(&self) -> PathBuf {
        self.state_dir.join("supervisor.pid")
    }

    /// The supervisor's log.
    pub fn supervisor_log(&self) -> PathBuf {
        self.log_dir().join("supervisor.log")
    }
}

/// The state files of one instance of one config.
#[derive(Debug, Clone)]
pub struct InstanceFiles {
    pub dir: PathBuf,
    pub component: Component,
    pub config: String,
    pub instance: u32,
}

impl InstanceFiles {
    /// The files of `instance` (0 = foreground) of `component/config`.
    pub fn new(paths: &Paths, component: Component, config: &str, instance: u32) -> InstanceFiles {
        InstanceFiles {
            dir: paths.config_state(component, config),
            component,
            config: config.to_string(),
            instance,
        }
    }

    fn named(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!(
            "{}_{}_{:02}.{suffix}",
            self.component.name(),
            self.config,
            self.instance
        ))
    }

    /// `<component>_<config>_NN.pid`, as sr3 names it.
    pub fn pid_file(&self) -> PathBuf {
        self.named("pid")
    }

    /// `<component>_<config>_NN.metrics.json`: counters for `status`.
    pub fn metrics_file(&self) -> PathBuf {
        self.named("metrics.json")
    }

    /// `<component>_<config>_NN.retry.db`: this instance's retry queue.
    pub fn retry_db(&self) -> PathBuf {
        self.named("retry.db")
    }
}

/// The nodupe cache of a config, shared by its instances (they share one
/// queue, so a duplicate may reach any of them).
pub fn nodupe_db(config_state: &Path) -> PathBuf {
    config_state.join("nodupe.db")
}

/// Where malformed messages are set aside, one file per message.
pub fn malformed_dir(config_state: &Path) -> PathBuf {
    config_state.join("malformed")
}

/// Writes `data` to `path` atomically: a temporary file beside it, fsync,
/// then rename, so a reader never sees half a file.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The queue a consuming config reads, named as sr3 names it
/// (`q_<brokerUser>.<component>.<config>.<queueShare>`), chosen once and
/// kept in `<config state>/<component>.<config>.<user>.qname` so that every
/// instance and every restart uses the same queue.
pub fn queue_name(paths: &Paths, cfg: &crate::config::Config) -> std::io::Result<String> {
    if let Some(q) = &cfg.queue_name {
        return Ok(q.clone());
    }
    let user = cfg
        .broker
        .as_ref()
        .map(|u| u.username())
        .filter(|u| !u.is_empty())
        .unwrap_or("anonymous");
    let dir = paths.config_state(cfg.component, &cfg.name);
    let file = dir.join(format!(
        "{}.{}.{}.qname",
        cfg.component.name(),
        cfg.name,
        user
    ));
    if let Ok(name) = std::fs::read_to_string(&file) {
        if !name.trim().is_empty() {
            return Ok(name.trim().to_string());
        }
    }
    let share = expand_share(&cfg.queue_share);
    let name = format!("q_{user}.{}.{}.{share}", cfg.component.name(), cfg.name);
    std::fs::create_dir_all(&dir)?;
    // Write beside, then hard-link into place: link() fails if another
    // instance got there first, and then its name is the one to use.
    let tmp = dir.join(format!(".qname.{}", std::process::id()));
    std::fs::write(&tmp, &name)?;
    let linked = std::fs::hard_link(&tmp, &file);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(name),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&file)?.trim().to_string())
        }
        Err(e) => Err(e),
    }
}

/// Expands `${USER}`, `${HOSTNAME}` and `${RAND8}` in a queueShare.
pub(crate) fn expand_share(share: &str) -> String {
    let user = std::env::var("USER")
        .ok()
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| "user".into());
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "host".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(0);
    let rand8 = format!(
        "{:08}",
        (nanos ^ ((std::process::id() as u64) << 20)) % 100_000_000
    );
    share
        .replace("${USER}", &user)
        .replace("${HOSTNAME}", &host)
        .replace("${RAND8}", &rand8)
}

/// Returns the heap's free pages to the system (glibc's `malloc_trim`);
/// nothing elsewhere.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Seconds since the epoch, as a float: the time unit of the stores,
/// metrics and reports.
pub fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
