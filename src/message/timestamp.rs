//! sr3's times: `YYYYMMDDTHHMMSS.<fraction>`, always UTC.
//!
//! sr3 writes the fraction as Python's `"{:.9g}".format(t % 1)[1:]`: up to
//! nine significant digits, trailing zeros dropped, no `.` at all when the
//! fraction is zero (`20261129T013209.567967176`, `20261129T013209.5`,
//! `20261129T013209`). We print the same from the exact nanoseconds.
//!
//! One divergence, on purpose: for a fraction below 0.0001, `{:.9g}`
//! switches to exponent notation and sr3 writes e.g. `20261129T013209e-05`
//! or `…T013209.5e-05`. We write the plain digits (`.00005`), which sr3
//! reads back correctly, and our parser accepts sr3's exponent form.
//!
//! Reading is tolerant: the v02 form without `T`, 0 to 9 (or more, cut to
//! nanoseconds) fraction digits.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDate, Utc};

use super::MessageError;

/// `t` in sr3's format, UTC, e.g. `20261129T014903.518260479`.
pub fn format(t: SystemTime) -> String {
    let dt: DateTime<Utc> = t.into();
    let mut s = dt.format("%Y%m%dT%H%M%S").to_string();
    s.push_str(&fraction(dt.timestamp_subsec_nanos()));
    s
}

/// The current time in sr3's format (a new message's pubTime).
pub fn now() -> String {
    format(SystemTime::now())
}

/// `.` + the nanoseconds without trailing zeros; empty for zero.
fn fraction(nanos: u32) -> String {
    if nanos == 0 {
        return String::new();
    }
    let digits = format!("{nanos:09}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// Read an sr3 time: `YYYYMMDD[T]HHMMSS` then an optional fraction.
///
/// Errors name the field as `timestamp`; callers reading a particular
/// field may rename it.
pub fn parse(s: &str) -> Result<SystemTime, MessageError> {
    let bad = |reason: &str| MessageError::BadTime {
        field: "timestamp",
        value: s.to_string(),
        reason: reason.to_string(),
    };
    let b = s.as_bytes();
    if b.len() < 14 {
        return Err(bad("shorter than YYYYMMDDHHMMSS"));
    }
    let time_at = if b[8] == b'T' { 9 } else { 8 };
    let end = time_at + 6;
    if b.len() < end {
        return Err(bad("shorter than YYYYMMDDTHHMMSS"));
    }
    if !b[..8]
        .iter()
        .chain(&b[time_at..end])
        .all(u8::is_ascii_digit)
    {
        return Err(bad("date and time must be digits"));
    }
    // All bytes before `end` are ASCII, so these slices are on char
    // boundaries.
    let num = |from: usize, to: usize| s[from..to].parse::<u32>().unwrap_or(0);
    let date = NaiveDate::from_ymd_opt(num(0, 4) as i32, num(4, 6), num(6, 8))
        .ok_or_else(|| bad("no such date"))?;
    let datetime = date
        .and_hms_opt(
            num(time_at, time_at + 2),
            num(time_at + 2, time_at + 4),
            num(time_at + 4, end),
        )
        .ok_or_else(|| bad("no such time of day"))?;
    let nanos = parse_fraction(&s[end..]).ok_or_else(|| bad("bad fraction of a second"))?;
    let whole: SystemTime = datetime.and_utc().into();
    Ok(whole + Duration::from_nanos(u64::from(nanos)))
}

/// The nanoseconds of what follows the seconds: empty, `.` + digits, or
/// sr3's exponent quirk (`e-05`, `.5e-05`, read as Python's
/// `float('0' + rest)` does).
fn parse_fraction(rest: &str) -> Option<u32> {
    if rest.is_empty() {
        return Some(0);
    }
    if let Some(digits) = rest.strip_prefix('.') {
        if digits.bytes().all(|c| c.is_ascii_digit()) {
            let mut nine: String = digits.chars().take(9).collect();
            while nine.len() < 9 {
                nine.push('0');
            }
            return nine.parse().ok();
        }
    }
    if !rest.contains(['e', 'E']) {
        return None;
    }
    let f: f64 = format!("0{rest}").parse().ok()?;
    if !(0.0..1.0).contains(&f) {
        return None;
    }
    Some(((f * 1e9).round() as u32).min(999_999_999))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
    }

    // 2026-11-29T01:49:03Z
    const T0: u64 = 1_795_916_943;

    #[test]
    fn format_prints_up_to_nine_fraction_digits_without_trailing_zeros() {
        assert_eq!(format(at(T0, 518_260_479)), "20261129T014903.518260479");
        assert_eq!(format(at(T0, 500_000_000)), "20261129T014903.5");
        assert_eq!(format(at(T0, 12_345_600)), "20261129T014903.0123456");
    }

    #[test]
    fn format_prints_no_point_for_a_whole_second() {
        assert_eq!(format(at(T0, 0)), "20261129T014903");
    }

    #[test]
    fn format_writes_tiny_fractions_as_plain_digits() {
        assert_eq!(format(at(T0, 1)), "20261129T014903.000000001");
    }

    #[test]
    fn now_round_trips_through_parse() {
        let s = now();
        assert_eq!(format(parse(&s).unwrap()), s);
    }

    #[test]
    fn parse_accepts_v03_and_v02_forms() {
        let want = at(T0, 518_260_479);
        assert_eq!(parse("20261129T014903.518260479").unwrap(), want);
        assert_eq!(parse("20261129014903.518260479").unwrap(), want);
        assert_eq!(parse("20261129T014903").unwrap(), at(T0, 0));
        assert_eq!(parse("20261129014903").unwrap(), at(T0, 0));
        assert_eq!(parse("20261129T014903.").unwrap(), at(T0, 0));
        assert_eq!(parse("20261129T014903.5").unwrap(), at(T0, 500_000_000));
    }

    #[test]
    fn parse_cuts_more_than_nine_fraction_digits() {
        assert_eq!(
            parse("20261129T014903.1234567899").unwrap(),
            at(T0, 123_456_789)
        );
    }

    #[test]
    fn parse_accepts_sr3_exponent_fractions() {
        assert_eq!(parse("20261129T014903e-05").unwrap(), at(T0, 0));
        assert_eq!(parse("20261129T014903.5e-05").unwrap(), at(T0, 5_000));
    }

    #[test]
    fn parse_rejects_what_is_not_an_sr3_time() {
        for s in [
            "",
            "2026112",
            "2026112901490",
            "20261129T01490",
            "2026112xT014903",
            "20261329T014903",
            "20261129T254903",
            "20261129T014903.5x",
            "20261129T014903Z",
            "20261129T014903.5e+05",
            "20261129T0149é3",
        ] {
            assert!(
                matches!(parse(s), Err(MessageError::BadTime { .. })),
                "{s:?}"
            );
        }
    }
}
