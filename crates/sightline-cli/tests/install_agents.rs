//! `sightline install codex|gemini` (the real binary): Codex's `config.toml` gets one `[otel]`
//! section between markers, idempotently and with a backup, the user's text kept byte for byte
//! and restored by `--uninstall`; the real Codex CLI (npm `@openai/codex`, pinned in the test
//! kit) then sends its telemetry to a real hub through that section. Gemini CLI's
//! `settings.json` gets its `telemetry` block the same way.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

mod common;
use common::TestHub;
use sightline_testkit::peers::{codex_binary, codex_command};

fn sightline(args: &[&str], envs: &[(&str, &Path)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sightline"));
    cmd.args(args)
        .env_remove("CODEX_HOME")
        .env_remove("GEMINI_CLI_HOME");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn backups(dir: &Path, name: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}.sightline-backup-"))
        })
        .count()
}

/// A one-connection-at-a-time mock of the OpenAI Responses API on a thread: each request gets
/// a stream with one assistant message and `response.completed`, then the connection closes.
fn responses_mock() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let item = json!({"type": "message", "role": "assistant", "id": "msg_1",
                "content": [{"type": "output_text", "text": "Nothing to do."}]});
            let mut sse = String::new();
            for (kind, data) in [
                ("response.created", json!({"response": {"id": "resp_1"}})),
                (
                    "response.output_item.done",
                    json!({"output_index": 0, "item": item}),
                ),
                (
                    "response.completed",
                    json!({"response": {"id": "resp_1", "usage": {"input_tokens": 10,
                        "output_tokens": 2, "total_tokens": 12}}}),
                ),
            ] {
                let mut data = data;
                data["type"] = json!(kind);
                sse.push_str(&format!("event: {kind}\ndata: {data}\n\n"));
            }
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{sse}",
                sse.len()
            );
        }
    });
    addr
}

#[test]
fn codex_install_is_idempotent_keeps_the_file_and_real_codex_reports_through_it() {
    let _ = codex_binary();
    let mut hub = TestHub::start();
    let mock = responses_mock();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("codex");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let config = home.join("config.toml");
    let mine = format!(
        "# my Codex settings, kept as they are\nmodel = \"mock-model\"  # the mock\nmodel_provider = \"mock\"\napproval_policy = \"never\"\n\n[model_providers.mock]\nname = \"mock\"\nbase_url = \"http://{mock}/v1\"\nenv_key = \"SIGHTLINE_MOCK_KEY\"\nwire_api = \"responses\"\n"
    );
    std::fs::write(&config, &mine).unwrap();
    let url = hub.url.clone();
    let install = ["install", "codex", "--url", url.as_str()];

    let (code, out) = sightline(&install, &[("CODEX_HOME", &home)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("backup:"), "{out}");
    let installed = std::fs::read_to_string(&config).unwrap();
    assert!(
        installed.starts_with(&mine),
        "the user's text first, untouched:\n{installed}"
    );
    assert!(
        installed.contains(&format!("endpoint = \"{url}/v1/logs\"")),
        "{installed}"
    );
    assert_eq!(backups(&home, "config.toml"), 1);

    let (code, out) = sightline(&install, &[("CODEX_HOME", &home)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("already installed; nothing changed"), "{out}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), installed);
    assert_eq!(backups(&home, "config.toml"), 1, "no change, no backup");

    // The real Codex reads the section and sends its log events to the hub.
    let out = codex_command(&home, &work)
        .args(["exec", "--skip-git-repo-check", "say nothing"])
        .output()
        .unwrap_or_else(|e| panic!("CODEX TEST CANNOT RUN: starting codex failed: {e}"));
    assert!(
        out.status.success(),
        "codex exec failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    hub.wait_for(
        "Codex's telemetry",
        Duration::from_secs(20),
        |events: &[Value]| {
            events
                .iter()
                .any(|e| e["source"] == "codex" && e["source_event"] == "codex.conversation_starts")
        },
    );

    // A section of the user's own is refused, not doubled.
    let theirs = dir.path().join("theirs.toml");
    std::fs::write(&theirs, "[otel]\nenvironment = \"prod\"\n").unwrap();
    let (code, out) = sightline(
        &["install", "codex", "--settings", theirs.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("[otel]"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&theirs).unwrap(),
        "[otel]\nenvironment = \"prod\"\n"
    );

    let (code, out) = sightline(
        &["install", "codex", "--uninstall"],
        &[("CODEX_HOME", &home)],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), mine);
    hub.stop();
}

#[test]
fn gemini_install_is_idempotent_and_uninstalls_only_its_block() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let settings = home.join(".gemini/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    let mine = json!({"theme": "GitHub", "security": {"auth": {"selectedType": "gemini-api-key"}}});
    std::fs::write(&settings, mine.to_string()).unwrap();
    let install = ["install", "gemini", "--url", "http://127.0.0.1:4517/"];

    let (code, out) = sightline(&install, &[("HOME", home)]);
    assert_eq!(code, 0, "{out}");
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(
        written["telemetry"],
        json!({"enabled": true, "target": "local", "otlpEndpoint": "http://127.0.0.1:4517",
            "otlpProtocol": "http", "logPrompts": true})
    );
    assert_eq!(written["theme"], "GitHub");
    assert_eq!(backups(settings.parent().unwrap(), "settings.json"), 1);

    let (code, out) = sightline(&install, &[("HOME", home)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("already installed; nothing changed"), "{out}");
    assert_eq!(backups(settings.parent().unwrap(), "settings.json"), 1);

    let (code, out) = sightline(
        &[
            "install",
            "gemini",
            "--uninstall",
            "--url",
            "http://127.0.0.1:4517",
        ],
        &[("HOME", home)],
    );
    assert_eq!(code, 0, "{out}");
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(after, mine);
}
