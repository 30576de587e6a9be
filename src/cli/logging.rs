//! Log lines as sr3 writes them: `2024-12-12 14:04:06,249 [INFO] message`,
//! and the rotation of the instances' and the supervisor's log files.
//!
//! An instance's stderr (and stdout) is its log file: the supervisor opens
//! it for the child (see `supervisor::process`), so even a panic lands
//! there. When [`init_rotating`] finds stderr is that file, it rotates it as
//! sr3 does (`logRotateInterval`, `logRotateCount`): at midnight when the
//! interval is a day or more (the old file becomes `<log>.YYYY-MM-DD`),
//! else every interval (`<log>.YYYY-MM-DD_HH-MM-SS`); the newest
//! `logRotateCount` old files are kept. Rotating renames the file, opens a
//! new one and points file descriptors 1 and 2 at it, so panics follow.
//!
//! While a progress bar is on screen (`foreground`, `post`), log lines are
//! written around it instead of through it. ERROR and WARN lines are
//! counted for the metrics file.

use crate::state::metrics;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

struct Sr3Format;

impl<S, N> FormatEvent<S, N> for Sr3Format
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        if level == tracing::Level::ERROR {
            metrics::count_error_logged();
        } else if level == tracing::Level::WARN {
            metrics::count_warning_logged();
        }
        let now = chrono::Local::now();
        write!(w, "{} [{}] ", now.format("%Y-%m-%d %H:%M:%S,%3f"), level)?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// The progress bar on screen, if any: log lines are written around it.
static BAR: OnceLock<indicatif::ProgressBar> = OnceLock::new();

/// Shows `bar` and keeps log lines from tearing it (once per process).
pub fn set_progress_bar(bar: indicatif::ProgressBar) {
    let _ = BAR.set(bar);
}

/// The log file being rotated, if any.
static ROTATION: OnceLock<Mutex<Rotation>> = OnceLock::new();

/// Where the log goes: stderr, after rotating the file behind it if due.
#[derive(Clone, Copy)]
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match BAR.get() {
            Some(bar) if !bar.is_finished() => bar.suspend(|| std::io::stderr().write(buf)),
            _ => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        if let Some(r) = ROTATION.get() {
            if let Ok(mut r) = r.lock() {
                r.rotate_if_due(SystemTime::now());
            }
        }
        LogWriter
    }
}

fn level_of(level: &str) -> tracing::Level {
    match level.to_ascii_lowercase().as_str() {
        "debug" => tracing::Level::DEBUG,
        "warning" | "warn" => tracing::Level::WARN,
        "error" | "critical" | "none" => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    }
}

/// Sends log lines at `level` (sr3's logLevel: debug, info, warning, error,
/// critical) and above to stderr.
pub fn init(level: &str) {
    // The broker clients log their own view of connection trouble (with
    // colour codes); pitcher reports those events itself, once, plainly.
    let filter = tracing_subscriber::EnvFilter::new(format!(
        "{},lapin=off,amq_protocol=off,rumqttc=error,openssh=warn",
        level_of(level).as_str().to_ascii_lowercase()
    ));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogWriter)
        // Log files are read with grep and less: no colour codes around
        // the fields other crates log (`error=…` from the sftp client).
        .with_ansi(false)
        .event_format(Sr3Format)
        .try_init();
}

/// As [`init`], and when stderr is the file `log`, rotates it every
/// `interval` (zero: never), keeping `keep` old files.
pub fn init_rotating(level: &str, log: &Path, interval: Duration, keep: u32) {
    if !interval.is_zero() && stderr_is(log) {
        let r = Rotation::new(log.to_path_buf(), interval, keep, SystemTime::now());
        let _ = ROTATION.set(Mutex::new(r));
    }
    init(level);
}

/// Whether file descriptor 2 is the file at `path`.
fn stderr_is(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(file) = std::fs::metadata(path) else {
        return false;
    };
    let Ok(fd2) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    file.dev() == fd2.dev() && file.ino() == fd2.ino()
}

/// The schedule and naming of one log file's rotation.
#[derive(Debug)]
pub struct Rotation {
    path: PathBuf,
    interval: Duration,
    keep: u32,
    /// When the current file is rotated out.
    next: SystemTime,
    /// When the current file's period began (names the rotated file).
    began: SystemTime,
}

const DAY: Duration = Duration::from_secs(86_400);

impl Rotation {
    /// The rotation of `path`, whose current period began when the file
    /// was last written (a restarted instance continues its file's period).
    pub fn new(path: PathBuf, interval: Duration, keep: u32, now: SystemTime) -> Rotation {
        let began = std::fs::metadata(&path)
            .ok()
            .filter(|m| m.len() > 0)
            .and_then(|m| m.modified().ok())
            .map_or(now, |t| t.min(now));
        let mut r = Rotation {
            path,
            interval,
            keep,
            next: now,
            began,
        };
        r.next = r.next_after(began);
        r
    }

    /// The end of the period that contains `t`: the next local midnight
    /// for daily rotation, else `t + interval`.
    fn next_after(&self, t: SystemTime) -> SystemTime {
        if self.interval < DAY {
            return t + self.interval;
        }
        let local: chrono::DateTime<chrono::Local> = t.into();
        let tomorrow = local.date_naive().succ_opt().unwrap_or(local.date_naive());
        tomorrow
            .and_hms_opt(0, 0, 0)
            .and_then(|d| d.and_local_timezone(chrono::Local).earliest())
            .map(SystemTime::from)
            .unwrap_or(t + DAY)
    }

    /// The name the current file gets when rotated out.
    fn rotated_name(&self) -> PathBuf {
        let began: chrono::DateTime<chrono::Local> = self.began.into();
        let suffix = if self.interval >= DAY {
            began.format("%Y-%m-%d").to_string()
        } else {
            began.format("%Y-%m-%d_%H-%M-%S").to_string()
        };
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{suffix}"));
        let mut p = PathBuf::from(name);
        // Two rotations within one suffix's resolution: do not overwrite.
        let mut n = 1;
        while p.exists() {
            let mut alt = self.path.as_os_str().to_owned();
            alt.push(format!(".{suffix}.{n}"));
            p = PathBuf::from(alt);
            n += 1;
        }
        p
    }

    /// Rotates when the period is over.
    pub fn rotate_if_due(&mut self, now: SystemTime) {
        if now < self.next {
            return;
        }
        if let Err(e) = self.rotate() {
            // Keep logging to the old file; try again next period.
            let _ = writeln!(
                std::io::stderr(),
                "cannot rotate {}: {e}",
                self.path.display()
            );
        }
        self.began = now;
        self.next = self.next_after(now);
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        std::fs::rename(&self.path, self.rotated_name())?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        for fd in [1, 2] {
            // SAFETY: dup2 onto the standard descriptors of this process.
            if unsafe { libc::dup2(file.as_raw_fd(), fd) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        self.remove_old();
        Ok(())
    }

    /// Removes rotated files beyond the newest `keep`.
    fn remove_old(&self) {
        let (Some(dir), Some(base)) = (
            self.path.parent(),
            self.path.file_name().and_then(|n| n.to_str()),
        ) else {
            return;
        };
        let prefix = format!("{base}.");
        let mut old: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_name().to_str().is_some_and(|n| {
                    n.strip_prefix(&prefix)
                        .is_some_and(|s| s.starts_with(|c: char| c.is_ascii_digit()))
                })
            })
            .map(|e| {
                let t = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                (t, e.path())
            })
            .collect();
        old.sort_by(|a, b| b.cmp(a));
        for (_, p) in old.into_iter().skip(self.keep as usize) {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_rotation_falls_at_the_next_local_midnight() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let r = Rotation::new(dir.path().join("x.log"), DAY, 5, now);
        let next: chrono::DateTime<chrono::Local> = r.next.into();
        assert_eq!(next.format("%H:%M:%S").to_string(), "00:00:00");
        assert!(r.next > now && r.next <= now + DAY + Duration::from_secs(3600));
        assert!(r
            .rotated_name()
            .to_string_lossy()
            .ends_with(&chrono::Local::now().format(".%Y-%m-%d").to_string()));
    }

    #[test]
    fn a_restarted_writer_continues_the_period_of_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        std::fs::write(&log, "old line\n").unwrap();
        let later = SystemTime::now() + Duration::from_secs(100);
        let r = Rotation::new(log, Duration::from_secs(10), 5, later);
        assert!(r.next < later, "the period ended while it was down");
    }

    #[test]
    fn only_the_newest_rotated_files_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        for (i, name) in ["x.log.2024-01-01", "x.log.2024-01-02", "x.log.2024-01-03"]
            .iter()
            .enumerate()
        {
            let p = dir.path().join(name);
            std::fs::write(&p, "x").unwrap();
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + i as u64);
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        std::fs::write(dir.path().join("x.logger"), "not ours").unwrap();
        let r = Rotation::new(log, DAY, 2, SystemTime::now());
        r.remove_old();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["x.log.2024-01-02", "x.log.2024-01-03", "x.logger"]);
    }
}
