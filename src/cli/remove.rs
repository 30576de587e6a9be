//! `pitcher remove <configs>`: clean up a stopped config (its queue and
//! state, `disabled` marker included) and delete its `.conf`, as sr3 does.
//! Refused while any of its instances runs.

use crate::state::Paths;
use std::process::ExitCode;

/// `pitcher remove configs…`.
pub fn run(paths: &Paths, specs: &[String]) -> anyhow::Result<ExitCode> {
    let (configs, mut code) = super::select_stopped(paths, specs, "remove")?;
    for (component, name) in configs {
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
