//! The real Codex CLI (`@openai/codex` from npm, pinned in the test kit) runs `codex exec`
//! offline against a mock of the OpenAI Responses API served here: one turn in which the model
//! asks for a shell command (`exec_command`), Codex runs it, and the model answers. sightline
//! reads the session from Codex's rollout (the `codex-rollouts` source) and from its
//! OpenTelemetry logs (Codex's `[otel]` exporter pointed at the hub's `/v1/logs`), and the test
//! checks what a user sees: one run, its turn, the tool call with its command and output joined
//! across both routes, and the tokens and cost of both requests counted once (the mock model is
//! named `gpt-5.1-codex`, a priced one).
//!
//! The package is installed by the test kit with npm into `$SIGHTLINE_TEST_CACHE`; when it
//! cannot be installed or run, the test fails saying so.

mod common;

use std::time::Duration;

use common::TestHub;
use common::peers::{codex_binary, codex_command, codex_mock_provider};
use serde_json::{Value, json};

/// One Responses API stream: `response.created`, the output items, `response.completed` with
/// usage. Before the tool ran the model asks for `echo hello-from-codex`; after, it answers.
async fn responses(axum::Json(body): axum::Json<Value>) -> axum::response::Response {
    let after_tool = body["input"]
        .as_array()
        .is_some_and(|items| items.iter().any(|i| i["type"] == "function_call_output"));
    let (id, items, usage) = if after_tool {
        (
            "resp_2",
            vec![
                json!({"type": "message", "role": "assistant", "id": "msg_answer",
                "content": [{"type": "output_text", "text": "It printed hello-from-codex."}]}),
            ],
            json!({"input_tokens": 300, "input_tokens_details": {"cached_tokens": 200},
                "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 307}),
        )
    } else {
        (
            "resp_1",
            vec![
                json!({"type": "function_call", "id": "fc_1", "call_id": "call_sightline_1",
                "name": "exec_command", "arguments": json!({"cmd": "echo hello-from-codex"}).to_string()}),
            ],
            json!({"input_tokens": 250, "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 5}, "total_tokens": 270}),
        )
    };
    let mut sse = String::new();
    let mut send = |kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        sse.push_str(&format!("event: {kind}\ndata: {data}\n\n"));
    };
    send("response.created", json!({"response": {"id": id}}));
    for (i, item) in items.iter().enumerate() {
        send(
            "response.output_item.added",
            json!({"output_index": i, "item": item}),
        );
        if item["type"] == "message" {
            send(
                "response.output_text.delta",
                json!({"item_id": item["id"], "output_index": i, "content_index": 0,
                    "delta": item["content"][0]["text"]}),
            );
        }
        send(
            "response.output_item.done",
            json!({"output_index": i, "item": item}),
        );
    }
    send(
        "response.completed",
        json!({"response": {"id": id, "usage": usage}}),
    );
    axum::response::Response::builder()
        .header("content-type", "text/event-stream")
        .body(axum::body::Body::from(sse))
        .unwrap()
}

#[test]
fn real_codex_exec_turn_with_a_shell_call() {
    // Installs it on first use (or fails saying why).
    let _ = codex_binary();
    let mut hub = TestHub::start();
    let model = hub.runtime.block_on(async {
        let app = axum::Router::new().route("/v1/responses", axum::routing::post(responses));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let dir = tempfile::tempdir().unwrap();
    let codex_home = dir.path().join("codex-home");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    // What `sightline install codex` writes for telemetry, plus the mock provider.
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            r#"model = "gpt-5.1-codex"
model_provider = "mock"
approval_policy = "never"
sandbox_mode = "danger-full-access"

{provider}
[otel]
log_user_prompt = true
exporter = {{ otlp-http = {{ endpoint = "{hub}/v1/logs", protocol = "binary" }} }}
"#,
            hub = hub.url,
            provider = codex_mock_provider(model),
        ),
    )
    .unwrap();
    let mut config = hub.config();
    config.codex_dir = codex_home.clone();
    hub.start_adapters(
        sightline_sources::REGISTRY,
        &config,
        &[sightline_sources::codex::NAME],
    );

    let started = std::time::Instant::now();
    let out = codex_command(&codex_home, &work)
        .args(["exec", "--skip-git-repo-check", "run the hello command"])
        .output()
        .unwrap_or_else(|e| panic!("CODEX TEST CANNOT RUN: starting codex failed: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("It printed hello-from-codex."),
        "codex exec failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // The rollout names the session; the run is that session.
    let rollout = sightline_sources::session_files::jsonl_files(&codex_home.join("sessions"));
    assert_eq!(rollout.len(), 1, "one rollout: {rollout:?}");
    let session = sightline_sources::codex::session_from_file_name(&rollout[0]).unwrap();

    let events = hub.wait_for(
        "the rollout's and the telemetry's events",
        Duration::from_secs(30),
        |events| {
            let has = |f: &dyn Fn(&Value) -> bool| events.iter().any(f);
            has(&|e| e["source_event"] == "task_complete" && e["status"] == "success")
                && has(&|e| e["source_event"] == "codex.tool_result")
                && has(&|e| e["source_event"] == "codex.user_prompt")
                && events
                    .iter()
                    .filter(|e| e["source_event"] == "token_usage")
                    .count()
                    == 2
        },
    );
    for e in &events {
        assert_eq!(e["source"], "codex", "{e}");
        // Codex's own diagnostics ("flushing OTEL metrics") name no conversation: debug rows
        // outside any run. Everything else is the session's one run.
        if e["source_event"] == "codex.log" {
            assert_eq!(e["severity"], "debug", "{e}");
        } else {
            assert_eq!(e["run_id"], session.as_str(), "one run: {e}");
        }
    }

    // The turn: started, then done with its duration and last message.
    let turn: Vec<&Value> = events
        .iter()
        .filter(|e| e["entity_type"] == "task")
        .collect();
    assert_eq!(turn.len(), 2, "{turn:?}");
    assert_eq!(turn[0]["status"], "running");
    assert_eq!(turn[1]["status"], "success");
    assert_eq!(turn[0]["entity_id"], turn[1]["entity_id"]);
    assert_eq!(turn[1]["summary"], "It printed hello-from-codex.");

    // The tool call: one lifecycle on the call id, from the rollout (call, command execution,
    // output) and the telemetry (decision, result), with the command and its real output.
    let tool: Vec<&Value> = events
        .iter()
        .filter(|e| e["correlation_id"] == "call_sightline_1")
        .collect();
    let kinds: Vec<&str> = tool
        .iter()
        .map(|e| e["source_event"].as_str().unwrap())
        .collect();
    for kind in [
        "function_call",
        "CommandExecution",
        "function_call_output",
        "codex.tool_result",
        "codex.tool_decision",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let exec = tool
        .iter()
        .find(|e| e["source_event"] == "CommandExecution")
        .unwrap();
    assert_eq!(exec["title"], "exec_command: echo hello-from-codex");
    assert_eq!(exec["status"], "success");
    assert_eq!(exec["metrics"]["exit_code"], 0);
    assert_eq!(exec["payload"]["output"], "hello-from-codex\n");
    let result = tool
        .iter()
        .find(|e| e["source_event"] == "codex.tool_result")
        .unwrap();
    assert_eq!(result["status"], "success");
    assert_eq!(result["title"], "exec_command: echo hello-from-codex");
    assert!(result["duration_ms"].as_f64().is_some(), "{result}");

    // The prompt, seen by both routes.
    let prompts: Vec<&Value> = events
        .iter()
        .filter(|e| e["entity_type"] == "prompt")
        .collect();
    assert!(
        prompts
            .iter()
            .all(|p| p["title"] == "Prompt: run the hello command"),
        "{prompts:?}"
    );
    assert_eq!(prompts.len(), 2, "one from the rollout, one from telemetry");

    // Tokens: both requests once (the rollout's `token_usage_record` and `token_count` are one
    // event each), cached input apart: (250-0) + (300-200) uncached in, 200 cached, 27 out.
    let run = hub.get(&format!("/api/v1/runs/{session}"));
    let r = &run["run"];
    assert_eq!(r["input_tokens"], 350.0, "{r}");
    assert_eq!(r["cache_read_tokens"], 200.0, "{r}");
    assert_eq!(r["output_tokens"], 27.0, "{r}");
    // Cost once per request, at gpt-5.1-codex's prices (1.25 in / 0.125 cached / 10 out per
    // million): 250·1.25 + 20·10 = 512.5 µ$, then 100·1.25 + 200·0.125 + 7·10 = 220 µ$.
    let cost = r["cost_usd"]
        .as_f64()
        .unwrap_or_else(|| panic!("no cost: {r}"));
    assert!((cost - 0.0007325).abs() < 1e-12, "{cost}: {r}");
    let usage: Vec<&Value> = events
        .iter()
        .filter(|e| e["source_event"] == "token_usage")
        .collect();
    assert!(
        usage
            .iter()
            .all(|e| e["payload"]["model"] == "gpt-5.1-codex"
                && e["payload"].get("cost_note").is_none()
                && e["metrics"]["cost_usd"].as_f64() > Some(0.0)),
        "{usage:?}"
    );
    assert_eq!(run["sessions"][0]["session_id"], session.as_str(), "{run}");
    // The turn ended: the rollout says the session waits for input. (The session row may
    // still read `running`: Codex flushes its telemetry at exit, after the rollout was read,
    // and the store lets any later-arriving work reopen a wait whatever its timestamp.)
    assert!(
        events.iter().any(|e| e["entity_type"] == "session"
            && e["status"] == "idle"
            && e["source_event"] == "task_complete"),
        "no idle after the turn"
    );
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "the whole run took {:?}",
        started.elapsed()
    );

    // A model the price table does not know: its tokens are counted, its cost is not guessed.
    let out = codex_command(&codex_home, &work)
        .args([
            "exec",
            "--skip-git-repo-check",
            "-m",
            "mock-model",
            "run the hello command",
        ])
        .output()
        .unwrap_or_else(|e| panic!("CODEX TEST CANNOT RUN: starting codex failed: {e}"));
    assert!(
        out.status.success(),
        "codex exec -m mock-model failed: {out:?}"
    );
    let rollouts = sightline_sources::session_files::jsonl_files(&codex_home.join("sessions"));
    let other = rollouts
        .iter()
        .filter_map(|p| sightline_sources::codex::session_from_file_name(p))
        .find(|s| *s != session)
        .unwrap_or_else(|| panic!("a second rollout: {rollouts:?}"));
    let unpriced = hub.wait_for(
        "the unknown model's two requests",
        Duration::from_secs(30),
        |events| {
            events
                .iter()
                .filter(|e| e["source_event"] == "token_usage" && e["session_id"] == other.as_str())
                .count()
                == 2
        },
    );
    // Each request says why it has no cost.
    for e in unpriced
        .iter()
        .filter(|e| e["source_event"] == "token_usage" && e["session_id"] == other.as_str())
    {
        assert!(e["metrics"].get("cost_usd").is_none(), "{e}");
        let note = e["payload"]["cost_note"].as_str().unwrap_or_default();
        assert!(note.contains("`mock-model`"), "{e}");
    }
    let r = hub.get(&format!("/api/v1/runs/{other}"))["run"].clone();
    assert_eq!(r["input_tokens"], 350.0, "{r}");
    assert!(
        r["cost_usd"].as_f64().unwrap_or(0.0) == 0.0,
        "no cost for an unknown model: {r}"
    );
    hub.stop();
}
