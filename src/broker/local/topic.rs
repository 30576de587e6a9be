//! AMQP topic matching, as a topic exchange routes: a binding pattern and a
//! message topic are both words separated by `.`; in the pattern `*` stands
//! for exactly one word and `#` for zero or more words.

/// Whether a binding `pattern` (`v03.#`, `v03.*.ccc`) selects `topic`
/// (`v03.data.ccc`), with RabbitMQ's rules:
///
/// * words are split on `.`; the empty string has no words at all, while
///   `a..b` has an empty middle word (which `*` matches);
/// * `*` matches exactly one word, `#` zero or more; a word that merely
///   contains `*` or `#` (`a*`) is a literal;
/// * comparison is exact and case-sensitive.
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    let pattern = words(pattern);
    let topic = words(topic);
    // Dynamic programming over (pattern word, topic word), one row at a
    // time from the end: `next[j]` says whether pattern[i+1..] matches
    // topic[j..]. Quadratic at worst, never exponential, whatever the
    // number of `#`.
    let mut next = vec![false; topic.len() + 1];
    next[topic.len()] = true;
    for word in pattern.iter().rev() {
        let mut row = vec![false; topic.len() + 1];
        for j in (0..=topic.len()).rev() {
            row[j] = match *word {
                "#" => next[j] || (j < topic.len() && row[j + 1]),
                "*" => j < topic.len() && next[j + 1],
                literal => j < topic.len() && topic[j] == literal && next[j + 1],
            };
        }
        next = row;
    }
    next[0]
}

/// The words of a topic or pattern: none for the empty string.
fn words(s: &str) -> Vec<&str> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('.').collect()
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    /// (pattern, topic, expected) — the table every binding is routed by.
    const CASES: &[(&str, &str, bool)] = &[
        // Literal words.
        ("v03.data", "v03.data", true),
        ("v03.data", "v03.Data", false),
        ("v03.data", "v03", false),
        ("v03", "v03.data", false),
        // `#` at the end: zero or more words.
        ("v03.#", "v03", true),
        ("v03.#", "v03.a", true),
        ("v03.#", "v03.a.b.c", true),
        ("v03.#", "v02.a", false),
        ("v03.#", "v03x.a", false),
        // `*` at the end: exactly one word.
        ("v03.*", "v03.a", true),
        ("v03.*", "v03", false),
        ("v03.*", "v03.a.b", false),
        // `#` alone matches everything, even no words at all.
        ("#", "", true),
        ("#", "a", true),
        ("#", "a.b.c", true),
        // `*` alone needs one word.
        ("*", "", false),
        ("*", "a", true),
        ("*", "a.b", false),
        // `#` in the middle.
        ("a.#.z", "a.z", true),
        ("a.#.z", "a.b.z", true),
        ("a.#.z", "a.b.c.d.z", true),
        ("a.#.z", "a.b", false),
        ("a.#.z", "a.z.b", false),
        ("a.#.z", "z", false),
        // `#` at the start.
        ("#.z", "z", true),
        ("#.z", "a.b.z", true),
        ("#.z", "a.z.b", false),
        // Mixed and repeated wildcards.
        ("a.*.#.z", "a.z", false),
        ("a.*.#.z", "a.b.z", true),
        ("a.*.#.z", "a.b.c.z", true),
        ("#.#", "", true),
        ("#.#", "a.b", true),
        ("#.*.#", "", false),
        ("#.*.#", "a", true),
        ("*.*", "a.b", true),
        ("*.*", "a", false),
        ("v03.*.ccc.#", "v03.data.ccc", true),
        ("v03.*.ccc.#", "v03.data.ccc.x.y", true),
        ("v03.*.ccc.#", "v03.data.cmc.x", false),
        // Empty words are words.
        ("a..b", "a..b", true),
        ("a..b", "a.b", false),
        ("a.*.b", "a..b", true),
        ("*.*", ".", true),
        ("a.#", "a.", true),
        ("a.*", "a.", true),
        ("", "", true),
        ("", "a", false),
        ("a", "", false),
        // A word that only contains a wildcard character is a literal.
        ("a*", "ab", false),
        ("a*", "a*", true),
        ("a.b#", "a.b.c", false),
    ];

    #[test]
    fn topics_route_as_rabbitmq_topic_exchanges_do() {
        for &(pattern, topic, expected) in CASES {
            assert_eq!(
                topic_matches(pattern, topic),
                expected,
                "pattern {pattern:?} vs topic {topic:?}"
            );
        }
    }

    #[test]
    fn many_hashes_stay_fast() {
        let pattern = vec!["#"; 40].join(".") + ".never";
        let topic = vec!["w"; 200].join(".");
        assert!(!topic_matches(&pattern, &topic));
    }
}
