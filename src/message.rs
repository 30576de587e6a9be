//! The v03 message: sr3's announcement of one file event.
//!
//! One UTF-8 JSON object (sr3-behaviour.md §1.1). Reading is tolerant
//! (v02-style times without `T`, `integrity` → `identity`, `retPath` →
//! `retrievePath`, unknown fields kept in order); writing matches what
//! Python's `json.dumps` emits (`", "` and `": "` separators, non-ASCII as
//! `\uXXXX`), so sr3 daemons accept our bodies byte for byte.
//!
//! The topic is derived from the relPath's directories, with sr3's escaping
//! (`#` → `%23`, `*` → `%22`) and truncation below 255 bytes.

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
