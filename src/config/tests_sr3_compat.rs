//! Older and unusual lines from sr3's own example configs: sr2 keywords,
//! the ones sr3 converts or declares obsolete, options spelled out at the
//! value pitcher already honours, per-message variables, two brokers.
//! (tests/sr3_examples.rs loads the installed examples themselves.)

use super::tests::Site;
use super::*;

fn err(r: Result<Config, ConfigError>) -> String {
    match r {
        Ok(c) => panic!("expected an error, loaded with warnings {:?}", c.warnings),
        Err(e) => e.to_string(),
    }
}

#[test]
fn sr2_keywords_sr3_does_not_read_stop_at_their_line_with_what_to_write() {
    let site = Site::new();
    let watch = |line: &str| {
        site.write(
            "watch/w.conf",
            &format!("post_broker amqp://u:p@h\npath /data\n{line}\n"),
        );
        err(site.load(Component::Watch, "w"))
    };
    assert_eq!(
        watch("url sftp://${USER}@ss1/x"),
        "watch/w.conf:3: 'url' is sr2's old name for post_baseUrl, which sr3 does not read (it reports an undeclared option and the line has no effect): write post_baseUrl sftp://${USER}@ss1/x"
    );
    let e = watch("to broker");
    assert!(
        e.starts_with("watch/w.conf:3: 'to' is sr2's name for to_clusters")
            && e.ends_with("delete the line"),
        "{e}"
    );
    let e = watch("post_document_root /var/www");
    assert!(e.ends_with("write post_baseDir /var/www"), "{e}");
    let e = watch("kbytes_ps 10");
    assert!(e.ends_with("write byteRateMax 10240"), "{e}");
}

#[test]
fn obsolete_v2_options_are_warnings_that_say_so() {
    let site = Site::new();
    let c = site.sender("cache_stat on\nto_clusters DDI\n").unwrap();
    assert_eq!(
        c.warnings,
        vec![
            "sender/t.conf:3: 'cache_stat' is a v2 option sr3 marks obsolete; line ignored",
            "sender/t.conf:4: 'to_clusters' is a v2 option sr3 marks obsolete; line ignored",
        ]
    );
}

/// sr3's examples spell out defaults (`realpath off`, flow/watch.inc's
/// `blocksize 1`, `rename None`): at those values pitcher does what sr3
/// does, so the line is honoured without a warning; any other value is
/// still a warning. `report` is implemented: either value is honoured.
#[test]
fn sr3_options_at_the_value_pitcher_honours_load_without_warnings() {
    let site = Site::new();
    let c = site
        .sender("report false\nrealpath off\ndelete off\nblocksize 1\nrandomize False\nrename None\nsourceFromExchange off\n")
        .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(!c.report);
    let c = site
        .sender("report on\nblocksize 0\nrename newname\nrealpath\n")
        .unwrap();
    assert!(c.report);
    let lines: Vec<&str> = c
        .warnings
        .iter()
        .map(|w| &w[..w.find(": ").unwrap()])
        .collect();
    assert_eq!(
        lines,
        ["sender/t.conf:4", "sender/t.conf:5", "sender/t.conf:6"],
        "{:?}",
        c.warnings
    );
    assert!(c.warnings[0]
        .contains("'blocksize' (blockSize) is an sr3 option pitcher does not implement"));
}

#[test]
fn per_message_variables_in_a_directory_stop_at_their_line() {
    let site = Site::new();
    site.write(
        "subscribe/s.conf",
        "broker amqp://u:p@h\nsubtopic #\nmirror True\ndirectory ${HOME}/${YYYYMMDD}/${SOURCE}/\n",
    );
    let e = err(site.load(Component::Subscribe, "s"));
    assert!(
        e.starts_with("subscribe/s.conf:4: ${SOURCE} is each message's source, which sr3 fills in per message; pitcher does not"),
        "{e}"
    );
    site.write(
        "subscribe/s.conf",
        "broker amqp://u:p@h\ndirectory /d\npost_broker amqp://u:p@h\npost_baseUrl http://localhost/${BUPL}\n",
    );
    let e = err(site.load(Component::Subscribe, "s"));
    assert!(
        e.starts_with("subscribe/s.conf:4: ${BUPL} is the last directory"),
        "{e}"
    );
    // Dates still wait for message time in a directory.
    site.write(
        "subscribe/s.conf",
        "broker amqp://u:p@h\ndirectory /d/${YYYYMMDD}\n",
    );
    let c = site.load(Component::Subscribe, "s").unwrap();
    assert_eq!(c.directory.as_deref(), Some("/d/${YYYYMMDD}"));
}

/// sr3's subscribe/dual_amis.conf: each subtopic binds on the broker in
/// force at its line, and sr3 consumes from both brokers.
#[test]
fn a_second_broker_after_subtopic_is_an_error_naming_its_line() {
    let site = Site::new();
    site.write(
        "subscribe/s.conf",
        "broker amqps://a.example/\nsubtopic x.#\nbroker amqps://b.example/\nsubtopic x.#\ndirectory /d\n",
    );
    let e = err(site.load(Component::Subscribe, "s"));
    assert!(
        e.starts_with("subscribe/s.conf:3: a second broker after subtopic: sr3 would consume from both brokers"),
        "{e}"
    );
    // Before any subtopic the last broker wins, as in sr3; repeating the
    // same broker changes nothing.
    site.write(
        "subscribe/s.conf",
        "broker amqps://a.example/\nbroker amqps://b.example/\nsubtopic x.#\nbroker amqps://b.example/\nsubtopic y.#\ndirectory /d\n",
    );
    let c = site.load(Component::Subscribe, "s").unwrap();
    assert_eq!(c.broker.unwrap().host_str(), Some("b.example"));
    assert_eq!(c.bindings.len(), 2);
}

#[test]
fn a_sender_to_a_scheme_pitcher_cannot_send_to_gets_a_warning() {
    let site = Site::new();
    site.write(
        "sender/am.conf",
        "broker amqp://u:p@h\nsendTo am://127.0.0.1:5005\n",
    );
    let c = site.load(Component::Sender, "am").unwrap();
    assert_eq!(
        c.warnings,
        vec!["sender/am.conf:2: sendTo am://127.0.0.1:5005: pitcher's sender delivers to file: and sftp:// destinations only; with this one it will refuse to start"]
    );
    assert!(site.sender("").unwrap().warnings.is_empty());
}
