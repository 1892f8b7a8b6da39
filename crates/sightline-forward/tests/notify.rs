//! The notifier against a real local webhook receiver (a small HTTP server in this test): a
//! Claude Code permission prompt posted to the hub's hook endpoint arrives as a Slack-compatible
//! `{"text": ...}` body; a second wait of the same session inside the interval is held back and
//! counted; a failed run and a run passing the cost budget each raise one alert; a receiver that
//! answers 500 shows in the `notify` health entry.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use sightline_forward::notify::{self, NotifySettings, Rule};
use sightline_testkit::*;

fn text_of(rx: &mpsc::Receiver<Value>, what: &str) -> String {
    let body = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("no webhook for {what} in 10 s"));
    let obj = body.as_object().expect("a JSON object");
    assert_eq!(
        obj.len(),
        1,
        "a Slack-compatible body has only `text`: {body}"
    );
    body["text"].as_str().expect("text is a string").to_string()
}

#[test]
fn waiting_failure_and_cost_reach_a_webhook_rate_limited() {
    let hub = TestHub::start();
    let (url, rx) = webhook::webhook_receiver(200);
    let settings = NotifySettings {
        webhooks: vec![url],
        cost_budget_usd: Some(1.0),
        per_key_interval: Duration::from_secs(60),
        dashboard_url: Some("http://127.0.0.1:4517".into()),
        ..NotifySettings::default()
    };
    let core = hub.core();
    let notifier = hub
        .runtime
        .block_on(async { notify::start(core, settings) })
        .expect("a webhook is enough to start");
    // The subscription starts live: give it a moment to be on the bus.
    std::thread::sleep(Duration::from_millis(300));

    let permission = json!({"hook_event_name": "PermissionRequest", "session_id": "sess-n1",
        "cwd": "/home/dev/flaky-hunt", "tool_name": "Bash", "tool_use_id": "tu-9",
        "tool_input": {"command": "rm -rf target"}});
    let (status, _) = hub.post_json("/api/v1/hooks/claude", &permission);
    assert!(status < 300);
    let text = text_of(&rx, "the permission prompt");
    assert!(text.contains("waits for permission"), "{text}");
    assert!(text.contains("flaky-hunt"), "the project is named: {text}");
    assert!(text.contains("rm -rf target"), "{text}");
    assert!(
        text.contains("http://127.0.0.1:4517/#/run/sess-n1"),
        "{text}"
    );

    // The same session waits again at once: held back by the per-session interval.
    let again = json!({"hook_event_name": "Notification", "session_id": "sess-n1",
        "notification_type": "permission_prompt", "message": "Claude needs your permission to use Bash"});
    let (status, _) = hub.post_json("/api/v1/hooks/claude", &again);
    assert!(status < 300);
    assert!(
        rx.recv_timeout(Duration::from_millis(1500)).is_err(),
        "a second alert for the same session inside the interval"
    );
    assert_eq!(notifier.stats.held_back.load(Ordering::Relaxed), 1);

    // A failed run.
    let (status, _) = hub.post_json(
        "/api/v1/events",
        &json!({"source": "workflow", "source_event": "run_failed", "entity_type": "workflow",
                "run_id": "wf-9", "status": "failed", "severity": "error", "title": "nightly-etl failed",
                "summary": "step load: connection refused"}),
    );
    assert_eq!(status, 202);
    let text = text_of(&rx, "the failed run");
    assert!(text.contains("failed"), "{text}");
    assert!(text.contains("connection refused"), "{text}");

    // Cost: three requests of $0.40 pass the $1 budget once; a fourth says nothing more.
    for i in 0..4 {
        let (status, _) = hub.post_json(
            "/api/v1/events",
            &json!({"source": "claude", "source_event": "api_request", "entity_type": "message",
                    "run_id": "r-cost", "session_id": "r-cost", "title": format!("request {i}"),
                    "metrics": {"cost_usd": 0.4}}),
        );
        assert_eq!(status, 202);
    }
    let text = text_of(&rx, "the cost budget");
    assert!(text.contains("passed the cost budget"), "{text}");
    assert!(text.contains("$1.20"), "{text}");
    assert!(
        rx.recv_timeout(Duration::from_millis(1000)).is_err(),
        "one cost alert per run"
    );
    let entry = hub.adapter_health("notify").expect("notify in health");
    assert_eq!(entry["events"], 3, "{entry}");
    hub.runtime.block_on(notifier.stop());
}

#[test]
fn a_refusing_webhook_shows_in_health_and_rules_can_be_narrowed() {
    let hub = TestHub::start();
    let (url, rx) = webhook::webhook_receiver(500);
    let settings = NotifySettings {
        webhooks: vec![url],
        rules: vec![Rule::Failure],
        ..NotifySettings::default()
    };
    let core = hub.core();
    let notifier = hub
        .runtime
        .block_on(async { notify::start(core, settings) })
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Waiting is not among the rules: nothing is sent for it.
    let (status, _) = hub.post_json(
        "/api/v1/hooks/claude",
        &json!({"hook_event_name": "PermissionRequest", "session_id": "s-q", "tool_name": "Bash"}),
    );
    assert!(status < 300);
    assert!(rx.recv_timeout(Duration::from_millis(1000)).is_err());
    let (status, _) = hub.post_json(
        "/api/v1/events",
        &json!({"source": "custom", "source_event": "x", "entity_type": "run", "run_id": "r-x",
                "status": "failed", "title": "deploy failed"}),
    );
    assert_eq!(status, 202);
    // Refused with 500: sent once and retried once.
    text_of(&rx, "the failure");
    text_of(&rx, "the retry");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let health = hub.get("/api/v1/health");
        let refused = health["adapters"].as_array().unwrap().iter().any(|a| {
            a["name"] == "notify"
                && a["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("HTTP 500") && !e.contains("secret"))
        });
        if refused {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "notify health never showed the refusal: {health}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(notifier.stats.failed.load(Ordering::Relaxed), 1);
    hub.runtime.block_on(notifier.stop());
}
