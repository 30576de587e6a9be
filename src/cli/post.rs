//! `pitcher post -c <config> -p <paths…>`: announce files once, as
//! sr3's `sr3_post` does.

use crate::config::{self, Component};
use crate::state::Paths;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `pitcher post`.
#[derive(clap::Args, Debug)]
pub struct PostArgs {
    /// The config: a name in the post/ directory (`queue_for_hpfx`), a
    /// `component/name`, or a path to a .conf file.
    #[arg(short = 'c', long = "config")]
    config: String,
    /// The files or directories to announce.
    #[arg(short = 'p', long = "path", num_args = 1.., required = true)]
    paths: Vec<PathBuf>,
}

fn load(paths: &Paths, spec: &str) -> anyhow::Result<config::Config> {
    let as_file = Path::new(spec);
    let cfg = if spec.ends_with(".conf") && as_file.exists() {
        config::load_path(&paths.config_dir, Component::Post, as_file)?
    } else {
        let spec = spec.trim_end_matches(".conf");
        let (component, name) = match spec.split_once('/') {
            Some((c, n)) => (
                Component::parse(c).ok_or_else(|| anyhow::anyhow!("unknown component '{c}'"))?,
                n,
            ),
            None => (Component::Post, spec),
        };
        config::load(&paths.config_dir, component, name)?
    };
    for w in &cfg.warnings {
        eprintln!("warning: {w}");
    }
    Ok(cfg)
}

/// `pitcher post`.
pub fn run(paths: &Paths, args: PostArgs) -> anyhow::Result<ExitCode> {
    let cfg = load(paths, &args.config)?;
    super::init_logging(&cfg.log_level);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bar = super::progress::files_bar(count_files(&args.paths));
    let mut tick = || {
        if let Some(b) = &bar {
            b.inc(1)
        }
    };
    let posted = rt.block_on(crate::flow::post::post_once_with(
        paths,
        &cfg,
        &args.paths,
        &mut tick,
    ));
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let (n, skipped) = posted?;
    for s in &skipped {
        eprintln!("{s}");
    }
    println!(
        "posted {n} announcements to {}",
        cfg.post_exchange.as_deref().unwrap_or("?")
    );
    Ok(if skipped.iter().any(|s| s.starts_with("skipped")) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// How many files `post` will look at (walked twice only on a terminal,
/// for the bar's length; the walk is cheap beside the checksums).
fn count_files(paths: &[PathBuf]) -> u64 {
    if !super::terminal::stdout_is_terminal() {
        return 0;
    }
    paths
        .iter()
        .map(|p| {
            walkdir::WalkDir::new(p)
                .into_iter()
                .flatten()
                .filter(|e| !e.file_type().is_dir())
                .count() as u64
        })
        .sum()
}
