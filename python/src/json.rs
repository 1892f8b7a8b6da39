//! A minimal JSON writer for the events the tracer builds in Rust (strings, numbers, nulls).
//!
//! It must never allocate more than the output needs nor call into Python; parsing JSON is
//! left to the Python side, which only does it off the hot path.

use std::fmt::Write;

/// Appends `s` as a JSON string literal (with quotes), escaping as RFC 8259 requires.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a float as a JSON number (non-finite values become `null`, which JSON lacks).
pub fn push_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{}", v);
    } else {
        out.push_str("null");
    }
}

/// Appends `"key":` (with a leading comma unless `first`).
pub fn key(out: &mut String, first: &mut bool, k: &str) {
    if !*first {
        out.push(',');
    }
    *first = false;
    push_str(out, k);
    out.push(':');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let mut s = String::new();
        push_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }

    #[test]
    fn floats() {
        let mut s = String::new();
        push_f64(&mut s, 1.5);
        s.push(' ');
        push_f64(&mut s, f64::NAN);
        assert_eq!(s, "1.5 null");
    }
}
