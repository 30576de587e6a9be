//! The message: sr3's announcement of one file event.
//!
//! [`Message`] is the v03 message; v03 is one UTF-8 JSON object
//! (sr3-behaviour.md §1.1). [`v02`] is the older encoding of the same
//! message (a text body, string headers), and [`Format`] picks between the
//! two for a received message ([`Message::decode`]) and for publishing
//! ([`Message::encode`]); nothing outside this module knows either.
//! Reading is tolerant
//! (v02-style times without `T`, `integrity` → `identity`, `retPath` →
//! `retrievePath`, `size` as a string, unknown fields kept in order); writing
//! matches what Python's `json.dumps` emits (`", "` and `": "` separators,
//! non-ASCII as `\uXXXX`), in the field order sr3's watch uses, so our bodies
//! are byte for byte what sr3 would have published for the same event.
//!
//! The topic is derived from the relPath's directories, with sr3's escaping
//! (`#` → `%23`, `*` → `%22`) and truncation to 255 bytes.
//!
//! Submodules: [`timestamp`] (sr3's `YYYYMMDDTHHMMSS.f` times), `json`
//! (reading and writing bodies), `pyjson` (Python's `json.dumps` bytes),
//! `topic` (routing keys), `identity` (checksums and messages for files),
//! `xattr_cache` (sr3's checksum cache in extended attributes), [`v02`]
//! (the v02 codec), `format` (choosing v02 or v03).

mod format;
mod identity;
mod json;
mod pyjson;
pub mod timestamp;
mod topic;
pub mod v02;
mod xattr_cache;

#[cfg(test)]
mod fixture_tests;

pub use format::{Encoded, Format};
pub use identity::{compute_identity, FileMessageOptions};
pub use topic::unescape_topic_word;
pub use v02::Headers;

use serde_json::{Map, Value};

/// The checksum of a file's content: `{"method": "sha512", "value": base64}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub method: String,
    pub value: String,
}

/// What happened to the file, when it is not a plain create/modify.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileOp {
    /// `"remove": ""` present.
    pub remove: bool,
    /// `"directory": ""` present (mkdir, or with remove: rmdir).
    pub directory: bool,
    /// `"link": target` of a symlink, as readlink gives it.
    pub link: Option<String>,
    /// `"hlink": path` of a hard link.
    pub hlink: Option<String>,
    /// `"rename": old path` (the watch puts the absolute local old path).
    pub rename: Option<String>,
    /// Any other key of fileOp, kept as it came.
    pub extra: Map<String, Value>,
}

/// One v03 message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// `pubTime`, `YYYYMMDDTHHMMSS[.fraction]` in UTC, as written.
    pub pub_time: String,
    /// `baseUrl`, e.g. `file:/home/bob/to_hpfx` or `sftp://pas037@hpfx/on_hpfx`.
    pub base_url: String,
    /// `relPath`, without a leading `/`.
    pub rel_path: String,
    /// `retrievePath` (or `retPath`), if any.
    pub retrieve_path: Option<String>,
    /// `identity` (or `integrity`), if any.
    pub identity: Option<Identity>,
    /// `size` in bytes.
    pub size: Option<u64>,
    /// `mtime`, in pubTime format.
    pub mtime: Option<String>,
    /// `atime`, in pubTime format.
    pub atime: Option<String>,
    /// `mode`, an octal string such as `"644"`.
    pub mode: Option<String>,
    /// `fileOp`, if any.
    pub file_op: Option<FileOp>,
    /// `contentType`, if any.
    pub content_type: Option<String>,
    /// `source`, if any.
    pub source: Option<String>,
    /// Every other field, in the order it came (`from_cluster`, `topic`,
    /// `headers`…), written back unchanged.
    pub extra: Map<String, Value>,
}

/// Why a body is not a usable v03 message, or a time is not an sr3 time.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The body is not JSON at all (or not UTF-8).
    #[error("bad JSON at line {line} column {column}: {source}")]
    Json {
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    /// The body is JSON, but not an object.
    #[error("message body is not a JSON object but {0}")]
    NotAnObject(&'static str),
    /// One of `pubTime`, `baseUrl`, `relPath` is absent.
    #[error("missing required field {0}")]
    MissingField(&'static str),
    /// A known field holds the wrong kind of JSON value.
    #[error("field {field}: expected {expected}, got {got}")]
    WrongType {
        field: String,
        expected: &'static str,
        got: String,
    },
    /// `size` is neither a non-negative integer nor a string holding one.
    #[error("bad size {0}: not a non-negative integer")]
    BadSize(String),
    /// A v02 message (body or headers) that cannot be read.
    #[error("bad v02 message: {0}")]
    V02(String),
    /// A time (pubTime, or any string given to [`timestamp::parse`]) that is
    /// not `YYYYMMDD[T]HHMMSS[.fraction]`.
    #[error("bad {field} {value:?}: {reason}")]
    BadTime {
        field: &'static str,
        value: String,
        reason: String,
    },
}

impl Message {
    /// A bare message for `rel_path` under `base_url`, published now.
    ///
    /// A leading `/` of `rel_path` is dropped, as sr3's writers do
    /// (`file:` + `/tmp/x/a` is announced as relPath `tmp/x/a`).
    pub fn new(base_url: &str, rel_path: &str) -> Message {
        Message {
            pub_time: timestamp::now(),
            base_url: base_url.to_string(),
            rel_path: rel_path.trim_start_matches('/').to_string(),
            retrieve_path: None,
            identity: None,
            size: None,
            mtime: None,
            atime: None,
            mode: None,
            file_op: None,
            content_type: None,
            source: None,
            extra: Map::new(),
        }
    }

    /// Where the file can be fetched: baseUrl + `/` + relPath, with exactly
    /// one `/` between them (`file:` + `tmp/a` → `file:/tmp/a`,
    /// `sftp://h/` + `a` → `sftp://h/a`).
    pub fn url(&self) -> String {
        let base = self.base_url.as_str();
        let rel = self.rel_path.as_str();
        match (base.ends_with('/'), rel.starts_with('/')) {
            (true, true) => format!("{base}{}", &rel[1..]),
            (false, false) => format!("{base}/{rel}"),
            _ => format!("{base}{rel}"),
        }
    }

    /// The announcement that `rel_path` was deleted: `fileOp {"remove": ""}`,
    /// no size, identity or mode.
    pub fn for_remove(base_url: &str, rel_path: &str) -> Message {
        Message::new(base_url, rel_path).with_file_op(FileOp {
            remove: true,
            ..FileOp::default()
        })
    }

    /// The announcement that the directory `rel_path` was removed:
    /// `fileOp {"remove": "", "directory": ""}`.
    pub fn for_rmdir(base_url: &str, rel_path: &str) -> Message {
        Message::new(base_url, rel_path).with_file_op(FileOp {
            remove: true,
            directory: true,
            ..FileOp::default()
        })
    }

    /// The announcement that the directory `rel_path` was made, with its
    /// permission bits `mode` (e.g. `0o755` → `"755"`):
    /// `fileOp {"directory": ""}` and `contentType "text/directory"`.
    pub fn for_mkdir(base_url: &str, rel_path: &str, mode: u32) -> Message {
        let mut m = Message::new(base_url, rel_path).with_file_op(FileOp {
            directory: true,
            ..FileOp::default()
        });
        m.mode = Some(mode_string(mode));
        m.content_type = Some("text/directory".to_string());
        m
    }

    /// The announcement of the symbolic link `rel_path` pointing to
    /// `target` (the readlink text, unchanged): `fileOp {"link": target}`.
    ///
    /// Like sr3's watch, no contentType (sr3's sender adds `text/link` when
    /// it re-announces; that is its business).
    pub fn for_link(base_url: &str, rel_path: &str, target: &str) -> Message {
        Message::new(base_url, rel_path).with_file_op(FileOp {
            link: Some(target.to_string()),
            ..FileOp::default()
        })
    }

    /// This message, marked as a rename of `old` (the watch passes the old
    /// absolute local path): adds `fileOp.rename`, keeping any other fileOp
    /// key (a renamed link or directory keeps `link`/`directory`).
    pub fn with_rename(mut self, old: String) -> Message {
        self.file_op.get_or_insert_with(FileOp::default).rename = Some(old);
        self
    }

    fn with_file_op(mut self, op: FileOp) -> Message {
        self.file_op = Some(op);
        self
    }
}

/// sr3's `mode` field: the permission bits in octal, no leading 0.
pub(crate) fn mode_string(mode: u32) -> String {
    format!("{:o}", mode & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_joins_base_and_rel_path_with_exactly_one_slash() {
        let mut m = Message::new("file:", "tmp/x/a");
        assert_eq!(m.url(), "file:/tmp/x/a");
        m.base_url = "sftp://pas037@hpfx/".into();
        assert_eq!(m.url(), "sftp://pas037@hpfx/tmp/x/a");
        m.rel_path = "/tmp/x/a".into();
        assert_eq!(m.url(), "sftp://pas037@hpfx/tmp/x/a");
        m.base_url = "file:/root/to_hpfx".into();
        assert_eq!(m.url(), "file:/root/to_hpfx/tmp/x/a");
        m.rel_path = "first.txt".into();
        assert_eq!(m.url(), "file:/root/to_hpfx/first.txt");
    }

    #[test]
    fn new_strips_the_leading_slash_of_rel_path() {
        let m = Message::new("file:", "/tmp/x/a");
        assert_eq!(m.rel_path, "tmp/x/a");
        assert!(timestamp::parse(&m.pub_time).is_ok());
    }

    #[test]
    fn remove_message_has_remove_file_op_and_no_file_attributes() {
        let m = Message::for_remove("file:/h", "cap/a");
        let op = m.file_op.clone().expect("fileOp");
        assert!(op.remove && !op.directory);
        assert_eq!((m.size, m.identity, m.mode), (None, None, None));
        assert_eq!(
            serde_json::from_str::<Value>(&Message::for_remove("file:/h", "a").to_json()).unwrap()
                ["fileOp"],
            serde_json::json!({"remove": ""})
        );
    }

    #[test]
    fn rmdir_message_has_remove_then_directory() {
        let m = Message::for_rmdir("file:/h", "cap/sub dir");
        assert!(m
            .to_json()
            .contains(r#""fileOp": {"remove": "", "directory": ""}"#));
    }

    #[test]
    fn mkdir_message_carries_mode_and_directory_content_type() {
        let m = Message::for_mkdir("file:/h", "cap", 0o40755);
        assert_eq!(m.mode.as_deref(), Some("755"));
        assert_eq!(m.content_type.as_deref(), Some("text/directory"));
        assert!(m
            .file_op
            .as_ref()
            .is_some_and(|op| op.directory && !op.remove));
    }

    #[test]
    fn link_message_carries_the_readlink_text() {
        let m = Message::for_link("file:/h", "cap/latest.csv", "report-final.csv");
        assert_eq!(
            m.file_op.and_then(|op| op.link).as_deref(),
            Some("report-final.csv")
        );
        assert_eq!(m.content_type, None);
    }

    #[test]
    fn rename_is_added_to_an_existing_file_op() {
        let m = Message::for_link("file:/h", "b", "t").with_rename("/h/a".into());
        let op = m.file_op.expect("fileOp");
        assert_eq!(op.link.as_deref(), Some("t"));
        assert_eq!(op.rename.as_deref(), Some("/h/a"));
        let plain = Message::new("file:/h", "b").with_rename("/h/a".into());
        assert_eq!(
            plain.file_op,
            Some(FileOp {
                rename: Some("/h/a".into()),
                ..FileOp::default()
            })
        );
    }

    #[test]
    fn mode_string_is_octal_permission_bits_without_leading_zero() {
        assert_eq!(mode_string(0o100644), "644");
        assert_eq!(mode_string(0o4755), "4755");
        assert_eq!(mode_string(0o7), "7");
    }
}
