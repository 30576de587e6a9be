//! `pitcher enable` / `pitcher disable`: the `disabled` marker in a
//! config's state directory, which keeps `start` (and the supervisor's
//! `start` of everything) from running it. Neither changes a running
//! config: stop it first, as sr3 asks.

use crate::state::Paths;
use crate::supervisor::{self, disabled_marker};
use std::process::ExitCode;

/// `pitcher disable configs…` (`disable = true`) or `pitcher enable`.
pub fn run(paths: &Paths, specs: &[String], disable: bool) -> anyhow::Result<ExitCode> {
    let what = if disable { "disable" } else { "enable" };
    let (configs, code) = super::select_stopped(paths, specs, what)?;
    for (component, name) in configs {
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
