//! JSON text exactly as Python's `json.dumps(obj)` (default arguments)
//! writes it, so a body we publish is the body sr3 would have published.
//!
//! The defaults that matter: separators `", "` and `": "`; `ensure_ascii`,
//! i.e. every character outside `' '..='~'` escaped (`\n \r \t \b \f` in
//! short form, others as lowercase `\uXXXX`, UTF-16 surrogate pairs above
//! U+FFFF); `/` not escaped; floats as Python's `repr`; keys in the order
//! given (serde_json's `preserve_order` keeps them).

use serde_json::{Map, Value};

/// `json.dumps(value)`.
pub(crate) fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(f) = n.as_f64() {
                out.push_str(&float_repr(f));
            } else {
                // Only reachable with serde_json's arbitrary_precision; its
                // text is already JSON.
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>) {
    out.push('{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_str(out, k);
        out.push_str(": ");
        write_value(out, v);
    }
    out.push('}');
}

/// A JSON string literal with Python's `ensure_ascii` escapes.
pub(crate) fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest digits that read back to the same
/// float, in positional notation for decimal exponents -4..16 (with at least
/// one digit after the point), otherwise `d.ddde+XX` / `de-XX`.
fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits as Python's
    // repr, e.g. "1.5e-5"; only the layout differs.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let body = if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            let (int, frac) = digits.split_at(point as usize);
            format!("{int}.{frac}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{first}{frac}e{esign}{:02}", exp.abs())
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn separators_are_comma_space_and_colon_space() {
        let v = json!({"a": 1, "b": [true, null, "x"], "c": {}});
        assert_eq!(
            to_string(&v),
            r#"{"a": 1, "b": [true, null, "x"], "c": {}}"#
        );
    }

    #[test]
    fn keys_stay_in_insertion_order() {
        let v: Value = serde_json::from_str(r#"{"z": 1, "a": 2, "m": 3}"#).unwrap();
        assert_eq!(to_string(&v), r#"{"z": 1, "a": 2, "m": 3}"#);
    }

    #[test]
    fn non_ascii_is_escaped_like_python_with_surrogate_pairs() {
        let v = json!("été ☃ 😀");
        assert_eq!(to_string(&v), r#""\u00e9t\u00e9 \u2603 \ud83d\ude00""#);
    }

    #[test]
    fn control_characters_use_python_escapes_and_slash_is_left_alone() {
        let v = json!("a/b\"c\\d\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}");
        assert_eq!(to_string(&v), r#""a/b\"c\\d\n\r\t\b\f\u0001\u001f\u007f""#);
    }

    #[test]
    fn floats_are_written_as_python_repr() {
        for (f, py) in [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (-2.25, "-2.25"),
            (100.0, "100.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (1.2345e20, "1.2345e+20"),
            (123456789012345.6, "123456789012345.6"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-0.0, "-0.0"),
        ] {
            assert_eq!(float_repr(f), py, "{f:e}");
        }
    }

    #[test]
    fn big_integers_are_exact() {
        assert_eq!(to_string(&json!(u64::MAX)), "18446744073709551615");
        assert_eq!(to_string(&json!(i64::MIN)), "-9223372036854775808");
    }
}
