//! The real Claude Code against a hub: the `claude` binary from npm (pinned in the test kit,
//! installed into the test cache on first use) runs two turns of one session offline against a
//! mock of the Anthropic Messages API in this file, with every hook event posted to the hub,
//! and OpenTelemetry logs, metrics and trace spans exported to it; then the transcript source
//! backfills the session's transcripts. The first turn runs a Bash command and an `Agent`
//! subagent that runs one of its own; the second reads a file, then creates a task on the
//! session's task list and completes it; the third runs without skipping permissions, so
//! Claude Code refuses the command it asks for; the fourth is `/compact`.
//!
//! What it checks is what issue 13 asks to see of one real session: the run's tree (the
//! subagent under the root session), each tool call one lifecycle joined across hook, OTel log,
//! span and transcript (one `correlation_id`, one session), the spans nested by parent, each
//! turn joined to its prompt, the cost counted once and equal to what Claude Code itself
//! reports, and no bookkeeping row above `debug`.
//!
//! It fails, saying why, when npm cannot install Claude Code or `curl` (the `SessionStart`
//! hook, which must be a command) is missing; it never passes without running.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestHub;
use common::peers::{
    claude_binary, claude_command, claude_settings_file, git_repo, messages_sse, mock_messages_api,
};
use serde_json::{Value, json};
use sightline_sources::claude::hooks::HOOK_EVENTS;

/// What the mock answered: (request id, input tokens, output tokens, for the subagent) per
/// model request.
type Answered = Arc<Mutex<Vec<(String, u64, u64, bool)>>>;

/// A tiny Anthropic Messages API: `POST /v1/messages` answered as a stream of Messages SSE
/// events, scripted by what the conversation holds so far (see [`decide`]).
struct MockApi {
    url: String,
    answered: Answered,
}

impl MockApi {
    fn start(tag: &str) -> MockApi {
        let answered: Answered = Arc::default();
        let (tag, answers) = (tag.to_string(), answered.clone());
        let url = mock_messages_api(move |request| {
            let (blocks, stop) = decide(request, &tag);
            let mut answers = answers.lock().unwrap();
            let n = answers.len() as u64 + 1;
            let request_id = format!("req_{tag}_{n}");
            let (input, output) = (100 + n, 20 + n);
            let sub = request["messages"][0].to_string().contains("SUBAGENT-JOB");
            answers.push((request_id.clone(), input, output, sub));
            (request_id, sse(request, n, input, output, &blocks, stop))
        });
        MockApi { url, answered }
    }
}

/// A content block of a scripted answer.
enum Block {
    Text(&'static str),
    Tool(String, &'static str, Value),
}

fn text_of(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|b| match b["text"].as_str() {
                Some(t) => t.to_string(),
                None => b.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The script. A subagent's conversation starts with its task (`SUBAGENT-JOB`): it runs one
/// Bash command, then answers. The main conversation: turn 1 (`MAIN-TASK`) runs Bash, then
/// the `Agent` tool, then answers; turn 2 (`SECOND-TURN`) reads README.md, then answers.
/// Anything else (a side request) gets a short text.
fn decide(request: &Value, tag: &str) -> (Vec<Block>, &'static str) {
    let empty = vec![];
    let messages = request["messages"].as_array().unwrap_or(&empty);
    let first = messages.first().map(text_of).unwrap_or_default();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let results: Vec<String> = messages
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|b| b["type"] == "tool_result")
        .filter_map(|b| b["tool_use_id"].as_str().map(str::to_string))
        .collect();
    let has = |id: &str| results.iter().any(|r| r == &format!("{id}_{tag}"));
    let id = |id: &str| format!("{id}_{tag}");
    let all: String = messages.iter().map(text_of).collect::<Vec<_>>().join(" ");
    if first.contains("SUBAGENT-JOB") {
        return if has("toolu_sub_bash") {
            (vec![Block::Text("subagent done")], "end_turn")
        } else {
            (
                vec![Block::Tool(
                    id("toolu_sub_bash"),
                    "Bash",
                    json!({"command": "echo from-subagent", "description": "sub echo"}),
                )],
                "tool_use",
            )
        };
    }
    // Turn 3 runs without --dangerously-skip-permissions: `claude -p` refuses a command that
    // writes, as a user saying no would.
    let third = last["role"] == "user"
        && !text_of(&last).contains("tool_result")
        && text_of(&last).contains("THIRD-TURN");
    if third {
        return (
            vec![Block::Tool(
                id("toolu_denied"),
                "Bash",
                json!({"command": "touch denied.txt", "description": "write a file"}),
            )],
            "tool_use",
        );
    }
    if results.last() == Some(&id("toolu_denied")) {
        return (vec![Block::Text("third turn done")], "end_turn");
    }
    let last_is_prompt = last["role"] == "user"
        && !text_of(&last).contains("tool_result")
        && text_of(&last).contains("SECOND-TURN");
    if last_is_prompt {
        return (
            vec![Block::Tool(
                id("toolu_read"),
                "Read",
                json!({"file_path": "README.md"}),
            )],
            "tool_use",
        );
    }
    // Turn 2 goes on: a task on the session's task list, created then completed.
    if results.last() == Some(&id("toolu_read")) {
        return (
            vec![Block::Tool(
                id("toolu_task_create"),
                "TaskCreate",
                json!({"subject": "write tests", "description": "cover the parser"}),
            )],
            "tool_use",
        );
    }
    if results.last() == Some(&id("toolu_task_create")) {
        // "Task #1 created successfully: ...": the id is the number after '#'.
        let answer = messages
            .iter()
            .filter_map(|m| m["content"].as_array())
            .flatten()
            .find(|b| b["tool_use_id"] == id("toolu_task_create").as_str())
            .map(|b| b["content"].to_string())
            .unwrap_or_default();
        let task: String = answer
            .split('#')
            .nth(1)
            .unwrap_or("1")
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        return (
            vec![Block::Tool(
                id("toolu_task_update"),
                "TaskUpdate",
                json!({"taskId": task, "status": "completed"}),
            )],
            "tool_use",
        );
    }
    if results.last() == Some(&id("toolu_task_update")) {
        return (vec![Block::Text("second turn done")], "end_turn");
    }
    if !all.contains("MAIN-TASK") {
        return (vec![Block::Text("ok")], "end_turn");
    }
    if has("toolu_agent") {
        return (vec![Block::Text("all done")], "end_turn");
    }
    if has("toolu_bash") {
        return (
            vec![Block::Tool(
                id("toolu_agent"),
                "Agent",
                json!({"description": "sub job", "prompt": "SUBAGENT-JOB: run echo", "subagent_type": "general-purpose"}),
            )],
            "tool_use",
        );
    }
    (
        vec![
            Block::Text("let me run it"),
            Block::Tool(
                id("toolu_bash"),
                "Bash",
                json!({"command": "echo hello-main", "description": "say hello"}),
            ),
        ],
        "tool_use",
    )
}

/// The Messages API's stream for one answer.
fn sse(request: &Value, n: u64, input: u64, output: u64, blocks: &[Block], stop: &str) -> Vec<u8> {
    let model = request["model"].as_str().unwrap_or("claude-sonnet-4-5");
    let mut events = vec![
        json!({"type": "message_start", "message": {"id": format!("msg_{n}"), "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": input, "output_tokens": 1,
            "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}}}),
    ];
    for (i, block) in blocks.iter().enumerate() {
        match block {
            Block::Text(t) => {
                events.push(json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}));
                events.push(json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": t}}));
            }
            Block::Tool(id, name, input) => {
                events.push(json!({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}));
                events.push(json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": input.to_string()}}));
            }
        }
        events.push(json!({"type": "content_block_stop", "index": i}));
    }
    events.push(json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output}}));
    events.push(json!({"type": "message_stop"}));
    messages_sse(&events)
}

/// Writes the test's Claude Code settings into `dir`: every hook event of this Claude Code
/// version posted to the hub (`http`), but `SessionStart` and `Setup`, which take only
/// `command` hooks: curl posts those.
fn settings(dir: &Path, hub: &str) -> std::path::PathBuf {
    let http: Vec<&str> = HOOK_EVENTS
        .iter()
        .copied()
        .filter(|e| !["SessionStart", "Setup"].contains(e))
        .collect();
    let url = format!("{hub}/api/v1/hooks/claude");
    let curl =
        format!("curl -s -m 5 -X POST -H 'content-type: application/json' --data-binary @- {url}");
    claude_settings_file(
        dir,
        &[
            (
                &http[..],
                json!([{"hooks": [{"type": "http", "url": url}]}]),
            ),
            (
                &["SessionStart", "Setup"][..],
                json!([{"hooks": [{"type": "command", "command": curl}]}]),
            ),
        ],
    )
}

/// Runs one `claude -p` turn; returns its JSON result.
fn turn(
    hub: &TestHub,
    api: &MockApi,
    dirs: (&Path, &Path, &Path, &Path),
    prompt: &str,
    session: (&str, &str),
    skip_permissions: bool,
) -> Value {
    let (home, claude_dir, repo, settings) = dirs;
    let out = claude_command(home, claude_dir, repo, &api.url)
        .env("CLAUDE_CODE_ENABLE_TELEMETRY", "1")
        .env("CLAUDE_CODE_ENHANCED_TELEMETRY_BETA", "1")
        .env("OTEL_LOGS_EXPORTER", "otlp")
        .env("OTEL_METRICS_EXPORTER", "otlp")
        .env("OTEL_TRACES_EXPORTER", "otlp")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &hub.url)
        .env("OTEL_LOGS_EXPORT_INTERVAL", "500")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "1000")
        .env("OTEL_BSP_SCHEDULE_DELAY", "500")
        .args(["-p", prompt, "--output-format", "json"])
        .args([session.0, session.1])
        .arg("--settings")
        .arg(settings)
        .args(skip_permissions.then_some("--dangerously-skip-permissions"))
        .output()
        .expect("claude runs");
    assert!(
        out.status.success(),
        "claude -p failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("claude's JSON result ({e}): {stdout}"))
}

fn with_corr<'a>(events: &'a [Value], id: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["correlation_id"] == id)
        .collect()
}

fn kinds(events: &[&Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| e["source_event"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_real_claude_code_session_is_one_joined_run() {
    let binary = claude_binary();
    assert!(
        std::process::Command::new("curl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "CLAUDE CODE TEST CANNOT RUN: curl is missing (the SessionStart hook must be a command)"
    );
    let started = Instant::now();
    let mut hub = TestHub::start();
    let config = hub.config();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tag = format!("{:x}", nanos & 0xffff_ffff_ffff);
    let session = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (nanos >> 32) as u32,
        (nanos >> 16) as u16,
        (nanos & 0xfff) as u16,
        std::process::id() & 0xfff,
        nanos & 0xffff_ffff_ffff
    );
    let api = MockApi::start(&tag);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("README.md"), "# readme\n").unwrap();
    git_repo(&repo);
    let settings_file = settings(tmp.path(), &hub.url);
    let dirs = (
        home.as_path(),
        config.claude_dir.as_path(),
        repo.as_path(),
        settings_file.as_path(),
    );

    let first = turn(
        &hub,
        &api,
        dirs,
        "MAIN-TASK: run echo, then a subagent",
        ("--session-id", &session),
        true,
    );
    assert_eq!(first["result"], "all done", "{first}");
    let second = turn(
        &hub,
        &api,
        dirs,
        "SECOND-TURN: read the readme",
        ("--resume", &session),
        true,
    );
    assert_eq!(second["result"], "second turn done", "{second}");
    let third = turn(
        &hub,
        &api,
        dirs,
        "THIRD-TURN: write a file",
        ("--resume", &session),
        false,
    );
    assert_eq!(third["result"], "third turn done", "{third}");
    let fourth = turn(&hub, &api, dirs, "/compact", ("--resume", &session), true);
    assert_eq!(fourth["is_error"], false, "{fourth}");
    assert_eq!(
        third["permission_denials"][0]["tool_use_id"],
        format!("toolu_denied_{tag}"),
        "{third}"
    );
    let claude_cost = [&first, &second, &third, &fourth]
        .iter()
        .map(|r| r["total_cost_usd"].as_f64().unwrap())
        .sum::<f64>();
    let answered = api.answered.lock().unwrap().clone();
    eprintln!(
        "claude {} ran 4 turns, {} model requests, in {:?}",
        binary.display(),
        answered.len(),
        started.elapsed()
    );

    // Hooks arrive as they fire; OTel is flushed when claude exits. Wait for both turns' spans
    // and every request's usage, then let the transcripts add what only they know: their
    // usage events are the same events (`claude-usage:<request id>`) and are not stored twice.
    let mine = |e: &&Value| e["run_id"] == session.as_str();
    hub.wait_for(
        "all four turns' spans and every request's usage",
        Duration::from_secs(30),
        |events| {
            let run: Vec<&Value> = events.iter().filter(mine).collect();
            run.iter()
                .filter(|e| e["source_event"] == "claude_code.interaction")
                .count()
                == 4
                && run
                    .iter()
                    .filter(|e| e["source_event"] == "claude_code.api_request")
                    .count()
                    == answered.len()
                && run
                    .iter()
                    .any(|e| e["source_event"] == "claude_code.compaction")
                && run
                    .iter()
                    .filter(|e| e["source_event"] == "SessionEnd")
                    .count()
                    == 4
        },
    );
    hub.start_adapters(
        sightline_sources::REGISTRY,
        &config,
        &["claude-transcripts"],
    );
    // Every call's transcript lines, the subagent's included: its transcript is a file of its
    // own (subagents/agent-*.jsonl) that the tailer may find a poll later than the main one.
    let tool_ids: Vec<String> = ["toolu_bash", "toolu_agent", "toolu_sub_bash", "toolu_read"]
        .iter()
        .map(|tool| format!("{tool}_{tag}"))
        .collect();
    let events = hub.wait_for("the transcripts", Duration::from_secs(30), |events| {
        let run: Vec<Value> = events.iter().filter(mine).cloned().collect();
        tool_ids.iter().all(|id| {
            let seen = kinds(&with_corr(&run, id));
            seen.contains("transcript.tool_use") && seen.contains("transcript.tool_result")
        })
    });
    let run: Vec<Value> = events.iter().filter(mine).cloned().collect();

    // The tree: the subagent is a child session of the root, and its work is in it.
    let subagent = run
        .iter()
        .find(|e| e["source_event"] == "SubagentStart")
        .expect("SubagentStart")["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let tree = &hub.get(&format!("/api/v1/sessions/{session}/tree"))["tree"];
    // The subagent, and Claude Code's own agent that wrote the compaction's summary.
    let children: Vec<(&str, &str)> = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| Some((c["session_id"].as_str()?, c["agent"].as_str()?)))
        .collect();
    assert!(
        children.contains(&(subagent.as_str(), "general-purpose")),
        "{tree:#}"
    );
    assert!(
        children
            .iter()
            .all(|(id, agent)| *id == subagent || *agent == "internal"),
        "{tree:#}"
    );

    // Each tool call is one lifecycle across hook, OTel log, span and transcript: one
    // correlation, one session.
    for (tool, session_of_call) in [
        ("toolu_bash", session.as_str()),
        ("toolu_agent", session.as_str()),
        ("toolu_sub_bash", subagent.as_str()),
        ("toolu_read", session.as_str()),
    ] {
        let id = format!("{tool}_{tag}");
        let call = with_corr(&run, &id);
        let seen = kinds(&call);
        for needed in [
            "PreToolUse",
            "PostToolUse",
            "claude_code.tool_decision",
            "claude_code.tool_result",
            "claude_code.tool",
            "claude_code.tool.execution",
            "transcript.tool_use",
            "transcript.tool_result",
        ] {
            assert!(seen.contains(needed), "{id}: no {needed} in {seen:?}");
        }
        for e in &call {
            assert_eq!(
                e["session_id"], session_of_call,
                "{id} outside its session: {e:#}"
            );
            assert_eq!(e["entity_id"], id.as_str(), "{e:#}");
        }
        let ends: Vec<&&Value> = call
            .iter()
            .filter(|e| e["entity_type"] == "tool" && e["status"] == "success")
            .collect();
        assert!(ends.len() >= 4, "{id}: {ends:#?}");
    }

    // The spans nest by parent: each tool span under its turn, its execution under it, the
    // subagent's requests under the Agent tool's execution.
    let span = |pred: &dyn Fn(&Value) -> bool| -> Value {
        run.iter()
            .find(|e| e["payload"]["span_id"].is_string() && pred(e))
            .cloned()
            .unwrap_or_else(|| panic!("no such span in {run:#?}"))
    };
    let agent_tool = span(&|e| {
        e["source_event"] == "claude_code.tool"
            && e["correlation_id"] == format!("toolu_agent_{tag}")
    });
    let agent_exec = span(&|e| {
        e["source_event"] == "claude_code.tool.execution"
            && e["correlation_id"] == format!("toolu_agent_{tag}")
    });
    let turn_one = span(&|e| {
        e["source_event"] == "claude_code.interaction"
            && e["payload"]["span_id"] == agent_tool["payload"]["parent_span_id"]
    });
    assert_eq!(
        agent_exec["payload"]["parent_span_id"],
        agent_tool["payload"]["span_id"]
    );
    let sub_requests: Vec<&Value> = run
        .iter()
        .filter(|e| {
            e["source_event"] == "claude_code.llm_request" && e["session_id"] == subagent.as_str()
        })
        .collect();
    assert_eq!(sub_requests.len(), 2, "{sub_requests:#?}");
    for r in &sub_requests {
        assert_eq!(
            r["payload"]["parent_span_id"], agent_exec["payload"]["span_id"],
            "{r:#}"
        );
        assert_eq!(r["parent_session_id"], session.as_str());
    }

    // A refused permission ends the call: the tool span says it never ran (no hook does in
    // `claude -p`), and the wait shows as a permission warning, both on its tool_use_id.
    let denied = with_corr(&run, &format!("toolu_denied_{tag}"));
    let tool_end = denied
        .iter()
        .find(|e| e["source_event"] == "claude_code.tool")
        .unwrap_or_else(|| panic!("no tool span for the denied call: {denied:#?}"));
    assert_eq!(
        (&tool_end["status"], &tool_end["severity"]),
        (&json!("cancelled"), &json!("warn")),
        "{tool_end:#}"
    );
    let wait = denied
        .iter()
        .find(|e| e["source_event"] == "claude_code.tool.blocked_on_user")
        .expect("the permission wait");
    assert_eq!(wait["entity_type"], "permission");
    assert_eq!(wait["severity"], "warn");
    assert!(kinds(&denied).contains("PreToolUse"), "{denied:#?}");

    // Compaction: the hooks' task from Pre to Post, OTel's record of it, a session restarted.
    let compaction: Vec<&Value> = run
        .iter()
        .filter(|e| e["entity_id"] == "compaction")
        .collect();
    let states: BTreeSet<(String, String)> = compaction
        .iter()
        .map(|e| {
            (
                e["source_event"].as_str().unwrap_or("").to_string(),
                e["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for needed in [
        ("PreCompact", "running"),
        ("PostCompact", "success"),
        ("claude_code.compaction", "success"),
    ] {
        assert!(
            states.contains(&(needed.0.to_string(), needed.1.to_string())),
            "{needed:?} not in {states:?}"
        );
    }
    assert!(
        compaction
            .iter()
            .all(|e| e["entity_type"] == "task" && e["session_id"] == session.as_str())
    );

    // Tasks: created on the session's list, then completed: one task, queued then done.
    let created = run
        .iter()
        .find(|e| e["source_event"] == "TaskCreated")
        .expect("TaskCreated");
    let completed = run
        .iter()
        .find(|e| e["source_event"] == "TaskCompleted")
        .expect("TaskCompleted");
    assert_eq!(
        (&created["entity_type"], &created["status"]),
        (&json!("task"), &json!("queued")),
        "{created:#}"
    );
    assert_eq!(completed["status"], "success", "{completed:#}");
    assert_eq!(created["entity_id"], completed["entity_id"]);
    assert_eq!(created["title"], "Task created: write tests");
    assert_eq!(completed["session_id"], session.as_str());

    // Each turn is joined to its prompt: hook, OTel log, transcript and span share its id.
    let prompts: BTreeSet<String> = run
        .iter()
        .filter(|e| e["source_event"] == "UserPromptSubmit")
        .map(|e| e["entity_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(prompts.len(), 3, "{prompts:?}");
    for prompt in &prompts {
        let seen = kinds(&with_corr(&run, prompt));
        for needed in [
            "UserPromptSubmit",
            "claude_code.user_prompt",
            "transcript.user",
            "claude_code.interaction",
        ] {
            assert!(
                seen.contains(needed),
                "prompt {prompt}: no {needed} in {seen:?}"
            );
        }
    }
    assert_eq!(turn_one["status"], "success");
    assert_eq!(turn_one["entity_type"], "prompt");

    // Cost once: one usage event per model request, and the run's sums are the mock's tokens
    // and Claude Code's own cost.
    let mut usage: BTreeMap<String, usize> = BTreeMap::new();
    for e in run.iter().filter(|e| {
        e["metrics"]["input_tokens"].is_number() || e["metrics"]["cost_usd"].is_number()
    }) {
        *usage
            .entry(e["correlation_id"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    let requests: BTreeMap<String, usize> = answered.iter().map(|(r, ..)| (r.clone(), 1)).collect();
    assert_eq!(usage, requests, "usage events per request");
    let summary = &hub.get(&format!("/api/v1/runs/{session}"))["run"];
    let (input, output) = answered
        .iter()
        .fold((0, 0), |(i, o), (_, a, b, _)| (i + a, o + b));
    assert_eq!(
        summary["input_tokens"].as_f64(),
        Some(input as f64),
        "{summary:#}"
    );
    assert_eq!(
        summary["output_tokens"].as_f64(),
        Some(output as f64),
        "{summary:#}"
    );
    // The subagent's own requests are counted in its session (OTel names only its type; the
    // hooks' start and stop make it one subagent), and roll up into the root's total.
    let sub_input: u64 = answered.iter().filter(|a| a.3).map(|a| a.1).sum();
    let child = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["session_id"] == subagent.as_str())
        .unwrap();
    assert_eq!(
        child["input_tokens"].as_f64(),
        Some(sub_input as f64),
        "{child:#}"
    );
    assert_eq!(child["agent"], "general-purpose", "{child:#}");
    // The run is titled by its first prompt, not by a turn's span or a bookkeeping row.
    assert_eq!(
        summary["title"], "Prompt: MAIN-TASK: run echo, then a subagent",
        "{summary:#}"
    );
    let cost = summary["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - claude_cost).abs() < 1e-9,
        "run cost {cost} != Claude Code's {claude_cost}"
    );

    // Bookkeeping is kept, at debug, and nothing of it above.
    let bookkeeping = |e: &&Value| {
        let name = e["source_event"].as_str().unwrap_or("");
        name.contains("hook_registered")
            || name.contains("hook_execution")
            || name == "PostToolBatch"
            || name == "MessageDisplay"
    };
    let kept: Vec<&Value> = run.iter().filter(bookkeeping).collect();
    assert!(kept.len() >= 30, "bookkeeping rows kept: {}", kept.len());
    for e in &kept {
        assert_eq!(e["severity"], "debug", "{e:#}");
    }
    // Nothing of the session is left to the generic "Claude Code <name>" row at info.
    let generic: Vec<&str> = run
        .iter()
        .filter(|e| e["severity"] == "info")
        .filter(|e| {
            let name = e["source_event"].as_str().unwrap_or("");
            let name = name.strip_prefix("claude_code.").unwrap_or(name);
            e["title"] == format!("Claude Code {name}")
        })
        .filter_map(|e| e["title"].as_str())
        .collect();
    assert!(generic.is_empty(), "unmapped info rows: {generic:?}");
    eprintln!(
        "{} events in the run, {} of them debug bookkeeping; {:?} in all",
        run.len(),
        kept.len(),
        started.elapsed()
    );
    hub.stop();
}
