//! Config errors and password hygiene.
//!
//! Every error names the file and line it comes from, as
//! `sender/to_hpfx.conf:12: unknown option 'acelThreshold' (did you mean
//! accelThreshold?)`. A password read from a config or from
//! credentials.conf must never reach an error, a warning or `show`: the
//! helpers here replace it with `***`.

use std::fmt;
use std::path::Path;
use url::Url;

/// A config that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, relative to the config dir when it is inside it.
    pub file: String,
    /// The 1-based line, when the problem is on one line.
    pub line: Option<usize>,
    /// What is wrong and, where possible, what was expected.
    pub message: String,
}

impl ConfigError {
    /// An error on one line of `file`.
    pub fn at(file: &str, line: usize, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            line: Some(line),
            message: message.into(),
        }
    }

    /// An error about a whole file (a missing required option, a missing file).
    pub fn file(file: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// How a file is named in messages: relative to the config dir when inside
/// it (`sender/to_hpfx.conf`), else as given.
pub(crate) fn display_path(config_dir: &Path, file: &Path) -> String {
    match file.strip_prefix(config_dir) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => file.display().to_string(),
    }
}

/// The URL as text, with any password replaced by `***`.
pub fn redact_url(url: &Url) -> String {
    // A URL of several broker nodes, as written: `amqp://u:***@h1,h2/`.
    if let Some(list) = super::hosts::host_list_text(url) {
        return redact_text(&list);
    }
    if url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    // set_password only fails for URLs that cannot have one, and those had
    // no password to hide in the first place.
    if shown.set_password(Some("***")).is_err() {
        return redact_text(url.as_str());
    }
    shown.to_string()
}

/// Free text (a config line, a value) with the password of every
/// `scheme://user:password@` in it replaced by `***`.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The userinfo ends at the first '@' before any '/', space or end.
        let authority_end = tail
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display_names_file_and_line() {
        let e = ConfigError::at("sender/to_hpfx.conf", 12, "unknown option 'x'");
        assert_eq!(e.to_string(), "sender/to_hpfx.conf:12: unknown option 'x'");
        let e = ConfigError::file("watch/a.conf", "needs path");
        assert_eq!(e.to_string(), "watch/a.conf: needs path");
    }

    #[test]
    fn path_inside_config_dir_is_shown_relative() {
        let dir = Path::new("/home/bob/.config/pitcher");
        assert_eq!(
            display_path(dir, &dir.join("sender/x.conf")),
            "sender/x.conf"
        );
        assert_eq!(display_path(dir, Path::new("/etc/x.conf")), "/etc/x.conf");
    }

    #[test]
    fn redact_url_hides_password_only() {
        let u = Url::parse("amqps://bob:s3cret@host:5671/vh").unwrap();
        assert_eq!(redact_url(&u), "amqps://bob:***@host:5671/vh");
        let u = Url::parse("amqps://bob@host").unwrap();
        assert_eq!(redact_url(&u), "amqps://bob@host");
    }

    #[test]
    fn redact_text_hides_every_password_in_a_line() {
        let t = "broker amqp://u:pw@h/ and sftp://a:b%40c@d/x sftp://e@f";
        assert_eq!(
            redact_text(t),
            "broker amqp://u:***@h/ and sftp://a:***@d/x sftp://e@f"
        );
        assert_eq!(redact_text("no url here"), "no url here");
    }
}
