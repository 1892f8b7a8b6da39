//! Workflow executions told truly (docs/CONTRACT.md §3.5), through a real hub: updates in the
//! producer's own shape (`POST /api/v1/workflows/{id}/updates`) end the run and every session
//! of a failed workflow `failed`, keep each attempt of a retried step, and give one progress
//! figure that the list and the detail (`GET /api/v1/workflows`, `/workflows/{id}`) share.

mod common;

use common::TestHub;
use proptest::prelude::*;
use serde_json::{Value, json};
use sightline_schema::Timestamp;
use sightline_sources::workflow::{update_to_event, updates_to_events};

const T: i64 = 1_795_255_200_000;

fn post(hub: &TestHub, id: &str, updates: Value) {
    let (status, answer) = hub.post_json(&format!("/api/v1/workflows/{id}/updates"), &updates);
    assert_eq!(status, 202, "{answer}");
}

fn session<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == id)
        .unwrap_or_else(|| panic!("no session {id} in {run:#}"))
}

/// A three-step workflow: `fetch` succeeds, `merge` fails, `push` was started and never
/// reported again; then the workflow fails.
fn failing(hub: &TestHub, id: &str) {
    post(
        hub,
        id,
        json!([
            {"type": "status", "timestamp": T, "data": {"status": "running", "message": "crm-sync"}},
            {"type": "status", "timestamp": T + 100, "data": {"step": "fetch", "status": "running"}},
            {"type": "progress", "timestamp": T + 200, "data": {"step": "fetch", "progress": 50}},
            {"type": "status", "timestamp": T + 300, "data": {"step": "fetch", "status": "completed"}},
            {"type": "status", "timestamp": T + 400, "data": {"step": "merge", "status": "running"}},
            {"type": "status", "timestamp": T + 450, "data": {"step": "push", "status": "pending"}},
        ]),
    );
    // The end arrives in its own request, as a producer reporting live sends it.
    post(
        hub,
        id,
        json!([
            {"type": "error", "timestamp": T + 900, "data": {"step": "merge", "error": "ConnectionResetError: warehouse closed the connection"}},
            {"type": "complete", "timestamp": T + 1000, "data": {"status": "failed", "message": "crm-sync failed at merge"}},
        ]),
    );
}

#[test]
fn a_failed_workflow_ends_its_run_and_every_session_failed() {
    let hub = TestHub::start();
    failing(&hub, "wf-sync");
    let run = hub.get("/api/v1/runs/wf-sync");
    assert_eq!(run["run"]["status"], "failed", "{run:#}");
    assert!(run["run"]["ended_at"].is_string(), "{run:#}");
    // The workflow's own session, and one per step under it.
    let wf = session(&run, "wf-sync");
    assert_eq!(wf["status"], "failed", "the workflow's session: {wf:#}");
    assert!(wf["ended_at"].is_string(), "{wf:#}");
    assert_eq!(session(&run, "wf-sync/fetch")["status"], "success");
    assert_eq!(session(&run, "wf-sync/merge")["status"], "failed");
    assert_eq!(
        session(&run, "wf-sync/merge")["parent_session_id"],
        "wf-sync"
    );
    // `push` never said it ended: the workflow's end ends it.
    assert_eq!(session(&run, "wf-sync/push")["status"], "failed");
    for s in run["sessions"].as_array().unwrap() {
        assert!(
            s["ended_at"].is_string(),
            "a session left open after its workflow ended: {s:#}"
        );
    }
    // Nothing the Live view counts as active or waiting is left of it.
    let live = hub.get("/api/v1/live");
    assert!(
        !live.to_string().contains("wf-sync/"),
        "an ended workflow's step is still live: {live:#}"
    );
}

#[test]
fn a_late_step_update_does_not_reopen_an_ended_workflow() {
    let hub = TestHub::start();
    failing(&hub, "wf-late");
    // A step update from before the end, delivered after it (a producer's queue flushed late).
    post(
        &hub,
        "wf-late",
        json!({"type": "progress", "timestamp": T + 800, "data": {"step": "audit", "progress": 10}}),
    );
    let run = hub.get("/api/v1/runs/wf-late");
    assert_eq!(run["run"]["status"], "failed");
    assert_eq!(
        session(&run, "wf-late/audit")["status"],
        "failed",
        "{run:#}"
    );
}

#[test]
fn a_successful_workflow_ends_its_open_steps_with_success() {
    let hub = TestHub::start();
    post(
        &hub,
        "wf-ok",
        json!([
            {"type": "status", "timestamp": T, "data": {"step": "build", "status": "running"}},
            {"type": "complete", "timestamp": T + 500},
        ]),
    );
    let run = hub.get("/api/v1/runs/wf-ok");
    assert_eq!(run["run"]["status"], "success");
    assert_eq!(session(&run, "wf-ok")["status"], "success");
    assert_eq!(session(&run, "wf-ok/build")["status"], "success");
    let summary = hub.get("/api/v1/workflows/wf-ok");
    assert_eq!(summary["progress"]["percent"], 100.0, "{summary:#}");
}

#[test]
fn a_retried_step_keeps_every_attempt() {
    let hub = TestHub::start();
    // Attempts told by status alone: failed, then running again, twice.
    post(
        &hub,
        "wf-retry",
        json!([
            {"type": "status", "timestamp": T, "data": {"status": "running"}},
            {"type": "status", "timestamp": T + 1_000, "data": {"step": "deploy", "status": "running"}},
            {"type": "error", "timestamp": T + 3_000, "data": {"step": "deploy", "error": "503 from the registry"}},
            {"type": "status", "timestamp": T + 4_000, "data": {"step": "deploy", "status": "retrying"}},
            {"type": "status", "timestamp": T + 5_000, "data": {"step": "deploy", "status": "running"}},
            {"type": "error", "timestamp": T + 5_500, "data": {"step": "deploy", "error": "timeout after 500 ms"}},
        ]),
    );
    // The third attempt says its number, as many runners do.
    post(
        &hub,
        "wf-retry",
        json!([
            {"type": "status", "timestamp": T + 7_000, "data": {"step": "deploy", "status": "running", "attempt": 3}},
            {"type": "status", "timestamp": T + 9_000, "data": {"step": "deploy", "status": "success", "attempt": 3, "duration_ms": 1900}},
        ]),
    );
    let w = hub.get("/api/v1/workflows/wf-retry");
    let step = &w["steps"][0];
    assert_eq!(step["name"], "deploy", "{w:#}");
    assert_eq!(step["status"], "success", "{w:#}");
    assert_eq!(step["attempt_count"], 3, "{w:#}");
    let attempts = step["attempts"].as_array().unwrap();
    let got: Vec<(u64, &str)> = attempts
        .iter()
        .map(|a| {
            (
                a["attempt"].as_u64().unwrap(),
                a["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(1, "failed"), (2, "failed"), (3, "success")],
        "{w:#}"
    );
    assert_eq!(attempts[0]["error"], "503 from the registry");
    assert_eq!(attempts[0]["duration_ms"], 2000.0, "{w:#}");
    assert_eq!(attempts[1]["error"], "timeout after 500 ms");
    assert_eq!(attempts[1]["duration_ms"], 500.0);
    assert_eq!(
        attempts[2]["duration_ms"], 1900.0,
        "the producer's own duration wins"
    );
    assert!(attempts[2]["error"].is_null());
    // The step's session is running again after a failed attempt, and ends with the last.
    let run = hub.get("/api/v1/runs/wf-retry");
    assert_eq!(session(&run, "wf-retry/deploy")["status"], "success");
}

#[test]
fn the_list_and_the_detail_give_one_progress_figure() {
    let hub = TestHub::start();
    failing(&hub, "wf-a");
    // A workflow that only reports its own progress, without steps.
    post(
        &hub,
        "wf-b",
        json!({"type": "progress", "timestamp": T, "data": {"progress": 40}}),
    );
    let detail = hub.get("/api/v1/workflows/wf-a");
    let p = &detail["progress"];
    assert_eq!(
        (p["steps_done"].as_u64(), p["steps_known"].as_u64()),
        (Some(1), Some(3)),
        "{detail:#}"
    );
    let pct = p["percent"].as_f64().unwrap();
    assert!((pct - 100.0 / 3.0).abs() < 1e-9, "{pct}");
    let list = hub.get("/api/v1/workflows");
    let ws = list["workflows"].as_array().unwrap();
    assert_eq!(ws.len(), 2, "{list:#}");
    let a = ws.iter().find(|w| w["run"]["run_id"] == "wf-a").unwrap();
    assert_eq!(
        a["progress"], detail["progress"],
        "the card and the detail agree"
    );
    assert_eq!(a["run"]["status"], "failed");
    let b = ws.iter().find(|w| w["run"]["run_id"] == "wf-b").unwrap();
    assert_eq!(b["progress"]["percent"], 40.0, "{b:#}");
    assert_eq!(b["progress"]["steps_known"], 0);
    // Paged: one at a time, every workflow once.
    let first = hub.get("/api/v1/workflows?limit=1");
    assert_eq!(first["workflows"].as_array().unwrap().len(), 1);
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second = hub.get(&format!("/api/v1/workflows?limit=1&cursor={cursor}"));
    assert_eq!(second["workflows"].as_array().unwrap().len(), 1);
    assert_ne!(
        first["workflows"][0]["run"]["run_id"],
        second["workflows"][0]["run"]["run_id"]
    );
    // An unknown workflow is a 404 that says what to do.
    let (status, answer) = common::get_status(&format!("{}/api/v1/workflows/nope", hub.url));
    assert_eq!(status, 404, "{answer}");
}

proptest! {
    /// Any JSON a producer sends maps or is refused with a message, never a panic; a mapped
    /// step update always lands in the step's own session under the workflow's.
    #[test]
    fn any_update_maps_or_is_refused(
        kind in prop::sample::select(vec!["status", "log", "progress", "error", "complete", "other"]),
        step in prop::option::of("[a-z0-9 /:._-]{0,300}"),
        status in prop::option::of("[a-z_]{0,12}"),
        progress in prop::option::of(-50.0f64..150.0),
        attempt in prop::option::of(-3i64..1_000_000),
        junk in ".{0,40}",
    ) {
        let mut data = serde_json::Map::new();
        if let Some(s) = &step { data.insert("step".into(), json!(s)); }
        if let Some(s) = &status { data.insert("status".into(), json!(s)); }
        if let Some(p) = progress { data.insert("progress".into(), json!(p)); }
        if let Some(a) = attempt { data.insert("attempt".into(), json!(a)); }
        data.insert("message".into(), json!(junk));
        let update = json!({"type": kind, "data": data});
        match update_to_event("wf", &update, Timestamp::now()) {
            Ok(e) => {
                prop_assert_eq!(e.run_id.as_deref(), Some("wf"));
                if kind != "complete" && step.as_deref().is_some_and(|s| !s.is_empty()) {
                    let sid = e.session_id.clone().unwrap();
                    prop_assert!(sid.starts_with("wf/"), "{}", sid);
                    prop_assert!(sid.len() <= 256);
                    prop_assert_eq!(e.parent_session_id.as_deref(), Some("wf"));
                } else {
                    prop_assert_eq!(e.session_id.as_deref(), Some("wf"));
                }
                if let Some(a) = e.metric("attempt") {
                    prop_assert!(a >= 1.0);
                }
            }
            Err(message) => prop_assert!(!message.is_empty()),
        }
        // As a batch: all or nothing, and never a panic.
        let _ = updates_to_events("wf", &json!([update, {"type": "log"}]), Timestamp::now());
    }
}
