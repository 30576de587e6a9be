//! The supervisor's optional Prometheus endpoint: `GET /metrics` answers
//! the [`report`](super::report) of every config in the text exposition
//! format (version 0.0.4).
//!
//! It is off unless an address is given (`pitcher supervise --metrics
//! 127.0.0.1:9108`, `pitcher start --metrics …`, or `PITCHER_METRICS_ADDR`).
//! A tiny HTTP/1.1 server on tokio's `TcpListener`: one request per
//! connection, answered then closed; anything but `GET /metrics` (and `/`)
//! is a 404. Each scrape reads the state directory afresh, as `status`
//! does, so there is nothing to keep in step.

use super::report::{self, Report};
use crate::config::Component;
use crate::state::metrics::LAG_BUCKETS;
use crate::state::Paths;
use std::fmt::Write as _;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The environment variable that turns the endpoint on.
pub const ADDR_VAR: &str = "PITCHER_METRICS_ADDR";

/// Serves `/metrics` on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    paths: Paths,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if let Ok(a) = listener.local_addr() {
        tracing::info!("serving Prometheus metrics on http://{a}/metrics");
    }
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((conn, _)) => {
                    let paths = paths.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(conn, paths).await {
                            tracing::debug!("metrics request: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("metrics endpoint: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stop.changed() => {
                if *stop.borrow() {
                    return;
                }
            }
        }
    }
}

/// Reads one request and answers it.
async fn answer(mut conn: TcpStream, paths: Paths) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| std::io::Error::other("request timed out"))??;
    let head = String::from_utf8_lossy(&buf);
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => {
            let report = tokio::task::spawn_blocking(move || {
                report::collect(&paths, &crate::config::list(&paths.config_dir))
            })
            .await
            .map_err(std::io::Error::other)?;
            (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                exposition(&report),
            )
        }
        ("GET", "/") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "pitcher supervisor: metrics at /metrics\n".to_string(),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        ),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(reply.as_bytes()).await?;
    conn.shutdown().await
}

/// A label value, escaped as the exposition format asks.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Which way a component's files go: out of this machine (sender) or in.
fn direction(c: Option<Component>) -> &'static str {
    match c {
        Some(Component::Sender) => "out",
        _ => "in",
    }
}

/// Writes one metric family: HELP, TYPE, then one sample per row.
fn family<F>(out: &mut String, report: &Report, name: &str, kind: &str, help: &str, value: F)
where
    F: Fn(&report::Row) -> Option<(String, f64)>,
{
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for r in &report.rows {
        if let Some((extra, v)) = value(r) {
            let _ = writeln!(
                out,
                "{name}{{config=\"{}\"{extra}}} {}",
                escape(&r.config),
                number(v)
            );
        }
    }
}

/// A number as Prometheus reads it (integers without a fraction).
fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The report in the text exposition format.
pub fn exposition(report: &Report) -> String {
    let mut o = String::new();
    let plain = |v: f64| Some((String::new(), v));
    family(
        &mut o,
        report,
        "pitcher_instances_up",
        "gauge",
        "Live instances of the config.",
        |r| plain(r.running as f64),
    );
    family(
        &mut o,
        report,
        "pitcher_instances_expected",
        "gauge",
        "Instances a started config should have (0 when stopped).",
        |r| plain(r.expected as f64),
    );
    family(
        &mut o,
        report,
        "pitcher_messages_received_total",
        "counter",
        "Messages received (or file events gathered) by the running instances.",
        |r| plain(r.received as f64),
    );
    family(
        &mut o,
        report,
        "pitcher_messages_rejected_total",
        "counter",
        "Messages rejected by masks, age or size.",
        |r| plain(r.rejected as f64),
    );
    family(
        &mut o,
        report,
        "pitcher_messages_malformed_total",
        "counter",
        "Malformed messages set aside.",
        |r| plain(r.malformed as f64),
    );
    family(
        &mut o,
        report,
        "pitcher_messages_duplicate_total",
        "counter",
        "Duplicates suppressed by nodupe.",
        |r| plain(r.duplicates as f64),
    );
    family(
        &mut o,
        report,
        "pitcher_messages_posted_total",
        "counter",
        "Messages published on post_exchange.",
        |r| plain(r.posted as f64),
    );
    family(
        &mut o,
        report,
        "pitcher_files_total",
        "counter",
        "Files (and file operations) done; direction out for a sender, in otherwise.",
        |r| {
            Some((
                format!(",direction=\"{}\"", direction(r.component)),
                r.files as f64,
            ))
        },
    );
    family(
        &mut o,
        report,
        "pitcher_bytes_total",
        "counter",
        "Bytes of file data moved; direction out for a sender, in otherwise.",
        |r| {
            Some((
                format!(",direction=\"{}\"", direction(r.component)),
                r.bytes as f64,
            ))
        },
    );
    family(
        &mut o,
        report,
        "pitcher_transfer_failures_total",
        "counter",
        "Transfers that failed and went to the retry queue.",
        |r| plain(r.failed as f64),
    );
    family(
        &mut o,
        report,
        "pitcher_errors_total",
        "counter",
        "ERROR lines logged by the instances.",
        |r| plain(r.errors as f64),
    );
    family(
        &mut o,
        report,
        "pitcher_warnings_total",
        "counter",
        "WARN lines logged by the instances.",
        |r| plain(r.warnings as f64),
    );
    family(
        &mut o,
        report,
        "pitcher_retry_queue_messages",
        "gauge",
        "Messages waiting in the retry queues.",
        |r| plain(r.retry as f64),
    );
    family(
        &mut o,
        report,
        "pitcher_queue_messages",
        "gauge",
        "Messages waiting in the consumed broker queue (ready + unacked).",
        |r| r.queued.map(|q| (String::new(), q as f64)),
    );
    family(
        &mut o,
        report,
        "pitcher_receipts_pending_files",
        "gauge",
        "Files a watch announced that wait for a delivery receipt (watches with receipts on).",
        |r| r.receipts_pending.map(|n| (String::new(), n as f64)),
    );
    family(
        &mut o,
        report,
        "pitcher_receipts_oldest_age_seconds",
        "gauge",
        "How long the oldest file waiting for a delivery receipt has waited.",
        |r| {
            r.receipts_pending
                .map(|_| (String::new(), r.receipts_oldest_s.unwrap_or(0.0)))
        },
    );
    family(
        &mut o,
        report,
        "pitcher_last_activity_age_seconds",
        "gauge",
        "Seconds since the last file was transferred or posted (else since the last message).",
        |r| r.last.map(|l| (String::new(), l)),
    );
    family(
        &mut o,
        report,
        "pitcher_resident_memory_bytes",
        "gauge",
        "Resident memory (RSS) of the live instances.",
        |r| plain(r.rss as f64),
    );
    family(
        &mut o,
        report,
        "pitcher_cpu_seconds_total",
        "counter",
        "CPU time (user + system) of the live instances.",
        |r| plain(r.cpu_user + r.cpu_system),
    );
    let name = "pitcher_lag_seconds";
    let _ = writeln!(
        o,
        "# HELP {name} Lag of accepted messages: time between publication and acceptance.\n# TYPE {name} histogram"
    );
    for r in &report.rows {
        let c = escape(&r.config);
        let cum = r.sum.lag_cumulative();
        for (i, bound) in LAG_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "{name}_bucket{{config=\"{c}\",le=\"{bound}\"}} {}",
                cum[i]
            );
        }
        let count = cum.last().copied().unwrap_or(0);
        let _ = writeln!(o, "{name}_bucket{{config=\"{c}\",le=\"+Inf\"}} {count}");
        let _ = writeln!(
            o,
            "{name}_sum{{config=\"{c}\"}} {}",
            number(r.sum.lag_total)
        );
        let _ = writeln!(o, "{name}_count{{config=\"{c}\"}} {count}");
    }
    let t = &report.totals;
    let _ = writeln!(
        o,
        "# HELP pitcher_stray_processes Instance processes no pid file accounts for.\n# TYPE pitcher_stray_processes gauge\npitcher_stray_processes {}",
        t.strays.len()
    );
    let _ = writeln!(
        o,
        "# HELP pitcher_configs Configs known to the supervisor.\n# TYPE pitcher_configs gauge\npitcher_configs {}",
        t.configs
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let report = Report {
            rows: vec![],
            totals: Default::default(),
        };
        let text = exposition(&report);
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(typed.contains(name), "{name} has no TYPE line");
            }
        }
        assert!(text.contains("# TYPE pitcher_lag_seconds histogram"));
    }
}
