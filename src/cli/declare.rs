//! `pitcher declare`: create the exchanges a config publishes to and the
//! queue (with its bindings) it consumes, as `sr3 declare` does.

use super::{load, select};
use crate::broker::{self, QueueSpec};
use crate::config::Config;
use crate::state::Paths;
use std::process::ExitCode;

/// Declares what `cfg` uses; returns one line per thing declared.
pub async fn declare_config(paths: &Paths, cfg: &Config) -> anyhow::Result<Vec<String>> {
    let mut done = Vec::new();
    if let (Some(url), Some(exchange)) = (&cfg.post_broker, &cfg.post_exchange) {
        let mut p = broker::publisher(url, paths).await?;
        p.declare_exchange(exchange).await?;
        done.push(format!(
            "exchange {exchange} on {}",
            crate::config::redact_url(url)
        ));
    }
    if let (Some(url), true) = (&cfg.broker, cfg.component.consumes()) {
        let spec = QueueSpec::of_config(cfg, crate::state::queue_name(paths, cfg)?);
        let mut c = broker::consumer(url, paths, &spec.name).await?;
        if let Err(e) = c.declare_queue(&spec).await {
            // The exchange may not exist yet: declare it, as a publisher would.
            let mut p = broker::publisher(url, paths).await?;
            for b in &spec.bindings {
                p.declare_exchange(&b.exchange).await?;
            }
            c.declare_queue(&spec)
                .await
                .map_err(|e2| anyhow::anyhow!("{e2} (first: {e})"))?;
        }
        let binds: Vec<String> = spec
            .bindings
            .iter()
            .map(|b| format!("{}:{}", b.exchange, b.topic))
            .collect();
        done.push(format!("queue {} bound to {}", spec.name, binds.join(", ")));
    }
    Ok(done)
}

/// `pitcher declare [configs]`.
pub fn run(paths: &Paths, specs: &[String]) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut code = ExitCode::SUCCESS;
    for (component, name) in select(paths, specs)? {
        let result =
            load(paths, component, &name).and_then(|cfg| rt.block_on(declare_config(paths, &cfg)));
        match result {
            Ok(lines) => {
                for l in lines {
                    println!("{component}/{name}: declared {l}");
                }
            }
            Err(e) => {
                eprintln!("{component}/{name}: {e:#}");
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}
