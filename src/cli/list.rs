//! `pitcher list`: the configs, one per line, and where they live.

use crate::config;
use crate::state::Paths;
use std::process::ExitCode;

/// `pitcher list`.
pub fn run(paths: &Paths) -> anyhow::Result<ExitCode> {
    println!("configs in {}:", paths.config_dir.display());
    for (component, name) in config::list(&paths.config_dir) {
        println!("  {component}/{name}");
    }
    Ok(ExitCode::SUCCESS)
}
