//! What each implemented keyword does to the config.
//!
//! Values are already `${VAR}`-expanded. Order-sensitive options behave as
//! in sr3: `accept`/`reject` capture the directory, mirror, strip, flatten
//! and filename in force at their line; `subtopic` binds with the broker,
//! exchange and topicPrefix in force at its line. Otherwise the last value
//! wins.

use super::error::redact_text;
use super::finalize::default_exchange;
use super::options::{Binding, Mask, NodupeBasis, QueueType, Strip, Verify};
use super::parser::Parser;
use super::values::*;
use regex::Regex;
use std::time::Duration;
use url::Url;

/// Broker URL schemes pitcher can talk to.
pub(crate) const BROKER_SCHEMES: &[&str] = &["amqp", "amqps", "mqtt", "mqtts", "local"];

impl Parser<'_> {
    /// Apply one line; `written` is the keyword as the user wrote it.
    pub(crate) fn apply(
        &mut self,
        keyword: &str,
        written: &str,
        args: &[String],
    ) -> Result<(), String> {
        if let Some(flag) = self.flag(keyword) {
            let on = match args.first() {
                None => true,
                Some(v) => parse_bool(v)?,
            };
            *flag = on;
            return Ok(());
        }
        match keyword {
            // v2 spellings of `download off`, whatever follows them.
            "no_download" | "notify_only" => {
                self.cfg.download = false;
                return Ok(());
            }
            "debug" => {
                if args.first().map_or(Ok(true), |v| parse_bool(v))? {
                    self.cfg.log_level = "debug".to_string();
                }
                return Ok(());
            }
            _ => {}
        }
        if args.is_empty() {
            return Err(format!("'{written}' needs a value"));
        }
        let joined = args.join(" ");
        match keyword {
            "instances" => self.cfg.instances = self.count(written, args)?,
            "prefetch" => self.cfg.prefetch = self.count(written, args)?,
            "batch" => self.cfg.batch = self.count(written, args)?,
            "attempts" => self.cfg.attempts = self.count(written, args)?,
            "logRotateCount" => self.cfg.log_rotate_count = self.count(written, args)?,
            "retryCountMax" => self.cfg.retry_count_max = self.count(written, args)?,
            "accelThreshold" => self.cfg.accel_threshold = parse_size(self.single(written, args))?,
            "fileSizeMax" => self.cfg.file_size_max = parse_size(self.single(written, args))?,
            "byteRateMax" => self.cfg.byte_rate_max = parse_size(self.single(written, args))?,
            "messageRateMax" => self.cfg.message_rate_max = parse_rate(self.single(written, args))?,
            "housekeeping" => self.cfg.housekeeping = parse_duration(self.single(written, args))?,
            "timeout" => self.cfg.timeout = parse_duration(self.single(written, args))?,
            "fileAgeMin" => self.cfg.file_age_min = parse_duration(self.single(written, args))?,
            "fileAgeMax" => self.cfg.file_age_max = parse_duration(self.single(written, args))?,
            "logRotateInterval" => {
                self.cfg.log_rotate_interval = parse_duration(self.single(written, args))?
            }
            "expire" => self.cfg.expire = optional(parse_duration(self.single(written, args))?),
            "messageAgeMax" => {
                self.cfg.message_age_max = optional(parse_duration(self.single(written, args))?)
            }
            "retry_ttl" => {
                self.cfg.retry_ttl = optional(parse_duration(self.single(written, args))?)
            }
            "sleep" => {
                let v = self.single(written, args);
                // sr3: a negative sleep means one pass, then exit.
                self.cfg.sleep = if v.starts_with('-') {
                    None
                } else {
                    Some(parse_duration(v)?)
                };
            }
            "nodupe_ttl" => {
                let v = self.single(written, args);
                self.cfg.nodupe_ttl = match parse_bool(v) {
                    Ok(true) => super::defaults::NODUPE_TTL_ON,
                    Ok(false) => Duration::ZERO,
                    Err(_) => parse_duration(v).map_err(|_| {
                        format!("expected on, off or a duration such as 300 or 5m, not '{v}'")
                    })?,
                };
            }
            "nodupe_basis" => {
                self.cfg.nodupe_basis = match self.single(written, args) {
                    "path" => NodupeBasis::Path,
                    "name" => NodupeBasis::Name,
                    "data" => NodupeBasis::Data,
                    other => return Err(format!("expected path, name or data, not '{other}'")),
                }
            }
            "permDefault" => self.cfg.perm_default = parse_octal(self.single(written, args))?,
            "permDirDefault" => {
                self.cfg.perm_dir_default = parse_octal(self.single(written, args))?
            }
            "permLog" => self.cfg.perm_log = parse_octal(self.single(written, args))?,
            "fileEvents" => {
                self.cfg.file_events = parse_file_events(&joined, self.cfg.file_events)?
            }
            "inflight" => {
                let (inflight, age) = parse_inflight(self.single(written, args))?;
                self.cfg.inflight = inflight;
                if let Some(age) = age {
                    self.cfg.file_age_min = age;
                }
            }
            "strip" => self.cfg.strip = self.strip(written, args)?,
            "accept" | "reject" => self.mask(keyword == "accept", args)?,
            "subtopic" => self.subtopic(written, args)?,
            "broker" => {
                let url = self.broker_url(&joined)?;
                // sr3 binds each subtopic on the broker in force at its
                // line, and consumes from every broker so bound.
                if !self.cfg.bindings.is_empty() && self.cfg.broker.as_ref() != Some(&url) {
                    return Err("a second broker after subtopic: sr3 would consume from both brokers (each with the subtopics that follow it); pitcher consumes from one broker per config: put this broker and its subtopics in a config of their own".to_string());
                }
                self.cfg.broker = Some(url);
            }
            "post_broker" => self.cfg.post_broker = Some(self.broker_url(&joined)?),
            "report_broker" => self.cfg.report_broker = Some(self.broker_url(&joined)?),
            "report_exchange" => self.cfg.report_exchange = none_if_none(joined),
            "report_topicPrefix" => self.cfg.report_topic_prefix = joined.replace('/', "."),
            "receiptTimeout" => {
                let v = self.single(written, args);
                self.cfg.receipt_timeout = match parse_bool(v) {
                    Ok(false) => Duration::ZERO,
                    Ok(true) => super::defaults::RECEIPT_TIMEOUT,
                    Err(_) => parse_duration(v)?,
                };
            }
            "receiptsFrom" => {
                for r in args {
                    if r.split_once('/').is_none_or(|(c, n)| {
                        super::options::Component::parse(c).is_none() || n.is_empty()
                    }) {
                        return Err(format!(
                            "receiptsFrom names configs as component/config (e.g. sender/to_hpfx), not '{r}'"
                        ));
                    }
                    if !self.cfg.receipts_from.contains(r) {
                        self.cfg.receipts_from.push(r.clone());
                    }
                }
            }
            "sendTo" => self.send_to(&joined)?,
            "exchange" => self.cfg.exchange = none_if_none(joined),
            "exchangeSuffix" => self.cfg.exchange_suffix = none_if_none(joined),
            "post_exchange" => self.cfg.post_exchange = none_if_none(joined),
            "post_exchangeSuffix" => self.cfg.post_exchange_suffix = none_if_none(joined),
            "topicPrefix" => self.cfg.topic_prefix = joined.replace('/', "."),
            "post_topicPrefix" => {
                self.cfg.post_topic_prefix = joined.replace('/', ".");
                self.post_topic_prefix_set = true;
            }
            "queueName" => self.cfg.queue_name = none_if_none(joined),
            "queueShare" => self.cfg.queue_share = joined,
            "source" => self.cfg.source = none_if_none(joined),
            "filename" => self.cfg.filename = none_if_none(joined),
            "flatten" => self.cfg.flatten = joined,
            "directory" => {
                self.cfg.directory = none_if_none(joined).map(|d| self.env.expand_home(&d))
            }
            "baseDir" => self.cfg.base_dir = none_if_none(joined).map(|d| self.env.expand_home(&d)),
            "post_baseDir" => {
                self.cfg.post_base_dir = none_if_none(joined).map(|d| self.env.expand_home(&d))
            }
            "post_baseUrl" => {
                Url::parse(&joined).map_err(|e| {
                    format!("expected a URL such as file:/dir or sftp://host/dir ({e})")
                })?;
                self.cfg.post_base_url = Some(joined);
                self.post_base_url_at = Some(self.here());
            }
            "queueType" => {
                self.cfg.queue_type = match joined.as_str() {
                    "classic" => Some(QueueType::Classic),
                    "quorum" => Some(QueueType::Quorum),
                    "stream" => Some(QueueType::Stream),
                    "None" | "none" => None,
                    other => {
                        return Err(format!("expected classic, quorum or stream, not '{other}'"))
                    }
                }
            }
            "post_format" => {
                self.cfg.post_format = match joined.as_str() {
                    "v02" | "v03" => joined,
                    "wis" => return Err("pitcher publishes v02 and v03, not wis".into()),
                    other => return Err(format!("expected v02 or v03, not '{other}'")),
                }
            }
            "accelScpCommand" => self.cfg.accel_scp_command = joined,
            "checksumCommand" => self.cfg.checksum_command = none_if_none(joined),
            "cleanDirGrace" => {
                self.cfg.clean_dir_grace = parse_duration(self.single(written, args))?
            }
            "verifyDelivery" => {
                self.cfg.verify_delivery =
                    match self.single(written, args).to_ascii_lowercase().as_str() {
                        "off" | "none" | "no" | "false" => Verify::Off,
                        "size" | "on" | "yes" | "true" => Verify::Size,
                        "checksum" | "sum" => Verify::Checksum,
                        other => {
                            return Err(format!("expected off, size or checksum, not '{other}'"))
                        }
                    }
            }
            "accelCpCommand" => self.cfg.accel_cp_command = joined,
            "identity" => self.cfg.identity_method = identity_method(self.single(written, args))?,
            "logLevel" => self.cfg.log_level = log_level(self.single(written, args))?,
            "sshConfig" => {
                self.cfg.ssh_config = none_if_none(joined).map(|p| self.env.expand_home(&p).into())
            }
            "path" => {
                let p = self.env.expand_home(&joined);
                self.cfg.paths.push(p);
            }
            "vip" => self.cfg.vip.push(joined),
            "header" => {
                let (k, v) = joined
                    .split_once('=')
                    .ok_or_else(|| format!("expected header name=value, not '{joined}'"))?;
                self.cfg.headers.push((k.to_string(), v.to_string()));
            }
            "declare" => self.declare(args)?,
            // Every keyword in keywords::IMPLEMENTED has an arm above.
            other => return Err(format!("option '{other}' is not handled (pitcher bug)")),
        }
        Ok(())
    }

    /// The field a flag keyword sets, if `keyword` is a flag.
    fn flag(&mut self, keyword: &str) -> Option<&mut bool> {
        let c = &mut self.cfg;
        Some(match keyword {
            "acceptUnmatched" => &mut c.accept_unmatched,
            "download" => &mut c.download,
            "durable" => &mut c.durable,
            "persistent" => &mut c.persistent,
            "mirror" => &mut c.mirror,
            "timeCopy" => &mut c.time_copy,
            "permCopy" => &mut c.perm_copy,
            "recursive" => &mut c.recursive,
            "force_polling" => &mut c.force_polling,
            "follow_symlinks" => &mut c.follow_symlinks,
            "post_on_start" => &mut c.post_on_start,
            "delete_source" => &mut c.delete_source,
            "report" => &mut c.report,
            _ => return None,
        })
    }

    /// The one value of a single-valued option. sr3 ignores extra words
    /// (which is how a trailing `# comment` silently vanishes there); we
    /// ignore them too, with a warning.
    fn single<'v>(&mut self, written: &str, args: &'v [String]) -> &'v str {
        if args.len() > 1 {
            let extra = redact_text(&args[1..].join(" "));
            self.warn(format!("'{written}' takes one value; ignoring '{extra}' (comments must be on their own line)"));
        }
        &args[0]
    }

    fn count<T: TryFrom<u64>>(&mut self, written: &str, args: &[String]) -> Result<T, String> {
        let v = self.single(written, args);
        let n = parse_count(v)?;
        T::try_from(n).map_err(|_| format!("{v} is too large for '{written}'"))
    }

    fn strip(&mut self, written: &str, args: &[String]) -> Result<Strip, String> {
        let v = self.single(written, args);
        if let Ok(n) = v.parse::<usize>() {
            return Ok(Strip::Count(n));
        }
        // sr3 drops a leading '/': relPaths have none.
        let pattern = v.strip_prefix('/').unwrap_or(v);
        Regex::new(pattern)
            .map(Strip::Pattern)
            .map_err(|e| bad_regex("strip", v, &e))
    }

    fn mask(&mut self, accept: bool, args: &[String]) -> Result<(), String> {
        let pattern = &args[0];
        // Python's re.match anchors at the start only.
        let regex = Regex::new(&format!("^(?:{pattern})"))
            .map_err(|e| bad_regex("regular expression", pattern, &e))?;
        if args.len() > 2 {
            let extra = args[2..].join(" ");
            self.warn(format!("ignoring '{extra}' after the pattern and file name (comments must be on their own line)"));
        }
        let c = &self.cfg;
        let mask = Mask {
            pattern: pattern.clone(),
            regex,
            accept,
            directory: c.directory.clone(),
            mirror: c.mirror,
            strip: c.strip.clone(),
            flatten: c.flatten.clone(),
            filename: args.get(1).cloned().or_else(|| c.filename.clone()),
        };
        self.cfg.masks.push(mask);
        Ok(())
    }

    fn subtopic(&mut self, written: &str, args: &[String]) -> Result<(), String> {
        let subtopic = self.single(written, args).to_string();
        let Some(broker) = &self.cfg.broker else {
            return Err(
                "subtopic needs broker (and exchange, topicPrefix) set on an earlier line"
                    .to_string(),
            );
        };
        // As sr3, the first subtopic fixes the default exchange for good.
        let exchange = self
            .cfg
            .exchange
            .get_or_insert_with(|| default_exchange(broker, self.cfg.exchange_suffix.as_deref()))
            .clone();
        let topic = format!("{}.{}", self.cfg.topic_prefix, subtopic);
        self.cfg.bindings.push(Binding { exchange, topic });
        Ok(())
    }

    /// A broker URL with its password from credentials.conf. An AMQP URL
    /// without a user is `anonymous:anonymous`, as in sr3.
    /// Several nodes (`amqp://user@h1:5682,h2:5683/`) are kept as the
    /// first node's URL with the others aside (see `hosts`); its password
    /// is looked up by the first node.
    fn broker_url(&self, text: &str) -> Result<Url, String> {
        let shown = redact_text(text);
        let known = BROKER_SCHEMES.join(", ");
        let (first, others) =
            match super::hosts::split_hosts(text).map_err(|e| format!("{e}, not '{shown}'"))? {
                Some((first, others)) => (first, others),
                None => (text.to_string(), Vec::new()),
            };
        let url = Url::parse(&first).map_err(|e| {
            format!("expected a broker URL such as amqps://user@host ({e}), not '{shown}'")
        })?;
        if !BROKER_SCHEMES.contains(&url.scheme()) {
            return Err(format!(
                "unknown broker scheme '{}' in '{shown}': expected one of {known}",
                url.scheme()
            ));
        }
        if !others.is_empty() && !url.scheme().starts_with("amqp") {
            return Err(format!(
                "'{shown}' names several hosts: only amqp:// and amqps:// brokers take a host list (the MQTT client connects to one address: name one host, or a load balancer in front of the cluster)"
            ));
        }
        let url = if url.scheme().starts_with("amqp") && url.username().is_empty() {
            let mut anonymous = url;
            // amqp URLs always have a host, so these cannot fail.
            let _ = anonymous.set_username("anonymous");
            let _ = anonymous.set_password(Some("anonymous"));
            anonymous
        } else {
            self.credentials.complete(&url).0
        };
        if others.is_empty() {
            return Ok(url);
        }
        super::hosts::with_failover(url, &others).map_err(|e| format!("{e}, in '{shown}'"))
    }

    fn send_to(&mut self, text: &str) -> Result<(), String> {
        let url = Url::parse(text).map_err(|e| {
            format!(
                "expected a destination URL such as sftp://host/dir or file:/dir ({e}), not '{}'",
                redact_text(text)
            )
        })?;
        if self.cfg.component == super::options::Component::Sender
            && !matches!(url.scheme(), "file" | "sftp")
        {
            self.warn(format!(
                "sendTo {}: pitcher's sender delivers to file: and sftp:// destinations only; with this one it will refuse to start",
                redact_text(text)
            ));
        }
        let (full, details) = self.credentials.complete(&url);
        self.cfg.send_to = Some(text.to_string());
        self.cfg.send_to_url = Some(full);
        self.cfg.send_to_details = details;
        Ok(())
    }

    fn declare(&mut self, args: &[String]) -> Result<(), String> {
        let what = args[0].as_str();
        let value = args
            .get(1)
            .ok_or_else(|| format!("'declare {what}' needs a value"))?;
        match what {
            "env" | "envvar" | "var" | "value" => {
                let (name, v) = value
                    .split_once('=')
                    .ok_or_else(|| format!("expected declare env NAME=VALUE, not '{value}'"))?;
                self.env.set_var(name, v);
                self.cfg.env.push((name.to_string(), v.to_string()));
            }
            "exchange" => self.cfg.declared_exchanges.push(value.clone()),
            "source" | "subscriber" | "subscribe" | "option" | "o" => {
                self.warn(format!(
                    "'declare {what}' is an sr3 option pitcher does not implement; line ignored"
                ));
            }
            other => {
                return Err(format!(
                    "expected declare env, exchange, source or subscriber, not '{other}'"
                ))
            }
        }
        Ok(())
    }
}

fn optional(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

fn none_if_none(v: String) -> Option<String> {
    (v != "None").then_some(v)
}

fn bad_regex(what: &str, pattern: &str, e: &regex::Error) -> String {
    let reason = e
        .to_string()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid")
        .trim()
        .to_string();
    format!("invalid {what} '{pattern}': {reason} (Rust regex syntax: no look-around or backreferences)")
}

/// sr3's identity methods, with its v2 one-letter forms.
fn identity_method(v: &str) -> Result<String, String> {
    let base = |m: &str| -> Option<&'static str> {
        Some(match m {
            "s" | "sha512" => "sha512",
            "d" | "md5" => "md5",
            "n" | "none" => "none",
            "r" | "0" | "random" => "random",
            "arbitrary" => "arbitrary",
            "md5name" => "md5name",
            _ => return None,
        })
    };
    if let Some(m) = base(v) {
        return Ok(m.to_string());
    }
    if v.starts_with("a,") {
        return Ok("arbitrary".to_string());
    }
    if let Some(inner) = v.strip_prefix("cod,").or_else(|| v.strip_prefix("z,")) {
        if let Some(m) = base(inner).filter(|m| *m != "none") {
            return Ok(format!("cod,{m}"));
        }
        if matches!(inner, "n" | "none") {
            return Ok("none".to_string());
        }
    }
    Err(format!("expected an identity method: sha512, md5, none, random, arbitrary or cod,<method>; not '{v}'"))
}

fn log_level(v: &str) -> Result<String, String> {
    Ok(match v.to_ascii_lowercase().as_str() {
        "debug" => "debug",
        "info" => "info",
        "warning" | "warn" => "warning",
        "error" => "error",
        "critical" => "critical",
        // sr3 maps v2's `none` to critical (there is no "none" level).
        "none" => "critical",
        _ => {
            return Err(format!(
                "expected debug, info, warning, error or critical, not '{v}'"
            ))
        }
    }
    .to_string())
}
