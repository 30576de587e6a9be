//! What each keyword pitcher implements means: one line of meaning and one
//! of default per keyword, for the `pitcher-options(5)` man page
//! (`pitcher generate man`).
//!
//! The keywords are the parser's own table, [`super::keywords::IMPLEMENTED`];
//! a unit test checks the two lists hold the same keywords, so a keyword
//! cannot be parsed without being documented here, nor documented without
//! being parsed. Meanings are sr3's (sr3_options(7)) unless they say
//! otherwise; a keyword pitcher reads but does not act on yet says so.

/// The documentation of one keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeywordDoc {
    /// The keyword, as in the parser's table.
    pub keyword: &'static str,
    /// What its value looks like (`on|off`, `size`, `duration`, `URL`…).
    pub value: &'static str,
    /// What it does, in one line.
    pub meaning: &'static str,
    /// Its default, in one line.
    pub default: &'static str,
}

const fn d(
    keyword: &'static str,
    value: &'static str,
    meaning: &'static str,
    default: &'static str,
) -> KeywordDoc {
    KeywordDoc {
        keyword,
        value,
        meaning,
        default,
    }
}

/// The meaning of a keyword pitcher reads but does not act on yet, said
/// the same way for each.
macro_rules! not_yet {
    ($meaning:literal) => {
        concat!(
            $meaning,
            "; read and shown by pitcher show, but pitcher does not act on it yet."
        )
    };
}

/// One entry per implemented keyword, sorted as the parser's table.
#[rustfmt::skip]
const DOCS: &[KeywordDoc] = &[
    d("accelCpCommand", "command",
      not_yet!("Command sr3 uses to copy large local files (%s source, %d destination); pitcher copies file: deliveries itself"),
      "/usr/bin/cp %s %d"),
    d("accelScpCommand", "command",
      "Command a sender runs for files of accelThreshold bytes or more to an sftp:// destination (%s source, %d destination; split on spaces, no shell); pitcher adds the instance's SSH control socket so it reuses the connection.",
      "/usr/bin/scp %s %d"),
    d("accelThreshold", "size",
      "Files at least this big go through accelScpCommand instead of the instance's SFTP connection; 0 turns acceleration off.",
      "0 (off)"),
    d("accept", "regex [filename]",
      "Process the paths (relPaths) this regular expression matches from their start; the first accept or reject that matches decides, with the directory, mirror, strip, flatten and filename in force at its line.",
      "none (see acceptUnmatched)"),
    d("acceptUnmatched", "on|off",
      "What happens to a path no accept or reject matches: on processes it, off drops it.",
      "on"),
    d("attempts", "count",
      not_yet!("How many times sr3 tries a transfer before queueing it for retry (pitcher queues a failed transfer for retry at once)"),
      "3"),
    d("baseDir", "directory",
      "The local directory that the relPaths of messages (and of a post or watch with file: baseUrls) are relative to.",
      "none"),
    d("batch", "count",
      "How many messages an instance takes from the broker (and a post or watch publishes) at a time.",
      "25"),
    d("broker", "URL",
      "Where messages are consumed: amqp[s]://user@host[:port]/[vhost], mqtt[s]://user@host[:port] or local: (pitcher's embedded queue); passwords come from credentials.conf.",
      "none (required by sender, subscribe and the other consuming components)"),
    d("byteRateMax", "size",
      "The most bytes per second an instance transfers; 0 is no limit.",
      "0 (no limit)"),
    d("checksumCommand", "command",
      "(pitcher's own) With verifyDelivery checksum, the command run at an sftp:// destination over ssh to checksum a delivered file; the first word of its output is the hex digest.",
      "sha512sum or md5sum, after the identity method"),
    d("cleanDirGrace", "duration",
      "(pitcher's own) How long a source directory emptied by delete_source stays before it is removed; 0 never removes directories.",
      "300 (5 minutes)"),
    d("debug", "[on|off]",
      "Shorthand for logLevel debug.",
      "off"),
    d("declare", "env NAME=VALUE | exchange NAME",
      "declare env exports a variable to the config's later lines and to its instances; declare exchange names an extra exchange (read and shown, not declared yet); declare source and subscriber are sr3 admin options, skipped with a warning.",
      "none"),
    d("delete_source", "on|off",
      "A sender removes the local file once it is delivered and verified (see verifyDelivery), unless it changed since it was announced.",
      "off"),
    d("directory", "directory",
      "Where a subscribe writes what it downloads and a sender with sendTo file: writes what it delivers; date variables (${YYYYMMDD}…) are expanded per file. Applies to the accept lines that follow it.",
      "none"),
    d("download", "on|off",
      "Whether the component transfers files; off only relays the messages.",
      "on for sender, sarra and subscribe; off otherwise"),
    d("durable", "on|off",
      "The queue survives a broker restart (AMQP durable queue; MQTT persistent session).",
      "on"),
    d("exchange", "name",
      "The exchange consumed from (bound with each subtopic).",
      "xs_<broker user>[_<exchangeSuffix>]; xpublic for anonymous and local:"),
    d("exchangeSuffix", "text",
      "Appended to the default exchange name: xs_<broker user>_<suffix>.",
      "none"),
    d("expire", "duration",
      "How long the broker keeps the queue once nobody consumes from it (AMQP x-expires); also the default retry_ttl.",
      "none (kept)"),
    d("fileAgeMax", "duration",
      not_yet!("A watch or poll ignores files last modified longer ago than this"),
      "0 (none); 30 days in a poll"),
    d("fileAgeMin", "duration",
      not_yet!("A watch announces only files last modified at least this long ago (inflight <duration> sets it)"),
      "0"),
    d("fileEvents", "list",
      "Which file events are announced and acted on: some of create, delete, link, mkdir, modify, rmdir; +list adds, -list removes, all or None.",
      "all"),
    d("fileSizeMax", "size",
      not_yet!("Files bigger than this are not transferred"),
      "0 (no limit)"),
    d("filename", "text",
      "A fixed name for the files the accept lines that follow it take, instead of the announced name.",
      "none (the announced name)"),
    d("flatten", "text",
      "With mirror off, the relPath's directories are joined into the file name with this string (with / they are dropped). Applies to the accept lines that follow it.",
      "/"),
    d("follow_symlinks", "on|off",
      not_yet!("A watch follows symbolic links to directories and watches what they point to"),
      "off"),
    d("force_polling", "on|off",
      not_yet!("A watch finds changes by scanning its paths instead of through inotify (for network file systems)"),
      "off"),
    d("header", "name=value",
      not_yet!("A header added to every message posted"),
      "none"),
    d("housekeeping", "duration",
      "How often an instance expires old entries of its retry queue (retry_ttl) and duplicate cache (nodupe_ttl) and logs a housekeeping: line.",
      "300 (5 minutes)"),
    d("identity", "method",
      "How files are identified in messages: sha512, md5, cod,<method> (the receiver calculates), arbitrary, random or none.",
      "sha512; cod,sha512 in a poll"),
    d("include", "file",
      "Read another config file here: an absolute path, else one in the config's component directory, else in the config directory.",
      "none"),
    d("inflight", ".suffix | . | dir/ | umask | duration | None",
      "How a file is written at the destination before it is complete: as name.suffix, .name or dir/name then renamed into place, or under its name with its permissions set last (umask); a duration sets fileAgeMin instead.",
      "None"),
    d("instances", "count",
      "How many processes run the config; consumers share the config's queue.",
      "1"),
    d("logLevel", "level",
      "The least severe messages logged: debug, info, warning, error or critical.",
      "info"),
    d("logRotateCount", "count",
      "How many rotated log files are kept.",
      "5"),
    d("logRotateInterval", "duration",
      "How often an instance's log file is rotated.",
      "1d"),
    d("messageAgeMax", "duration",
      "Messages older than this are dropped by the broker (AMQP x-message-ttl on the queue).",
      "none"),
    d("messageRateMax", "number",
      not_yet!("Messages per second an instance may process; 0 is no limit"),
      "0 (no limit)"),
    d("mirror", "on|off",
      "Keep the relPath's directories at the destination; off writes files flat (see flatten). Applies to the accept lines that follow it.",
      "on; off in subscribe"),
    d("nodupe_basis", "path|name|data",
      "What makes two messages duplicates: the same path, the same file name, or the same content whatever the name.",
      "path"),
    d("nodupe_ttl", "on|off|duration",
      "How long a file announced (or handled) is remembered so an unchanged repeat is dropped as a duplicate; on is 300 s, off or 0 remembers nothing.",
      "off; 5m in a winnow; 7h in a poll"),
    d("path", "path",
      "A file or directory a watch watches, or a post announces (once per path line).",
      "none (required by watch and post)"),
    d("permCopy", "on|off",
      "Copy the source file's permission bits to the destination and into messages (mode).",
      "on"),
    d("permDefault", "octal mode",
      "The permissions of delivered files when permCopy is off; 0 leaves them as created (umask).",
      "0 (umask); 400 in a poll"),
    d("permDirDefault", "octal mode",
      "The permissions of directories created at the destination.",
      "775"),
    d("permLog", "octal mode",
      not_yet!("The permissions of the log files"),
      "600"),
    d("persistent", "on|off",
      "Messages published are marked persistent (AMQP delivery mode 2), surviving a broker restart.",
      "on"),
    d("post_baseDir", "directory",
      "The directory the relPaths of announced files are relative to: the part of each path removed before it is announced.",
      "the path of a file: or sftp: post_baseUrl, else baseDir"),
    d("post_baseUrl", "URL",
      "The baseUrl of announced files, where others fetch them: file:/dir, sftp://user@host/dir, https://host/dir.",
      "none (required to announce)"),
    d("post_broker", "URL",
      "Where messages are published (the same forms as broker).",
      "none (nothing is announced)"),
    d("post_exchange", "name",
      "The exchange announcements are published to.",
      "xs_<post_broker user>[_<post_exchangeSuffix>]; xpublic for anonymous and local:"),
    d("post_exchangeSuffix", "text",
      "Appended to the post exchange name: <post_exchange>_<suffix>.",
      "none"),
    d("post_format", "v03|v02",
      "The message format published: sr3's v03 JSON, or v02 (topic v02.post.<dirs>, fields in headers).",
      "v03"),
    d("post_on_start", "on|off",
      not_yet!("A watch announces every file already under its paths when it starts"),
      "off"),
    d("post_topicPrefix", "prefix",
      "The start of the topic of announcements (before the relPath's directories).",
      "topicPrefix; v02.post with post_format v02"),
    d("prefetch", "count",
      "How many unacknowledged messages the broker sends an instance ahead (at least twice batch).",
      "25"),
    d("queueName", "name",
      "The queue consumed from, instead of the name pitcher makes and keeps in the state directory.",
      "q_<user>.<component>.<config>.<queueShare>"),
    d("queueShare", "text",
      "The last part of the made-up queue name; configs with the same queueShare on several hosts share one queue.",
      "${USER}_${HOSTNAME}_${RAND8}"),
    d("queueType", "classic|quorum|stream",
      "The RabbitMQ queue type (x-queue-type); ignored for MQTT and local:.",
      "none (the broker's default, classic)"),
    d("receiptTimeout", "duration",
      "pitcher's own, watch: how long an announced file waits for a delivery receipt (a report from its receivers) before it is announced again, if unchanged; the wait doubles per try up to an hour; 0 turns receipts off.",
      "5m"),
    d("receiptsFrom", "component/config ...",
      "pitcher's own, watch: the receivers (e.g. sender/to_hpfx) every announcement expects a receipt from; without it, the receivers heard from (forgotten after 24 h of silence), else the first receipt from anyone.",
      "none (learned from receipts)"),
    d("recursive", "on|off",
      "A watch or post descends into the subdirectories of its paths.",
      "on"),
    d("reject", "regex",
      "Drop the paths this regular expression matches from their start (see accept).",
      "none"),
    d("report", "on|off",
      "A sender or subscribe publishes a report (the message, with report code, time and reporter) once each message is done: delivered (201), a duplicate (304), rejected by a mask (404), refused (422) or given up (499).",
      "on for sender and subscribe (sr3: off), off otherwise"),
    d("report_broker", "URL",
      "Where reports are published.",
      "broker"),
    d("report_exchange", "exchange",
      "The exchange reports go to; a watch reads its receipts there, on its post_broker.",
      "xr_<broker user> (xreport when the broker URL has no user)"),
    d("report_topicPrefix", "prefix",
      "The topic prefix of reports.",
      "v03"),
    d("retryCountMax", "count",
      "Give up on a transfer after this many failed attempts (logged); 0 keeps retrying until retry_ttl.",
      "0 (no limit)"),
    d("retry_ttl", "duration",
      "How long a failed transfer stays in the retry queue before it is dropped (logged).",
      "expire, else none (kept until it succeeds)"),
    d("sendTo", "URL",
      "Where a sender delivers: sftp://[user@]host/dir (through the system ssh and its config) or file:/dir (with directory).",
      "none (required by sender)"),
    d("sleep", "duration",
      "sr3's pause between the passes of a watch or poll (pitcher's watch announces events as they come); in a post, -1 means one pass, so pitcher start leaves the config to pitcher post.",
      "5 in a watch; -1 (once) in a post; 0.1 otherwise"),
    d("source", "name",
      "The source field of announced messages.",
      "the post_broker user, else the broker user"),
    d("sshConfig", "file",
      "(pitcher's own) The ssh_config file ssh and scp are given (-F) for sftp:// transfers.",
      "$PITCHER_SSH_CONFIG, else ssh's own (~/.ssh/config)"),
    d("strip", "count | regex",
      "Remove this many leading directories from the relPath (or the first match of the regex) before writing a file. Applies to the accept lines that follow it.",
      "0"),
    d("subtopic", "pattern",
      "Bind the queue to <topicPrefix>.<pattern> on the exchange in force (# any number of directories, * one); one line per binding.",
      "# (everything)"),
    d("timeCopy", "on|off",
      "Copy the source file's modification time to the destination and into messages.",
      "on"),
    d("timeout", "duration",
      "How long a transfer or a broker operation may take before it is abandoned (and retried).",
      "300 (5 minutes)"),
    d("topicPrefix", "prefix",
      "The start of the topics bound with subtopic: v03 or v02.post.",
      "v03"),
    d("verifyDelivery", "off|size|checksum",
      "(pitcher's own) How a sender checks a delivered file before acknowledging it: not at all, its size at the destination, or also a checksum there (checksumCommand).",
      "size"),
    d("vip", "address",
      "The config's instances work only on the host that holds one of these addresses and stay passive (wVip) elsewhere; one line per address.",
      "none (active everywhere)"),
];

/// Every keyword the parser implements, in its (sorted) order, with its
/// documentation (`None` only for a keyword missing from this file, which
/// the unit test below forbids).
pub fn implemented() -> Vec<(&'static str, Option<&'static KeywordDoc>)> {
    super::keywords::IMPLEMENTED
        .iter()
        .map(|k| (*k, DOCS.iter().find(|d| d.keyword == *k)))
        .collect()
}

/// sr3 keywords pitcher knows but does not implement: a config using one
/// loads, with a warning naming the line.
pub fn sr3_unimplemented() -> &'static [&'static str] {
    super::sr3_keywords::UNIMPLEMENTED
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keywords::IMPLEMENTED;

    #[test]
    fn every_implemented_keyword_has_a_description() {
        let missing: Vec<_> = implemented()
            .into_iter()
            .filter(|(_, doc)| doc.is_none())
            .map(|(k, _)| k)
            .collect();
        assert!(
            missing.is_empty(),
            "keywords the parser implements with no line in src/config/descriptions.rs: {missing:?}"
        );
        for d in DOCS {
            assert!(
                !d.value.is_empty() && !d.meaning.is_empty() && !d.default.is_empty(),
                "{}: value, meaning and default must all be given",
                d.keyword
            );
            assert!(
                !d.meaning.contains('\n') && !d.default.contains('\n'),
                "{}: one line each",
                d.keyword
            );
        }
    }

    #[test]
    fn every_description_is_of_an_implemented_keyword_once() {
        for d in DOCS {
            assert!(
                IMPLEMENTED.contains(&d.keyword),
                "{} is described but the parser does not implement it",
                d.keyword
            );
        }
        let mut names: Vec<_> = DOCS.iter().map(|d| d.keyword).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DOCS.len(), "a keyword is described twice");
    }
}
