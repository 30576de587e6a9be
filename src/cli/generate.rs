//! `pitcher generate man|completions <dir>` (hidden): the files a package
//! installs beside the binary, from the definitions pitcher itself runs
//! with, so they cannot drift from it. `scripts/deb.sh` writes them for
//! the .deb and `scripts/deb-test.sh` checks the installed ones.
//!
//! * `man`: `pitcher.1` and one `pitcher-<verb>.1` per visible verb (and
//!   nested verb: `pitcher-systemd-install.1`), from the clap definition
//!   (`clap_mangen`), and `pitcher-options.5`, the config keywords, from
//!   the parser's own table and its descriptions
//!   ([`crate::config::descriptions`]).
//! * `completions`: `pitcher.bash`, `_pitcher` (zsh) and `pitcher.fish`.

use crate::config::descriptions;
use clap::{Command, CommandFactory};
use roff::{bold, italic, roman, Roff};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What to write.
#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Man pages: pitcher(1), pitcher-<verb>(1) and pitcher-options(5).
    Man { dir: PathBuf },
    /// bash, zsh and fish completion scripts.
    Completions { dir: PathBuf },
}

/// `pitcher generate …`: writes the files, one line per file on stdout.
pub fn run(what: What) -> anyhow::Result<ExitCode> {
    let written = match what {
        What::Man { dir } => man_pages(&dir)?,
        What::Completions { dir } => completions(&dir)?,
    };
    for f in written {
        println!("{}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The command line as the man pages show it: no `help` verb.
fn command() -> Command {
    let mut cmd = super::Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Writes every man page into `dir`; returns their paths.
pub fn man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let cmd = command();
    let mut out = Vec::new();
    let mut verbs = Vec::new();
    for sub in visible(&cmd) {
        verb_pages(sub, dir, &mut verbs, &mut out)?;
    }
    out.insert(0, write(dir, "pitcher.1", &top_page(&cmd, &verbs)?)?);
    out.push(write(dir, "pitcher-options.5", &options_page())?);
    Ok(out)
}

/// Writes the shell completion scripts into `dir`; returns their paths.
pub fn completions(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use clap_complete::Shell;
    std::fs::create_dir_all(dir)?;
    let mut cmd = super::Cli::command();
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| Ok(clap_complete::generate_to(shell, &mut cmd, "pitcher", dir)?))
        .collect()
}

fn visible(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands().filter(|s| !s.is_hide_set())
}

fn write(dir: &Path, name: &str, text: &[u8]) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

fn version() -> String {
    format!("pitcher {}", env!("CARGO_PKG_VERSION"))
}

/// The pages' date: `$SOURCE_DATE_EPOCH`'s (for reproducible packages;
/// scripts/deb.sh sets it to the last commit's), else today.
fn date() -> String {
    let at = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .unwrap_or_else(chrono::Utc::now);
    at.format("%Y-%m-%d").to_string()
}

/// `pitcher-<verb>.1` for `cmd` and its visible verbs; `names` gets each
/// page's name.
fn verb_pages(
    cmd: &Command,
    dir: &Path,
    names: &mut Vec<String>,
    out: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let man = clap_mangen::Man::new(cmd.clone())
        .date(date())
        .source(version())
        .manual("pitcher manual");
    let mut text = Vec::new();
    man.render(&mut text)?;
    let mut see = Roff::new();
    see.control("SH", ["SEE ALSO"]);
    see.text([
        bold("pitcher"),
        roman("(1), "),
        bold("pitcher-options"),
        roman("(5)"),
    ]);
    see.to_writer(&mut text)?;
    out.push(write(dir, &format!("{name}.1"), &text)?);
    names.push(name);
    for sub in visible(cmd) {
        verb_pages(sub, dir, names, out)?;
    }
    Ok(())
}

/// `pitcher.1`: clap's sections, then where pitcher keeps things, the
/// environment, and the other pages.
fn top_page(cmd: &Command, verbs: &[String]) -> anyhow::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone())
        .date(date())
        .source(version())
        .manual("pitcher manual");
    let mut text = Vec::new();
    man.render_title(&mut text)?;
    man.render_name_section(&mut text)?;
    man.render_synopsis_section(&mut text)?;
    let mut r = Roff::new();
    r.control("SH", ["DESCRIPTION"]);
    r.text([roman(
        "pitcher runs sr3's (MetPX Sarracenia's) file-delivery daemons: a watch announces \
         each complete file dropped into a hot directory, sender instances copy them to a \
         remote host over SSH and announce what they delivered, subscribe instances pull \
         announced files. It reads sr3's config files (same keywords, same meaning) and \
         speaks sr3's v02 and v03 messages through RabbitMQ (AMQP), MQTT or its embedded \
         local: broker.",
    )]);
    r.control("PP", []);
    r.text([
        roman("A config is named "),
        italic("component/name"),
        roman(
            " (e.g. sender/to_hpfx), a bare component (all of its configs) or a shell \
               wildcard; verbs that take configs act on all of them when none is named. \
               The config keywords are in ",
        ),
        bold("pitcher-options"),
        roman("(5)."),
    ]);
    r.to_writer(&mut text)?;
    man.render_options_section(&mut text)?;
    man.render_subcommands_section(&mut text)?;

    let mut r = Roff::new();
    r.control("SH", ["FILES"]);
    let files: &[(&str, &str)] = &[
        (
            "~/.config/pitcher/<component>/<name>.conf",
            "The configs, laid out as sr3's ~/.config/sr3 (which can be copied over whole).",
        ),
        (
            "~/.config/pitcher/default.conf, admin.conf",
            "Read before every config.",
        ),
        (
            "~/.config/pitcher/credentials.conf",
            "Passwords and details of broker and destination URLs, one URL a line; keep it mode 600.",
        ),
        (
            "~/.cache/pitcher/",
            "State: queue names, retry queues, duplicate caches, the embedded broker, pid files, and logs under log/.",
        ),
        (
            "/usr/lib/systemd/user/pitcher.service",
            "The packaged systemd user unit (enabled for nobody): systemctl --user enable --now pitcher runs the supervisor for the default directories.",
        ),
        (
            "~/.config/systemd/user/pitcher.service",
            "The unit pitcher systemd install writes for this binary and these directories (it takes precedence over the packaged one).",
        ),
    ];
    for (path, what) in files {
        r.control("TP", []);
        r.text([bold(*path)]);
        r.text([roman(*what)]);
    }
    r.control("SH", ["ENVIRONMENT"]);
    let env: &[(&str, &str)] = &[
        (
            "PITCHER_CONFIG_DIR",
            "The config directory (as --config-dir); else $XDG_CONFIG_HOME/pitcher, else ~/.config/pitcher.",
        ),
        (
            "PITCHER_STATE_DIR",
            "The state and log directory (as --state-dir); else $XDG_CACHE_HOME/pitcher, else ~/.cache/pitcher.",
        ),
        (
            "PITCHER_SSH_CONFIG",
            "The ssh_config file for sftp:// transfers of configs without sshConfig.",
        ),
        (
            crate::supervisor::metrics_http::ADDR_VAR,
            "Where a supervisor started now serves Prometheus metrics (as start --metrics).",
        ),
    ];
    for (var, what) in env {
        r.control("TP", []);
        r.text([bold(*var)]);
        r.text([roman(*what)]);
    }
    r.control("SH", ["SEE ALSO"]);
    let mut see = vec![bold("pitcher-options"), roman("(5)")];
    for v in verbs {
        see.push(roman(", "));
        see.push(bold(v.as_str()));
        see.push(roman("(1)"));
    }
    see.extend([
        roman(", "),
        bold("ssh_config"),
        roman("(5), "),
        bold("sr3"),
        roman("(1), "),
        bold("sr3_options"),
        roman("(7)"),
    ]);
    r.text(see);
    r.to_writer(&mut text)?;
    man.render_version_section(&mut text)?;
    Ok(text)
}

/// `pitcher-options.5`: the config language and every keyword.
fn options_page() -> Vec<u8> {
    let mut r = Roff::new();
    let (date, source) = (date(), version());
    r.control(
        "TH",
        ["PITCHER-OPTIONS", "5", &date, &source, "pitcher manual"],
    );
    r.control("SH", ["NAME"]);
    r.text([roman(
        "pitcher-options - the keywords of pitcher's config files",
    )]);
    r.control("SH", ["SYNOPSIS"]);
    r.text([
        bold("~/.config/pitcher/"),
        italic("component"),
        bold("/"),
        italic("name"),
        bold(".conf"),
    ]);
    r.control("SH", ["DESCRIPTION"]);
    r.text([roman(
        "pitcher reads sr3's config language: one keyword and its value a line; # starts a \
         comment line; keywords are case-sensitive, sr3's synonyms and v2 spellings are \
         accepted. A config is read after default.conf and admin.conf; include reads \
         another file in place. Except for the options that accept and reject lines \
         capture (directory, mirror, strip, flatten, filename) and subtopic (bound with \
         the broker, exchange and topicPrefix in force), the last value wins.",
    )]);
    r.control("PP", []);
    r.text([roman(
        "${VAR} is expanded as the line is read: ${HOME}, ${USER}, ${HOSTNAME}, ${CONFIG}, \
         ${COMPONENT}, ${BROKER_USER}, an option named like the variable in lower case, \
         an environment variable or one set with declare env. Dates (${YYYYMMDD}, ${%Y}…) \
         in directory, baseDir and post_baseDir are expanded per file. An unknown \
         variable, an unknown keyword (with a did-you-mean) or a bad value is an error \
         naming the file and line; an sr3 keyword pitcher does not implement is a warning.",
    )]);
    r.control("PP", []);
    r.text([roman(
        "pitcher show prints a config's effective options; pitcher features what this \
         build supports.",
    )]);
    r.control("SH", ["VALUES"]);
    let values: &[(&str, &str)] = &[
        (
            "on|off",
            "on, yes, true or 1; off, no, false or 0. A flag keyword alone means on.",
        ),
        (
            "size",
            "bytes: 1000, 1.5k, 1M (10^6), 1Mi or 1Mb (2^20), 10G.",
        ),
        (
            "count",
            "a whole number (read as a size, so 1k is 1000).",
        ),
        (
            "duration",
            "seconds (30, 0.5) or with units s, m, h, d, w (5m, 1h30m); none, off and false are 0.",
        ),
        ("octal mode", "644, 0775."),
        (
            "regex",
            "a regular expression (Rust syntax: no look-around or backreferences), matched from the start of the path.",
        ),
    ];
    for (v, what) in values {
        r.control("TP", []);
        r.text([italic(*v)]);
        r.text([roman(*what)]);
    }
    r.control("SH", ["KEYWORDS"]);
    for (keyword, doc) in descriptions::implemented() {
        r.control("TP", []);
        match doc {
            Some(d) => {
                r.text([bold(d.keyword), roman(" "), italic(d.value)]);
                r.text([roman(d.meaning)]);
                r.control("br", []);
                r.text([roman("Default: "), roman(d.default)]);
            }
            None => {
                r.text([bold(keyword)]);
                r.text([roman("(not described yet)")]);
            }
        }
    }
    r.control("SH", ["SR3 KEYWORDS NOT IMPLEMENTED"]);
    r.text([roman(
        "These sr3 keywords are recognised: a config using one loads, and a warning names \
         the line (a few are honoured silently when their value asks for what pitcher \
         does anyway, e.g. delete off). ",
    )]);
    r.text([roman(descriptions::sr3_unimplemented().join(", "))]);
    r.control("SH", ["FILES"]);
    r.control("TP", []);
    r.text([bold("~/.config/pitcher/credentials.conf")]);
    r.text([roman(
        "One URL a line with its password (amqps://user:password@host), and details such \
         as ssh_keyfile; broker and destination URLs in configs take their passwords from \
         it.",
    )]);
    r.control("SH", ["SEE ALSO"]);
    r.text([
        bold("pitcher"),
        roman("(1), "),
        bold("pitcher-show"),
        roman("(1), "),
        bold("sr3_options"),
        roman("(7), "),
        bold("ssh_config"),
        roman("(5)"),
    ]);
    r.render().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_cover_every_visible_verb_and_every_keyword() {
        let dir = tempfile::tempdir().unwrap();
        let written = man_pages(dir.path()).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for want in [
            "pitcher.1",
            "pitcher-start.1",
            "pitcher-systemd-install.1",
            "pitcher-options.5",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
        assert!(!names
            .iter()
            .any(|n| n.contains("instance") || n.contains("generate") || n.contains("help")));
        let options = std::fs::read_to_string(dir.path().join("pitcher-options.5")).unwrap();
        for (keyword, doc) in descriptions::implemented() {
            assert!(doc.is_some(), "{keyword} undocumented");
            assert!(
                options.contains(&format!("\\fB{keyword}\\fR")),
                "{keyword} not in the page"
            );
        }
        let top = std::fs::read_to_string(dir.path().join("pitcher.1")).unwrap();
        assert!(top.contains("pitcher\\-options") && top.contains("PITCHER_CONFIG_DIR"));
    }

    #[test]
    fn completions_are_written_under_the_names_shells_look_for() {
        let dir = tempfile::tempdir().unwrap();
        completions(dir.path()).unwrap();
        for f in ["pitcher.bash", "_pitcher", "pitcher.fish"] {
            let text = std::fs::read_to_string(dir.path().join(f)).unwrap();
            assert!(text.contains("systemd"), "{f} lacks the verbs");
        }
    }
}
