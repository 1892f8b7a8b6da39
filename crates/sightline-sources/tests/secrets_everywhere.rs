//! The secret corpus through every ingest path of a real hub — canonical events over HTTP and
//! WebSocket, Docker telemetry, Claude Code hooks, the OpenCode plugin, OTLP, workflow updates,
//! a Claude Code transcript and OpenCode's server event stream read by the background sources — then looked for everywhere it
//! could have landed: every stored event as the API exports it, search, and the bytes of the
//! database, its WAL and its full-text file. Not one value may survive.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use sightline_testkit::secrets::{SCRIPTS, Secret, corpus};

/// Each secret in its surroundings, in one of the scripts (cycling), with a space before it so
/// command-line secrets stand at a word boundary.
fn texts(secrets: &[Secret]) -> Vec<String> {
    secrets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (_, before, after) = SCRIPTS[i % SCRIPTS.len()];
            format!("{before} {} {after}", s.text)
        })
        .collect()
}

fn ws_publish(hub: &TestHub, events: Vec<Value>) {
    let n = events.len();
    let ack = hub.runtime.block_on(async {
        let mut ws = hub.ws().await;
        ws_send(
            &mut ws,
            json!({"type": "publish", "id": 1, "events": events}),
        )
        .await;
        ws_until(&mut ws, &["ack", "error"]).await
    });
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["seqs"].as_array().map_or(0, |a| a.len()), n);
}

#[test]
fn no_secret_of_the_corpus_is_stored_by_any_path() {
    let secrets = corpus();
    let texts = texts(&secrets);
    let mut hub = TestHub::start();
    let post_ok = |path: &str, ct: &str, body: String| {
        let (status, answer) = post(&format!("{}{path}", hub.url), ct, body);
        assert!(status == 200 || status == 202, "{path}: {status} {answer}");
    };

    // Canonical events over HTTP: the secret in every free-text place and nested keys.
    let events: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"source": "custom", "source_event": "note", "entity_type": "log", "run_id": "http",
            "title": t, "summary": t, "tags": [t],
            "payload": {"text": t, "nested": {"deeper": [t, {"value": t}]}, "env": format!("DEBUG=1\n{t}"), "i": i}}))
        .collect();
    post_ok(
        "/api/v1/events",
        "application/json",
        json!(events).to_string(),
    );

    // Over the WebSocket.
    let ws_events: Vec<Value> = texts
        .iter()
        .map(|t| json!({"source": "custom", "source_event": "ws", "entity_type": "log", "run_id": "ws", "title": t, "payload": {"t": t}}))
        .collect();
    ws_publish(&hub, ws_events);

    // Docker telemetry.
    let telemetry: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": format!("tel-{i}"), "type": "tool_call", "agentId": "a", "sessionId": "docker",
            "toolName": "Bash", "data": {"command": t, "output": t}}))
        .collect();
    post_ok(
        "/telemetry",
        "application/json",
        json!(telemetry).to_string(),
    );

    // Claude Code hooks (one payload per request, as Claude Code posts them).
    for (i, t) in texts.iter().enumerate() {
        let payload = json!({"session_id": "hooks", "hook_event_name": "PreToolUse", "tool_name": "Bash",
            "tool_use_id": format!("toolu_{i}"), "tool_input": {"command": t, "description": t}, "cwd": "/tmp/p"});
        post_ok(
            "/api/v1/hooks/claude",
            "application/json",
            payload.to_string(),
        );
    }
    let prompts: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": format!("p{i}"), "ts": 1_763_700_000_000u64 + i as u64,
            "payload": {"session_id": "hooks", "hook_event_name": "UserPromptSubmit", "prompt": t}})
            .to_string()
        })
        .collect();
    post_ok(
        "/api/v1/hooks/claude",
        "application/x-ndjson",
        prompts.join("\n"),
    );

    // The OpenCode plugin.
    let opencode: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"type": "message.part.updated", "properties": {"part": {"id": format!("prt_{i}"),
            "sessionID": "ses_oc", "messageID": format!("msg_{i}"), "type": "text", "text": t,
            "time": {"start": 1_763_700_000_000u64, "end": 1_763_700_000_500u64}}}})
        })
        .collect();
    post_ok(
        "/api/v1/hooks/opencode",
        "application/json",
        json!(opencode).to_string(),
    );

    // OTLP logs and spans (JSON encoding): attribute values and bodies.
    let records: Vec<Value> = texts
        .iter()
        .map(|t| json!({"timeUnixNano": "1763700000000000000", "body": {"stringValue": t},
            "attributes": [{"key": "prompt", "value": {"stringValue": t}}, {"key": "session.id", "value": {"stringValue": "otlp"}}]}))
        .collect();
    post_ok(
        "/v1/logs",
        "application/json",
        json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
            "scopeLogs": [{"scope": {"name": "s"}, "logRecords": records}]}]})
        .to_string(),
    );
    let spans: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"traceId": "5b8efff798038103d269b633813fc60c", "spanId": format!("{:016x}", i + 1),
            "name": "execute_tool", "startTimeUnixNano": "1763700000000000000", "endTimeUnixNano": "1763700001000000000",
            "attributes": [{"key": "gen_ai.tool.call.arguments", "value": {"stringValue": t}}]}))
        .collect();
    post_ok(
        "/v1/traces",
        "application/json",
        json!({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"scope": {"name": "s"}, "spans": spans}]}]})
            .to_string(),
    );

    // Workflow updates.
    let updates: Vec<Value> = texts
        .iter()
        .map(|t| json!({"type": "log", "data": {"message": t, "level": "info"}}))
        .collect();
    post_ok(
        "/api/v1/workflows/wf-secrets/updates",
        "application/json",
        json!(updates).to_string(),
    );

    // OpenCode's server event stream (`GET /event`, Server-Sent Events), read by the
    // background source from a small stand-in server that speaks its format.
    let sse_body: String = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let ev = json!({"type": "message.part.updated", "properties": {"part": {"id": format!("prt_sse_{i}"),
                "sessionID": "ses_sse", "messageID": format!("msg_sse_{i}"), "type": "text", "text": t,
                "time": {"start": 1_763_700_000_000u64, "end": 1_763_700_000_500u64}}}});
            format!("data: {ev}\n\n")
        })
        .collect();
    let opencode_url = hub.runtime.block_on(async move {
        let app = axum::Router::new()
            .route(
                "/session",
                axum::routing::get(|| async { axum::Json(json!([])) }),
            )
            .route(
                "/event",
                axum::routing::get(move || {
                    let body = sse_body.clone();
                    async move {
                        axum::response::Response::builder()
                            .header("content-type", "text/event-stream")
                            .body(axum::body::Body::from(body))
                            .unwrap()
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    });

    // A Claude Code transcript, read by the background source.
    let config = hub.config();
    let dir = config.claude_dir.join("projects").join("-tmp-secret");
    std::fs::create_dir_all(&dir).unwrap();
    let lines: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"type": "user", "uuid": format!("00000000-0000-0000-0000-{i:012}"), "parentUuid": null,
            "timestamp": "2026-11-21T10:00:00.000Z", "message": {"role": "user", "content": t},
            "sessionId": "transcript-secrets", "cwd": "/tmp/secret"}).to_string())
        .collect();
    std::fs::write(
        dir.join("transcript-secrets.jsonl"),
        lines.join("\n") + "\n",
    )
    .unwrap();
    let mut config = config;
    config.opencode_url = opencode_url;
    hub.start_adapters(
        sightline_sources::REGISTRY,
        &config,
        &[
            sightline_sources::claude::transcript::NAME,
            sightline_sources::opencode::NAME,
        ],
    );
    let n = texts.len();
    let started = std::time::Instant::now();
    loop {
        let got = hub.get("/api/v1/search?sessions=transcript-secrets&limit=1000")["events"]
            .as_array()
            .map_or(0, |a| a.len());
        if got >= n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the transcript gave {got} of {n} events"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    loop {
        let got = hub.get("/api/v1/search?sessions=ses_sse&limit=1000")["events"]
            .as_array()
            .map_or(0, |a| a.len());
        if got >= n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the OpenCode stream gave {got} of {n} events"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    hub.stop_adapters();

    // Everything stored, as export writes it (payloads decompressed), and as search finds it.
    let (status, export) = get_text(&format!("{}/api/v1/export?format=ndjson", hub.url));
    assert_eq!(status, 200);
    let stored = export.lines().count();
    assert!(stored >= 10 * n, "every path stored its events: {stored}");
    let mut leaks = Vec::new();
    for s in &secrets {
        for needle in &s.needles {
            if export.contains(needle.as_str()) {
                leaks.push(format!("{}: `{needle}` in an exported event", s.label));
            }
        }
    }
    // The files: database, WAL and the full-text index (which holds plain text).
    hub.stop();
    let mut bytes = hub.db_bytes();
    for suffix in ["-fts", "-fts-wal"] {
        let mut p = hub.db.clone().into_os_string();
        p.push(suffix);
        bytes.extend(std::fs::read(std::path::PathBuf::from(p)).unwrap_or_default());
    }
    for s in &secrets {
        for needle in &s.needles {
            if needle.len() >= 8 && contains(&bytes, needle) {
                leaks.push(format!("{}: `{needle}` in the database files", s.label));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} of {} secrets leaked:\n{}",
        leaks.len(),
        secrets.len(),
        leaks.join("\n")
    );
}
