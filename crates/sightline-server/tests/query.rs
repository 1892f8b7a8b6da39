//! Queries and export/import over real HTTP: runs with paging, run detail with roll-ups,
//! timeline, session tree, search, stats, incidents, and byte-identical round trips.

mod common;

use common::*;
use serde_json::{Value, json};

fn seed(hub: &TestHub) {
    let e = |v: Value| v;
    let events = vec![
        e(
            json!({"event_id": "s0", "ts": "2026-11-21T10:00:00.000Z", "source": "claude", "source_event": "SessionStart", "entity_type": "session",
                 "run_id": "run-a", "session_id": "run-a", "agent": "main", "status": "running", "title": "Session started"}),
        ),
        e(
            json!({"event_id": "p0", "ts": "2026-11-21T10:00:01.000Z", "source": "claude", "source_event": "UserPromptSubmit", "entity_type": "prompt",
                 "run_id": "run-a", "session_id": "run-a", "agent": "main", "title": "Fix the flaky test", "payload": {"prompt": "Fix the flaky test ✓"}}),
        ),
        e(
            json!({"event_id": "sub1", "ts": "2026-11-21T10:00:02.000Z", "source": "claude", "source_event": "SubagentStart", "entity_type": "session",
                 "run_id": "run-a", "session_id": "agent-1", "parent_session_id": "run-a", "agent": "Explore", "status": "running", "title": "Explore"}),
        ),
        e(
            json!({"event_id": "m1", "ts": "2026-11-21T10:00:03.500Z", "source": "claude", "source_event": "assistant", "entity_type": "message",
                 "run_id": "run-a", "session_id": "agent-1", "parent_session_id": "run-a", "agent": "Explore", "title": "reply",
                 "metrics": {"input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.0125}}),
        ),
        e(
            json!({"event_id": "m0", "ts": "2026-11-21T10:00:04.000Z", "source": "claude", "source_event": "assistant", "entity_type": "message",
                 "run_id": "run-a", "session_id": "run-a", "agent": "main", "title": "reply", "metrics": {"input_tokens": 100, "output_tokens": 50, "cost_usd": 0.5}}),
        ),
        e(
            json!({"event_id": "f1", "ts": "2026-11-21T10:00:05.000Z", "source": "claude", "source_event": "PostToolUseFailure", "entity_type": "tool",
                 "run_id": "run-a", "session_id": "agent-1", "parent_session_id": "run-a", "agent": "Explore", "status": "failed", "severity": "error",
                 "title": "Bash failed", "correlation_id": "toolu_9", "duration_ms": 250.5, "tags": ["ci", "flaky"],
                 "payload": {"error": "exit 101", "nested": {"list": [1, 2.5, "three", null, true], "empty": {}}}}),
        ),
        e(
            json!({"event_id": "f2", "ts": "2026-11-21T10:00:06.000Z", "source": "claude", "source_event": "PostToolUseFailure", "entity_type": "tool",
                 "run_id": "run-a", "session_id": "agent-1", "parent_session_id": "run-a", "agent": "Explore", "status": "failed", "severity": "error",
                 "title": "Bash failed again", "correlation_id": "toolu_9", "summary": "multi\nline, with \"quotes\""}),
        ),
        e(
            json!({"event_id": "sub1-end", "ts": "2026-11-21T10:00:07.000Z", "source": "claude", "source_event": "SubagentStop", "entity_type": "session",
                 "run_id": "run-a", "session_id": "agent-1", "parent_session_id": "run-a", "agent": "Explore", "status": "success", "title": "Explore done"}),
        ),
        e(
            json!({"event_id": "w0", "ts": "2026-11-21T11:00:00.000Z", "source": "workflow", "source_event": "status", "entity_type": "workflow",
                 "run_id": "wf-1", "status": "running", "title": "Nightly build", "metrics": {"progress": 40}}),
        ),
    ];
    let (status, answer) = post(
        &format!("{}/api/v1/events", hub.url),
        "application/json",
        json!(events).to_string(),
    );
    assert_eq!(status, 202, "{answer}");
}

#[test]
fn runs_list_pages_and_filters() {
    let hub = TestHub::start();
    seed(&hub);
    let page = get(&format!("{}/api/v1/runs?limit=1", hub.url));
    assert_eq!(page["runs"][0]["run_id"], "wf-1", "newest activity first");
    let next = page["next_cursor"].as_str().unwrap();
    let page2 = get(&format!("{}/api/v1/runs?limit=1&cursor={next}", hub.url));
    assert_eq!(page2["runs"][0]["run_id"], "run-a");
    assert!(page2["next_cursor"].is_null());
    let workflows = get(&format!("{}/api/v1/runs?source=workflow", hub.url));
    assert_eq!(workflows["runs"].as_array().unwrap().len(), 1);
    let (status, body) = get_text(&format!("{}/api/v1/runs?status=sleepy", hub.url));
    assert_eq!(status, 400, "{body}");
}

#[test]
fn run_detail_tree_and_timeline_roll_up_subagents() {
    let hub = TestHub::start();
    seed(&hub);
    let detail = get(&format!("{}/api/v1/runs/run-a", hub.url));
    let run = &detail["run"];
    assert_eq!(
        run["title"], "Fix the flaky test",
        "the prompt names the run"
    );
    assert_eq!(run["status"], "running");
    assert_eq!(run["event_count"], 8);
    assert_eq!(run["error_count"], 2);
    assert_eq!(run["session_count"], 2);
    assert!((run["cost_usd"].as_f64().unwrap() - 0.5125).abs() < 1e-9);
    assert_eq!(run["duration_ms"], 7000);
    assert_eq!(detail["by_severity"]["error"], 2);

    let tree = get(&format!("{}/api/v1/sessions/run-a/tree", hub.url))["tree"].clone();
    assert!((tree["cost_usd"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    assert!((tree["total_cost_usd"].as_f64().unwrap() - 0.5125).abs() < 1e-9);
    assert_eq!(tree["total_input_tokens"], 1300.0);
    let child = &tree["children"][0];
    assert_eq!(child["session_id"], "agent-1");
    assert_eq!(child["status"], "success");
    assert_eq!(child["duration_ms"], 5000);

    let timeline = get(&format!("{}/api/v1/runs/run-a/timeline?limit=3", hub.url));
    assert_eq!(timeline["events"].as_array().unwrap().len(), 3);
    let rest = get(&format!(
        "{}/api/v1/runs/run-a/timeline?after={}",
        hub.url, timeline["next_cursor"]
    ));
    assert_eq!(rest["events"].as_array().unwrap().len(), 5);
    assert_eq!(get_text(&format!("{}/api/v1/runs/nope", hub.url)).0, 404);
}

#[test]
fn search_stats_and_incidents() {
    let hub = TestHub::start();
    seed(&hub);
    let hits = get(&format!("{}/api/v1/search?q=flaky&sources=claude", hub.url));
    assert_eq!(
        hits["events"].as_array().unwrap().len(),
        2,
        "prompt payload and tags: {hits}"
    );
    let lifecycle = get(&format!("{}/api/v1/search?correlations=toolu_9", hub.url));
    assert_eq!(lifecycle["events"].as_array().unwrap().len(), 2);
    let errors = get(&format!(
        "{}/api/v1/search?severities=error&order=asc&limit=1",
        hub.url
    ));
    assert_eq!(errors["events"][0]["event_id"], "f1");
    let stats = get(&format!(
        "{}/api/v1/stats?since=2026-11-21T00:00:00Z",
        hub.url
    ));
    assert_eq!(stats["total_events"], 9);
    assert_eq!(stats["error_events"], 2);
    assert_eq!(stats["by_source"]["workflow"], 1);
    assert!((stats["total_cost_usd"].as_f64().unwrap() - 0.5125).abs() < 1e-9);
    let incidents = get(&format!(
        "{}/api/v1/incidents?since=2026-11-21T00:00:00Z",
        hub.url
    ));
    let list = incidents["incidents"].as_array().unwrap();
    assert_eq!(
        list.len(),
        1,
        "two failures of one correlation within the window are one incident"
    );
    assert_eq!(list[0]["count"], 2);
    assert_eq!(list[0]["first_seen"], "2026-11-21T10:00:05.000Z");
}

#[test]
fn export_then_import_into_an_empty_hub_is_byte_identical_in_every_format() {
    let source = TestHub::start();
    seed(&source);
    for format in ["yaml", "json", "ndjson", "csv"] {
        let (status, first) = get_text(&format!(
            "{}/api/v1/export?run_id=run-a&format={format}",
            source.url
        ));
        assert_eq!(status, 200, "{first}");
        let target = TestHub::start();
        let (status, answer) = post(
            &format!("{}/api/v1/import?format={format}", target.url),
            "application/octet-stream",
            &first,
        );
        assert_eq!(status, 200, "{format}: {answer}");
        assert_eq!(answer["imported"], 8);
        let (_, second) = get_text(&format!(
            "{}/api/v1/export?run_id=run-a&format={format}",
            target.url
        ));
        assert_eq!(first, second, "{format} round trip");
        // And again into the same hub: nothing new.
        let (_, again) = post(
            &format!("{}/api/v1/import?format={format}", target.url),
            "application/octet-stream",
            &first,
        );
        assert_eq!(again["duplicates"], 8);
        // The derived rows come back too.
        let run = get(&format!("{}/api/v1/runs/run-a", target.url));
        assert!((run["run"]["cost_usd"].as_f64().unwrap() - 0.5125).abs() < 1e-9);
    }
}

#[test]
fn openapi_document_lists_every_endpoint() {
    let hub = TestHub::start();
    let doc = get(&format!("{}/openapi.json", hub.url));
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/v1/events",
        "/api/v1/events/stream",
        "/api/v1/runs/{run_id}/timeline",
        "/api/v1/sessions/{session_id}/tree",
        "/api/v1/search",
        "/api/v1/stats",
        "/api/v1/incidents",
        "/api/v1/export",
        "/api/v1/import",
        "/api/v1/hooks/claude",
        "/v1/traces",
        "/ws",
        "/ws/workflow/{id}",
        "/api/v1/workflows/{id}/updates",
        "/api/v1/plugins/{name}/invoke",
        "/api/v1/audit",
        "/telemetry",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    // The vocabularies are components of their own (derived from the Rust enums), referenced
    // from the event.
    let severity = &doc["components"]["schemas"]["Event"]["properties"]["severity"];
    let name = severity["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .unwrap_or_else(|| panic!("severity is a reference: {severity}"));
    assert_eq!(
        doc["components"]["schemas"][name]["enum"],
        json!(["debug", "info", "warn", "error"])
    );
}

#[test]
fn process_control_long_poll_sees_a_change() {
    let hub = TestHub::start();
    let base = format!("{}/api/v1/processes/run-7/control", hub.url);
    assert_eq!(get(&base)["version"], 0);
    let waiter = {
        let url = format!("{base}?version=0&wait_s=10");
        std::thread::spawn(move || (std::time::Instant::now(), get(&url)))
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let res = agent()
        .put(&base)
        .header("Content-Type", "application/json")
        .send(r#"{"enabled": false, "include": ["app.*"]}"#)
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let (started, seen) = waiter.join().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(seen["version"], 1);
    assert_eq!(seen["enabled"], false);
    assert_eq!(seen["include"], json!(["app.*"]));
    let bad = agent()
        .put(&base)
        .header("Content-Type", "application/json")
        .send(r#"{"enabeld": true}"#)
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
}
