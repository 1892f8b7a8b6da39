//! The real Gemini CLI (`@google/gemini-cli` from npm, pinned in the test kit) runs a prompt
//! offline against a mock of the Gemini API served here (`GOOGLE_GEMINI_BASE_URL`, which the
//! CLI honours with `GEMINI_API_KEY`): the model asks for `run_shell_command`, the CLI runs it
//! (`--yolo`), and the model answers. sightline reads the session from the CLI's session log
//! (the `gemini-sessions` source) and its OpenTelemetry export (the `telemetry` block
//! `sightline install gemini` writes, pointed at the hub), and the test checks one run with its
//! prompt, the tool call with its command and result, and the tokens and cost of both requests
//! once.
//!
//! The package is installed by the test kit with npm into `$SIGHTLINE_TEST_CACHE`; when it
//! cannot be installed or run, the test fails saying so.

mod common;

use std::time::Duration;

use axum::response::IntoResponse;
use common::TestHub;
use common::peers::{gemini_command, gemini_script};
use serde_json::{Value, json};

/// The Gemini API: `streamGenerateContent?alt=sse` answers one SSE chunk (a function call
/// before the tool ran, text after); anything else (`generateContent`, `countTokens`) a small
/// JSON answer.
async fn gemini_api(uri: axum::http::Uri, body: axum::body::Bytes) -> axum::response::Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let after_tool = request["contents"].as_array().is_some_and(|c| {
        c.iter().any(|m| {
            m["parts"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p.get("functionResponse").is_some()))
        })
    });
    let path = uri.path();
    let (parts, usage) = if after_tool {
        (
            json!([{"text": "It printed hello-from-gemini."}]),
            json!({"promptTokenCount": 80, "candidatesTokenCount": 6, "totalTokenCount": 86, "cachedContentTokenCount": 30}),
        )
    } else {
        (
            json!([{"functionCall": {"name": "run_shell_command",
                "args": {"command": "echo hello-from-gemini", "description": "say hello"}}}]),
            json!({"promptTokenCount": 60, "candidatesTokenCount": 9, "totalTokenCount": 69}),
        )
    };
    // The model answers as the one asked for (`/v1beta/models/<model>:streamGenerateContent`).
    let model = path
        .rsplit('/')
        .next()
        .and_then(|m| m.split(':').next())
        .unwrap_or("gemini-2.5-flash");
    let answer = json!({"candidates": [{"content": {"role": "model", "parts": parts},
        "finishReason": "STOP", "index": 0}], "usageMetadata": usage,
        "modelVersion": model, "responseId": "r1"});
    if path.ends_with(":streamGenerateContent") {
        axum::response::Response::builder()
            .header("content-type", "text/event-stream")
            .body(axum::body::Body::from(format!("data: {answer}\r\n\r\n")))
            .unwrap()
    } else if path.ends_with(":countTokens") {
        axum::Json(json!({"totalTokens": 10})).into_response()
    } else {
        // A non-streamed call (a next-speaker or routing check): a plain answer.
        axum::Json(json!({"candidates": [{"content": {"role": "model", "parts": [{"text":
            "{\"reasoning\": \"done\", \"next_speaker\": \"user\"}"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}}))
        .into_response()
    }
}

#[test]
fn real_gemini_prompt_with_a_shell_call() {
    // Installs it on first use (or fails saying why).
    let _ = gemini_script();
    let mut hub = TestHub::start();
    let api = hub.runtime.block_on(async {
        let app = axum::Router::new().fallback(axum::routing::post(gemini_api));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let work = dir.path().join("work");
    std::fs::create_dir_all(home.join(".gemini")).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    // What `sightline install gemini` writes, and the API-key auth the mock needs.
    std::fs::write(
        home.join(".gemini/settings.json"),
        json!({"telemetry": {"enabled": true, "target": "local", "otlpEndpoint": hub.url,
                "otlpProtocol": "http", "logPrompts": true},
            "security": {"auth": {"selectedType": "gemini-api-key"}}})
        .to_string(),
    )
    .unwrap();
    let mut config = hub.config();
    config.gemini_dir = home.join(".gemini");
    hub.start_adapters(
        sightline_sources::REGISTRY,
        &config,
        &[sightline_sources::gemini::NAME],
    );

    let started = std::time::Instant::now();
    // One prompt through one shell call, answered by `model`.
    let run = |model: &str| {
        let out = gemini_command(&home, &work, &format!("http://{api}"))
            .args(["-p", "run the hello command", "--yolo", "-m", model])
            .output()
            .unwrap_or_else(|e| panic!("GEMINI CLI TEST CANNOT RUN: starting node failed: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("It printed hello-from-gemini."),
            "gemini -m {model} failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
    };
    run("gemini-2.5-flash");
    let logs = sightline_sources::session_files::jsonl_files(&home.join(".gemini/tmp"));
    assert_eq!(logs.len(), 1, "one session log: {logs:?}");
    let header = std::fs::read_to_string(&logs[0]).unwrap();
    let session: Value = serde_json::from_str(header.lines().next().unwrap()).unwrap();
    let session = session["sessionId"].as_str().unwrap().to_string();

    let events = hub.wait_for(
        "the session log's and the telemetry's events",
        Duration::from_secs(30),
        |events| {
            let has = |f: &dyn Fn(&Value) -> bool| events.iter().any(f);
            has(&|e| e["source_event"] == "toolCall" && e["status"] == "success")
                && has(&|e| e["source_event"] == "gemini_cli.user_prompt")
                && has(&|e| e["source_event"] == "gemini_cli.tool_call")
                && has(&|e| e["title"] == "Assistant: It printed hello-from-gemini.")
        },
    );
    let ours: Vec<&Value> = events.iter().filter(|e| e["source"] == "gemini").collect();
    for e in &ours {
        assert_eq!(e["run_id"], session.as_str(), "one run: {e}");
    }
    let tool = ours
        .iter()
        .find(|e| e["source_event"] == "toolCall")
        .unwrap();
    assert_eq!(tool["title"], "run_shell_command: echo hello-from-gemini");
    assert_eq!(tool["entity_type"], "tool");
    assert!(
        tool["payload"]["result"]
            .as_str()
            .unwrap()
            .contains("hello-from-gemini"),
        "{tool}"
    );
    let prompts: Vec<&&Value> = ours
        .iter()
        .filter(|e| e["entity_type"] == "prompt")
        .collect();
    assert_eq!(
        prompts.len(),
        2,
        "one from the log, one from telemetry: {prompts:?}"
    );
    assert!(
        prompts
            .iter()
            .all(|p| p["title"] == "Prompt: run the hello command")
    );

    // Tokens once per message: (60-0) + (80-30) uncached in, 30 cached, 15 out.
    let r = hub.get(&format!("/api/v1/runs/{session}"))["run"].clone();
    assert_eq!(r["input_tokens"], 110.0, "{r}");
    assert_eq!(r["cache_read_tokens"], 30.0, "{r}");
    assert_eq!(r["output_tokens"], 15.0, "{r}");
    // Cost once per message at gemini-2.5-flash's prices (0.30 in / 0.03 cached / 2.50 out per
    // million): 60·0.30 + 9·2.50 = 40.5 µ$, then 50·0.30 + 30·0.03 + 6·2.50 = 30.9 µ$.
    let cost = r["cost_usd"]
        .as_f64()
        .unwrap_or_else(|| panic!("no cost: {r}"));
    assert!((cost - 0.0000714).abs() < 1e-12, "{cost}: {r}");
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "the whole run took {:?}",
        started.elapsed()
    );

    // A model the price table does not know: its tokens are counted, its cost is not guessed.
    run("gemini-mock-unpriced");
    let logs = sightline_sources::session_files::jsonl_files(&home.join(".gemini/tmp"));
    let other = logs
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| serde_json::from_str::<Value>(t.lines().next()?).ok())
        .filter_map(|h| h["sessionId"].as_str().map(str::to_string))
        .find(|s| *s != session)
        .unwrap_or_else(|| panic!("a second session log: {logs:?}"));
    let usage = hub.wait_for(
        "the unpriced model's two messages",
        Duration::from_secs(30),
        |events| {
            events
                .iter()
                .filter(|e| e["source_event"] == "tokens" && e["session_id"] == other.as_str())
                .count()
                >= 2
        },
    );
    let unpriced: Vec<&Value> = usage
        .iter()
        .filter(|e| e["source_event"] == "tokens" && e["session_id"] == other.as_str())
        .collect();
    assert!(
        unpriced
            .iter()
            .all(|e| e["payload"]["model"] == "gemini-mock-unpriced"
                && e["metrics"].get("cost_usd").is_none()
                && e["payload"]["cost_note"].is_string()
                && e["metrics"]["output_tokens"].as_f64() > Some(0.0)),
        "{unpriced:?}"
    );
    let r = hub.get(&format!("/api/v1/runs/{other}"))["run"].clone();
    assert_eq!(r["input_tokens"], 110.0, "{r}");
    assert!(
        r["cost_usd"].as_f64().unwrap_or(0.0) == 0.0,
        "no cost for an unknown model: {r}"
    );
    hub.stop();
}
