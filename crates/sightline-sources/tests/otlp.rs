//! OTLP/HTTP receiver: the real OpenTelemetry Python SDK sends spans and logs in protobuf (gzip)
//! and in JSON; they arrive with their attributes, GenAI spans and Claude Code's `api_request`
//! are mapped, secrets are redacted. Also JSON by hand: partial success, 415, bad gzip.
//!
//! The SDK is installed by this test into a venv under `$SIGHTLINE_TEST_CACHE` (default
//! `~/.cache/sightline-tests`) with pip; if that fails the test fails saying so.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::peers::cache_dir;
use common::{TestHub, contains, post};
use serde_json::{Value, json};

/// A venv with the SDK and the OTLP HTTP exporter for `protocol` (installed once, reused).
/// One venv per exporter: the JSON exporter is a beta released on its own schedule, and
/// pip cannot always find one set of versions that satisfies both.
fn otel_python(protocol: &str) -> PathBuf {
    let venv = cache_dir().join(format!("otel-{protocol}-venv"));
    let python = venv.join("bin/python");
    let marker = venv.join(".sightline-ready");
    if marker.exists() {
        return python;
    }
    std::fs::create_dir_all(cache_dir()).unwrap();
    let python3 = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python3)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "OTLP test: could not create a Python venv at {} with {python3}",
        venv.display()
    );
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "opentelemetry-sdk",
            if protocol == "json" {
                "opentelemetry-exporter-otlp-json-http"
            } else {
                "opentelemetry-exporter-otlp-proto-http"
            },
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "OTLP test: pip could not install opentelemetry-sdk and the OTLP HTTP {protocol} exporter from PyPI:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&marker, "ok").unwrap();
    python
}

/// Runs send.py; returns the trace id of the plain (non-GenAI) trace it printed.
fn send(hub: &TestHub, protocol: &str, tag: &str) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/otel/send.py");
    let out = Command::new(otel_python(protocol))
        .arg(script)
        .arg(&hub.url)
        .arg(protocol)
        .arg(tag)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "send.py {protocol} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("plain trace "))
        .expect("send.py prints the plain trace's id")
        .trim()
        .to_string()
}

#[test]
fn python_sdk_sends_spans_and_logs_in_protobuf_and_json() {
    let hub = TestHub::start();
    for protocol in ["protobuf", "json"] {
        let tag = format!("t-{protocol}");
        let plain_trace = send(&hub, protocol, &tag);
        let events = hub.wait_for(
            &format!("{protocol} spans and logs"),
            Duration::from_secs(20),
            |events| {
                events
                    .iter()
                    .filter(|e| e["session_id"] == format!("conv-{tag}"))
                    .count()
                    >= 5
            },
        );
        let mine: Vec<&Value> = events
            .iter()
            .filter(|e| e["session_id"] == format!("conv-{tag}"))
            .collect();
        let tool = mine
            .iter()
            .find(|e| e["entity_type"] == "tool")
            .expect("execute_tool span");
        assert_eq!(tool["source"], "otlp");
        assert_eq!(tool["correlation_id"], format!("call-{tag}"));
        assert_eq!(
            tool["payload"]["attributes"]["test.tag"],
            tag.as_str(),
            "{tool}"
        );
        assert_eq!(tool["payload"]["attributes"]["gen_ai.tool.name"], "grep");
        assert_eq!(
            tool["payload"]["resource"]["service.name"],
            format!("otel-test-{protocol}")
        );
        assert_eq!(tool["status"], "success");
        assert!(tool["payload"]["parent_span_id"].is_string(), "{tool}");
        let agent = mine
            .iter()
            .find(|e| e["entity_type"] == "session")
            .expect("invoke_agent span");
        assert_eq!(agent["agent"], "planner");
        let chat = mine
            .iter()
            .find(|e| e["source_event"] == "chat")
            .expect("chat span");
        assert_eq!(chat["metrics"]["input_tokens"], 120.0);
        let warn = mine
            .iter()
            .find(|e| e["entity_type"] == "log")
            .expect("log record");
        assert_eq!(warn["severity"], "warn");
        assert_eq!(warn["title"], "disk almost full on /dev/sda1");
        assert_eq!(warn["payload"]["attributes"]["test.tag"], tag.as_str());
        let api = mine
            .iter()
            .find(|e| e["source_event"] == "claude_code.api_request")
            .unwrap_or_else(|| panic!("api_request: {mine:#?}"));
        assert_eq!(api["source"], "claude");
        assert_eq!(api["event_id"], format!("claude-usage:req_{tag}"));
        assert!((api["metrics"]["cost_usd"].as_f64().unwrap() - 0.0123).abs() < 1e-12);
        assert_eq!(api["metrics"]["cache_write_tokens"], 10.0);

        // A plain trace is one run: titled by its root span and ended by it, although the
        // child span arrived first.
        hub.wait_for(
            &format!("{protocol} plain trace"),
            Duration::from_secs(20),
            |events| {
                events
                    .iter()
                    .filter(|e| e["run_id"] == plain_trace.as_str())
                    .count()
                    >= 2
            },
        );
        let run = &hub.get(&format!("/api/v1/runs/{plain_trace}"))["run"];
        assert_eq!(run["title"], format!("GET /orders {tag}"), "{run}");
        assert_eq!(run["status"], "success", "{run}");
        assert!(run["ended_at"].is_string(), "{run}");
    }
    let disk = hub.db_bytes();
    for secret in ["hunter2-span-secret", "abcdefghijklmnopqrstuvwx"] {
        assert!(
            !contains(&disk, secret),
            "{secret} reached the database file"
        );
    }
}

#[test]
fn json_by_hand_partial_success_and_errors() {
    let hub = TestHub::start();
    let future = "4102444800000000000"; // 2100-01-01, beyond 24 h ahead: the record is rejected
    let body = json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
    "scopeLogs": [{"scope": {"name": "s"}, "logRecords": [
        {"timeUnixNano": "1795255200000000000", "severityNumber": 17, "body": {"stringValue": "boom"},
         "attributes": [{"key": "n", "value": {"intValue": "42"}}], "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"},
        {"timeUnixNano": future, "body": {"stringValue": "from the future"}}
    ]}]}]});
    let (status, answer) = post(
        &format!("{}/v1/logs", hub.url),
        "application/json",
        body.to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"], 1,
        "{answer}"
    );
    let events = hub.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["severity"], "error");
    assert_eq!(events[0]["payload"]["attributes"]["n"], 42);
    assert_eq!(
        events[0]["payload"]["trace_id"],
        "5b8efff798038103d269b633813fc60c"
    );
    // A retry of the same record is not stored twice.
    post(
        &format!("{}/v1/logs", hub.url),
        "application/json",
        body.to_string(),
    );
    assert_eq!(hub.events().len(), 1);

    let (status, _) = post(&format!("{}/v1/traces", hub.url), "text/plain", "x");
    assert_eq!(status, 415);
    let (status, _) = post(
        &format!("{}/v1/traces", hub.url),
        "application/x-protobuf",
        [0xff, 0xff, 0xff],
    );
    assert_eq!(status, 400);
    let res = common::agent()
        .post(&format!("{}/v1/metrics", hub.url))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .send(&b"not gzip"[..])
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    // A gzip body that inflates past the body limit is a 413 (not retried), not an OOM.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &vec![b' '; 9 * 1024 * 1024]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 100_000);
    let res = common::agent()
        .post(&format!("{}/v1/logs", hub.url))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .send(&bomb[..])
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);
    // Metrics: a Claude Code counter arrives as a metric event.
    let metrics = json!({"resourceMetrics": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "claude-code"}}]},
        "scopeMetrics": [{"metrics": [{"name": "claude_code.cost.usage", "unit": "USD", "sum": {"aggregationTemporality": 1, "isMonotonic": true,
            "dataPoints": [{"asDouble": 0.25, "timeUnixNano": "1795255200000000000", "attributes": [{"key": "session.id", "value": {"stringValue": "s-m"}}]}]}}]}]}]});
    let (status, answer) = post(
        &format!("{}/v1/metrics", hub.url),
        "application/json",
        metrics.to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    let m = hub
        .events()
        .into_iter()
        .find(|e| e["entity_type"] == "metric")
        .unwrap();
    assert_eq!(m["metrics"]["claude_code.cost.usage"], 0.25);
    assert_eq!(m["session_id"], "s-m");
}

/// The real SDK's GenAI traces (tests/otel/genai.py): two traces of one conversation, each
/// exported in one batch, are one run; their spans nest as sessions (the nested agent a child
/// session with its own chat and tool) by their parent spans. A trace exported span by span,
/// children first, is still one run, never split, though only its root names the conversation.
#[test]
fn genai_traces_are_nested_runs() {
    let hub = TestHub::start();
    let tag = format!(
        "g{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/otel/genai.py");
    let out = Command::new(otel_python("protobuf"))
        .arg(script)
        .arg(&hub.url)
        .arg(&tag)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "genai.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let traces: std::collections::BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            if words.next() != Some("trace") {
                return None;
            }
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect();
    assert_eq!(traces.len(), 3, "{traces:?}");
    let spans_of = |events: &[Value], trace: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["payload"]["trace_id"] == trace)
            .cloned()
            .collect()
    };
    let events = hub.wait_for("3 traces of 6 spans", Duration::from_secs(20), |events| {
        traces.values().all(|t| spans_of(events, t).len() == 6)
    });
    let conversation = format!("conv-{tag}");

    // Two traces of one conversation: one run, nested sessions.
    for name in ["one", "two"] {
        let spans = spans_of(&events, &traces[name]);
        let ids: std::collections::HashMap<&str, &Value> = spans
            .iter()
            .map(|e| (e["payload"]["span_id"].as_str().unwrap(), e))
            .collect();
        for e in &spans {
            assert_eq!(e["run_id"], conversation.as_str(), "{e:#}");
        }
        let researcher = spans
            .iter()
            .find(|e| e["agent"] == "researcher" && e["entity_type"] == "session")
            .expect("the nested agent span");
        let researcher_session = researcher["session_id"].as_str().unwrap();
        assert_eq!(researcher_session, researcher["payload"]["span_id"]);
        assert_eq!(researcher["parent_session_id"], conversation.as_str());
        for e in &spans {
            // A span's session is that of its nearest agent ancestor.
            let parent = e["payload"]["parent_span_id"].as_str();
            let expected = match parent.and_then(|p| ids.get(p)) {
                None => conversation.as_str(),
                Some(p) if p["agent"] == "researcher" && p["entity_type"] == "session" => {
                    researcher_session
                }
                Some(_) if e["entity_type"] == "session" => researcher_session,
                Some(_) => conversation.as_str(),
            };
            assert_eq!(e["session_id"], expected, "{e:#}");
        }
        let fetch = spans
            .iter()
            .find(|e| e["correlation_id"] == format!("call-fetch-{name}-{tag}"))
            .expect("the nested agent's tool");
        assert_eq!(fetch["entity_type"], "tool");
        assert_eq!(fetch["session_id"], researcher_session);
    }
    let tree = &hub.get(&format!("/api/v1/sessions/{conversation}/tree"))["tree"];
    let children = tree["children"].as_array().unwrap();
    assert_eq!(children.len(), 2, "one researcher per trace: {tree:#}");
    let run = &hub.get(&format!("/api/v1/runs/{conversation}"))["run"];
    assert_eq!(run["input_tokens"].as_f64(), Some(214.0), "{run:#}");

    // Exported span by span, children first: still one run (the trace), never split.
    let simple = &traces["simple"];
    let spans = spans_of(&events, simple);
    for e in &spans {
        assert_eq!(e["run_id"], simple.as_str(), "{e:#}");
    }
    let root = spans
        .iter()
        .find(|e| e["payload"]["parent_span_id"].is_null())
        .unwrap();
    assert_eq!(root["payload"]["conversation_id"], conversation.as_str());
}
