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
//! * in `directory`, `post_baseDir`, `baseDir` and `rename`, the dates
//!   (`${YYYYMMDD}`, `${%Y}`, …), which [`super::expand_time_vars`]
//!   expands per file.
//!
//! sr3 also fills in, per message, `${SOURCE}`, `${BUP}`, `${BUPL}`,
//! `${PBD}`, `${BD}`, `${DR}`, `${PDR}` and regex groups `${1}` (and
//! dates in post_baseUrl). pitcher's flows do not, so a config using one
//! would put files somewhere else than sr3 does: that is an error naming
//! the variable and what it stands for, not a literal `${SOURCE}`
//! directory.
//!
//! Unlike sr3, which leaves an unknown variable in place (and then fails
//! in a puzzling way later), an unknown variable is an error.

use super::env::Environment;
use super::options::Config;
use super::timevars::is_time_var;

/// Variables an instance or the queue-name logic expands later.
const KEPT_FOR_INSTANCE: &[&str] = &["INSTANCE", "RAND8", "QUEUESHARE"];

/// Variables sr3 fills in per message (besides dates and regex groups),
/// and what each stands for there. pitcher's flows expand none of them.
const PER_MESSAGE: &[(&str, &str)] = &[
    ("PBD", "post_baseDir's value"),
    ("BD", "baseDir's value"),
    ("BUP", "the path of each message's baseUrl"),
    ("BUPL", "the last directory of each message's baseUrl path"),
    ("baseUrlPath", "the path of each message's baseUrl"),
    (
        "baseUrlPathLast",
        "the last directory of each message's baseUrl path",
    ),
    ("SOURCE", "each message's source"),
    ("DR", "documentRoot's value"),
    ("PDR", "post_documentRoot's value"),
];

/// What the per-message variable `name` stands for in sr3, if it is one.
fn per_message(name: &str) -> Option<String> {
    if let Some((_, what)) = PER_MESSAGE.iter().find(|(n, _)| *n == name) {
        return Some(what.to_string());
    }
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_digit()))
        .then(|| format!("group {name} of the accept pattern that matched"))
}

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
        let date = is_time_var(name);
        if message_time && date {
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
        if let Some(what) = per_message(name) {
            return Err(format!(
                "${{{name}}} is {what}, which sr3 fills in per message; pitcher does not (it expands only dates such as ${{YYYYMMDD}}, in directory, post_baseDir and baseDir): write the value itself"
            ));
        }
        if date {
            return Err(format!(
                "${{{name}}} is a date sr3 fills in per message; pitcher does so only in directory, post_baseDir and baseDir: write the value itself here"
            ));
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
        let d = "${HOME}/${YYYYMMDD}/${%H}";
        assert_eq!(s.expand(d, true).unwrap(), "/home/bob/${YYYYMMDD}/${%H}");
        let err = s.expand("${YYYYMMDD}", false).unwrap_err();
        assert!(err.contains("a date sr3 fills in per message"), "{err}");
    }

    /// sr3 fills these in per message; pitcher's flows do not, so a
    /// directory naming one would be wrong: an error saying what it is.
    #[test]
    fn per_message_variables_pitcher_does_not_expand_are_errors_saying_what_they_are() {
        let (env, mut cfg) = scope_cfg();
        let s = VarScope {
            env: &env,
            cfg: &cfg,
        };
        for (var, what) in [
            ("${SOURCE}", "each message's source"),
            (
                "${BUPL}",
                "the last directory of each message's baseUrl path",
            ),
            ("${PBD}", "post_baseDir's value"),
            ("${1}", "group 1 of the accept pattern"),
        ] {
            for message_time in [true, false] {
                let err = s.expand(&format!("/d/{var}"), message_time).unwrap_err();
                assert!(err.starts_with(&format!("{var} is {what}")), "{err}");
                assert!(
                    err.contains("sr3 fills in per message; pitcher does not"),
                    "{err}"
                );
            }
        }
        // As sr3 at parse time: an option of that name comes first.
        cfg.source = Some("metpx".into());
        let s = VarScope {
            env: &env,
            cfg: &cfg,
        };
        assert_eq!(s.expand("/d/${SOURCE}", true).unwrap(), "/d/metpx");
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
