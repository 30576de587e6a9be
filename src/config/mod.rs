//! sr3's configuration language.
//!
//! A config is `~/.config/pitcher/<component>/<name>.conf` (laid out as sr3's
//! `~/.config/sr3`), read after `admin.conf` and `default.conf`, with
//! `include` files, `${VAR}` expansion and `credentials.conf` for
//! passwords. The result is one [`Config`]: every option with sr3's meaning
//! and sr3's effective defaults for that component.
//!
//! Errors name `file:line`, what was expected, and a "did you mean" for near
//! misses. A real sr3 keyword that pitcher does not implement is a warning in
//! [`Config::warnings`], never an error.
//!
//! The parts, in the order a config goes through them:
//! * `defaults`: sr3's effective defaults per component ([`Config::new`]);
//! * `parser`: lines, comments, keywords and synonyms (`keywords`), the sr3
//!   keywords pitcher skips (`sr3_keywords`), sr2 and obsolete keywords
//!   with what to write instead (`obsolete`), `${VAR}`s (`vars`), includes;
//! * `apply`: what each keyword does, with `values` for the notations
//!   (sizes, durations, flags, fileEvents, inflight);
//! * `credentials`: passwords and details from credentials.conf;
//! * `finalize`: derived defaults (exchanges, bindings, post_baseDir) and
//!   required options;
//! * `show`: the effective options as text; `timevars`: the date variables
//!   flows expand per message.

mod apply;
mod credentials;
mod defaults;
pub mod descriptions;
mod env;
mod error;
mod finalize;
mod hosts;
mod keywords;
mod obsolete;
mod options;
mod parser;
mod show;
mod sr3_keywords;
mod timevars;
mod values;
mod vars;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sr3_compat;
#[cfg(test)]
mod tests_tutorial;

pub use env::Environment;
pub use error::{redact_text, redact_url, ConfigError};
pub use finalize::sftp_path;
pub use hosts::broker_nodes;
pub use options::*;
pub use timevars::expand_time_vars;
pub use values::{parse_bool, parse_count, parse_duration, parse_octal, parse_size};

pub use credentials::Credentials;
use error::display_path;
use parser::Parser;
use std::path::Path;

/// Files read before every config, in this order, when present.
const SHARED_FILES: [&str; 2] = ["admin.conf", "default.conf"];

/// Load `<config_dir>/<component>/<name>.conf` in the process environment.
pub fn load(config_dir: &Path, component: Component, name: &str) -> Result<Config, ConfigError> {
    load_with(config_dir, component, name, &Environment::from_process())
}

/// Load a config given by path (its name is the file stem) in the process
/// environment.
pub fn load_path(
    config_dir: &Path,
    component: Component,
    file: &Path,
) -> Result<Config, ConfigError> {
    load_path_with(config_dir, component, file, &Environment::from_process())
}

/// [`load`] with an explicit environment (for `${HOME}`, `${USER}`, `~`,
/// `PITCHER_SSH_CONFIG`, and the host name).
pub fn load_with(
    config_dir: &Path,
    component: Component,
    name: &str,
    env: &Environment,
) -> Result<Config, ConfigError> {
    let file = config_dir
        .join(component.name())
        .join(format!("{name}.conf"));
    load_path_with(config_dir, component, &file, env)
}

/// [`load_path`] with an explicit environment.
pub fn load_path_with(
    config_dir: &Path,
    component: Component,
    file: &Path,
    env: &Environment,
) -> Result<Config, ConfigError> {
    let file = file.to_path_buf();
    let shown = display_path(config_dir, &file);
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !file.is_file() {
        return Err(ConfigError::file(&shown, "no such config file"));
    }

    let mut warnings = Vec::new();
    let credentials = Credentials::read(
        &config_dir.join("credentials.conf"),
        "credentials.conf",
        env,
        &mut warnings,
    )?;
    let mut cfg = Config::new(component, &name);
    cfg.file = file.clone();
    cfg.warnings = warnings;

    let mut parser = Parser::new(config_dir, env.clone(), credentials, cfg);
    for shared in SHARED_FILES {
        let path = config_dir.join(shared);
        if path.is_file() {
            parser.parse_file(&path)?;
        }
    }
    // sr3 layers the component's own defaults over default.conf.
    defaults::apply_component_defaults(&mut parser.cfg);
    parser.parse_file(&file)?;

    let Parser {
        mut cfg,
        env,
        post_topic_prefix_set,
        post_base_url_at,
        credentials,
        ..
    } = parser;
    // Kept for the URLs only messages name (subscribe's baseUrls).
    cfg.credentials = credentials;
    finalize::finalize(&mut cfg, post_topic_prefix_set, &env, &shown)?;
    if let Some(w) = post_base_url_at.and_then(|at| finalize::post_base_mismatch(&cfg, &at)) {
        cfg.warnings.push(w);
    }
    Ok(cfg)
}

/// Every `<component>/<name>.conf` under `config_dir`, sorted by component
/// then name.
pub fn list(config_dir: &Path) -> Vec<(Component, String)> {
    let mut found = Vec::new();
    for component in Component::ALL {
        let Ok(entries) = std::fs::read_dir(config_dir.join(component.name())) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "conf") && path.is_file() {
                if let Some(stem) = path.file_stem() {
                    found.push((component, stem.to_string_lossy().into_owned()));
                }
            }
        }
    }
    found.sort();
    found
}
