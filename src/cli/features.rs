//! `pitcher features`: what this build can do, as `sr3 features` tells.
//!
//! Brokers and transports are not listed from memory: each is asked of the
//! very factories the flows use (`broker::publisher`, `transfer::source_for_url`),
//! and one that answers "not supported" is reported missing. So the list
//! stays true as schemes are added. A probe that is supported may try to
//! connect to a closed local port (127.0.0.1:1) and fail at once; that
//! failure is expected and means "present".

use crate::state::Paths;
use std::process::ExitCode;
use std::time::Duration;

/// One line of the report.
struct Feature {
    area: &'static str,
    name: &'static str,
    present: bool,
    note: String,
}

async fn broker_present(paths: &Paths, url: &str) -> bool {
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    let probe = crate::broker::publisher(&url, paths);
    match tokio::time::timeout(Duration::from_secs(3), probe).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => !e.to_string().contains("not supported"),
        // Still trying to connect: the scheme is known.
        Err(_) => true,
    }
}

fn transport_present(url: &str) -> bool {
    let opts = crate::transfer::TransportOptions::default();
    match crate::transfer::source_for_url(url, &opts) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::Unsupported,
    }
}

fn on_path(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(program))
            .find(|f| f.is_file())
    })
}

/// `pitcher features`.
pub fn run(_paths: &Paths) -> anyhow::Result<ExitCode> {
    // Probe against a throwaway state directory: the embedded broker's
    // probe must not create a database in the user's.
    let scratch = tempfile_dir()?;
    let probe_paths = Paths::resolve(Some(scratch.clone()), Some(scratch.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut list = Vec::new();
    for (name, url, note) in [
        ("local", "local:", "the embedded SQLite queue, one machine"),
        ("amqp", "amqp://probe@127.0.0.1:1/", "RabbitMQ (AMQP 0-9-1)"),
        ("amqps", "amqps://probe@127.0.0.1:1/", "AMQP over TLS"),
        ("mqtt", "mqtt://probe@127.0.0.1:1/", "MQTT brokers"),
        ("mqtts", "mqtts://probe@127.0.0.1:1/", "MQTT over TLS"),
    ] {
        let present = rt.block_on(broker_present(&probe_paths, url));
        list.push(Feature {
            area: "broker",
            name,
            present,
            note: note.into(),
        });
    }
    for (name, url, note) in [
        ("file", "file:/", "local or NFS-mounted directories"),
        (
            "sftp",
            "sftp://probe@127.0.0.1:1/",
            "OpenSSH, ~/.ssh/config honoured",
        ),
        ("http", "http://127.0.0.1:1/", "downloads"),
        ("https", "https://127.0.0.1:1/", "downloads over TLS"),
    ] {
        list.push(Feature {
            area: "transport",
            name,
            present: transport_present(url),
            note: note.into(),
        });
    }
    for (name, program) in [("scp", "scp"), ("cp", "cp")] {
        let found = on_path(program);
        list.push(Feature {
            area: "accel",
            name,
            present: found.is_some(),
            note: match found {
                Some(p) => format!("external {} (accelThreshold)", p.display()),
                None => format!("{program} not found in PATH"),
            },
        });
    }
    for (area, name, note) in [
        ("watch", "inotify", "file events on local file systems"),
        ("state", "retry", "on-disk retry queue (SQLite)"),
        ("state", "nodupe", "duplicate suppression cache (SQLite)"),
        (
            "ops",
            "metrics",
            "Prometheus /metrics (supervise --metrics, PITCHER_METRICS_ADDR)",
        ),
        (
            "ops",
            "logRotate",
            "instance log rotation (logRotateInterval, logRotateCount)",
        ),
        (
            "ops",
            "byteRateMax",
            "per-instance data rate limit, paced between files",
        ),
        ("ops", "completions", "pitcher completions bash|zsh|fish"),
    ] {
        list.push(Feature {
            area,
            name,
            present: true,
            note: note.into(),
        });
    }
    let _ = std::fs::remove_dir_all(&scratch);
    println!("pitcher {} features:", env!("CARGO_PKG_VERSION"));
    for f in &list {
        println!(
            "  {:9} {:11} {:7} {}",
            f.area,
            f.name,
            if f.present { "yes" } else { "MISSING" },
            f.note
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A fresh private directory under the system temp dir.
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "pitcher-features-{}-{}",
        std::process::id(),
        crate::flow::now_epoch() as u64
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
