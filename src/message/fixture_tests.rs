//! Tests against real sr3 output: the RabbitMQ capture of the tutorial's
//! watch and sender (tests/fixtures/sr3-v03-wire.jsonl), and bodies made by
//! sr3's own code for awkward names (tests/fixtures/sr3_bodies.jsonl, from
//! make_sr3_bodies.py).

use serde_json::Value;

use super::{pyjson, FileMessageOptions, Message};

const WIRE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sr3-v03-wire.jsonl"
));
const SR3_BODIES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sr3_bodies.jsonl"
));

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("fixture line is JSON"))
        .collect()
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("fixture field {k}"))
}

#[test]
fn every_captured_body_parses_routes_and_serializes_back_as_sr3_wrote_it() {
    let wire = lines(WIRE);
    assert_eq!(wire.len(), 16);
    for line in &wire {
        let body = &line["body"];
        // The capture stores the decoded body; json.dumps of it (key order
        // kept) is the byte string sr3 published.
        let python_bytes = pyjson::to_string(body);
        let m = Message::from_json(python_bytes.as_bytes()).expect("captured body parses");
        assert_eq!(m.pub_time, str_of(body, "pubTime"));
        assert_eq!(m.base_url, str_of(body, "baseUrl"));
        assert_eq!(m.rel_path, str_of(body, "relPath"));
        assert_eq!(m.source.as_deref(), Some("guest"));
        assert!(m.extra.is_empty(), "{:?}", m.extra);
        assert_eq!(
            m.topic("v03"),
            str_of(line, "routing_key"),
            "{python_bytes}"
        );
        let ours: Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(&ours, body);
        assert_eq!(m.to_json(), python_bytes);
    }
}

#[test]
fn captured_file_operations_are_understood() {
    let msgs: Vec<Message> = lines(WIRE)
        .iter()
        .filter(|l| str_of(l, "exchange") == "xs_guest_loli_bob_to_hpfx")
        .map(|l| Message::from_json(pyjson::to_string(&l["body"]).as_bytes()).unwrap())
        .collect();
    let by_path = |rel: &str, pick: &dyn Fn(&Message) -> bool| {
        msgs.iter()
            .find(|m| m.rel_path == rel && pick(m))
            .unwrap_or_else(|| panic!("{rel}"))
            .clone()
    };
    let is_dir = |m: &Message| m.file_op.as_ref().is_some_and(|o| o.directory && !o.remove);
    let mkdir = by_path("cap/sub dir", &is_dir);
    assert_eq!(mkdir.mode.as_deref(), Some("755"));
    assert_eq!(mkdir.content_type.as_deref(), Some("text/directory"));

    let hello = by_path("cap/sub dir/hello world.txt", &|m| m.file_op.is_none());
    assert_eq!(hello.size, Some(6));
    assert_eq!(
        hello.url(),
        "file:/home/bob/to_hpfx/cap/sub dir/hello world.txt"
    );

    let renamed = by_path("cap/report.csv", &|m| m.file_op.is_some());
    assert_eq!(
        renamed.file_op.unwrap().rename.as_deref(),
        Some("/home/bob/to_hpfx/cap/report.csv.tmp")
    );
    let link = by_path("cap/latest.csv", &|_| true);
    assert_eq!(
        link.file_op.unwrap().link.as_deref(),
        Some("report-final.csv")
    );

    let removed = by_path("cap/data#1*.bin", &|m| m.file_op.is_some());
    let op = removed.file_op.unwrap();
    assert!(op.remove && !op.directory);
    let rmdir = by_path("cap/sub dir", &|m| {
        m.file_op.as_ref().is_some_and(|o| o.remove)
    });
    assert!(rmdir.file_op.unwrap().directory);
}

#[test]
fn bodies_made_by_sr3_are_reproduced_byte_for_byte() {
    let cases = lines(SR3_BODIES);
    assert!(cases.len() >= 15);
    for case in &cases {
        let name = str_of(case, "name");
        let body = str_of(case, "body");
        let m = Message::from_json(body.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.to_json(), body, "{name}");
        assert_eq!(m.topic("v03"), str_of(case, "routing_key"), "{name}");
        assert_eq!(
            m.base_url,
            format!("file:{}", str_of(case, "hot")),
            "{name}"
        );
    }
}

#[test]
fn our_file_messages_match_sr3s_for_the_same_content() {
    let dir = tempfile::tempdir().unwrap();
    for case in lines(SR3_BODIES)
        .iter()
        .filter(|c| c.get("content").is_some())
    {
        let name = str_of(case, "name");
        let sr3 = Message::from_json(str_of(case, "body").as_bytes()).unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, str_of(case, "content")).unwrap();
        let mode = u32::from_str_radix(str_of(case, "chmod"), 8).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let opts = FileMessageOptions {
            identity_method: sr3
                .identity
                .as_ref()
                .map_or("none", |i| &i.method)
                .to_string(),
            time_copy: sr3.mtime.is_some(),
            perm_copy: sr3.mode.is_some(),
            source: sr3.source.clone(),
        };
        let ours = Message::for_file(&sr3.base_url, &sr3.rel_path, &path, &opts).unwrap();
        assert_eq!(ours.identity, sr3.identity, "{name}");
        assert_eq!(ours.size, sr3.size, "{name}");
        assert_eq!(ours.mode, sr3.mode, "{name}");
        assert_eq!(ours.source, sr3.source, "{name}");
        assert_eq!(ours.mtime.is_some(), sr3.mtime.is_some(), "{name}");
        assert_eq!(ours.atime.is_some(), sr3.atime.is_some(), "{name}");
        assert_eq!(ours.topic("v03"), str_of(case, "routing_key"), "{name}");
    }
}

#[test]
fn our_fs_event_messages_have_sr3s_shape() {
    for case in lines(SR3_BODIES) {
        let sr3 = Message::from_json(str_of(&case, "body").as_bytes()).unwrap();
        let (b, r) = (sr3.base_url.as_str(), sr3.rel_path.as_str());
        let mut ours = match str_of(&case, "name") {
            "mkdir" => Message::for_mkdir(b, r, 0o755),
            "rmdir" => Message::for_rmdir(b, r),
            "remove" => Message::for_remove(b, r),
            "symlink" => Message::for_link(b, r, "../sub dir/hello world.txt"),
            _ => continue,
        };
        ours.source = Some("guest".into());
        ours.pub_time = sr3.pub_time.clone();
        assert_eq!(ours.to_json(), str_of(&case, "body"));
    }
}

/// A small deterministic xorshift generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn from_json_never_panics_on_mutated_bodies_and_what_it_accepts_round_trips() {
    let mut seeds: Vec<Vec<u8>> = lines(WIRE)
        .iter()
        .map(|l| pyjson::to_string(&l["body"]).into_bytes())
        .collect();
    seeds.extend(
        lines(SR3_BODIES)
            .iter()
            .map(|c| str_of(c, "body").as_bytes().to_vec()),
    );
    let interesting: &[&[u8]] = &[
        b"\"",
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"\\u",
        b"\\ud800",
        b"null",
        b"-1",
        b"1e999",
        b"\"20261129\"",
        b"\xff",
        b"\xc3",
        b"0",
        b".",
        b"T",
        b"e-05",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut accepted = 0;
    for round in 0..20_000 {
        let mut body = seeds[round % seeds.len()].clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(body.len() + 1);
            match rng.below(4) {
                0 if at < body.len() => body[at] = rng.next() as u8,
                1 => body.truncate(at),
                2 => {
                    let ins = interesting[rng.below(interesting.len())];
                    body.splice(at..at, ins.iter().copied());
                }
                _ if at < body.len() => {
                    body.remove(at);
                }
                _ => {}
            }
        }
        if let Ok(m) = Message::from_json(&body) {
            accepted += 1;
            let again = Message::from_json(m.to_json().as_bytes())
                .unwrap_or_else(|e| panic!("re-read of {:?}: {e}", m.to_json()));
            assert_eq!(again, m);
        }
    }
    // Mutations often leave a valid message (a changed letter in a value);
    // make sure the round-trip branch really ran.
    assert!(accepted > 100, "{accepted}");
}
