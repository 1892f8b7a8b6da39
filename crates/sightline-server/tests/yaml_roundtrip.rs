//! Export → import → export is byte-identical in YAML (docs/CONTRACT.md, export and import),
//! whatever the events hold: any Unicode text, strings YAML would read as something else
//! (`yes`, `null`, `0x10`, `~`, `- a`, `: b`), empty and huge values, nested payloads, any
//! numbers. Generated events go through validation first, as every stored event does; the
//! same round trip is checked page by page, the way the export route streams it.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use sightline_server::routes::export::{Format, decode, encode, head, page, tail};

/// Text YAML is known to misread when written bare, mixed into any Unicode text.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        2 => "\\PC{0,40}",
        1 => Just(String::new()),
        2 => prop::sample::select(vec![
            "yes", "no", "on", "off", "true", "False", "null", "~", "NULL", "0x10", "0o17",
            "1e3", "-.inf", ".nan", "012", "+1", "1_000", "- a", ": b", "? c", "#x", "&a",
            "*a", "!tag", "%YAML", "---", "...", "'", "\"", "|", ">", "@", "`", "a: b",
            "  lead", "trail  ", "tab\there", "line\nbreak", "\r\n", "\u{feff}bom", "\u{85}",
            "\u{2028}", "emoji 🦀", "ünïcödé", "\0nul",
        ])
        .prop_map(str::to_string),
        // Long enough to be cut by validation's string cap, so the cut marker round-trips too.
        1 => ".{0,20}".prop_map(|s| s.repeat(4_000)),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(json!(0.1)),
        Just(json!(-0.0)),
        Just(json!(1e300)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map(text(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// One event in the canonical shape, with free text wherever the schema allows it.
fn raw_event() -> impl Strategy<Value = Value> {
    (
        (text(), text(), text(), text()),
        (text(), text(), prop::collection::vec(text(), 0..4)),
        (
            json_value(),
            prop::collection::btree_map("[a-z_]{1,12}", number(), 0..4),
        ),
        (0i64..4_000_000_000_000, any::<u32>(), any::<bool>()),
    )
        .prop_map(
            |(
                (title, summary, agent, entity),
                (run, session, tags),
                (payload, metrics),
                (ms, id, status),
            )| {
                let mut e = json!({
                    "event_id": format!("ev-{id}-{ms}"),
                    "ts": sightline_schema::Timestamp(ms).to_rfc3339(),
                    "source": "custom",
                    "source_event": "generated",
                    "entity_type": "tool",
                    "title": title,
                    "summary": summary,
                    "agent": agent,
                    "entity_id": entity,
                    "run_id": run,
                    "session_id": session,
                    "tags": tags,
                    "metrics": metrics,
                    "payload": {"value": payload},
                });
                if status {
                    e["status"] = json!("succeeded");
                    e["duration_ms"] = json!(ms % 100_000);
                }
                e
            },
        )
}

/// The events as the store would hold them: validated (the generator may produce text that
/// validation refuses, such as an identifier with NUL; those events are left out).
fn validated(raw: Vec<Value>) -> Vec<sightline_schema::Event> {
    raw.into_iter()
        .filter_map(|v| decode(v.to_string().as_bytes(), Format::Json).ok())
        .flatten()
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn yaml_export_import_export_is_byte_identical(raw in prop::collection::vec(raw_event(), 0..6)) {
        let events = validated(raw);
        let first = encode(&events, Format::Yaml).expect("events serialise to YAML");
        let back = decode(first.as_bytes(), Format::Yaml)
            .unwrap_or_else(|e| panic!("our own YAML does not import: {e:?}\n{first}"));
        prop_assert_eq!(back.len(), events.len());
        for (a, b) in events.iter().zip(&back) {
            prop_assert_eq!(a.to_portable_json(), b.to_portable_json());
        }
        let second = encode(&back, Format::Yaml).expect("events serialise to YAML");
        prop_assert_eq!(&first, &second);

        // Streamed a page at a time (the route's way), the bytes are the same.
        let mut streamed = head(Format::Yaml).expect("head");
        for (i, chunk) in events.chunks(2).enumerate() {
            streamed.push_str(&page(chunk, Format::Yaml, i == 0).expect("page"));
        }
        streamed.push_str(&tail(Format::Yaml, events.is_empty()));
        prop_assert_eq!(&first, &streamed);
    }
}

#[test]
fn yaml_that_looks_like_other_types_stays_text() {
    let events = validated(vec![json!({
        "event_id": "ev-1",
        "ts": "2026-11-21T10:00:00.000Z",
        "source": "custom",
        "source_event": "generated",
        "entity_type": "tool",
        "title": "yes",
        "summary": "null",
        "agent": "0x10",
        "payload": {"a": "~", "b": "1e3", "c": "", "d": "- x", "n": 12, "f": 0.5},
    })]);
    assert_eq!(events.len(), 1, "the example event is valid");
    let yaml = encode(&events, Format::Yaml).unwrap();
    let back = decode(yaml.as_bytes(), Format::Yaml).unwrap();
    let v: Value = serde_json::from_str(&back[0].to_portable_json()).unwrap();
    assert_eq!(v["title"], "yes", "{yaml}");
    assert_eq!(v["summary"], "null", "{yaml}");
    assert_eq!(v["agent"], "0x10", "{yaml}");
    assert_eq!(v["payload"]["a"], "~", "{yaml}");
    assert_eq!(v["payload"]["b"], "1e3", "{yaml}");
    assert_eq!(v["payload"]["c"], "", "{yaml}");
    assert_eq!(v["payload"]["n"], 12, "{yaml}");
    assert_eq!(v["payload"]["f"], 0.5, "{yaml}");
}
