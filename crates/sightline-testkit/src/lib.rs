//! The one test kit of sightline's integration tests: a real hub (the whole server, every
//! endpoint source mounted, the plugin runner) on 127.0.0.1:0 with a temporary SQLite file,
//! background sources on demand, and blocking HTTP, SSE and request-head helpers (tests run
//! their HTTP in plain threads, like producers do).
//!
//! Dev-only. It must never end a process it did not start, and never leave a hub running
//! after its `TestHub` is dropped.

pub mod peers;
/// The secret corpus (one entry per published token format, header, URL credential, CLI flag,
/// connection string, `.env` line), shared with the schema crate's redaction tests.
#[path = "../../sightline-schema/tests/secrets/corpus.rs"]
pub mod secrets;
pub mod tls;
pub mod webhook;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sightline_server::{HubSettings, Parts, Running, open_hub, start};
use sightline_sources::{AdapterConfig, Adapters, Registration};
use sightline_store::StoreConfig;

pub use sightline_core::Core;
/// Every endpoint source, as the binary mounts them.
pub use sightline_sources::endpoints;

/// The runtime a test hub runs on: two workers, like a small machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The string `field` of every item of the JSON array `list` (panics, naming the field, when
/// `list` is not an array or an item's field is not a string: what a test asserts on).
pub fn strs<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|item| {
            item[field]
                .as_str()
                .unwrap_or_else(|| panic!("no string `{field}` in {item}"))
        })
        .collect()
}

/// The `seqs` of an ingest answer.
pub fn seqs(answer: &Value) -> Vec<u64> {
    answer["seqs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// A hub served in this process, on a port of its own, over a database in a temp dir.
pub struct TestHub {
    pub running: Option<Running>,
    pub adapters: Option<Adapters>,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub runtime: tokio::runtime::Runtime,
}

impl TestHub {
    /// A hub with default settings.
    pub fn start() -> TestHub {
        Self::start_with(|_, _| {})
    }

    /// A hub whose store and settings `configure` may change first.
    pub fn start_with(configure: impl FnOnce(&mut StoreConfig, &mut HubSettings)) -> TestHub {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        Self::start_on(dir, db, 0, configure)
    }

    /// A hub over `db` on 127.0.0.1:`port` (0 picks a free one), so a test can stop it and
    /// start another on the same port and database.
    pub fn serve(db: &Path, port: u16) -> TestHub {
        let dir = tempfile::tempdir().unwrap();
        Self::start_on(dir, db.to_path_buf(), port, |_, _| {})
    }

    /// A hub over `db` on `port`, kept alive with `dir` (where background sources keep their
    /// files).
    pub fn start_on(
        dir: tempfile::TempDir,
        db: PathBuf,
        port: u16,
        configure: impl FnOnce(&mut StoreConfig, &mut HubSettings),
    ) -> TestHub {
        Self::launch(dir, db, port, configure, None)
    }

    /// A hub with default settings serving `https://` with the CA's server certificate (for
    /// `localhost` and 127.0.0.1); clients trust it through [`tls::TestCa::agent`].
    pub fn start_tls(ca: &tls::TestCa) -> TestHub {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        let tls = sightline_server::auth::load_tls(&ca.cert, &ca.key)
            .expect("the test CA's server certificate and key load");
        Self::launch(dir, db, 0, |_, _| {}, Some(tls))
    }

    fn launch(
        dir: tempfile::TempDir,
        db: PathBuf,
        port: u16,
        configure: impl FnOnce(&mut StoreConfig, &mut HubSettings),
        tls: Option<Arc<sightline_server::auth::TlsServerConfig>>,
    ) -> TestHub {
        let runtime = runtime();
        let mut store = StoreConfig::new(&db);
        let mut settings = HubSettings::default();
        configure(&mut store, &mut settings);
        let running = runtime.block_on(async {
            let parts = Parts {
                settings,
                endpoints: sightline_sources::endpoints(),
                plugins: Arc::new(sightline_forward::Plugins),
            };
            let hub = open_hub(store, parts).unwrap();
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            match &tls {
                Some(tls) => sightline_server::start_tls(hub, listener, tls.clone()).unwrap(),
                None => start(hub, listener).unwrap(),
            }
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        Self::assemble(runtime, running, scheme, dir, db)
    }

    /// The `TestHub` of a hub started on `runtime`, its URL in `scheme`.
    fn assemble(
        runtime: tokio::runtime::Runtime,
        running: Running,
        scheme: &str,
        dir: tempfile::TempDir,
        db: PathBuf,
    ) -> TestHub {
        let url = format!("{scheme}://{}", running.addr);
        TestHub {
            running: Some(running),
            adapters: None,
            url,
            dir,
            db,
            runtime,
        }
    }

    /// A hub whose writer stops inside its first commit until the returned gate is opened, with
    /// a write queue of `capacity` events: the way to drive every ingest path into a full
    /// queue.
    pub fn start_gated(capacity: usize) -> (TestHub, Gate) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        let runtime = runtime();
        let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let held = gate.clone();
        let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let bus = sightline_core::Bus::default();
        let publisher = bus.clone();
        let mut config = StoreConfig::new(&db);
        config.queue_capacity = capacity;
        let store = sightline_store::Store::open(
            config,
            Box::new(move |events| {
                if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    let (open, wake) = &*held;
                    let mut open = open.lock().unwrap();
                    while !*open {
                        open = wake.wait(open).unwrap();
                    }
                }
                publisher.publish(events);
            }),
        )
        .unwrap();
        let running = runtime.block_on(async {
            let hub = sightline_server::Hub::new(
                Core::with(store, bus),
                HubSettings::default(),
                sightline_sources::endpoints(),
                Arc::new(sightline_forward::Plugins),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            start(hub, listener).unwrap()
        });
        (
            Self::assemble(runtime, running, "http", dir, db),
            Gate(gate),
        )
    }

    /// The hub's core (store, bus, health, ingest).
    pub fn core(&self) -> Core {
        self.running.as_ref().unwrap().hub.core().clone()
    }

    /// A config for background sources whose paths all live in this hub's temp dir.
    pub fn config(&self) -> AdapterConfig {
        let mut c = AdapterConfig::from_env(&self.dir.path().join("data"), &self.db);
        c.claude_dir = self.dir.path().join("claude");
        c.codex_dir = self.dir.path().join("codex");
        c.gemini_dir = self.dir.path().join("gemini");
        c.opencode_spool = self.dir.path().join("jsonl");
        c.jsonl_paths = vec![c.opencode_spool.clone()];
        c.log_files = vec![];
        c.poll = Duration::from_millis(100);
        c
    }

    /// Starts background sources of `registry` by name.
    pub fn start_adapters(
        &mut self,
        registry: &[Registration],
        config: &AdapterConfig,
        names: &[&str],
    ) {
        let core = self.core();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let _guard = self.runtime.enter();
        self.adapters = Some(Adapters::start(core, registry, config, Some(&names)).unwrap());
    }

    pub fn stop_adapters(&mut self) {
        if let Some(a) = self.adapters.take() {
            self.runtime.block_on(a.stop());
        }
    }

    /// Stops the background sources, then the hub (which drains its queue).
    pub fn stop(&mut self) {
        self.stop_adapters();
        if let Some(r) = self.running.take() {
            self.runtime.block_on(r.stop()).unwrap();
        }
    }

    /// GET `path` on this hub; asserts a 200.
    pub fn get(&self, path: &str) -> Value {
        get(&format!("{}{path}", self.url))
    }

    /// This hub's health entry of the source or adapter `name` (see [`adapter_health`]).
    pub fn adapter_health(&self, name: &str) -> Option<Value> {
        adapter_health(&self.url, name)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        post(
            &format!("{}{path}", self.url),
            "application/json",
            body.to_string(),
        )
    }

    /// Every stored event (oldest first, up to 1,000).
    pub fn events(&self) -> Vec<Value> {
        let v = self.get("/api/v1/search?order=asc&limit=1000");
        v["events"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `check` holds on the stored events.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let events = self.events();
            if check(&events) {
                return events;
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out waiting for {what}; have {} events: {}",
                    events.len(),
                    serde_json::to_string_pretty(&events).unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The bytes of the database and its WAL, for "the secret is not on disk" checks.
    pub fn db_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.db.clone().into_os_string();
            p.push(suffix);
            if let Ok(b) = std::fs::read(PathBuf::from(p)) {
                out.extend(b);
            }
        }
        out
    }
}

type GateState = Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>;

/// Holds a gated hub's writer inside its first commit until [`Gate::open`] (or until the gate
/// is dropped, so a failing test never leaves the writer stuck).
pub struct Gate(GateState);

impl Gate {
    /// Lets the writer go on.
    pub fn open(self) {
        drop(self);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let (open, wake) = &*self.0;
        *open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        wake.notify_all();
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A WebSocket connection to a hub's `/ws`.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl TestHub {
    /// Opens `/ws` (call inside `self.runtime.block_on`).
    pub async fn ws(&self) -> Ws {
        let url = format!("{}/ws", self.url.replace("http://", "ws://"));
        tokio_tungstenite::connect_async(url).await.unwrap().0
    }
}

/// Sends one JSON message.
pub async fn ws_send(ws: &mut Ws, message: Value) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        message.to_string(),
    ))
    .await
    .unwrap();
}

/// Reads frames until one whose `type` is one of `types` (10 s at most, else the test fails)
/// and returns it; other frames are skipped.
pub async fn ws_until(ws: &mut Ws, types: &[&str]) -> Value {
    use futures_util::StreamExt;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {types:?} frame within 10 s"))
            .expect("the socket closed")
            .expect("a frame");
        if let tokio_tungstenite::tungstenite::Message::Text(t) = frame {
            let v: Value = serde_json::from_str(&t).unwrap();
            if types.iter().any(|k| v["type"] == *k) {
                return v;
            }
        }
    }
}

/// Polls `done` every 50 ms until it holds; panics naming `what` once `budget` has passed. For
/// a condition a test needs before its next step (a count, a queue depth, a task that has
/// judged an event), instead of a pause that only usually suffices: give a loaded 2-core CI
/// machine room (20 s).
pub fn wait_until(what: &str, budget: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < budget,
            "timed out after {budget:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `needle` occurs in `hay` (bytes of a file, say).
pub fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A loopback port nothing listens on right now (for a hub started later on a fixed port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET that returns the status with the body (JSON, or the text as a JSON string).
pub fn get_status(url: &str) -> (u16, Value) {
    let (status, text) = get_text(url);
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The kit's blocking HTTP agent: the product's own plain client stack
/// (`sightline_forward::http::plain_agent`), status codes are answers, not errors, and a request
/// gives up after 60 s so a test that goes wrong fails instead of hanging. It trusts no
/// certificate: an `https://` URL is an error that says so, never a panic (for a TLS hub, use
/// [`tls::TestCa::agent`]).
pub fn agent() -> ureq::Agent {
    agent_with(Duration::from_secs(60))
}

/// [`agent`] with another time limit for the whole request: short to poll a peer that is still
/// starting, long for a call that makes a model answer.
pub fn agent_with(timeout: Duration) -> ureq::Agent {
    sightline_forward::http::plain_agent(&sightline_forward::http::Timeouts {
        connect: None,
        global: Some(timeout),
    })
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

/// The entry of the source or adapter `name` in `GET /api/v1/health`'s `adapters` of the hub at
/// `hub_url`; `None` when the hub does not list it.
pub fn adapter_health(hub_url: &str, name: &str) -> Option<Value> {
    let health = get(&format!("{hub_url}/api/v1/health"));
    health["adapters"]
        .as_array()
        .unwrap_or_else(|| panic!("health lists no adapters: {health}"))
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
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

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_forward::http::{FailureKind, explain};

    /// The kit's agents are the product's client stack: an `https://` hub answers the one that
    /// trusts its CA, and is an error that says what to do (not a panic) to the plain one.
    #[test]
    fn an_https_hub_answers_the_trusting_agent_and_is_a_clear_error_to_the_plain_one() {
        let ca = tls::TestCa::new();
        let hub = TestHub::start_tls(&ca);
        assert!(hub.url.starts_with("https://"), "{}", hub.url);
        let url = format!("{}/api/v1/health", hub.url);

        let mut res = ca
            .agent()
            .get(&url)
            .call()
            .expect("the CA's agent connects");
        assert_eq!(res.status().as_u16(), 200);
        let health: Value = res.body_mut().read_json().unwrap();
        assert_eq!(health["service"], "sightline", "{health}");

        for plain in [agent(), agent_with(Duration::from_secs(5))] {
            let error = plain.get(&url).call().unwrap_err();
            let (kind, message) = explain(&error, &url, "the hub");
            assert_eq!(kind, FailureKind::Tls, "{error}");
            assert!(
                message.contains("not trusted") && message.contains("--cacert"),
                "{message}"
            );
        }
    }
}
