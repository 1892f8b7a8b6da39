//! `serve --otlp-export URL`: forwards every committed event to an OpenTelemetry collector over
//! OTLP/HTTP protobuf (`URL/v1/traces`, `URL/v1/logs`).
//!
//! Runs, sessions, tool calls, steps and traced function calls become spans with parent links
//! (run → session → parent session → tool/call), with ids derived from the hub's ids so a child
//! exported before its parent still points at it; everything else becomes a log record tied to
//! its session's span. A span is sent when its entity ends (terminal status, or a duration).
//!
//! The exporter reads the bus like any subscriber (so it never slows ingest), into a bounded
//! queue: when the collector is slower than the hub the queue fills and events are dropped *and
//! counted* (health shows `otlp-export` with the drop count). Batches are retried with
//! exponential backoff and jitter on 429/502/503/504 and connection errors, honouring
//! `Retry-After`. An `https://` collector is verified against the system's roots and the
//! private CA (`--cacert` / `SIGHTLINE_CA_FILE`), through the shared client stack
//! ([`crate::http`]). This module must never block the bus or the writer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value as Any,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use prost::Message;
use sightline_schema::{Event, Filter, Status as EvStatus};
use tokio::sync::{mpsc, watch};

use sightline_core::Core;

use crate::background::Background;

/// The health entry's name.
pub const NAME: &str = "otlp-export";

#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// Events per request at most.
    pub batch_max: usize,
    /// A partial batch is sent after this long.
    pub flush_every: Duration,
    /// Events waiting for the collector; beyond this they are dropped and counted.
    pub queue_capacity: usize,
    /// Attempts per batch before it is given up (and counted as failed).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub request_timeout: Duration,
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings {
            batch_max: 512,
            flush_every: Duration::from_millis(500),
            queue_capacity: 20_000,
            max_attempts: 8,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// What the exporter did, for health and tests.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub spans: AtomicU64,
    pub logs: AtomicU64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Batches given up after `max_attempts` or refused by the collector.
    pub failed_batches: AtomicU64,
}

pub struct Exporter {
    background: Background,
    pub stats: Arc<ExportStats>,
}

impl Exporter {
    /// Stops reading the bus, sends what is queued (one attempt each), and returns. Dropping an
    /// `Exporter` without `stop` also stops it.
    pub async fn stop(self) {
        self.background.stop(Duration::from_secs(15)).await;
    }
}

/// Starts forwarding live events to `base_url` (e.g. `http://127.0.0.1:4318`).
pub fn start(hub: Core, base_url: &str, settings: ExportSettings) -> Exporter {
    hub.health().ensure(NAME);
    let stats = Arc::new(ExportStats::default());
    let (stop, stop_rx) = watch::channel(false);
    let (tx, rx) = mpsc::channel::<Arc<Event>>(settings.queue_capacity.max(1));
    // The committed head now, before the task that subscribes is scheduled: the subscription
    // replays from here, so every event committed after `start` returns is exported however
    // late the task first runs (a live-only subscription missed what arrived in between).
    let from = hub.store().head_seq();
    let feeder = {
        let hub = hub.clone();
        let stats = stats.clone();
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            let (mut sub, _) = hub.subscribe(Filter::default(), Some(from), None).await;
            loop {
                let e = tokio::select! {
                    e = sub.next() => e,
                    _ = stop_rx.wait_for(|s| *s) => None,
                };
                let Some(e) = e else { break };
                if tx.try_send(e.event.clone()).is_err() {
                    let n = stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    if n == 1 || n.is_power_of_two() {
                        tracing::warn!(
                            "otlp export: the collector is behind; {n} events dropped so far"
                        );
                        report(
                            &hub,
                            None,
                            Some(format!("{n} events dropped: the export queue was full")),
                        );
                    }
                }
            }
        })
    };
    let worker = tokio::spawn(worker(
        hub,
        base_url.trim_end_matches('/').to_string(),
        settings,
        rx,
        stats.clone(),
        stop_rx,
    ));
    Exporter {
        background: Background {
            stop,
            tasks: vec![feeder, worker],
        },
        stats,
    }
}

fn report(hub: &Core, exported: Option<u64>, error: Option<String>) {
    if let Some(n) = exported {
        hub.health()
            .saw(NAME, n, Some(sightline_schema::Timestamp::now()));
    }
    if let Some(e) = error {
        hub.health().failed(NAME, e);
    }
}

async fn worker(
    hub: Core,
    base: String,
    settings: ExportSettings,
    mut rx: mpsc::Receiver<Arc<Event>>,
    stats: Arc<ExportStats>,
    stop: watch::Receiver<bool>,
) {
    let mut mapper = Mapper::default();
    let timeouts = crate::http::Timeouts {
        connect: None,
        global: Some(settings.request_timeout),
    };
    let agent = match crate::http::agent(&base, &timeouts) {
        Ok(agent) => agent,
        Err(e) => {
            // `serve` checks the CA file before it starts us; should it go bad since, the
            // system's roots may still be enough, and health says what is wrong either way.
            tracing::warn!("otlp export: {e}");
            report(&hub, None, Some(e.to_string()));
            crate::http::Trust::system()
                .agent(&timeouts)
                .unwrap_or_else(|_| crate::http::plain_agent(&timeouts))
        }
    };
    loop {
        let mut batch = Vec::with_capacity(settings.batch_max);
        let deadline = tokio::time::sleep(settings.flush_every);
        tokio::pin!(deadline);
        while batch.len() < settings.batch_max {
            tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => batch.push(e),
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        let stopping = *stop.borrow();
        if batch.is_empty() {
            if stopping || rx.is_closed() && rx.is_empty() {
                return;
            }
            continue;
        }
        let (spans, logs) = mapper.map(&batch);
        let attempts = if stopping { 1 } else { settings.max_attempts };
        // Spans, then logs: each kind is one request to its own path, counted when taken.
        let requests = [
            (
                "v1/traces",
                spans.len() as u64,
                (!spans.is_empty()).then(|| traces_request(spans).encode_to_vec()),
                &stats.spans,
            ),
            (
                "v1/logs",
                logs.len() as u64,
                (!logs.is_empty()).then(|| logs_request(logs).encode_to_vec()),
                &stats.logs,
            ),
        ];
        for (path, n, body, taken) in requests {
            let Some(body) = body else { continue };
            let url = format!("{base}/{path}");
            if send(&agent, &url, body, attempts, &settings, &stats, &hub).await {
                taken.fetch_add(n, Ordering::Relaxed);
            }
        }
        report(&hub, Some(batch.len() as u64), None);
    }
}

/// Sends one request with retries; true when the collector took it.
async fn send(
    agent: &ureq::Agent,
    url: &str,
    body: Vec<u8>,
    attempts: u32,
    settings: &ExportSettings,
    stats: &ExportStats,
    hub: &Core,
) -> bool {
    let mut backoff = settings.initial_backoff;
    for attempt in 1..=attempts {
        let (agent, url2, body2) = (agent.clone(), url.to_string(), body.clone());
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let outcome = tokio::task::spawn_blocking(move || {
            agent
                .post(&url2)
                .header("Content-Type", "application/x-protobuf")
                .send(&body2[..])
                .map(|r| {
                    let retry_after = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    (r.status().as_u16(), retry_after)
                })
                .map_err(|e| crate::http::explain(&e, &url2, "the collector").1)
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let wait = match outcome {
            Ok((s, _)) if (200..300).contains(&s) => return true,
            Ok((s, retry_after)) if matches!(s, 429 | 502 | 503 | 504) => {
                report(hub, None, Some(format!("{url}: HTTP {s}; retrying")));
                retry_after.map(Duration::from_secs)
            }
            Ok((s, _)) => {
                // The collector refused the data itself: retrying cannot help.
                stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                report(hub, None, Some(format!("{url}: HTTP {s}; batch dropped")));
                return false;
            }
            Err(e) => {
                report(hub, None, Some(format!("{url}: {e}; retrying")));
                None
            }
        };
        if attempt == attempts {
            break;
        }
        stats.retries.fetch_add(1, Ordering::Relaxed);
        let jitter = 0.5 + pseudo_random() * 0.5;
        let delay = wait
            .unwrap_or(backoff.mul_f64(jitter))
            .min(settings.max_backoff);
        tokio::time::sleep(delay).await;
        backoff = (backoff * 2).min(settings.max_backoff);
    }
    stats.failed_batches.fetch_add(1, Ordering::Relaxed);
    false
}

/// Cheap jitter source; quality does not matter, only that clients do not retry in step.
fn pseudo_random() -> f64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (fnv(&n.to_le_bytes()) % 10_000) as f64 / 10_000.0
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// 8-byte span id from a key (never all zero).
pub fn span_id(key: &str) -> Vec<u8> {
    let h = fnv(key.as_bytes()).max(1);
    h.to_be_bytes().to_vec()
}

/// 16-byte trace id from a key (never all zero).
pub fn trace_id(key: &str) -> Vec<u8> {
    let mut v = fnv(key.as_bytes()).max(1).to_be_bytes().to_vec();
    v.extend_from_slice(&fnv(format!("{key}#trace").as_bytes()).to_be_bytes());
    v
}

fn kv(key: &str, value: Any) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        // opentelemetry-proto 0.33 (the workspace's version) adds the profiles string index.
        key_strindex: 0,
    }
}

fn s(v: &str) -> Any {
    Any::StringValue(v.to_string())
}

fn attributes(e: &Event) -> Vec<KeyValue> {
    let mut out = vec![
        kv("sightline.seq", Any::IntValue(e.seq as i64)),
        kv("sightline.event_id", s(&e.event_id)),
        kv("sightline.source", s(e.source.as_str())),
        kv("sightline.source_event", s(&e.source_event)),
        kv("sightline.entity_type", s(e.entity_type.as_str())),
    ];
    let opt = [
        ("sightline.run_id", &e.run_id),
        ("sightline.session_id", &e.session_id),
        ("sightline.parent_session_id", &e.parent_session_id),
        ("sightline.agent", &e.agent),
        ("sightline.entity_id", &e.entity_id),
        ("sightline.correlation_id", &e.correlation_id),
        ("sightline.summary", &e.summary),
        ("host.name", &e.host),
    ];
    for (k, v) in opt {
        if let Some(v) = v {
            out.push(kv(k, s(v)));
        }
    }
    if let Some(st) = e.status {
        out.push(kv("sightline.status", s(st.as_str())));
    }
    if let Some(pid) = e.pid {
        out.push(kv("process.pid", Any::IntValue(pid)));
    }
    if let Some(m) = &e.metrics {
        for (k, v) in m {
            if let Some(f) = v.as_f64() {
                out.push(kv(&format!("sightline.metrics.{k}"), Any::DoubleValue(f)));
            }
        }
    }
    out
}

fn nanos(ms: i64) -> u64 {
    (ms.max(0) as u64) * 1_000_000
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Run,
    Session,
    Leaf,
    Log,
}

fn kind(e: &Event) -> Kind {
    match e.entity_type.as_str() {
        "run" | "workflow" if e.run_id.is_some() => Kind::Run,
        "session" | "pane" if e.session_id.is_some() => Kind::Session,
        "tool" | "call" | "step" | "task" => Kind::Leaf,
        _ => Kind::Log,
    }
}

/// Turns events into spans and log records, remembering when open entities started.
#[derive(Default)]
pub struct Mapper {
    started: HashMap<String, i64>,
}

/// At most this many open entities are remembered (the oldest half is forgotten beyond it).
const MAX_OPEN: usize = 100_000;

impl Mapper {
    fn trace_of(e: &Event) -> Vec<u8> {
        trace_id(
            e.run_id
                .as_deref()
                .or(e.session_id.as_deref())
                .unwrap_or(&e.event_id),
        )
    }

    fn session_span(session: &str) -> Vec<u8> {
        span_id(&format!("session:{session}"))
    }

    fn run_span(run: &str) -> Vec<u8> {
        span_id(&format!("run:{run}"))
    }

    /// The span an event lives in: its session, else its run.
    fn context_span(e: &Event) -> Vec<u8> {
        match (&e.session_id, &e.run_id) {
            (Some(sess), _) => Self::session_span(sess),
            (None, Some(run)) => Self::run_span(run),
            _ => Vec::new(),
        }
    }

    fn leaf_key(e: &Event) -> String {
        format!(
            "leaf:{}:{}:{}",
            e.session_id
                .as_deref()
                .or(e.run_id.as_deref())
                .unwrap_or(""),
            e.entity_type.as_str(),
            e.correlation_id
                .as_deref()
                .or(e.entity_id.as_deref())
                .unwrap_or(&e.event_id)
        )
    }

    pub fn map(&mut self, batch: &[Arc<Event>]) -> (Vec<Span>, Vec<LogRecord>) {
        let mut spans = Vec::new();
        let mut logs = Vec::new();
        for e in batch {
            let k = kind(e);
            if k == Kind::Log {
                logs.push(self.log(e));
                continue;
            }
            let (key, id, parent) = match k {
                Kind::Run => {
                    let run = e.run_id.as_deref().unwrap_or("");
                    (format!("run:{run}"), Self::run_span(run), Vec::new())
                }
                Kind::Session => {
                    let sess = e.session_id.as_deref().unwrap_or("");
                    let parent = match (&e.parent_session_id, &e.run_id) {
                        (Some(p), _) => Self::session_span(p),
                        (None, Some(r)) if r != sess => Self::run_span(r),
                        _ => Vec::new(),
                    };
                    (format!("session:{sess}"), Self::session_span(sess), parent)
                }
                _ => {
                    let key = Self::leaf_key(e);
                    let id = span_id(&key);
                    (key, id, Self::context_span(e))
                }
            };
            let ends = e.status.is_some_and(EvStatus::is_terminal)
                || (k == Kind::Leaf
                    && e.duration_ms.is_some()
                    && e.status != Some(EvStatus::Running));
            if !ends {
                // A start (or progress): remember when it began; the span is sent at its end.
                if self.started.len() >= MAX_OPEN {
                    let mut keys: Vec<(String, i64)> = self.started.drain().collect();
                    keys.sort_by_key(|(_, t)| *t);
                    self.started = keys.split_off(keys.len() / 2).into_iter().collect();
                }
                self.started.entry(key).or_insert(e.ts.millis());
                continue;
            }
            let end = e.ts.millis();
            let start = self
                .started
                .remove(&key)
                .or_else(|| e.duration_ms_f64().map(|d| end - d as i64))
                .unwrap_or(end)
                .min(end);
            let failed = e.is_error();
            spans.push(Span {
                trace_id: Self::trace_of(e),
                span_id: id,
                parent_span_id: parent,
                name: e.title.clone(),
                kind: span::SpanKind::Internal as i32,
                start_time_unix_nano: nanos(start),
                end_time_unix_nano: nanos(end),
                attributes: attributes(e),
                status: Some(Status {
                    code: if failed {
                        status::StatusCode::Error as i32
                    } else {
                        status::StatusCode::Ok as i32
                    },
                    message: if failed {
                        e.summary.clone().unwrap_or_else(|| e.title.clone())
                    } else {
                        String::new()
                    },
                }),
                ..Default::default()
            });
        }
        (spans, logs)
    }

    fn log(&self, e: &Event) -> LogRecord {
        let (number, text) = match e.severity.as_str() {
            "debug" => (5, "DEBUG"),
            "warn" => (13, "WARN"),
            "error" => (17, "ERROR"),
            _ => (9, "INFO"),
        };
        let context = Self::context_span(e);
        LogRecord {
            time_unix_nano: nanos(e.ts.millis()),
            observed_time_unix_nano: nanos(sightline_schema::Timestamp::now().millis()),
            severity_number: number,
            severity_text: text.to_string(),
            body: Some(AnyValue {
                value: Some(s(&e.title)),
            }),
            attributes: attributes(e),
            trace_id: if context.is_empty() {
                Vec::new()
            } else {
                Self::trace_of(e)
            },
            span_id: context,
            ..Default::default()
        }
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", s("sightline")),
            kv("service.version", s(env!("CARGO_PKG_VERSION"))),
        ],
        ..Default::default()
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "sightline".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    })
}

fn traces_request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                scope: scope(),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn logs_request(logs: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records: logs,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_schema::{Timestamp, parse_event};

    fn ev(v: serde_json::Value) -> Arc<Event> {
        Arc::new(parse_event(v.to_string().as_bytes(), Timestamp::now()).unwrap())
    }

    #[test]
    fn hierarchy_run_session_tool() {
        let mut m = Mapper::default();
        let base = serde_json::json!({"source": "claude", "source_event": "x", "title": "t", "run_id": "r1"});
        let with = |extra: serde_json::Value| {
            let mut v = base.clone();
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            ev(v)
        };
        let batch = vec![
            with(
                serde_json::json!({"entity_type": "run", "status": "running", "ts": "2026-01-01T00:00:00Z"}),
            ),
            with(
                serde_json::json!({"entity_type": "session", "session_id": "s1", "status": "running"}),
            ),
            with(
                serde_json::json!({"entity_type": "tool", "session_id": "s1", "correlation_id": "c1", "status": "running"}),
            ),
            with(
                serde_json::json!({"entity_type": "tool", "session_id": "s1", "correlation_id": "c1", "status": "success"}),
            ),
            with(serde_json::json!({"entity_type": "message", "session_id": "s1"})),
            with(
                serde_json::json!({"entity_type": "session", "session_id": "s1", "status": "success"}),
            ),
            with(serde_json::json!({"entity_type": "run", "status": "success"})),
        ];
        let (spans, logs) = m.map(&batch);
        assert_eq!(spans.len(), 3);
        assert_eq!(logs.len(), 1);
        let (tool, session, run) = (&spans[0], &spans[1], &spans[2]);
        assert_eq!(tool.parent_span_id, session.span_id);
        assert_eq!(session.parent_span_id, run.span_id);
        assert!(run.parent_span_id.is_empty());
        assert_eq!(tool.trace_id, run.trace_id);
        assert_eq!(logs[0].span_id, session.span_id);
        assert!(run.start_time_unix_nano < run.end_time_unix_nano);
    }
}
