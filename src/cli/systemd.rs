//! `pitcher systemd install|uninstall`: run the supervisor as a systemd
//! user service. See [`crate::supervisor::systemd`] for how it and
//! `pitcher start`/`stop` live together.

use crate::state::Paths;
use crate::supervisor::systemd::{self, Outcome};
use std::process::ExitCode;

/// What to do with the user unit.
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Write ~/.config/systemd/user/pitcher.service for this binary and
    /// these directories, then daemon-reload and enable --now it.
    Install,
    /// Disable and stop the unit and remove its file (configs stay
    /// started: `pitcher start` runs them without systemd).
    Uninstall,
}

/// `pitcher systemd install|uninstall`.
pub fn run(paths: &Paths, action: Action) -> anyhow::Result<ExitCode> {
    let out = match action {
        Action::Install => {
            let out = systemd::install(paths)?;
            println!("wrote {}", out.unit.display());
            out
        }
        Action::Uninstall => {
            let out = systemd::uninstall()?;
            println!("removed {}", out.unit.display());
            out
        }
    };
    report(&out, matches!(action, Action::Install));
    Ok(ExitCode::SUCCESS)
}

fn report(out: &Outcome, install: bool) {
    for s in &out.steps {
        match &s.result {
            Ok(()) => println!("ran: {}", s.what),
            Err(e) => println!("could not: {e}"),
        }
    }
    if !install {
        return;
    }
    if out.all_ok() {
        println!(
            "the supervisor now runs under systemd: `systemctl --user status {}`",
            systemd::UNIT_NAME
        );
    } else {
        println!(
            "systemd was not reachable; once it is (in a login session): systemctl --user daemon-reload && systemctl --user enable --now {}",
            systemd::UNIT_NAME
        );
    }
    if out.linger != Some(true) {
        println!(
            "to keep it running without a login session: loginctl enable-linger {}",
            std::env::var("USER").unwrap_or_else(|_| "$USER".into())
        );
    }
}
