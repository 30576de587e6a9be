//! The outside world a config is read in: environment variables and the
//! host name.
//!
//! Parsing never reads the process environment directly; it asks an
//! [`Environment`]. Daemons use [`Environment::from_process`]; tests build
//! one with exactly the `HOME` and `USER` they want.

use std::collections::HashMap;

/// Environment variables and host name used for `${VAR}` expansion,
/// `~` expansion and `PITCHER_SSH_CONFIG`.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
    hostname: String,
}

impl Environment {
    /// The current process's environment and the system host name.
    pub fn from_process() -> Environment {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".to_string());
        Environment {
            // vars_os: a variable that is not UTF-8 must not make loading
            // panic; such a variable simply cannot be used in a config.
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            hostname,
        }
    }

    /// An environment holding only `vars`, on a host named `hostname`.
    pub fn new<K, V>(vars: impl IntoIterator<Item = (K, V)>, hostname: &str) -> Environment
    where
        K: Into<String>,
        V: Into<String>,
    {
        Environment {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            hostname: hostname.to_string(),
        }
    }

    /// The variable `name`, if set.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Set (or replace) a variable: what `declare env` does for the lines
    /// that follow it.
    pub fn set_var(&mut self, name: &str, value: &str) {
        self.vars.insert(name.to_string(), value.to_string());
    }

    /// The host name `${HOSTNAME}` expands to (sr3 uses the FQDN; pitcher
    /// uses the system host name, without a trailing dot).
    pub fn hostname(&self) -> &str {
        self.hostname.trim_end_matches('.')
    }

    /// `~` or `~/x` with `HOME`; anything else unchanged (as Python's
    /// `os.path.expanduser`, minus `~user`).
    pub fn expand_home(&self, path: &str) -> String {
        match (path.strip_prefix('~'), self.var("HOME")) {
            (Some(""), Some(home)) => home.to_string(),
            (Some(rest), Some(home)) if rest.starts_with('/') => format!("{home}{rest}"),
            _ => path.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_expands_with_home_from_the_environment() {
        let env = Environment::new([("HOME", "/home/bob")], "loli");
        assert_eq!(env.expand_home("~/to_hpfx"), "/home/bob/to_hpfx");
        assert_eq!(env.expand_home("~"), "/home/bob");
        assert_eq!(env.expand_home("~alice/x"), "~alice/x");
        assert_eq!(env.expand_home("/abs"), "/abs");
    }

    #[test]
    fn declared_variables_are_visible_afterwards() {
        let mut env = Environment::new([("HOME", "/h")], "loli.");
        assert_eq!(env.var("X"), None);
        env.set_var("X", "1");
        assert_eq!(env.var("X"), Some("1"));
        assert_eq!(env.hostname(), "loli");
    }
}
