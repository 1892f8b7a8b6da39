//! Helpers for the hub's integration tests: a real hub on 127.0.0.1:0 with a temp SQLite
//! file, and a blocking HTTP client (tests run their HTTP in plain threads, like producers).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use serde_json::{Value, json};
use sightline_server::{HubSettings, Running, open_hub, start};
use sightline_store::StoreConfig;

pub struct TestHub {
    pub running: Option<Running>,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub runtime: tokio::runtime::Runtime,
}

impl TestHub {
    pub fn start() -> TestHub {
        Self::start_with(|_, _| {})
    }

    pub fn start_with(configure: impl FnOnce(&mut StoreConfig, &mut HubSettings)) -> TestHub {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut store = StoreConfig::new(dir.path().join("db.sqlite"));
        let mut settings = HubSettings::default();
        configure(&mut store, &mut settings);
        let running = runtime.block_on(async {
            let hub = open_hub(store, settings).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            start(hub, listener).unwrap()
        });
        let url = format!("http://{}", running.addr);
        TestHub {
            running: Some(running),
            url,
            dir,
            runtime,
        }
    }

    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            self.runtime.block_on(r.stop()).unwrap();
        }
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// POSTs and returns (status, body as JSON or as a string value).
pub fn post(url: &str, content_type: &str, body: impl AsRef<[u8]>) -> (u16, Value) {
    let mut res = agent()
        .post(url)
        .header("Content-Type", content_type)
        .send(body.as_ref())
        .unwrap();
    let status = res.status().as_u16();
    let text = res
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_string()
        .unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub fn get_text(url: &str) -> (u16, String) {
    let mut res = agent().get(url).call().unwrap();
    let status = res.status().as_u16();
    (
        status,
        res.body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_string()
            .unwrap(),
    )
}

pub fn get(url: &str) -> Value {
    let (status, text) = get_text(url);
    assert_eq!(status, 200, "GET {url}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// A realistic event; `i` makes its id and content unique.
pub fn event(run: &str, i: usize) -> Value {
    json!({
        "event_id": format!("{run}-{i}"),
        "ts": "2026-11-21T10:00:00.000Z",
        "source": "claude", "source_event": "PostToolUse", "entity_type": "tool",
        "run_id": run, "session_id": run, "agent": "main", "entity_id": format!("toolu_{i}"),
        "status": "success", "severity": "info", "title": format!("Bash cargo test #{i}"),
        "duration_ms": 12, "correlation_id": format!("toolu_{i}"),
        "payload": {"tool_name": "Bash", "tool_input": {"command": format!("cargo test --package p{i}")},
                    "tool_response": {"stdout": "test result: ok. 12 passed", "exit_code": 0}}
    })
}

pub fn ndjson(events: &[Value]) -> String {
    events.iter().map(|e| e.to_string() + "\n").collect()
}

/// An SSE frame: (event name, id, data).
pub type Frame = (String, Option<u64>, String);

/// Reads SSE frames from a stream until `stop` says so or the stream ends.
pub fn read_frames(reader: impl Read, mut on_frame: impl FnMut(Frame) -> bool) {
    let (mut event, mut id, mut data) = (String::new(), None, String::new());
    for line in BufReader::new(reader).lines() {
        let Ok(line) = line else { return };
        if line.is_empty() {
            if !data.is_empty()
                && !on_frame((
                    std::mem::take(&mut event),
                    id.take(),
                    std::mem::take(&mut data),
                ))
            {
                return;
            }
            event.clear();
            data.clear();
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = v.to_string();
        } else if let Some(v) = line.strip_prefix("id: ") {
            id = v.parse().ok();
        } else if let Some(v) = line.strip_prefix("data: ") {
            data.push_str(v);
        }
    }
}

/// Opens an SSE stream (optionally resuming).
pub fn open_stream(url: &str, last_event_id: Option<u64>) -> impl Read + use<> {
    let mut req = agent().get(url);
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", &id.to_string());
    }
    let res = req.call().unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.into_body().into_reader()
}

/// Sends only the head of a POST declaring `length` body bytes and reads the answer (a hub
/// must be able to refuse an oversized body without reading it).
pub fn post_declared_length(url: &str, length: usize) -> (u16, String) {
    use std::io::Write;
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the head and a body of the announced size have arrived.
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let declared = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            });
            if declared.is_some_and(|d| body.len() >= d) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}
