//! `pitcher cleanup`: remove a stopped config's queue and state (its
//! `disabled` marker is kept, as sr3 does).

use super::load;
use crate::state::Paths;
use crate::supervisor;
use std::process::ExitCode;

/// `pitcher cleanup configs…`.
pub fn run(paths: &Paths, specs: &[String]) -> anyhow::Result<ExitCode> {
    let (configs, mut code) = super::select_stopped(paths, specs, "clean up")?;
    for (component, name) in configs {
        if let Ok(cfg) = load(paths, component, &name) {
            if let (Some(url), true) = (&cfg.broker, cfg.component.consumes()) {
                let q = crate::state::queue_name(paths, &cfg)?;
                let deleted = match url.scheme() {
                    "local" => crate::broker::local::delete_queue(&paths.local_broker_db(), &q)
                        .map(|_| true)
                        .map_err(anyhow::Error::from),
                    "amqp" | "amqps" => tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?
                        .block_on(crate::broker::amqp::delete_queue(url, &q))
                        .map(|_| true)
                        .map_err(anyhow::Error::from),
                    // MQTT keeps sessions, not queues: they expire by themselves.
                    _ => Ok(false),
                };
                match deleted {
                    Ok(true) => println!("{component}/{name}: deleted queue {q}"),
                    Ok(false) => {}
                    Err(e) => {
                        eprintln!("{component}/{name}: cannot delete queue {q}: {e:#}");
                        code = ExitCode::FAILURE;
                        continue;
                    }
                }
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
