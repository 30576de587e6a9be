//! `${VAR}` expansion while a config is read.
//!
//! Resolved, in sr3's order: `${BROKER_USER}` and `${POST_BROKER_USER}`
//! (from the broker URLs set so far), then an option named like the
//! variable in lower case (`${HOSTNAME}`, `${CONFIG}`, `${COMPONENT}`,
//! `${EXCHANGE}`, …), then environment variables (including those from
//! earlier `declare env` lines).
//!
//! Left literal on purpose:
//! * `${INSTANCE}`, `${RAND8}`, `${QUEUESHARE}`: they belong to one
//!   instance or to the persisted queue name, and are expanded there;
//! * in `directory`, `post_baseDir`, `baseDir` and `rename`, the
//!   message-time variables (dates, `${PBD}`, `${BD}`, `${BUP}`,
//!   `${BUPL}`, `${SOURCE}`, regex groups `${1}`), which
//!   [`super::expand_time_vars`] and the flows expand per file.
//!
//! Unlike sr3, which leaves an unknown variable in place (and then fails
//! in a puzzling way later), an unknown variable is an error.

use super::env::Environment;
use super::options::Config;
use super::timevars::is_time_var;

/// Variables an instance or the queue-name logic expands later.
const KEPT_FOR_INSTANCE: &[&str] = &["INSTANCE", "RAND8", "QUEUESHARE"];

/// Variables the flows expand per message (besides dates and regex groups).
const KEPT_FOR_MESSAGE: &[&str] = &[
    "PBD",
    "BD",
    "BUP",
    "BUPL",
    "baseUrlPath",
    "baseUrlPathLast",
    "SOURCE",
    "DR",
    "PDR",
];

/// What `${…}` can refer to at one point of the parse.
pub(crate) struct VarScope<'a> {
    pub env: &'a Environment,
    pub cfg: &'a Config,
}

impl VarScope<'_> {
    /// `word` with its variables expanded. `message_time` keeps the
    /// message-time variables literal (for directory-like options).
    pub(crate) fn expand(&self, word: &str, message_time: bool) -> Result<String, String> {
        let mut out = String::with_capacity(word.len());
        let mut rest = word;
        while let Some(start) = rest.find("${") {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            let name = &rest[start + 2..start + len];
            out.push_str(&rest[..start]);
            match self.lookup(name, message_time)? {
                Some(value) => out.push_str(&value),
                None => out.push_str(&rest[start..=start + len]),
            }
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `Ok(Some(value))`, `Ok(None)` to keep it literal, or an error.
    fn lookup(&self, name: &str, message_time: bool) -> Result<Option<String>, String> {
        if KEPT_FOR_INSTANCE.contains(&name) {
            return Ok(None);
        }
        if message_time
            && (KEPT_FOR_MESSAGE.contains(&name)
                || is_time_var(name)
                || (!name.is_empty() && name.chars().all(|c| c.is_ascii_digit())))
        {
            return Ok(None);
        }
        match name {
            "BROKER_USER" => return user_of(self.cfg.broker.as_ref(), "broker").map(Some),
            "POST_BROKER_USER" => {
                return user_of(self.cfg.post_broker.as_ref(), "post_broker").map(Some)
            }
            _ => {}
        }
        if let Some(value) = self.option_value(&name.to_ascii_lowercase()) {
            return Ok(Some(value));
        }
        if let Some(value) = self.env.var(name) {
            return Ok(Some(value.to_string()));
        }
        Err(format!(
            "unknown variable ${{{name}}}: not an option or environment variable (define it with 'declare env {name}=…')"
        ))
    }

    /// Options a variable can name, as sr3's `${X}` → option `x`. Only
    /// options whose sr3 attribute name is all lower case can match, as in
    /// sr3.
    fn option_value(&self, lower: &str) -> Option<String> {
        let cfg = self.cfg;
        match lower {
            "hostname" => Some(self.env.hostname().to_string()),
            "component" | "program" => Some(cfg.component.name().to_string()),
            "config" => Some(cfg.name.clone()),
            "exchange" => cfg.exchange.clone(),
            "post_exchange" => cfg.post_exchange.clone(),
            "directory" => cfg.directory.clone(),
            "source" => cfg.source.clone(),
            "flatten" => Some(cfg.flatten.clone()),
            "filename" => cfg.filename.clone(),
            "post_format" => Some(cfg.post_format.clone()),
            "path" => cfg.paths.first().cloned(),
            _ => None,
        }
    }
}

fn user_of(url: Option<&url::Url>, option: &str) -> Result<String, String> {
    match url {
        Some(u) if !u.username().is_empty() => Ok(u.username().to_string()),
        Some(_) => Ok("anonymous".to_string()),
        None => Err(format!(
            "${{{}_USER}} used before {option} is set",
            option.to_ascii_uppercase()
        )),
    }
}

/// Whether `keyword`'s value is left unexpanded altogether (sr3 does not
/// expand queue names at parse time).
pub(crate) fn never_expanded(keyword: &str) -> bool {
    matches!(keyword, "queueName" | "queueShare")
}

/// Whether `keyword`'s value keeps message-time variables.
pub(crate) fn keeps_message_time(keyword: &str) -> bool {
    matches!(keyword, "directory" | "post_baseDir" | "baseDir" | "rename")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Component;

    fn scope_cfg() -> (Environment, Config) {
        let env = Environment::new([("HOME", "/home/bob"), ("USER", "bob")], "loli");
        let mut cfg = Config::new(Component::Sender, "to_hpfx");
        cfg.broker = url::Url::parse("amqps://pas037@hpfx").ok();
        (env, cfg)
    }

    #[test]
    fn environment_and_builtin_variables_expand() {
        let (env, cfg) = scope_cfg();
        let s = VarScope {
            env: &env,
            cfg: &cfg,
        };
        assert_eq!(
            s.expand("${HOME}/to_hpfx", false).unwrap(),
            "/home/bob/to_hpfx"
        );
        assert_eq!(s.expand("${USER}@${HOSTNAME}", false).unwrap(), "bob@loli");
        assert_eq!(
            s.expand("${COMPONENT}/${CONFIG}", false).unwrap(),
            "sender/to_hpfx"
        );
        assert_eq!(s.expand("xs_${BROKER_USER}", false).unwrap(), "xs_pas037");
    }

    #[test]
    fn instance_variables_stay_literal() {
        let (env, cfg) = scope_cfg();
        let s = VarScope {
            env: &env,
            cfg: &cfg,
        };
        assert_eq!(
            s.expand("q_${INSTANCE}_${RAND8}", false).unwrap(),
            "q_${INSTANCE}_${RAND8}"
        );
    }

    #[test]
    fn message_time_variables_stay_literal_only_where_allowed() {
        let (env, cfg) = scope_cfg();
        let s = VarScope {
            env: &env,
            cfg: &cfg,
        };
        let d = "${HOME}/${YYYYMMDD}/${%H}/${PBD}/${1}";
        assert_eq!(
            s.expand(d, true).unwrap(),
            "/home/bob/${YYYYMMDD}/${%H}/${PBD}/${1}"
        );
        assert!(s.expand("${YYYYMMDD}", false).is_err());
    }

    #[test]
    fn unknown_variable_is_an_error_naming_it() {
        let (env, cfg) = scope_cfg();
        let s = VarScope {
            env: &env,
            cfg: &cfg,
        };
        let err = s.expand("${NOPE}/x", false).unwrap_err();
        assert!(err.contains("${NOPE}"), "{err}");
        let err = s.expand("${POST_BROKER_USER}", false).unwrap_err();
        assert!(err.contains("post_broker"), "{err}");
    }
}
