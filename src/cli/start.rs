//! `pitcher start`: mark configs started, declare what they use, and make
//! sure the supervisor runs them. Returns once their instances are up.

use super::{declare, load, select};
use crate::state::Paths;
use crate::supervisor::{self, disabled_marker, started_marker};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// `pitcher start [configs]`.
pub fn run(paths: &Paths, specs: &[String]) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut code = ExitCode::SUCCESS;
    let mut waiting = Vec::new();
    let _managing = supervisor::lock::managing(paths, Duration::from_secs(60))?;
    for (component, name) in select(paths, specs)? {
        if disabled_marker(paths, component, &name).exists() {
            println!("{component}/{name} is disabled; not started");
            continue;
        }
        let cfg = match load(paths, component, &name) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e:#}");
                code = ExitCode::FAILURE;
                continue;
            }
        };
        if component.name() == "post" && cfg.sleep.is_none() {
            // A one-shot post has nothing to run in the background (as sr3).
            continue;
        }
        if let Err(e) = rt.block_on(declare::declare_config(paths, &cfg)) {
            eprintln!("{component}/{name}: declare: {e:#} (it will be retried by the instances)");
        }
        let marker = started_marker(paths, component, &name);
        crate::state::write_atomic(&marker, crate::flow::now_epoch().to_string().as_bytes())?;
        waiting.push((component, name, cfg.instances));
    }
    if waiting.is_empty() {
        return Ok(code);
    }
    let pid = supervisor::ensure_supervisor(paths)?;
    let deadline = Instant::now() + Duration::from_secs(15);
    for (component, name, n) in waiting {
        let mut live = 0;
        while Instant::now() < deadline {
            live = supervisor::live_instances(paths, component, &name).len() as u32;
            if live >= n {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if live >= n {
            println!("started {component}/{name} ({live}/{n} instances, supervisor pid {pid})");
        } else {
            println!(
                "starting {component}/{name}: {live}/{n} instances so far; see {}",
                paths.log_file(component, &name, 1).display()
            );
        }
    }
    Ok(code)
}
