//! Secrets of each kind, planted in nested payloads of each source, never reach the database
//! file (main file, WAL and shared memory are read as bytes).

mod common;

use std::time::Duration;

use common::{TestHub, contains, post};
use serde_json::json;

/// (kind, the text planted, the part that must not be on disk)
const SECRETS: &[(&str, &str, &str)] = &[
    (
        "bearer",
        "Authorization: Bearer tok3nVALUEabcdefgh",
        "tok3nVALUEabcdefgh",
    ),
    (
        "openai key",
        "sk-proj-SECRETabcdefghijklmnop12",
        "SECRETabcdefghijklmnop12",
    ),
    (
        "anthropic key",
        "sk-ant-api03-SECRETqrstuvwxyz0123456",
        "SECRETqrstuvwxyz0123456",
    ),
    (
        "github token",
        "ghp_SECRETabcdefghijklmnopqrstuv012345",
        "SECRETabcdefghijklmnopqrstuv012345",
    ),
    ("aws key id", "AKIASECRETEXAMPLE7QZ", "AKIASECRETEXAMPLE7QZ"),
    (
        "password",
        "postgres://u:x@h/db password=Hunter2SECRET",
        "Hunter2SECRET",
    ),
    (
        "private key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktSECRET\n-----END OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktSECRET",
    ),
    (
        "env var",
        "export STRIPE_SECRET_KEY=rk_live_SECRETzzz999",
        "rk_live_SECRETzzz999",
    ),
    ("cookie", "Cookie: session=SECRETcookie42", "SECRETcookie42"),
];

fn nested(tag: &str) -> serde_json::Value {
    let texts: Vec<String> = SECRETS
        .iter()
        .map(|(_, t, _)| format!("{tag} {t}"))
        .collect();
    json!({"deep": {"list": [{"text": texts}], "env": {"GITHUB_TOKEN": "ghp_SECRETenvValue000000000000000000", "db_password": "SECRETpw-by-key"}}})
}

#[test]
fn no_secret_from_any_source_reaches_the_database_file() {
    let mut hub = TestHub::start();
    // Claude Code hook.
    let mut hook = json!({"session_id": "s-red", "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_use_id": "toolu_red",
        "tool_input": {"command": "curl -H 'Authorization: Bearer tok3nVALUEabcdefgh' https://x"}});
    hook["tool_input"]["extra"] = nested("hook");
    assert_eq!(hub.post_json("/api/v1/hooks/claude", &hook).0, 202);
    // OpenCode plugin.
    let oc = json!({"payload": {"id": "evt_red", "type": "message.part.updated", "properties": {"part": {"id": "prt_red", "sessionID": "ses_red", "type": "tool", "callID": "c", "tool": "bash",
        "state": {"status": "running", "input": nested("opencode")}}}}});
    assert_eq!(hub.post_json("/api/v1/hooks/opencode", &oc).0, 202);
    // Docker-agent telemetry.
    let tel = json!({"id": "t-red", "type": "tool_call", "agentId": "a", "timestamp": 1795255200000i64, "toolName": "bash", "data": nested("docker")});
    assert_eq!(hub.post_json("/telemetry", &tel).0, 202);
    // OTLP (JSON): a log record with the secrets in a nested kvlist attribute.
    let kv: Vec<serde_json::Value> = SECRETS
        .iter()
        .enumerate()
        .map(|(i, (_, t, _))| json!({"key": format!("k{i}"), "value": {"stringValue": t}}))
        .collect();
    let otlp = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "otlp"}, "attributes": [
        {"key": "nested", "value": {"kvlistValue": {"values": kv}}}, {"key": "api_key", "value": {"stringValue": "SECRETpw-by-key"}}]}]}]}]});
    assert_eq!(
        post(
            &format!("{}/v1/logs", hub.url),
            "application/json",
            otlp.to_string()
        )
        .0,
        200
    );
    // Transcript and log file, through the background adapters.
    let config = {
        let mut c = hub.config();
        c.log_files = vec![hub.dir.path().join("agent.log")];
        c
    };
    let transcript_dir = config.claude_dir.join("projects/-p");
    std::fs::create_dir_all(&transcript_dir).unwrap();
    let line = json!({"type": "assistant", "uuid": "u-red", "sessionId": "s-red", "timestamp": "2026-11-21T10:00:00Z", "requestId": "r",
        "message": {"id": "m", "model": "claude-sonnet-4-5", "content": [{"type": "tool_use", "id": "toolu_tx", "name": "Bash", "input": nested("transcript")}], "usage": {"input_tokens": 1}}});
    std::fs::write(transcript_dir.join("s-red.jsonl"), format!("{line}\n")).unwrap();
    let log_lines: Vec<String> = SECRETS
        .iter()
        .map(|(_, t, _)| format!("ERROR tool Bash failed: {}", t.replace('\n', " ")))
        .collect();
    std::fs::write(&config.log_files[0], log_lines.join("\n") + "\n").unwrap();
    hub.start_adapters(
        sightline_sources::REGISTRY,
        &config,
        &["claude-transcripts", "logs"],
    );
    hub.wait_for("every source", Duration::from_secs(20), |e| {
        e.iter().any(|e| e["source_event"] == "transcript.tool_use")
            && e.iter().filter(|e| e["source_event"] == "log.line").count() == SECRETS.len()
    });
    hub.stop();
    let disk = hub.db_bytes();
    assert!(
        contains(&disk, "toolu_red") && contains(&disk, "prt_red"),
        "the events are on disk"
    );
    for (kind, _, secret) in SECRETS {
        assert!(
            !contains(&disk, secret),
            "{kind} secret `{secret}` reached the database file"
        );
    }
    for secret in ["ghp_SECRETenvValue", "SECRETpw-by-key"] {
        assert!(
            !contains(&disk, secret),
            "`{secret}` reached the database file"
        );
    }
}
