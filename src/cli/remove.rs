//! `pitcher remove <configs>`: clean up a stopped config (its queue and
//! state, `disabled` marker included) and delete its `.conf`, as sr3 does.
//! Refused while any of its instances runs.

use super::select;
use crate::state::Paths;
use crate::supervisor;
use std::process::ExitCode;

/// `pitcher remove configs…`.
pub fn run(paths: &Paths, specs: &[String]) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !specs.is_empty(),
        "name the configs to remove (e.g. sender/to_hpfx)"
    );
    let mut code = ExitCode::SUCCESS;
    for (component, name) in select(paths, specs)? {
        if !supervisor::live_instances(paths, component, &name).is_empty() {
            eprintln!("{component}/{name} is running: stop it first");
            code = ExitCode::FAILURE;
            continue;
        }
        let spec = format!("{component}/{name}");
        if super::cleanup::run(paths, std::slice::from_ref(&spec))? != ExitCode::SUCCESS {
            code = ExitCode::FAILURE;
            continue;
        }
        let dir = paths.config_state(component, &name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let file = paths.config_file(component, &name);
        std::fs::remove_file(&file)?;
        println!("{component}/{name}: removed {}", file.display());
    }
    Ok(code)
}
