//! Progress bars for the interactive verbs, only when stdout is a terminal
//! (a script or a pipe gets the plain output): `foreground` shows its
//! instance's counters as they change, `post` how many files of a tree it
//! has announced.

use crate::state::metrics::Metrics;
use crate::state::InstanceFiles;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The status line of `pitcher foreground`, refreshed from the instance's
/// metrics file; gone when dropped.
pub struct Foreground {
    bar: ProgressBar,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Foreground {
    /// Shows the line for the instance writing `files`, if stdout is a
    /// terminal.
    pub fn start(files: &InstanceFiles) -> Option<Foreground> {
        if !super::terminal::stdout_is_terminal() {
            return None;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").ok()?);
        bar.enable_steady_tick(Duration::from_millis(200));
        super::logging::set_progress_bar(bar.clone());
        let done = Arc::new(AtomicBool::new(false));
        let path = files.metrics_file();
        let (b, d) = (bar.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                if let Some(m) = Metrics::load(&path) {
                    b.set_message(line(&m));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        Some(Foreground {
            bar,
            done,
            thread: Some(thread),
        })
    }
}

/// One line of counters and rates.
fn line(m: &Metrics) -> String {
    let r = m.rates(crate::flow::now_epoch(), 10.0);
    format!(
        "received {} rejected {} files {} ({}) posted {} failed {} retry {}{} | {:.1} msg/s {}/s",
        m.received,
        m.rejected,
        m.files_done,
        super::status::human_bytes(m.bytes_done as f64),
        m.posted,
        m.failed,
        m.retry,
        m.queued.map(|q| format!(" queued {q}")).unwrap_or_default(),
        r.messages,
        super::status::human_bytes(r.bytes)
    )
}

impl Drop for Foreground {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.bar.finish();
    }
}

/// A bar of `total` files for `post`, if stdout is a terminal.
pub fn files_bar(total: u64) -> Option<ProgressBar> {
    if !super::terminal::stdout_is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stdout());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files announced ({eta} left)").ok()?,
    );
    super::logging::set_progress_bar(bar.clone());
    Some(bar)
}
