//! The tutorial's configs (seed/hot-directory-tutorial.md), exactly as
//! written there, must load with sr3's meaning.

use super::tests::Site;
use super::*;
use std::path::Path;
use std::time::Duration;

const CREDENTIALS: &str = "amqps://pas037:pas037_password@hpfx.collab.science.gc.ca\n";

/// watch/to_hpfx.conf, verbatim.
const WATCH: &str = r#"
post_broker amqps://pas037@hpfx.collab.science.gc.ca
post_exchange xs_pas037_loli_bob_to_hpfx

post_baseUrl file:${HOME}/to_hpfx
path ${HOME}/to_hpfx

nodupe_ttl on

# exclude working files (that end in .tmp)
reject .*.tmp$
accept .*

"#;

/// sender/to_hpfx.conf, verbatim (including its `post_broker hpfx://` typo).
const SENDER: &str = r#"
broker amqps://pas037@hpfx.collab.science.gc.ca
exchange xs_pas037_loli_bob_to_hpfx

# sento host should match Host in ~/.ssh/config
sendTo sftp://hpfx

# how many parallel transfer processes.
instances 5 

# by default file removals will also be updated on hpfx.
#fileEvents -delete,rmdir

# use scp binary for files bigger than a threshold.
# for smaller files, it batches a whole batch of transfers over a single
# connection, saving setup/teardown per file, but done in python.
# for larger files, a binary will consume less cpu, and likely be faster
# if the link between both ends can support it.
accelThreshold 1M

# perhaps you have a faster/better large file transfer method available?
# wrap it in a script that accepts scp style invocation
# accelScpCommand /usr/bin/your_fancy_scp %s %d


# while files are being uploaded, have a .tmp suffix:
inflight .tmp

nodupe_ttl on

# exclude working files (that end in .tmp)
reject .*.tmp$
accept .*

post_broker hpfx://pas037@hpfx.collab.science.gc.ca

post_baseUrl sftp://pas037@hpfx.collab.science.gc.ca/on_hpfx

# make the posted path relative to this:
post_baseDir /home/pas037/on_hpfx

post_exchange xs_pas037_on_hpfx

"#;

/// post/queue_for_hpfx.conf, verbatim.
const POST: &str = r#"
post_broker amqps://pas037@hpfx.collab.science.gc.ca
post_exchange xs_pas037_loli_bob_queue_for_hpfx

post_baseUrl file:

nodupe_ttl on

# exclude working files (that end in .tmp)
reject .*.tmp$
accept .*
"#;

/// sender/queue_for_hpfx.conf, as the tutorial shows it with `more`.
const QUEUE_SENDER: &str = r#"
broker amqps://pas037@hpfx.collab.science.gc.ca
exchange xs_pas037_loli_bob_queue_for_hpfx

sendTo sftp://hpfx

# while files are being uploaded, have a .tmp suffix:
inflight .tmp

nodupe_ttl on

# how many processes participate in transfer (parallelism.)
instances 1

accelThreshold 1M

# exclude working files (that end in .tmp)
reject .*.tmp$
accept .*


# tell others about uploaded files.

post_broker amqps://pas037@hpfx.collab.science.gc.ca

# channel others can subscribe to get notice when files arrive.
post_exchange xs_pas037_new_in_to_hpfx

post_baseUrl sftp://pas037@hpfx.collab.science.gc.ca/on_hpfx

# what to subtract from the path when posting
post_baseDir /home/pas037/on_hpfx

"#;

fn tutorial_site() -> Site {
    let site = Site::new();
    site.write("credentials.conf", CREDENTIALS);
    site
}

#[test]
fn tutorial_watch_config_loads_with_sr3_meaning() {
    let site = tutorial_site();
    site.write("watch/to_hpfx.conf", WATCH);
    let c = site.load(Component::Watch, "to_hpfx").unwrap();
    let broker = c.post_broker.as_ref().expect("post_broker");
    assert_eq!(broker.host_str(), Some("hpfx.collab.science.gc.ca"));
    assert_eq!(
        (broker.username(), broker.password()),
        ("pas037", Some("pas037_password"))
    );
    assert_eq!(
        c.post_exchange.as_deref(),
        Some("xs_pas037_loli_bob_to_hpfx")
    );
    assert_eq!(c.post_base_url.as_deref(), Some("file:/home/bob/to_hpfx"));
    assert_eq!(c.post_base_dir.as_deref(), Some("/home/bob/to_hpfx"));
    assert_eq!(c.paths, ["/home/bob/to_hpfx"]);
    assert_eq!(c.nodupe_ttl, Duration::from_secs(300));
    assert_eq!(c.sleep, Some(Duration::from_secs(5)));
    assert_eq!(c.post_topic_prefix, "v03");
    assert_eq!(c.inflight, Inflight::None);
    let [tmp, all] = &c.masks[..] else {
        panic!("two masks")
    };
    assert!(!tmp.accept && all.accept);
    assert!(tmp.regex.is_match("file:/home/bob/to_hpfx/a.tmp"));
    assert!(!tmp.regex.is_match("file:/home/bob/to_hpfx/a.txt"));
    assert!(all.regex.is_match("file:/home/bob/to_hpfx/a.txt"));
    assert!(c.broker.is_none() && c.bindings.is_empty());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn tutorial_sender_post_broker_typo_is_reported_with_its_line() {
    let site = tutorial_site();
    site.write("sender/to_hpfx.conf", SENDER);
    let line = SENDER
        .lines()
        .position(|l| l.starts_with("post_broker"))
        .expect("has post_broker")
        + 1;
    let e = site.load(Component::Sender, "to_hpfx").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "sender/to_hpfx.conf:{line}: unknown broker scheme 'hpfx' in 'hpfx://pas037@hpfx.collab.science.gc.ca': expected one of amqp, amqps, mqtt, mqtts, local"
        )
    );
}

#[test]
fn tutorial_sender_config_loads_with_amqps_post_broker() {
    let site = tutorial_site();
    site.write(
        "sender/to_hpfx.conf",
        &SENDER.replace("post_broker hpfx://", "post_broker amqps://"),
    );
    let c = site.load(Component::Sender, "to_hpfx").unwrap();
    let broker = c.broker.as_ref().expect("broker");
    assert_eq!(broker.password(), Some("pas037_password"));
    assert_eq!(c.exchange.as_deref(), Some("xs_pas037_loli_bob_to_hpfx"));
    assert_eq!(
        c.bindings,
        [Binding {
            exchange: "xs_pas037_loli_bob_to_hpfx".into(),
            topic: "v03.#".into()
        }]
    );
    assert_eq!(c.send_to.as_deref(), Some("sftp://hpfx"));
    assert!(
        c.send_to_details.is_none(),
        "hpfx is an ssh alias, not in credentials.conf"
    );
    assert_eq!(c.instances, 5);
    assert_eq!(c.accel_threshold, 1_000_000);
    assert_eq!(c.inflight, Inflight::Suffix(".tmp".into()));
    assert_eq!(c.nodupe_ttl, Duration::from_secs(300));
    assert_eq!(
        c.file_events,
        FileEvents::default(),
        "the fileEvents line is commented out"
    );
    assert_eq!(
        c.accel_scp_command, "/usr/bin/scp %s %d",
        "accelScpCommand is commented out"
    );
    assert_eq!(c.masks.len(), 2);
    assert_eq!(
        c.post_broker.as_ref().and_then(|u| u.password()),
        Some("pas037_password")
    );
    assert_eq!(
        c.post_base_url.as_deref(),
        Some("sftp://pas037@hpfx.collab.science.gc.ca/on_hpfx")
    );
    assert_eq!(c.post_base_dir.as_deref(), Some("/home/pas037/on_hpfx"));
    assert_eq!(c.post_exchange.as_deref(), Some("xs_pas037_on_hpfx"));
    assert!(c.download && c.mirror);
    assert_eq!(c.sleep, Some(Duration::from_millis(100)));
    // The one warning: sr3 reads the post_baseUrl path as /on_hpfx.
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].starts_with("sender/to_hpfx.conf:37: post_baseUrl"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn tutorial_post_and_queue_sender_configs_load() {
    let site = tutorial_site();
    site.write("post/queue_for_hpfx.conf", POST);
    let c = site.load(Component::Post, "queue_for_hpfx").unwrap();
    assert_eq!(c.post_base_url.as_deref(), Some("file:"));
    assert_eq!(c.post_base_dir.as_deref(), Some(""));
    assert_eq!(c.sleep, None, "post runs one pass");
    assert_eq!(
        c.post_exchange.as_deref(),
        Some("xs_pas037_loli_bob_queue_for_hpfx")
    );

    site.write("sender/queue_for_hpfx.conf", QUEUE_SENDER);
    let c = site.load(Component::Sender, "queue_for_hpfx").unwrap();
    assert_eq!(
        c.exchange.as_deref(),
        Some("xs_pas037_loli_bob_queue_for_hpfx")
    );
    assert_eq!(c.post_exchange.as_deref(), Some("xs_pas037_new_in_to_hpfx"));
    assert_eq!(c.instances, 1);
    assert_eq!(
        c.file.as_path(),
        site.dir.path().join("sender/queue_for_hpfx.conf").as_path()
    );
    assert!(Path::new(&c.file).is_file());
    // Its post_baseUrl names /on_hpfx for sr3, not /home/pas037/on_hpfx.
    let w = c
        .warnings
        .iter()
        .find(|w| w.contains("post_baseUrl"))
        .expect("a warning about post_baseUrl");
    assert!(w.starts_with("sender/queue_for_hpfx.conf:29: "), "{w}");
    assert!(w.contains("will look for /on_hpfx/<relPath>"), "{w}");
    assert!(
        w.contains(
            "write post_baseUrl sftp://pas037@hpfx.collab.science.gc.ca/home/pas037/on_hpfx"
        ),
        "{w}"
    );
}

#[test]
fn an_sftp_post_baseurl_naming_post_basedir_draws_no_warning() {
    let site = tutorial_site();
    for url in [
        "sftp://pas037@hpfx.collab.science.gc.ca/home/pas037/on_hpfx",
        "sftp://pas037@hpfx.collab.science.gc.ca//home/pas037/on_hpfx/",
    ] {
        site.write(
            "sender/ok.conf",
            &format!("broker amqp://h\nsendTo sftp://hpfx\npost_broker amqp://h\npost_baseUrl {url}\npost_baseDir /home/pas037/on_hpfx\n"),
        );
        let c = site.load(Component::Sender, "ok").unwrap();
        assert!(
            !c.warnings.iter().any(|w| w.contains("post_baseUrl")),
            "{url}: {:?}",
            c.warnings
        );
    }
}
