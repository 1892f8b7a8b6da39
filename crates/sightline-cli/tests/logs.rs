//! The hub's logs, read from a real `sightline serve`: start-up, a source that cannot reach its
//! peer (OpenCode on a port nobody listens on) with what to do, a bad request at debug with its
//! path but never its query string, and the shutdown, as text and as JSON.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{BIN, agent, free_port};

/// Runs a hub with `format`, makes a bad request with a secret-looking query, stops it, and
/// returns its stderr lines.
fn run_hub(format: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--port", "0", "--db"])
        .arg(dir.path().join("db.sqlite"))
        .args(["--log-format", format, "--source", "opencode"])
        .env_remove("SIGHTLINE_TOKEN")
        .env("SIGHTLINE_LOG", "debug,hyper=info,h2=info")
        .env(
            "SIGHTLINE_OPENCODE_URL",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .env("XDG_CONFIG_HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let lines = lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        })
    };
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("sightline listening on ")
        .unwrap()
        .to_string();
    let res = agent()
        .post(format!("{url}/api/v1/events?access_token=do-not-log-me"))
        .header("Content-Type", "application/json")
        .send("{not json")
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    // The OpenCode source tries, fails and says so.
    let started = Instant::now();
    while !lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("opencode") && (l.contains("WARN") || l.contains("\"WARN\"")))
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no warning from the opencode source: {:?}",
            lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stop = agent()
        .post(format!("{url}/api/v1/shutdown"))
        .send("")
        .unwrap();
    assert_eq!(stop.status().as_u16(), 202);
    let status = child.wait().unwrap();
    assert!(status.success());
    reader.join().unwrap();
    lines.lock().unwrap().clone()
}

#[test]
fn text_logs_say_what_happened() {
    let lines = run_hub("text");
    let all = lines.join("\n");
    assert!(all.contains("sightline started"), "{all}");
    assert!(
        all.contains("/api/v1/events") && all.contains("400"),
        "the bad request at debug: {all}"
    );
    assert!(
        !all.contains("do-not-log-me"),
        "a query string was logged: {all}"
    );
    assert!(
        all.contains("stopped; every queued event is committed"),
        "{all}"
    );
    eprintln!("--- the hub's log ---\n{all}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let lines = run_hub("json");
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(parsed.iter().any(|v| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("sightline started"))
    }));
    assert!(
        parsed
            .iter()
            .any(|v| v["level"] == "WARN" && v.to_string().contains("opencode"))
    );
    assert!(
        parsed
            .iter()
            .any(|v| v["path"] == "/api/v1/events" && v["status"] == 400)
    );
    assert!(!lines.join("\n").contains("do-not-log-me"));
}
