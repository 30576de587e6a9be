//! `pitcher foreground`, and the hidden verbs the supervisor and systemd
//! run: `instance` (one instance of a config) and `supervise`.

use super::{load, select};
use crate::flow::{self, Instance};
use crate::state::pidfile::PidLock;
use crate::state::{InstanceFiles, Paths};
use anyhow::Context;
use std::process::ExitCode;

/// A stop signal that turns true on SIGTERM or SIGINT.
fn stop_on_signals(rt: &tokio::runtime::Runtime) -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("asked to stop");
        let _ = tx.send(true);
    });
    rx
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Runs instance `no` of one config until SIGTERM: what the supervisor
/// starts (no = 1..N) and what `foreground` runs (no = 0).
pub fn instance(paths: &Paths, spec: &str, no: u32) -> anyhow::Result<ExitCode> {
    let targets = select(paths, std::slice::from_ref(&spec.to_string()))?;
    let [(component, name)] = targets.as_slice() else {
        anyhow::bail!("'{spec}' names {} configs; name exactly one", targets.len());
    };
    let cfg = load(paths, *component, name)?;
    if no == 0 {
        super::init_logging(&cfg.log_level);
    } else {
        super::logging::init_rotating(
            &cfg.log_level,
            &paths.log_file(*component, name, no),
            cfg.log_rotate_interval,
            cfg.log_rotate_count,
        );
    }
    let files = InstanceFiles::new(paths, *component, name, no);
    let Some(_lock) = PidLock::acquire(&files.pid_file())? else {
        anyhow::bail!("{component}/{name} instance {no} is already running");
    };
    for (k, v) in &cfg.env {
        std::env::set_var(k, v);
    }
    let rt = runtime()?;
    let stop = stop_on_signals(&rt);
    let _progress = (no == 0).then(|| super::progress::Foreground::start(&files));
    let inst = Instance::new(paths.clone(), cfg, no, stop);
    let r = rt.block_on(flow::run(inst));
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match r {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!("{component}/{name} instance {no} failed: {e:#}");
            Err(e)
        }
    }
}

/// `pitcher foreground component/config`.
pub fn foreground(paths: &Paths, spec: &str) -> anyhow::Result<ExitCode> {
    instance(paths, spec, 0)
}

/// `pitcher supervise`: the supervisor in the foreground, holding the
/// user's supervisor lock (what the systemd unit runs); with `metrics` (else `PITCHER_METRICS_ADDR`),
/// it serves Prometheus metrics there.
pub fn supervise(paths: &Paths, metrics: Option<String>) -> anyhow::Result<ExitCode> {
    let day = std::time::Duration::from_secs(86_400);
    super::logging::init_rotating("info", &paths.supervisor_log(), day, 5);
    let Some(_lock) =
        crate::supervisor::lock::supervisor_lock(paths).context("taking the supervisor lock")?
    else {
        anyhow::bail!(
            "a supervisor is already running for {}",
            paths.state_dir.display()
        );
    };
    let rt = runtime()?;
    let stop = stop_on_signals(&rt);
    let metrics = metrics.or_else(|| {
        std::env::var(crate::supervisor::metrics_http::ADDR_VAR)
            .ok()
            .filter(|a| !a.is_empty())
    });
    if let Some(addr) = metrics {
        match rt.block_on(tokio::net::TcpListener::bind(&addr)) {
            Ok(l) => {
                let serve = crate::supervisor::metrics_http::serve(l, paths.clone(), stop.clone());
                rt.spawn(serve);
            }
            Err(e) => tracing::error!("cannot serve metrics on {addr}: {e}; running without"),
        }
    }
    rt.block_on(crate::supervisor::supervise(paths.clone(), stop));
    Ok(ExitCode::SUCCESS)
}
