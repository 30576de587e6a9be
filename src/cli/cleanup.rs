//! `pitcher cleanup`: remove a stopped config's queue and state (its
//! `disabled` marker is kept, as sr3 does).

use super::{load, select};
use crate::state::Paths;
use crate::supervisor;
use std::process::ExitCode;

/// `pitcher cleanup configs…`.
pub fn run(paths: &Paths, specs: &[String]) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !specs.is_empty(),
        "name the configs to clean up (e.g. sender/to_hpfx)"
    );
    let mut code = ExitCode::SUCCESS;
    for (component, name) in select(paths, specs)? {
        if !supervisor::live_instances(paths, component, &name).is_empty() {
            eprintln!("{component}/{name} is running: stop it first");
            code = ExitCode::FAILURE;
            continue;
        }
        if let Ok(cfg) = load(paths, component, &name) {
            if cfg.broker.as_ref().is_some_and(|u| u.scheme() == "local")
                && super::declare::consumes(&cfg)
            {
                let q = crate::state::queue_name(paths, &cfg)?;
                crate::broker::local::delete_queue(&paths.local_broker_db(), &q)?;
                println!("{component}/{name}: deleted queue {q}");
            }
        }
        let dir = paths.config_state(component, &name);
        let disabled = supervisor::disabled_marker(paths, component, &name).exists();
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
            if disabled {
                crate::state::write_atomic(
                    &supervisor::disabled_marker(paths, component, &name),
                    b"",
                )?;
            }
            println!("{component}/{name}: removed state {}", dir.display());
        }
    }
    Ok(code)
}
