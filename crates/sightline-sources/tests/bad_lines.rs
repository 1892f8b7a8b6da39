//! A background source never dies on a line (issue 11): the transcript tailer, the OpenCode
//! JSONL tailer and the log parser, given real files in a temp dir with lines they cannot map
//! (not JSON, or mapping to an event validation refuses), record an error event for each
//! (severity `error`, the file and the byte offset, redacted), count it in health, move past it
//! and keep reading the lines after it — including lines appended later.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::TestHub;
use serde_json::{Value, json};

fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn errors_in_health(hub: &TestHub, name: &str) -> u64 {
    hub.adapter_health(name)
        .map_or(0, |a| a["errors"].as_u64().unwrap_or(0))
}

fn error_events(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["source_event"] == "source.error")
        .cloned()
        .collect()
}

/// Each error event names the file, says where in it, is an error, and holds no secret.
fn check_error_events(errors: &[Value], file: &Path, secret: &str) {
    for e in errors {
        assert_eq!(e["severity"], "error", "{e}");
        assert_eq!(e["payload"]["file"], file.to_string_lossy().as_ref(), "{e}");
        assert!(e["payload"]["offset"].is_u64(), "{e}");
        assert!(e["title"].as_str().unwrap().contains("byte"), "{e}");
        assert!(!e.to_string().contains(secret), "a secret leaked: {e}");
    }
}

#[test]
fn the_transcript_tailer_records_bad_lines_and_keeps_reading() {
    let mut hub = TestHub::start();
    let config = hub.config();
    let dir = config.claude_dir.join("projects").join("-tmp-bad");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sess-bad.jsonl");
    let secret = "hunter2hunter2";
    let prompt = |uuid: &str, session: &str, text: &str| {
        json!({"type": "user", "uuid": uuid, "sessionId": session,
            "timestamp": "2026-11-21T10:00:00Z", "message": {"content": text}})
        .to_string()
    };
    append(
        &file,
        &[
            prompt("u1", "sess-bad", "first prompt"),
            // Not JSON, with a secret in it.
            format!("{{\"type\": \"user\", \"password\": \"{secret}\", broken"),
            // JSON whose event validation refuses: a session id over 256 bytes.
            prompt("u2", &"s".repeat(300), "refused"),
            prompt("u3", "sess-bad", "second prompt"),
        ],
    );
    hub.start_adapters(
        sightline_sources::REGISTRY,
        &config,
        &["claude-transcripts"],
    );
    let events = hub.wait_for(
        "prompts and two error events",
        Duration::from_secs(20),
        |ev| {
            error_events(ev).len() == 2
                && ev.iter().filter(|e| e["entity_type"] == "prompt").count() == 2
        },
    );
    check_error_events(&error_events(&events), &file, secret);
    assert!(errors_in_health(&hub, "claude-transcripts") >= 2);
    // Still running: a line appended after the bad ones arrives.
    append(&file, &[prompt("u4", "sess-bad", "third prompt")]);
    hub.wait_for("the line after", Duration::from_secs(20), |ev| {
        ev.iter().filter(|e| e["entity_type"] == "prompt").count() == 3
    });
    // The checkpoint moved past the bad lines: after a restart nothing is read twice.
    hub.stop_adapters();
    let before = hub.events().len();
    hub.start_adapters(
        sightline_sources::REGISTRY,
        &config,
        &["claude-transcripts"],
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(hub.events().len(), before);
}

#[test]
fn the_opencode_jsonl_tailer_records_bad_lines_and_keeps_reading() {
    let mut hub = TestHub::start();
    let mut config = hub.config();
    let dir = hub.config().claude_dir.with_file_name("oc-files");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.jsonl");
    config.jsonl_paths = vec![dir.clone()];
    let secret = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz";
    let created = |evt: &str, sid: &str| {
        json!({"id": evt, "type": "session.created", "properties": {"info": {"id": sid, "title": "t"}}})
            .to_string()
    };
    append(
        &file,
        &[
            created("evt_1", "ses_ok1"),
            format!("{{not json {secret}"),
            created("evt_2", &"x".repeat(300)),
            created("evt_3", "ses_ok2"),
        ],
    );
    hub.start_adapters(sightline_sources::REGISTRY, &config, &["opencode-jsonl"]);
    let events = hub.wait_for(
        "sessions and two error events",
        Duration::from_secs(20),
        |ev| {
            error_events(ev).len() == 2
                && ev
                    .iter()
                    .filter(|e| e["source_event"] == "session.created")
                    .count()
                    == 2
        },
    );
    let errors = error_events(&events);
    check_error_events(&errors, &file, secret);
    assert!(errors.iter().all(|e| e["source"] == "opencode"));
    assert!(errors_in_health(&hub, "opencode-jsonl") >= 2);
    append(&file, &[created("evt_4", "ses_ok3")]);
    hub.wait_for("the line after", Duration::from_secs(20), |ev| {
        ev.iter()
            .filter(|e| e["source_event"] == "session.created")
            .count()
            == 3
    });
}

#[test]
fn the_log_parser_records_lines_it_cannot_map_and_keeps_reading() {
    let mut hub = TestHub::start();
    let mut config = hub.config();
    let dir = hub.config().claude_dir.with_file_name("logs");
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("agent.log");
    // A file name so long that its run id (`log:<name>`) is over 256 bytes: every line of it
    // that matters maps to an event validation refuses.
    let bad = dir.join(format!("{}.log", "a".repeat(250)));
    let secret = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    append(&good, &["ERROR first failure".into()]);
    append(
        &bad,
        &[
            format!("ERROR leaked token={secret}"),
            "all good".into(),
            "Tool Bash failed: exit 1".into(),
        ],
    );
    config.log_files = vec![dir.clone()];
    hub.start_adapters(sightline_sources::REGISTRY, &config, &["logs"]);
    let events = hub.wait_for(
        "a log event and two error events",
        Duration::from_secs(20),
        |ev| error_events(ev).len() == 2 && ev.iter().any(|e| e["title"] == "ERROR first failure"),
    );
    let errors = error_events(&events);
    check_error_events(&errors, &bad, secret);
    // The offsets are those of the two lines that matter (the ordinary line is skipped).
    let mut offsets: Vec<u64> = errors
        .iter()
        .map(|e| e["payload"]["offset"].as_u64().unwrap())
        .collect();
    offsets.sort();
    let first_len = format!("ERROR leaked token={secret}").len() as u64 + 1;
    assert_eq!(offsets, vec![0, first_len + "all good".len() as u64 + 1]);
    assert!(errors_in_health(&hub, "logs") >= 2);
    append(&good, &["warning: after the bad file".into()]);
    hub.wait_for("the line after", Duration::from_secs(20), |ev| {
        ev.iter()
            .any(|e| e["title"] == "warning: after the bad file")
    });
}
