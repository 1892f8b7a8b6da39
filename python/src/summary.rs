//! Summaries of argument and return values, written straight to JSON, for the hot path.
//!
//! A summary shows the type, small numbers and short strings, and the length of containers,
//! and is truncated. It must never call `repr` or any other Python-level code (no `__len__`
//! on user types, no `__str__`): only exact built-in types are looked into, through the C API,
//! so a summary can neither run user code nor fail. `repr` is used only by `repr_json`, for
//! calls selected for detail when the user asked for it.

use crate::json;
use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::CStr;
use std::fmt::Write;

/// Longest string kept verbatim in a summary, in characters.
const MAX_STR: usize = 64;
/// Elements of a small list/tuple shown inline.
const MAX_ITEMS: usize = 4;

/// Names of variables whose values are never shown (matched case-insensitively as substrings,
/// so `db_password`, `user_token`, `X-Api-Key` are covered).
const SECRET_NAMES: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "authorization",
    "cookie",
    "private_key",
    "privatekey",
    "credential",
    "session_key",
    "access_key",
];

/// True when a variable or key name says its value is a secret.
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_NAMES.iter().any(|s| lower.contains(s))
}

/// Bytes a token may be made of (provider tokens, base64, URL-safe base64, JWT, hex, %-escapes).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-' | b'.' | b'~' | b'%')
}

/// The first `max` characters of `s`, without a token cut in two: when the cut falls inside a
/// run of token bytes that looks like a token's head, the head goes too. Why: the hub redacts tokens by their whole
/// shape (prefix, alphabet, length); the head of a cut token no longer has it, so it would be
/// stored as it is, and the head of a 36-character token leaves little to guess.
pub fn clip(s: &str, max: usize) -> &str {
    let Some((end, _)) = s.char_indices().nth(max) else {
        return s;
    };
    let bytes = s.as_bytes();
    if !is_token_byte(bytes[end]) {
        return &s[..end];
    }
    let run = &bytes[..end];
    let run = &run[run.len() - run.iter().rev().take_while(|b| is_token_byte(**b)).count()..];
    if looks_like_token_head(run) {
        &s[..end - run.len()]
    } else {
        &s[..end]
    }
}

/// A head worth hiding: 8 bytes or more mixing digits and letters, or both cases (a random
/// token's alphabet), unlike a long word, path or run of one letter, which are kept.
fn looks_like_token_head(run: &[u8]) -> bool {
    let has = |f: fn(&u8) -> bool| run.iter().any(f);
    run.len() >= 8
        && (has(u8::is_ascii_digit) && has(u8::is_ascii_alphabetic)
            || has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase))
}

/// True when a string value looks like a credential whatever its name.
pub fn is_secret_value(s: &str) -> bool {
    let t = s.trim_start();
    (t.contains("PRIVATE KEY") && t.contains("-----BEGIN"))
        || t.starts_with("Bearer ")
        || t.starts_with("Basic ")
        || t.starts_with("sk-")
        || t.starts_with("ghp_")
        || t.starts_with("gho_")
        || t.starts_with("github_pat_")
        || t.starts_with("xoxb-")
        || t.starts_with("xoxp-")
        || (t.starts_with("AKIA") && t.len() == 20)
        || (t.starts_with("eyJ") && t.matches('.').count() == 2 && t.len() > 30)
}

pub const REDACTED: &str = "[REDACTED]";

fn type_name(obj: *mut ffi::PyObject) -> String {
    // SAFETY: obj is a live object (the caller holds a reference and the GIL); tp_name is a
    // NUL-terminated C string owned by the type.
    unsafe {
        let tp = ffi::Py_TYPE(obj);
        CStr::from_ptr((*tp).tp_name).to_string_lossy().into_owned()
    }
}

/// Appends a JSON summary of `obj` to `out`. `depth` limits how far small containers are
/// looked into.
pub fn summarize(out: &mut String, obj: &Bound<'_, PyAny>, depth: u32) {
    let p = obj.as_ptr();
    // SAFETY: exact type checks and the accessors below only read built-in objects' fields
    // under the GIL; none of them runs Python code.
    unsafe {
        if p == ffi::Py_None() {
            out.push_str("null");
        } else if p == ffi::Py_True() {
            out.push_str("true");
        } else if p == ffi::Py_False() {
            out.push_str("false");
        } else if ffi::PyLong_CheckExact(p) != 0 {
            let mut overflow = 0;
            let v = ffi::PyLong_AsLongLongAndOverflow(p, &mut overflow);
            if overflow == 0 && (v != -1 || ffi::PyErr_Occurred().is_null()) {
                // Beyond 2^53 a JSON reader loses precision: show those as strings.
                if v.unsigned_abs() < (1u64 << 53) {
                    let _ = write!(out, "{}", v);
                } else {
                    json::push_str(out, &v.to_string());
                }
            } else {
                ffi::PyErr_Clear();
                json::push_str(out, "<int beyond 64 bits>");
            }
        } else if ffi::PyFloat_CheckExact(p) != 0 {
            json::push_f64(out, ffi::PyFloat_AS_DOUBLE(p));
        } else if ffi::PyUnicode_CheckExact(p) != 0 {
            let mut len: ffi::Py_ssize_t = 0;
            let data = ffi::PyUnicode_AsUTF8AndSize(p, &mut len);
            if data.is_null() {
                ffi::PyErr_Clear();
                json::push_str(out, "<str unencodable>");
                return;
            }
            let bytes = std::slice::from_raw_parts(data as *const u8, len as usize);
            let s = std::str::from_utf8_unchecked(bytes);
            if is_secret_value(s) {
                json::push_str(out, REDACTED);
                return;
            }
            let nchars = ffi::PyUnicode_GetLength(p) as usize;
            if nchars <= MAX_STR {
                json::push_str(out, s);
            } else {
                json::push_str(out, &format!("{}…[{} chars]", clip(s, MAX_STR), nchars));
            }
        } else if ffi::PyBytes_CheckExact(p) != 0 {
            json::push_str(out, &format!("<bytes len={}>", ffi::PyBytes_Size(p)));
        } else if ffi::PyList_CheckExact(p) != 0 || ffi::PyTuple_CheckExact(p) != 0 {
            let is_list = ffi::PyList_CheckExact(p) != 0;
            let n = if is_list {
                ffi::PyList_GET_SIZE(p)
            } else {
                ffi::PyTuple_GET_SIZE(p)
            } as usize;
            if depth > 0 && n <= MAX_ITEMS {
                out.push('[');
                for i in 0..n {
                    if i > 0 {
                        out.push(',');
                    }
                    let item = if is_list {
                        ffi::PyList_GET_ITEM(p, i as ffi::Py_ssize_t)
                    } else {
                        ffi::PyTuple_GET_ITEM(p, i as ffi::Py_ssize_t)
                    };
                    let b = Bound::from_borrowed_ptr(obj.py(), item);
                    summarize(out, &b, depth - 1);
                }
                out.push(']');
            } else {
                json::push_str(
                    out,
                    &format!("<{} len={}>", if is_list { "list" } else { "tuple" }, n),
                );
            }
        } else if ffi::PyDict_CheckExact(p) != 0 {
            json::push_str(out, &format!("<dict len={}>", ffi::PyDict_Size(p)));
        } else if ffi::PySet_Check(p) != 0 && ffi::PyAnySet_CheckExact(p) != 0 {
            json::push_str(
                out,
                &format!("<{} len={}>", type_name(p), ffi::PySet_Size(p)),
            );
        } else {
            json::push_str(out, &format!("<{}>", type_name(p)));
        }
    }
}

/// Appends a JSON summary, or `"[REDACTED]"` when `name` says the value is secret.
pub fn summarize_named(out: &mut String, name: &str, obj: &Bound<'_, PyAny>) {
    if is_secret_name(name) {
        json::push_str(out, REDACTED);
    } else {
        summarize(out, obj, 1);
    }
}

/// `repr(obj)` as a JSON string, truncated, never failing: used only for calls selected for
/// detail when full `repr` was asked for. The caller must have shielded the tracer from the
/// Python code this runs.
pub fn repr_json(out: &mut String, name: &str, obj: &Bound<'_, PyAny>, max: usize) {
    if is_secret_name(name) {
        json::push_str(out, REDACTED);
        return;
    }
    match obj.repr() {
        Ok(r) => {
            let s = r.to_string_lossy();
            if is_secret_value(&s) || is_secret_value(s.trim_matches('\'')) {
                json::push_str(out, REDACTED);
            } else if s.chars().count() > max {
                json::push_str(out, &format!("{}…", clip(&s, max)));
            } else {
                json::push_str(out, &s);
            }
        }
        Err(e) => {
            json::push_str(
                out,
                &format!("<repr failed: {}>", type_name(e.value(obj.py()).as_ptr())),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for n in [
            "password",
            "DB_PASSWORD",
            "user_token",
            "api_key",
            "Authorization",
            "cookie",
            "private_key",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in ["n", "items", "path", "count"] {
            assert!(!is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn secret_values() {
        assert!(is_secret_value("Bearer abc.def"));
        assert!(is_secret_value("-----BEGIN RSA PRIVATE KEY-----\nMII"));
        assert!(is_secret_value("sk-abcdef"));
        assert!(!is_secret_value("hello world"));
    }

    #[test]
    fn a_cut_never_keeps_part_of_a_token() {
        let token = format!("dop_v1_{}", "0123456789abcdef".repeat(4));
        let text = format!("Grüße: {token} — fin");
        assert_eq!(clip(&text, 20), "Grüße: ");
        // A cut between words keeps the words; a string that fits is untouched.
        assert_eq!(clip("hello world again", 12), "hello world ");
        assert_eq!(clip("hello world", 11), "hello world");
        assert_eq!(clip("hello world", 5), "hello");
        assert_eq!(clip("秘密の合言葉", 3), "秘密の");
        assert_eq!(clip(&token, 10), "");
        // A long word, path or run of one letter is not a token's head: it is kept.
        assert_eq!(clip(&"x".repeat(100), 50), "x".repeat(50));
        assert_eq!(
            clip("/home/user/project/source/file", 20),
            "/home/user/project/s"
        );
    }
}
