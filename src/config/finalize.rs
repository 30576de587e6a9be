//! After the last line: the defaults that depend on other options, and
//! the options each component cannot run without.
//!
//! As sr3's `Config.finalize`: the consumed exchange defaults to
//! `xs_<brokerUser>` (+ `_<exchangeSuffix>`), `xpublic` for anonymous;
//! the posted exchange likewise for post_broker (+ `_<post_exchangeSuffix>`);
//! one `<topicPrefix>.#` binding when no `subtopic` was given;
//! post_topicPrefix follows topicPrefix; post_baseDir comes from a `file:`
//! or `sftp:` post_baseUrl, else baseDir; retry_ttl follows expire; source is
//! the post_broker (else broker) user.

use super::env::Environment;
use super::error::ConfigError;
use super::options::{Binding, Component, Config, QueueType};
use url::Url;

/// sr3's default exchange for a broker user: `xs_<user>`, or `xpublic`
/// for anonymous (and the local broker), then `_<suffix>`.
pub(crate) fn default_exchange(broker: &Url, suffix: Option<&str>) -> String {
    let user = broker.username();
    let base = if user.is_empty() || user == "anonymous" {
        "xpublic".to_string()
    } else {
        format!("xs_{user}")
    };
    match suffix {
        Some(s) => format!("{base}_{s}"),
        None => base,
    }
}

/// sr3's default report exchange for a broker user (flowcb/report.py):
/// `xr_<user>`; `xreport` for a URL without a user (`local:`, an MQTT
/// broker without one). sr3 also picks `xreport` for users it knows as
/// feeders or admins; pitcher does not know roles: set report_exchange.
pub(crate) fn default_report_exchange(broker: &Url) -> String {
    match broker.username() {
        "" => "xreport".to_string(),
        user => format!("xr_{user}"),
    }
}

/// Fill in the derived defaults, then check required options. `shown`
/// names the config file in errors.
pub(crate) fn finalize(
    cfg: &mut Config,
    post_topic_prefix_set: bool,
    env: &Environment,
    shown: &str,
) -> Result<(), ConfigError> {
    if let Some(broker) = &cfg.broker {
        if cfg.exchange.is_none() {
            cfg.exchange = Some(default_exchange(broker, cfg.exchange_suffix.as_deref()));
        }
        if cfg.bindings.is_empty() {
            let exchange = cfg.exchange.clone().unwrap_or_default();
            cfg.bindings.push(Binding {
                exchange,
                topic: format!("{}.#", cfg.topic_prefix),
            });
        }
    }
    if let Some(post_broker) = &cfg.post_broker {
        let base = match cfg.post_exchange.take() {
            Some(x) => x,
            None => default_exchange(post_broker, None),
        };
        cfg.post_exchange = Some(match &cfg.post_exchange_suffix {
            Some(s) => format!("{base}_{s}"),
            None => base,
        });
    }
    if !post_topic_prefix_set {
        // sr3 3.3.1 publishes every v02 message under v02.post.
        cfg.post_topic_prefix = if cfg.post_format == "v02" {
            crate::message::v02::TOPIC_PREFIX.to_string()
        } else {
            cfg.topic_prefix.clone()
        };
    }
    if cfg.post_base_dir.is_none() {
        cfg.post_base_dir = derived_post_base_dir(cfg);
    }
    if cfg.retry_ttl.is_none() {
        cfg.retry_ttl = cfg.expire;
    }
    if cfg.report_broker.is_none() {
        cfg.report_broker = cfg.broker.clone();
    }
    if cfg.report_exchange.is_none() {
        // A watch reads receipts where its receivers report: on its
        // post_broker, in the exchange of that broker's user.
        let on = match cfg.component {
            Component::Watch => cfg.post_broker.as_ref(),
            _ => cfg.report_broker.as_ref(),
        };
        cfg.report_exchange = on.map(default_report_exchange);
    }
    if cfg.source.is_none() {
        cfg.source = [&cfg.post_broker, &cfg.broker]
            .into_iter()
            .flatten()
            .map(|u| u.username())
            .find(|u| !u.is_empty())
            .map(str::to_string);
    }
    if cfg.ssh_config.is_none() {
        cfg.ssh_config = env
            .var("PITCHER_SSH_CONFIG")
            .filter(|p| !p.is_empty())
            .map(Into::into);
    }
    if let (Some(t), Some(b)) = (cfg.queue_type, &cfg.broker) {
        if !matches!(b.scheme(), "amqp" | "amqps") {
            cfg.warnings.push(format!(
                "{shown}: queueType {} applies to RabbitMQ queues only; ignored for a {}: broker",
                t.name(),
                b.scheme()
            ));
        }
    }
    check_required(cfg, shown)
}

/// post_baseDir when not given: the path of a `file:` or `sftp:`
/// post_baseUrl, else baseDir.
fn derived_post_base_dir(cfg: &Config) -> Option<String> {
    match cfg.post_base_url.as_deref() {
        Some(u) if u.starts_with("file:") => {
            let path = &u[5..];
            // `file:///x` and `file:/x` both mean /x.
            let trimmed = path.trim_start_matches('/');
            Some(if path.is_empty() {
                String::new()
            } else {
                format!("/{trimmed}")
            })
        }
        Some(u) if u.starts_with("sftp:") => Url::parse(u).ok().map(|url| sftp_path(&url)),
        _ => cfg.base_dir.clone(),
    }
}

/// The path an `sftp:` URL names, as sr3 3.3.1 reads it
/// (`sarracenia.baseUrlParse`): absolute, with a leading `//` collapsed
/// (`sftp://h/x` and `sftp://h//x` are both `/x`); empty when the URL has
/// no path.
pub fn sftp_path(url: &Url) -> String {
    let p = url.path();
    match p.trim_start_matches('/') {
        rest if p.is_empty() => rest.to_string(),
        rest => format!("/{rest}"),
    }
}

/// A warning (naming `at`, the post_baseUrl line) when an `sftp:`
/// post_baseUrl and post_baseDir do not name the same directory: what this
/// config announces (post_baseUrl + a relPath under post_baseDir) would
/// then send a downstream sr3 — and pitcher — to a path that is not where
/// the file is.
pub(crate) fn post_base_mismatch(cfg: &Config, at: &str) -> Option<String> {
    let text = cfg.post_base_url.as_deref()?;
    let url = Url::parse(text).ok().filter(|u| u.scheme() == "sftp")?;
    let dir = cfg.post_base_dir.as_deref()?.trim_end_matches('/');
    let named = sftp_path(&url);
    if named.trim_end_matches('/') == dir || dir.is_empty() {
        return None;
    }
    let shown = |u: &Url| crate::config::redact_text(u.as_str());
    let mut fixed = url.clone();
    fixed.set_path(dir);
    Some(format!(
        "{at}: post_baseUrl {} names {}, but post_baseDir is {dir}: sr3 reads an sftp URL's path as absolute, so a downstream sr3 (or pitcher) subscriber will look for {}/<relPath> and not find the files; write post_baseUrl {}",
        shown(&url),
        if named.is_empty() { "the login directory" } else { &named },
        named.trim_end_matches('/'),
        shown(&fixed),
    ))
}

/// The options without which `cfg.component` cannot run.
fn check_required(cfg: &Config, shown: &str) -> Result<(), ConfigError> {
    use Component::*;
    let mut missing: Vec<&str> = Vec::new();
    // flow, cpost and cpump configs are free-form: nothing is required.
    let consumes = matches!(cfg.component, Sender | Subscribe | Shovel | Sarra | Winnow);
    let posts = matches!(cfg.component, Watch | Post | Poll | Shovel | Sarra | Winnow);
    if consumes && cfg.broker.is_none() {
        missing.push("broker (where messages come from)");
    }
    if posts && cfg.post_broker.is_none() {
        missing.push("post_broker (where messages go)");
    }
    if cfg.component == Sender && cfg.send_to.is_none() {
        missing.push("sendTo (where files go, e.g. sftp://host)");
    }
    if cfg.component == Watch && cfg.paths.is_empty() {
        missing.push("path (the directory to watch)");
    }
    if let Some(t) = cfg.queue_type.filter(|t| *t != QueueType::Classic) {
        if !cfg.durable {
            return Err(ConfigError::file(
                shown,
                format!(
                    "queueType {} needs durable on: RabbitMQ keeps {} queues on disk and refuses transient ones",
                    t.name(),
                    t.name()
                ),
            ));
        }
    }
    let mask_dirs = cfg.masks.iter().any(|m| m.accept && m.directory.is_some());
    if cfg.component == Subscribe && cfg.download && cfg.directory.is_none() && !mask_dirs {
        missing.push("directory (where downloaded files go)");
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(ConfigError::file(
        shown,
        format!("a {} config needs {}", cfg.component, missing.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn default_exchange_is_per_user_or_xpublic() {
        assert_eq!(default_exchange(&url("amqps://bob@h"), None), "xs_bob");
        assert_eq!(
            default_exchange(&url("amqps://bob@h"), Some("s")),
            "xs_bob_s"
        );
        assert_eq!(
            default_exchange(&url("amqps://anonymous@h"), None),
            "xpublic"
        );
        assert_eq!(default_exchange(&url("local:"), None), "xpublic");
    }

    #[test]
    fn reports_default_to_the_consumed_broker_and_its_users_exchange() {
        let env = Environment::new([("HOME", "/h")], "h");
        let mut c = Config::new(Component::Sender, "s");
        assert!(c.report, "senders report by default");
        c.broker = Some(url("amqps://bob:pw@h"));
        c.send_to = Some("file:".into());
        finalize(&mut c, false, &env, "sender/s.conf").unwrap();
        assert_eq!(c.report_broker, c.broker);
        assert_eq!(c.report_exchange.as_deref(), Some("xr_bob"));
        let mut w = Config::new(Component::Watch, "w");
        assert!(!w.report);
        assert_eq!(w.receipt_timeout, std::time::Duration::from_secs(300));
        w.post_broker = Some(url("local:"));
        w.paths.push("/h/hot".into());
        finalize(&mut w, false, &env, "watch/w.conf").unwrap();
        assert_eq!(w.report_exchange.as_deref(), Some("xreport"));
        assert!(Config::new(Component::Subscribe, "s").report);
        assert!(!Config::new(Component::Shovel, "s").report);
    }

    #[test]
    fn post_base_dir_comes_from_a_file_url() {
        let mut c = Config::new(Component::Watch, "w");
        c.post_base_url = Some("file:/home/bob/to_hpfx".into());
        assert_eq!(
            derived_post_base_dir(&c).as_deref(),
            Some("/home/bob/to_hpfx")
        );
        c.post_base_url = Some("file:".into());
        assert_eq!(derived_post_base_dir(&c).as_deref(), Some(""));
        c.post_base_url = Some("file:///x/y".into());
        assert_eq!(derived_post_base_dir(&c).as_deref(), Some("/x/y"));
        c.post_base_url = Some("sftp://u@h/on_hpfx".into());
        assert_eq!(derived_post_base_dir(&c).as_deref(), Some("/on_hpfx"));
        c.post_base_url = Some("http://h/x".into());
        c.base_dir = Some("/b".into());
        assert_eq!(derived_post_base_dir(&c).as_deref(), Some("/b"));
    }

    #[test]
    fn missing_required_options_name_the_file_and_all_that_is_missing() {
        let env = Environment::new([("HOME", "/h")], "h");
        let mut c = Config::new(Component::Sender, "s");
        let err = finalize(&mut c, false, &env, "sender/s.conf").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("sender/s.conf: a sender config needs broker"),
            "{err}"
        );
        assert!(err.message.contains("sendTo"));
        let mut c = Config::new(Component::Watch, "w");
        let err = finalize(&mut c, false, &env, "watch/w.conf").unwrap_err();
        assert!(
            err.message.contains("post_broker") && err.message.contains("path"),
            "{err}"
        );
        let mut c = Config::new(Component::Subscribe, "s");
        c.broker = Some(url("amqps://anonymous:anonymous@h"));
        let err = finalize(&mut c, false, &env, "subscribe/s.conf").unwrap_err();
        assert!(err.message.contains("directory"), "{err}");
    }

    #[test]
    fn ssh_config_defaults_from_the_environment() {
        let env = Environment::new([("PITCHER_SSH_CONFIG", "/t/ssh_config")], "h");
        let mut c = Config::new(Component::Post, "p");
        c.post_broker = Some(url("local:"));
        finalize(&mut c, false, &env, "post/p.conf").unwrap();
        assert_eq!(
            c.ssh_config.as_deref(),
            Some(std::path::Path::new("/t/ssh_config"))
        );
        assert_eq!(c.post_exchange.as_deref(), Some("xpublic"));
    }
}
