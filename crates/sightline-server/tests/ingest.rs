//! Ingest over real HTTP into a real SQLite file: volume, idempotency, and the bad-input table.

mod common;

use common::*;
use serde_json::{Value, json};

#[test]
fn hundred_thousand_ndjson_events_are_stored_exactly_once() {
    let hub = TestHub::start();
    let url = format!("{}/api/v1/events", hub.url);
    let mut seqs = Vec::with_capacity(100_000);
    let batches: Vec<String> = (0..100)
        .map(|b| {
            ndjson(
                &(0..1000)
                    .map(|i| event("bulk", b * 1000 + i))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    for body in &batches {
        let (status, answer) = post(&url, "application/x-ndjson", body);
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["duplicates"], 0);
        seqs.extend(common::seqs(&answer));
    }
    assert_eq!(seqs.len(), 100_000);
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "seqs strictly increase"
    );

    // The same event_ids again: acknowledged with the stored seqs, nothing new stored.
    for (b, body) in batches.iter().enumerate().take(10) {
        let (status, answer) = post(&url, "application/x-ndjson", body);
        assert_eq!(status, 202);
        assert_eq!(answer["duplicates"], 1000);
        let again: Vec<u64> = answer["seqs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap())
            .collect();
        assert_eq!(again, seqs[b * 1000..(b + 1) * 1000]);
    }
    let health = get(&format!("{}/api/v1/health", hub.url));
    assert_eq!(health["storage"]["events"], 100_000);
    assert_eq!(health["head_seq"], *seqs.last().unwrap());
    let run = get(&format!("{}/api/v1/runs/bulk", hub.url));
    assert_eq!(run["run"]["event_count"], 100_000);
}

#[test]
fn bad_input_gets_a_clear_answer_and_the_hub_keeps_serving() {
    let hub = TestHub::start();
    let url = format!("{}/api/v1/events", hub.url);
    let good = event("ok", 1).to_string();
    let deep = format!(
        r#"{{"source":"custom","source_event":"x","entity_type":"log","title":"t","payload":{{"a":{}{}}}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let mut invalid_utf8 =
        br#"{"source":"custom","source_event":"x","entity_type":"log","title":""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(br#""}"#);
    let with = |k: &str, v: Value| {
        let mut e = event("bad", 9);
        e[k] = v;
        e.to_string()
    };
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        (
            "invalid JSON",
            b"{not json".to_vec(),
            "application/json",
            400,
            "invalid JSON",
        ),
        (
            "empty body",
            b"".to_vec(),
            "application/json",
            400,
            "body is empty",
        ),
        (
            "wrong type",
            with("title", json!(42)).into_bytes(),
            "application/json",
            400,
            "invalid type",
        ),
        (
            "missing required",
            br#"{"source":"custom","title":"t"}"#.to_vec(),
            "application/json",
            400,
            "missing field",
        ),
        (
            "unknown field",
            with("colour", json!("red")).into_bytes(),
            "application/json",
            400,
            "unknown field `colour`",
        ),
        (
            "unknown source",
            with("source", json!("cobol")).into_bytes(),
            "application/json",
            400,
            "source `cobol`",
        ),
        (
            "unknown status",
            with("status", json!("meh")).into_bytes(),
            "application/json",
            400,
            "status `meh`",
        ),
        (
            "invalid UTF-8",
            invalid_utf8,
            "application/json",
            400,
            "invalid",
        ),
        (
            "NUL in an id",
            with("run_id", json!("a\u{0}b")).into_bytes(),
            "application/json",
            400,
            "NUL",
        ),
        (
            "10,000-deep nesting",
            deep.into_bytes(),
            "application/json",
            400,
            "recursion limit",
        ),
        (
            "absurd future timestamp",
            with("ts", json!("2999-01-01T00:00:00Z")).into_bytes(),
            "application/json",
            400,
            "24 h ahead",
        ),
        (
            "pre-1970 timestamp",
            with("ts", json!("1969-07-20T20:17:00Z")).into_bytes(),
            "application/json",
            400,
            "before 1970",
        ),
        (
            "not a timestamp",
            with("ts", json!("last tuesday")).into_bytes(),
            "application/json",
            400,
            "RFC 3339",
        ),
        (
            "payload not an object",
            with("payload", json!("text")).into_bytes(),
            "application/json",
            400,
            "payload must be a JSON object",
        ),
        (
            "negative duration",
            with("duration_ms", json!(-5)).into_bytes(),
            "application/json",
            400,
            "duration_ms",
        ),
        (
            "one bad line spoils the batch",
            format!("{good}\n{{\"source\":1}}\n").into_bytes(),
            "application/x-ndjson",
            400,
            "line 2",
        ),
        (
            "array with a bad element",
            format!("[{good}, 7]").into_bytes(),
            "application/json",
            400,
            "line 2",
        ),
    ];
    for (name, body, content_type, status, needle) in cases {
        let (got, answer) = post(&url, content_type, &body);
        assert_eq!(got, status, "{name}: {answer}");
        let message = answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
            + &answer["error"]["details"].to_string();
        assert!(
            message.contains(needle),
            "{name}: `{message}` lacks `{needle}`"
        );
    }
    // A 10 MB body: refused from its declared length, before the producer finishes sending.
    let (status, text) = post_declared_length(&url, 10 * 1024 * 1024);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("limit"), "{text}");
    // Nothing from the bad batches was stored; the hub still takes good events.
    assert_eq!(get(&format!("{}/api/v1/health", hub.url))["head_seq"], 0);
    let (status, answer) = post(&url, "application/json", &good);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["seqs"], json!([1]));
}

#[test]
fn hostile_strings_are_stored_verbatim_and_secrets_are_not() {
    let hub = TestHub::start();
    let mut e = event("hostile", 1);
    e["title"] = json!("'; DROP TABLE events; -- <script>alert(1)</script> \u{202e}");
    e["payload"] = json!({"headers": {"Authorization": "Bearer sk-live-abcdefghijklmnop"}, "env": {"DB_PASSWORD": "hunter2"},
                          "note": "emoji 🦀 and quotes \" ' and a \u{0} NUL"});
    let (status, _) = post(
        &format!("{}/api/v1/events", hub.url),
        "application/json",
        e.to_string(),
    );
    assert_eq!(status, 202);
    let stored = get(&format!("{}/api/v1/events/1", hub.url));
    assert_eq!(stored["title"], e["title"]);
    assert_eq!(stored["payload"]["note"], e["payload"]["note"]);
    let text = stored.to_string();
    assert!(
        !text.contains("abcdefghijklmnop") && !text.contains("hunter2"),
        "{text}"
    );
    let found = get(&format!("{}/api/v1/search?q=DROP", hub.url));
    assert_eq!(found["events"].as_array().unwrap().len(), 1);
}

#[test]
fn telemetry_events_map_to_sessions_and_tools() {
    let hub = TestHub::start_with(|_, settings| settings.token = Some("s3cret".into()));
    let url = format!("{}/telemetry", hub.url);
    let body = json!([
        {"id": "t1", "type": "agent_start", "agentId": "a1", "sessionId": "s1", "containerId": "c0ffee", "timestamp": 1_763_700_000_000u64, "data": {}},
        {"id": "t2", "type": "tool_call", "agentId": "a1", "sessionId": "s1", "toolName": "Read", "timestamp": "2025-11-21T04:40:01Z",
         "data": {"durationMs": 40}, "tokenUsage": {"input": 100, "output": 20, "cost": 0.01}, "extraField": {"kept": true}},
        {"id": "t3", "type": "agent_error", "agentId": "a1", "sessionId": "s1", "timestamp": "2025-11-21T04:40:02Z", "data": {"error": "boom"}}
    ]);
    let (status, _) = post(&url, "application/json", body.to_string());
    assert_eq!(status, 401, "a token is configured");
    let res = agent()
        .post(&url)
        .header("Authorization", "Bearer s3cret")
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    let events = get_with_token(&format!("{}/api/v1/runs/s1/timeline", hub.url), "s3cret");
    let events = events["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 3);
    assert_eq!(events[1]["entity_type"], "tool");
    assert_eq!(
        events[1]["payload"]["extraField"]["kept"], true,
        "unknown fields are kept"
    );
    assert_eq!(events[1]["metrics"]["input_tokens"], 100);
    assert_eq!(events[2]["severity"], "error");
    let run = get_with_token(&format!("{}/api/v1/runs/s1", hub.url), "s3cret");
    assert_eq!(run["run"]["status"], "failed");
    assert_eq!(run["run"]["error_count"], 1);
}

fn get_with_token(url: &str, token: &str) -> Value {
    let mut res = agent()
        .get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    serde_json::from_str(&res.body_mut().read_to_string().unwrap()).unwrap()
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_stores_nothing_of_it() {
    // A hub whose writer is held inside its first commit: the queue cannot drain.
    let (hub, gate) = TestHub::start_gated(50);
    let url = format!("{}/api/v1/events", hub.url);
    let first_post = {
        let url = url.clone();
        std::thread::spawn(move || post(&url, "application/json", event("q", 0).to_string()))
    };
    // Wait until the writer holds the first batch (committed, so the head moved; not yet
    // acknowledged), then fill the queue and wait until it holds all 41 (a fixed pause let the
    // writer take the first event together with the filler on a loaded machine).
    let store = hub.core().store().clone();
    let budget = std::time::Duration::from_secs(20);
    wait_until("the writer to hold the first event", budget, || {
        store.head_seq() == 1
    });
    let fill = ndjson(&(1..=40).map(|i| event("q", i)).collect::<Vec<_>>());
    let filler = {
        let url = url.clone();
        std::thread::spawn(move || post(&url, "application/x-ndjson", fill))
    };
    wait_until("the filler queued behind it", budget, || {
        store.queue_depth() == 41
    });
    let over = ndjson(&(41..=60).map(|i| event("q", i)).collect::<Vec<_>>());
    let res = agent()
        .post(&url)
        .header("Content-Type", "application/x-ndjson")
        .send(over.as_bytes())
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(res.headers().get("retry-after").unwrap(), "1");
    gate.open();
    assert_eq!(first_post.join().unwrap().0, 202);
    assert_eq!(filler.join().unwrap().0, 202);
    let hub_url = hub.url.clone();
    assert_eq!(
        get(&format!("{hub_url}/api/v1/health"))["head_seq"],
        41,
        "the refused batch stored nothing"
    );
    assert_eq!(
        get(&format!("{hub_url}/api/v1/health"))["queue"]["rejected"],
        1
    );
}
