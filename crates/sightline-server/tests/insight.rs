//! `GET /api/v1/count` and `GET /api/v1/series` over real HTTP against a real hub: counts agree
//! with what paging returns, `before` positions a page, series put each event in its minute and
//! its line (source, agent, run, model), tokens and cost add up, bad parameters are refused with
//! a message that says what to send.

mod common;

use common::*;
use serde_json::{Value, json};

fn at(minute: u32, second: u32) -> String {
    format!("2026-11-21T10:{minute:02}:{second:02}.000Z")
}

/// 30 tool calls of run-a (agent main) over minutes 0–2, 3 of them failed; 4 model replies of
/// run-b (agent Explore) in minute 1 with tokens and cost, two models.
fn seed(hub: &TestHub) {
    let mut events = Vec::new();
    for i in 0..30u32 {
        let mut e = event("run-a", i as usize);
        e["ts"] = json!(at(i / 10, i % 10));
        if i % 10 == 3 {
            e["status"] = json!("failed");
            e["severity"] = json!("error");
        }
        events.push(e);
    }
    for i in 0..4u32 {
        events.push(json!({
            "event_id": format!("m{i}"), "ts": at(1, 30 + i), "source": "otlp",
            "source_event": "api_request", "entity_type": "message", "run_id": "run-b",
            "session_id": "run-b", "agent": "Explore", "title": "model request",
            "metrics": {"input_tokens": 100, "output_tokens": 10, "cost_usd": 0.5},
            "payload": {"model": if i < 3 { "claude-sonnet" } else { "claude-haiku" }}
        }));
    }
    let (status, body) = hub.post_json("/api/v1/events", &Value::Array(events));
    assert_eq!(status, 202, "{body}");
}

#[test]
fn count_is_exact_and_agrees_with_paging() {
    let hub = TestHub::start();
    seed(&hub);
    assert_eq!(
        hub.get("/api/v1/count"),
        json!({"count": 34, "exact": true})
    );
    assert_eq!(
        hub.get("/api/v1/count?runs=run-a&severities=error"),
        json!({"count": 3, "exact": true})
    );
    // Full text counts what search pages through.
    let q = hub.get("/api/v1/count?q=cargo");
    assert_eq!(q, json!({"count": 30, "exact": true}));
    let found = hub.get("/api/v1/search?q=cargo&limit=1000");
    assert_eq!(found["events"].as_array().unwrap().len(), 30);
    // `before` gives a page's position: the events of run-a below its 11th seq are 10.
    let page = hub.get("/api/v1/runs/run-a/timeline?limit=10");
    let next = page["next_cursor"].as_u64().unwrap();
    assert_eq!(
        hub.get(&format!("/api/v1/count?runs=run-a&before={}", next + 1)),
        json!({"count": 10, "exact": true})
    );
    let (status, body) = get_status(&format!("{}/api/v1/count?before=-1", hub.url));
    assert_eq!(status, 400, "{body}");
}

#[test]
fn series_buckets_events_by_minute_and_line() {
    let hub = TestHub::start();
    seed(&hub);
    let range = format!("since={}&until={}", at(0, 0), at(5, 0));
    let total = hub.get(&format!("/api/v1/series?{range}"));
    assert_eq!(total["bucket_ms"], 60_000);
    assert_eq!(total["buckets"], 5);
    assert_eq!(total["partial"], false);
    let line = &total["lines"][0];
    assert_eq!(line["key"], "all");
    assert_eq!(line["events"], json!([10, 14, 10, 0, 0]));
    assert_eq!(line["errors"], json!([1, 1, 1, 0, 0]));
    assert_eq!(line["cost_usd"], json!([0.0, 2.0, 0.0, 0.0, 0.0]));

    let by_source = hub.get(&format!("/api/v1/series?{range}&by=source"));
    let keys: Vec<&str> = strs(&by_source["lines"], "key");
    assert_eq!(keys, ["claude", "otlp"]);
    assert_eq!(by_source["lines"][1]["events"], json!([0, 4, 0, 0, 0]));

    let by_agent = hub.get(&format!("/api/v1/series?{range}&by=agent"));
    assert_eq!(by_agent["lines"][0]["key"], "main");
    assert_eq!(by_agent["lines"][0]["total_events"], 30);
    assert_eq!(by_agent["lines"][1]["key"], "Explore");
    assert_eq!(
        by_agent["lines"][1]["input_tokens"],
        json!([0.0, 400.0, 0.0, 0.0, 0.0])
    );

    let by_run = hub.get(&format!("/api/v1/series?{range}&by=run"));
    assert_eq!(by_run["lines"][0]["key"], "run-a");
    assert_eq!(by_run["lines"][0]["errors"], json!([1, 1, 1, 0, 0]));

    // Model: only the events that carry usage, by their payload's model.
    let by_model = hub.get(&format!("/api/v1/series?{range}&by=model"));
    assert_eq!(by_model["lines"][0]["key"], "claude-sonnet");
    assert_eq!(
        by_model["lines"][0]["cost_usd"],
        json!([0.0, 1.5, 0.0, 0.0, 0.0])
    );
    assert_eq!(by_model["lines"][1]["key"], "claude-haiku");
    assert_eq!(by_model["lines"][1]["events"], json!([0, 1, 0, 0, 0]));
}

#[test]
fn series_widens_buckets_and_refuses_bad_parameters() {
    let hub = TestHub::start();
    seed(&hub);
    // A week at one minute would be 10,080 buckets: the hub widens them to fit 1,440.
    let week =
        hub.get("/api/v1/series?since=2026-11-15T00:00:00Z&until=2026-11-22T00:00:00Z&bucket_s=60");
    assert!(
        week["buckets"].as_u64().unwrap() <= 1_440,
        "{}",
        week["buckets"]
    );
    assert_eq!(week["bucket_ms"].as_i64().unwrap() % 60_000, 0);
    assert_eq!(week["lines"][0]["total_events"], 34);
    for (query, needle) in [
        ("by=colour", "not one of"),
        (
            "since=2026-11-22T00:00:00Z&until=2026-11-21T00:00:00Z",
            "before until",
        ),
        (
            "since=2026-01-01T00:00:00Z&until=2026-11-21T00:00:00Z",
            "90 days",
        ),
        ("bucket_s=0", "bucket_s"),
        ("since=yesterday", "since"),
    ] {
        let (status, body) = get_status(&format!("{}/api/v1/series?{query}", hub.url));
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{query}: {body}"
        );
    }
}

#[test]
fn series_by_project_sums_the_runs_of_one_working_directory() {
    let hub = TestHub::start();
    let mut events = Vec::new();
    for (run, cwd) in [
        ("run-p1", "/nowhere/alpha"),
        ("run-p2", "/nowhere/alpha"),
        ("run-p3", "/nowhere/beta"),
    ] {
        events.push(
            json!({"event_id": format!("{run}-s"), "ts": at(0, 1), "source": "claude",
            "source_event": "SessionStart", "entity_type": "session", "run_id": run,
            "session_id": run, "title": "Session started", "payload": {"cwd": cwd}}),
        );
        let mut e = event(run, 1);
        e["event_id"] = json!(format!("{run}-t"));
        e["ts"] = json!(at(1, 2));
        events.push(e);
    }
    let (status, body) = hub.post_json("/api/v1/events", &Value::Array(events));
    assert_eq!(status, 202, "{body}");
    let s = hub.get(&format!(
        "/api/v1/series?since={}&until={}&by=project",
        at(0, 0),
        at(3, 0)
    ));
    assert_eq!(s["by"], "project");
    assert_eq!(s["lines"][0]["key"], "alpha");
    assert_eq!(s["lines"][0]["events"], json!([2, 2, 0]));
    assert_eq!(s["lines"][1]["key"], "beta");
    assert_eq!(s["lines"][1]["total_events"], 2);
}
