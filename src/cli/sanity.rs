//! `pitcher sanity`: for cron (`* * * * * pitcher sanity`). Brings the
//! supervisor back, ends hung and stray instances, and prints one line
//! per thing it did (nothing but a summary when all is well). See
//! [`crate::supervisor::sanity`].

use crate::state::Paths;
use crate::supervisor::sanity::{self, Options, Outcome};
use std::process::ExitCode;
use std::time::Duration;

/// Options of `pitcher sanity`.
#[derive(clap::Args, Debug)]
pub struct SanityArgs {
    /// Seconds without metrics or log output after which a live instance
    /// counts as hung and is killed (sr3's runStateThreshold_hung).
    #[arg(long, value_name = "SECONDS", default_value_t = 450)]
    hung_after: u64,
    /// Print nothing when there is nothing to fix (quiet cron mail).
    #[arg(long, short)]
    quiet: bool,
}

/// `pitcher sanity [--hung-after S] [--quiet]`.
pub fn run(paths: &Paths, args: SanityArgs) -> anyhow::Result<ExitCode> {
    let opts = Options {
        hung_after: Duration::from_secs(args.hung_after),
        ..Options::default()
    };
    match sanity::run(paths, &opts)? {
        Outcome::Skipped => {
            if !args.quiet {
                println!("sanity: start, stop or another sanity is running; skipped");
            }
        }
        Outcome::Done {
            findings,
            configs,
            instances,
            supervisor,
        } => {
            for f in &findings {
                println!("sanity: {f}");
            }
            if findings.is_empty() && !args.quiet {
                println!(
                    "sanity: nothing to fix ({configs} configs started, {instances} instances, supervisor {})",
                    supervisor
                        .map(|p| format!("pid {p}"))
                        .unwrap_or_else(|| "not needed".into())
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
