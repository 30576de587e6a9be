//! Reading and writing v03 bodies.
//!
//! Reading follows sr3's import (postformat/v03.py importMine): `retPath` →
//! `retrievePath` and `integrity` → `identity` (the old name wins when both
//! came, as there), `size` as an int or a string, the v2-era `parts` header
//! with method `1` turned into `size`. pubTime is kept exactly as it came
//! once it parses as an sr3 time (so re-publishing a message does not
//! change it; `T`-less v02 times stay `T`-less). A `null` in an optional
//! known field counts as absent. Unknown fields, and unknown fileOp keys,
//! are kept in order.
//!
//! Writing puts the fields in the order sr3's watch builds them (pubTime,
//! relPath, baseUrl, retrievePath, source, mode, size, mtime, atime,
//! identity, fileOp, contentType), then the extra fields in their order, so
//! that for the same event our body is byte for byte sr3's.

use serde_json::{Map, Value};

use super::{pyjson, timestamp, FileOp, Identity, Message, MessageError};

/// The field names this module maps to struct fields; an `extra` entry with
/// one of these names is not written (the struct field is what counts).
const KNOWN: &[&str] = &[
    "pubTime",
    "relPath",
    "baseUrl",
    "retrievePath",
    "retPath",
    "source",
    "mode",
    "size",
    "mtime",
    "atime",
    "identity",
    "integrity",
    "fileOp",
    "contentType",
];

const FILE_OP_KNOWN: &[&str] = &["remove", "directory", "link", "hlink", "rename"];

impl Message {
    /// Read a v03 body (the AMQP payload).
    ///
    /// Requires `pubTime` (an sr3 time, with or without `T`), `baseUrl` and
    /// `relPath`; see the module doc for what else is tolerated.
    pub fn from_json(body: &[u8]) -> Result<Message, MessageError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| MessageError::Json {
            line: e.line(),
            column: e.column(),
            source: e,
        })?;
        let Value::Object(fields) = value else {
            return Err(MessageError::NotAnObject(kind(&value)));
        };
        from_map(fields)
    }

    /// The body sr3 would publish for this message: Python's
    /// `json.dumps(msg)`, fields in sr3's order.
    pub fn to_json(&self) -> String {
        pyjson::to_string(&self.to_json_value())
    }

    /// The body as a JSON value, fields in the order [`Message::to_json`]
    /// writes them.
    pub fn to_json_value(&self) -> Value {
        let mut m = Map::new();
        let s = |v: &str| Value::String(v.to_string());
        m.insert("pubTime".into(), s(&self.pub_time));
        m.insert("relPath".into(), s(&self.rel_path));
        m.insert("baseUrl".into(), s(&self.base_url));
        let optional = [
            ("retrievePath", &self.retrieve_path),
            ("source", &self.source),
            ("mode", &self.mode),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                m.insert(k.into(), s(v));
            }
        }
        if let Some(size) = self.size {
            m.insert("size".into(), Value::from(size));
        }
        for (k, v) in [("mtime", &self.mtime), ("atime", &self.atime)] {
            if let Some(v) = v {
                m.insert(k.into(), s(v));
            }
        }
        if let Some(id) = &self.identity {
            let mut o = Map::new();
            o.insert("method".into(), s(&id.method));
            o.insert("value".into(), s(&id.value));
            m.insert("identity".into(), Value::Object(o));
        }
        if let Some(op) = &self.file_op {
            m.insert("fileOp".into(), Value::Object(file_op_map(op)));
        }
        if let Some(ct) = &self.content_type {
            m.insert("contentType".into(), s(ct));
        }
        for (k, v) in &self.extra {
            if !KNOWN.contains(&k.as_str()) {
                m.insert(k.clone(), v.clone());
            }
        }
        Value::Object(m)
    }
}

fn file_op_map(op: &FileOp) -> Map<String, Value> {
    let mut o = Map::new();
    let empty = || Value::String(String::new());
    if op.remove {
        o.insert("remove".into(), empty());
    }
    if op.directory {
        o.insert("directory".into(), empty());
    }
    for (k, v) in [
        ("link", &op.link),
        ("hlink", &op.hlink),
        ("rename", &op.rename),
    ] {
        if let Some(v) = v {
            o.insert(k.into(), Value::String(v.clone()));
        }
    }
    for (k, v) in &op.extra {
        if !FILE_OP_KNOWN.contains(&k.as_str()) {
            o.insert(k.clone(), v.clone());
        }
    }
    o
}

fn from_map(fields: Map<String, Value>) -> Result<Message, MessageError> {
    let mut pub_time = None;
    let mut base_url = None;
    let mut rel_path = None;
    let mut msg = Message {
        pub_time: String::new(),
        ..Message::new("", "")
    };
    // The old names win over the new ones, whatever their order, as in sr3.
    let mut ret_path = None;
    let mut integrity = None;
    let mut parts = None;

    for (key, value) in fields {
        match key.as_str() {
            "pubTime" => pub_time = Some(string(&key, value)?),
            "baseUrl" => base_url = Some(string(&key, value)?),
            "relPath" => rel_path = Some(string(&key, value)?),
            "retrievePath" => msg.retrieve_path = opt_string(&key, value)?,
            "retPath" => ret_path = Some(opt_string(&key, value)?),
            "identity" => msg.identity = opt_identity(&key, value)?,
            "integrity" => integrity = Some(opt_identity(&key, value)?),
            "size" => msg.size = opt_size(value)?,
            "mtime" => msg.mtime = opt_string(&key, value)?,
            "atime" => msg.atime = opt_string(&key, value)?,
            "mode" => msg.mode = opt_string(&key, value)?,
            "fileOp" => msg.file_op = opt_file_op(value)?,
            "contentType" => msg.content_type = opt_string(&key, value)?,
            "source" => msg.source = opt_string(&key, value)?,
            "parts" => parts = Some(value),
            _ => {
                msg.extra.insert(key, value);
            }
        }
    }
    if let Some(p) = ret_path {
        msg.retrieve_path = p;
    }
    if let Some(i) = integrity {
        msg.identity = i;
    }
    if let Some(p) = parts {
        match whole_file_size_of_parts(&p) {
            Some(size) => msg.size = Some(size),
            None => {
                msg.extra.insert("parts".into(), p);
            }
        }
    }

    msg.pub_time = pub_time.ok_or(MessageError::MissingField("pubTime"))?;
    msg.base_url = base_url.ok_or(MessageError::MissingField("baseUrl"))?;
    msg.rel_path = rel_path.ok_or(MessageError::MissingField("relPath"))?;
    timestamp::parse(&msg.pub_time).map_err(|e| match e {
        MessageError::BadTime { value, reason, .. } => MessageError::BadTime {
            field: "pubTime",
            value,
            reason,
        },
        other => other,
    })?;
    Ok(msg)
}

/// `parts` = `1,<size>,…` (v2 "whole file") gives the size; other methods
/// (partitioned files) are not understood here and stay in `extra`.
fn whole_file_size_of_parts(parts: &Value) -> Option<u64> {
    let text = parts.as_str()?;
    let mut fields = text.split(',');
    (fields.next()? == "1").then_some(())?;
    fields.next()?.trim().parse().ok()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong(field: &str, expected: &'static str, got: &Value) -> MessageError {
    MessageError::WrongType {
        field: field.to_string(),
        expected,
        got: kind(got).to_string(),
    }
}

fn string(field: &str, v: Value) -> Result<String, MessageError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(wrong(field, "a string", &other)),
    }
}

fn opt_string(field: &str, v: Value) -> Result<Option<String>, MessageError> {
    match v {
        Value::Null => Ok(None),
        other => string(field, other).map(Some),
    }
}

fn opt_size(v: Value) -> Result<Option<u64>, MessageError> {
    match &v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| MessageError::BadSize(n.to_string())),
        // Python's int() allows surrounding blanks; so do we.
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| MessageError::BadSize(format!("{s:?}"))),
        other => Err(wrong("size", "an integer", other)),
    }
}

fn opt_identity(field: &str, v: Value) -> Result<Option<Identity>, MessageError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(mut o) => {
            let mut take = |k: &'static str| -> Result<String, MessageError> {
                let name = format!("{field}.{k}");
                match o.remove(k) {
                    Some(v) => string(&name, v),
                    None => Err(wrong(&name, "a string", &Value::Null)),
                }
            };
            let method = take("method")?;
            let value = take("value")?;
            Ok(Some(Identity { method, value }))
        }
        other => Err(wrong(field, "an object {method, value}", &other)),
    }
}

fn opt_file_op(v: Value) -> Result<Option<FileOp>, MessageError> {
    let o = match v {
        Value::Null => return Ok(None),
        Value::Object(o) => o,
        other => return Err(wrong("fileOp", "an object", &other)),
    };
    let mut op = FileOp::default();
    for (k, v) in o {
        match k.as_str() {
            // Only the presence matters; sr3 always writes "".
            "remove" => op.remove = true,
            "directory" => op.directory = true,
            "link" => op.link = Some(string("fileOp.link", v)?),
            "hlink" => op.hlink = Some(string("fileOp.hlink", v)?),
            "rename" => op.rename = Some(string("fileOp.rename", v)?),
            _ => {
                op.extra.insert(k, v);
            }
        }
    }
    Ok(Some(op))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WATCH_BODY: &str = r#"{"pubTime": "20261129T014913.519407034", "relPath": "cap/sub dir/hello world.txt", "baseUrl": "file:/home/bob/to_hpfx", "source": "guest", "mode": "644", "size": 6, "mtime": "20261129T014909.837486744", "atime": "20261129T014909.837486744", "identity": {"method": "sha512", "value": "58IrmUxZ2c8rSOVJseJGZmNgRZMNPafBrLKZ0cO3+TH5Sq5B7dosKyB6NuEPi8uNRSI+VIePWzFufOO2vAGWKQ=="}}"#;

    /// Found by fuzzing: a number in an unknown field was read to the
    /// nearest-but-one float, so re-publishing a message changed it
    /// (`2.2222222222222219e+46` came back as `2.222222222222222e+46`).
    #[test]
    fn numbers_in_extra_fields_survive_republishing() {
        let body = br#"{"pubTime": "20261129T014928.529", "relPath": "a", "baseUrl": "file:", "h": {"n": 22222222222222222222222222222222222222222222222, "f": 0.30000000000000004}}"#;
        let m = Message::from_json(body).unwrap();
        let again = Message::from_json(m.to_json().as_bytes()).unwrap();
        assert_eq!(again, m, "{}", m.to_json());
        assert_eq!(
            m.extra["h"]["n"].as_f64(),
            Some(22222222222222222222222222222222222222222222222.0)
        );
    }

    fn parse(v: Value) -> Result<Message, MessageError> {
        Message::from_json(v.to_string().as_bytes())
    }

    fn minimal() -> Value {
        json!({"pubTime": "20261129T014913.5", "baseUrl": "file:/h", "relPath": "a"})
    }

    #[test]
    fn watch_body_is_read_into_fields_and_written_back_byte_for_byte() {
        let m = Message::from_json(WATCH_BODY.as_bytes()).unwrap();
        assert_eq!(m.pub_time, "20261129T014913.519407034");
        assert_eq!(m.rel_path, "cap/sub dir/hello world.txt");
        assert_eq!(m.base_url, "file:/home/bob/to_hpfx");
        assert_eq!(m.source.as_deref(), Some("guest"));
        assert_eq!(m.mode.as_deref(), Some("644"));
        assert_eq!(m.size, Some(6));
        assert_eq!(
            m.identity.as_ref().map(|i| i.method.as_str()),
            Some("sha512")
        );
        assert!(m.extra.is_empty() && m.file_op.is_none());
        assert_eq!(m.to_json(), WATCH_BODY);
    }

    #[test]
    fn missing_required_fields_are_named() {
        for field in ["pubTime", "baseUrl", "relPath"] {
            let mut v = minimal();
            v.as_object_mut().unwrap().remove(field);
            let err = parse(v).unwrap_err();
            assert_eq!(err.to_string(), format!("missing required field {field}"));
        }
    }

    #[test]
    fn bad_json_reports_where() {
        let err = Message::from_json(b"{\"pubTime\": \n oops}").unwrap_err();
        assert!(
            err.to_string().starts_with("bad JSON at line 2 column"),
            "{err}"
        );
        assert!(matches!(
            Message::from_json(b"[1]"),
            Err(MessageError::NotAnObject("an array"))
        ));
        assert!(matches!(
            Message::from_json(b"\xff\xfe"),
            Err(MessageError::Json { .. })
        ));
    }

    #[test]
    fn pub_time_is_validated_and_kept_as_it_came() {
        let mut v = minimal();
        v["pubTime"] = json!("20261129014913.5");
        assert_eq!(parse(v.clone()).unwrap().pub_time, "20261129014913.5");
        v["pubTime"] = json!("2026-11-29T01:49:13");
        let err = parse(v).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("bad pubTime \"2026-11-29T01:49:13\""),
            "{err}"
        );
    }

    #[test]
    fn old_field_names_are_renamed() {
        let mut v = minimal();
        v["retPath"] = json!("get/this");
        v["integrity"] = json!({"method": "md5", "value": "OQNaBYzbTdls4Alci2TXmg=="});
        let m = parse(v).unwrap();
        assert_eq!(m.retrieve_path.as_deref(), Some("get/this"));
        assert_eq!(m.identity.unwrap().method, "md5");
        assert!(m.extra.is_empty());
    }

    #[test]
    fn size_may_be_a_string_or_a_v2_parts_header() {
        let mut v = minimal();
        v["size"] = json!("3000");
        assert_eq!(parse(v.clone()).unwrap().size, Some(3000));
        v["size"] = json!(-1);
        assert!(matches!(parse(v.clone()), Err(MessageError::BadSize(_))));
        v["size"] = json!("lots");
        assert!(matches!(parse(v.clone()), Err(MessageError::BadSize(_))));
        v.as_object_mut().unwrap().remove("size");
        v["parts"] = json!("1,42,1,0,0");
        let m = parse(v.clone()).unwrap();
        assert_eq!((m.size, m.extra.get("parts")), (Some(42), None));
        v["parts"] = json!("i,1024,3,10,1");
        let m = parse(v).unwrap();
        assert_eq!(
            (m.size, m.extra.get("parts")),
            (None, Some(&json!("i,1024,3,10,1")))
        );
    }

    #[test]
    fn unknown_fields_are_kept_in_order_and_written_last() {
        let body = r#"{"zeta": 1, "pubTime": "20261129T014913.5", "from_cluster": "hpfx", "baseUrl": "file:/h", "relPath": "a", "headers": {"k": "v"}, "ratio": 0.5}"#;
        let m = Message::from_json(body.as_bytes()).unwrap();
        let keys: Vec<&str> = m.extra.keys().map(String::as_str).collect();
        assert_eq!(keys, ["zeta", "from_cluster", "headers", "ratio"]);
        assert_eq!(
            m.to_json(),
            r#"{"pubTime": "20261129T014913.5", "relPath": "a", "baseUrl": "file:/h", "zeta": 1, "from_cluster": "hpfx", "headers": {"k": "v"}, "ratio": 0.5}"#
        );
    }

    #[test]
    fn file_op_keys_are_read_and_unknown_ones_kept() {
        let mut v = minimal();
        v["fileOp"] = json!({"link": "t", "rename": "/h/old", "future": {"x": 1}});
        let m = parse(v).unwrap();
        let op = m.file_op.clone().unwrap();
        assert_eq!(
            (op.link.as_deref(), op.rename.as_deref()),
            (Some("t"), Some("/h/old"))
        );
        assert_eq!(op.extra.get("future"), Some(&json!({"x": 1})));
        assert!(m
            .to_json()
            .ends_with(r#""fileOp": {"link": "t", "rename": "/h/old", "future": {"x": 1}}}"#));
    }

    #[test]
    fn wrong_types_in_known_fields_are_rejected_and_null_means_absent() {
        let mut v = minimal();
        v["mode"] = json!(644);
        assert_eq!(
            parse(v.clone()).unwrap_err().to_string(),
            "field mode: expected a string, got a number"
        );
        v["mode"] = Value::Null;
        assert_eq!(parse(v.clone()).unwrap().mode, None);
        v["identity"] = json!({"method": "sha512"});
        assert_eq!(
            parse(v.clone()).unwrap_err().to_string(),
            "field identity.value: expected a string, got null"
        );
        v["identity"] = json!("sha512");
        assert!(parse(v.clone()).is_err());
        v["identity"] = Value::Null;
        v["fileOp"] = json!({"link": 3});
        assert!(parse(v).is_err());
    }

    #[test]
    fn extra_entries_named_like_known_fields_are_not_written_twice() {
        let mut m = parse(minimal()).unwrap();
        m.extra.insert("relPath".into(), json!("other"));
        let back = Message::from_json(m.to_json().as_bytes()).unwrap();
        assert_eq!(back.rel_path, "a");
        assert!(back.extra.is_empty());
    }

    #[test]
    fn every_field_survives_a_round_trip() {
        let mut m = Message::new("sftp://u@h/d", "x/é 😀.txt");
        m.retrieve_path = Some("r/x".into());
        m.identity = Some(Identity {
            method: "cod".into(),
            value: "sha512".into(),
        });
        m.size = Some(u64::MAX);
        m.mtime = Some("20261129T014913".into());
        m.atime = Some("20261129014913.1".into());
        m.mode = Some("4755".into());
        m.file_op = Some(FileOp {
            remove: true,
            directory: true,
            link: Some("l".into()),
            hlink: Some("h".into()),
            rename: Some("/o\"ld\n".into()),
            extra: Map::from_iter([("k".to_string(), json!([1.5, null, false]))]),
        });
        m.content_type = Some("text/plain".into());
        m.source = Some("guest".into());
        m.extra.insert("to_clusters".into(), json!("ALL"));
        m.extra.insert("float".into(), json!(1e-7));
        assert_eq!(Message::from_json(m.to_json().as_bytes()).unwrap(), m);
    }
}
