//! The secret corpus through every ingest path of a real hub — canonical events over HTTP and
//! WebSocket, Docker telemetry, Claude Code hooks, the OpenCode plugin, OTLP, workflow updates,
//! and a Claude Code transcript read by the background source — then looked for everywhere it
//! could have landed: every stored event as the API exports it, search, and the bytes of the
//! database, its WAL and its full-text file. Not one value may survive.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use sightline_testkit::secrets::{SCRIPTS, Secret, corpus};
use tokio_tungstenite::tungstenite::Message;

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
    let ws_url = format!("{}/ws", hub.url.replace("http://", "ws://"));
    hub.runtime.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
        ws.send(Message::text(
            json!({"type": "publish", "id": 1, "events": events}).to_string(),
        ))
        .await
        .unwrap();
        use futures_util::StreamExt;
        loop {
            let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "ack" {
                    assert_eq!(v["seqs"].as_array().unwrap().len(), events_len(&v));
                    break;
                }
                assert_ne!(v["type"], "error", "{v}");
            }
        }
    });
}

fn events_len(ack: &Value) -> usize {
    ack["seqs"].as_array().map_or(0, |a| a.len())
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
    hub.start_adapters(
        sightline_sources::REGISTRY,
        &config,
        &[sightline_sources::claude::transcript::NAME],
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
    hub.stop_adapters();

    // Everything stored, as export writes it (payloads decompressed), and as search finds it.
    let (status, export) = get_text(&format!("{}/api/v1/export?format=ndjson", hub.url));
    assert_eq!(status, 200);
    let stored = export.lines().count();
    assert!(stored >= 9 * n, "every path stored its events: {stored}");
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
