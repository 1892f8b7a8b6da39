//! `serve --notify` and `tail --bell` with the real binary: the desktop notifier is whatever
//! `notify-send` is first on the hub's PATH (here a script that records its arguments, since
//! a test machine has no desktop); without one, `--notify` alone refuses to start (exit 2)
//! and says what to install; `tail --bell` writes BEL with the line of a waiting session.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Served, serve_command};
use serde_json::json;

fn post_hook(url: &str, body: serde_json::Value) {
    let res = sightline_testkit::agent()
        .post(&format!("{url}/api/v1/hooks/claude"))
        .header("content-type", "application/json")
        .send(body.to_string())
        .unwrap();
    assert!(res.status().as_u16() < 300);
}

#[test]
fn notify_runs_the_platform_notifier_with_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let record = dir.path().join("notified.txt");
    let script = bin.join("notify-send");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = serve_command(&dir.path().join("db.sqlite"));
    cmd.args(["--notify", "--notify-on", "waiting"])
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    // No pause: `serve` prints its address after the notifier started, and the notifier sees
    // every event committed after its start.
    let hub = Served::spawn(cmd);
    post_hook(
        &hub.url,
        json!({"hook_event_name": "PermissionRequest", "session_id": "sess-desk", "cwd": "/work/shop",
               "tool_name": "Bash", "tool_input": {"command": "git push --force"}}),
    );
    let start = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&record).unwrap_or_default();
        if !text.is_empty() || start.elapsed() > Duration::from_secs(10) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(text.contains("--app-name=sightline"), "{text}");
    assert!(text.contains("waits for permission"), "{text}");
    assert!(text.contains("shop"), "the project is named: {text}");
    assert!(text.contains("git push --force"), "{text}");
}

#[test]
fn notify_without_a_notifier_refuses_to_start_and_says_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = serve_command(&dir.path().join("db.sqlite"))
        .arg("--notify")
        .env("PATH", &empty)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("notify-send was not found"), "{err}");
    assert!(err.contains("libnotify-bin"), "{err}");
    // A webhook that is not a URL is a config error too, and its path is not printed.
    let out = serve_command(&dir.path().join("db2.sqlite"))
        .args(["--notify-webhook", "hooks.slack.com/services/SECRET"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http:// or https://"), "{err}");
    assert!(!err.contains("SECRET"), "{err}");
}

#[test]
fn tail_bell_rings_for_a_waiting_session_only() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Served::spawn(serve_command(&dir.path().join("db.sqlite")));
    post_hook(
        &hub.url,
        json!({"hook_event_name": "PreToolUse", "session_id": "s-b", "tool_name": "Read", "tool_use_id": "t1"}),
    );
    post_hook(
        &hub.url,
        json!({"hook_event_name": "PermissionRequest", "session_id": "s-b", "tool_name": "Bash", "tool_use_id": "t2"}),
    );
    let mut child = Command::new(BIN)
        .args([
            "tail",
            "--bell",
            "--since-seq",
            "0",
            "--limit",
            "2",
            "--url",
            &hub.url,
        ])
        .env_remove("SIGHTLINE_TOKEN")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert!(
        !lines[0].contains('\x07'),
        "no bell for a tool call: {out:?}"
    );
    assert!(
        lines[1].ends_with('\x07'),
        "a bell for the permission prompt: {out:?}"
    );
}
