//! Redaction (DESIGN.md §5): secrets are removed before anything is stored or streamed.
//!
//! Two rules, applied recursively to every nested value:
//! - a value under a sensitive key (`password`, `db_password`, `user_token`, `api_key`,
//!   `authorization`, `cookie`, `private_key`, ...) is replaced whole;
//! - inside any string, secret-looking substrings are replaced: `Bearer …`, provider key
//!   prefixes (`sk-…`, `ghp_…`, `AKIA…`, ...), JWTs, PEM private keys, and `NAME=value` /
//!   `NAME: value` where NAME looks sensitive.
//!
//! One Aho-Corasick pass per string finds every candidate, so clean strings cost a single scan
//! and no allocation. This module must never log or keep what it removes.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde_json::{Map, Value};

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Is this key's value a secret, whatever it holds?
pub fn is_sensitive_key(key: &str) -> bool {
    // Payload keys repeat from event to event (`tool_name`, `cwd`, ...): the answer is
    // remembered per thread, for a bounded number of short keys, so the common case is one hash
    // lookup instead of a dozen substring searches. A pure function's memo: same answers.
    const MEMO_KEYS: usize = 4096;
    const MEMO_KEY_LEN: usize = 64;
    thread_local! {
        static MEMO: std::cell::RefCell<std::collections::HashMap<Box<str>, bool>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    if key.len() > MEMO_KEY_LEN {
        return classify_key(key);
    }
    MEMO.with(|memo| {
        if let Some(&known) = memo.borrow().get(key) {
            return known;
        }
        let answer = classify_key(key);
        let mut memo = memo.borrow_mut();
        if memo.len() < MEMO_KEYS {
            memo.insert(key.into(), answer);
        }
        answer
    })
}

fn classify_key(key: &str) -> bool {
    let mut norm = String::with_capacity(key.len());
    for c in key.chars() {
        if c.is_ascii_alphanumeric() {
            norm.push(c.to_ascii_lowercase());
        }
    }
    const CONTAINS: &[&str] = &[
        "password",
        "passwd",
        "passphrase",
        "secret",
        "apikey",
        "accesskey",
        "privatekey",
        "authorization",
        "cookie",
        "credential",
        "sessionkey",
        "signingkey",
    ];
    const ENDS: &[&str] = &["token", "pwd", "auth", "xapikey"];
    CONTAINS.iter().any(|w| norm.contains(w)) || ENDS.iter().any(|w| norm.ends_with(w))
}

#[derive(Clone, Copy)]
enum Kind {
    Bearer,
    KeyPrefix { min_tail: usize },
    Aws,
    Jwt,
    Pem,
    SensitiveName,
}

const PATTERNS: &[(&str, Kind)] = &[
    ("bearer ", Kind::Bearer),
    ("sk-", Kind::KeyPrefix { min_tail: 16 }),
    ("ghp_", Kind::KeyPrefix { min_tail: 20 }),
    ("gho_", Kind::KeyPrefix { min_tail: 20 }),
    ("ghu_", Kind::KeyPrefix { min_tail: 20 }),
    ("ghs_", Kind::KeyPrefix { min_tail: 20 }),
    ("github_pat_", Kind::KeyPrefix { min_tail: 20 }),
    ("glpat-", Kind::KeyPrefix { min_tail: 16 }),
    ("xoxb-", Kind::KeyPrefix { min_tail: 10 }),
    ("xoxp-", Kind::KeyPrefix { min_tail: 10 }),
    ("npm_", Kind::KeyPrefix { min_tail: 30 }),
    ("aiza", Kind::KeyPrefix { min_tail: 30 }),
    ("akia", Kind::Aws),
    ("eyj", Kind::Jwt),
    ("-----begin", Kind::Pem),
    ("password", Kind::SensitiveName),
    ("passwd", Kind::SensitiveName),
    ("secret", Kind::SensitiveName),
    ("token", Kind::SensitiveName),
    ("api_key", Kind::SensitiveName),
    ("apikey", Kind::SensitiveName),
    ("api-key", Kind::SensitiveName),
    ("cookie", Kind::SensitiveName),
    ("authorization", Kind::SensitiveName),
    ("private_key", Kind::SensitiveName),
];

static MATCHER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(PATTERNS.iter().map(|(p, _)| p))
        .expect("static patterns build")
});

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Length of the run of bytes from `at` satisfying `pred`.
fn run_len(bytes: &[u8], at: usize, pred: impl Fn(u8) -> bool) -> usize {
    bytes[at.min(bytes.len())..]
        .iter()
        .take_while(|b| pred(**b))
        .count()
}

/// If a secret starts at this match, the byte range to replace and its replacement.
fn secret_span(text: &str, start: usize, end: usize, kind: Kind) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let preceded_by_word = start > 0 && is_word_byte(bytes[start - 1]);
    match kind {
        Kind::Bearer => {
            let n = run_len(bytes, end, is_token_byte);
            (n >= 8).then_some((end, end + n))
        }
        Kind::KeyPrefix { min_tail } => {
            if preceded_by_word {
                return None;
            }
            let n = run_len(bytes, end, |b| {
                b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
            });
            (n >= min_tail).then_some((start, end + n))
        }
        Kind::Aws => {
            // Access key ids are upper-case: `AKIA` + 16 of [A-Z0-9].
            if preceded_by_word || &bytes[start..end] != b"AKIA" {
                return None;
            }
            let n = run_len(bytes, end, |b| b.is_ascii_uppercase() || b.is_ascii_digit());
            (n >= 16).then_some((start, end + n))
        }
        Kind::Jwt => {
            if preceded_by_word {
                return None;
            }
            let b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            let head = run_len(bytes, end, b64);
            let mut at = end + head;
            if head < 8 || bytes.get(at) != Some(&b'.') {
                return None;
            }
            let body = run_len(bytes, at + 1, b64);
            at += 1 + body;
            if body < 8 || bytes.get(at) != Some(&b'.') {
                return None;
            }
            let sig = run_len(bytes, at + 1, b64);
            Some((start, at + 1 + sig))
        }
        Kind::Pem => {
            let rest = &text[start..];
            let header_end = rest
                .find("-----\n")
                .or_else(|| rest[10..].find("-----").map(|i| i + 10))?;
            if !rest[..header_end]
                .to_ascii_uppercase()
                .contains("PRIVATE KEY")
            {
                return None;
            }
            let stop = rest
                .find("-----END")
                .and_then(|i| rest[i + 8..].find("-----").map(|j| i + 8 + j + 5))
                .unwrap_or(rest.len());
            Some((start, start + stop))
        }
        Kind::SensitiveName => {
            // `db_password=hunter2`, `"api_key": "..."`, `X-Api-Key: abc`: skip the rest of the
            // identifier, an optional closing quote and spaces, then `=` or `:`.
            let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
            let ident_start = start
                - bytes[..start]
                    .iter()
                    .rev()
                    .take_while(|b| ident(**b))
                    .count();
            let mut at = end + run_len(bytes, end, ident);
            if !is_sensitive_key(&text[ident_start..at]) {
                return None;
            }
            if matches!(bytes.get(at), Some(b'"' | b'\'')) {
                at += 1;
            }
            at += run_len(bytes, at, |b| b == b' ');
            if !matches!(bytes.get(at), Some(b'=' | b':')) {
                return None;
            }
            at += 1;
            at += run_len(bytes, at, |b| b == b' ');
            if matches!(bytes.get(at), Some(b'"' | b'\'')) {
                at += 1;
            }
            // `Authorization: Bearer x` keeps the scheme visible.
            if text[at..].len() >= 7 && text[at..at + 7].eq_ignore_ascii_case("bearer ") {
                at += 7;
            }
            let n = run_len(bytes, at, |b| {
                !matches!(
                    b,
                    b' ' | b'"' | b'\'' | b'&' | b',' | b';' | b'\n' | b'\r' | b'\t' | b'}'
                )
            });
            (n > 0).then_some((at, at + n))
        }
    }
}

/// Redacts secret-looking substrings; `None` when the string is clean (the common case).
pub fn redact_str(text: &str) -> Option<String> {
    let mut out: Option<String> = None;
    let mut copied_to = 0;
    let mut search_from = 0;
    while search_from < text.len() {
        let Some(m) = MATCHER.find(&text[search_from..]) else {
            break;
        };
        let (start, end) = (search_from + m.start(), search_from + m.end());
        let kind = PATTERNS[m.pattern().as_usize()].1;
        match secret_span(text, start, end, kind) {
            Some((from, to)) if from >= copied_to => {
                let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
                buf.push_str(&text[copied_to..from]);
                buf.push_str(REDACTED);
                copied_to = to;
                search_from = to.max(end);
            }
            _ => search_from = end,
        }
    }
    out.map(|mut buf| {
        buf.push_str(&text[copied_to..]);
        buf
    })
}

/// Redacts a JSON value in place, recursively.
pub fn redact_value(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Some(clean) = redact_str(s) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(map) => redact_map(map),
        _ => {}
    }
}

/// Redacts every value of an object, replacing whole values under sensitive keys.
pub fn redact_map(map: &mut Map<String, Value>) {
    for (key, value) in map.iter_mut() {
        // Nulls and booleans (`has_token: false`) carry no secret; everything else goes whole.
        if is_sensitive_key(key) && !matches!(value, Value::Null | Value::Bool(_)) {
            *value = Value::String(REDACTED.to_string());
            continue;
        }
        redact_value(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replaces_values_under_sensitive_keys_at_any_depth() {
        let mut v = json!({"config": {"db_password": "hunter2", "user_token": "abc",
            "nested": [{"API_KEY": "k"}, {"Authorization": "Basic Zm9vOmJhcg=="}]},
            "input_tokens": 1200, "cookie": "sid=1", "name": "ok"});
        redact_value(&mut v);
        let text = v.to_string();
        for secret in ["hunter2", "\"abc\"", "\"k\"", "Zm9vOmJhcg", "sid=1"] {
            assert!(!text.contains(secret), "{secret} survived in {text}");
        }
        assert_eq!(v["input_tokens"], 1200);
        assert_eq!(v["name"], "ok");
    }

    #[test]
    fn finds_secrets_inside_free_text() {
        let cases = [
            "curl -H 'Authorization: Bearer abcdefgh12345678' https://x",
            "export OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz",
            "key sk-ant-api03-abcdefghijklmnopqrstuv in log",
            "aws AKIAIOSFODNN7EXAMPLE used",
            "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
            "db_password=hunter2 next",
            "{\"password\": \"hunter2\"}",
        ];
        for case in cases {
            let out = redact_str(case).unwrap_or_else(|| panic!("nothing redacted in {case}"));
            for secret in [
                "abcdefgh12345678",
                "abcdefghijklmnopqrstuvwxyz",
                "abcdefghijklmnopqrstuv",
                "IOSFODNN7EXAMPLE",
                "dozjgNryP4J3",
                "MIIEowIBAAKCAQEA",
                "hunter2",
            ] {
                assert!(!out.contains(secret), "{secret} survived in {out}");
            }
            assert!(out.contains(REDACTED));
        }
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        for clean in [
            "Read src/token_parser.rs",
            "the password field is empty",
            "task-list of 3 items",
            "input_tokens: 1200",
        ] {
            assert_eq!(redact_str(clean), None, "{clean} was changed");
        }
    }
}
