//! The Docker recipe of docs/SOURCES-SETUP.md against the real binary: a hub started with a
//! token and `--allow-host host.docker.internal` takes a Claude Code http-hook post carrying
//! that Host name and the bearer token; without the token it is 401, and without
//! `--allow-host` the Host name is refused.

use serde_json::json;

mod common;
use common::{Served, serve_command};

fn start(dir: &std::path::Path, allow_host: bool) -> Served {
    let mut cmd = serve_command(&dir.join(format!("db-{allow_host}.sqlite")));
    cmd.args([
        "--token",
        "t0ken-for-docker",
        "--source",
        "claude-transcripts",
    ]);
    if allow_host {
        cmd.args(["--allow-host", "host.docker.internal"]);
    }
    cmd.env("XDG_DATA_HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env("HOME", dir);
    let hub = Served::spawn(cmd);
    assert!(hub.url.starts_with("http://127.0.0.1:"), "{}", hub.url);
    hub
}

fn post(hub: &Served, token: Option<&str>) -> u16 {
    let agent = common::agent();
    let port = hub.url.rsplit(':').next().unwrap();
    let payload = json!({"session_id": "in-docker", "hook_event_name": "PreToolUse", "tool_name": "Bash",
        "tool_input": {"command": "ls"}, "tool_use_id": "toolu_d1", "cwd": "/workspace"});
    let mut req = agent
        .post(&format!("{}/api/v1/hooks/claude", hub.url))
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
