//! The AMQP routing key of a message (sarracenia/postformat topicDerive and
//! moth/amqp.py putNewMessage).
//!
//! topicPrefix + the directory parts of relPath, joined by `.`. A `.` inside
//! a directory name is not escaped (it makes two topic words, as in sr3);
//! `#` and `*`, the AMQP wildcards, become `%23` and `%22`. A `topic` field
//! in the message overrides the derivation.
//!
//! Routing keys are AMQP short strings (at most 255 bytes). sr3 truncates to
//! 255 bytes, backing off to a UTF-8 boundary; we do the same (sr3 only
//! checks the length in characters, so a long non-ASCII key fails to
//! publish there; here it is cut too).

use serde_json::Value;

use super::Message;

/// The longest routing key AMQP 0-9-1 carries (a short string).
const ROUTING_KEY_MAX: usize = 255;

impl Message {
    /// The routing key this message is published with under `prefix`
    /// (post_topicPrefix, normally `v03`): `cap/sub dir/f` → `v03.cap.sub dir`,
    /// a file at the root → `v03`.
    pub fn topic(&self, prefix: &str) -> String {
        let raw = match self.extra.get("topic") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(words)) => words
                .iter()
                .map(|w| match w {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("."),
            _ => {
                let mut words: Vec<&str> = Vec::new();
                if !prefix.is_empty() {
                    words.push(prefix);
                }
                // Like Python's relPath.split('/')[0:-1]: every part but the
                // last, empty ones included.
                let mut parts: Vec<&str> = self.rel_path.split('/').collect();
                parts.pop();
                words.extend(parts);
                words.join(".")
            }
        };
        truncate(&escape(&raw), ROUTING_KEY_MAX)
    }
}

/// sr3's escaping of the AMQP wildcards in a topic.
fn escape(topic: &str) -> String {
    topic.replace('#', "%23").replace('*', "%22")
}

/// The reverse of sr3's topic escaping: `%23` → `#`, `%22` → `*`.
///
/// The escaping is not one-to-one (a name really containing `%23` also
/// reads back as `#`), exactly as in sr3.
pub fn unescape_topic_word(w: &str) -> String {
    w.replace("%23", "#").replace("%22", "*")
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(rel: &str) -> Message {
        Message::new("file:/h", rel)
    }

    #[test]
    fn topic_is_prefix_plus_directories() {
        assert_eq!(at("run1/sub/f").topic("v03"), "v03.run1.sub");
        assert_eq!(
            at("cap/sub dir/hello world.txt").topic("v03"),
            "v03.cap.sub dir"
        );
    }

    #[test]
    fn file_at_the_root_gets_just_the_prefix() {
        assert_eq!(at("first.txt").topic("v03"), "v03");
    }

    #[test]
    fn dot_in_a_directory_name_is_not_escaped() {
        assert_eq!(at("a.b/c.d/e.f").topic("v03"), "v03.a.b.c.d");
    }

    #[test]
    fn wildcards_are_escaped_and_unescaped() {
        let t = at("cap#1/st*r/f#*.bin").topic("v03");
        assert_eq!(t, "v03.cap%231.st%22r");
        let words: Vec<String> = t.split('.').map(unescape_topic_word).collect();
        assert_eq!(words, ["v03", "cap#1", "st*r"]);
    }

    #[test]
    fn prefix_may_have_several_words_or_none() {
        assert_eq!(at("a/f").topic("v03.post"), "v03.post.a");
        assert_eq!(at("a/b/f").topic(""), "a.b");
    }

    #[test]
    fn topic_field_overrides_the_derivation() {
        let mut m = at("a/b/f");
        m.extra.insert("topic".into(), json!("v03.some#where"));
        assert_eq!(m.topic("v03"), "v03.some%23where");
        m.extra.insert("topic".into(), json!(["v03", "x", "y"]));
        assert_eq!(m.topic("v03"), "v03.x.y");
    }

    #[test]
    fn long_topic_is_cut_to_255_bytes() {
        let m = at(&format!("{}/{}/f", "d".repeat(200), "e".repeat(100)));
        let t = m.topic("v03");
        assert_eq!(t.len(), 255);
        assert!(t.starts_with("v03.ddd") && t.contains("d.eee") && t.ends_with("eee"));
    }

    #[test]
    fn long_non_ascii_topic_is_cut_on_a_char_boundary() {
        // "v03." is 4 bytes, each "é" 2 and each "☃" 3: 255 falls inside a char.
        for word in ["é".repeat(200), "☃".repeat(100)] {
            let t = at(&format!("{word}/f")).topic("v03");
            assert!(t.len() < 255 && t.len() >= 252, "{}", t.len());
            assert!(t.starts_with("v03."));
        }
    }
}
