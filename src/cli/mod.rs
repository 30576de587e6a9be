//! The command line, with sr3's shapes: `pitcher start`, `pitcher stop
//! sender/to_hpfx`, `pitcher status`. One module per verb; this is the only
//! part of pitcher that prints.

mod cleanup;
mod completions;
mod declare;
mod demo;
mod edit;
mod enable;
mod features;
mod foreground;
mod generate;
mod list;
mod log;
mod logging;
mod post;
mod progress;
mod remove;
mod sanity;
mod show;
mod start;
mod status;
mod stop;
mod systemd;
mod terminal;

use crate::config::{self, Component};
use crate::state::Paths;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

pub use logging::init as init_logging;

/// pitcher: sr3's file-delivery daemons (watch, sender, …), in Rust.
#[derive(Parser, Debug)]
#[command(name = "pitcher", version, about, propagate_version = true)]
struct Cli {
    /// Config directory (default ~/.config/pitcher, or $PITCHER_CONFIG_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    config_dir: Option<PathBuf>,
    /// State and log directory (default ~/.cache/pitcher, or $PITCHER_STATE_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Start configs (all when none is named) under the supervisor.
    Start {
        configs: Vec<String>,
        /// Serve Prometheus metrics at this address when starting the
        /// supervisor (e.g. 127.0.0.1:9108; or $PITCHER_METRICS_ADDR).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<String>,
    },
    /// Stop configs gracefully (all, and the supervisor unless systemd runs it, when none is named).
    Stop { configs: Vec<String> },
    /// Stop, then start again (applies changed configs).
    Restart { configs: Vec<String> },
    /// One row per config: state, instances, queued, retry, last activity.
    Status {
        configs: Vec<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Redraw every --interval seconds until q or Ctrl-C (as `top`).
        #[arg(long, conflicts_with = "json")]
        watch: bool,
        /// Seconds between redraws with --watch.
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
    },
    /// `status`, redrawn every --interval seconds until q or Ctrl-C.
    Top {
        configs: Vec<String>,
        /// Seconds between redraws.
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
    },
    /// Show the last lines of an instance's log and follow it (tail -F).
    Log(log::LogArgs),
    /// Open a config in $EDITOR (default vi), then check it.
    Edit { config: String },
    /// Clean up stopped configs and delete their .conf files.
    Remove { configs: Vec<String> },
    /// Allow stopped configs to start again.
    Enable { configs: Vec<String> },
    /// Keep stopped configs from starting.
    Disable { configs: Vec<String> },
    /// What this build supports: brokers, transports, and more.
    Features,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Run one config in this terminal (instance 0), logging to stderr.
    Foreground { config: String },
    /// List the configs.
    List,
    /// Print a config's effective options (passwords hidden).
    Show { configs: Vec<String> },
    /// Create the exchanges, queues and bindings the configs use.
    Declare { configs: Vec<String> },
    /// Remove a stopped config's queue and state.
    Cleanup { configs: Vec<String> },
    /// Announce files once and exit (sr3_post): `pitcher post -c cfg -p files…`.
    Post(post::PostArgs),
    /// Set up a hot directory on the embedded broker and show files arriving.
    Demo(demo::DemoArgs),
    /// Put things right, for cron: bring the supervisor back, end hung and
    /// stray instances; one line per action.
    Sanity(sanity::SanityArgs),
    /// Run the supervisor under systemd: `install` or `uninstall` the user unit.
    Systemd {
        #[command(subcommand)]
        action: systemd::Action,
    },
    /// (internal) Write man pages or shell completions into a directory
    /// (for packaging: scripts/deb.sh).
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: generate::What,
    },
    /// (internal) Run one instance of a config.
    #[command(hide = true)]
    Instance {
        #[arg(long = "no")]
        no: u32,
        config: String,
    },
    /// (internal) Run the supervisor in the foreground (systemd uses this).
    Supervise {
        /// Serve Prometheus metrics at this address (e.g. 127.0.0.1:9108;
        /// or $PITCHER_METRICS_ADDR).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<String>,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let paths = Paths::resolve(cli.config_dir, cli.state_dir);
    let result = match cli.verb {
        Verb::Start { configs, metrics } => {
            metrics_for_new_supervisor(&paths, metrics);
            start::run(&paths, &configs)
        }
        Verb::Stop { configs } => stop::run(&paths, &configs),
        Verb::Restart { configs } => {
            stop::run(&paths, &configs).and_then(|_| start::run(&paths, &configs))
        }
        Verb::Status {
            configs,
            watch: true,
            interval,
            ..
        }
        | Verb::Top { configs, interval } => status::watch(&paths, &configs, seconds(interval)),
        Verb::Status { configs, json, .. } => status::run(&paths, &configs, json),
        Verb::Log(args) => log::run(&paths, args),
        Verb::Edit { config } => edit::run(&paths, &config),
        Verb::Remove { configs } => remove::run(&paths, &configs),
        Verb::Enable { configs } => enable::run(&paths, &configs, false),
        Verb::Disable { configs } => enable::run(&paths, &configs, true),
        Verb::Features => features::run(&paths),
        Verb::Completions { shell } => completions::run(shell),
        Verb::Foreground { config } => foreground::foreground(&paths, &config),
        Verb::List => list::run(&paths),
        Verb::Show { configs } => show::run(&paths, &configs),
        Verb::Declare { configs } => declare::run(&paths, &configs),
        Verb::Cleanup { configs } => cleanup::run(&paths, &configs),
        Verb::Post(args) => post::run(&paths, args),
        Verb::Demo(args) => demo::run(&paths, args),
        Verb::Sanity(args) => sanity::run(&paths, args),
        Verb::Systemd { action } => systemd::run(&paths, action),
        Verb::Generate { what } => generate::run(what),
        Verb::Instance { no, config } => foreground::instance(&paths, &config, no),
        Verb::Supervise { metrics } => foreground::supervise(&paths, metrics),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pitcher: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Seconds from the command line, kept sane (at least 0.1 s).
fn seconds(s: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(if s.is_finite() { s.max(0.1) } else { 2.0 })
}

/// `start --metrics ADDR`: the supervisor that `start` launches inherits
/// the address through the environment; one already running keeps its own.
fn metrics_for_new_supervisor(paths: &Paths, addr: Option<String>) {
    let Some(addr) = addr else { return };
    if let Some(pid) = crate::state::pidfile::read_live(&paths.supervisor_pid()) {
        eprintln!("note: the supervisor (pid {pid}) is already running; --metrics applies to the next one (`pitcher stop`, then start)");
    }
    std::env::set_var(crate::supervisor::metrics_http::ADDR_VAR, addr);
}

/// The configs a command names: `component/name` (`.conf` optional, shell
/// wildcards allowed), a bare component (all of its configs), or none (all).
fn select(paths: &Paths, specs: &[String]) -> anyhow::Result<Vec<(Component, String)>> {
    let all = config::list(&paths.config_dir);
    if specs.is_empty() {
        return Ok(all);
    }
    let mut out = Vec::new();
    for spec in specs {
        let spec = spec.trim_end_matches(".conf");
        let (comp, pat) = spec.split_once('/').unwrap_or((spec, "*"));
        let comp_ok = |c: Component| wildcard(comp, c.name());
        let found: Vec<_> = all
            .iter()
            .filter(|(c, n)| comp_ok(*c) && wildcard(pat, n))
            .cloned()
            .collect();
        if found.is_empty() {
            anyhow::bail!(
                "no config matches '{spec}' in {} (expected component/name, e.g. sender/to_hpfx)",
                paths.config_dir.display()
            );
        }
        for f in found {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

/// The configs `specs` names (at least one must be named) that are
/// stopped. A running one gets one line on stderr and turns the exit code
/// to failure: `what` (cleanup, remove, enable…) needs it stopped first.
fn select_stopped(
    paths: &Paths,
    specs: &[String],
    what: &str,
) -> anyhow::Result<(Vec<(Component, String)>, ExitCode)> {
    anyhow::ensure!(
        !specs.is_empty(),
        "name the configs to {what} (e.g. sender/to_hpfx)"
    );
    let mut code = ExitCode::SUCCESS;
    let mut stopped = Vec::new();
    for (component, name) in select(paths, specs)? {
        if crate::supervisor::live_instances(paths, component, &name).is_empty() {
            stopped.push((component, name));
        } else {
            eprintln!("{component}/{name} is running: stop it first");
            code = ExitCode::FAILURE;
        }
    }
    Ok((stopped, code))
}

/// Shell-style matching of `*` and `?`.
fn wildcard(pattern: &str, text: &str) -> bool {
    fn m(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => m(&p[1..], t) || (!t.is_empty() && m(p, &t[1..])),
            (Some('?'), Some(_)) => m(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &t[1..]),
            _ => false,
        }
    }
    m(
        &pattern.chars().collect::<Vec<_>>(),
        &text.chars().collect::<Vec<_>>(),
    )
}

/// Loads one config, printing its warnings to stderr.
fn load(paths: &Paths, component: Component, name: &str) -> anyhow::Result<config::Config> {
    let cfg = config::load(&paths.config_dir, component, name)?;
    for w in &cfg.warnings {
        eprintln!("warning: {w}");
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards_match_like_the_shell() {
        assert!(wildcard("to_*", "to_hpfx"));
        assert!(wildcard("*", "anything"));
        assert!(wildcard("t?_hpfx", "to_hpfx"));
        assert!(!wildcard("to_*", "from_hpfx"));
    }
}
