//! The session-pid liveness rule against the real Claude Code binary: `claude -p` runs with
//! `sightline hook` as its command hook, against a tiny mock of the Anthropic Messages API
//! whose only answer is a Bash call that sleeps; while the tool runs, the test SIGKILLs the
//! claude process (by the pid it spawned), and a `sightline serve` with a 1 s liveness sweep
//! must end the session `failed`, saying the Claude Code process is gone, within seconds.
//!
//! It also checks what the rule rests on: the hook events carry the pid of the claude process
//! itself (not the shell Claude Code runs hooks through, nor `sightline hook`). It fails,
//! saying why, when npm cannot install Claude Code; it never passes without running.

mod common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Served, serve_command};
use serde_json::{Value, json};
use sightline_testkit::get_status;
use sightline_testkit::peers::{
    claude_command, claude_settings_file, messages_sse, mock_messages_api,
};

/// The mock model's only answer: one Bash tool call that sleeps (the turn is then mid-tool
/// until it is killed).
fn sleeping_bash(request: &Value) -> (String, Vec<u8>) {
    let model = request["model"].as_str().unwrap_or("claude-sonnet-4-5");
    let input = json!({"command": "sleep 60", "description": "wait"});
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use",
            "id": "toolu_liveness_sleep", "name": "Bash", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta",
            "partial_json": input.to_string()}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use",
            "stop_sequence": null}, "usage": {"output_tokens": 5}}),
        json!({"type": "message_stop"}),
    ];
    (String::new(), messages_sse(&events))
}

fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_claude_session_whose_process_is_killed_mid_tool_ends_failed() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut serve = serve_command(&tmp.path().join("db.sqlite"));
    serve
        .args(["--liveness-every", "1"])
        .env("XDG_DATA_HOME", tmp.path())
        .env("XDG_CONFIG_HOME", tmp.path())
        .env_remove("SIGHTLINE_SOURCES");
    let hub = Served::spawn(serve);

    let api_url = mock_messages_api(sleeping_bash);

    let (home, claude_dir, repo) = (
        tmp.path().join("home"),
        tmp.path().join("claude"),
        tmp.path().join("repo"),
    );
    for d in [&home, &claude_dir, &repo] {
        std::fs::create_dir_all(d).unwrap();
    }
    // Every hook a command, `sightline hook` (its spool in the temp dir).
    let hook = json!([{"hooks": [{"type": "command", "command": format!(
        "SIGHTLINE_SPOOL_DIR={} {BIN} hook --url {}",
        tmp.path().join("spool").display(),
        hub.url
    )}]}]);
    let events = [
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "Stop",
        "SessionEnd",
    ];
    let settings_file = claude_settings_file(tmp.path(), &[(&events[..], hook)]);
    let session = format!(
        "{:08x}-0000-4000-8000-{:012x}",
        std::process::id(),
        started.elapsed().as_nanos() as u64 & 0xffff_ffff_ffff
    );

    let mut claude = claude_command(&home, &claude_dir, &repo, &api_url)
        .args(["-p", "LIVENESS: run the command", "--output-format", "json"])
        .args(["--session-id", &session, "--dangerously-skip-permissions"])
        .arg("--settings")
        .arg(&settings_file)
        // Its own process group, so the orphaned `sleep` is cleaned up after the test.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("claude starts");
    let pid = claude.id();
    let cleanup = scopeguard(pid);

    // The tool is running: its PreToolUse came through `sightline hook`, with the pid.
    let url = format!("{}/api/v1/runs/{session}/timeline?limit=200", hub.url);
    let pre = wait_for(
        "the PreToolUse hook of the sleeping Bash call",
        Duration::from_secs(90),
        || {
            if let Ok(Some(status)) = claude.try_wait() {
                let mut err = String::new();
                let _ = claude.stderr.take().map(|mut e| e.read_to_string(&mut err));
                panic!("claude exited ({status}) before its tool ran:\n{err}");
            }
            let (code, body) = get_status(&url);
            (code == 200).then_some(())?;
            body["events"]
                .as_array()?
                .iter()
                .find(|e| e["source_event"] == "PreToolUse")
                .cloned()
        },
    );
    assert_eq!(
        pre["pid"],
        json!(pid),
        "the hook event names the claude process itself: {pre}"
    );
    assert_eq!(
        pre["payload"]["sightline_producer"]["pid"],
        json!(pid),
        "{pre}"
    );
    assert!(
        pre["payload"]["sightline_producer"]["start_ticks"]
            .as_u64()
            .is_some(),
        "{pre}"
    );

    // Claude Code runs the Bash tool in a process group of its own: note the tool's groups
    // before the kill, to end the orphaned `sleep` after it.
    let tool_groups = Groups(wait_for(
        "the Bash tool's process",
        Duration::from_secs(10),
        || Some(children_groups(pid)).filter(|g| !g.is_empty()),
    ));
    // The process is alive: sweeps (every second) leave the session running.
    std::thread::sleep(Duration::from_millis(2_500));
    let (_, alive) = get_status(&format!("{}/api/v1/runs/{session}", hub.url));
    assert_eq!(alive["run"]["status"], "running", "{alive}");
    assert!(alive["run"]["liveness_rule"].is_null(), "{alive}");
    claude.kill().unwrap(); // SIGKILL: no SessionEnd
    claude.wait().unwrap();
    let killed = Instant::now();

    let run_url = format!("{}/api/v1/runs/{session}", hub.url);
    let run = wait_for(
        "the sweep to end the session",
        Duration::from_secs(15),
        || {
            let (code, body) = get_status(&run_url);
            (code == 200 && body["run"]["status"] == "failed").then_some(body)
        },
    );
    let waited = killed.elapsed();
    let reason = format!("Claude Code process {pid} is gone (no SessionEnd)");
    assert_eq!(run["run"]["liveness_rule"], "pid", "{run}");
    assert_eq!(run["run"]["liveness_reason"], json!(reason), "{run}");
    let root = run["sessions"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["session_id"] == session.as_str()))
        .unwrap_or_else(|| panic!("the root session is in the run: {run}"));
    assert_eq!(root["status"], "failed", "{root}");
    assert_eq!(root["liveness_reason"], json!(reason), "{root}");
    assert!(waited < Duration::from_secs(10), "ended after {waited:?}");
    drop((cleanup, tool_groups));
    eprintln!(
        "claude liveness: ended {waited:?} after the kill; whole test {:?}",
        started.elapsed()
    );
}

/// Kills the process group of the claude process when dropped (a failed assertion included).
struct Group(u32);
fn scopeguard(pgid: u32) -> Group {
    Group(pgid)
}
impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stderr(Stdio::null())
            .status();
    }
}

/// Kills the process groups it holds when dropped.
struct Groups(Vec<u32>);
impl Drop for Groups {
    fn drop(&mut self) {
        for g in &self.0 {
            drop(Group(*g));
        }
    }
}

/// The process groups of `pid`'s children, from `/proc` (fields after the command's `)`:
/// state, ppid, pgrp).
fn children_groups(pid: u32) -> Vec<u32> {
    let mut groups = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid)
            && let Some(g) = f.get(2).and_then(|g| g.parse::<u32>().ok())
            && g != pid
        {
            groups.push(g);
        }
    }
    groups
}
