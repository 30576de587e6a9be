//! How an exchange and an AMQP-style topic become an MQTT topic, and back,
//! exactly as sr3's MQTT moth lays them out.
//!
//! sr3 has no exchanges on MQTT: the exchange is the first level of the
//! topic, followed by topicPrefix and the directories of relPath, one level
//! each (`xs_guest/v03/cap/sub dir`). `#` and `+` in names, which MQTT
//! would read as wildcards, are sent as `%23` and `%2B`
//! (sarracenia/moth/mqtt.py putNewMessage). A subscription is shared by the
//! instances of one queue: `$share/<queue>/<exchange>/<prefix>/<subtopic>`
//! (sarracenia/config/subscription.py).
//!
//! Inside pitcher a topic is AMQP's routing key: words joined by `.`, with
//! `#` and `*` in names escaped as `%23` and `%22` (see
//! [`crate::message::Message::topic`]). Binding patterns use AMQP's `*`
//! (one word) and `#` (any number of words), which become MQTT's `+` and
//! `#`.

use crate::broker::Binding;
use crate::message::unescape_topic_word;

/// The MQTT topic sr3 would publish a message on.
///
/// `topic` is pitcher's routing key (`v03.cap.sub dir`). Its `.` cannot
/// tell a level from a dot inside a directory name, so when the v03 `body`
/// names a `relPath` whose directories end the routing key, the levels are
/// taken from the relPath itself, as sr3 does: `a.b/f` under `v03` is
/// `x/v03/a.b`, not `x/v03/a/b`.
pub fn publish_topic(exchange: &str, topic: &str, body: &[u8]) -> String {
    let levels = levels_from_rel_path(topic, body)
        .unwrap_or_else(|| words(topic).into_iter().map(unescape_topic_word).collect());
    let mut out = String::from(exchange);
    for level in &levels {
        out.push('/');
        out.push_str(&escape_level(level));
    }
    out
}

/// The levels of the routing key, when the body's relPath explains it:
/// the words of the prefix, then the relPath's directories whole.
fn levels_from_rel_path(topic: &str, body: &[u8]) -> Option<Vec<String>> {
    let rel_path = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(msg) => {
            if msg.get("topic").is_some() {
                // An explicit topic field overrides the derivation from relPath.
                return None;
            }
            msg.get("relPath")?.as_str()?.to_string()
        }
        Err(_) => v02_rel_path(body)?,
    };
    let rel_path = rel_path.as_str();
    let mut dirs: Vec<&str> = rel_path.split('/').collect();
    dirs.pop();
    let dir_words = dirs
        .iter()
        .map(|d| escape_amqp_word(d))
        .collect::<Vec<_>>()
        .join(".");
    let prefix = if dirs.is_empty() {
        topic
    } else if topic == dir_words {
        ""
    } else {
        topic.strip_suffix(dir_words.as_str())?.strip_suffix('.')?
    };
    let mut levels: Vec<String> = words(prefix).into_iter().map(unescape_topic_word).collect();
    levels.extend(dirs.iter().map(|d| d.to_string()));
    Some(levels)
}

/// The relPath of a v02 body (`<pubTime> <baseUrl> <relPath>`, with ` `
/// and `#` written `%20` and `%23`).
fn v02_rel_path(body: &[u8]) -> Option<String> {
    let line = std::str::from_utf8(body).ok()?.lines().next()?;
    let rel = line.split(' ').nth(2).filter(|r| !r.is_empty())?;
    Some(rel.replace("%20", " ").replace("%23", "#"))
}

/// The topic filter of one binding, shared by every consumer of `queue`:
/// `$share/<queue>/<exchange>/<levels>`, with AMQP's `*` as `+`.
///
/// A word may also hold MQTT levels (`cap/#`, as sr3 configs on MQTT
/// write subtopics). Fails when MQTT cannot express the binding: `#`
/// anywhere but last, or a queue name holding `/`, `+` or `#`.
pub fn subscription_filter(queue: &str, binding: &Binding) -> Result<String, String> {
    if queue.is_empty() || queue.contains(['/', '+', '#']) {
        return Err(format!(
            "queue name '{queue}' cannot name an MQTT shared subscription (it must be non-empty, without '/', '+' or '#')"
        ));
    }
    if binding.exchange.is_empty() || binding.exchange.contains(['/', '+', '#']) {
        return Err(format!(
            "exchange '{}' cannot be an MQTT topic level",
            binding.exchange
        ));
    }
    let levels: Vec<&str> = words(&binding.topic)
        .into_iter()
        .flat_map(|w| w.split('/'))
        .collect();
    let mut out = format!("$share/{queue}/{}", binding.exchange);
    for (i, level) in levels.iter().enumerate() {
        let mapped = match *level {
            "#" if i + 1 < levels.len() => {
                return Err(format!(
                    "binding {} on exchange {}: MQTT allows '#' only as the last word",
                    binding.topic, binding.exchange
                ))
            }
            "#" => "#".to_string(),
            "*" | "+" => "+".to_string(),
            literal => escape_level(&unescape_topic_word(literal)),
        };
        out.push('/');
        out.push_str(&mapped);
    }
    Ok(out)
}

/// The exchange and routing key of a message received on MQTT `topic`:
/// the first level, and the other levels joined by `.` in AMQP's escaping.
pub fn delivery_topic(topic: &str) -> (String, String) {
    let mut levels = topic.split('/');
    let exchange = levels.next().unwrap_or_default().to_string();
    let words: Vec<String> = levels
        .map(|l| escape_amqp_word(&unescape_level(l)))
        .collect();
    (exchange, words.join("."))
}

/// The words of a routing key or pattern: none for the empty string.
fn words(s: &str) -> Vec<&str> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('.').collect()
    }
}

/// sr3's escaping of the MQTT wildcards in a topic level.
fn escape_level(name: &str) -> String {
    name.replace('#', "%23").replace('+', "%2B")
}

/// The reverse of [`escape_level`].
fn unescape_level(level: &str) -> String {
    level.replace("%23", "#").replace("%2B", "+")
}

/// sr3's escaping of the AMQP wildcards in a routing key word.
fn escape_amqp_word(name: &str) -> String {
    name.replace('#', "%23").replace('*', "%22")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(rel_path: &str) -> Vec<u8> {
        serde_json::json!({ "relPath": rel_path, "baseUrl": "file:/h" })
            .to_string()
            .into_bytes()
    }

    fn bind(exchange: &str, topic: &str) -> Binding {
        Binding {
            exchange: exchange.into(),
            topic: topic.into(),
        }
    }

    #[test]
    fn exchange_is_the_first_level_and_each_word_a_level() {
        let t = publish_topic("xs_guest", "v03.cap.sub dir", &body("cap/sub dir/f.txt"));
        assert_eq!(t, "xs_guest/v03/cap/sub dir");
    }

    #[test]
    fn a_file_at_the_root_is_published_under_the_prefix() {
        assert_eq!(publish_topic("xpublic", "v03", &body("f")), "xpublic/v03");
    }

    #[test]
    fn a_dot_in_a_directory_name_stays_inside_its_level() {
        let t = publish_topic("x", "v03.a.b.c", &body("a.b/c/f"));
        assert_eq!(t, "x/v03/a.b/c");
    }

    #[test]
    fn a_v02_body_names_its_relpath_too() {
        let body = b"20261129014903.5 file:/h a.b/c%20d/f.txt";
        assert_eq!(
            publish_topic("x", "v02.post.a.b.c d", body),
            "x/v02/post/a.b/c d"
        );
    }

    #[test]
    fn without_a_relpath_the_routing_key_words_are_the_levels() {
        assert_eq!(publish_topic("x", "v03.a.b", b"not json"), "x/v03/a/b");
        let explicit = br#"{"relPath": "a.b/f", "topic": "v03.a.b"}"#;
        assert_eq!(publish_topic("x", "v03.a.b", explicit), "x/v03/a/b");
    }

    #[test]
    fn wildcards_in_names_are_escaped_the_sr3_mqtt_way() {
        // pitcher's routing key carries `#` and `*` as %23 and %22; on MQTT
        // sr3 escapes `#` and `+`, and `*` is an ordinary character.
        let t = publish_topic("x", "v03.c%231.st%22r.a+b", &body("c#1/st*r/a+b/f"));
        assert_eq!(t, "x/v03/c%231/st*r/a%2Bb");
        let t = publish_topic("x", "v03.c%231.st%22r.a+b", b"{}");
        assert_eq!(t, "x/v03/c%231/st*r/a%2Bb");
    }

    #[test]
    fn received_topics_come_back_in_amqp_form() {
        assert_eq!(
            delivery_topic("xs_guest/v03/cap/sub dir"),
            ("xs_guest".to_string(), "v03.cap.sub dir".to_string())
        );
        assert_eq!(
            delivery_topic("x/v03/c%231/st*r/a%2Bb"),
            ("x".to_string(), "v03.c%231.st%22r.a+b".to_string())
        );
        assert_eq!(delivery_topic("x"), ("x".to_string(), String::new()));
    }

    #[test]
    fn bindings_become_shared_subscriptions_with_mqtt_wildcards() {
        let f = |t| subscription_filter("q_u.sender.s.1", &bind("xs_u", t)).unwrap();
        assert_eq!(f("v03.#"), "$share/q_u.sender.s.1/xs_u/v03/#");
        assert_eq!(f("v03.*.ccc"), "$share/q_u.sender.s.1/xs_u/v03/+/ccc");
        assert_eq!(
            f("v03.cap/+/x/#"),
            "$share/q_u.sender.s.1/xs_u/v03/cap/+/x/#"
        );
        assert_eq!(f("v03.c%231"), "$share/q_u.sender.s.1/xs_u/v03/c%231");
        assert_eq!(f("v03.a+b"), "$share/q_u.sender.s.1/xs_u/v03/a%2Bb");
    }

    #[test]
    fn bindings_mqtt_cannot_express_are_refused() {
        assert!(subscription_filter("q", &bind("x", "v03.#.ccc")).is_err());
        assert!(subscription_filter("q/1", &bind("x", "v03.#")).is_err());
        assert!(subscription_filter("q", &bind("x+", "v03.#")).is_err());
        assert!(subscription_filter("", &bind("x", "v03.#")).is_err());
    }
}
