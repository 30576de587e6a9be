//! v02 or v03: which encoding a received message is in, and publishing in
//! the one a config asks for (`post_format`).
//!
//! A received message's format is told by its content type when it has one
//! (`text/plain` is v02, `application/json` v03: what sr3 goes by), else by
//! the first word of its topic (`v02`, `v03`), unless the body says
//! otherwise: a v03 body is a JSON object, so starts with `{`, and a v02
//! body never does (it starts with a time). So a v03 body under a `v02.post`
//! topic, which sr3 sites do publish, reads as v03; a body under any other
//! topic reads as v02 unless it starts with `{`.

use super::v02::{self, Headers};
use super::{Message, MessageError};

/// The content type of a v03 body.
pub const V03_CONTENT_TYPE: &str = "application/json";

/// An encoding of [`Message`] on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    V02,
    V03,
}

/// A message encoded for publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub topic: String,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    /// Empty for v03.
    pub headers: Headers,
    /// Fields the format could not carry (see [`v02::V02::lost`]).
    pub lost: Vec<String>,
}

impl Format {
    /// `v02` or `v03` (the values of `post_format` pitcher writes).
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "v02" => Some(Format::V02),
            "v03" => Some(Format::V03),
            _ => None,
        }
    }

    /// The body's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::V02 => v02::CONTENT_TYPE,
            Format::V03 => V03_CONTENT_TYPE,
        }
    }

    /// The format of a received message (see the module doc).
    pub fn of_received(topic: &str, content_type: Option<&str>, body: &[u8]) -> Format {
        match content_type.map(str::trim) {
            Some(v02::CONTENT_TYPE) => return Format::V02,
            Some(V03_CONTENT_TYPE) => return Format::V03,
            _ => {}
        }
        if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            return Format::V03;
        }
        match topic.split('.').next() {
            // Not JSON: read as v03 all the same, to say so.
            Some("v03") => Format::V03,
            _ => Format::V02,
        }
    }
}

impl Message {
    /// Read a received message, v02 or v03 (see the module doc for which).
    pub fn decode(
        topic: &str,
        content_type: Option<&str>,
        body: &[u8],
        headers: &Headers,
    ) -> Result<Message, MessageError> {
        match Format::of_received(topic, content_type, body) {
            Format::V03 => Message::from_json(body),
            Format::V02 => Message::from_v02(body, headers),
        }
    }

    /// This message in `format`, with its topic under `topic_prefix`.
    pub fn encode(&self, format: Format, topic_prefix: &str) -> Encoded {
        match format {
            Format::V03 => Encoded {
                topic: self.topic(topic_prefix),
                body: self.to_json().into_bytes(),
                content_type: V03_CONTENT_TYPE,
                headers: Headers::new(),
                lost: Vec::new(),
            },
            Format::V02 => {
                let v = self.to_v02(topic_prefix);
                Encoded {
                    topic: v.topic,
                    body: v.body.into_bytes(),
                    content_type: v02::CONTENT_TYPE,
                    headers: v.headers,
                    lost: v.lost,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_then_topic_then_body_tell_the_format() {
        let v02_body = b"20261129014903.5 file:/h a";
        let v03_body = br#"{"pubTime": "20261129T014903.5"}"#;
        let of = Format::of_received;
        assert_eq!(of("v03.a", Some("text/plain"), v02_body), Format::V02);
        assert_eq!(
            of("v02.post", Some("application/json"), v03_body),
            Format::V03
        );
        assert_eq!(of("v02.post.a", None, v02_body), Format::V02);
        assert_eq!(of("v03", None, v03_body), Format::V03);
        assert_eq!(of("v02.post.a", None, v03_body), Format::V03);
        assert_eq!(of("v03.a", None, b"not json"), Format::V03);
        assert_eq!(
            of("v03", Some("application/octet-stream"), v03_body),
            Format::V03
        );
        assert_eq!(of("x.y", None, v02_body), Format::V02);
        assert_eq!(of("", None, b" \n{}"), Format::V03);
    }

    #[test]
    fn malformed_v02_says_v02() {
        let err = Message::decode("v02.post", None, b"just one", &Headers::new()).unwrap_err();
        assert!(err.to_string().starts_with("bad v02 message: "), "{err}");
        let err = Message::decode("v03", None, b"{oops", &Headers::new()).unwrap_err();
        assert!(err.to_string().starts_with("bad JSON"), "{err}");
    }

    #[test]
    fn encode_v03_is_to_json_with_the_topic() {
        let m = Message::new("file:/h", "a/b");
        let e = m.encode(Format::V03, "v03");
        assert_eq!(
            (e.topic.as_str(), e.content_type),
            ("v03.a", "application/json")
        );
        assert_eq!(e.body, m.to_json().into_bytes());
        assert!(e.headers.is_empty() && e.lost.is_empty());
        let e = m.encode(Format::V02, "v02.post");
        assert_eq!(
            (e.topic.as_str(), e.content_type),
            ("v02.post.a", "text/plain")
        );
        assert_eq!(
            Message::decode(&e.topic, Some(e.content_type), &e.body, &e.headers).unwrap(),
            m
        );
    }
}
