//! `pitcher enable` / `pitcher disable`: the `disabled` marker in a
//! config's state directory, which keeps `start` (and the supervisor's
//! `start` of everything) from running it. Neither changes a running
//! config: stop it first, as sr3 asks.

use super::select;
use crate::state::Paths;
use crate::supervisor::{self, disabled_marker};
use std::process::ExitCode;

/// `pitcher disable configs…` (`disable = true`) or `pitcher enable`.
pub fn run(paths: &Paths, specs: &[String], disable: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!specs.is_empty(), "name the configs (e.g. sender/to_hpfx)");
    let mut code = ExitCode::SUCCESS;
    for (component, name) in select(paths, specs)? {
        if !supervisor::live_instances(paths, component, &name).is_empty() {
            eprintln!("{component}/{name} is running: stop it first");
            code = ExitCode::FAILURE;
            continue;
        }
        let marker = disabled_marker(paths, component, &name);
        if disable {
            crate::state::write_atomic(&marker, crate::flow::now_epoch().to_string().as_bytes())?;
            // A disabled config is not started again by the supervisor.
            let _ = std::fs::remove_file(supervisor::started_marker(paths, component, &name));
            println!("{component}/{name}: disabled");
        } else {
            match std::fs::remove_file(&marker) {
                Ok(()) => println!("{component}/{name}: enabled"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    println!("{component}/{name}: already enabled")
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(code)
}
