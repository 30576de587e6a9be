//! `pitcher edit <config>`: open a config in `$EDITOR` (default `vi`),
//! then check it and say where it is wrong (`file:line: …`).

use crate::config::{self, Component};
use crate::state::Paths;
use std::process::ExitCode;

/// `pitcher edit component/name` (a new name creates the file).
pub fn run(paths: &Paths, spec: &str) -> anyhow::Result<ExitCode> {
    let spec = spec.trim_end_matches(".conf");
    let (component, name) = match spec.split_once('/') {
        Some((c, n)) if !n.is_empty() && !n.contains('/') => (
            Component::parse(c).ok_or_else(|| anyhow::anyhow!("unknown component '{c}'"))?,
            n,
        ),
        _ => anyhow::bail!("name the config as component/name (e.g. sender/to_hpfx)"),
    };
    let file = paths.config_file(component, name);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let editor = std::env::var("EDITOR")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".into());
    // $EDITOR may carry arguments ("code --wait"): let the shell split it.
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("pitcher-edit")
        .arg(&file)
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run {editor}: {e}"))?;
    if !status.success() {
        anyhow::bail!(
            "{editor} exited with {status}; {} not checked",
            file.display()
        );
    }
    if !file.exists() {
        println!("{component}/{name}: not created");
        return Ok(ExitCode::SUCCESS);
    }
    match config::load(&paths.config_dir, component, name) {
        Ok(cfg) => {
            for w in &cfg.warnings {
                eprintln!("warning: {w}");
            }
            let running = !crate::supervisor::live_instances(paths, component, name).is_empty();
            println!(
                "{component}/{name}: ok{}",
                if running {
                    " (running: `pitcher restart` applies it)"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
