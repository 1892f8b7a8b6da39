//! Generated tests for redaction and validation: on any string (arbitrary Unicode, every
//! script, empty and huge), redaction never panics and is idempotent; any secret of the corpus
//! (tests/secrets/corpus.rs) embedded in arbitrary text, next to arbitrary non-ASCII, in any
//! field, never survives validation; a validated event validates again to the same bytes.

#[path = "secrets/corpus.rs"]
mod corpus;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use sightline_schema::redact::{REDACTED, redact_str, redact_value};
use sightline_schema::validate::truncate_text;
use sightline_schema::{Event, Timestamp, parse_event};

/// Pieces that reach the rules' corners: names, separators, quotes, schemes, prefixes, the
/// marker itself, and multi-byte characters of several scripts.
const FRAGMENTS: &[&str] = &[
    "password",
    "pass",
    "pwd",
    "token",
    "secret",
    "api_key",
    "key",
    "auth",
    "Authorization",
    "cookie",
    "dsn",
    "sig",
    "--password",
    "--token",
    "-u ",
    "--user ",
    "mysql ",
    "-p",
    " -p ",
    "redis-cli -a ",
    "sshpass ",
    "=",
    ":",
    ": ",
    " ",
    "\"",
    "'",
    "`",
    "\\",
    "\\\"",
    "{",
    "}",
    "[",
    "]",
    "<",
    ">",
    "&",
    ";",
    ",",
    "\n",
    "\t",
    "Bearer ",
    "Basic ",
    "YWxpY2U6cHc=",
    "://",
    "@",
    "https://",
    "sk-",
    "sk_live_",
    "ghp_",
    "xoxb-",
    "AKIA",
    "ASIA",
    "AIza",
    "eyJ",
    "SG.",
    "SK",
    "hf_",
    "glpat-",
    "-----BEGIN PRIVATE KEY-----",
    "-----END",
    "hooks.slack.com/services/",
    "MTk4NjIyNDgzNDcxOTI1MjQ4",
    ".",
    "[REDACTED]",
    "…[truncated 9 bytes]",
    "null",
    "true",
    "abcdefghijklmnopqrstuvwxyz0123456789",
    "ABCDEFGHIJKLMNOP",
    "é",
    "€",
    "🔑",
    "密码",
    "Пароль",
    "كلمة",
    "👩\u{200D}💻",
    "\u{301}",
    "\u{200F}",
    "\u{FEFF}",
    "\u{0}",
    "\u{10FFFF}",
];

fn fragment_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(FRAGMENTS).prop_map(str::to_string),
            1 => any::<String>(),
            1 => "[a-zA-Z0-9_-]{0,40}",
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

/// Arbitrary text: any Unicode, or a mix of the fragments above.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), fragment_text(), fragment_text()]
}

fn non_ascii() -> impl Strategy<Value = String> {
    "[^\\x00-\\x7F]{0,12}"
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn now() -> Timestamp {
    Timestamp::parse("2026-11-21T10:00:00Z").expect("valid")
}

fn all_strings(e: &Event) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\u{1}');
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(map) => {
                for (k, v) in map {
                    out.push_str(k);
                    out.push('\u{1}');
                    walk(v, out);
                }
            }
            _ => {}
        }
    }
    let mut out = String::new();
    walk(&serde_json::to_value(e).expect("serialises"), &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn redaction_never_panics_and_is_idempotent(s in text()) {
        if let Some(once) = redact_str(&s) {
            prop_assert_eq!(redact_str(&once), None, "input {:?} gave {:?}", s, once);
        }
    }

    #[test]
    fn json_redaction_is_idempotent(mut v in json_value()) {
        redact_value(&mut v);
        let mut again = v.clone();
        redact_value(&mut again);
        prop_assert_eq!(v, again);
    }

    #[test]
    fn truncation_is_char_safe_bounded_and_stable(s in text(), max in 40usize..400) {
        // (Callers cap at 128 bytes or more; below the marker's own size there is nothing to keep.)
        let mut t = redact_str(&s).unwrap_or(s);
        let before = t.clone();
        truncate_text(&mut t, max);
        if before.len() > max {
            prop_assert!(t.len() <= max, "{} > {}", t.len(), max);
            prop_assert_eq!(redact_str(&t), None, "{:?}", t);
        } else {
            prop_assert_eq!(&t, &before);
        }
        let again = { let mut a = t.clone(); truncate_text(&mut a, max); a };
        prop_assert_eq!(again, t);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    /// Any corpus secret, between arbitrary texts (spaced) or arbitrary non-ASCII (tight),
    /// in any field: never in the validated event.
    #[test]
    fn no_corpus_secret_survives(
        index in any::<prop::sample::Index>(),
        before in text(),
        after in text(),
        tight_before in non_ascii(),
        tight_after in non_ascii(),
        tight in any::<bool>(),
        field in 0usize..8,
    ) {
        let corpus = corpus::corpus();
        let secret = &corpus[index.index(corpus.len())];
        let embedded = if tight && !secret.command {
            format!("{tight_before}{}{tight_after}", secret.text)
        } else {
            // A line break keeps an arbitrary text from swallowing the secret into something
            // that is not a secret (an unterminated quote is redacted; a word glued to a token
            // makes another word).
            format!("{before}\n{} \n{after}", secret.text)
        };
        let mut raw = json!({"source": "custom", "source_event": "x", "entity_type": "log", "title": "t"});
        match field {
            0 => raw["title"] = json!(embedded),
            1 => raw["summary"] = json!(embedded),
            2 => raw["tags"] = json!([embedded]),
            3 => raw["payload"] = json!({"a": [{"b": embedded}]}),
            4 => raw["payload"] = json!({ embedded.clone(): 1 }),
            5 => raw["entity_id"] = json!(embedded),
            6 => {
                let mut p = Map::new();
                p.insert("a".into(), json!(embedded));
                for i in 0..70 {
                    p.insert(format!("k{i}"), json!("w".repeat(1000)));
                }
                raw["payload"] = Value::Object(p);
            }
            _ => raw["payload"] = json!({"big": format!("{embedded} {}", "v".repeat(20_000))}),
        }
        let Ok(event) = parse_event(raw.to_string().as_bytes(), now()) else {
            // Only NUL-free, non-empty titles are valid; a refused event stores nothing.
            return Ok(());
        };
        let stored = all_strings(&event);
        for needle in &secret.needles {
            prop_assert!(!stored.contains(needle.as_str()), "{}: {} survived in {:?}", secret.label, needle, stored);
        }
    }

    /// Export → import → export is byte-identical, whatever the text fields held.
    #[test]
    fn validated_events_validate_to_the_same_bytes(
        title in text(),
        summary in text(),
        tags in prop::collection::vec(text(), 0..4),
        payload in json_value(),
        big in any::<bool>(),
    ) {
        let mut raw = json!({"source": "custom", "source_event": "x", "entity_type": "log",
            "title": title, "summary": summary, "tags": tags});
        let mut p = Map::new();
        p.insert("v".into(), payload);
        if big {
            for i in 0..70 {
                p.insert(format!("k{i}"), json!("w".repeat(1000)));
            }
        }
        raw["payload"] = Value::Object(p);
        if let Ok(event) = parse_event(raw.to_string().as_bytes(), now()) {
            let first = event.to_portable_json();
            let second = parse_event(first.as_bytes(), now()).expect("an export imports");
            prop_assert_eq!(first, second.to_portable_json());
        }
    }
}

#[test]
fn empty_and_huge_values() {
    assert_eq!(redact_str(""), None);
    // 4 MiB of mixed scripts with names and separators every few bytes: no panic, linear time.
    let unit = "password: résumé 密码 api_key=🔑 token=\"a b\" sk-abc ";
    let huge = unit.repeat(4 * 1024 * 1024 / unit.len());
    let start = std::time::Instant::now();
    let out = redact_str(&huge).expect("secrets found");
    assert!(!out.contains("résumé") && !out.contains("🔑"));
    assert_eq!(redact_str(&out), None);
    // A pathological run of names: bounded work per candidate.
    let names = "tokentokentoken=".repeat(200_000);
    let _ = redact_str(&names);
    let quotes = format!("password=\"{}", "token=\"".repeat(100_000));
    let _ = redact_str(&quotes);
    // Generous: the debug build is far slower than release; this catches quadratic blow-ups.
    assert!(start.elapsed().as_secs() < 60, "{:?}", start.elapsed());
    let mut v = json!({"a": [huge.clone(), {"password": huge}]});
    redact_value(&mut v);
    assert_eq!(v["a"][1]["password"], REDACTED);
}
