//! Fuzz the v03 message decoder: arbitrary bytes as a message body.
//!
//! `Message::from_json` must return `Ok` or a `MessageError`, never panic.
//! When it accepts a body, the message must survive a round trip through
//! `to_json` unchanged, `to_json` must be valid JSON equal to
//! `to_json_value`, and its routing key (`topic("v03")`) must fit an AMQP
//! short string (255 bytes).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pitcher::message::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::from_json(data) else {
        return;
    };
    let body = message.to_json();
    let again = Message::from_json(body.as_bytes())
        .unwrap_or_else(|e| panic!("to_json wrote a body from_json refuses: {e}\n{body}"));
    assert_eq!(again, message, "round trip changed the message\n{body}");
    assert_eq!(
        again.to_json(),
        body,
        "writing the re-read message gave other bytes"
    );
    let value: serde_json::Value = serde_json::from_str(&body).expect("to_json is JSON");
    assert_eq!(
        value,
        message.to_json_value(),
        "to_json and to_json_value differ"
    );

    for prefix in ["v03", ""] {
        let topic = message.topic(prefix);
        assert!(
            topic.len() <= 255,
            "topic of {} bytes: {topic:?}",
            topic.len()
        );
    }
    let _ = message.url();
});
