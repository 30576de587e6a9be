//! Message-time date variables in `directory`, `post_baseDir` and
//! `baseDir`: `${YYYYMMDD}` and friends, expanded when a file is handled,
//! not when the config is read.
//!
//! As sr3 (`Config.variableExpansion`), dates are in local time.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Local, TimeDelta};
use std::fmt::Write;

use super::values::parse_duration;

/// The named date variables and the strftime format each stands for.
const NAMED: &[(&str, &str)] = &[
    ("YYYYMMDD", "%Y%m%d"),
    ("YYYY", "%Y"),
    ("MM", "%m"),
    ("DD", "%d"),
    ("HH", "%H"),
    ("JJJ", "%j"),
];

/// Whether `${inner}` is a date variable [`expand_time_vars`] handles
/// (used by the parser to leave them for message time).
pub(crate) fn is_time_var(inner: &str) -> bool {
    named_var(inner).is_some() || strftime_var(inner).is_some()
}

/// Replace the date variables in `s` with `now`'s date:
///
/// * `${YYYYMMDD}` `${YYYY}` `${MM}` `${DD}` `${HH}` `${JJJ}` (day of year);
/// * the same with an offset: `${YYYYMMDD-1d}`, `${HH+30m}`;
/// * strftime formats: `${%Y/%m/%d}`, with an optional offset first:
///   `${%o-1h%H}` (sr3's form) or `${%-1h%H}`.
///
/// Anything else in `${…}` (`${PBD}`, `${SOURCE}`, `${BUP}`, regex groups
/// `${1}`, an invalid format) is left exactly as written, for the caller.
pub fn expand_time_vars(s: &str, now: DateTime<Local>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let inner = &rest[start + 2..start + len];
        out.push_str(&rest[..start]);
        match expand_one(inner, now) {
            Some(text) => out.push_str(&text),
            None => out.push_str(&rest[start..=start + len]),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// `(format, offset seconds)` for a named variable, e.g. `YYYYMMDD-1d`.
fn named_var(inner: &str) -> Option<(&'static str, f64)> {
    let split = inner.find(['+', '-']).unwrap_or(inner.len());
    let (name, offset) = inner.split_at(split);
    let format = NAMED.iter().find(|(n, _)| *n == name)?.1;
    Some((format, signed_offset(offset)?))
}

/// `(format, offset seconds)` for a strftime variable, e.g. `%o-1h%H`.
fn strftime_var(inner: &str) -> Option<(&str, f64)> {
    let body = inner.strip_prefix('%')?;
    let starts_offset = body.starts_with(['o', '+', '-']);
    if !starts_offset {
        return Some((inner, 0.0));
    }
    let end = body.find('%')?;
    let offset = body[..end].trim_start_matches('o');
    let offset = if offset.starts_with(['+', '-']) {
        offset.to_string()
    } else {
        format!("+{offset}")
    };
    Some((&body[end..], signed_offset(&offset)?))
}

/// `""` → 0, `-1d` → -86400, `+30m` → 1800.
fn signed_offset(text: &str) -> Option<f64> {
    let (sign, amount) = match text.chars().next() {
        None => return Some(0.0),
        Some('+') => (1.0, &text[1..]),
        Some('-') => (-1.0, &text[1..]),
        Some(_) => return None,
    };
    Some(sign * parse_duration(amount).ok()?.as_secs_f64())
}

fn expand_one(inner: &str, now: DateTime<Local>) -> Option<String> {
    let (format, offset) = named_var(inner).or_else(|| strftime_var(inner))?;
    let items: Vec<Item> = StrftimeItems::new(format).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return None;
    }
    let delta = TimeDelta::try_milliseconds((offset * 1000.0).round() as i64)?;
    let when = now.checked_add_signed(delta)?;
    let mut text = String::new();
    write!(text, "{}", when.format_with_items(items.into_iter())).ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn noon() -> DateTime<Local> {
        Local
            .with_ymd_and_hms(2024, 3, 1, 12, 30, 0)
            .single()
            .expect("valid local time")
    }

    #[test]
    fn named_date_variables_expand() {
        let s = expand_time_vars("/d/${YYYYMMDD}/${YYYY}-${MM}-${DD}T${HH}/${JJJ}", noon());
        assert_eq!(s, "/d/20240301/2024-03-01T12/061");
    }

    #[test]
    fn offsets_move_the_date() {
        assert_eq!(expand_time_vars("${YYYYMMDD-1d}", noon()), "20240229");
        assert_eq!(expand_time_vars("${HH+1h}", noon()), "13");
        assert_eq!(expand_time_vars("${%o-1d%Y%m%d}", noon()), "20240229");
        assert_eq!(expand_time_vars("${%-13h%d}", noon()), "29");
    }

    #[test]
    fn strftime_patterns_expand() {
        assert_eq!(expand_time_vars("x/${%Y/%m}/y", noon()), "x/2024/03/y");
    }

    #[test]
    fn other_variables_are_left_for_the_caller() {
        let s = "${PBD}/${SOURCE}/${1}/${%Q}/${YYYYMMDD-soon}/${unclosed";
        assert_eq!(expand_time_vars(s, noon()), s);
        assert!(is_time_var("YYYYMMDD-1d"));
        assert!(is_time_var("%Y"));
        assert!(!is_time_var("PBD"));
    }
}
