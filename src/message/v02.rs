//! v02: sr3's older encoding of the same message (sarracenia/postformat/v02.py
//! reading, flowcb/v2wrapper.py writing; sr3-behaviour.md §1.3).
//!
//! On the wire a v02 message is three things:
//! * the body (content type `text/plain`): `<pubTime> <baseUrl> <relPath>`,
//!   one space between them, the times without their `T`, and in relPath
//!   (and baseUrl, see below) ` ` written `%20` and `#` written `%23`;
//! * the topic: `v02.post` + the relPath's directories;
//! * string headers (AMQP application headers, MQTT 5 user properties) for
//!   everything else: `sum` = `<flag>,<value>` for the identity or the file
//!   operation, `parts` = `1,<size>,1,0,0`, `mtime`/`atime` without `T`,
//!   `oldname` for a rename, and every other field by its v03 name (`mode`,
//!   `source`, `contentType`, `from_cluster`, `newname`…).
//!
//! `sum` flags: `s` sha512 and `d` md5 (hex digest, where v03 has base64),
//! `0` random, `a` arbitrary (the value as is), `z` cod (the value is the
//! flag of its algorithm: `z,s`), `n` md5name (no v03 identity), and for file
//! operations `R` remove, `r` rmdir, `m` mkdir, `L` symlink (each with the
//! sha512 hex of the name, or of the link's target).
//!
//! Reading gives the [`Message`] the v03 body of the same event gives, with
//! the times written with their `T` again. Four things sr3 3.3.1 does that
//! we do not copy, on purpose:
//! * its reader leaves `%20`/`%23` in relPath (it undoes them only in
//!   baseUrl), so a name with a space is fetched under the wrong name; we
//!   undo them in both;
//! * its writer does not escape a space in baseUrl, which then splits the
//!   body wrongly; we escape baseUrl as relPath (its reader undoes that);
//! * its reader turns a sha512 hex into base64 with a newline after 76
//!   characters; ours has none;
//! * its writer sends an rmdir as `R` (the "directory" is lost) and a symlink
//!   without its target; we send `r`, and the target in a `link` header, the
//!   two things sr3's own reader (and v2's) understands.
//!
//! Whatever v02 cannot carry (a hard link, a checksum method it has no flag
//! for, inline content, partition blocks) is listed in [`V02::lost`] for
//! the caller to log.

use std::collections::BTreeMap;

use base64::Engine;
use md5::Digest;
use serde_json::Value;

use super::{timestamp, FileOp, Identity, Message, MessageError};

/// String headers: AMQP application headers, MQTT 5 user properties.
pub type Headers = BTreeMap<String, String>;

/// The content type of a v02 body.
pub const CONTENT_TYPE: &str = "text/plain";

/// The topic prefix sr3 3.3.1 always publishes v02 under.
pub const TOPIC_PREFIX: &str = "v02.post";

/// A message encoded as v02: what to publish, and what was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V02 {
    pub topic: String,
    pub body: String,
    pub headers: Headers,
    /// Fields v02 cannot carry, by name (empty when nothing was lost).
    pub lost: Vec<String>,
}

/// v03 identity method ↔ v02 `sum` flag.
const METHOD_FLAGS: &[(&str, char)] = &[
    ("sha512", 's'),
    ("md5", 'd'),
    ("md5name", 'n'),
    ("random", '0'),
    ("arbitrary", 'a'),
    ("cod", 'z'),
];

/// v03 fields that never become headers: the body holds them, `sum` and
/// `parts` replace them, or v02 has no place for them.
const NOT_HEADERS: &[&str] = &[
    "pubTime",
    "baseUrl",
    "relPath",
    "size",
    "identity",
    "integrity",
    "fileOp",
    "topic",
    "publisher_index",
];

/// v03 fields v02 drops (sr3 drops them too).
const DROPPED: &[&str] = &["blocks", "content"];

fn flag_of(method: &str) -> Option<char> {
    METHOD_FLAGS
        .iter()
        .find(|(m, _)| *m == method)
        .map(|(_, f)| *f)
}

fn method_of(flag: &str) -> Option<&'static str> {
    METHOD_FLAGS
        .iter()
        .find(|(_, f)| f.to_string() == flag)
        .map(|(m, _)| *m)
}

impl Message {
    /// This message as sr3 3.3.1 writes it in v02 (see the module doc for
    /// the differences), under `topic_prefix` (sr3 uses `v02.post`).
    pub fn to_v02(&self, topic_prefix: &str) -> V02 {
        let mut lost = Vec::new();
        let mut headers = Headers::new();
        let without_t = |t: &str| t.replace('T', "");

        // Every other field, by its v03 name; the ones computed below win
        // over an extra field of the same name.
        for (k, v) in &self.extra {
            if NOT_HEADERS.contains(&k.as_str()) {
                continue;
            }
            if DROPPED.contains(&k.as_str()) {
                lost.push(k.clone());
                continue;
            }
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => {
                    lost.push(format!("{k} (sent as text)"));
                    other.to_string()
                }
            };
            headers.insert(k.clone(), text);
        }
        let fields = [
            ("retrievePath", self.retrieve_path.clone()),
            ("source", self.source.clone()),
            ("mode", self.mode.clone()),
            ("mtime", self.mtime.as_deref().map(without_t)),
            ("atime", self.atime.as_deref().map(without_t)),
            ("contentType", self.content_type.clone()),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                headers.insert(k.to_string(), v);
            }
        }
        if let Some(size) = self.size {
            headers.insert("parts".into(), format!("1,{size},1,0,0"));
        }
        headers.insert("sum".into(), self.sum_header(&mut lost));
        if let Some(op) = &self.file_op {
            if let Some(old) = &op.rename {
                headers.insert("oldname".into(), old.clone());
            }
            if let Some(target) = &op.link {
                headers.insert("link".into(), target.clone());
            }
            if op.hlink.is_some() {
                lost.push("fileOp.hlink".into());
            }
            lost.extend(op.extra.keys().map(|k| format!("fileOp.{k}")));
        }

        let escape = |s: &str| s.replace(' ', "%20").replace('#', "%23");
        V02 {
            topic: self.topic(topic_prefix),
            body: format!(
                "{} {} {}",
                without_t(&self.pub_time),
                escape(&self.base_url),
                escape(&self.rel_path)
            ),
            headers,
            lost,
        }
    }

    /// The `sum` header: the file operation's flag, else the identity's,
    /// else `n` (md5name) as sr3 writes for a message without identity.
    fn sum_header(&self, lost: &mut Vec<String>) -> String {
        let name = self.rel_path.rsplit('/').next().unwrap_or("");
        if let Some(op) = &self.file_op {
            let flag = if op.link.is_some() {
                Some('L')
            } else if op.remove && op.directory {
                Some('r')
            } else if op.remove {
                Some('R')
            } else if op.directory {
                Some('m')
            } else {
                None
            };
            if let Some(flag) = flag {
                let hashed = match &op.link {
                    Some(target) if flag == 'L' => target.as_str(),
                    _ => name,
                };
                return format!("{flag},{}", sha512_hex(hashed.as_bytes()));
            }
        }
        let md5name = || format!("n,{}", hex(&md5::Md5::digest(name.as_bytes())));
        let Some(id) = &self.identity else {
            return md5name();
        };
        let value = match flag_of(&id.method) {
            Some(f @ ('s' | 'd')) => base64::engine::general_purpose::STANDARD
                .decode(id.value.trim())
                .ok()
                .map(|raw| format!("{f},{}", hex(&raw))),
            Some(f @ ('0' | 'a')) => Some(format!("{f},{}", id.value)),
            Some('z') => flag_of(&id.value).map(|alg| format!("z,{alg}")),
            Some('n') => return md5name(),
            _ => None,
        };
        value.unwrap_or_else(|| {
            lost.push(format!("identity {},{}", id.method, id.value));
            md5name()
        })
    }

    /// Read a v02 message: its body and headers (see the module doc).
    ///
    /// The body must be `<pubTime> <baseUrl> <relPath>` (anything after a
    /// third space, or after the first line, is ignored, as sr3 does).
    /// Headers sr3 would ignore as corrupt (a `sum` or `parts` it cannot
    /// read) are kept as they came, and logged.
    pub fn from_v02(body: &[u8], headers: &Headers) -> Result<Message, MessageError> {
        let mut notes = Vec::new();
        let msg = decode(body, headers, &mut notes)?;
        if !notes.is_empty() {
            tracing::warn!("v02 message {}: {}", msg.url(), notes.join("; "));
        }
        Ok(msg)
    }
}

fn bad(why: String) -> MessageError {
    MessageError::V02(why)
}

/// `YYYYMMDDHHMMSS…` → `YYYYMMDDTHHMMSS…`; a time with its `T` unchanged.
fn with_t(t: &str) -> String {
    if t.len() > 8 && t.is_char_boundary(8) && t.as_bytes()[8] != b'T' {
        format!("{}T{}", &t[..8], &t[8..])
    } else {
        t.to_string()
    }
}

fn unescape(s: &str) -> String {
    s.replace("%20", " ").replace("%23", "#")
}

pub(super) fn decode(
    body: &[u8],
    headers: &Headers,
    notes: &mut Vec<String>,
) -> Result<Message, MessageError> {
    let text = std::str::from_utf8(body).map_err(|e| bad(format!("body is not UTF-8: {e}")))?;
    let line = text.lines().next().unwrap_or("").trim_end();
    let mut words = line.split(' ');
    let (Some(pub_time), Some(base_url), Some(rel_path)) =
        (words.next(), words.next(), words.next())
    else {
        return Err(bad(format!(
            "body should be \"<pubTime> <baseUrl> <relPath>\", not {:?}",
            truncated(line)
        )));
    };
    if base_url.is_empty() || rel_path.is_empty() {
        return Err(bad(format!(
            "body should be \"<pubTime> <baseUrl> <relPath>\" with one space between, not {:?}",
            truncated(line)
        )));
    }
    if let Err(MessageError::BadTime { reason, .. }) = timestamp::parse(pub_time) {
        return Err(bad(format!("pubTime {pub_time:?}: {reason}")));
    }
    let mut msg = Message {
        pub_time: with_t(pub_time),
        ..Message::new(&unescape(base_url), "")
    };
    msg.rel_path = unescape(rel_path);

    let mut sum = None;
    let mut old_name = None;
    let mut link = None;
    for (k, v) in headers {
        match k.as_str() {
            "sum" => sum = Some(v.clone()),
            "oldname" => old_name = Some(v.clone()),
            "link" => link = Some(v.clone()),
            "parts" => match parts_size(v) {
                Some(size) => msg.size = Some(size),
                None => {
                    notes.push(format!("parts {v:?} is not a whole file: kept as it came"));
                    msg.extra.insert(k.clone(), Value::String(v.clone()));
                }
            },
            "mtime" => msg.mtime = Some(with_t(v)),
            "atime" => msg.atime = Some(with_t(v)),
            "mode" => msg.mode = Some(v.clone()),
            "source" => msg.source = Some(v.clone()),
            "contentType" => msg.content_type = Some(v.clone()),
            "retrievePath" => msg.retrieve_path = Some(v.clone()),
            _ => {
                msg.extra.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }

    let mut op = FileOp::default();
    if let Some(s) = &sum {
        let understood = match split_sum(s) {
            Some(("R", _)) => {
                op.remove = true;
                true
            }
            Some(("r", _)) => {
                op.remove = true;
                op.directory = true;
                true
            }
            Some(("m", _)) => {
                op.directory = true;
                true
            }
            // The target comes in the link header; sr3 3.3.1's writer sends
            // none, and then all that can be done is fetch what it points to.
            Some(("L", _)) => {
                if link.is_none() {
                    notes.push(
                        "a symlink (sum L) without its target (no link header): \
                         taken as the file it points to"
                            .into(),
                    );
                }
                true
            }
            Some((flag, value)) => match identity_of(flag, value) {
                Some(id) => {
                    msg.identity = id;
                    true
                }
                None => false,
            },
            None => false,
        };
        if !understood {
            notes.push(format!("sum {s:?} not understood: kept as it came"));
            msg.extra.insert("sum".into(), Value::String(s.clone()));
        }
    }
    if let Some(target) = link {
        // A link header with another sum: a symlink, as sr3 reads it, unless
        // the sum says remove, rmdir or mkdir.
        if op.remove || op.directory {
            msg.extra.insert("link".into(), Value::String(target));
        } else {
            op.link = Some(target);
            msg.identity = None;
        }
    }
    op.rename = old_name;
    if op != FileOp::default() {
        msg.file_op = Some(op);
    }
    Ok(msg)
}

fn truncated(s: &str) -> String {
    s.chars().take(200).collect()
}

/// `<flag>,<value>`: the flag is one character.
fn split_sum(sum: &str) -> Option<(&str, &str)> {
    let (flag, value) = sum.split_once(',')?;
    (flag.chars().count() == 1).then_some((flag, value))
}

/// The identity a `sum` flag and value give: `Some(None)` for md5name
/// (no identity), `None` when not understood.
fn identity_of(flag: &str, value: &str) -> Option<Option<Identity>> {
    let method = method_of(flag)?;
    let value = match flag {
        "s" | "d" => base64::engine::general_purpose::STANDARD.encode(unhex(value)?),
        "0" | "a" => value.to_string(),
        "z" => method_of(value)?.to_string(),
        "n" => return Some(None),
        _ => return None,
    };
    Some(Some(Identity {
        method: method.to_string(),
        value,
    }))
}

/// `1,<size>,…`: the size of a whole file; other styles (`i`, `p`: v2's
/// partitioned files) are not understood.
fn parts_size(parts: &str) -> Option<u64> {
    let mut fields = parts.split(',');
    (fields.next()? == "1").then_some(())?;
    fields.next()?.trim().parse().ok()
}

fn sha512_hex(data: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, data).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// v02 messages as sr3 3.3.1 published them to RabbitMQ, read back
    /// from a queue (tests/fixtures/capture_sr3_v02.py).
    const WIRE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sr3-v02-wire.jsonl"
    ));

    fn captured() -> Vec<Value> {
        WIRE.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("fixture line is JSON"))
            .collect()
    }

    fn headers_of(line: &Value) -> Headers {
        line["headers"]
            .as_object()
            .expect("headers")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("string header").to_string()))
            .collect()
    }

    fn decoded(line: &Value) -> Message {
        let body = line["body"].as_str().unwrap().as_bytes();
        let topic = line["routing_key"].as_str().unwrap();
        let ct = line["properties"]["content_type"].as_str();
        Message::decode(topic, ct, body, &headers_of(line)).expect("sr3's v02 message reads")
    }

    fn named<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
        let found: Vec<&Value> = lines.iter().filter(|l| l["name"] == name).collect();
        assert!(!found.is_empty(), "no fixture {name}");
        found
    }

    #[test]
    fn the_capture_is_what_sr3_puts_on_the_wire() {
        let lines = captured();
        assert_eq!(lines.len(), 19);
        for l in &lines {
            assert_eq!(l["properties"]["content_type"], "text/plain");
            assert_eq!(l["properties"]["delivery_mode"], 2);
            assert!(l["routing_key"].as_str().unwrap().starts_with("v02.post"));
        }
        // sr3 uses v02.post whatever post_topicPrefix says.
        let plain = named(&lines, "sr3_post without post_topicPrefix")[0];
        assert_eq!(plain["routing_key"], "v02.post.d");
    }

    /// Each message sr3 published in v02 reads as the v03 body sr3 would
    /// have published instead, field for field, but for what sr3's v02
    /// writer loses (a symlink's target, an rmdir's "directory").
    #[test]
    fn sr3_v02_reads_as_the_same_message_as_its_v03() {
        let lines = captured();
        let mut compared = 0;
        for l in lines.iter().filter(|l| l.get("v03_body").is_some()) {
            let name = l["name"].as_str().unwrap();
            let v03 = Message::from_json(l["v03_body"].as_str().unwrap().as_bytes()).unwrap();
            let mut v02 = decoded(l);
            match name {
                "symlink" => {
                    assert_eq!((&v02.file_op, &v02.identity), (&None, &None), "{name}");
                    v02.file_op = v03.file_op.clone();
                }
                "rmdir" => {
                    let op = v02.file_op.as_mut().unwrap();
                    assert!(op.remove && !op.directory, "{name}");
                    op.directory = true;
                }
                _ => {}
            }
            assert_eq!(v02, v03, "{name}");
            compared += 1;
        }
        assert_eq!(compared, 16);
    }

    /// And we write what sr3 wrote, but for the symlink (we add its target)
    /// and the rmdir (`r`, not `R`).
    #[test]
    fn our_v02_is_sr3_s_v02() {
        let lines = captured();
        for l in lines.iter().filter(|l| l.get("v03_body").is_some()) {
            let name = l["name"].as_str().unwrap();
            let v03 = Message::from_json(l["v03_body"].as_str().unwrap().as_bytes()).unwrap();
            let ours = v03.to_v02("v02.post");
            let mut theirs = headers_of(l);
            match name {
                "symlink" => {
                    theirs.insert("link".into(), "../w/file.txt".into());
                }
                "rmdir" => {
                    let sum = theirs["sum"].replacen("R,", "r,", 1);
                    theirs.insert("sum".into(), sum);
                }
                _ => {}
            }
            assert_eq!(ours.topic, l["routing_key"].as_str().unwrap(), "{name}");
            assert_eq!(ours.body, l["body"].as_str().unwrap(), "{name}");
            assert_eq!(ours.headers, theirs, "{name}");
            assert!(ours.lost.is_empty(), "{name}: {:?}", ours.lost);
        }
    }

    #[test]
    fn sr3_post_v02_files_read_with_their_names_sizes_and_checksums() {
        let lines = captured();
        for (name, rel) in [
            ("sr3_post file", "sub dir/hello world.txt"),
            ("sr3_post hash and star", "cap#1/data#1*.bin"),
            ("sr3_post without post_topicPrefix", "d/plain.txt"),
        ] {
            let l = named(&lines, name)[0];
            let m = decoded(l);
            let content = l["content"].as_str().unwrap().as_bytes();
            assert_eq!(m.rel_path, rel);
            assert_eq!(m.base_url, format!("file:{}", l["hot"].as_str().unwrap()));
            assert_eq!(m.size, Some(content.len() as u64));
            assert_eq!(m.mode.as_deref(), Some("644"));
            assert_eq!(m.source.as_deref(), Some("guest"));
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, content);
            let want = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
            assert_eq!(
                m.identity.as_ref().map(|i| i.value.as_str()),
                Some(want.as_str())
            );
            assert!(m.pub_time.as_bytes()[8] == b'T' && m.mtime.as_ref().unwrap().contains('T'));
            assert!(m.extra.is_empty() && m.file_op.is_none(), "{m:?}");
            // Written back, it is what sr3 sent.
            let again = m.to_v02("v02.post");
            assert_eq!(again.body, l["body"].as_str().unwrap());
            assert_eq!(again.headers, headers_of(l));
            assert_eq!(again.topic, l["routing_key"].as_str().unwrap());
        }
    }

    #[test]
    fn every_identity_maps_both_ways() {
        let lines = captured();
        for (name, method, value) in [
            ("identity md5", Some("md5"), None),
            ("identity random", Some("random"), None),
            ("identity cod,sha512", Some("cod"), Some("sha512")),
            ("identity cod,md5", Some("cod"), Some("md5")),
            ("identity arbitrary", Some("arbitrary"), Some("my-own-tag")),
            ("identity md5name", None, None),
        ] {
            let m = decoded(named(&lines, name)[0]);
            assert_eq!(
                m.identity.as_ref().map(|i| i.method.as_str()),
                method,
                "{name}"
            );
            if let Some(v) = value {
                assert_eq!(m.identity.as_ref().unwrap().value, v, "{name}");
            }
        }
        let mut m = Message::new("file:/h", "d/f");
        for (method, value, sum) in [
            ("sha512", "AAEC/w==", "s,000102ff"),
            ("md5", "AAEC/w==", "d,000102ff"),
            ("random", "1234", "0,1234"),
            ("arbitrary", "x,y z", "a,x,y z"),
            ("cod", "sha512", "z,s"),
            ("cod", "md5", "z,d"),
        ] {
            m.identity = Some(Identity {
                method: method.into(),
                value: value.into(),
            });
            let v = m.to_v02("v02.post");
            assert_eq!(v.headers["sum"], sum);
            assert!(v.lost.is_empty());
            assert_eq!(Message::from_v02(v.body.as_bytes(), &v.headers).unwrap(), m);
        }
    }

    #[test]
    fn every_file_op_maps_both_ways() {
        let base = "file:/h";
        let mut renamed_dir =
            Message::for_mkdir(base, "d/new", 0o755).with_rename("/h/d/old".into());
        renamed_dir.source = Some("guest".into());
        for m in [
            Message::for_remove(base, "d/gone"),
            Message::for_rmdir(base, "d/gone dir"),
            Message::for_mkdir(base, "d/new dir", 0o750),
            Message::for_link(base, "d/latest", "../x/report #1.csv"),
            Message::for_link(base, "d/l2", "t").with_rename("/h/d/l1".into()),
            Message::new(base, "d/f").with_rename("/h/d/f.tmp".into()),
            renamed_dir,
        ] {
            let v = m.to_v02("v02.post");
            assert!(v.lost.is_empty(), "{:?}", v.lost);
            let back = Message::from_v02(v.body.as_bytes(), &v.headers).unwrap();
            assert_eq!(back, m, "{v:?}");
        }
        let v = Message::for_link(base, "d/latest", "t").to_v02("v02.post");
        assert_eq!(v.headers["sum"], format!("L,{}", sha512_hex(b"t")));
        assert_eq!(v.headers["link"], "t");
        let v = Message::for_rmdir(base, "d/x").to_v02("v02.post");
        assert_eq!(v.headers["sum"], format!("r,{}", sha512_hex(b"x")));
    }

    #[test]
    fn what_v02_cannot_carry_is_listed() {
        let mut m = Message::new("file:/h", "a");
        m.file_op = Some(FileOp {
            hlink: Some("/h/b".into()),
            extra: serde_json::Map::from_iter([("future".to_string(), json!(1))]),
            ..FileOp::default()
        });
        m.identity = Some(Identity {
            method: "sha256".into(),
            value: "x".into(),
        });
        m.extra.insert(
            "content".into(),
            json!({"encoding": "utf-8", "value": "hi"}),
        );
        m.extra.insert("n".into(), json!(3));
        m.extra.insert("from_cluster".into(), json!("hpfx"));
        let v = m.to_v02("v02.post");
        assert_eq!(
            v.lost,
            [
                "content",
                "n (sent as text)",
                "identity sha256,x",
                "fileOp.hlink",
                "fileOp.future"
            ]
        );
        assert!(v.headers["sum"].starts_with("n,"));
        assert_eq!(v.headers["n"], "3");
        assert_eq!(v.headers["from_cluster"], "hpfx");
        assert!(!v.headers.contains_key("content"));
    }

    #[test]
    fn names_with_spaces_and_hashes_travel_escaped_in_the_body() {
        let m = Message::new("sftp://u@h/a b#c", "x y/#1 *.txt");
        let v = m.to_v02("v02.post");
        assert!(
            v.body.ends_with(" sftp://u@h/a%20b%23c x%20y/%231%20*.txt"),
            "{}",
            v.body
        );
        assert_eq!(v.topic, "v02.post.x y");
        let back = Message::from_v02(
            b"20261129014903.5 sftp://u@h/a%20b%23c x%20y/%231%20*.txt",
            &v.headers,
        )
        .unwrap();
        assert_eq!(
            (back.base_url.as_str(), back.rel_path.as_str()),
            ("sftp://u@h/a b#c", "x y/#1 *.txt")
        );
    }

    #[test]
    fn bodies_that_are_not_v02_are_refused_saying_why() {
        let h = Headers::new();
        for (body, why) in [
            (&b"20261129014903.5 file:/h"[..], "body should be"),
            (b"", "body should be"),
            (b"20261129014903.5  a", "with one space between"),
            (b"yesterday file:/h a", "pubTime \"yesterday\""),
            (b"\xff\xfe a b", "not UTF-8"),
        ] {
            let err = Message::from_v02(body, &h).unwrap_err().to_string();
            assert!(
                err.starts_with("bad v02 message: ") && err.contains(why),
                "{err}"
            );
        }
        // A second line, or a fourth field, is ignored, as sr3 does.
        let m = Message::from_v02(b"20261129T014903 file:/h a extra\n{\"x\": 1}", &h).unwrap();
        assert_eq!(
            (m.pub_time.as_str(), m.rel_path.as_str()),
            ("20261129T014903", "a")
        );
    }

    #[test]
    fn headers_sr3_would_ignore_are_kept_as_they_came() {
        let mut h = Headers::new();
        h.insert("sum".into(), "s,not hex".into());
        h.insert("parts".into(), "i,1024,3,10,1".into());
        h.insert("to_clusters".into(), "ALL".into());
        let m = Message::from_v02(b"20261129014903 file:/h a", &h).unwrap();
        assert_eq!(m.identity, None);
        assert_eq!(m.size, None);
        assert_eq!(m.extra["sum"], "s,not hex");
        assert_eq!(m.extra["parts"], "i,1024,3,10,1");
        assert_eq!(m.extra["to_clusters"], "ALL");
        // Written back as they came, in v02 and in v03.
        let v = m.to_v02("v02.post");
        assert!(v.headers["sum"].starts_with("n,"));
        assert_eq!(v.headers["parts"], "i,1024,3,10,1");
        assert!(m.to_json().contains(r#""sum": "s,not hex""#));
    }
}
