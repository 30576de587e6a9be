//! `pitcher completions bash|zsh|fish|elvish|powershell`: the shell's
//! completion script for every verb and option, from the same definition
//! clap parses with.

use clap::CommandFactory;
use std::process::ExitCode;

/// Prints the completion script of `shell` on stdout.
pub fn run(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(shell, &mut cmd, "pitcher", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
