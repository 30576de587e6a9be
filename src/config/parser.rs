//! Reading config files line by line: comments, keywords and synonyms,
//! `${VAR}` expansion, `include`, and where every message points.
//!
//! As in sr3, only whole lines are comments (the first word starts with
//! `#`); a `#` later in a line is part of the value. Order matters: each
//! line acts on the options set by the lines before it (see `apply`).

use super::credentials::Credentials;
use super::env::Environment;
use super::error::{display_path, redact_text, ConfigError};
use super::keywords::{canonical, is_implemented, suggest};
use super::obsolete;
use super::options::Config;
use super::sr3_keywords::{is_pitcher_behaviour, is_unimplemented};
use super::vars::{keeps_message_time, never_expanded, VarScope};
use std::path::{Path, PathBuf};

/// The state of one config being read: the options so far, and what the
/// lines still to come can refer to.
pub(crate) struct Parser<'a> {
    pub config_dir: &'a Path,
    /// The environment, plus the variables of `declare env` lines so far.
    pub env: Environment,
    pub credentials: Credentials,
    pub cfg: Config,
    /// Files being read, outermost first, to refuse include cycles:
    /// (canonical path to compare, path as found to show).
    stack: Vec<(PathBuf, PathBuf)>,
    /// The file (as shown) and line being applied, for warnings and
    /// errors about an `include` on that line.
    here_file: String,
    here_line: usize,
    /// Whether `post_topicPrefix` was set (else it follows topicPrefix).
    pub post_topic_prefix_set: bool,
    /// Where `post_baseUrl` was last set (`file:line`), for the check
    /// that it and post_baseDir name the same place.
    pub post_base_url_at: Option<String>,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(
        config_dir: &'a Path,
        env: Environment,
        credentials: Credentials,
        cfg: Config,
    ) -> Parser<'a> {
        Parser {
            config_dir,
            env,
            credentials,
            cfg,
            stack: Vec::new(),
            here_file: String::new(),
            here_line: 0,
            post_topic_prefix_set: false,
            post_base_url_at: None,
        }
    }

    /// How `path` is named in messages.
    pub(crate) fn shown(&self, path: &Path) -> String {
        display_path(self.config_dir, path)
    }

    /// Read every line of `path` into the config.
    pub(crate) fn parse_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let shown = self.shown(path);
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if self.stack.iter().any(|(k, _)| *k == key) {
            let mut chain: Vec<String> = self.stack.iter().map(|(_, p)| self.shown(p)).collect();
            chain.push(shown.clone());
            return Err(ConfigError::file(
                &shown,
                format!("include cycle: {}", chain.join(" -> ")),
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::file(&shown, format!("cannot read: {e}")))?;
        self.stack.push((key, path.to_path_buf()));
        for (index, line) in text.lines().enumerate() {
            let lineno = index + 1;
            (self.here_file, self.here_line) = (shown.clone(), lineno);
            self.parse_line(line).map_err(|message| match message {
                LineError::Here(m) => ConfigError::at(&shown, lineno, m),
                LineError::Nested(e) => e,
            })?;
        }
        self.stack.pop();
        Ok(())
    }

    fn parse_line(&mut self, line: &str) -> Result<(), LineError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&written, raw_args)) = words.split_first() else {
            return Ok(());
        };
        if written.starts_with('#') {
            return Ok(());
        }
        let keyword = canonical(written, self.cfg.component);
        if let Some(instead) = obsolete::replacement(written, keyword, raw_args) {
            return Err(LineError::Here(instead));
        }
        if !is_implemented(keyword) {
            if is_unimplemented(keyword) {
                if is_pitcher_behaviour(keyword, raw_args) {
                    return Ok(());
                }
                let also = if keyword == written {
                    String::new()
                } else {
                    format!(" ({keyword})")
                };
                let what = if obsolete::is_obsolete(keyword) {
                    "a v2 option sr3 marks obsolete"
                } else {
                    "an sr3 option pitcher does not implement"
                };
                self.warn(format!("'{written}'{also} is {what}; line ignored"));
                return Ok(());
            }
            let hint = suggest(written)
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            return Err(LineError::Here(format!(
                "unknown option '{}'{hint}",
                redact_text(written)
            )));
        }
        let args = if never_expanded(keyword) {
            raw_args.iter().map(|w| w.to_string()).collect()
        } else {
            let scope = VarScope {
                env: &self.env,
                cfg: &self.cfg,
            };
            let message_time = keeps_message_time(keyword);
            raw_args
                .iter()
                .map(|w| scope.expand(w, message_time))
                .collect::<Result<Vec<_>, _>>()?
        };
        if keyword == "include" {
            return self.include(&args.join(" ")).map_err(LineError::Nested);
        }
        self.apply(keyword, written, &args).map_err(LineError::Here)
    }

    /// `include <file>`: an absolute path, else looked up in the config's
    /// component directory, then in the config dir itself.
    fn include(&mut self, name: &str) -> Result<(), ConfigError> {
        let (file, line) = (self.here_file.clone(), self.here_line);
        let file = file.as_str();
        if name.is_empty() {
            return Err(ConfigError::at(file, line, "include needs a file name"));
        }
        let expanded = PathBuf::from(self.env.expand_home(name));
        let candidates = if expanded.is_absolute() {
            vec![expanded]
        } else {
            vec![
                self.config_dir
                    .join(self.cfg.component.name())
                    .join(&expanded),
                self.config_dir.join(&expanded),
            ]
        };
        let Some(found) = candidates.iter().find(|p| p.is_file()).cloned() else {
            let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            return Err(ConfigError::at(
                file,
                line,
                format!(
                    "include file '{name}' not found (looked for {})",
                    looked.join(", ")
                ),
            ));
        };
        self.parse_file(&found)?;
        (self.here_file, self.here_line) = (file.to_string(), line);
        Ok(())
    }

    /// The current file and line, as `file:line`.
    pub(crate) fn here(&self) -> String {
        format!("{}:{}", self.here_file, self.here_line)
    }

    /// A warning about the current line.
    pub(crate) fn warn(&mut self, message: String) {
        let w = format!("{}:{}: {}", self.here_file, self.here_line, message);
        self.cfg.warnings.push(w);
    }
}

/// A problem with a line: on this line, or inside a file it included
/// (which already names its own file and line).
enum LineError {
    Here(String),
    Nested(ConfigError),
}

impl From<String> for LineError {
    fn from(m: String) -> Self {
        LineError::Here(m)
    }
}
