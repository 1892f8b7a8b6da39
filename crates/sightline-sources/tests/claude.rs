//! Claude Code: every hook event through `POST /api/v1/hooks/claude`, a multi-agent scenario
//! checked through the REST API, and transcript backfill against hand-counted totals.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{TestHub, agent, strs};
use serde_json::{Value, json};

/// Posts a hook payload the way `sightline hook` does (fixed time, so durations are exact).
fn hook(hub: &TestHub, payload: Value, ts_ms: i64) -> u16 {
    let res = agent()
        .post(&format!("{}/api/v1/hooks/claude", hub.url))
        .header("content-type", "application/json")
        .header("x-sightline-ts", &ts_ms.to_string())
        .send(payload.to_string().as_bytes())
        .unwrap();
    res.status().as_u16()
}

fn base(event: &str) -> Value {
    json!({
        "session_id": "sess-all",
        "transcript_path": "/home/u/.claude/projects/-tmp-proj/sess-all.jsonl",
        "cwd": "/tmp/proj",
        "permission_mode": "default",
        "hook_event_name": event,
    })
}

fn with(mut v: Value, extra: Value) -> Value {
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

/// Payloads as Claude Code's hook reference documents them, one per event.
fn every_event() -> Vec<Value> {
    vec![
        with(
            base("SessionStart"),
            json!({"source": "startup", "model": "claude-sonnet-4-5-20250929"}),
        ),
        with(
            base("UserPromptSubmit"),
            json!({"prompt": "Refactor the parser", "prompt_id": "p-1"}),
        ),
        with(
            base("PreToolUse"),
            json!({"tool_name": "Bash", "tool_input": {"command": "npm test", "description": "run tests"}, "tool_use_id": "toolu_01"}),
        ),
        with(
            base("PostToolUse"),
            json!({"tool_name": "Bash", "tool_input": {"command": "npm test"}, "tool_response": {"stdout": "ok", "stderr": "", "interrupted": false}, "tool_use_id": "toolu_01", "duration_ms": 1234}),
        ),
        with(
            base("PreToolUse"),
            json!({"tool_name": "Write", "tool_input": {"file_path": "/tmp/proj/a.rs", "content": "x"}, "tool_use_id": "toolu_02"}),
        ),
        with(
            base("PostToolUseFailure"),
            json!({"tool_name": "Write", "tool_input": {"file_path": "/tmp/proj/a.rs"}, "tool_use_id": "toolu_02", "error": "EACCES: permission denied", "is_interrupt": false, "duration_ms": 12}),
        ),
        with(
            base("PermissionRequest"),
            json!({"tool_name": "Bash", "tool_input": {"command": "rm -rf build"}, "permission_suggestions": [{"type": "addRules"}]}),
        ),
        with(
            base("Notification"),
            json!({"message": "Claude needs your permission to use Bash", "title": "Permission needed", "notification_type": "permission_prompt"}),
        ),
        with(
            base("SubagentStart"),
            json!({"agent_id": "agent-x1", "agent_type": "Explore"}),
        ),
        with(
            base("SubagentStop"),
            json!({"agent_id": "agent-x1", "agent_type": "Explore", "agent_transcript_path": "/x/subagents/agent-agent-x1.jsonl", "last_assistant_message": "Found 3 files", "stop_hook_active": false}),
        ),
        with(
            base("Stop"),
            json!({"stop_hook_active": false, "last_assistant_message": "Done."}),
        ),
        with(
            base("StopFailure"),
            json!({"error": "rate_limit", "error_details": "429 Too Many Requests"}),
        ),
        with(
            base("PreCompact"),
            json!({"trigger": "auto", "custom_instructions": ""}),
        ),
        with(
            base("PostCompact"),
            json!({"trigger": "auto", "compact_summary": "Summary of work"}),
        ),
        with(base("SessionEnd"), json!({"reason": "prompt_input_exit"})),
        with(
            base("TaskCompletedInTheFuture"),
            json!({"task_id": "t1", "whatever": {"nested": true}}),
        ),
    ]
}

#[test]
fn every_hook_event_is_stored_with_its_meaning() {
    let hub = TestHub::start();
    let mut ts = 1_795_000_000_000i64;
    for p in every_event() {
        ts += 1000;
        assert_eq!(hook(&hub, p.clone(), ts), 202, "{p}");
    }
    // A payload that is not a hook is refused, not stored.
    let (status, _) = hub.post_json("/api/v1/hooks/claude", &json!({"hello": 1}));
    assert_eq!(status, 400);

    let events = hub.events();
    assert_eq!(events.len(), every_event().len());
    let by = |name: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["source_event"] == name)
            .cloned()
            .collect()
    };
    let one = |name: &str| -> Value {
        by(name)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let check = |name: &str, entity: &str, status: Option<&str>, severity: &str| {
        let e = one(name);
        assert_eq!(e["source"], "claude", "{name}");
        assert_eq!(e["entity_type"], entity, "{name}");
        assert_eq!(e["status"].as_str(), status, "{name}");
        assert_eq!(e["severity"], severity, "{name}");
        assert_eq!(e["run_id"], "sess-all", "{name}");
        assert!(
            e["payload"]["hook_event_name"].is_string(),
            "payload kept for {name}"
        );
    };
    check("SessionStart", "session", Some("running"), "info");
    check("UserPromptSubmit", "prompt", Some("running"), "info");
    check("PostToolUse", "tool", Some("success"), "info");
    check("PostToolUseFailure", "tool", Some("failed"), "error");
    check("PermissionRequest", "permission", Some("blocked"), "warn");
    check("Notification", "permission", Some("blocked"), "warn");
    check("SubagentStart", "session", Some("running"), "info");
    check("SubagentStop", "session", Some("success"), "info");
    check("Stop", "session", Some("idle"), "info");
    check("StopFailure", "session", Some("idle"), "error");
    check("PreCompact", "task", Some("running"), "info");
    check("PostCompact", "task", Some("success"), "info");
    check("SessionEnd", "session", Some("success"), "info");
    check("TaskCompletedInTheFuture", "log", None, "info");
    let pre: Vec<Value> = by("PreToolUse");
    assert_eq!(pre.len(), 2);
    assert_eq!(pre[0]["title"], "Bash: npm test");
    assert_eq!(pre[0]["correlation_id"], "toolu_01");
    let post = one("PostToolUse");
    assert_eq!(post["correlation_id"], "toolu_01");
    assert_eq!(post["duration_ms"], 1234);
    assert_eq!(
        one("PostToolUseFailure")["summary"],
        "EACCES: permission denied"
    );
    let sub = one("SubagentStart");
    assert_eq!(sub["session_id"], "agent-x1");
    assert_eq!(sub["parent_session_id"], "sess-all");
    assert_eq!(sub["agent"], "Explore");

    // Posting the same tool event again (a retry) is not stored twice.
    hook(&hub, every_event()[2].clone(), ts + 5000);
    assert_eq!(hub.events().len(), every_event().len());

    let run = hub.get("/api/v1/runs/sess-all");
    assert_eq!(run["run"]["status"], "success", "{run}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude")
}

// Hand-counted from tests/fixtures/claude (each usage block appears on 2–3 lines; counted once):
//   msg_1/req_1 sonnet-4.5: in 100, out 50, cache read 2000, cache write 1000 (5m)
//       = 100·3 + 50·15 + 2000·0.30 + 1000·3.75 = 5400 µ$ → $0.0054
//   msg_2/req_2 sonnet-4.5: in 10, out 200, cache read 3000, cache write 500 (1h)
//       = 10·3 + 200·15 + 3000·0.30 + 500·6 = 6930 µ$ → $0.00693
//   msg_3/req_3 haiku-4.5 (subagent ab12): in 40, out 20 = 40·1 + 20·5 = 140 µ$ → $0.00014
const TOTAL_IN: f64 = 150.0;
const TOTAL_OUT: f64 = 270.0;
const TOTAL_CACHE_READ: f64 = 5000.0;
const TOTAL_CACHE_WRITE: f64 = 1500.0;
const TOTAL_COST: f64 = 0.01247;

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap_or(f64::NAN) - b).abs() < 1e-9
}

#[test]
fn transcript_backfill_counts_usage_once_and_prices_it() {
    let mut hub = TestHub::start();
    let config = hub.config();
    copy_dir(&fixture(), &config.claude_dir);
    hub.start_adapters(
        sightline_sources::REGISTRY,
        &config,
        &["claude-transcripts"],
    );
    hub.wait_for("transcript backfill", Duration::from_secs(20), |events| {
        events
            .iter()
            .filter(|e| e["source_event"] == "transcript.usage")
            .count()
            == 3
            && events
                .iter()
                .any(|e| e["source_event"] == "transcript.tool_result" && e["status"] == "failed")
    });
    let run = hub.get("/api/v1/runs/sess-main");
    let r = &run["run"];
    assert!(close(&r["input_tokens"], TOTAL_IN), "{r}");
    assert!(close(&r["output_tokens"], TOTAL_OUT), "{r}");
    assert!(close(&r["cache_read_tokens"], TOTAL_CACHE_READ), "{r}");
    assert!(close(&r["cache_write_tokens"], TOTAL_CACHE_WRITE), "{r}");
    assert!(
        (r["cost_usd"].as_f64().unwrap() - TOTAL_COST).abs() < 1e-9,
        "{r}"
    );

    let tree = hub.get("/api/v1/sessions/sess-main/tree")["tree"].clone();
    assert!(
        (tree["total_cost_usd"].as_f64().unwrap() - TOTAL_COST).abs() < 1e-9,
        "{tree}"
    );
    assert_eq!(tree["children"][0]["session_id"], "ab12", "{tree}");
    assert_eq!(
        tree["children"][0]["agent"], "Explore",
        "agent type from the meta.json sidecar"
    );
    assert!((tree["children"][0]["cost_usd"].as_f64().unwrap() - 0.00014).abs() < 1e-9);

    // Claude Code's OpenTelemetry `api_request` for the same request is the same usage: it
    // shares the event id with the transcript's, so the cost is not counted twice.
    let otel = json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "claude-code"}}]},
        "scopeLogs": [{"logRecords": [{"timeUnixNano": "1795255201000000000", "body": {"stringValue": "claude_code.api_request"},
            "attributes": [{"key": "event.name", "value": {"stringValue": "api_request"}}, {"key": "session.id", "value": {"stringValue": "sess-main"}},
                {"key": "request_id", "value": {"stringValue": "req_1"}}, {"key": "cost_usd", "value": {"doubleValue": 99.0}},
                {"key": "model", "value": {"stringValue": "claude-sonnet-4-5-20250929"}}]}]}]}]});
    let (status, _) = common::post(
        &format!("{}/v1/logs", hub.url),
        "application/json",
        otel.to_string(),
    );
    assert_eq!(status, 200);
    let r = hub.get("/api/v1/runs/sess-main")["run"].clone();
    assert!(
        (r["cost_usd"].as_f64().unwrap() - TOTAL_COST).abs() < 1e-9,
        "{r}"
    );

    // The tool result carries its duration (2 s after its tool_use).
    let events = hub.events();
    let failed = events
        .iter()
        .find(|e| e["correlation_id"] == "toolu_2" && e["status"] == "failed")
        .unwrap();
    assert_eq!(failed["duration_ms"], 2000);

    // Restart: the checkpoint resumes at the end, nothing is read twice; appended lines are tailed.
    hub.stop_adapters();
    let before = hub.events().len();
    let checkpoint = std::fs::read_to_string(&config.checkpoint_path).unwrap();
    assert!(checkpoint.contains("sess-main.jsonl"), "{checkpoint}");
    let main = config.claude_dir.join("projects/-tmp-proj/sess-main.jsonl");
    let extra = json!({"type": "assistant", "uuid": "00000000-0000-0000-0000-000000000077", "sessionId": "sess-main",
        "timestamp": "2026-11-21T10:00:09.000Z", "requestId": "req_9",
        "message": {"id": "msg_9", "model": "claude-sonnet-4-5-20250929", "content": [{"type": "text", "text": "All green."}],
            "usage": {"input_tokens": 1000, "output_tokens": 0}}});
    std::fs::write(
        &main,
        format!("{}{}\n", std::fs::read_to_string(&main).unwrap(), extra),
    )
    .unwrap();
    hub.start_adapters(
        sightline_sources::REGISTRY,
        &config,
        &["claude-transcripts"],
    );
    let events = hub.wait_for("tail of the appended line", Duration::from_secs(20), |e| {
        e.len() >= before + 2
    });
    assert_eq!(events.len(), before + 2, "only the new line's events");
    let r = hub.get("/api/v1/runs/sess-main")["run"].clone();
    assert!(
        (r["cost_usd"].as_f64().unwrap() - (TOTAL_COST + 0.003)).abs() < 1e-9,
        "{r}"
    );
}

#[test]
fn multi_agent_scenario_through_the_rest_api() {
    let mut hub = TestHub::start();
    let config = hub.config();
    copy_dir(&fixture(), &config.claude_dir);
    // The fixture's transcripts start at 2026-11-21T10:00:00Z; the hooks use the same clock.
    let t0 = 1_795_255_200_000i64;
    let s = |event: &str, extra: Value| {
        with(with(base(event), json!({"session_id": "sess-main"})), extra)
    };
    let sub = |event: &str, agent: &str, kind: &str, extra: Value| {
        with(
            s(event, json!({"agent_id": agent, "agent_type": kind})),
            extra,
        )
    };
    let steps: Vec<(i64, Value)> = vec![
        (0, s("SessionStart", json!({"source": "startup"}))),
        (
            100,
            s("UserPromptSubmit", json!({"prompt": "Fix the flaky test"})),
        ),
        (
            200,
            s(
                "PreToolUse",
                json!({"tool_name": "Agent", "tool_input": {"description": "explore", "subagent_type": "Explore"}, "tool_use_id": "toolu_a"}),
            ),
        ),
        (
            300,
            s(
                "SubagentStart",
                json!({"agent_id": "ab12", "agent_type": "Explore"}),
            ),
        ),
        (
            350,
            s(
                "SubagentStart",
                json!({"agent_id": "cd34", "agent_type": "Plan"}),
            ),
        ),
        (
            400,
            sub(
                "PreToolUse",
                "ab12",
                "Explore",
                json!({"tool_name": "Grep", "tool_input": {"pattern": "def test_"}, "tool_use_id": "toolu_r1"}),
            ),
        ),
        (
            650,
            sub(
                "PostToolUse",
                "ab12",
                "Explore",
                json!({"tool_name": "Grep", "tool_input": {"pattern": "def test_"}, "tool_response": {"numFiles": 3}, "tool_use_id": "toolu_r1"}),
            ),
        ),
        (
            700,
            sub(
                "PreToolUse",
                "cd34",
                "Plan",
                json!({"tool_name": "Bash", "tool_input": {"command": "pytest -q"}, "tool_use_id": "toolu_b1"}),
            ),
        ),
        (
            750,
            sub(
                "PermissionRequest",
                "cd34",
                "Plan",
                json!({"tool_name": "Bash", "tool_input": {"command": "pytest -q"}}),
            ),
        ),
    ];
    for (dt, p) in &steps {
        assert_eq!(hook(&hub, p.clone(), t0 + dt), 202);
    }
    // The subagent waiting for permission is blocked; the others are running.
    let run = hub.get("/api/v1/runs/sess-main");
    let status_of = |run: &Value, id: &str| -> String {
        run["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["session_id"] == id)
            .map(|s| s["status"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(status_of(&run, "cd34"), "blocked", "{run}");
    assert_eq!(status_of(&run, "ab12"), "running", "{run}");
    assert_eq!(status_of(&run, "sess-main"), "running", "{run}");

    let rest: Vec<(i64, Value)> = vec![
        (
            2750,
            sub(
                "PostToolUseFailure",
                "cd34",
                "Plan",
                json!({"tool_name": "Bash", "tool_input": {"command": "pytest -q"}, "tool_use_id": "toolu_b1", "error": "1 failed", "is_interrupt": false}),
            ),
        ),
        (
            2800,
            s(
                "SubagentStop",
                json!({"agent_id": "ab12", "agent_type": "Explore", "last_assistant_message": "found"}),
            ),
        ),
        (
            2900,
            s(
                "SubagentStop",
                json!({"agent_id": "cd34", "agent_type": "Plan", "last_assistant_message": "tests fail"}),
            ),
        ),
        (
            3000,
            s(
                "PostToolUse",
                json!({"tool_name": "Agent", "tool_input": {"description": "explore"}, "tool_use_id": "toolu_a", "tool_response": {"status": "completed", "totalTokens": 60, "totalToolUseCount": 1}}),
            ),
        ),
        (3100, s("Stop", json!({"stop_hook_active": false}))),
        (
            6000,
            s("SessionEnd", json!({"reason": "prompt_input_exit"})),
        ),
    ];
    for (dt, p) in &rest {
        assert_eq!(hook(&hub, p.clone(), t0 + dt), 202);
    }
    // Costs come from the transcripts (main and subagent ab12), tailed by the transcript adapter.
    hub.start_adapters(
        sightline_sources::REGISTRY,
        &config,
        &["claude-transcripts"],
    );
    hub.wait_for("transcripts", Duration::from_secs(20), |e| {
        e.iter()
            .filter(|e| e["source_event"] == "transcript.usage")
            .count()
            == 3
    });

    let run = hub.get("/api/v1/runs/sess-main");
    let r = &run["run"];
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(r["session_count"], 3, "{r}");
    assert!(r["error_count"].as_i64().unwrap() >= 1, "{r}");
    assert!(
        (r["cost_usd"].as_f64().unwrap() - TOTAL_COST).abs() < 1e-9,
        "{r}"
    );
    assert_eq!(status_of(&run, "cd34"), "success", "{run}");
    assert_eq!(status_of(&run, "ab12"), "success", "{run}");

    let tree = hub.get("/api/v1/sessions/sess-main/tree")["tree"].clone();
    let kids: Vec<&str> = strs(&tree["children"], "session_id");
    assert!(kids.contains(&"ab12") && kids.contains(&"cd34"), "{tree}");
    assert!(
        (tree["total_cost_usd"].as_f64().unwrap() - TOTAL_COST).abs() < 1e-9,
        "{tree}"
    );
    let cd = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["session_id"] == "cd34")
        .unwrap();
    assert_eq!(cd["error_count"], 1, "{cd}");
    assert_eq!(cd["agent"], "Plan", "{cd}");

    // Durations: the Grep took 250 ms, the failing Bash 2050 ms (from its PreToolUse), the
    // Agent tool 2800 ms; hook and transcript views of toolu_r1 share one correlation id.
    let timeline = hub.get("/api/v1/runs/sess-main/timeline?limit=500")["events"]
        .as_array()
        .unwrap()
        .clone();
    let dur = |name: &str, id: &str| -> f64 {
        timeline
            .iter()
            .find(|e| e["source_event"] == name && e["correlation_id"] == id)
            .unwrap()["duration_ms"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(dur("PostToolUse", "toolu_r1"), 250.0);
    assert_eq!(dur("PostToolUseFailure", "toolu_b1"), 2050.0);
    assert_eq!(dur("PostToolUse", "toolu_a"), 2800.0);
    let r1: Vec<&Value> = timeline
        .iter()
        .filter(|e| e["correlation_id"] == "toolu_r1")
        .collect();
    assert!(
        r1.iter()
            .any(|e| e["source_event"] == "transcript.tool_use")
            && r1.len() == 3,
        "{r1:?}"
    );
    assert_eq!(r["duration_ms"], 6000, "{r}");
}
