//! Docker-agent TelemetryEvent semantics (`POST /telemetry`): session lifecycle, failed
//! commands, token usage and cost rolled into the session.

mod common;

use common::TestHub;
use serde_json::json;

#[test]
fn telemetry_events_make_a_session_with_cost_and_failures() {
    let hub = TestHub::start();
    let t = 1_795_255_200_000i64;
    let events = json!([
        {"id": "d1", "type": "agent_start", "agentId": "agent-7", "sessionId": "dk-1", "containerId": "c0ffee", "timestamp": t},
        {"id": "d2", "type": "tool_call", "agentId": "agent-7", "sessionId": "dk-1", "timestamp": t + 10, "toolName": "read_file", "data": {"durationMs": 12}},
        {"id": "d3", "type": "bash_command", "agentId": "agent-7", "sessionId": "dk-1", "timestamp": t + 20, "data": {"command": "make test", "exitCode": 2, "durationMs": 900}},
        {"id": "d4", "type": "metric", "agentId": "agent-7", "sessionId": "dk-1", "timestamp": t + 30, "data": {"name": "files_changed", "value": 3},
         "tokenUsage": {"inputTokens": 1200, "outputTokens": 300, "costUsd": 0.0042}},
        {"id": "d5", "type": "custom", "agentId": "agent-7", "sessionId": "dk-1", "timestamp": t + 40, "data": {"name": "checkpoint saved"}},
        {"id": "d6", "type": "agent_complete", "agentId": "agent-7", "sessionId": "dk-1", "timestamp": t + 50, "data": {"result": "done"}}
    ]);
    let (status, answer) = hub.post_json("/telemetry", &events);
    assert_eq!(status, 202, "{answer}");
    let stored = hub.events();
    let bash = stored
        .iter()
        .find(|e| e["source_event"] == "bash_command")
        .unwrap();
    assert_eq!(bash["status"], "failed");
    assert_eq!(bash["severity"], "error");
    assert_eq!(bash["duration_ms"], 900);
    assert_eq!(
        stored
            .iter()
            .find(|e| e["source_event"] == "custom")
            .unwrap()["title"],
        "checkpoint saved"
    );
    let run = hub.get("/api/v1/runs/dk-1");
    let r = &run["run"];
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(r["error_count"], 1, "{r}");
    assert!(
        (r["cost_usd"].as_f64().unwrap() - 0.0042).abs() < 1e-12,
        "{r}"
    );
    assert_eq!(r["input_tokens"], 1200.0, "{r}");
    assert_eq!(run["sessions"][0]["session_id"], "dk-1");
}
