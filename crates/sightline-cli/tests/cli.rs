//! The `sightline` binary end to end: serve, kill -9 durability, graceful stop, export/import
//! through the CLI, tail, replay and exit codes.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

mod common;
use common::{BIN, Served, agent, serve_command, sightline_at as cli};

fn serve(db: &Path, extra: &[&str]) -> Served {
    let mut cmd = serve_command(db);
    cmd.args(extra).env("XDG_CONFIG_HOME", db.parent().unwrap());
    Served::spawn(cmd)
}

fn post_events(url: &str, body: &str) -> Result<Value, String> {
    let mut res = agent()
        .post(format!("{url}/api/v1/events"))
        .header("Content-Type", "application/x-ndjson")
        .send(body)
        .map_err(|e| e.to_string())?;
    let text = res.body_mut().read_to_string().map_err(|e| e.to_string())?;
    if res.status().as_u16() != 202 {
        return Err(text);
    }
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

fn event(run: &str, i: usize) -> Value {
    json!({"event_id": format!("{run}-{i}"), "ts": "2026-11-21T10:00:00.000Z", "source": "custom", "source_event": "tick",
           "entity_type": "log", "run_id": run, "session_id": run, "title": format!("tick {i}"), "payload": {"i": i, "ratio": 2.5}})
}

fn all_event_ids(url: &str) -> Vec<String> {
    let text = agent()
        .get(format!("{url}/api/v1/export?format=ndjson"))
        .call()
        .unwrap()
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_string()
        .unwrap();
    text.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn kill_dash_nine_during_ingest_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let mut hub = serve(&db, &[]);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..3)
        .map(|p| {
            let (url, acked, stop) = (hub.url.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let batch: Vec<Value> =
                        (0..200).map(|k| event(&format!("p{p}"), i + k)).collect();
                    let body: String = batch.iter().map(|e| e.to_string() + "\n").collect();
                    match post_events(&url, &body) {
                        Ok(_) => acked.lock().unwrap().extend(
                            batch
                                .iter()
                                .map(|e| e["event_id"].as_str().unwrap().to_string()),
                        ),
                        Err(_) => break,
                    }
                    i += 200;
                }
            })
        })
        .collect();
    // Kill while the producers are still sending, once over 1,000 events are acknowledged (a
    // fixed 1.5 s made that depend on how fast the machine was).
    sightline_testkit::wait_until(
        "over 1,000 acknowledged events",
        Duration::from_secs(60),
        || acked.lock().unwrap().len() > 1000,
    );
    hub.child.kill().unwrap(); // SIGKILL: no chance to flush anything.
    hub.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    for p in producers {
        p.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 1000,
        "the test must have ingested something ({})",
        acked.len()
    );
    let again = serve(&db, &[]);
    let stored: std::collections::HashSet<String> = all_event_ids(&again.url).into_iter().collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!(
        "{} acknowledged before kill -9, all present after restart ({} stored)",
        acked.len(),
        stored.len()
    );
}

#[test]
fn export_and_import_through_the_cli_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let a = serve(&dir.path().join("a.sqlite"), &[]);
    let body: String = (0..25)
        .map(|i| event("cli-run", i).to_string() + "\n")
        .collect();
    post_events(&a.url, &body).unwrap();
    let first = dir.path().join("first.yaml");
    let to = first.to_str().unwrap();
    let out = cli(&a.url, &["export", "cli-run", "--format", "yaml", "-o", to]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = serve(&dir.path().join("b.sqlite"), &[]);
    let out = cli(&b.url, &["import", first.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("imported 25"));
    let out = cli(&b.url, &["export", "cli-run", "--format", "yaml"]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(&first).unwrap(),
        out.stdout,
        "YAML export → import → export"
    );
}

#[test]
fn stop_drains_and_the_data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let mut hub = serve(&db, &[]);
    post_events(
        &hub.url,
        &(0..10)
            .map(|i| event("s", i).to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let status = cli(&hub.url, &["status"]);
    assert!(status.status.success());
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("10 events"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let out = cli(&hub.url, &["stop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        hub.child.wait().unwrap().success(),
        "exit 0 after a graceful stop"
    );
    let again = serve(&db, &[]);
    assert_eq!(all_event_ids(&again.url).len(), 10);
    // A stopped hub: status says how to start one, with a non-zero exit.
    drop(again);
    let out = cli("http://127.0.0.1:9", &["status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sightline serve"));
}

#[test]
fn tail_prints_the_stream_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let hub = serve(&dir.path().join("db.sqlite"), &[]);
    let body: String = (0..6)
        .map(|i| {
            let mut e = event(if i % 2 == 0 { "even" } else { "odd" }, i);
            e["severity"] = if i == 4 {
                "error".into()
            } else {
                "info".into()
            };
            e.to_string() + "\n"
        })
        .collect();
    post_events(&hub.url, &body).unwrap();
    let out = cli(
        &hub.url,
        &[
            "tail",
            "--run",
            "even",
            "--since-seq",
            "0",
            "--limit",
            "3",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines
            .iter()
            .map(|e| e["title"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["tick 0", "tick 2", "tick 4"]
    );
    let out = cli(
        &hub.url,
        &[
            "tail",
            "--severity",
            "error",
            "--since-seq",
            "0",
            "--limit",
            "1",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tick 4") && text.contains("custom"), "{text}");
}

#[test]
fn replay_plays_a_recording_as_a_new_run() {
    let dir = tempfile::tempdir().unwrap();
    let hub = serve(&dir.path().join("db.sqlite"), &[]);
    let recording = dir.path().join("rec.jsonl");
    let lines: String = (0..5)
        .map(|i| {
            let mut e = event("recorded", i);
            e["ts"] = format!("2026-01-01T00:00:00.{:03}Z", i * 100).into();
            e.to_string() + "\n"
        })
        .collect();
    std::fs::write(&recording, lines).unwrap();
    let started = std::time::Instant::now();
    let out = cli(
        &hub.url,
        &["replay", recording.to_str().unwrap(), "--speed", "2"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "400 ms of recording at 2x takes 200 ms"
    );
    let runs: Value = serde_json::from_str(
        &agent()
            .get(format!("{}/api/v1/runs", hub.url))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    let run = &runs["runs"][0];
    assert!(
        run["run_id"]
            .as_str()
            .unwrap()
            .starts_with("recorded~replay-"),
        "{run}"
    );
    assert_eq!(run["event_count"], 5);
    assert_eq!(run["duration_ms"], 400, "relative timing kept");
}

#[test]
fn exit_codes_say_what_went_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let hub = serve(&dir.path().join("db.sqlite"), &[]);
    let port = hub.url.rsplit(':').next().unwrap().to_string();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env_remove("SIGHTLINE_TOKEN")
            .env("XDG_CONFIG_HOME", dir.path())
            .output()
            .unwrap()
    };
    let db = dir.path().join("other.sqlite");
    let db = db.to_str().unwrap();
    let taken = run(&["serve", "--port", &port, "--db", db]);
    assert_eq!(
        taken.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    assert!(String::from_utf8_lossy(&taken.stderr).contains("in use"));
    let open = run(&["serve", "--port", "0", "--bind", "0.0.0.0", "--db", db]);
    assert_eq!(open.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&open.stderr).contains("token"));
    let bad_source = run(&[
        "serve",
        "--port",
        "0",
        "--source",
        "carrier-pigeon",
        "--db",
        db,
    ]);
    assert_eq!(bad_source.status.code(), Some(2));
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "prot = 1\n").unwrap();
    let bad_config = run(&["serve", "--config", config.to_str().unwrap(), "--db", db]);
    assert_eq!(bad_config.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_config.stderr).contains("prot"));
    let bad_retention = run(&["serve", "--port", "0", "--retention", "forever", "--db", db]);
    assert_eq!(bad_retention.status.code(), Some(2));
    let bad_flag = run(&["serve", "--colour"]);
    assert_eq!(bad_flag.status.code(), Some(2));
}
