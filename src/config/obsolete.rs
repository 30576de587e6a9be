//! Keywords of older configs: sr2 spellings sr3 no longer reads, and the
//! ones sr3 converts or declares obsolete.
//!
//! What sr3 3.3.1 does with them (sarracenia/config/__init__.py):
//! * sr2's `url` (post_baseUrl) and `to` (to_clusters) are not in its
//!   tables: it logs "undeclared option" and the line has no effect, so the
//!   config silently loses what its author meant;
//! * `documentRoot`/`post_documentRoot` still become post_baseDir when
//!   post_baseDir is unset, with a warning to write post_baseDir instead;
//!   `kbytes_ps` becomes byteRateMax (×1024 without a unit);
//! * the keywords its `convert_to_v3` table maps to nothing are obsolete
//!   and skipped.
//!
//! pitcher stops at the first kind and the second, naming `file:line` and
//! the line to write instead; the third is a warning, as sr3 skips them.

use super::error::redact_text;
use super::values::parse_count;

/// The error for a line whose keyword sr3 no longer reads as written, with
/// what to write instead; `None` for every other keyword. `written` is the
/// keyword as in the file, `keyword` its canonical name, `args` the values
/// as written (before `${VAR}` expansion, so the advice can be pasted back).
pub(crate) fn replacement(written: &str, keyword: &str, args: &[&str]) -> Option<String> {
    let value = redact_text(&args.join(" "));
    let value = if value.is_empty() {
        "<value>".to_string()
    } else {
        value
    };
    Some(match keyword {
        "url" | "u" | "post_url" | "pbu" => format!(
            "'{written}' is sr2's old name for post_baseUrl, which sr3 does not read (it reports an undeclared option and the line has no effect): write post_baseUrl {value}"
        ),
        "to" => "'to' is sr2's name for to_clusters, which sr3 does not read (it reports an undeclared option and the line has no effect): delete the line"
            .to_string(),
        "documentRoot" | "post_documentRoot" => format!(
            "'{written}' is obsolete: sr3 reads it as post_baseDir and warns to use post_baseDir instead: write post_baseDir {value}"
        ),
        "kbytes_ps" => {
            // sr3: a number without a unit is KiB/s; with one, bytes/s.
            let bytes = match args.first() {
                Some(v) if v.ends_with(|c: char| c.is_ascii_digit()) => parse_count(v)
                    .map(|n| n.saturating_mul(1024).to_string())
                    .unwrap_or_else(|_| value.clone()),
                _ => value.clone(),
            };
            format!(
                "'kbytes_ps' is obsolete: sr3 converts it to byteRateMax (a plain number is KiB/s): write byteRateMax {bytes}"
            )
        }
        _ => return None,
    })
}

/// sr2 options sr3's `convert_to_v3` maps to nothing (sorted): obsolete,
/// skipped by sr3 and by pitcher, with a warning.
const OBSOLETE_IGNORED: &[&str] = &[
    "cache_stat",
    "cluster_aliases",
    "file_total_interval",
    "from_cluster",
    "ls_file_index",
    "msg_total_interval",
    "parts",
    "post_log_format",
    "post_total_interval",
    "pump",
    "pump_flag",
    "reconnect",
    "report_daemons",
    "restore",
    "retry_mode",
    "save",
    "set_passwords",
    "to_clusters",
    "windows_run",
    "xattr_disable",
];

/// Whether `keyword` (canonical) is one sr3 declares obsolete and skips.
pub(crate) fn is_obsolete(keyword: &str) -> bool {
    OBSOLETE_IGNORED.binary_search(&keyword).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obsolete_list_is_sorted_and_every_entry_is_a_known_sr3_keyword() {
        assert!(OBSOLETE_IGNORED.windows(2).all(|w| w[0] < w[1]));
        for k in OBSOLETE_IGNORED {
            assert!(super::super::sr3_keywords::is_unimplemented(k), "{k}");
        }
    }

    #[test]
    fn sr2_keywords_get_the_line_to_write_instead() {
        let r = replacement("url", "url", &["sftp://${U}@h"]).unwrap();
        assert!(r.ends_with("write post_baseUrl sftp://${U}@h"), "{r}");
        let r = replacement("to", "to", &["broker"]).unwrap();
        assert!(
            r.contains("to_clusters") && r.ends_with("delete the line"),
            "{r}"
        );
        let r = replacement("post_document_root", "post_documentRoot", &["/d"]).unwrap();
        assert!(r.ends_with("write post_baseDir /d"), "{r}");
        let r = replacement("kbytes_ps", "kbytes_ps", &["100"]).unwrap();
        assert!(r.ends_with("write byteRateMax 102400"), "{r}");
        let r = replacement("kbytes_ps", "kbytes_ps", &["1M"]).unwrap();
        assert!(r.ends_with("write byteRateMax 1M"), "{r}");
        let r = replacement("url", "url", &["amqp://u:secret@h"]).unwrap();
        assert!(!r.contains("secret"), "{r}");
        assert_eq!(
            replacement("post_baseUrl", "post_baseUrl", &["file:"]),
            None
        );
    }
}
