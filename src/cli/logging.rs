//! Log lines as sr3 writes them: `2024-12-12 14:04:06,249 [INFO] message`.
//!
//! Instances write to stderr, which the supervisor points at the instance's
//! log file; `foreground` leaves it on the terminal.

use std::fmt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
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
        let now = chrono::Local::now();
        write!(
            w,
            "{} [{}] ",
            now.format("%Y-%m-%d %H:%M:%S,%3f"),
            event.metadata().level()
        )?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Sends log lines at `level` (sr3's logLevel: debug, info, warning, error,
/// critical) and above to stderr.
pub fn init(level: &str) {
    let level = match level.to_ascii_lowercase().as_str() {
        "debug" => tracing::Level::DEBUG,
        "warning" | "warn" => tracing::Level::WARN,
        "error" | "critical" => tracing::Level::ERROR,
        "none" => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .event_format(Sr3Format)
        .try_init();
}
