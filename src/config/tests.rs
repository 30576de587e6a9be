//! Loading whole configs from a temporary config dir: the language as a
//! user meets it (files, includes, variables, credentials, errors).

use super::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

/// A config dir in a temp dir, read with a made-up environment: bob on
/// loli, so no test depends on the real HOME.
pub(super) struct Site {
    pub dir: tempfile::TempDir,
    pub env: Environment,
}

impl Site {
    pub fn new() -> Site {
        Site {
            dir: tempfile::tempdir().expect("temp dir"),
            env: Environment::new([("HOME", "/home/bob"), ("USER", "bob")], "loli"),
        }
    }

    /// Write `text` to `rel` under the config dir (credentials.conf 0600).
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        if rel == "credentials.conf" {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        path
    }

    pub fn load(&self, component: Component, name: &str) -> Result<Config, ConfigError> {
        load_with(self.dir.path(), component, name, &self.env)
    }

    /// Write `sender/t.conf` with a minimal valid sender plus `extra`, load it.
    pub fn sender(&self, extra: &str) -> Result<Config, ConfigError> {
        self.write(
            "sender/t.conf",
            &format!("broker amqp://u:p@h\nsendTo sftp://host/dir\n{extra}"),
        );
        self.load(Component::Sender, "t")
    }
}

fn err(r: Result<Config, ConfigError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn comments_blank_lines_and_indentation_are_ignored() {
    let site = Site::new();
    let c = site
        .sender("\n   # a comment\n\t instances   4  \n#instances 9\n")
        .unwrap();
    assert_eq!(c.instances, 4);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn trailing_hash_is_not_a_comment_as_in_sr3() {
    let site = Site::new();
    let c = site
        .sender("instances 5 # five\ndirectory /d # here\n")
        .unwrap();
    assert_eq!(c.instances, 5);
    assert!(
        c.warnings[0].contains("sender/t.conf:3: 'instances' takes one value; ignoring '# five'"),
        "{:?}",
        c.warnings
    );
    assert_eq!(c.directory.as_deref(), Some("/d # here"));
}

#[test]
fn legacy_synonyms_set_the_modern_options() {
    let site = Site::new();
    site.write("sender/t.conf", "broker amqp://u:p@h\ndestination sftp://host/x\ncache on\npreserve_time off\npreserve_mode no\nlock .part\naccel_threshold 2M\nheartbeat 1m\nintegrity md5\nevents -delete\nchmod_dir 755\nbase_dir /b\npost_base_url file:/p\n");
    let c = site.load(Component::Sender, "t").unwrap();
    assert_eq!(c.send_to.as_deref(), Some("sftp://host/x"));
    assert_eq!(c.nodupe_ttl, Duration::from_secs(300));
    assert!(!c.time_copy && !c.perm_copy);
    assert_eq!(c.inflight, Inflight::Suffix(".part".into()));
    assert_eq!(c.accel_threshold, 2_000_000);
    assert_eq!(c.housekeeping, Duration::from_secs(60));
    assert_eq!(c.identity_method, "md5");
    assert!(!c.file_events.delete && c.file_events.create);
    assert_eq!(c.perm_dir_default, 0o755);
    assert_eq!(c.base_dir.as_deref(), Some("/b"));
    assert_eq!(c.post_base_url.as_deref(), Some("file:/p"));
}

#[test]
fn unknown_option_is_an_error_with_a_suggestion() {
    let site = Site::new();
    let e = err(site.sender("acelThreshold 1M\n"));
    assert_eq!(
        e,
        "sender/t.conf:3: unknown option 'acelThreshold' (did you mean accelThreshold?)"
    );
    let e = err(site.sender("frobnicate yes\n"));
    assert_eq!(e, "sender/t.conf:3: unknown option 'frobnicate'");
}

#[test]
fn sr3_option_pitcher_lacks_is_a_warning_not_an_error() {
    let site = Site::new();
    let c = site
        .sender("callback log\nexchangeSplit 4\nlogEvents all\n")
        .unwrap();
    assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
    assert!(c.warnings[0]
        .starts_with("sender/t.conf:3: 'callback' is an sr3 option pitcher does not implement"));
    assert!(c.warnings[1].starts_with("sender/t.conf:4: 'exchangeSplit'"));
}

#[test]
fn bad_values_name_the_line_and_what_was_expected() {
    let site = Site::new();
    let e = err(site.sender("instances abc\n"));
    assert_eq!(
        e,
        "sender/t.conf:3: expected a whole number such as 5, not 'abc'"
    );
    let e = err(site.sender("accelThreshold 1Q\n"));
    assert!(e.starts_with("sender/t.conf:3: expected a size"), "{e}");
    let e = err(site.sender("timeout soon\n"));
    assert!(e.starts_with("sender/t.conf:3: expected a duration"), "{e}");
    let e = err(site.sender("mirror perhaps\n"));
    assert!(e.starts_with("sender/t.conf:3: expected on or off"), "{e}");
    let e = err(site.sender("inflight tmp\n"));
    assert!(e.contains(".suffix"), "{e}");
    let e = err(site.sender("directory\n"));
    assert_eq!(e, "sender/t.conf:3: 'directory' needs a value");
}

#[test]
fn flags_alone_mean_on() {
    let site = Site::new();
    let c = site.sender("mirror off\nmirror\ndownload false\n").unwrap();
    assert!(c.mirror && !c.download);
}

#[test]
fn value_notations() {
    let site = Site::new();
    let c = site
        .sender("nodupe_ttl 10m\nsleep -1\nfileSizeMax 1Mi\nbyteRateMax 10k\nexpire 1h\nstrip 2\ninflight 30\nmessageRateMax 2.5\nnodupe_basis name\n")
        .unwrap();
    assert_eq!(c.nodupe_ttl, Duration::from_secs(600));
    assert_eq!(c.sleep, None);
    assert_eq!((c.file_size_max, c.byte_rate_max), (1 << 20, 10_000));
    assert_eq!(c.expire, Some(Duration::from_secs(3600)));
    assert_eq!(c.retry_ttl, c.expire, "retry_ttl follows expire");
    assert!(matches!(c.strip, Strip::Count(2)));
    assert_eq!(
        (c.inflight.clone(), c.file_age_min),
        (Inflight::None, Duration::from_secs(30))
    );
    assert_eq!(c.message_rate_max, 2.5);
    assert_eq!(c.nodupe_basis, NodupeBasis::Name);
    let c = site
        .sender("nodupe_ttl off\nstrip /data/[0-9]+/\n")
        .unwrap();
    assert_eq!(c.nodupe_ttl, Duration::ZERO);
    let Strip::Pattern(r) = &c.strip else {
        panic!("strip regex")
    };
    assert_eq!(r.as_str(), "data/[0-9]+/");
}

#[test]
fn masks_capture_the_destination_options_in_force_at_their_line() {
    let site = Site::new();
    let c = site
        .sender("directory /a\nmirror off\naccept .*\\.txt\ndirectory ~/b\nstrip 1\nflatten -\nfilename NONE\nreject .*\\.tmp\naccept x y\n")
        .unwrap();
    let [txt, tmp, x] = &c.masks[..] else {
        panic!("three masks")
    };
    assert!(txt.accept && !tmp.accept);
    assert_eq!((txt.directory.as_deref(), txt.mirror), (Some("/a"), false));
    assert!(matches!(txt.strip, Strip::Count(0)) && txt.flatten == "/" && txt.filename.is_none());
    assert_eq!(tmp.directory.as_deref(), Some("/home/bob/b"));
    assert!(matches!(tmp.strip, Strip::Count(1)));
    assert_eq!(
        (tmp.flatten.as_str(), tmp.filename.as_deref()),
        ("-", Some("NONE"))
    );
    assert_eq!(x.filename.as_deref(), Some("y"));
    // anchored at the start only, like Python's re.match
    assert!(txt.regex.is_match("a.txt") && txt.regex.is_match("a.txt.bak"));
    assert!(x.regex.is_match("xy") && !x.regex.is_match("ax"));
}

#[test]
fn bad_regex_is_an_error_with_file_and_line() {
    let site = Site::new();
    let e = err(site.sender("accept .*(\n"));
    assert!(
        e.starts_with("sender/t.conf:3: invalid regular expression '.*('"),
        "{e}"
    );
}

#[test]
fn variables_expand_from_options_and_environment() {
    let site = Site::new();
    let c = site
        .sender("declare env DATA=/srv/data\ndirectory ${DATA}/${COMPONENT}/${CONFIG}/${YYYYMMDD}\npost_baseDir ${HOME}/${HH}\nsource ${USER}_${HOSTNAME}\nexchange xs_${BROKER_USER}\nqueueName q_${BROKER_USER}.${INSTANCE}\n")
        .unwrap();
    assert_eq!(
        c.directory.as_deref(),
        Some("/srv/data/sender/t/${YYYYMMDD}")
    );
    assert_eq!(c.post_base_dir.as_deref(), Some("/home/bob/${HH}"));
    assert_eq!(c.source.as_deref(), Some("bob_loli"));
    assert_eq!(c.exchange.as_deref(), Some("xs_u"));
    assert_eq!(
        c.queue_name.as_deref(),
        Some("q_${BROKER_USER}.${INSTANCE}"),
        "queueName is never expanded"
    );
    assert_eq!(c.env, vec![("DATA".to_string(), "/srv/data".to_string())]);
}

#[test]
fn unknown_variable_is_an_error_naming_it() {
    let site = Site::new();
    let e = err(site.sender("directory ${NOWHERE}/x\n"));
    assert!(
        e.starts_with("sender/t.conf:3: unknown variable ${NOWHERE}"),
        "{e}"
    );
    let e = err(site.sender("source ${YYYYMMDD}\n"));
    assert!(
        e.contains("${YYYYMMDD}"),
        "date variables only wait for message time in directories: {e}"
    );
}

#[test]
fn includes_search_component_dir_then_config_dir_and_report_their_own_lines() {
    let site = Site::new();
    site.write("sender/local.inc", "instances 3\n");
    site.write("common.inc", "\nbatch 7\n");
    let abs = site.write("elsewhere/abs.inc", "prefetch 9\n");
    let c = site
        .sender(&format!(
            "include local.inc\nconfig common.inc\ninclude {}\n",
            abs.display()
        ))
        .unwrap();
    assert_eq!((c.instances, c.batch, c.prefetch), (3, 7, 9));

    site.write("bad.inc", "# fine\nbatch lots\n");
    let e = err(site.sender("include bad.inc\n"));
    assert_eq!(
        e,
        "bad.inc:2: expected a whole number such as 5, not 'lots'"
    );
    let e = err(site.sender("include missing.inc\n"));
    assert!(
        e.starts_with("sender/t.conf:3: include file 'missing.inc' not found"),
        "{e}"
    );
}

#[test]
fn include_cycle_is_an_error() {
    let site = Site::new();
    site.write("a.inc", "include b.inc\n");
    site.write("b.inc", "include a.inc\n");
    let e = err(site.sender("include a.inc\n"));
    assert!(
        e.contains("include cycle: sender/t.conf -> a.inc -> b.inc -> a.inc"),
        "{e}"
    );
}

#[test]
fn default_conf_is_read_first_but_component_defaults_win_over_it() {
    let site = Site::new();
    site.write("admin.conf", "declare env SITE=s1\n");
    site.write("default.conf", "sleep 10\ninstances 2\nsource ${SITE}\n");
    site.write("watch/w.conf", "post_broker local:\npath /x\n");
    let c = site.load(Component::Watch, "w").unwrap();
    assert_eq!(c.instances, 2);
    assert_eq!(c.source.as_deref(), Some("s1"));
    assert_eq!(
        c.sleep,
        Some(Duration::from_secs(5)),
        "watch's own default beats default.conf, as in sr3"
    );
    let c = site.sender("").unwrap();
    assert_eq!(c.sleep, Some(Duration::from_secs(10)));
}

#[test]
fn credentials_fill_broker_and_send_to() {
    let site = Site::new();
    site.write(
        "credentials.conf",
        "amqps://u:pw%21@broker.example\nsftp://pas037@hpfx ssh_keyfile=/\n",
    );
    site.write(
        "sender/t.conf",
        "broker amqps://u@broker.example\nsendTo sftp://hpfx/on_hpfx\n",
    );
    let c = site.load(Component::Sender, "t").unwrap();
    assert_eq!(c.broker.as_ref().and_then(|u| u.password()), Some("pw%21"));
    let details = c.send_to_details.clone().expect("sendTo matched");
    assert_eq!(
        details.ssh_keyfile.as_deref(),
        Some(std::path::Path::new("/"))
    );
    assert_eq!(c.send_to_url.as_ref().expect("parsed").username(), "pas037");
    assert!(!c.show().contains("pw%21"));
}

#[test]
fn group_readable_credentials_give_a_warning() {
    let site = Site::new();
    let path = site.write("credentials.conf", "amqps://u:pw@h\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let c = site.sender("").unwrap();
    assert!(c
        .warnings
        .iter()
        .any(|w| w.starts_with("credentials.conf: readable by group or others")));
}

#[test]
fn passwords_never_appear_in_errors() {
    let site = Site::new();
    let e = err(site.sender("post_broker ampq://u:hunter2@h\n"));
    assert!(
        e.contains("unknown broker scheme 'ampq'") && !e.contains("hunter2"),
        "{e}"
    );
    let e = err(site.sender("broker amqp://u:hunter2@h:notaport\n"));
    assert!(
        e.contains("amqp://u:***@h:notaport") && !e.contains("hunter2"),
        "{e}"
    );
}

#[test]
fn exchanges_and_bindings_follow_sr3() {
    let site = Site::new();
    let c = site.sender("").unwrap();
    assert_eq!(c.exchange.as_deref(), Some("xs_u"));
    assert_eq!(
        c.bindings,
        vec![Binding {
            exchange: "xs_u".into(),
            topic: "v03.#".into()
        }]
    );

    let c = site.sender("exchangeSuffix s\nsubtopic a.#\nexchange xpublic\ntopicPrefix v02.post\nsubtopic b.*\n").unwrap();
    assert_eq!(c.exchange.as_deref(), Some("xpublic"));
    assert_eq!(
        c.bindings,
        vec![
            Binding {
                exchange: "xs_u_s".into(),
                topic: "v03.a.#".into()
            },
            Binding {
                exchange: "xpublic".into(),
                topic: "v02.post.b.*".into()
            },
        ]
    );
    assert_eq!(c.post_topic_prefix, "v02.post");

    site.write("subscribe/anon.conf", "broker amqps://hpfx.collab.science.gc.ca\ndirectory /d\npost_broker amqp://p:x@h\npost_exchangeSuffix out\npost_topicPrefix v03.x\n");
    let c = site.load(Component::Subscribe, "anon").unwrap();
    assert_eq!(c.exchange.as_deref(), Some("xpublic"));
    assert_eq!(c.broker.as_ref().map(|u| u.username()), Some("anonymous"));
    assert_eq!(c.post_exchange.as_deref(), Some("xs_p_out"));
    assert_eq!(
        (c.topic_prefix.as_str(), c.post_topic_prefix.as_str()),
        ("v03", "v03.x")
    );
}

#[test]
fn subtopic_before_broker_is_an_error() {
    let site = Site::new();
    site.write(
        "sender/t.conf",
        "subtopic a.#\nbroker amqp://u:p@h\nsendTo sftp://h\n",
    );
    let e = err(site.load(Component::Sender, "t"));
    assert!(
        e.starts_with("sender/t.conf:1: subtopic needs broker"),
        "{e}"
    );
}

#[test]
fn broker_schemes() {
    let site = Site::new();
    for ok in [
        "local:",
        "amqp://u:p@h",
        "amqps://u:p@h",
        "mqtt://u:p@h",
        "mqtts://u:p@h:8883",
    ] {
        site.write("post/p.conf", &format!("post_broker {ok}\n"));
        let c = site
            .load(Component::Post, "p")
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert_eq!(
            c.post_broker.map(|u| u.scheme().to_string()).as_deref(),
            ok.split(':').next()
        );
    }
    site.write("post/p.conf", "\npost_broker hpfx://pas037@h\n");
    let e = err(site.load(Component::Post, "p"));
    assert_eq!(
        e,
        "post/p.conf:2: unknown broker scheme 'hpfx' in 'hpfx://pas037@h': expected one of amqp, amqps, mqtt, mqtts, local"
    );
}

#[test]
fn required_options_are_checked_per_component() {
    let site = Site::new();
    site.write("sender/empty.conf", "instances 2\n");
    let e = err(site.load(Component::Sender, "empty"));
    assert!(
        e.starts_with("sender/empty.conf: a sender config needs broker"),
        "{e}"
    );
    let e = err(site.load(Component::Watch, "nope"));
    assert_eq!(e, "watch/nope.conf: no such config file");
}

#[test]
fn list_finds_every_config_sorted() {
    let site = Site::new();
    site.write("watch/b.conf", "");
    site.write("watch/a.conf", "");
    site.write("sender/z.conf", "");
    site.write("sender/notes.txt", "");
    site.write("sender/x.inc", "");
    site.write("default.conf", "");
    let names: Vec<String> = list(site.dir.path())
        .into_iter()
        .map(|(c, n)| format!("{c}/{n}"))
        .collect();
    assert_eq!(names, ["sender/z", "watch/a", "watch/b"]);
}

#[test]
fn load_path_names_the_config_after_the_file() {
    let site = Site::new();
    let file = site.write("elsewhere/my_post.conf", "post_broker local:\n");
    let c = load_path_with(site.dir.path(), Component::Post, &file, &site.env).unwrap();
    assert_eq!(c.name, "my_post");
    assert_eq!(c.file, file);
}

#[test]
fn show_lists_effective_options_with_passwords_hidden() {
    let site = Site::new();
    let c = site
        .sender("accept .* \nsshConfig ~/ssh_config\nheader a=b\n")
        .unwrap();
    let text = c.show();
    for line in [
        "broker amqp://u:***@h",
        "sendTo sftp://host/dir",
        "exchange xs_u",
        "bindings xs_u v03.#",
        "instances 1",
        "sleep 0.1",
        "sshConfig /home/bob/ssh_config",
        "header a=b",
        "inflight None",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing '{line}' in:\n{text}"
        );
    }
    assert!(!text.contains(":p@"));

    let c = site
        .sender("directory /a\naccept a.*\nmirror off\nreject b.* f\n")
        .unwrap();
    let text = c.show();
    // directory /a and mirror off are the config-wide values shown above
    // the masks; the first mask was written while mirror was still on.
    let at = text.find("mirror on\naccept a.*\nmirror off\nreject b.* f\n");
    assert!(
        at.is_some(),
        "masks with their captured options in:\n{text}"
    );
}

#[test]
fn declare_forms() {
    let site = Site::new();
    let c = site
        .sender("declare exchange xs_extra\ndeclare subscriber anon\n")
        .unwrap();
    assert_eq!(c.declared_exchanges, ["xs_extra"]);
    assert!(
        c.warnings[0].contains("'declare subscriber'"),
        "{:?}",
        c.warnings
    );
    let e = err(site.sender("declare env NOEQUALS\n"));
    assert!(e.contains("expected declare env NAME=VALUE"), "{e}");
}

#[test]
fn post_format_v02_publishes_under_v02_post_and_unknown_formats_are_refused() {
    let site = Site::new();
    site.write("post/p.conf", "post_broker local:\npost_format v02\n");
    let c = site.load(Component::Post, "p").unwrap();
    assert_eq!(
        (c.post_format.as_str(), c.post_topic_prefix.as_str()),
        ("v02", "v02.post")
    );
    site.write(
        "post/p.conf",
        "post_broker local:\npost_format v02\npost_topicPrefix v03.x\n",
    );
    let c = site.load(Component::Post, "p").unwrap();
    assert_eq!(c.post_topic_prefix, "v03.x");
    site.write("post/p.conf", "post_broker local:\n");
    assert_eq!(
        site.load(Component::Post, "p").unwrap().post_topic_prefix,
        "v03"
    );
    for (value, why) in [
        ("v04", "expected v02 or v03, not 'v04'"),
        ("wis", "pitcher publishes v02 and v03, not wis"),
    ] {
        site.write(
            "post/p.conf",
            &format!("post_broker local:\n\npost_format {value}\n"),
        );
        let e = err(site.load(Component::Post, "p"));
        assert!(e.starts_with("post/p.conf:3: ") && e.contains(why), "{e}");
    }
}
