//! Settings that control, against the real binary: a background source (the log tailer, over
//! real files) started, stopped and pointed at another file through
//! `PUT /api/v1/settings/sources/{name}` — its events appear, stop, and come from the new file —
//! with bad paths and URLs refused by a clear 400; a notification rule set through
//! `PUT /api/v1/settings/notify` reaching a real local webhook receiver, rate-limited, and
//! changed live; and both kept in the config file across a restart of the hub.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{BIN, Served};
use serde_json::{Value, json};

/// `sightline --config CFG serve` over `dir`, with the agents' homes pointed at empty
/// directories there (so the default sources read nothing of this machine).
fn serve(dir: &Path, config: &Path) -> Served {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .args(["serve", "--port", "0", "--db"])
        .arg(dir.join("db.sqlite"))
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env("SIGHTLINE_OPENCODE_URL", "http://127.0.0.1:9")
        .env("PATH", "/usr/bin:/bin");
    for var in [
        "SIGHTLINE_TOKEN",
        "SIGHTLINE_SOURCES",
        "SIGHTLINE_LOG_FILES",
        "SIGHTLINE_OPENCODE_JSONL",
        "CLAUDE_CONFIG_DIR",
        "CODEX_HOME",
        "GEMINI_CLI_HOME",
        "SIGHTLINE_NOTIFY",
        "SIGHTLINE_NOTIFY_WEBHOOKS",
    ] {
        cmd.env_remove(var);
    }
    Served::spawn(cmd)
}

fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let agent = sightline_testkit::agent();
    let mut res = match method {
        "GET" => agent.get(url).call().unwrap(),
        "PUT" => agent
            .put(url)
            .header("content-type", "application/json")
            .send(body.unwrap_or(Value::Null).to_string())
            .unwrap(),
        _ => agent
            .post(url)
            .header("content-type", "application/json")
            .send(body.unwrap_or(Value::Null).to_string())
            .unwrap(),
    };
    let status = res.status().as_u16();
    let text = res.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn source<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["sources"]
        .as_array()
        .expect("a list of sources")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

/// Events of the log run of `file` (`log:<file name>`).
fn log_events(url: &str, file: &str) -> usize {
    let (status, page) = call(
        "GET",
        &format!("{url}/api/v1/search?runs=log:{file}&limit=1000"),
        None,
    );
    assert_eq!(status, 200, "{page}");
    page["events"].as_array().map_or(0, Vec::len)
}

fn wait_until(what: &str, budget: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < budget, "{what}: not within {budget:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn append(path: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

/// Every background source of the registry is in Settings with the kind and description its
/// registration gives (walking the registry, so a new source is checked without a line here),
/// and Settings lists nothing else.
#[test]
fn every_registered_source_is_listed_with_the_kind_its_registration_gives() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    let hub = serve(dir.path(), &config);
    let (status, list) = call("GET", &format!("{}/api/v1/settings/sources", hub.url), None);
    assert_eq!(status, 200, "{list}");
    let registry = sightline_sources::REGISTRY;
    assert!(registry.len() >= 7, "the registry is not empty");
    for r in registry {
        let listed = source(&list, r.name);
        let (kind, description) = r.describe();
        assert_eq!(
            listed["setting"],
            serde_json::to_value(kind).unwrap(),
            "{}: {listed}",
            r.name
        );
        assert_eq!(listed["description"], description, "{listed}");
        assert!(
            r.settings.is_some(),
            "{} is registered without settings: Settings could only start and stop it",
            r.name
        );
    }
    let listed = list["sources"].as_array().unwrap();
    assert_eq!(listed.len(), registry.len(), "{list}");
}

#[test]
fn a_source_is_started_stopped_and_reconfigured_and_a_restart_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "# the owner's file\nretention = \"7d\"\n").unwrap();
    let a = dir.path().join("a.log");
    let b = dir.path().join("b.log");
    append(&a, "tool Bash failed: exit code 1 (first)");
    append(&b, "tool Edit failed: no such file (in b)");
    let hub = serve(dir.path(), &config);
    let sources_url = format!("{}/api/v1/settings/sources", hub.url);

    let (status, list) = call("GET", &sources_url, None);
    assert_eq!(status, 200, "{list}");
    let logs = source(&list, "logs");
    assert_eq!(logs["running"], false, "off by default: {logs}");
    assert_eq!(logs["setting"], "paths");
    assert_eq!(source(&list, "opencode")["setting"], "url");
    assert_eq!(source(&list, "claude-transcripts")["setting"], "directory");
    assert_eq!(source(&list, "tmux")["setting"], "none");

    // Refusals: each a 4xx that says what to fix, and nothing changes.
    let put = |name: &str, body: Value| call("PUT", &format!("{sources_url}/{name}"), Some(body));
    let (status, body) = put("logs", json!({"running": true, "paths": ["relative.log"]}));
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("absolute"), "{body}");
    let (status, body) = put(
        "logs",
        json!({"running": true, "paths": ["/no/such/dir/x.log"]}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("does not exist"), "{body}");
    let (status, body) = put("logs", json!({"running": true}));
    assert_eq!(status, 400, "no paths yet: {body}");
    let (status, body) = put("logs", json!({"url": "http://127.0.0.1:1"}));
    assert_eq!(status, 400, "{body}");
    let (status, body) = put("opencode", json!({"url": "https://127.0.0.1:4096"}));
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("http://"), "{body}");
    let (status, body) = put(
        "claude-transcripts",
        json!({"paths": [a.display().to_string()]}),
    );
    assert_eq!(status, 400, "a file is not a directory: {body}");
    let (status, body) = put("gemini-sessions", json!({"paths": ["/"]}));
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("whole filesystem"), "{body}");
    let (status, body) = put("nope", json!({"running": true}));
    assert_eq!(status, 404, "{body}");
    let (status, _) = put("logs", json!({"running": "yes"}));
    assert!(
        (400..500).contains(&status),
        "a wrong type is a 4xx, got {status}"
    );
    assert_eq!(log_events(&hub.url, "a.log"), 0);

    // Start it on a.log: its failure line becomes an event.
    let (status, body) = put(
        "logs",
        json!({"running": true, "paths": [a.display().to_string()]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"]["running"], true, "{body}");
    assert_eq!(body["persisted"], true, "{body}");
    wait_until("a.log's first line", Duration::from_secs(10), || {
        log_events(&hub.url, "a.log") == 1
    });
    append(&a, "tool Read failed: permission denied (second)");
    wait_until("a.log's second line", Duration::from_secs(10), || {
        log_events(&hub.url, "a.log") == 2
    });

    // Stop it: a new line is not read, and health says stopped.
    let (status, body) = put("logs", json!({"running": false}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"]["running"], false, "{body}");
    assert_eq!(body["source"]["health"]["state"], "stopped", "{body}");
    append(&a, "tool Write failed: disk full (while stopped)");
    // The tailer polls every 500 ms: 2 s is four polls it would have made.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        log_events(&hub.url, "a.log"),
        2,
        "a stopped source read a line"
    );

    // Reconfigure to b.log and start: b's line arrives, a's new line still does not.
    let (status, body) = put(
        "logs",
        json!({"running": true, "paths": [b.display().to_string()]}),
    );
    assert_eq!(status, 200, "{body}");
    wait_until("b.log's line", Duration::from_secs(10), || {
        log_events(&hub.url, "b.log") == 1
    });
    assert_eq!(log_events(&hub.url, "a.log"), 2);

    // A stopped source may be given a new URL; it is kept for its next start.
    let (status, body) = put(
        "opencode",
        json!({"running": false, "url": "http://127.0.0.1:1"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"]["config"]["url"], "http://127.0.0.1:1");

    // Every change is audited as an admin action.
    let (_, audit) = call(
        "GET",
        &format!("{}/api/v1/audit?kind=admin_action&limit=1000", hub.url),
        None,
    );
    assert!(
        audit.to_string().contains("/api/v1/settings/sources/logs"),
        "{audit}"
    );

    // The file keeps the owner's lines and holds the two tables.
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.starts_with("# the owner's file\nretention = \"7d\"\n"),
        "{text}"
    );
    assert_eq!(text.matches("[source.logs]").count(), 1, "{text}");
    assert!(text.contains("[source.opencode]"), "{text}");

    // Restart: the hub comes back with logs on b.log, running, and opencode stopped.
    drop(hub);
    let hub = serve(dir.path(), &config);
    let (status, list) = call("GET", &format!("{}/api/v1/settings/sources", hub.url), None);
    assert_eq!(status, 200, "{list}");
    let logs = source(&list, "logs");
    assert_eq!(logs["running"], true, "{logs}");
    assert_eq!(logs["config"]["paths"], json!([b.display().to_string()]));
    let opencode = source(&list, "opencode");
    assert_eq!(opencode["running"], false, "{opencode}");
    assert_eq!(opencode["config"]["url"], "http://127.0.0.1:1");
    append(&b, "tool Grep failed: bad pattern (after the restart)");
    wait_until(
        "b.log's line after the restart",
        Duration::from_secs(10),
        || log_events(&hub.url, "b.log") == 2,
    );
}

fn failed_run(url: &str, run: &str, title: &str) {
    let (status, body) = call(
        "POST",
        &format!("{url}/api/v1/events"),
        Some(
            json!({"source": "workflow", "source_event": "run_failed", "entity_type": "workflow",
            "run_id": run, "status": "failed", "severity": "error", "title": title}),
        ),
    );
    assert_eq!(status, 202, "{body}");
}

fn text_of(rx: &mpsc::Receiver<Value>, what: &str) -> String {
    let body = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("no webhook for {what} in 10 s"));
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "only `text`: {body}"
    );
    body["text"].as_str().unwrap().to_string()
}

#[test]
fn a_notification_rule_set_in_settings_reaches_a_webhook_rate_limited_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "# mine\n").unwrap();
    let (webhook, rx) = sightline_testkit::webhook::webhook_receiver(200);
    let hub = serve(dir.path(), &config);
    let notify_url = format!("{}/api/v1/settings/notify", hub.url);

    let (status, view) = call("GET", &notify_url, None);
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["rules"]["failure"]["enabled"], false, "{view}");
    // Nothing is sent before a rule is on.
    failed_run(&hub.url, "wf-before", "nightly failed before any rule");
    assert!(rx.recv_timeout(Duration::from_millis(1000)).is_err());

    // Refusals name the rule and never repeat a webhook's path.
    let (status, body) = call(
        "PUT",
        &notify_url,
        Some(json!({"failure": {"enabled": true, "webhooks": ["ftp://example.com/secret-path"]}})),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("failure:"), "{message}");
    assert!(!message.contains("secret-path"), "{message}");
    let (status, body) = call(
        "PUT",
        &notify_url,
        Some(json!({"cost": {"enabled": true, "webhooks": [webhook]}})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("budget_usd"), "{body}");
    if view["desktop_available"] == false {
        let (status, body) = call(
            "PUT",
            &notify_url,
            Some(json!({"waiting": {"enabled": true, "desktop": true}})),
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains("not available"), "{body}");
    }

    // The failure rule to the receiver, one alert per run a minute.
    let rules = json!({"failure": {"enabled": true, "webhooks": [webhook], "interval_s": 60, "per_minute": 6}});
    let (status, body) = call("PUT", &notify_url, Some(rules));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["persisted"], true, "{body}");
    failed_run(&hub.url, "wf-1", "nightly-etl failed");
    let text = text_of(&rx, "the first failure");
    assert!(text.contains("failed"), "{text}");
    assert!(text.contains("nightly-etl"), "{text}");
    // The same run fails again at once: held back by the rule's interval.
    failed_run(&hub.url, "wf-1", "nightly-etl failed again");
    assert!(
        rx.recv_timeout(Duration::from_millis(1500)).is_err(),
        "a second alert for wf-1 inside the interval"
    );
    // The rule changes live: no interval, so the next failure of the same run goes out, and
    // it says one was held back.
    let rules = json!({"failure": {"enabled": true, "webhooks": [webhook], "interval_s": 0, "per_minute": 6}});
    let (status, body) = call("PUT", &notify_url, Some(rules));
    assert_eq!(status, 200, "{body}");
    failed_run(&hub.url, "wf-1", "nightly-etl failed a third time");
    let text = text_of(&rx, "the failure after the change");
    assert!(text.contains("third time"), "{text}");
    assert!(text.contains("held back"), "{text}");

    let text_file = std::fs::read_to_string(&config).unwrap();
    assert!(text_file.starts_with("# mine\n"), "{text_file}");
    assert!(text_file.contains("[notify.failure]"), "{text_file}");
    assert!(text_file.contains("interval_s = 0"), "{text_file}");

    // Restart: the rule is read back and fires.
    drop(hub);
    let hub = serve(dir.path(), &config);
    let (status, view) = call("GET", &format!("{}/api/v1/settings/notify", hub.url), None);
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["rules"]["failure"]["enabled"], true, "{view}");
    assert_eq!(view["rules"]["failure"]["webhooks"], json!([webhook]));
    failed_run(&hub.url, "wf-2", "deploy failed after the restart");
    let text = text_of(&rx, "the failure after the restart");
    assert!(text.contains("after the restart"), "{text}");
}
