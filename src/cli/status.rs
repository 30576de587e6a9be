//! `pitcher status` and `pitcher top`: one row per config, read from the
//! state directory by [`crate::supervisor::report`], so it answers at once
//! without asking any daemon. `top` (`status --watch`) redraws it every few
//! seconds until `q` or Ctrl-C.

use super::select;
use crate::state::Paths;
use crate::supervisor::report::{self, Report};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

/// `pitcher status [configs] [--json]`.
pub fn run(paths: &Paths, specs: &[String], json: bool) -> anyhow::Result<ExitCode> {
    let report = report::collect(paths, &select(paths, specs)?);
    if json {
        // An array of rows: scripts index it by position and key.
        println!("{}", serde_json::to_string_pretty(&report.rows)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// `pitcher status --watch` / `pitcher top`: redraws every `every` until
/// `q`, Ctrl-C or Ctrl-D.
pub fn watch(paths: &Paths, specs: &[String], every: Duration) -> anyhow::Result<ExitCode> {
    let keys = super::terminal::Keys::raw();
    loop {
        let report = report::collect(paths, &select(paths, specs)?);
        let mut screen = String::from("\x1b[H\x1b[2J");
        let _ = writeln!(
            screen,
            "pitcher top: {} (every {}s; q to quit)\n",
            chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
            every.as_secs_f64()
        );
        screen += &render(&report);
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if out
            .write_all(screen.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            // The reader went away (a closed pipe): nothing left to show.
            break;
        }
        drop(out);
        if keys.wait_for_quit(every) {
            break;
        }
    }
    drop(keys);
    println!();
    Ok(ExitCode::SUCCESS)
}

/// A duration ago, shortly: `5s`, `3m07s`, `2h05m`.
fn ago(s: Option<f64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s < 60.0 => format!("{s:.0}s"),
        Some(s) if s < 3600.0 => format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
        Some(s) => format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        ),
    }
}

/// Bytes in binary units: `512B`, `1.5KiB`, `20.0MiB`.
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0}{}", UNITS[u])
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// Files waiting for a delivery receipt and the oldest one's wait:
/// `12/3m07s`, `0`; `-` without receipts.
fn receipts(pending: Option<u64>, oldest: Option<f64>) -> String {
    match (pending, oldest) {
        (None, _) => "-".into(),
        (Some(0), _) | (Some(_), None) => pending.unwrap_or(0).to_string(),
        (Some(n), Some(_)) => format!("{n}/{}", ago(oldest)),
    }
}

/// A rate per second, shortly: `0`, `3.5`, `120`.
fn rate(r: f64) -> String {
    if r == 0.0 {
        "0".into()
    } else if r < 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.0}")
    }
}

/// The table, its footer and the strays, as `status` prints them.
pub fn render(report: &Report) -> String {
    let rows = &report.rows;
    let width = rows
        .iter()
        .map(|r| r.config.len())
        .max()
        .unwrap_or(0)
        .max(16);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:width$} {:5} {:>5} {:>6} {:>7} {:>7} {:>7} {:>5} {:>8} {:>10} {:>12}",
        "Component/Config",
        "State",
        "Run",
        "Retry",
        "Que",
        "Lag",
        "Last",
        "%rej",
        "msg/s",
        "Data/s",
        "Rcpt"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:width$} {:5} {:>5} {:>6} {:>7} {:>7} {:>7} {:>5} {:>8} {:>10} {:>12}",
            r.config,
            r.state,
            format!("{}/{}", r.running, r.expected),
            r.retry,
            r.queued
                .map(|q| q.to_string())
                .unwrap_or_else(|| "-".into()),
            r.lag_avg
                .map(|l| format!("{l:.2}s"))
                .unwrap_or_else(|| "-".into()),
            ago(r.last),
            r.rejected_pct
                .map(|p| format!("{p:.0}%"))
                .unwrap_or_else(|| "-".into()),
            rate(r.msg_rate),
            format!("{}/s", human_bytes(r.data_rate)),
            receipts(r.receipts_pending, r.receipts_oldest_s),
        );
    }
    let t = &report.totals;
    let _ = writeln!(
        out,
        "      Total Running Configs: {} / {} ( Processes: {} missing: {} stray: {} )",
        t.running_configs,
        t.configs,
        t.processes,
        t.missing,
        t.strays.len()
    );
    let _ = writeln!(
        out,
        "                     Memory: uss:{} rss:{}",
        human_bytes(t.uss as f64),
        human_bytes(t.rss as f64)
    );
    let _ = writeln!(
        out,
        "                   CPU Time: User:{:.2}s System:{:.2}s",
        t.cpu_user, t.cpu_system
    );
    let _ = writeln!(
        out,
        "                   Messages: {}/s Queued: {} Retry: {}  Data: {}/s",
        rate(t.msg_rate),
        t.queued,
        t.retry,
        human_bytes(t.data_rate)
    );
    let _ = writeln!(
        out,
        "                 Supervisor: {}",
        t.supervisor
            .map(|p| format!("pid {p}"))
            .unwrap_or_else(|| "not running".into())
    );
    for s in &t.strays {
        let _ = writeln!(
            out,
            "pid:{} \"{}\" is not a configured instance",
            s.pid, s.cmdline
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_are_shown_in_binary_units() {
        assert_eq!(human_bytes(512.0), "512B");
        assert_eq!(human_bytes(1536.0), "1.5KiB");
        assert_eq!(human_bytes(2.0 * 1024.0 * 1024.0), "2.0MiB");
    }

    #[test]
    fn receipts_show_the_files_waiting_and_the_oldest_wait() {
        assert_eq!(receipts(None, None), "-");
        assert_eq!(receipts(Some(0), None), "0");
        assert_eq!(receipts(Some(12), Some(187.0)), "12/3m07s");
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(ago(None), "-");
        assert_eq!(ago(Some(5.2)), "5s");
        assert_eq!(ago(Some(187.0)), "3m07s");
        assert_eq!(ago(Some(7500.0)), "2h05m");
    }
}
