//! An agent-teams teammate keeps its lane across a hub restart. Claude Code opens a teammate
//! with a `SubagentStart` hook (`agent_id` `a<name>-<hash>`, `agent_type` its name) and later
//! names it only by `teammate_name` (`TeammateIdle`, `TaskCreated`, `TaskCompleted`); the Claude
//! source keeps which session is which teammate in memory, so `sightline serve` refills it
//! from the store's open sessions at start. The real binary is stopped and started again over
//! the same database between the `SubagentStart` and the `TeammateIdle`, so the second process
//! knows the teammate only from the store.

mod common;

use common::{Served, serve_command, sightline_at};
use serde_json::{Value, json};

const LEAD: &str = "lead-restart-7c1";
const TEAMMATE: &str = "aresearcher-86d393b70a61774a";

fn serve(dir: &std::path::Path) -> Served {
    let mut cmd = serve_command(&dir.join("db.sqlite"));
    // Only the endpoints (the hooks among them): no background source reads this machine.
    cmd.args(["--source", "http"])
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env_remove("SIGHTLINE_SOURCES");
    Served::spawn(cmd)
}

fn hook(hub: &Served, payload: Value) {
    let (status, body) = sightline_testkit::post(
        &format!("{}/api/v1/hooks/claude", hub.url),
        "application/json",
        payload.to_string(),
    );
    assert_eq!(status, 202, "{payload} → {status} {body}");
}

/// The stored events of `hook_event_name`, oldest first.
fn stored(hub: &Served, name: &str) -> Vec<Value> {
    let page = sightline_testkit::get(&format!(
        "{}/api/v1/search?runs={LEAD}&source_events={name}&order=asc",
        hub.url
    ));
    page["events"].as_array().cloned().unwrap_or_default()
}

fn stop(mut hub: Served) {
    let out = sightline_at(&hub.url, &["stop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(hub.child.wait().unwrap().success(), "exit 0 after a stop");
}

#[test]
fn a_teammate_started_before_a_restart_keeps_its_lane_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = json!({"session_id": LEAD, "cwd": dir.path(), "transcript_path": "/dev/null"});
    let with = |extra: Value| {
        let mut p = base.clone();
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p
    };

    let hub = serve(dir.path());
    hook(
        &hub,
        with(json!({"hook_event_name": "SessionStart", "source": "startup"})),
    );
    // The payload of Claude Code 2.1.197 for an in-process teammate `researcher`.
    hook(
        &hub,
        with(
            json!({"hook_event_name": "SubagentStart", "agent_id": TEAMMATE,
            "agent_type": "researcher"}),
        ),
    );
    let started = stored(&hub, "SubagentStart");
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["session_id"], TEAMMATE);
    stop(hub);

    // A new process over the same database: it has never seen the SubagentStart.
    let hub = serve(dir.path());
    let team = format!("session-{LEAD}");
    hook(
        &hub,
        with(json!({"hook_event_name": "TaskCreated", "task_id": "1",
            "task_subject": "Read the docking code", "teammate_name": "researcher",
            "team_name": team})),
    );
    hook(
        &hub,
        with(
            json!({"hook_event_name": "TeammateIdle", "teammate_name": "researcher",
            "team_name": team}),
        ),
    );

    for name in ["TaskCreated", "TeammateIdle"] {
        let events = stored(&hub, name);
        assert_eq!(events.len(), 1, "{name}: {events:?}");
        let e = &events[0];
        // The teammate's own session, not `<lead>:teammate:<team>/researcher`.
        assert_eq!(e["session_id"], TEAMMATE, "{name}: {e}");
        assert_eq!(e["parent_session_id"], LEAD, "{name}: {e}");
        assert_eq!(e["agent"], "researcher", "{name}: {e}");
    }
    // One lane for the teammate: the run has the lead and the teammate, nothing made up.
    let run = sightline_testkit::get(&format!("{}/api/v1/runs/{LEAD}", hub.url));
    let mut sessions: Vec<&str> = run["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["session_id"].as_str())
        .collect();
    sessions.sort_unstable();
    assert_eq!(sessions, [TEAMMATE, LEAD], "{run}");
    let teammate = run["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == TEAMMATE)
        .unwrap();
    assert_eq!(teammate["status"], "idle", "{teammate}");
}
