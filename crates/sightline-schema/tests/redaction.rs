//! Redaction through validation, by example: every case of issue 11 items 1 and 3, and the
//! whole secret corpus (tests/secrets/corpus.rs) in every script, in every text field, nested in
//! JSON values and keys, in command-line arrays and in payloads over the size cap. A secret found
//! in a validated event fails the test with the field and the format's name.

#[path = "secrets/corpus.rs"]
mod corpus;

use corpus::{SCRIPTS, SENSITIVE_KEYS, Secret, corpus};
use serde_json::{Value, json};
use sightline_schema::redact::{REDACTED, redact_str, redact_value};
use sightline_schema::validate::{MAX_PAYLOAD_BYTES, MAX_TEXT};
use sightline_schema::{Event, Timestamp, parse_event};

fn now() -> Timestamp {
    Timestamp::parse("2026-11-21T10:00:00Z").expect("valid")
}

fn base() -> Value {
    json!({"source": "custom", "source_event": "x", "entity_type": "log", "title": "hello"})
}

fn validate(v: &Value) -> Event {
    parse_event(v.to_string().as_bytes(), now()).unwrap_or_else(|e| panic!("refused: {e}: {v}"))
}

/// Every string in the event (keys and values), unescaped.
fn strings(e: &Event) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(map) => {
                for (k, v) in map {
                    out.push(k.clone());
                    walk(v, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&serde_json::to_value(e).expect("serialises"), &mut out);
    out
}

fn assert_clean(e: &Event, needles: &[String], what: &str) {
    for s in strings(e) {
        for n in needles {
            assert!(!s.contains(n.as_str()), "{what}: `{n}` survived in {s:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Item 1: no panic on non-ASCII after a sensitive name.
// ---------------------------------------------------------------------------------------------

#[test]
fn non_ascii_after_a_sensitive_name_is_redacted_without_panic() {
    let cases = [
        ("token: résumé", "résumé"),
        ("password: abcdef€", "abcdef€"),
        ("api_key = 🔑", "🔑"),
        ("password:密码是秘密", "密码是秘密"),
        ("Authorization: Bearer é", "é"),
        ("authorization: bearer 😀😀😀😀😀😀😀😀", "😀"),
        ("secret=ß", "ß"),
        ("token=\u{301}", "\u{301}"),
    ];
    for (text, secret) in cases {
        let out = redact_str(text).unwrap_or_else(|| panic!("nothing redacted in {text}"));
        assert!(!out.contains(secret), "{secret} survived in {out}");
        assert!(out.contains(REDACTED), "{out}");
    }
    // Every prefix of a multi-byte tail: the old `text[at..at + 7]` split one of these.
    let text = "Authorization: Bearer résumé 🔑 密码";
    for (i, _) in text.char_indices() {
        let _ = redact_str(&text[..i]);
        let _ = redact_str(&text[i..]);
    }
    // The CJK text of the issue, whole, through validation.
    let mut v = base();
    v["title"] = json!("ユーザーの token: 秘密の値です");
    v["payload"] = json!({"note": "令牌 token=秘密 完成", "p": "password: 密碼"});
    let e = validate(&v);
    assert_clean(&e, &["秘密".into(), "密碼".into()], "cjk");
}

// ---------------------------------------------------------------------------------------------
// Item 3: each case by name.
// ---------------------------------------------------------------------------------------------

fn assert_redacts(text: &str, secret: &str) {
    let out = redact_str(text).unwrap_or_else(|| panic!("nothing redacted in {text:?}"));
    assert!(!out.contains(secret), "{secret:?} survived in {out:?}");
}

#[test]
fn issue_11_item_3_cases() {
    assert_redacts("https://alice:pw1234@host/x", "pw1234");
    assert_redacts("postgres://u:pgpw99@db/app", "pgpw99");
    assert_redacts("svn+ssh://u:anyscheme@h", "anyscheme");
    assert_redacts("Authorization: Basic YWxpY2U6cHc=", "YWxpY2U6cHc=");
    assert_redacts("curl -u a:curlpw https://x", "curlpw");
    assert_redacts("tool --password pwpw", "pwpw");
    assert_redacts("tool --password=pwpw2", "pwpw2");
    assert_redacts("mysql -p mypw db", "mypw");
    assert_redacts("mysql -pmypw2 db", "mypw2");
    assert_redacts("gh --token ttt", "ttt");
    assert_redacts("llm --api-key kkk", "kkk");
    assert_redacts("sk_live_abcdefghijklmnop1234", "abcdefghijklmnop1234");
    assert_redacts("xoxa-2-abcdefghij1234", "abcdefghij1234");
    assert_redacts("xoxs-abcdefghij5678", "abcdefghij5678");
    assert_redacts(
        "https://hooks.slack.com/services/T1/B2/abcdefghij",
        "T1/B2/abcdefghij",
    );
    assert_redacts("ASIAIOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE");
    assert_redacts("hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "abcdefghijklmnop");
    assert_redacts(
        "ghr_abcdefghijklmnopqrstuvwxyz0123456789",
        "abcdefghijklmnop",
    );
    for (key, value) in [
        ("db_pass", "v1"),
        ("pass", "v2"),
        ("ssh_key", "v3"),
        ("encryption_key", "v4"),
        ("master_key", "v5"),
        ("auth_header", "v6"),
        ("Authentication", "v7"),
        ("token_value", "v8"),
        ("dsn", "v9"),
    ] {
        let mut v = json!({ key: value, "nested": [{ key: value }] });
        redact_value(&mut v);
        assert_eq!(v[key], REDACTED, "{key}");
        assert_eq!(v["nested"][0][key], REDACTED, "{key} nested");
    }
    let out = redact_str("PASSWORD=\"a b c\" done").expect("redacted");
    assert_eq!(out, "PASSWORD=\"[REDACTED]\" done");
}

#[test]
fn caps_come_after_redaction() {
    // Over 64 KiB: the payload becomes a preview, which must not hold what keys protected.
    let mut payload = serde_json::Map::new();
    payload.insert("db_pwd".into(), json!("PreviewPw-1"));
    payload.insert(
        "credentials".into(),
        json!({"user": "u", "key": "PreviewKey-2"}),
    );
    payload.insert("password".into(), json!({"a": {"b": "PreviewNested-3"}}));
    for i in 0..100 {
        payload.insert(format!("k{i:03}"), json!("y".repeat(1000)));
    }
    let mut v = base();
    v["payload"] = Value::Object(payload);
    let e = validate(&v);
    assert_eq!(
        e.payload["_truncated"], true,
        "the test must exercise the preview"
    );
    let needles = ["PreviewPw-1", "PreviewKey-2", "PreviewNested-3"].map(String::from);
    assert_clean(&e, &needles, "preview");
    // A long title is redacted first, then cut: no prefix of the token survives the cut.
    let tok = format!("ghp_{}", "Ab1".repeat(12));
    let mut v = base();
    v["title"] = json!(format!("{}{tok}", "x ".repeat((MAX_TEXT - 40) / 2)));
    let e = validate(&v);
    assert!(!e.title.contains("ghp_Ab1"), "{}", e.title);
    assert!(e.title.len() <= MAX_TEXT);
}

#[test]
fn command_line_arrays_lose_their_secrets() {
    let mut v = json!({"argv": ["mysql", "-u", "root", "-p", "ArgvPw1"],
        "a2": ["mysql", "-pArgvPw2"], "a3": ["curl", "-u", "me:ArgvPw3", "--token", "ArgvPw4"],
        "a4": ["redis-cli", "-a", "ArgvPw5"], "a5": ["git", "push", "-u", "origin", "main"]});
    redact_value(&mut v);
    let text = v.to_string();
    for n in ["ArgvPw1", "ArgvPw2", "ArgvPw3", "ArgvPw4", "ArgvPw5"] {
        assert!(!text.contains(n), "{n} survived in {text}");
    }
    assert_eq!(v["a5"], json!(["git", "push", "-u", "origin", "main"]));
    assert_eq!(v["a3"][2], "me:[REDACTED]");
}

#[test]
fn keys_holding_a_secret_are_renamed() {
    let tok = format!("ghp_{}", "Zz9".repeat(12));
    let mut v = base();
    v["payload"] = json!({ tok.clone(): 1, "nested": { format!("x {tok}"): {"k": 2} } });
    v["metrics"] = json!({ tok.clone(): 3, "input_tokens": 4 });
    let e = validate(&v);
    assert_clean(&e, std::slice::from_ref(&tok), "keys");
    assert_eq!(e.metric("input_tokens"), Some(4.0));
    assert_eq!(e.payload[REDACTED], 1);
}

// ---------------------------------------------------------------------------------------------
// The corpus, everywhere.
// ---------------------------------------------------------------------------------------------

/// The texts a secret is embedded in: each script spaced and tight (non-ASCII right against
/// it, except for commands, which need a word boundary), plus the bare secret.
fn embeddings(s: &Secret) -> Vec<(String, String)> {
    let mut out = vec![("bare".to_string(), s.text.clone())];
    for (name, before, after) in SCRIPTS {
        out.push((
            format!("{name} spaced"),
            format!("{before}{} {after}", s.text),
        ));
        if !s.command {
            let (b, a) = (before.trim_end(), after.trim_start());
            out.push((format!("{name} tight"), format!("{b}{}{a}", s.text)));
        }
    }
    out
}

/// One event per field the text can go in.
fn placements(text: &str) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = base();
        f(&mut v);
        v
    };
    out.push(("title", with(&|v| v["title"] = json!(text))));
    out.push(("summary", with(&|v| v["summary"] = json!(text))));
    out.push(("source_event", with(&|v| v["source_event"] = json!(text))));
    out.push(("entity_id", with(&|v| v["entity_id"] = json!(text))));
    out.push(("tags", with(&|v| v["tags"] = json!(["a", text]))));
    if text.len() <= 256 {
        out.push(("metric name", with(&|v| v["metrics"] = json!({ text: 1 }))));
    }
    out.push((
        "payload value",
        with(&|v| v["payload"] = json!({ "note": text })),
    ));
    out.push((
        "nested value",
        with(&|v| v["payload"] = json!({"a": {"b": [1, {"c": text}]}})),
    ));
    out.push((
        "payload key",
        with(&|v| v["payload"] = json!({ text: {"x": 1} })),
    ));
    out.push((
        "long title",
        with(&|v| v["title"] = json!(format!("{}{text}", "w ".repeat(220)))),
    ));
    out.push((
        "long string",
        with(&|v| v["payload"] = json!({"big": format!("{text} {}", "z".repeat(70_000))})),
    ));
    out.push((
        "preview",
        with(&|v| {
            let mut p = serde_json::Map::new();
            p.insert("a00".into(), json!(text));
            for i in 0..80 {
                p.insert(format!("k{i:03}"), json!("q".repeat(1000)));
            }
            v["payload"] = Value::Object(p);
        }),
    ));
    out
}

#[test]
fn no_secret_of_the_corpus_survives_validation_in_any_field() {
    let corpus = corpus();
    assert!(corpus.len() > 100, "the corpus shrank: {}", corpus.len());
    let mut checked = 0;
    for secret in &corpus {
        for (script, text) in embeddings(secret) {
            for (field, raw) in placements(&text) {
                let e = validate(&raw);
                if field == "preview" {
                    assert!(e.payload.contains_key("_truncated") || e.payload.contains_key("a00"));
                }
                let what = format!("{} / {script} / {field}", secret.label);
                assert_clean(&e, &secret.needles, &what);
                checked += 1;
            }
        }
    }
    assert!(checked > 10_000, "{checked}");
}

#[test]
fn values_under_sensitive_keys_never_survive_at_any_depth_or_size() {
    for key in SENSITIVE_KEYS {
        let needle = format!("KeyVal-{}-Zx9", key.len());
        let values = [
            json!(needle),
            json!({"inner": needle}),
            json!([needle, {"deeper": needle}]),
            json!(42_424_242),
        ];
        for value in values {
            let mut small = base();
            small["payload"] = json!({"outer": {"list": [{ *key: value.clone() }]}});
            let mut big = base();
            let mut p = serde_json::Map::new();
            p.insert((*key).into(), value.clone());
            for i in 0..80 {
                p.insert(format!("k{i:03}"), json!("q".repeat(1000)));
            }
            big["payload"] = Value::Object(p);
            for raw in [small, big] {
                let e = validate(&raw);
                assert_clean(&e, &[needle.clone(), "42424242".into()], key);
            }
        }
    }
    // The "big" payloads above (80 × 1000 bytes) must be over the cap.
    const { assert!(MAX_PAYLOAD_BYTES < 80_000) };
}

#[test]
fn ordinary_text_is_left_alone() {
    for clean in [
        "cargo test -p sightline-schema --quiet",
        "Read src/token_parser.rs and src/password_reset.rs",
        "input_tokens: 1200, output_tokens: 300, max_tokens=4096",
        "git push -u origin main; ssh -p 2222 host; mkdir -p a/b",
        "https://example.invalid/path?q=1&page=2",
        "user@example.invalid wrote: the basic idea",
        "Пароль сменён успешно",
        "パスワードを変更しました",
        "PASS: test_redaction (0.01s)",
        "Authorization header is missing",
        "the key: value pairs",
        "1.2.3 and v0.13.2",
    ] {
        assert_eq!(redact_str(clean), None, "{clean} was changed");
    }
}

#[test]
fn export_import_export_is_byte_identical_with_secrets_and_caps() {
    let corpus = corpus();
    for secret in corpus.iter().step_by(3) {
        for (_, raw) in placements(&secret.text) {
            let first = validate(&raw).to_portable_json();
            let again = parse_event(first.as_bytes(), now())
                .unwrap_or_else(|e| panic!("refused on import: {e}"))
                .to_portable_json();
            assert_eq!(first, again, "{}", secret.label);
        }
    }
}

/// Found by the `redact` fuzz target (CI smoke, 2026-11-30): a command-line array whose one
/// string holds `Authorization:`, two `--password` flags and a broken PEM header. Redacting must
/// not panic, and redacting the result again must change nothing, as text and as JSON.
#[test]
fn fuzz_found_flags_and_a_broken_pem_in_a_command_line_redact_idempotently() {
    let raw = r#"{"cm": ["--cizatiAuthorization: 7777/#--passworddB_twdg=on: 7777/#--password- abcdeoo-----BEGIN? PRIVAT---authenticationE KEY-----E KE", "t"], "env": {"SECRET": "s"}}"#;
    if let Some(once) = sightline_schema::redact::redact_str(raw) {
        assert_eq!(
            sightline_schema::redact::redact_str(&once),
            None,
            "text redaction is not idempotent: {once}"
        );
    }
    let mut value: serde_json::Value = serde_json::from_str(raw).unwrap();
    sightline_schema::redact::redact_value(&mut value);
    let mut again = value.clone();
    sightline_schema::redact::redact_value(&mut again);
    assert_eq!(value, again, "JSON redaction is not idempotent");
}
