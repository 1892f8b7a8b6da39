//! The Docker recipe of docs/SOURCES-SETUP.md against the real binary: a hub started with a
//! token and `--allow-host host.docker.internal` takes a Claude Code http-hook post carrying
//! that Host name and the bearer token; without the token it is 401, and without
//! `--allow-host` the Host name is refused.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::json;

struct Hub(Child, String);

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path, allow_host: bool) -> Hub {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sightline"));
    cmd.args([
        "serve",
        "--port",
        "0",
        "--token",
        "t0ken-for-docker",
        "--source",
        "claude-transcripts",
    ]);
    if allow_host {
        cmd.args(["--allow-host", "host.docker.internal"]);
    }
    let mut child = cmd
        .arg("--db")
        .arg(dir.join(format!("db-{allow_host}.sqlite")))
        .env("XDG_DATA_HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env("HOME", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    Hub(child, url)
}

fn post(hub: &Hub, token: Option<&str>) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let port = hub.1.rsplit(':').next().unwrap();
    let payload = json!({"session_id": "in-docker", "hook_event_name": "PreToolUse", "tool_name": "Bash",
        "tool_input": {"command": "ls"}, "tool_use_id": "toolu_d1", "cwd": "/workspace"});
    let mut req = agent
        .post(&format!("{}/api/v1/hooks/claude", hub.1))
        .header("host", &format!("host.docker.internal:{port}"))
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", &format!("Bearer {t}"));
    }
    req.send(payload.to_string().as_bytes())
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn a_container_style_hook_post_reaches_a_token_protected_hub() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), true);
    assert_eq!(post(&hub, None), 401);
    assert_eq!(post(&hub, Some("t0ken-for-docker")), 202);
    drop(hub);
    let strict = start(dir.path(), false);
    let refused = post(&strict, Some("t0ken-for-docker"));
    assert!(
        refused == 400 || refused == 403 || refused == 421,
        "the Host name is refused without --allow-host: {refused}"
    );
}
