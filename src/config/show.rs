//! `show`: the effective options of a config, one `keyword value` line
//! each, with sr3's keyword names and every password replaced by `***`.

use super::error::{redact_text, redact_url};
use super::options::{Config, NodupeBasis, Strip, Verify};
use super::values::{duration_text, file_events_text, inflight_text};
use std::fmt::Display;
use std::time::Duration;

impl Config {
    /// The effective options as `keyword value` lines (sr3 keyword names,
    /// passwords as `***`), in the order a config is usually written.
    pub fn show(&self) -> String {
        let mut out = Lines(String::new());
        let on = |b: bool| if b { "on" } else { "off" };
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "None".to_string());
        let dur = |d: &Option<Duration>| d.map_or_else(|| "None".to_string(), duration_text);
        let url = |u: &Option<url::Url>| u.as_ref().map_or_else(|| "None".to_string(), redact_url);

        out.add("broker", url(&self.broker));
        out.add("exchange", opt(&self.exchange));
        out.add("exchangeSuffix", opt(&self.exchange_suffix));
        out.add("topicPrefix", &self.topic_prefix);
        for b in &self.bindings {
            out.add("bindings", format!("{} {}", b.exchange, b.topic));
        }
        out.add("queueName", opt(&self.queue_name));
        out.add("queueShare", &self.queue_share);
        out.add("prefetch", self.prefetch);
        out.add("batch", self.batch);
        out.add("expire", dur(&self.expire));
        out.add("messageAgeMax", dur(&self.message_age_max));
        out.add("durable", on(self.durable));
        out.add("persistent", on(self.persistent));

        out.add("post_broker", url(&self.post_broker));
        out.add("post_exchange", opt(&self.post_exchange));
        out.add("post_exchangeSuffix", opt(&self.post_exchange_suffix));
        out.add("post_topicPrefix", &self.post_topic_prefix);
        out.add(
            "post_baseUrl",
            opt(&self.post_base_url.as_deref().map(redact_text)),
        );
        out.add("post_baseDir", opt(&self.post_base_dir));
        out.add("post_format", &self.post_format);

        out.add("sendTo", opt(&self.send_to.as_deref().map(redact_text)));
        for p in &self.paths {
            out.add("path", p);
        }
        out.add("directory", opt(&self.directory));
        out.add("baseDir", opt(&self.base_dir));
        out.add("mirror", on(self.mirror));
        out.add("strip", strip_text(&self.strip));
        out.add("flatten", &self.flatten);
        out.add("filename", opt(&self.filename));
        self.show_masks(&mut out);
        out.add("acceptUnmatched", on(self.accept_unmatched));
        out.add("download", on(self.download));
        out.add("inflight", inflight_text(&self.inflight));
        out.add("accelThreshold", self.accel_threshold);
        out.add("accelScpCommand", &self.accel_scp_command);
        out.add("accelCpCommand", &self.accel_cp_command);
        out.add("timeCopy", on(self.time_copy));
        out.add("permCopy", on(self.perm_copy));
        out.add("permDefault", format!("{:o}", self.perm_default));
        out.add("permDirDefault", format!("{:o}", self.perm_dir_default));
        out.add("permLog", format!("{:o}", self.perm_log));
        out.add("fileEvents", file_events_text(&self.file_events));
        out.add("identity", &self.identity_method);
        out.add("fileSizeMax", self.file_size_max);
        out.add("byteRateMax", self.byte_rate_max);
        out.add("messageRateMax", self.message_rate_max);
        out.add(
            "sshConfig",
            self.ssh_config
                .as_ref()
                .map_or_else(|| "None".to_string(), |p| p.display().to_string()),
        );
        out.add("delete_source", on(self.delete_source));
        out.add(
            "verifyDelivery",
            match self.verify_delivery {
                Verify::Off => "off",
                Verify::Size => "size",
                Verify::Checksum => "checksum",
            },
        );
        out.add(
            "checksumCommand",
            self.checksum_command.as_deref().unwrap_or("None"),
        );
        out.add("cleanDirGrace", duration_text(self.clean_dir_grace));

        out.add("recursive", on(self.recursive));
        out.add("force_polling", on(self.force_polling));
        out.add("follow_symlinks", on(self.follow_symlinks));
        out.add("post_on_start", on(self.post_on_start));
        out.add("fileAgeMin", duration_text(self.file_age_min));
        out.add("fileAgeMax", duration_text(self.file_age_max));

        out.add("nodupe_ttl", duration_text(self.nodupe_ttl));
        out.add("nodupe_basis", basis_text(self.nodupe_basis));
        out.add("retry_ttl", dur(&self.retry_ttl));
        out.add("retryCountMax", self.retry_count_max);
        out.add("attempts", self.attempts);
        out.add("timeout", duration_text(self.timeout));
        // sr3 writes a one-pass sleep as -1.
        out.add(
            "sleep",
            self.sleep.map_or_else(|| "-1".to_string(), duration_text),
        );
        out.add("housekeeping", duration_text(self.housekeeping));
        out.add("instances", self.instances);
        for v in &self.vip {
            out.add("vip", v);
        }
        out.add("source", opt(&self.source));
        for (k, v) in &self.headers {
            out.add("header", format!("{k}={v}"));
        }
        for (k, v) in &self.env {
            out.add("declare", format!("env {k}={v}"));
        }
        for x in &self.declared_exchanges {
            out.add("declare", format!("exchange {x}"));
        }
        out.add("report", on(self.report));
        out.add("report_broker", url(&self.report_broker));
        out.add("report_exchange", opt(&self.report_exchange));
        out.add("report_topicPrefix", &self.report_topic_prefix);
        out.add("receiptTimeout", duration_text(self.receipt_timeout));
        if !self.receipts_from.is_empty() {
            out.add("receiptsFrom", self.receipts_from.join(" "));
        }
        out.add("logLevel", &self.log_level);
        out.add("logRotateInterval", duration_text(self.log_rotate_interval));
        out.add("logRotateCount", self.log_rotate_count);
        out.0
    }
}

struct Lines(String);

impl Lines {
    fn add(&mut self, keyword: &str, value: impl Display) {
        self.0.push_str(&format!("{keyword} {value}\n"));
    }
}

fn strip_text(s: &Strip) -> String {
    match s {
        Strip::Count(n) => n.to_string(),
        Strip::Pattern(r) => r.as_str().to_string(),
    }
}

fn basis_text(b: NodupeBasis) -> &'static str {
    match b {
        NodupeBasis::Path => "path",
        NodupeBasis::Name => "name",
        NodupeBasis::Data => "data",
    }
}

impl Config {
    /// The masks, each preceded by the destination options that changed
    /// since the line above, so the text reads (and parses) with sr3's
    /// meaning: a mask takes the options in force at its line.
    fn show_masks(&self, out: &mut Lines) {
        let on = |b: bool| if b { "on" } else { "off" };
        let mut directory = self.directory.clone();
        let mut mirror = self.mirror;
        let mut strip = strip_text(&self.strip);
        let mut flatten = self.flatten.clone();
        for m in &self.masks {
            if m.directory != directory {
                directory = m.directory.clone();
                out.add("directory", directory.as_deref().unwrap_or("None"));
            }
            if m.mirror != mirror {
                mirror = m.mirror;
                out.add("mirror", on(mirror));
            }
            if strip_text(&m.strip) != strip {
                strip = strip_text(&m.strip);
                out.add("strip", &strip);
            }
            if m.flatten != flatten {
                flatten = m.flatten.clone();
                out.add("flatten", &flatten);
            }
            let keyword = if m.accept { "accept" } else { "reject" };
            match &m.filename {
                Some(f) => out.add(keyword, format!("{} {f}", m.pattern)),
                None => out.add(keyword, &m.pattern),
            }
        }
    }
}
