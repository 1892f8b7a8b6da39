//! Claude Code's newer hook events driven by the real binary (the version the test kit pins,
//! from npm) in `claude -p`, offline against a scripted mock of the Anthropic Messages API,
//! with every hook posted to a real hub; each test asserts what the hub made of them through
//! its API. Proven here: worktrees (`--worktree` at start-up, the `EnterWorktree` and
//! `ExitWorktree` tools: `WorktreeCreate`, `WorktreeRemove`), MCP elicitation (a stdio MCP
//! server written here asks for input; `claude -p` cancels it: `Elicitation` blocks the
//! session, `ElicitationResult` ends the wait) and `PermissionDenied` (auto mode, whose
//! classifier, a request to the same mock, refuses the call: the denial ends the call).
//! Agent teams exist only in an interactive session, so that test runs `claude` in a tmux pane:
//! a teammate is one lane (its `SubagentStart`, tasks and `TeammateIdle`) under the lead.
//! Tasks of the session itself are proven in `claude_real.rs`; what no test here can make fire
//! is said in docs/SOURCES-SETUP.md.
//!
//! A `WorktreeCreate` hook replaces Claude Code's own `git worktree add`: it must print the
//! directory it made. The test's hook does that (and posts the payload to the hub); this is why
//! `sightline install claude` never subscribes to it.
//!
//! The tests fail, saying why, when npm cannot install Claude Code, or `curl`, `python3` or
//! `tmux` (the command hooks, the MCP server, the interactive pane) is missing; they never
//! pass without running.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::TestHub;
use common::peers::{
    MockReply, MockRequest, claude_command, claude_settings_file, git_repo, messages_sse,
    mock_http, mock_messages_api,
};
use serde_json::{Value, json};

/// The marker in the prompt that tells the mock a request is the main conversation's.
const MARKER: &str = "SURFACE-TASK";

/// A scripted main conversation: the n-th answer (after n tool results) calls the n-th tool
/// of the script, then `done`.
type Script = Vec<(&'static str, Value)>;

/// Starts a mock Messages API that answers the main conversation by `script` and anything
/// else (a side request) with `ok`. Returns its URL.
fn mock_api(script: Script) -> String {
    mock_messages_api(move |request| (String::new(), answer(request, &script)))
}

/// The Messages API's stream answering `request` (see [`mock_api`]).
fn answer(request: &Value, script: &Script) -> Vec<u8> {
    scripted(request, MARKER, script)
}

/// The stream answering `request` when it is the conversation whose first message holds
/// `marker`, by `script`; else a short text.
fn scripted(request: &Value, marker: &str, script: &Script) -> Vec<u8> {
    let empty = vec![];
    let messages = request["messages"].as_array().unwrap_or(&empty);
    let main = messages
        .first()
        .is_some_and(|m| m.to_string().contains(marker));
    let results = messages
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|b| b["type"] == "tool_result")
        .count();
    let model = request["model"].as_str().unwrap_or("claude-sonnet-4-5");
    let mut events = vec![
        json!({"type": "message_start", "message": {"id": "msg_surface",
        "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 1}}}),
    ];
    let stop = match script.get(results).filter(|_| main) {
        Some((tool, input)) => {
            events.push(
                json!({"type": "content_block_start", "index": 0, "content_block":
                {"type": "tool_use", "id": format!("toolu_surface_{results}"),
                 "name": tool, "input": {}}}),
            );
            events.push(json!({"type": "content_block_delta", "index": 0, "delta":
                {"type": "input_json_delta", "partial_json": input.to_string()}}));
            "tool_use"
        }
        None => {
            let text = if main { "done" } else { "ok" };
            events.push(json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}));
            events.push(json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": text}}));
            "end_turn"
        }
    };
    events.push(json!({"type": "content_block_stop", "index": 0}));
    events.push(
        json!({"type": "message_delta", "delta": {"stop_reason": stop,
        "stop_sequence": null}, "usage": {"output_tokens": 5}}),
    );
    events.push(json!({"type": "message_stop"}));
    messages_sse(&events)
}

/// Fails the test, loudly, when a program a hook or the MCP server needs is missing.
fn require(program: &str, why: &str) {
    // tmux knows only `-V`.
    let ok = ["--version", "-V"].iter().any(|flag| {
        Command::new(program)
            .arg(flag)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(
        ok,
        "CLAUDE CODE TEST CANNOT RUN: {program} is missing ({why})"
    );
}

/// A session's directories: HOME, the project (a git repository with one commit) and the
/// settings file, all under `root`.
struct Dirs {
    home: PathBuf,
    repo: PathBuf,
    settings: PathBuf,
}

/// The hook events these tests post to the hub over `http`; `SessionStart` takes only
/// `command` hooks (curl posts it) and `WorktreeCreate` is the worktree hook of [`dirs`].
const HTTP_HOOKS: &[&str] = &[
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "Notification",
    "UserPromptSubmit",
    "SessionEnd",
    "Stop",
    "PermissionRequest",
    "PermissionDenied",
    "Elicitation",
    "ElicitationResult",
    "WorktreeRemove",
    "CwdChanged",
    "SubagentStart",
    "SubagentStop",
    "TaskCreated",
    "TaskCompleted",
    "TeammateIdle",
];

fn dirs(root: &Path, hub: &str) -> Dirs {
    let (home, repo) = (root.join("home"), root.join("repo"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("README.md"), "# readme\n").unwrap();
    git_repo(&repo);
    let url = format!("{hub}/api/v1/hooks/claude");
    let curl =
        format!("curl -s -m 5 -X POST -H 'content-type: application/json' --data-binary @- {url}");
    // WorktreeCreate replaces `git worktree add`: the hook posts its payload, makes the
    // directory `<root>/trees/<name>` and prints it, which Claude Code then works in.
    let trees = root.join("trees");
    let worktree = format!(
        "payload=$(cat); printf '%s' \"$payload\" | {curl} >/dev/null; \
         name=$(printf '%s' \"$payload\" | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"name\"])'); \
         mkdir -p '{trees}'/\"$name\" && echo '{trees}'/\"$name\"",
        trees = trees.display()
    );
    let settings = claude_settings_file(
        root,
        &[
            (
                HTTP_HOOKS,
                json!([{"hooks": [{"type": "http", "url": url}]}]),
            ),
            (
                &["SessionStart"][..],
                json!([{"hooks": [{"type": "command", "command": curl}]}]),
            ),
            (
                &["WorktreeCreate"][..],
                json!([{"hooks": [{"type": "command", "command": worktree}]}]),
            ),
        ],
    );
    Dirs {
        home,
        repo,
        settings,
    }
}

/// How `claude -p` decides on permissions.
#[derive(Clone, Copy, PartialEq)]
enum Permissions {
    /// `--dangerously-skip-permissions`: every tool runs.
    Skip,
    /// `--permission-mode auto`: the auto-mode classifier (a request to the model API)
    /// decides what [`Skip`](Permissions::Skip) would have let through.
    /// `CLAUDE_CODE_ENABLE_AUTO_MODE=1` opens the gate for an API key not on a plan.
    Auto,
}

/// Runs `claude -p` with `args`; returns its JSON result.
fn claude(hub: &TestHub, api: &str, dirs: &Dirs, permissions: Permissions, args: &[&str]) -> Value {
    let config = hub.config();
    let mut command = claude_command(&dirs.home, &config.claude_dir, &dirs.repo, api);
    match permissions {
        Permissions::Skip => command.arg("--dangerously-skip-permissions"),
        Permissions::Auto => command
            .env("CLAUDE_CODE_ENABLE_AUTO_MODE", "1")
            .args(["--permission-mode", "auto"]),
    };
    let out = command
        .args(["-p", &format!("{MARKER}: go"), "--output-format", "json"])
        .arg("--settings")
        .arg(&dirs.settings)
        .args(args)
        .output()
        .expect("claude runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "claude -p failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("claude's JSON result ({e}): {stdout}"))
}

/// The hub's events of `session` once it holds its `SessionEnd` (hooks post while Claude Code
/// exits), oldest first.
fn session_events(hub: &TestHub, session: &str) -> Vec<Value> {
    hub.wait_for(
        &format!("the SessionEnd of {session}"),
        Duration::from_secs(20),
        |events| {
            events
                .iter()
                .any(|e| e["session_id"] == session && e["source_event"] == "SessionEnd")
        },
    )
    .into_iter()
    .filter(|e| e["session_id"] == session)
    .collect()
}

fn find<'a>(events: &'a [Value], source_event: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["source_event"] == source_event)
        .collect()
}

#[test]
fn worktrees_created_and_removed_by_the_real_binary_are_session_events() {
    require(
        "curl",
        "the SessionStart and WorktreeCreate hooks are commands",
    );
    require(
        "python3",
        "the WorktreeCreate hook reads the worktree's name",
    );
    let hub = TestHub::start();
    let tmp = tempfile::tempdir().unwrap();
    let dirs = dirs(tmp.path(), &hub.url);
    let api = mock_api(vec![
        ("EnterWorktree", json!({"name": "feat-tool"})),
        (
            "ExitWorktree",
            json!({"action": "remove", "discard_changes": true}),
        ),
    ]);

    // `--worktree` at start-up: the hook runs before the session starts, from the project.
    let first = claude(
        &hub,
        &api,
        &dirs,
        Permissions::Skip,
        &["--worktree", "feat-start"],
    );
    assert_eq!(first["result"], "done", "{first}");
    let session = first["session_id"].as_str().unwrap().to_string();
    let events = session_events(&hub, &session);
    let created = find(&events, "WorktreeCreate");
    assert_eq!(created.len(), 1, "{events:#?}");
    assert_eq!(created[0]["title"], "Worktree created: feat-start");
    assert_eq!(created[0]["severity"], "info");
    let start = tmp.path().join("trees/feat-start");
    assert!(start.is_dir(), "the hook's worktree {}", start.display());
    // The session then runs in the worktree the hook printed.
    let started = find(&events, "SessionStart");
    assert_eq!(started.len(), 1, "{events:#?}");
    assert_eq!(
        started[0]["payload"]["cwd"].as_str(),
        start.to_str(),
        "{:#}",
        started[0]
    );

    // The tools, mid-session: created, entered, then left and removed.
    let second = claude(&hub, &api, &dirs, Permissions::Skip, &[]);
    assert_eq!(second["result"], "done", "{second}");
    let session = second["session_id"].as_str().unwrap().to_string();
    let events = session_events(&hub, &session);
    let created = find(&events, "WorktreeCreate");
    let removed = find(&events, "WorktreeRemove");
    assert_eq!((created.len(), removed.len()), (1, 1), "{events:#?}");
    let tool_path = tmp.path().join("trees/feat-tool");
    assert_eq!(created[0]["title"], "Worktree created: feat-tool");
    assert_eq!(
        removed[0]["title"],
        format!("Worktree removed: {}", tool_path.display())
    );
    for e in [created[0], removed[0]] {
        assert_eq!(
            (&e["severity"], &e["source"]),
            (&json!("info"), &json!("claude")),
            "{e:#}"
        );
    }
    // In the order Claude Code ran them: each inside its tool's call.
    let order: Vec<&str> = events
        .iter()
        .filter_map(|e| e["source_event"].as_str())
        .filter(|s| s.starts_with("Worktree") || s.ends_with("ToolUse"))
        .collect();
    assert_eq!(
        order,
        [
            "PreToolUse",
            "WorktreeCreate",
            "PostToolUse",
            "PreToolUse",
            "WorktreeRemove",
            "PostToolUse"
        ],
        "{events:#?}"
    );
}

/// A stdio MCP server (newline-delimited JSON-RPC) with one tool, `ask`, that asks the client
/// for a colour (`elicitation/create`) and returns what it answered.
const ASKER: &str = r#"
import json, sys
def send(m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
pending = None
for line in sys.stdin:
    m = json.loads(line)
    method = m.get("method")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": m["id"], "result": {"protocolVersion": m["params"].get("protocolVersion", "2025-06-18"), "capabilities": {"tools": {}}, "serverInfo": {"name": "asker", "version": "1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": m["id"], "result": {"tools": [{"name": "ask", "description": "asks the user for a colour", "inputSchema": {"type": "object", "properties": {}}}]}})
    elif method == "tools/call":
        pending = m["id"]
        send({"jsonrpc": "2.0", "id": "elicit-1", "method": "elicitation/create", "params": {"message": "Which colour?", "requestedSchema": {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}}})
    elif m.get("id") == "elicit-1":
        send({"jsonrpc": "2.0", "id": pending, "result": {"content": [{"type": "text", "text": "answer: " + json.dumps(m.get("result") or m.get("error"))}]}})
    elif "id" in m and method:
        send({"jsonrpc": "2.0", "id": m["id"], "result": {}})
"#;

#[test]
fn an_mcp_elicitation_blocks_the_session_until_the_real_binary_answers_it() {
    require("curl", "the SessionStart hook is a command");
    require("python3", "the MCP server of this test is a Python script");
    let hub = TestHub::start();
    let tmp = tempfile::tempdir().unwrap();
    let dirs = dirs(tmp.path(), &hub.url);
    let server = tmp.path().join("asker.py");
    std::fs::write(&server, ASKER).unwrap();
    let mcp = tmp.path().join("mcp.json");
    let config = json!({"mcpServers": {"asker": {"command": "python3", "args": [server]}}});
    std::fs::write(&mcp, config.to_string()).unwrap();
    let api = mock_api(vec![("mcp__asker__ask", json!({}))]);

    let result = claude(
        &hub,
        &api,
        &dirs,
        Permissions::Skip,
        &["--mcp-config", mcp.to_str().unwrap(), "--strict-mcp-config"],
    );
    assert_eq!(result["result"], "done", "{result}");
    let session = result["session_id"].as_str().unwrap().to_string();
    let events = session_events(&hub, &session);
    let asked = find(&events, "Elicitation");
    let answered = find(&events, "ElicitationResult");
    assert_eq!((asked.len(), answered.len()), (1, 1), "{events:#?}");
    let (asked, answered) = (asked[0], answered[0]);
    // The form waits for the user: the session is blocked on the server that asked.
    assert_eq!(
        (
            &asked["entity_type"],
            &asked["status"],
            &asked["severity"],
            &asked["entity_id"]
        ),
        (
            &json!("permission"),
            &json!("blocked"),
            &json!("warn"),
            &json!("asker")
        ),
        "{asked:#}"
    );
    assert_eq!(asked["title"], "Input requested by asker");
    assert_eq!(asked["summary"], "Which colour?");
    // `claude -p` has no one to ask: it cancels, which ends the wait (running again, and a
    // warning, since the server got no answer).
    assert_eq!(
        (
            &answered["entity_type"],
            &answered["status"],
            &answered["severity"],
            &answered["entity_id"]
        ),
        (
            &json!("permission"),
            &json!("running"),
            &json!("warn"),
            &json!("asker")
        ),
        "{answered:#}"
    );
    assert_eq!(answered["title"], "Input for asker: cancel");
    // Both inside the tool call that asked, in order.
    let order: Vec<&str> = events
        .iter()
        .filter_map(|e| e["source_event"].as_str())
        .filter(|s| s.starts_with("Elicitation") || s.ends_with("ToolUse"))
        .collect();
    assert_eq!(
        order,
        [
            "PreToolUse",
            "Elicitation",
            "ElicitationResult",
            "PostToolUse"
        ],
        "{events:#?}"
    );
    // The session does not stay blocked: it ended with the run.
    let last = events
        .iter()
        .rev()
        .find(|e| e["entity_type"] == "session" && !e["status"].is_null())
        .expect("a session status");
    assert_ne!(last["status"], "blocked", "{last:#}");
}

/// What the mock's auto-mode classifier says of every action it is asked about.
const VERDICT: &str = "[Git Destructive] force-pushing main rewrites shared history";

#[test]
fn a_denial_by_the_real_auto_mode_classifier_ends_the_call_it_refused() {
    require("curl", "the SessionStart hook is a command");
    let hub = TestHub::start();
    let tmp = tempfile::tempdir().unwrap();
    let dirs = dirs(tmp.path(), &hub.url);
    // The classifier is a plain (not streamed) Messages request whose system prompt makes the
    // model a security monitor; it answers `<block>yes</block><reason>..</reason>`.
    let script: Script = vec![(
        "Bash",
        json!({"command": "git push --force origin main", "description": "push"}),
    )];
    let classified = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let asked = classified.clone();
    let addr = mock_http(move |MockRequest { line, body }| {
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if !line.starts_with("POST /v1/messages") {
            let mut reply = MockReply::ok("application/json", "{}");
            reply.status = 404;
            reply
        } else if line.contains("count_tokens") {
            MockReply::ok("application/json", r#"{"input_tokens": 10}"#)
        } else if request["system"].to_string().contains("security monitor") {
            asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let verdict = json!({"id": "msg_classifier", "type": "message",
                "role": "assistant", "model": request["model"],
                "content": [{"type": "text",
                    "text": format!("<block>yes</block><reason>{VERDICT}</reason>")}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 5}});
            MockReply::ok("application/json", verdict.to_string())
        } else {
            MockReply::ok("text/event-stream", answer(&request, &script))
        }
    });

    let result = claude(
        &hub,
        &format!("http://{addr}"),
        &dirs,
        Permissions::Auto,
        &[],
    );
    assert_eq!(result["result"], "done", "{result}");
    assert!(
        classified.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "Claude Code never asked its auto-mode classifier: {result}"
    );
    let denials = result["permission_denials"].as_array().cloned();
    assert_eq!(denials.map(|d| d.len()), Some(1), "{result}");
    let session = result["session_id"].as_str().unwrap().to_string();
    let events = session_events(&hub, &session);
    let denied = find(&events, "PermissionDenied");
    assert_eq!(denied.len(), 1, "{events:#?}");
    let denied = denied[0];
    // The call never runs: the denial ends it, cancelled with a warning, on its own id.
    assert_eq!(
        (
            &denied["entity_type"],
            &denied["status"],
            &denied["severity"],
            &denied["entity_id"],
            &denied["correlation_id"]
        ),
        (
            &json!("tool"),
            &json!("cancelled"),
            &json!("warn"),
            &json!("toolu_surface_0"),
            &json!("toolu_surface_0")
        ),
        "{denied:#}"
    );
    assert_eq!(denied["summary"], VERDICT, "{denied:#}");
    assert!(
        denied["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("Permission denied: ")),
        "{denied:#}"
    );
    // The command never ran: no PostToolUse for the call.
    let posts = events
        .iter()
        .filter(|e| e["correlation_id"] == "toolu_surface_0")
        .filter_map(|e| e["source_event"].as_str())
        .collect::<Vec<_>>();
    assert_eq!(posts, ["PreToolUse", "PermissionDenied"], "{events:#?}");
    // The denial ends the call: the live view does not show it as the session's current work.
    let live = hub.get(&format!("/api/v1/live?run={session}"));
    let lane = live["sessions"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["session_id"] == session.as_str()))
        .unwrap_or_else(|| panic!("{session} not in /live: {live:#}"));
    assert!(lane["activity"].is_null(), "{lane:#}");
}

/// The teammate's job, in the prompt the lead gives it: the mock scripts its conversation.
const TEAMMATE_JOB: &str = "TEAMMATE-JOB";

/// Agent teams need an interactive session (in `-p` mode Claude Code sets up no team, and an
/// `Agent` call with a `name` runs as a plain subagent), so this one runs `claude` in a tmux
/// pane, its first-run screens answered in its config (onboarding done, the project trusted,
/// the test's API key approved). The lead spawns the teammate `researcher`, which creates a
/// task, completes it and goes idle.
#[test]
fn an_agent_teams_teammate_is_one_lane_with_its_tasks_and_goes_idle() {
    require("curl", "the SessionStart hook is a command");
    require(
        "tmux",
        "agent teams need an interactive Claude Code, run here in a tmux pane",
    );
    let hub = TestHub::start();
    let tmp = tempfile::tempdir().unwrap();
    let dirs = dirs(tmp.path(), &hub.url);
    let lead: Script = vec![(
        "Agent",
        json!({"description": "research", "prompt": format!("{TEAMMATE_JOB}: track one task"),
            "subagent_type": "general-purpose", "name": "researcher"}),
    )];
    let teammate: Script = vec![
        (
            "TaskCreate",
            json!({"subject": "read the notes", "description": "all of them"}),
        ),
        ("TaskUpdate", json!({"taskId": "1", "status": "completed"})),
    ];
    let api = mock_messages_api(move |request| {
        let first = request["messages"][0].to_string();
        let stream = if first.contains(TEAMMATE_JOB) {
            scripted(request, TEAMMATE_JOB, &teammate)
        } else {
            scripted(request, MARKER, &lead)
        };
        (String::new(), stream)
    });
    let config = hub.config();
    std::fs::create_dir_all(&config.claude_dir).unwrap();
    let key = "sk-ant-test-not-a-key";
    let state = json!({"hasCompletedOnboarding": true, "theme": "dark",
        "bypassPermissionsModeAccepted": true,
        "projects": {dirs.repo.to_string_lossy(): {"hasTrustDialogAccepted": true,
            "hasCompletedProjectOnboarding": true}},
        "customApiKeyResponses": {"approved": [&key[key.len() - 20..]], "rejected": []}});
    std::fs::write(config.claude_dir.join(".claude.json"), state.to_string()).unwrap();

    // The pane runs the kit's isolated `claude` (its environment, a terminal it can draw on).
    let command = claude_command(&dirs.home, &config.claude_dir, &dirs.repo, &api);
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let mut line = String::from("cd ") + &quote(dirs.repo.as_os_str()) + " && exec env -i";
    for (k, v) in command.get_envs() {
        if k == "TERM" {
            continue;
        }
        if let Some(v) = v {
            line += &format!(" {}={}", k.to_string_lossy(), quote(v));
        }
    }
    line += " TERM=xterm-256color CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS=1 ";
    line += &quote(command.get_program());
    line += &format!(
        " '{MARKER}: go' --teammate-mode in-process --dangerously-skip-permissions --settings {}",
        quote(dirs.settings.as_os_str())
    );
    let socket = tmp.path().join("tmux.sock");
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args(args)
            .output()
            .expect("tmux runs")
    };
    let started = tmux(&["new-session", "-d", "-x", "200", "-y", "50", &line]);
    assert!(
        started.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    struct KillOnDrop<F: FnMut()>(F);
    impl<F: FnMut()> Drop for KillOnDrop<F> {
        fn drop(&mut self) {
            (self.0)();
        }
    }
    let _kill = KillOnDrop(|| {
        let _ = tmux(&["kill-server"]);
    });

    let idle_seen = |events: &[Value]| events.iter().any(|e| e["source_event"] == "TeammateIdle");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let events = loop {
        let events = hub.events();
        if idle_seen(&events) {
            break events;
        }
        if std::time::Instant::now() > deadline {
            let pane = tmux(&["capture-pane", "-p"]);
            panic!(
                "no TeammateIdle at the hub in 60 s; the pane shows:\n{}\nevents: {events:#?}",
                String::from_utf8_lossy(&pane.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let one = |name: &str| -> &Value {
        let found = find(&events, name);
        assert_eq!(found.len(), 1, "{name}: {events:#?}");
        found[0]
    };
    let start = one("SubagentStart");
    let idle = one("TeammateIdle");
    let lane = start["session_id"]
        .as_str()
        .expect("the teammate's session");
    let lead_session = start["parent_session_id"].as_str().expect("its lead");
    assert_ne!(lane, lead_session);
    // One lane for the teammate: its start, its tasks and its idle, under the lead.
    for e in [start, idle, one("TaskCreated"), one("TaskCompleted")] {
        assert_eq!(
            (e["session_id"].as_str(), e["parent_session_id"].as_str()),
            (Some(lane), Some(lead_session)),
            "{e:#}"
        );
        assert_eq!(e["agent"], "researcher", "{e:#}");
    }
    assert_eq!(
        (&idle["entity_type"], &idle["status"]),
        (&json!("session"), &json!("idle")),
        "{idle:#}"
    );
    let created = one("TaskCreated");
    assert_eq!(created["title"], "Task created: read the notes");
    assert_eq!(one("TaskCompleted")["entity_id"], created["entity_id"]);
    // The hub's tree: the teammate is a child session of the lead, idle.
    let tree = hub.get(&format!("/api/v1/sessions/{lead_session}/tree"));
    let children = tree["tree"]["children"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let member = children
        .iter()
        .find(|c| c["session_id"] == lane)
        .unwrap_or_else(|| panic!("{lane} not under {lead_session}: {tree:#}"));
    assert_eq!(member["status"], "idle", "{member:#}");
    assert_eq!(children.len(), 1, "one lane per teammate: {tree:#}");
}
