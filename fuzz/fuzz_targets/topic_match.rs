//! Fuzz the local broker's AMQP topic matcher.
//!
//! Input: `pattern \0 topic`. `topic_matches` must not panic, must agree
//! with a plainly written (memoised recursive) matcher of RabbitMQ's
//! rules, and must stay fast however many `#` the pattern holds (libFuzzer's
//! `-timeout` catches a blow-up).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pitcher::broker::local::topic_matches;
/// The words of a topic or pattern: none for the empty string.
fn words(s: &str) -> Vec<&str> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('.').collect()
    }
}

/// Reference matcher: whether `pattern[i..]` matches `topic[j..]`.
fn reference(
    pattern: &[&str],
    topic: &[&str],
    i: usize,
    j: usize,
    memo: &mut [Option<bool>],
) -> bool {
    let cell = i * (topic.len() + 1) + j;
    if let Some(known) = memo[cell] {
        return known;
    }
    let result = match pattern.get(i) {
        None => j == topic.len(),
        Some(&"#") => (j..=topic.len()).any(|k| reference(pattern, topic, i + 1, k, memo)),
        Some(&"*") => j < topic.len() && reference(pattern, topic, i + 1, j + 1, memo),
        Some(literal) => {
            topic.get(j) == Some(literal) && reference(pattern, topic, i + 1, j + 1, memo)
        }
    };
    memo[cell] = Some(result);
    result
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, topic) = text.split_once('\0').unwrap_or((text, ""));
    let got = topic_matches(pattern, topic);
    let (p, t) = (words(pattern), words(topic));
    // Bound the reference's recursion depth (once per pattern word) and
    // its cubic time: it is the slow, obvious one.
    if p.len() <= 2000 && p.len() * t.len() <= 100_000 {
        let mut memo = vec![None; (p.len() + 1) * (t.len() + 1)];
        let expected = reference(&p, &t, 0, 0, &mut memo);
        assert_eq!(got, expected, "pattern {pattern:?} topic {topic:?}");
    }
});
