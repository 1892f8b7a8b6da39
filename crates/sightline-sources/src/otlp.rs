//! OTLP/HTTP receiver: `POST /v1/logs`, `/v1/traces`, `/v1/metrics`, protobuf or JSON, optionally
//! gzip, answered in the request's content type with `partialSuccess` when some records could
//! not be turned into events.
//!
//! Mapping: Claude Code's OpenTelemetry log events (`claude_code.api_request` with tokens and
//! cost, `tool_result`, `user_prompt`, `api_error`, `tool_decision`, ...) become `claude` events
//! in the session named by `session.id`; `api_request` uses the same event id as the transcript's
//! usage event for the same request (`claude-usage:<request_id>`), so a call seen by both counts
//! once, and `tool_result` correlates with hook events on `tool_use_id`. GenAI semantic-convention
//! spans (`invoke_agent`, `execute_tool`, `chat`, `gen_ai.usage.*`) become session, tool and
//! message events; any other span, log record or metric point is kept as a generic `otlp` event
//! with its attributes in the payload. Event ids are derived from the record (span ids, or a hash
//! of the encoded record), so an exporter's retry is not stored twice.
//!
//! Status codes follow the OTLP spec: 400 for an undecodable body (not retried), 413 over the
//! size limit (the server checks it, also for a gzip body that inflates past it), 415 for another
//! content type, 503 with `Retry-After` when the write queue is full. This module must never store an
//! attribute without the redaction that `to_event` applies.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;
use serde_json::{Map, Value, json};
use sightline_core::{
    Accepted, Decoded, EndpointSpec, HttpError, HttpRequest, HttpSource, LineError, Method, Reply,
    Role,
};
use sightline_schema::{Event, Timestamp};

use crate::util::{event_id, metrics_value, put_metric, short, stable_hash, to_event};

pub const NAME: &str = "otlp";

pub fn any_to_json(v: &AnyValue) -> Value {
    match &v.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(any_to_json).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(attrs(&kv.values)),
        Some(any_value::Value::BytesValue(b)) => Value::String(hex(b)),
        Some(_) => Value::Null,
    }
}

/// Attributes as a JSON object (dotted keys kept as they are).
pub fn attrs(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(any_to_json).unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn nonzero_hex(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty() && bytes.iter().any(|b| *b != 0)).then(|| hex(bytes))
}

fn s(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn f(m: &Map<String, Value>, key: &str) -> Option<f64> {
    match m.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn nanos_to_ts(n: u64) -> Option<String> {
    (n > 0).then(|| Timestamp((n / 1_000_000) as i64).to_rfc3339())
}

fn severity_of(number: i32, text: &str) -> &'static str {
    match number {
        1..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17.. => "error",
        _ => match text.to_ascii_lowercase().as_str() {
            "trace" | "debug" => "debug",
            "warn" | "warning" => "warn",
            "error" | "fatal" | "critical" => "error",
            _ => "info",
        },
    }
}

fn is_claude(resource: &Map<String, Value>, name: &str) -> bool {
    name.starts_with("claude_code.")
        || s(resource, "service.name").as_deref() == Some("claude-code")
}

/// Maps one log record. `record_hash` identifies it for idempotency.
#[allow(clippy::too_many_arguments)]
fn map_log(
    resource: &Map<String, Value>,
    scope: &str,
    record: &opentelemetry_proto::tonic::logs::v1::LogRecord,
    now: Timestamp,
) -> Result<Event, String> {
    let a = attrs(&record.attributes);
    let body = record.body.as_ref().map(any_to_json).unwrap_or(Value::Null);
    let body_text = match &body {
        Value::String(t) => Some(t.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    // Claude Code puts `claude_code.<event>` in the body and `<event>` in `event.name` (which
    // newer SDKs carry as the record's `event_name`): the prefixed form wins.
    let mut name = body_text
        .clone()
        .filter(|b| b.starts_with("claude_code.") && !b.contains(' '))
        .or_else(|| Some(record.event_name.clone()).filter(|n| !n.is_empty()))
        .or_else(|| s(&a, "event.name"))
        .unwrap_or_default();
    let claude = is_claude(resource, &name);
    if claude && !name.is_empty() && !name.starts_with("claude_code.") {
        name = format!("claude_code.{name}");
    }
    let session = s(&a, "session.id")
        .or_else(|| s(&a, "gen_ai.conversation.id"))
        .or_else(|| s(resource, "session.id"));
    let trace = nonzero_hex(&record.trace_id);
    let run = session.clone().or_else(|| trace.clone());
    let ts =
        nanos_to_ts(record.time_unix_nano).or_else(|| nanos_to_ts(record.observed_time_unix_nano));
    let mut severity = severity_of(record.severity_number, &record.severity_text);
    let mut entity = "log";
    let mut status: Option<&str> = None;
    let mut metrics = Map::new();
    let mut correlation: Option<String> = None;
    let mut entity_id: Option<String> = None;
    let mut duration = f(&a, "duration_ms");
    let mut id = format!(
        "otlp-log:{}",
        stable_hash(&[&record.encode_to_vec(), scope.as_bytes()])
    );
    let short_name = name
        .strip_prefix("claude_code.")
        .unwrap_or(&name)
        .to_string();
    let title = if claude {
        match short_name.as_str() {
            "api_request" => {
                entity = "message";
                put_metric(&mut metrics, "input_tokens", f(&a, "input_tokens"));
                put_metric(&mut metrics, "output_tokens", f(&a, "output_tokens"));
                put_metric(
                    &mut metrics,
                    "cache_read_tokens",
                    f(&a, "cache_read_tokens"),
                );
                put_metric(
                    &mut metrics,
                    "cache_write_tokens",
                    f(&a, "cache_creation_tokens"),
                );
                put_metric(&mut metrics, "cost_usd", f(&a, "cost_usd"));
                if let Some(r) = s(&a, "request_id") {
                    id = event_id("claude-usage", &[&r]);
                }
                format!(
                    "{} · API request",
                    s(&a, "model").unwrap_or_else(|| "model".into())
                )
            }
            "tool_result" => {
                entity = "tool";
                let ok = s(&a, "success").is_none_or(|v| v == "true");
                status = Some(if ok { "success" } else { "failed" });
                if !ok {
                    severity = "error";
                }
                correlation = s(&a, "tool_use_id");
                entity_id = correlation.clone();
                let tool = s(&a, "tool_name").unwrap_or_else(|| "tool".into());
                format!("{tool} {}", if ok { "done" } else { "failed" })
            }
            "user_prompt" => {
                entity = "prompt";
                match s(&a, "prompt") {
                    Some(p) => format!("Prompt: {}", short(&p, 120)),
                    None => format!(
                        "Prompt ({} characters)",
                        s(&a, "prompt_length").unwrap_or_else(|| "?".into())
                    ),
                }
            }
            "api_error" => {
                severity = "error";
                format!(
                    "API error: {}",
                    short(&s(&a, "error").unwrap_or_else(|| "unknown".into()), 160)
                )
            }
            "tool_decision" => {
                entity = "permission";
                correlation = s(&a, "tool_use_id");
                format!(
                    "{} {}",
                    s(&a, "tool_name").unwrap_or_else(|| "tool".into()),
                    s(&a, "decision").unwrap_or_else(|| "decided".into())
                )
            }
            other => format!("Claude Code {other}"),
        }
    } else {
        duration = None;
        body_text
            .as_deref()
            .map(|b| short(b, 200))
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| {
                if name.is_empty() {
                    "log record".into()
                } else {
                    name.clone()
                }
            })
    };
    let raw = json!({
        "event_id": id,
        "ts": ts,
        "source": if claude { "claude" } else { "otlp" },
        "source_event": if name.is_empty() { "log".to_string() } else { name.clone() },
        "run_id": run,
        "session_id": session.or(trace.clone()),
        "agent": if claude { Some("main".to_string()) } else { s(resource, "service.name") },
        "entity_type": entity,
        "entity_id": entity_id,
        "status": status,
        "severity": severity,
        "title": title,
        "duration_ms": duration.filter(|d| *d >= 0.0).map(crate::util::num),
        "metrics": metrics_value(metrics),
        "correlation_id": correlation,
        "payload": {
            "attributes": a,
            "resource": resource,
            "scope": scope,
            "body": body,
            "severity_text": record.severity_text,
            "trace_id": trace,
            "span_id": nonzero_hex(&record.span_id),
        },
    });
    to_event(raw, now)
}

fn map_span(
    resource: &Map<String, Value>,
    scope: &str,
    span: &opentelemetry_proto::tonic::trace::v1::Span,
    now: Timestamp,
) -> Result<Event, String> {
    let a = attrs(&span.attributes);
    let trace = nonzero_hex(&span.trace_id).unwrap_or_default();
    let span_id = hex(&span.span_id);
    let op = s(&a, "gen_ai.operation.name").unwrap_or_default();
    let conversation = s(&a, "gen_ai.conversation.id").or_else(|| s(&a, "session.id"));
    let run = conversation.clone().unwrap_or_else(|| trace.clone());
    let failed = span.status.as_ref().is_some_and(|st| st.code == 2);
    let duration = (span.end_time_unix_nano > span.start_time_unix_nano)
        .then(|| (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6);
    let mut metrics = Map::new();
    put_metric(
        &mut metrics,
        "input_tokens",
        f(&a, "gen_ai.usage.input_tokens"),
    );
    put_metric(
        &mut metrics,
        "output_tokens",
        f(&a, "gen_ai.usage.output_tokens"),
    );
    put_metric(
        &mut metrics,
        "cache_read_tokens",
        f(&a, "gen_ai.usage.cache_read_input_tokens"),
    );
    put_metric(
        &mut metrics,
        "cache_write_tokens",
        f(&a, "gen_ai.usage.cache_creation_input_tokens"),
    );
    put_metric(
        &mut metrics,
        "cost_usd",
        f(&a, "gen_ai.usage.cost").or_else(|| f(&a, "cost_usd")),
    );
    let agent = s(&a, "gen_ai.agent.name").or_else(|| s(resource, "service.name"));
    let mut entity_id = None;
    let (entity, title) = match op.as_str() {
        "invoke_agent" | "create_agent" => (
            "session",
            format!(
                "Agent {}",
                agent.clone().unwrap_or_else(|| span.name.clone())
            ),
        ),
        "execute_tool" => {
            entity_id = s(&a, "gen_ai.tool.call.id");
            (
                "tool",
                format!(
                    "Tool {}",
                    s(&a, "gen_ai.tool.name").unwrap_or_else(|| span.name.clone())
                ),
            )
        }
        "chat" | "text_completion" | "generate_content" | "embeddings" => (
            "message",
            format!(
                "{} {}",
                op,
                s(&a, "gen_ai.request.model")
                    .or_else(|| s(&a, "gen_ai.response.model"))
                    .unwrap_or_default()
            ),
        ),
        // A trace's root span is its run: its name titles the run and its end ends it (the
        // run stays running until then, however many child spans have ended).
        _ if span.parent_span_id.iter().all(|b| *b == 0) && conversation.is_none() => {
            ("run", span.name.clone())
        }
        _ => ("task", span.name.clone()),
    };
    let claude = is_claude(resource, &span.name);
    let raw = json!({
        "event_id": event_id("otlp-span", &[&trace, &span_id]),
        "ts": nanos_to_ts(span.start_time_unix_nano),
        "source": if claude { "claude" } else { "otlp" },
        "source_event": if op.is_empty() { span.name.clone() } else { op.clone() },
        "run_id": if run.is_empty() { None } else { Some(run.clone()) },
        "session_id": if run.is_empty() { None } else { Some(run) },
        "agent": agent,
        "entity_type": entity,
        "entity_id": entity_id.clone().or(Some(span_id.clone())),
        "status": if failed { "failed" } else { "success" },
        "severity": if failed { "error" } else { "info" },
        "title": if title.trim().is_empty() { "span".to_string() } else { title },
        "summary": span.status.as_ref().map(|st| st.message.clone()).filter(|m| !m.is_empty()),
        "duration_ms": duration.map(crate::util::num),
        "metrics": metrics_value(metrics),
        "correlation_id": entity_id,
        "payload": {
            "name": span.name,
            "kind": span.kind,
            "trace_id": trace,
            "span_id": span_id,
            "parent_span_id": nonzero_hex(&span.parent_span_id),
            "attributes": a,
            "resource": resource,
            "scope": scope,
            "events": span.events.iter().map(|e| json!({"name": e.name, "time": nanos_to_ts(e.time_unix_nano), "attributes": attrs(&e.attributes)})).collect::<Vec<_>>(),
        },
    });
    to_event(raw, now)
}

fn map_point(
    resource: &Map<String, Value>,
    metric_name: &str,
    unit: &str,
    point_attrs: &[KeyValue],
    time: u64,
    values: &[(String, f64)],
    now: Timestamp,
) -> Result<Event, String> {
    let a = attrs(point_attrs);
    let session = s(&a, "session.id").or_else(|| s(resource, "session.id"));
    let mut metrics = Map::new();
    for (k, v) in values {
        put_metric(&mut metrics, k, Some(*v));
    }
    let shown = values
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    let claude = is_claude(resource, metric_name);
    let a_text = Value::Object(a.clone()).to_string();
    let raw = json!({
        "event_id": format!("otlp-metric:{}", stable_hash(&[metric_name.as_bytes(), a_text.as_bytes(), &time.to_le_bytes()])),
        "ts": nanos_to_ts(time),
        "source": if claude { "claude" } else { "otlp" },
        "source_event": metric_name,
        "run_id": session,
        "session_id": session,
        "agent": s(resource, "service.name"),
        "entity_type": "metric",
        "severity": "debug",
        "title": short(&format!("{metric_name} {shown}{}", if unit.is_empty() { String::new() } else { format!(" {unit}") }), 200),
        "metrics": metrics_value(metrics),
        "payload": {"attributes": a, "resource": resource, "unit": unit},
    });
    to_event(raw, now)
}

/// Which encoding the request used.
#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

fn encoding(request: &HttpRequest) -> Result<Encoding, HttpError> {
    let ct = request.content_type().unwrap_or("").to_ascii_lowercase();
    if ct.contains("protobuf") {
        Ok(Encoding::Protobuf)
    } else if ct.contains("json") {
        Ok(Encoding::Json)
    } else {
        Err(HttpError::unsupported_media_type(format!(
            "Content-Type `{ct}` is not application/x-protobuf or application/json"
        )))
    }
}

fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    bytes: &[u8],
    encoding: Encoding,
) -> Result<T, HttpError> {
    match encoding {
        Encoding::Protobuf => {
            T::decode(bytes).map_err(|e| HttpError::bad_request(format!("bad protobuf: {e}")))
        }
        Encoding::Json => serde_json::from_slice(bytes)
            .map_err(|e| HttpError::bad_request(format!("bad OTLP JSON: {e}"))),
    }
}

fn answer<T: Message + serde::Serialize>(response: &T, encoding: Encoding) -> Reply {
    match encoding {
        Encoding::Protobuf => Reply {
            status: 200,
            content_type: "application/x-protobuf",
            body: response.encode_to_vec(),
        },
        Encoding::Json => Reply::json(200, response),
    }
}

fn rejected_message(errors: &[LineError]) -> String {
    match errors.first() {
        Some(first) => format!("{} records rejected; first: {}", errors.len(), first.message),
        None => String::new(),
    }
}

/// Which OTLP signal an endpoint receives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    Logs,
    Traces,
    Metrics,
}

/// One OTLP/HTTP endpoint (`/v1/logs`, `/v1/traces` or `/v1/metrics`).
pub struct Otlp {
    signal: Signal,
    spec: EndpointSpec,
}

impl Otlp {
    pub fn new(signal: Signal) -> Otlp {
        let (path, summary) = match signal {
            Signal::Logs => ("/v1/logs", "OTLP/HTTP logs (protobuf or JSON, optionally gzip)"),
            Signal::Traces => ("/v1/traces", "OTLP/HTTP traces (protobuf or JSON, optionally gzip)"),
            Signal::Metrics => ("/v1/metrics", "OTLP/HTTP metrics (protobuf or JSON, optionally gzip)"),
        };
        Otlp {
            signal,
            spec: EndpointSpec {
                source: NAME,
                method: Method::Post,
                path,
                role: Role::Ingest,
                summary,
                request: &[
                    ("application/x-protobuf", crate::schemas::binary),
                    ("application/json", crate::schemas::any_object),
                ],
                reply_status: 200,
                reply: crate::schemas::otlp_reply,
            },
        }
    }

    /// The three endpoints.
    pub fn all() -> [Otlp; 3] {
        [
            Otlp::new(Signal::Logs),
            Otlp::new(Signal::Traces),
            Otlp::new(Signal::Metrics),
        ]
    }
}

/// Collects mapped records: events, and the records that could not be mapped (numbered in the
/// order they came, for the partial-success message).
#[derive(Default)]
struct Collected {
    events: Vec<Event>,
    errors: Vec<LineError>,
    seen: usize,
}

impl Collected {
    fn push(&mut self, result: Result<Event, String>) {
        self.seen += 1;
        match result {
            Ok(e) => self.events.push(e),
            Err(message) => self.errors.push(LineError {
                line: self.seen,
                message,
            }),
        }
    }
}

fn decode_logs(bytes: &[u8], enc: Encoding, now: Timestamp) -> Result<Collected, HttpError> {
    let req: ExportLogsServiceRequest = decode(bytes, enc)?;
    let mut out = Collected::default();
    for rl in &req.resource_logs {
        let resource = rl
            .resource
            .as_ref()
            .map(|r| attrs(&r.attributes))
            .unwrap_or_default();
        for sl in &rl.scope_logs {
            let scope = sl
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for rec in &sl.log_records {
                out.push(map_log(&resource, &scope, rec, now));
            }
        }
    }
    Ok(out)
}

fn decode_traces(bytes: &[u8], enc: Encoding, now: Timestamp) -> Result<Collected, HttpError> {
    let req: ExportTraceServiceRequest = decode(bytes, enc)?;
    let mut out = Collected::default();
    for rs in &req.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| attrs(&r.attributes))
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            let scope = ss
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for span in &ss.spans {
                out.push(map_span(&resource, &scope, span, now));
            }
        }
    }
    Ok(out)
}

fn decode_metrics(bytes: &[u8], enc: Encoding, now: Timestamp) -> Result<Collected, HttpError> {
    let req: ExportMetricsServiceRequest = decode(bytes, enc)?;
    let mut out = Collected::default();
    for rm in &req.resource_metrics {
        let resource = rm
            .resource
            .as_ref()
            .map(|r| attrs(&r.attributes))
            .unwrap_or_default();
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let mut push = |attrs_: &[KeyValue], time: u64, values: Vec<(String, f64)>| {
                    out.push(map_point(&resource, &m.name, &m.unit, attrs_, time, &values, now))
                };
                match &m.data {
                    Some(metric::Data::Gauge(g)) => {
                        for p in &g.data_points {
                            push(
                                &p.attributes,
                                p.time_unix_nano,
                                vec![(m.name.clone(), number(p.value))],
                            );
                        }
                    }
                    Some(metric::Data::Sum(sum)) => {
                        for p in &sum.data_points {
                            push(
                                &p.attributes,
                                p.time_unix_nano,
                                vec![(m.name.clone(), number(p.value))],
                            );
                        }
                    }
                    Some(metric::Data::Histogram(h)) => {
                        for p in &h.data_points {
                            let mut v = vec![(format!("{}.count", m.name), p.count as f64)];
                            if let Some(sum) = p.sum {
                                v.push((format!("{}.sum", m.name), sum));
                            }
                            push(&p.attributes, p.time_unix_nano, v);
                        }
                    }
                    Some(metric::Data::ExponentialHistogram(h)) => {
                        for p in &h.data_points {
                            let mut v = vec![(format!("{}.count", m.name), p.count as f64)];
                            if let Some(sum) = p.sum {
                                v.push((format!("{}.sum", m.name), sum));
                            }
                            push(&p.attributes, p.time_unix_nano, v);
                        }
                    }
                    Some(metric::Data::Summary(sm)) => {
                        for p in &sm.data_points {
                            push(
                                &p.attributes,
                                p.time_unix_nano,
                                vec![
                                    (format!("{}.count", m.name), p.count as f64),
                                    (format!("{}.sum", m.name), p.sum),
                                ],
                            );
                        }
                    }
                    None => {}
                }
            }
        }
    }
    Ok(out)
}

impl HttpSource for Otlp {
    fn spec(&self) -> &EndpointSpec {
        &self.spec
    }

    fn decode(&self, request: &HttpRequest) -> Result<Decoded, HttpError> {
        let enc = encoding(request)?;
        let collected = match self.signal {
            Signal::Logs => decode_logs(&request.body, enc, request.now)?,
            Signal::Traces => decode_traces(&request.body, enc, request.now)?,
            Signal::Metrics => decode_metrics(&request.body, enc, request.now)?,
        };
        Ok(Decoded {
            events: collected.events,
            refused: collected.errors,
        })
    }

    fn reply(&self, request: &HttpRequest, _accepted: &Accepted, refused: &[LineError]) -> Reply {
        let enc = encoding(request).unwrap_or(Encoding::Json);
        let rejected = refused.len() as i64;
        let message = rejected_message(refused);
        let some = !refused.is_empty();
        match self.signal {
            Signal::Logs => answer(
                &ExportLogsServiceResponse {
                    partial_success: some.then(|| ExportLogsPartialSuccess {
                        rejected_log_records: rejected,
                        error_message: message,
                    }),
                },
                enc,
            ),
            Signal::Traces => answer(
                &ExportTraceServiceResponse {
                    partial_success: some.then(|| ExportTracePartialSuccess {
                        rejected_spans: rejected,
                        error_message: message,
                    }),
                },
                enc,
            ),
            Signal::Metrics => answer(
                &ExportMetricsServiceResponse {
                    partial_success: some.then(|| ExportMetricsPartialSuccess {
                        rejected_data_points: rejected,
                        error_message: message,
                    }),
                },
                enc,
            ),
        }
    }
}

fn number(v: Option<number_data_point::Value>) -> f64 {
    match v {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => 0.0,
    }
}
