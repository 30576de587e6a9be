//! How option values are written: sizes, durations, flags, counts, modes,
//! `fileEvents` sets and `inflight` forms, with sr3's meanings.
//!
//! Each parser returns `Err(what was expected)`; the caller adds
//! `file:line`. These are public because flows and the CLI read the same
//! notations (e.g. a size on the command line).

use super::options::{FileEvents, Inflight};
use std::time::Duration;

/// A size in bytes: `1000`, `1.5k`, `1M` (10^6), `1Mb`/`1Mi`/`1MiB` (2^20),
/// `10G`, `1T`, `512B`. As sr3 (humanfriendly), the unit is decimal unless
/// the value ends in `b`/`B` or `i`, which makes it binary.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let expected = || format!("expected a size such as 1000, 1k, 1M, 1Mi or 1Mb, not '{s}'");
    let s = s.trim();
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(num_end);
    let value: f64 = num.parse().map_err(|_| expected())?;
    let unit_lc = unit.to_ascii_lowercase();
    let binary = unit_lc.ends_with('b') || unit_lc.ends_with('i');
    // The first character, whatever its width (a unit such as `Ћ` is an
    // error, not a slice through a character).
    let first = unit_lc.chars().next().map_or(0, char::len_utf8);
    let (prefix, suffix) = unit_lc.split_at(first);
    let exponent = match prefix {
        "" => 0,
        "b" if suffix.is_empty() => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return Err(expected()),
    };
    if exponent > 0 && !matches!(suffix, "" | "b" | "i" | "ib") {
        return Err(expected());
    }
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let bytes = (value * base.powi(exponent)).round();
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(expected());
    }
    Ok(bytes as u64)
}

/// A whole number such as `instances 5`; sr3 reads counts like sizes, so
/// `1k` is 1000.
pub fn parse_count(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|_| format!("expected a whole number such as 5, not '{s}'"))
}

/// A duration: seconds (`30`, `0.5`), or with a unit `s`, `m`, `h`, `d`,
/// `w` (`5m`, `1.5h`); units may be chained (`1h30m`). As sr3, `none`,
/// `off` and `false` mean zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let expected = || format!("expected a duration such as 30, 0.5, 5m, 1h30m or 2d, not '{s}'");
    let t = s.trim();
    if matches!(t.to_ascii_lowercase().as_str(), "none" | "off" | "false") {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err(expected());
    }
    let mut total = 0.0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_end].parse().map_err(|_| expected())?;
        rest = &rest[num_end..];
        let unit = rest.chars().next();
        let factor = match unit.map(|c| c.to_ascii_lowercase()) {
            None => 1.0,
            Some('s') => 1.0,
            Some('m') => 60.0,
            Some('h') => 3600.0,
            Some('d') => 86_400.0,
            Some('w') => 604_800.0,
            Some(_) => return Err(expected()),
        };
        if let Some(c) = unit {
            rest = &rest[c.len_utf8()..];
        }
        total += value * factor;
    }
    Duration::try_from_secs_f64(total).map_err(|_| expected())
}

/// A flag: `on`/`off`, `yes`/`no`, `true`/`false`, `1`/`0`, any case.
/// (A flag keyword with no value at all means on; the parser handles that.)
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" | "1" => Ok(true),
        "off" | "no" | "false" | "0" => Ok(false),
        _ => Err(format!(
            "expected on or off (yes/no, true/false, 1/0), not '{s}'"
        )),
    }
}

/// A permission mode in octal, as sr3 (`permDirDefault 775`, `0644`).
pub fn parse_octal(s: &str) -> Result<u32, String> {
    let digits = s.trim().trim_start_matches("0o");
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("expected an octal mode such as 644 or 0775, not '{s}'"))
}

/// A rate such as `messageRateMax 10` or `2.5`, or with a size suffix
/// (`1k` = 1000).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    if let Ok(v) = s.trim().parse::<f64>() {
        if v.is_finite() && v >= 0.0 {
            return Ok(v);
        }
    }
    parse_size(s)
        .map(|v| v as f64)
        .map_err(|_| format!("expected a number per second such as 10 or 2.5, not '{s}'"))
}

/// The names `fileEvents` knows.
pub const FILE_EVENT_NAMES: [&str; 6] = ["create", "delete", "link", "mkdir", "modify", "rmdir"];

/// A `fileEvents` value applied to the current set: a plain list replaces
/// it, `+a,b` adds, `-a,b` removes, `|` also separates, `None` clears and
/// `all` selects every event.
pub fn parse_file_events(s: &str, current: FileEvents) -> Result<FileEvents, String> {
    let v = s.trim().replace('|', ",");
    match v.to_ascii_lowercase().as_str() {
        "none" => return Ok(no_events()),
        "all" | "+all" => return Ok(FileEvents::default()),
        _ => {}
    }
    let (op, list) = match v.chars().next() {
        Some(c @ ('+' | '-')) => (c, v[1..].trim_start_matches(['+', '-'])),
        _ => ('=', v.as_str()),
    };
    let mut named = no_events();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let flag = event_flag(&mut named, name).ok_or_else(|| {
            format!(
                "unknown file event '{name}': expected some of {}",
                FILE_EVENT_NAMES.join(",")
            )
        })?;
        *flag = true;
    }
    Ok(match op {
        '+' => combine(current, named, |a, b| a || b),
        '-' => combine(current, named, |a, b| a && !b),
        _ => named,
    })
}

fn no_events() -> FileEvents {
    FileEvents {
        create: false,
        delete: false,
        link: false,
        mkdir: false,
        modify: false,
        rmdir: false,
    }
}

fn event_flag<'a>(e: &'a mut FileEvents, name: &str) -> Option<&'a mut bool> {
    Some(match name {
        "create" => &mut e.create,
        "delete" => &mut e.delete,
        "link" => &mut e.link,
        "mkdir" => &mut e.mkdir,
        "modify" => &mut e.modify,
        "rmdir" => &mut e.rmdir,
        _ => return None,
    })
}

fn combine(a: FileEvents, b: FileEvents, f: impl Fn(bool, bool) -> bool) -> FileEvents {
    FileEvents {
        create: f(a.create, b.create),
        delete: f(a.delete, b.delete),
        link: f(a.link, b.link),
        mkdir: f(a.mkdir, b.mkdir),
        modify: f(a.modify, b.modify),
        rmdir: f(a.rmdir, b.rmdir),
    }
}

/// The names of the events in `e`, comma-separated (`None` if empty), as
/// `fileEvents` takes them.
pub fn file_events_text(e: &FileEvents) -> String {
    let on = [e.create, e.delete, e.link, e.mkdir, e.modify, e.rmdir];
    let names: Vec<&str> = FILE_EVENT_NAMES
        .iter()
        .zip(on)
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect();
    if names.is_empty() {
        "None".to_string()
    } else {
        names.join(",")
    }
}

/// An `inflight` value: `.tmp` (suffix), `.` (prefix), `tmp/` (a
/// subdirectory), `umask`, `None`/`off`, or a duration, which means "post
/// only files older than this" (fileAgeMin) and writes under the final name.
pub fn parse_inflight(s: &str) -> Result<(Inflight, Option<Duration>), String> {
    let v = s.trim();
    if matches!(v.to_ascii_lowercase().as_str(), "none" | "off" | "false") {
        return Ok((Inflight::None, None));
    }
    if v == "umask" {
        return Ok((Inflight::Umask, None));
    }
    if v == "." {
        return Ok((Inflight::Prefix(".".to_string()), None));
    }
    if v.len() > 1 && v.ends_with('/') {
        return Ok((Inflight::Subdir(v.to_string()), None));
    }
    if v.len() > 1 && v.starts_with('.') {
        return Ok((Inflight::Suffix(v.to_string()), None));
    }
    if v.starts_with(|c: char| c.is_ascii_digit()) {
        if let Ok(age) = parse_duration(v) {
            return Ok((Inflight::None, Some(age)));
        }
    }
    Err(format!(
        "expected .suffix (e.g. .tmp), . (dot prefix), dir/ (subdirectory), umask, None, or a duration, not '{s}'"
    ))
}

/// How `inflight` is written back in `show`.
pub fn inflight_text(i: &Inflight) -> String {
    match i {
        Inflight::None => "None".to_string(),
        Inflight::Umask => "umask".to_string(),
        Inflight::Suffix(s) | Inflight::Prefix(s) | Inflight::Subdir(s) => s.clone(),
    }
}

/// A duration as sr3 would write it (`300`, `0.1`).
pub fn duration_text(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{}", d.as_secs())
    } else {
        format!("{secs}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_decimal_unless_suffixed_b_or_i() {
        assert_eq!(parse_size("1M"), Ok(1_000_000));
        assert_eq!(parse_size("1Mb"), Ok(1 << 20));
        assert_eq!(parse_size("1Mi"), Ok(1 << 20));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1MB"), Ok(1 << 20));
        assert_eq!(parse_size("2k"), Ok(2000));
        assert_eq!(parse_size("2K"), Ok(2000));
        assert_eq!(parse_size("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_size("1T"), Ok(1_000_000_000_000));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
    }

    #[test]
    fn bad_sizes_say_what_was_expected() {
        for bad in ["1Q", "abc", "", "M", "1Mx", "-1", "1kk", "1Ћ", "1Ћb", "2é"] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains("expected a size"), "{bad}: {err}");
        }
    }

    #[test]
    fn durations_take_seconds_or_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0.1"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1w"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("off"), Ok(Duration::ZERO));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn flags_accept_sr3_spellings_in_any_case() {
        for t in ["on", "ON", "yes", "True", "1"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["off", "No", "FALSE", "0"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn counts_and_modes() {
        assert_eq!(parse_count("5"), Ok(5));
        assert_eq!(parse_count("1k"), Ok(1000));
        assert!(parse_count("abc").unwrap_err().contains("whole number"));
        assert_eq!(parse_octal("775"), Ok(0o775));
        assert_eq!(parse_octal("0644"), Ok(0o644));
        assert!(parse_octal("9").is_err());
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        assert_eq!(parse_rate("1k"), Ok(1000.0));
    }

    #[test]
    fn file_events_add_remove_replace_and_clear() {
        let all = FileEvents::default();
        let e = parse_file_events("-delete,rmdir", all).unwrap();
        assert!(!e.delete && !e.rmdir && e.create && e.modify && e.link && e.mkdir);
        let e = parse_file_events("create|modify", all).unwrap();
        assert_eq!(file_events_text(&e), "create,modify");
        let e = parse_file_events("+delete", e).unwrap();
        assert_eq!(file_events_text(&e), "create,delete,modify");
        assert_eq!(
            file_events_text(&parse_file_events("None", all).unwrap()),
            "None"
        );
        assert_eq!(parse_file_events("all", no_events()), Ok(all));
        assert!(parse_file_events("create,explode", all)
            .unwrap_err()
            .contains("explode"));
    }

    #[test]
    fn inflight_forms() {
        assert_eq!(
            parse_inflight(".tmp"),
            Ok((Inflight::Suffix(".tmp".into()), None))
        );
        assert_eq!(
            parse_inflight("."),
            Ok((Inflight::Prefix(".".into()), None))
        );
        assert_eq!(
            parse_inflight("tmp/"),
            Ok((Inflight::Subdir("tmp/".into()), None))
        );
        assert_eq!(parse_inflight("umask"), Ok((Inflight::Umask, None)));
        assert_eq!(parse_inflight("None"), Ok((Inflight::None, None)));
        assert_eq!(parse_inflight("off"), Ok((Inflight::None, None)));
        assert_eq!(
            parse_inflight("10"),
            Ok((Inflight::None, Some(Duration::from_secs(10))))
        );
        assert_eq!(
            parse_inflight("1m"),
            Ok((Inflight::None, Some(Duration::from_secs(60))))
        );
        assert!(parse_inflight("tmp").is_err());
    }
}
