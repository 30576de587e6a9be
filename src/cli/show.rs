//! `pitcher show`: the effective options of configs, after defaults,
//! includes and variables, with passwords hidden.

use super::{load, select};
use crate::state::Paths;
use std::process::ExitCode;

/// `pitcher show [configs]`.
pub fn run(paths: &Paths, specs: &[String]) -> anyhow::Result<ExitCode> {
    let mut code = ExitCode::SUCCESS;
    for (component, name) in select(paths, specs)? {
        match load(paths, component, &name) {
            Ok(cfg) => {
                println!("# {component}/{name} ({})", cfg.file.display());
                print!("{}", cfg.show());
                println!();
            }
            Err(e) => {
                eprintln!("{e:#}");
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}
