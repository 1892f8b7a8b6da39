//! The incident normaliser and fingerprints: examples from the issue (PR numbers in review-bot
//! titles, `send_email` retries, Python exceptions), and properties over any text — bounded
//! output, idempotent, never a digit left, the same message with other numbers, ids and quoted
//! values gives the same fingerprint. Then grouping over a real SQLite store.

use proptest::prelude::*;
use serde_json::json;
use sightline_schema::{Timestamp, parse_event};
use sightline_store::fingerprint::{
    MAX_NORMALISED, fingerprint, incident_groups, normalise_message,
};
use sightline_store::{Store, StoreConfig};

#[test]
fn examples() {
    assert_eq!(
        normalise_message("review-bot: PR #4512 failed after 3 attempts"),
        normalise_message("review-bot: PR #77 failed after 12 attempts"),
    );
    assert_eq!(
        normalise_message(
            "ConnectionError: connect to 'smtp.example.com:587' timed out after 30.5s"
        ),
        "ConnectionError: connect to <str> timed out after <n>.<n>s"
    );
    assert_eq!(
        normalise_message("object 0x7f3a9c2e1b40 at req 3f2b9c1e-8a7d-4e2b-9c1d-2b3a4c5d6e7f"),
        "object <hex> at req <hex>"
    );
    assert_eq!(
        normalise_message("can't   reach\n\thost"),
        "can't reach host"
    );
    assert_eq!(normalise_message("worker3 http2"), "worker<n> http<n>");
}

fn event(v: serde_json::Value) -> sightline_schema::Event {
    parse_event(v.to_string().as_bytes(), Timestamp::now()).unwrap()
}

#[test]
fn fingerprints_group_what_failed() {
    let exc = |msg: &str, line: u32| {
        event(
            json!({"source": "python", "source_event": "exception", "entity_type": "exception",
            "title": format!("TransientError: {msg}"), "status": "failed", "severity": "error",
            "entity_id": "TransientError", "summary": format!("at send_email (mail.py:{line})"),
            "payload": {"type": "TransientError", "message": msg}}),
        )
    };
    let a = fingerprint(&exc("retry 3 of 5 for user 'ann@x.org'", 41));
    let b = fingerprint(&exc("retry 4 of 5 for user 'bob@y.org'", 41));
    let elsewhere = fingerprint(&exc("retry 4 of 5 for user 'bob@y.org'", 90));
    assert_eq!(a.1, b.1);
    assert_ne!(a.1, elsewhere.1, "the location is part of the fingerprint");
    assert_eq!(a.0, "exception");
    assert!(
        a.2.starts_with("TransientError: retry <n> of <n>"),
        "{}",
        a.2
    );
    let tool = |err: &str| {
        event(
            json!({"source": "claude", "source_event": "PostToolUseFailure", "entity_type": "tool",
            "title": "Bash", "status": "failed", "severity": "error",
            "payload": {"tool_name": "Bash", "error": err}}),
        )
    };
    assert_eq!(
        fingerprint(&tool("Exit code 1\nerror[E0432]: unresolved import `foo`")).1,
        fingerprint(&tool("Exit code 1\nsomething else entirely")).1,
        "a tool's error class is its first line"
    );
    assert_ne!(
        fingerprint(&tool("Exit code 2")).1,
        fingerprint(&tool("Permission denied")).1
    );
}

#[tokio::test]
async fn groups_count_runs_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        StoreConfig::new(dir.path().join("db.sqlite")),
        Box::new(|_| {}),
    )
    .unwrap();
    let mut events = Vec::new();
    for i in 0..9 {
        events.push(event(
            json!({"source": "workflow", "source_event": "step", "entity_type": "step",
            "title": format!("send_email failed: TransientError attempt {i}"), "status": "failed",
            "severity": "error", "run_id": format!("wf-{}", i % 3), "event_id": format!("w{i}"),
            "ts": format!("2026-11-21T10:00:0{i}.000Z")}),
        ));
    }
    events.push(event(
        json!({"source": "workflow", "source_event": "step", "entity_type": "step",
        "title": "review-bot: PR #12 failed", "status": "failed", "severity": "error",
        "run_id": "rb", "event_id": "rb1", "ts": "2026-11-21T10:01:00.000Z"}),
    ));
    store.write(events).await.unwrap();
    let since = Timestamp::parse("2026-11-21T00:00:00Z").unwrap();
    let g = store
        .read(move |c| incident_groups(c, since, 100))
        .await
        .unwrap();
    assert_eq!(g.failures, 10);
    assert!(!g.partial);
    assert_eq!(g.groups.len(), 2);
    assert_eq!(g.groups[0].title, "review-bot: PR #<n> failed");
    let send = &g.groups[1];
    assert_eq!(send.count, 9);
    assert_eq!(send.run_count, 3);
    assert_eq!(send.runs.len(), 3);
    assert_eq!(
        send.first_seen,
        Timestamp::parse("2026-11-21T10:00:00Z").unwrap()
    );
    assert_eq!(
        send.last_seen,
        Timestamp::parse("2026-11-21T10:00:08Z").unwrap()
    );
    assert_eq!(
        send.sample.event_id, "w8",
        "the sample is the latest failure"
    );
    store.close();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_text_normalises_bounded_and_stably(text in any::<String>()) {
        let n = normalise_message(&text);
        prop_assert!(n.chars().count() <= MAX_NORMALISED);
        prop_assert!(!n.chars().any(|c| c.is_ascii_digit()), "{n:?}");
        prop_assert!(!n.contains("  "));
        prop_assert_eq!(normalise_message(&n), n.clone(), "normalising twice changes nothing");
    }

    #[test]
    fn numbers_ids_and_quoted_values_do_not_split_a_group(
        words in proptest::collection::vec("[a-z]{1,8}", 1..6),
        a in any::<u64>(), b in any::<u64>(),
        qa in "[^'\n]{0,20}", qb in "[^'\n]{0,20}",
        ha in "[0-9a-f]{8,32}", hb in "[0-9a-f]{8,32}",
    ) {
        let base = words.join(" ");
        let one = format!("{base} #{a} '{qa}' 0x{ha} ok");
        let two = format!("{base} #{b} '{qb}' 0x{hb} ok");
        prop_assert_eq!(normalise_message(&one), normalise_message(&two));
    }

    #[test]
    fn any_payload_fingerprints_without_panicking(title in "\\PC{1,200}", msg in any::<String>(), tool in any::<String>()) {
        for v in [
            json!({"source": "python", "source_event": "exception", "entity_type": "exception", "title": title, "payload": {"type": tool, "message": msg}}),
            json!({"source": "claude", "source_event": "PostToolUseFailure", "entity_type": "tool", "title": title, "payload": {"tool_name": tool, "error": msg}}),
            json!({"source": "custom", "source_event": "x", "entity_type": "log", "title": title}),
        ] {
            if let Ok(e) = parse_event(v.to_string().as_bytes(), Timestamp::now()) {
                let (_, key, label) = fingerprint(&e);
                prop_assert!(!key.is_empty());
                prop_assert!(label.chars().count() <= 4 * MAX_NORMALISED + 600);
            }
        }
    }
}
