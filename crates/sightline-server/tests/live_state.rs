//! `GET /api/v1/live`, `GET /api/v1/sessions/{id}/conversation` and the runs list's project and
//! text search, against a real hub fed Claude Code hook payloads as Claude Code posts them.
//!
//! The point of `/live`: a session that waits for permission stays listed, with why it waits,
//! however many other events arrive after it, and a subagent's quiet parent is listed so the
//! subagent nests under it.

use serde_json::{Value, json};
use sightline_testkit::*;

fn hook(hub: &TestHub, payload: Value) {
    let (status, body) = hub.post_json("/api/v1/hooks/claude", &payload);
    assert!(status < 300, "hook refused: {status} {body}");
}

fn ts(offset_s: i64) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + offset_s * 1000;
    sightline_schema::Timestamp(ms).to_string()
}

#[test]
fn a_waiting_session_stays_listed_with_its_project_prompt_and_reason() {
    let hub = TestHub::start();
    // A git repository on this machine: the project is its directory's name, seen from a
    // subdirectory too.
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path().join("flaky-hunt");
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::create_dir_all(root.join("crates/core")).unwrap();
    let cwd = root.join("crates/core").display().to_string();

    let s = "sess-wait-1";
    for p in [
        json!({"hook_event_name": "SessionStart", "session_id": s, "cwd": cwd, "source": "startup"}),
        json!({"hook_event_name": "UserPromptSubmit", "session_id": s, "cwd": cwd, "prompt": "Find the flaky test in core"}),
        json!({"hook_event_name": "PreToolUse", "session_id": s, "cwd": cwd, "tool_name": "Bash", "tool_use_id": "tu-1", "tool_input": {"command": "cargo test"}}),
        json!({"hook_event_name": "PostToolUse", "session_id": s, "cwd": cwd, "tool_name": "Bash", "tool_use_id": "tu-1", "tool_input": {"command": "cargo test"}}),
        json!({"hook_event_name": "SubagentStart", "session_id": s, "cwd": cwd, "agent_id": "agent-explore-1", "agent_type": "Explore"}),
        json!({"hook_event_name": "PermissionRequest", "session_id": s, "cwd": cwd, "tool_name": "Bash", "tool_use_id": "tu-2", "tool_input": {"command": "rm -rf target"}}),
    ] {
        hook(&hub, p);
    }
    // A busy source after it: 3,000 traced calls of another run.
    let busy: Vec<Value> = (0..3000)
        .map(|i| {
            json!({"source": "python", "source_event": "call", "entity_type": "call", "run_id": "py-busy",
                   "title": format!("fib({i})"), "status": "success", "duration_ms": 0.1})
        })
        .collect();
    let (status, _) = hub.post_json("/api/v1/events", &json!(busy));
    assert_eq!(status, 202);

    let live = hub.get("/api/v1/live");
    let sessions = live["sessions"].as_array().unwrap();
    let main = sessions
        .iter()
        .find(|x| x["key"] == s)
        .unwrap_or_else(|| panic!("the waiting session is listed: {live}"));
    assert_eq!(main["status"], "blocked");
    assert_eq!(main["wait"]["kind"], "permission", "{main}");
    assert!(
        main["wait"]["title"]
            .as_str()
            .unwrap()
            .contains("rm -rf target")
    );
    assert_eq!(main["project"], "flaky-hunt", "{main}");
    assert_eq!(main["cwd"], cwd);
    assert_eq!(main["prompt"], "Prompt: Find the flaky test in core");
    assert_eq!(live["waiting"], 1, "{live}");
    let sub = sessions
        .iter()
        .find(|x| x["key"] == "agent-explore-1")
        .expect("the subagent is listed");
    assert_eq!(sub["parent_session_id"], s);
    let busy_lane = sessions
        .iter()
        .find(|x| x["key"] == "run:py-busy")
        .expect("a run without sessions is a lane");
    assert_eq!(busy_lane["event_count"], 3000);
    assert!(busy_lane["wait"].is_null());

    // Work ends the wait: the tool runs after the permission was given.
    hook(
        &hub,
        json!({"hook_event_name": "PreToolUse", "session_id": s, "cwd": cwd, "tool_name": "Bash", "tool_use_id": "tu-2", "tool_input": {"command": "rm -rf target"}}),
    );
    let live = hub.get("/api/v1/live");
    let main = live["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["key"] == s)
        .unwrap()
        .clone();
    assert_eq!(main["status"], "running");
    assert!(main["wait"].is_null(), "{main}");
    assert_eq!(main["activity"], "Bash: rm -rf target", "{main}");
    assert_eq!(live["waiting"], 0);

    // The conversation: prompt, tool calls and the permission prompt, in order.
    let conv = hub.get(&format!("/api/v1/sessions/{s}/conversation"));
    let kinds: Vec<&str> = strs(&conv["events"], "source_event");
    assert_eq!(
        kinds,
        [
            "SessionStart",
            "UserPromptSubmit",
            "PreToolUse",
            "PostToolUse",
            "PermissionRequest",
            "PreToolUse"
        ]
    );
    let (code, _) = get_text(&format!("{}/api/v1/sessions/no-such/conversation", hub.url));
    assert_eq!(code, 404);

    // Runs: the project is shown, and search finds the run by its prompt and its directory.
    let runs = hub.get("/api/v1/runs?q=flaky");
    let ids: Vec<&str> = strs(&runs["runs"], "run_id");
    assert_eq!(ids, [s]);
    assert_eq!(runs["runs"][0]["project"], "flaky-hunt");
    let by_dir = hub.get("/api/v1/runs?q=crates%2Fcore");
    assert_eq!(by_dir["runs"].as_array().unwrap().len(), 1, "{by_dir}");
    let none = hub.get("/api/v1/runs?q=flaky&project=elsewhere");
    assert!(none["runs"].as_array().unwrap().is_empty());
}

#[test]
fn an_old_wait_outlives_the_window_and_a_quiet_parent_is_listed_for_nesting() {
    let hub = TestHub::start();
    let events = json!([
        // Blocked two hours ago: past the 10-minute window, still waiting.
        {"source": "claude", "source_event": "SessionStart", "entity_type": "session", "status": "running",
         "run_id": "r-old", "session_id": "r-old", "agent": "main", "title": "Claude Code session", "ts": ts(-7300)},
        {"source": "claude", "source_event": "PermissionRequest", "entity_type": "permission", "status": "blocked",
         "run_id": "r-old", "session_id": "r-old", "agent": "main", "title": "Permission needed: Bash", "ts": ts(-7200)},
        // A parent quiet for an hour, its subagent busy now.
        {"source": "claude", "source_event": "SessionStart", "entity_type": "session", "status": "running",
         "run_id": "r-par", "session_id": "r-par", "agent": "main", "title": "parent", "ts": ts(-3600)},
        {"source": "claude", "source_event": "PreToolUse", "entity_type": "tool", "status": "running",
         "run_id": "r-par", "session_id": "sub-1", "parent_session_id": "r-par", "agent": "Explore", "title": "Grep", "ts": ts(-1)},
        // Ended an hour ago: gone from the default window, back with recent_s.
        {"source": "claude", "source_event": "SessionEnd", "entity_type": "session", "status": "success",
         "run_id": "r-done", "session_id": "r-done", "agent": "main", "title": "Session ended", "ts": ts(-3600)},
        // A failed turn is a wait of its own kind.
        {"source": "claude", "source_event": "StopFailure", "entity_type": "session", "status": "idle", "severity": "error",
         "run_id": "r-fail", "session_id": "r-fail", "agent": "main", "title": "Turn failed: rate_limit", "ts": ts(-5)},
    ]);
    let (status, body) = hub.post_json("/api/v1/events", &events);
    assert_eq!(status, 202, "{body}");
    let live = hub.get("/api/v1/live");
    let by_key = |live: &Value, k: &str| {
        live["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["key"] == k)
            .cloned()
    };
    let old = by_key(&live, "r-old").expect("an old wait is listed");
    assert_eq!(old["wait"]["kind"], "permission");
    let parent = by_key(&live, "r-par").expect("the quiet parent is listed");
    assert_eq!(parent["active"], false);
    assert_eq!(by_key(&live, "sub-1").unwrap()["active"], true);
    assert!(by_key(&live, "r-done").is_none());
    assert_eq!(
        by_key(&live, "r-fail").unwrap()["wait"]["kind"],
        "failed_turn"
    );
    assert_eq!(live["waiting"], 2, "{live}");
    let wide = hub.get("/api/v1/live?recent_s=86400");
    assert!(by_key(&wide, "r-done").is_some());
    let one = hub.get("/api/v1/live?run=r-par");
    let keys: Vec<&str> = strs(&one["sessions"], "key");
    assert_eq!(keys.len(), 2, "{keys:?}");
    let (code, text) = get_text(&format!("{}/api/v1/live?recent_s=-5", hub.url));
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("recent_s"), "{text}");
}

#[test]
fn the_project_filter_pages_through_every_matching_run_however_many_others_are_newer() {
    let hub = TestHub::start();
    let dirs = tempfile::tempdir().unwrap();
    let cwd_of = |project: &str| {
        let root = dirs.path().join(project);
        std::fs::create_dir_all(root.join(".git")).unwrap();
        root.display().to_string()
    };
    let (alpha, beta) = (cwd_of("alpha"), cwd_of("beta"));
    // 23 older runs in alpha, then 40 newer in beta, then 2 newest in alpha: the first pages
    // of the unfiltered list are all beta.
    let mut events = Vec::new();
    let mut run = |id: String, cwd: &str, at: i64| {
        events.push(
            json!({"source": "claude", "source_event": "SessionStart", "entity_type": "session",
            "status": "running", "run_id": id, "session_id": id, "agent": "main",
            "title": "Session started", "ts": ts(at), "payload": {"cwd": cwd}}),
        );
    };
    for i in 0..23 {
        run(format!("alpha-old-{i:02}"), &alpha, -1000 + i);
    }
    for i in 0..40 {
        run(format!("beta-{i:02}"), &beta, -500 + i);
    }
    for i in 0..2 {
        run(format!("alpha-new-{i}"), &alpha, -10 + i);
    }
    let (status, body) = hub.post_json("/api/v1/events", &json!(events));
    assert_eq!(status, 202, "{body}");

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/api/v1/runs?project=alpha&limit=10".to_string(),
            Some(c) => format!("/api/v1/runs?project=alpha&limit=10&cursor={c}"),
        };
        let page = hub.get(&path);
        let runs = page["runs"].as_array().unwrap();
        pages += 1;
        for r in runs {
            assert_eq!(r["project"], "alpha", "{r}");
            seen.push(r["run_id"].as_str().unwrap().to_string());
        }
        cursor = page["next_cursor"].as_str().map(str::to_string);
        match &cursor {
            // Every page but the last is full: the filter is not applied to a fetched page.
            Some(_) => assert_eq!(runs.len(), 10, "page {pages} is short: {page}"),
            None => break,
        }
        assert!(pages < 10, "the cursor never ends");
    }
    assert_eq!(pages, 3, "25 runs at 10 a page");
    let mut expected: Vec<String> = (0..2).rev().map(|i| format!("alpha-new-{i}")).collect();
    expected.extend((0..23).rev().map(|i| format!("alpha-old-{i:02}")));
    assert_eq!(seen, expected, "newest first, each once");

    // Exactly a page of matches: no cursor to an empty page.
    let page = hub.get("/api/v1/runs?project=alpha&limit=25");
    assert_eq!(page["runs"].as_array().unwrap().len(), 25);
    assert!(page["next_cursor"].is_null(), "{page}");
    // Unfiltered paging is unchanged.
    let page = hub.get("/api/v1/runs?limit=40");
    assert_eq!(page["runs"].as_array().unwrap().len(), 40);
    assert!(page["next_cursor"].is_string());
    let none = hub.get("/api/v1/runs?project=gamma&limit=5");
    assert!(none["runs"].as_array().unwrap().is_empty());
    assert!(none["next_cursor"].is_null(), "{none}");
}

/// `GET /api/v1/agents`: every agent seen, not only those of the newest page of runs (the
/// Timeline's Agent filter used to offer only the newest 200 runs' agents).
#[test]
fn agents_lists_every_agent_seen_not_only_the_newest_runs() {
    let hub = TestHub::start();
    // The oldest run is the only one with its agent; 250 newer runs of another follow it.
    let mut events = vec![json!({"source": "codex", "source_event": "session_start",
        "entity_type": "session", "run_id": "old-run", "session_id": "old-run",
        "agent": "rare-agent", "title": "old", "ts": ts(-3600)})];
    for i in 0..250 {
        events.push(
            json!({"source": "custom", "source_event": "step", "entity_type": "task",
            "run_id": format!("new-{i}"), "agent": "busy-agent", "title": "step", "ts": ts(-i)}),
        );
    }
    let (status, _) = hub.post_json("/api/v1/events", &json!(events));
    assert_eq!(status, 202);
    let newest = hub.get("/api/v1/runs?limit=200");
    assert!(
        !newest["runs"].to_string().contains("rare-agent"),
        "the newest 200 runs should not hold the old agent: the test would prove nothing"
    );
    let seen = hub.get("/api/v1/agents");
    assert_eq!(
        seen["agents"],
        json!(["busy-agent", "rare-agent"]),
        "{seen}"
    );
    assert_eq!(seen["sources"], json!(["codex", "custom"]), "{seen}");
    assert_eq!(seen["truncated"], false, "{seen}");
}
