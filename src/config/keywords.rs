//! Which keywords a config may use: the ones pitcher implements, sr3's
//! legacy synonyms for them, and "did you mean" for near misses.
//!
//! Keywords are case-sensitive, as in sr3. Synonyms are sr3's own table
//! (sarracenia/config/__init__.py `Config.synonyms`), plus the special
//! cases its parser handles by hand: `destination` (sendTo, or pollUrl in
//! a poll), `integrity` (identity) and `broker` in a poll (post_broker).

use super::options::Component;
use super::sr3_keywords::UNIMPLEMENTED;

/// Canonical keywords pitcher implements (sorted). `sshConfig`,
/// `verifyDelivery`, `checksumCommand`, `cleanDirGrace`, `receiptTimeout`
/// and `receiptsFrom` are pitcher's own; `retryCountMax` is sr3 3.03's.
pub(crate) const IMPLEMENTED: &[&str] = &[
    "accelCpCommand",
    "accelScpCommand",
    "accelThreshold",
    "accept",
    "acceptUnmatched",
    "attempts",
    "baseDir",
    "batch",
    "broker",
    "byteRateMax",
    "checksumCommand",
    "cleanDirGrace",
    "debug",
    "declare",
    "delete_source",
    "directory",
    "download",
    "durable",
    "exchange",
    "exchangeSuffix",
    "expire",
    "fileAgeMax",
    "fileAgeMin",
    "fileEvents",
    "fileSizeMax",
    "filename",
    "flatten",
    "follow_symlinks",
    "force_polling",
    "header",
    "housekeeping",
    "identity",
    "include",
    "inflight",
    "instances",
    "logLevel",
    "logRotateCount",
    "logRotateInterval",
    "messageAgeMax",
    "messageRateMax",
    "mirror",
    "nodupe_basis",
    "nodupe_ttl",
    "path",
    "permCopy",
    "permDefault",
    "permDirDefault",
    "permLog",
    "persistent",
    "post_baseDir",
    "post_baseUrl",
    "post_broker",
    "post_exchange",
    "post_exchangeSuffix",
    "post_format",
    "post_on_start",
    "post_topicPrefix",
    "prefetch",
    "queueName",
    "queueShare",
    "queueType",
    "receiptTimeout",
    "receiptsFrom",
    "recursive",
    "reject",
    "report",
    "report_broker",
    "report_exchange",
    "report_topicPrefix",
    "retryCountMax",
    "retry_ttl",
    "sendTo",
    "sleep",
    "source",
    "sshConfig",
    "strip",
    "subtopic",
    "timeCopy",
    "timeout",
    "topicPrefix",
    "verifyDelivery",
    "vip",
];

/// sr3's synonyms: old or short name → canonical name.
const SYNONYMS: &[(&str, &str)] = &[
    ("a", "action"),
    ("accel_cp_command", "accelCpCommand"),
    ("accel_cp_threshold", "accelThreshold"),
    ("accel_scp_command", "accelScpCommand"),
    ("accel_scp_threshold", "accelThreshold"),
    ("accel_threshold", "accelThreshold"),
    ("accel_wget_command", "accelWgetCommand"),
    ("accel_wget_threshold", "accelThreshold"),
    ("accept_unmatch", "acceptUnmatched"),
    ("accept_unmatched", "acceptUnmatched"),
    ("at", "attempts"),
    ("b", "broker"),
    ("base_dir", "baseDir"),
    ("basedir", "baseDir"),
    ("baseurl", "baseUrl"),
    ("bd", "baseDir"),
    ("bind_queue", "queueBind"),
    ("blocksize", "blockSize"),
    ("bufsize", "bufSize"),
    ("c", "include"),
    ("cache", "nodupe_ttl"),
    ("cache_basis", "nodupe_basis"),
    ("caching", "nodupe_ttl"),
    ("cb", "nodupe_basis"),
    ("chmod", "permDefault"),
    ("chmod_dir", "permDirDefault"),
    ("chmod_log", "permLog"),
    ("content", "inline"),
    ("content_encoding", "inlineEncoding"),
    ("content_max", "inlineByteMax"),
    ("d", "discard"),
    ("declare_exchange", "exchangeDeclare"),
    ("declare_queue", "queueDeclare"),
    ("default_dir_mode", "permDirDefault"),
    ("default_log_mode", "permLog"),
    ("default_mode", "permDefault"),
    ("destination_timezone", "timezone"),
    ("document_root", "documentRoot"),
    ("download-and-discard", "discard"),
    ("download_cp_command", "accelCpCommand"),
    ("e", "fileEvents"),
    ("events", "fileEvents"),
    ("ex", "exchange"),
    ("exchange_split", "exchangeSplit"),
    ("exchange_suffix", "exchangeSuffix"),
    ("expiry", "expire"),
    ("file_time_limit", "fileAgeMax"),
    ("fp", "force_polling"),
    ("fs", "follow_symlinks"),
    ("h", "help"),
    ("hb_memory_baseline_file", "MemoryBaseLineFile"),
    ("hb_memory_max", "MemoryMax"),
    ("hb_memory_multiplier", "MemoryMultiplier"),
    ("heartbeat", "housekeeping"),
    ("imx", "inlineByteMax"),
    ("inl", "inline"),
    ("inline_encoding", "inlineEncoding"),
    ("inline_max", "inlineByteMax"),
    ("instance", "instances"),
    ("ll", "logLevel"),
    ("lock", "inflight"),
    ("logRotate", "logRotateCount"),
    ("logRotate_interval", "logRotateInterval"),
    ("log_format", "logFormat"),
    ("log_reject", "logReject"),
    ("log_rotate", "logRotateCount"),
    ("logdays", "logRotateCount"),
    ("loglevel", "logLevel"),
    ("message-ttl", "post_messageAgeMax"),
    ("message_ttl", "post_messageAgeMax"),
    ("msg_fdelay", "fdelay"),
    ("msg_filter_wmo2msc_convert", "filter_wmo2msc_convert"),
    (
        "msg_filter_wmo2msc_replace_dir",
        "filter_wmo2msc_replace_dir",
    ),
    ("msg_filter_wmo2msc_tree", "filter_wmo2msc_treeify"),
    ("msg_filter_wmo2msc_uniquify", "filter_wmo2msc_uniquify"),
    ("msg_replace_new_dir", "pathReplace"),
    ("n", "no_download"),
    ("nd", "nodupe_ttl"),
    ("no_duplicates", "nodupe_ttl"),
    ("nodupe_fileAgeMax", "fileAgeMax"),
    ("nodupe_fileAgeMin", "fileAgeMin"),
    ("o", "overwrite"),
    ("on_msg", "on_message"),
    ("p", "path"),
    ("pm", "permCopy"),
    ("post_base_dir", "post_baseDir"),
    ("post_base_url", "post_baseUrl"),
    ("post_basedir", "post_baseDir"),
    ("post_baseurl", "post_baseUrl"),
    ("post_document_root", "post_documentRoot"),
    ("post_exchange_split", "post_exchangeSplit"),
    ("post_exchange_suffix", "post_exchangeSuffix"),
    ("post_rate_limit", "messageRateMax"),
    ("post_topic_prefix", "post_topicPrefix"),
    ("preserve_mode", "permCopy"),
    ("preserve_time", "timeCopy"),
    ("pt", "timeCopy"),
    ("qn", "queueName"),
    ("queue", "queueName"),
    ("queue_name", "queueName"),
    ("realpath", "realpathPost"),
    ("realpath_filter", "realpathFilter"),
    ("realpath_post", "realpathPost"),
    ("remoteUrl", "sendTo"),
    ("report_back", "report"),
    ("sanity_log_dead", "runStateThreshold_hung"),
    ("sd", "nodupe_ttl"),
    ("sdb", "nodupe_basis"),
    ("simulate", "dry_run"),
    ("simulation", "dry_run"),
    ("source_from_exchange", "sourceFromExchange"),
    ("sum", "identity"),
    ("suppress_duplicates", "nodupe_ttl"),
    ("suppress_duplicates_basis", "nodupe_basis"),
    ("tls_rigour", "tlsRigour"),
    ("topic_prefix", "topicPrefix"),
    // handled by hand in sr3's parse_line rather than in its table:
    ("config", "include"),
    ("integrity", "identity"),
    ("lock", "inflight"),
];

/// The canonical name of `keyword` as written in a `component` config:
/// synonyms resolved, everything else unchanged.
pub(crate) fn canonical(keyword: &str, component: Component) -> &str {
    match keyword {
        "destination" if component == Component::Poll => "pollUrl",
        "destination" => "sendTo",
        "broker" if component == Component::Poll => "post_broker",
        _ => SYNONYMS
            .iter()
            .find(|(old, _)| *old == keyword)
            .map_or(keyword, |(_, new)| *new),
    }
}

/// Whether pitcher implements the canonical keyword `keyword`. The v2
/// spellings `no_download`/`notify_only` (download off) count as
/// implemented.
pub(crate) fn is_implemented(keyword: &str) -> bool {
    IMPLEMENTED.binary_search(&keyword).is_ok() || matches!(keyword, "no_download" | "notify_only")
}

/// The known keyword closest to an unknown `word`, when it is close enough
/// to be a typo (case is ignored in the comparison).
pub(crate) fn suggest(word: &str) -> Option<&'static str> {
    let lower = word.to_ascii_lowercase();
    let length = word.chars().count();
    let limit = (length / 4).clamp(1, 3);
    let candidates = IMPLEMENTED
        .iter()
        .chain(UNIMPLEMENTED)
        .chain(SYNONYMS.iter().map(|(old, _)| old))
        .copied()
        // one- and two-letter synonyms would match any short typo.
        .filter(|k| k.len() > 2)
        // The distance is at least the difference in length: skipping the
        // keywords too long or too short to be within `limit` changes no
        // answer, and keeps a line of garbage from costing its length times
        // every keyword's.
        .filter(|k| k.len().abs_diff(length) <= limit);
    let (best, distance) = candidates
        .map(|k| (k, edit_distance(&lower, &k.to_ascii_lowercase())))
        .min_by_key(|(_, d)| *d)?;
    (distance <= limit).then_some(best)
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implemented_list_is_sorted_so_binary_search_works() {
        assert!(IMPLEMENTED.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn legacy_synonyms_map_to_canonical_names() {
        let c = Component::Sender;
        assert_eq!(canonical("destination", c), "sendTo");
        assert_eq!(canonical("destination", Component::Poll), "pollUrl");
        assert_eq!(canonical("cache", c), "nodupe_ttl");
        assert_eq!(canonical("suppress_duplicates", c), "nodupe_ttl");
        assert_eq!(canonical("preserve_time", c), "timeCopy");
        assert_eq!(canonical("preserve_mode", c), "permCopy");
        assert_eq!(canonical("lock", c), "inflight");
        assert_eq!(canonical("accel_threshold", c), "accelThreshold");
        assert_eq!(canonical("post_base_url", c), "post_baseUrl");
        assert_eq!(canonical("post_base_dir", c), "post_baseDir");
        assert_eq!(canonical("base_dir", c), "baseDir");
        assert_eq!(canonical("heartbeat", c), "housekeeping");
        assert_eq!(canonical("integrity", c), "identity");
        assert_eq!(canonical("sum", c), "identity");
        assert_eq!(canonical("events", c), "fileEvents");
        assert_eq!(canonical("chmod", c), "permDefault");
        assert_eq!(canonical("chmod_dir", c), "permDirDefault");
        assert_eq!(canonical("config", c), "include");
        assert_eq!(canonical("broker", Component::Poll), "post_broker");
        assert_eq!(canonical("accelThreshold", c), "accelThreshold");
    }

    #[test]
    fn every_synonym_leads_to_a_known_keyword() {
        for (old, new) in SYNONYMS {
            let known = is_implemented(new) || super::super::sr3_keywords::is_unimplemented(new);
            assert!(
                known,
                "{old} -> {new} is neither implemented nor listed as sr3's"
            );
        }
    }

    #[test]
    fn near_misses_get_a_suggestion() {
        assert_eq!(suggest("acelThreshold"), Some("accelThreshold"));
        assert_eq!(suggest("AccelThreshold"), Some("accelThreshold"));
        assert_eq!(suggest("sendto"), Some("sendTo"));
        assert_eq!(suggest("post_brokr"), Some("post_broker"));
        assert_eq!(suggest("completely_different"), None);
    }

    /// Found by fuzzing: a long unknown word was compared with every
    /// keyword at a cost of its length each, so a line of garbage took
    /// seconds to be refused.
    #[test]
    fn a_huge_unknown_word_gets_no_suggestion_quickly() {
        let garbage = "x".repeat(1 << 20);
        let started = std::time::Instant::now();
        assert_eq!(suggest(&garbage), None);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
        // Length filtering keeps every near miss within reach.
        assert_eq!(suggest("accelThreshol"), Some("accelThreshold"));
        assert_eq!(suggest("accelThresholdXY"), Some("accelThreshold"));
    }
}
