//! sr3's own example configs, from the installed metpx-sr3 package
//! (`sarracenia/examples/{watch,sender,subscribe,post}`), each loaded by
//! pitcher in a throwaway config dir, with the variables they use defined
//! in default.conf as their comments tell an operator to
//! (`declare env PITCHERBROKER=…`) and credentials.conf holding their
//! passwords.
//!
//! Each file must load with its sr3 meaning (a few options checked), or
//! stop at `file:line` saying what to write instead. Where the advice is a
//! line to write or to delete, the test follows it and loads the file
//! again. The expected outcome of every file is listed below, so any change
//! in behaviour (or a new example in a new metpx-sr3) fails here; the
//! table of outcomes is printed either way.
//!
//! Needs metpx-sr3: `PITCHER_SR3_PYTHON` names a python that imports
//! `sarracenia` (`bash scripts/test.sh` sets it). The file is not named
//! `sr3_*`: `sr3 stop` kills processes so named as strays of its own.

use pitcher::config::{self, Component, Config, ConfigError, Strip};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the operator adds to default.conf: every `${VARIABLE}` the
/// examples use that is neither an option nor usually in the environment.
const DEFAULT_CONF: &str = "\
declare env PITCHERBROKER=amqps://bpuser@hpfx1.science.gc.ca
declare env PITCHERURL=sftp://pu@hpfx1.science.gc.ca
declare env PITCHERUSERHOME=/home/pu
declare env SCIUSER=sci
declare env COLLABUSER=collab
declare env COLLABDIR=/home/collab/public_html
declare env FLOWBROKER=localhost
declare env HYDRO_DATA=/srv/hydro
declare env EMAIL_INGEST=/srv/email
";

/// Passwords for the brokers the examples name.
const CREDENTIALS: &str = "\
amqps://bpuser:pw@hpfx1.science.gc.ca
amqps://sci:pw@hpfx1.science.gc.ca
amqp://sci:pw@goc-dx.science.gc.ca
amqp://collab:pw@collab.cmc.ec.gc.ca
amqp://user:pw@broker
amqp://tsource:pw@localhost
amqp://tsub:pw@localhost
amqp://tfeed:pw@localhost
amqp://COPERNICUS:pw@localhost
amqps://plugintest:pw@localhost
mqtt://tsource:pw@localhost
";

/// What loading one file does.
enum Outcome {
    /// It loads; `warned` are the keywords of its warnings, in order;
    /// `check` asserts a few options have their sr3 meaning.
    Loads {
        warned: &'static [&'static str],
        check: Box<dyn Fn(&Config)>,
    },
    /// It stops at `line` (None: the file as a whole) with a message
    /// containing `says`. `then`: the outcome once the advice in the
    /// message (a line to write, or to delete) is followed.
    Stops {
        line: Option<usize>,
        says: &'static str,
        then: Option<Box<Outcome>>,
    },
}

fn loads(warned: &'static [&'static str], check: impl Fn(&Config) + 'static) -> Outcome {
    Outcome::Loads {
        warned,
        check: Box::new(check),
    }
}

fn stops(line: usize, says: &'static str) -> Outcome {
    Outcome::Stops {
        line: Some(line),
        says,
        then: None,
    }
}

fn stops_then(line: usize, says: &'static str, then: Outcome) -> Outcome {
    Outcome::Stops {
        line: Some(line),
        says,
        then: Some(Box::new(then)),
    }
}

fn home() -> String {
    std::env::var("HOME").unwrap_or_default()
}

fn secs(s: u64) -> Option<Duration> {
    Some(Duration::from_secs(s))
}

/// `(exchange, topic)` of every binding.
fn bindings(c: &Config) -> Vec<(&str, &str)> {
    c.bindings
        .iter()
        .map(|b| (b.exchange.as_str(), b.topic.as_str()))
        .collect()
}

fn strip_pattern(c: &Config) -> String {
    match &c.strip {
        Strip::Pattern(re) => re.as_str().to_string(),
        Strip::Count(n) => n.to_string(),
    }
}

/// A datamart (dd.weather.gc.ca) feed: anonymous, v02 messages from
/// xpublic, one subtopic, files into `dir`.
fn datamart(instances: u32, subtopic: &'static str, dir: &'static str) -> Outcome {
    loads(&[], move |c| {
        let b = c.broker.as_ref().unwrap();
        assert_eq!(
            (b.host_str(), b.username()),
            (Some("dd.weather.gc.ca"), "anonymous")
        );
        assert_eq!(bindings(c), [("xpublic", &*format!("v02.post.{subtopic}"))]);
        assert_eq!((c.instances, c.expire), (instances, secs(600)));
        assert_eq!(c.directory.as_deref(), Some(dir));
        assert!(
            c.download && !c.mirror,
            "subscribe: download on, mirror off"
        );
    })
}

/// Every example file (`component/name.conf`) and what it must do.
fn expected() -> Vec<(&'static str, Outcome)> {
    vec![
        // --- watch ---
        (
            "watch/master.conf",
            stops_then(
                77,
                "'to' is sr2's name for to_clusters, which sr3 does not read",
                loads(&["blocksize", "rename"], |c| {
                    assert_eq!(c.paths, ["/home/user/public_html"]);
                    assert_eq!(c.post_exchange.as_deref(), Some("xs_user"));
                    assert_eq!(c.post_base_url.as_deref(), Some("http://server/~user"));
                    let e = c.file_events;
                    assert!(e.create && e.delete && e.link && e.modify && !e.mkdir && !e.rmdir);
                    assert_eq!(c.sleep, secs(5));
                    assert_eq!(c.headers, [("printer".into(), "MyPrinter".into())]);
                    assert_eq!(c.identity_method, "sha512");
                }),
            ),
        ),
        (
            "watch/pitcher_client.conf",
            loads(&[], |c| {
                let x = c.post_exchange.as_deref().unwrap();
                assert!(x.starts_with("xs_bpuser_pitcher_client_"), "{x}");
                assert_eq!(c.paths, [format!("{}/sr_Pitcher", home())]);
                assert_eq!(c.nodupe_ttl, Duration::from_secs(300));
                assert_eq!(c.post_base_dir.as_deref(), Some(""), "post_baseUrl file:");
                assert_eq!(c.post_broker.as_ref().unwrap().password(), Some("pw"));
            }),
        ),
        (
            "watch/pitcher_server.conf",
            loads(&[], |c| {
                assert_eq!(c.post_exchange.as_deref(), Some("xs_bpuser_pitcher"));
                assert_eq!(c.post_base_url.as_deref(), Some("sftp://pu@hpfx1.science.gc.ca"));
                assert!(!c.masks[0].accept && c.masks[1].accept);
            }),
        ),
        (
            "watch/sci2ec.conf",
            // sr2's watch posted with `broker`; sr3's needs post_broker.
            stops_then(
                11,
                "'url' is sr2's old name for post_baseUrl",
                Outcome::Stops {
                    line: None,
                    says: "a watch config needs post_broker",
                    then: None,
                },
            ),
        ),
        // --- sender ---
        (
            "sender/am_send.conf",
            loads(&["callback", "flowcb", "MaxBulLen", "sendTo"], |c| {
                assert_eq!(c.identity_method, "sha512", "sum sha512");
                assert_eq!(c.log_level, "debug");
                assert_eq!(c.exchange.as_deref(), Some("xs_tsource_am"));
            }),
        ),
        (
            "sender/ec2collab.conf",
            loads(&[], |c| {
                assert_eq!(c.exchange.as_deref(), Some("xs_sci_eclocal"));
                assert_eq!(c.send_to.as_deref(), Some("sftp://collab@collab.cmc.ec.gc.ca/"));
                assert_eq!(c.directory.as_deref(), Some("/home/collab/public_html"));
                assert_eq!(c.post_exchange.as_deref(), Some("xs_collab"));
            }),
        ),
        (
            "sender/pitcher_push.conf",
            loads(&[], |c| {
                let x = c.exchange.as_deref().unwrap();
                assert!(x.starts_with("xs_bpuser_pitcher_client_"), "{x}");
                assert_eq!(strip_pattern(c), "(?i).*/sr_Pitcher/");
                assert!(c.mirror);
                assert_eq!(c.send_to.as_deref(), Some("sftp://pu@hpfx1.science.gc.ca"));
                assert_eq!(c.directory.as_deref(), Some("/home/pu/sr_Pitcher"));
                assert_eq!(c.post_exchange.as_deref(), Some("xs_bpuser_pitcher"));
            }),
        ),
        // --- subscribe ---
        (
            "subscribe/aws-nexrad.conf",
            stops(16, "${SOURCE} is each message's source, which sr3 fills in per message; pitcher does not"),
        ),
        (
            "subscribe/dd_2mqtt.conf",
            loads(&[], |c| {
                assert_eq!(bindings(c), [("xpublic", "v02.post.*.WXO-DD.bulletins.#")]);
                assert!(!c.download);
                assert_eq!(c.post_broker.as_ref().unwrap().scheme(), "mqtt");
                assert_eq!(c.post_topic_prefix, "v03");
                assert_eq!(c.post_exchange.as_deref(), Some("xpublic"));
            }),
        ),
        (
            "subscribe/dd_aacn_bulletins.conf",
            loads(&[], |c| {
                assert!(!c.accept_unmatched && c.mirror);
                assert_eq!(c.instances, 2);
                assert_eq!(c.broker.as_ref().unwrap().password(), Some("anonymous"));
                assert_eq!(bindings(c), [("xpublic", "v03.*.WXO-DD.bulletins.alphanumeric.*.AA.CWAO.#")]);
            }),
        ),
        ("subscribe/dd_all.conf", datamart(5, "#", "/tmp/dd_all")),
        ("subscribe/dd_amis.conf", datamart(5, "*.WXO-DD.bulletins.alphanumeric.#", "/tmp/dd_amis")),
        ("subscribe/dd_aqhi.conf", datamart(2, "*.WXO-DD.air_quality.aqhi.#", "/tmp/dd_aqhi")),
        (
            "subscribe/dd_cacn_bulletins.conf",
            loads(&[], |c| {
                assert_eq!(c.masks.len(), 2);
                assert!(c.masks[0].accept && !c.masks[1].accept);
                assert_eq!(c.masks[0].directory.as_deref(), Some("/tmp/cacn_bulletins"));
            }),
        ),
        (
            "subscribe/dd_citypage.conf",
            loads(&[], |c| {
                assert_eq!(c.bindings.len(), 14);
                assert!(c.mirror);
            }),
        ),
        ("subscribe/dd_cmml.conf", datamart(2, "*.WXO-DD.meteocode.*.cmml.#", "/tmp/dd_cmml")),
        ("subscribe/dd_gdps.conf", datamart(5, "*.WXO-DD.model_gem_global.25km.grib2.#", "/tmp/dd_gdps")),
        ("subscribe/dd_radar.conf", datamart(3, "*.WXO-DD.radar.CAPPI.GIF.CASWL.#", "/tmp/dd_radar")),
        (
            "subscribe/dd_rdps.conf",
            loads(&[], |c| {
                assert!(!c.accept_unmatched);
                assert!(c.masks[0].regex.is_match("/x/MSC_RDPS_Pressure_Sfc_RLatLon0.09_PT000H.grib2"));
            }),
        ),
        ("subscribe/dd_swob.conf", datamart(2, "*.WXO-DD.observations.swob-ml.#", "/tmp/dd_swob")),
        (
            "subscribe/ddc_cap-xml.conf",
            loads(&[], |c| {
                assert!(c.mirror);
                assert_eq!(c.directory, Some(format!("{}/datamartclone", home())));
            }),
        ),
        (
            "subscribe/ddc_normal.conf",
            loads(&[], |c| {
                assert!(c.mirror && !c.masks[0].accept);
                assert_eq!(c.expire, secs(600));
            }),
        ),
        (
            "subscribe/download_all_nasa_earthdata.conf",
            loads(&["callback", "acceptSizeWrong", "set"], |c| {
                assert_eq!(c.batch, 5);
                assert_eq!(c.exchange.as_deref(), Some("xs_NASA-TEST"));
            }),
        ),
        (
            "subscribe/downloademail.conf",
            // A template: its sendTo is placeholders for the operator.
            stops(21, "expected a destination URL"),
        ),
        (
            "subscribe/dual_amis.conf",
            stops(20, "a second broker after subtopic: sr3 would consume from both brokers"),
        ),
        (
            "subscribe/ec_ninjo-a.conf",
            loads(&[], |c| {
                assert_eq!(c.instances, 20);
                let first = &c.masks[0];
                assert_eq!(first.directory.as_deref(), Some("/tmp/apps/ninjo/import/point/reports/in"));
                let last = c.masks.last().unwrap();
                assert!(!last.accept);
                assert_eq!(last.directory.as_deref(), Some("/tmp/apps/ninjo/import/point/lightning/in"));
            }),
        ),
        (
            "subscribe/get_copernicus.conf",
            loads(&["callback"], |c| {
                assert_eq!(c.exchange.as_deref(), Some("xs_COPERNICUS"));
                assert_eq!(c.masks.len(), 2);
            }),
        ),
        (
            "subscribe/hpfxWIS2DownloadAll.conf",
            stops(27, "${BUPL} is the last directory of each message's baseUrl path"),
        ),
        (
            "subscribe/hpfx_amis.conf",
            loads(&[], |c| {
                assert!(!c.mirror);
                assert_eq!(c.directory.as_deref(), Some("/tmp/hpfx_amis/"));
            }),
        ),
        (
            "subscribe/hpfx_citypage.conf",
            loads(&[], |c| {
                assert_eq!((c.batch, c.bindings.len()), (10, 14));
            }),
        ),
        (
            "subscribe/local_sub.conf",
            loads(&["callback"], |c| {
                assert_eq!(bindings(c), [("xpublic", "v03.post.#")]);
                assert!(!c.download);
            }),
        ),
        (
            "subscribe/ping.conf",
            // sr3 is given the broker on its command line (see its comment).
            stops(28, "subtopic needs broker"),
        ),
        (
            "subscribe/pitcher_pull.conf",
            loads(&[], |c| {
                assert_eq!(c.exchange.as_deref(), Some("xs_bpuser_pitcher"));
                assert_eq!(strip_pattern(c), ".*/sr_Pitcher/");
                assert!(c.mirror);
                assert_eq!(c.directory, Some(format!("{}/sr_Pitcher", home())));
            }),
        ),
        (
            "subscribe/sci2ec.conf",
            stops_then(
                17,
                "'url' is sr2's old name for post_baseUrl",
                loads(&[], |c| {
                    assert_eq!(c.post_base_url.as_deref(), Some("file:"));
                    assert_eq!(c.post_exchange.as_deref(), Some("xs_sci_eclocal"));
                }),
            ),
        ),
        (
            "subscribe/subnoaa.conf",
            stops(19, "${SOURCE} is each message's source"),
        ),
        (
            "subscribe/subsoapshc.conf",
            stops(20, "${SOURCE} is each message's source"),
        ),
        (
            "subscribe/subusgs.conf",
            stops(19, "${SOURCE} is each message's source"),
        ),
        // --- post ---
        (
            "post/WMO_mesh_post.conf",
            loads(&[], |c| {
                assert_eq!(c.post_topic_prefix, "v03.post");
                assert_eq!(c.post_exchange.as_deref(), Some("xpublic"));
                assert_eq!(c.post_base_dir.as_deref(), Some("/var/www/html"));
                assert_eq!(c.sleep, None, "a post makes one pass");
            }),
        ),
    ]
}

/// flow/<component>.inc, included by a minimal config of that component
/// (the examples above include none; sr3 finds these in its examples).
fn expected_includes() -> Vec<(&'static str, &'static str, Outcome)> {
    vec![
        (
            "watch",
            "post_broker amqp://tfeed@localhost\npath /srv/hot\n",
            loads(
                &["bufsize", "part_ext", "partflg", "callback", "callback"],
                |c| {
                    assert_eq!(c.sleep, secs(5));
                    assert_eq!(c.nodupe_ttl, Duration::ZERO);
                    assert!(!c.force_polling && !c.follow_symlinks);
                },
            ),
        ),
        (
            "post",
            "post_broker amqp://tfeed@localhost\n",
            loads(
                &["bufsize", "part_ext", "partflg", "callback", "callback"],
                |c| {
                    assert_eq!(c.sleep, None, "sleep -1: one pass");
                },
            ),
        ),
        (
            "sender",
            "broker amqp://tsource@localhost\nsendTo file:/srv/out\n",
            loads(&["flowMain"], |_| {}),
        ),
        (
            "subscribe",
            "broker amqp://tsource@localhost\ndirectory /srv/in\n",
            loads(&["flowMain"], |_| {}),
        ),
    ]
}

/// sarracenia's examples directory, from the python in PITCHER_SR3_PYTHON.
fn examples_dir() -> Option<PathBuf> {
    let python = std::env::var("PITCHER_SR3_PYTHON").ok()?;
    let out = std::process::Command::new(&python)
        .args(["-c", "import sarracenia; print(sarracenia.__path__[0])"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        out.status.success(),
        "{python} cannot import sarracenia: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("examples");
    assert!(dir.is_dir(), "no examples in {}", dir.display());
    Some(dir)
}

/// A throwaway config dir with default.conf and credentials.conf.
fn site() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("default.conf"), DEFAULT_CONF).unwrap();
    let creds = dir.path().join("credentials.conf");
    std::fs::write(&creds, CREDENTIALS).unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    dir
}

/// Copy every file `text` includes (`include`/`config`), found as sr3
/// finds them in its examples, into the config dir.
fn copy_includes(examples: &Path, text: &str, config_dir: &Path) {
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if !matches!(words.next(), Some("include" | "config")) {
            continue;
        }
        let name = words.next().expect("include names a file");
        let found = [examples.join(name), examples.join("flow").join(name)]
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("included {name} is not in {}", examples.display()));
        std::fs::copy(found, config_dir.join(name)).unwrap();
    }
}

fn load(dir: &Path, rel: &str) -> Result<Config, ConfigError> {
    let (component, file) = rel.split_once('/').unwrap();
    let component = Component::parse(component).unwrap();
    config::load(dir, component, file.trim_end_matches(".conf"))
}

/// The keyword each warning is about: `'callback' is …` → callback.
fn warned_keywords(c: &Config) -> Vec<String> {
    c.warnings
        .iter()
        .map(|w| {
            let rest = w.split_once(".conf:").map_or(w.as_str(), |(_, r)| r);
            let rest = rest.split_once(": ").map_or(rest, |(_, r)| r);
            match rest.strip_prefix('\'') {
                Some(q) => q.split('\'').next().unwrap_or("").to_string(),
                None => rest.split_whitespace().next().unwrap_or("").to_string(),
            }
        })
        .collect()
}

/// Check `result` against `want`; the table row describing it.
fn judge(
    dir: &Path,
    rel: &str,
    text: &str,
    result: Result<Config, ConfigError>,
    want: &Outcome,
) -> String {
    match (result, want) {
        (Ok(c), Outcome::Loads { warned, check }) => {
            assert_eq!(
                warned_keywords(&c),
                *warned,
                "{rel}: warnings {:#?}",
                c.warnings
            );
            check(&c);
            if warned.is_empty() {
                "loads".to_string()
            } else {
                format!("loads; warns: {}", warned.join(", "))
            }
        }
        (Err(e), Outcome::Stops { line, says, then }) => {
            assert_eq!((e.file.as_str(), e.line), (rel, *line), "{rel}: {e}");
            assert!(
                e.message.contains(says),
                "{rel}: {e}\nexpected it to say: {says}"
            );
            let mut row = format!("stops: {e}");
            match (advice(&e.message), then) {
                (Some(fix), Some(then)) => {
                    let at = line.expect("advice is about one line") - 1;
                    let mut lines: Vec<&str> = text.lines().collect();
                    lines[at] = fix.as_deref().unwrap_or("");
                    let fixed = lines.join("\n") + "\n";
                    std::fs::write(dir.join(rel), &fixed).unwrap();
                    let again = judge(dir, rel, &fixed, load(dir, rel), then);
                    let did = match &fix {
                        Some(l) => format!("writing '{l}'"),
                        None => "deleting the line".to_string(),
                    };
                    row.push_str(&format!("\n      after {did}: {again}"));
                }
                (None, None) => {}
                (fix, then) => panic!(
                    "{rel}: advice {fix:?} but a follow-up is {}expected",
                    if then.is_some() { "" } else { "not " }
                ),
            }
            row
        }
        (Ok(c), Outcome::Stops { .. }) => {
            panic!(
                "{rel}: expected an error, loaded with warnings {:#?}",
                c.warnings
            )
        }
        (Err(e), Outcome::Loads { .. }) => panic!("{rel}: expected it to load: {e}"),
    }
}

/// The line an error's advice says to write (`Some(Some(line))`) or to
/// delete (`Some(None)`), if it names one.
fn advice(message: &str) -> Option<Option<String>> {
    if message.ends_with(": delete the line") {
        return Some(None);
    }
    let (_, line) = message.rsplit_once(": write ")?;
    (!line.starts_with("the value")).then(|| Some(line.to_string()))
}

#[test]
#[ignore = "needs metpx-sr3's examples: PITCHER_SR3_PYTHON=/path/to/python with metpx-sr3 (bash scripts/test.sh sets it)"]
fn sr3_example_configs_load_with_their_meaning_or_stop_saying_what_to_write() {
    let Some(examples) = examples_dir() else {
        let _ = writeln!(
            std::io::stderr(),
            "skipped: PITCHER_SR3_PYTHON is not set (bash scripts/test.sh sets it)"
        );
        return;
    };
    // Rows go straight to stderr, past the test harness's capture, as
    // they are judged: the table is the point of this test, pass or fail.
    let mut out = std::io::stderr().lock();
    let _ = writeln!(
        out,
        "\nsr3's example configs ({}), as pitcher loads them:",
        examples.display()
    );
    let mut row = |file: &str, outcome: &str| {
        let _ = writeln!(out, "  {file:<44} {outcome}");
    };
    let mut want = expected();
    let mut found = Vec::new();
    for component in ["watch", "sender", "subscribe", "post"] {
        for entry in std::fs::read_dir(examples.join(component))
            .unwrap()
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "conf") {
                let name = path.file_name().unwrap().to_string_lossy();
                found.push((format!("{component}/{name}"), path));
            }
        }
    }
    let order = |rel: &str| {
        ["watch", "sender", "subscribe", "post"]
            .iter()
            .position(|c| rel.starts_with(&format!("{c}/")))
    };
    found.sort_by(|(a, _), (b, _)| (order(a), a).cmp(&(order(b), b)));
    let mut names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    let mut listed: Vec<&str> = want.iter().map(|(n, _)| *n).collect();
    names.sort();
    listed.sort();
    assert_eq!(
        names, listed,
        "the examples installed are not the ones listed here"
    );

    for (rel, path) in &found {
        let dir = site();
        let text = std::fs::read_to_string(path).unwrap();
        let target = dir.path().join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, &text).unwrap();
        copy_includes(&examples, &text, dir.path());
        let at = want.iter().position(|(n, _)| n == rel).unwrap();
        let (_, outcome) = want.swap_remove(at);
        row(
            rel,
            &judge(dir.path(), rel, &text, load(dir.path(), rel), &outcome),
        );
    }

    for (component, body, outcome) in expected_includes() {
        let dir = site();
        let inc = format!("{component}.inc");
        let rel = format!("{component}/with_inc.conf");
        let text = format!("include {inc}\n{body}");
        std::fs::create_dir_all(dir.path().join(component)).unwrap();
        std::fs::write(dir.path().join(&rel), &text).unwrap();
        copy_includes(&examples, &text, dir.path());
        let judged = judge(dir.path(), &rel, &text, load(dir.path(), &rel), &outcome);
        row(&format!("flow/{inc} (included)"), &judged);
    }
}
