//! OTLP/HTTP receiver: `POST /v1/logs`, `/v1/traces`, `/v1/metrics`, protobuf or JSON, optionally
//! gzip, answered in the request's content type with `partialSuccess` when some records could
//! not be turned into events.
//!
//! Mapping: Claude Code's OpenTelemetry log events (`claude_code.api_request` with tokens and
//! cost, `tool_result`, `user_prompt`, `api_error`, `tool_decision`, ...) become `claude` events
//! in the session named by `session.id`; `api_request` uses the same event id as the transcript's
//! usage event for the same request (`claude-usage:<request_id>`), so a call seen by both counts
//! once, and `tool_result` correlates with hook events on `tool_use_id`; Claude Code's bookkeeping
//! logs (`hook_registered`, `hook_execution_*`) are kept at `debug`, and its `claude_code.*` spans
//! are mapped by [`crate::claude::spans`]. GenAI semantic-convention spans (`invoke_agent`,
//! `execute_tool`, `chat`, `gen_ai.usage.*`) become session, tool and message events; any other
//! span, log record or metric point is kept as a generic `otlp` event with its attributes in the
//! payload.
//!
//! A trace is one run and is never split (docs/CONTRACT.md §3.6): exporters send spans as they
//! end, children first and often in separate requests, so every span of a request is learnt
//! before any is mapped, the first request that brings a trace fixes its run (a conversation id
//! one of its spans carries, else the trace id), and a bounded memory of spans
//! (`MAX_SPANS`, `MAX_TRACES`, cleared whole when full) places later spans: a GenAI span in
//! the session of its nearest agent ancestor, a Claude Code span in its subagent's session. Event ids are derived from the record (span ids, or a hash
//! of the encoded record), so an exporter's retry is not stored twice.
//!
//! Status codes follow the OTLP spec: 400 for an undecodable body (not retried), 413 over the
//! size limit (the server checks it, also for a gzip body that inflates past it), 415 for another
//! content type, 503 with `Retry-After` when the write queue is full. This module must never store an
//! attribute but through the event builder, whose validation redacts it.
//!
//! Memory per request is bounded by the request's size (issue 11, item 5). A resource's
//! attributes are turned into JSON once per resource, and each event of its records carries
//! them whole only when they are small ([`RESOURCE_INLINE`] bytes, the usual service name,
//! version, OS and host). A bigger resource is summarised once: the first event of its records
//! carries a summary of at most [`RESOURCE_INLINE`] bytes (the attributes the mapping reads,
//! then as many others, long values cut, as fit), every other event only the attributes the
//! mapping reads; all of them say in `payload.resource_truncated` what was left out. And the events one request becomes
//! are bounded in total JSON size by [`event_budget`]: records past it are refused through
//! `partialSuccess`, never mapped.

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
use sightline_schema::redact::redact_map;
use sightline_schema::{EntityType, Severity, Source, Status};
use sightline_schema::{Event, Timestamp};

use crate::util::{BuilderExt, Metrics, event_id, short, stable_hash};

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

pub(crate) fn s(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn f(m: &Map<String, Value>, key: &str) -> Option<f64> {
    match m.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub(crate) fn nanos_to_ts(n: u64) -> Option<Timestamp> {
    (n > 0).then_some(Timestamp((n / 1_000_000) as i64))
}

fn severity_of(number: i32, text: &str) -> Severity {
    match number {
        1..=8 => Severity::Debug,
        9..=12 => Severity::Info,
        13..=16 => Severity::Warn,
        17.. => Severity::Error,
        _ => match text.to_ascii_lowercase().as_str() {
            "trace" | "debug" => Severity::Debug,
            "warn" | "warning" => Severity::Warn,
            "error" | "fatal" | "critical" => Severity::Error,
            _ => Severity::Info,
        },
    }
}

/// A resource's attributes whose JSON is at most this many bytes are carried whole by every
/// event of its records; a bigger resource is carried as a summary of at most this size.
pub const RESOURCE_INLINE: usize = 1024;
/// Longest string value (in characters) an attribute keeps in a resource summary.
const SUMMARY_VALUE_CHARS: usize = 64;
/// The resource attributes the mapping reads; a summary keeps them first.
const USED_RESOURCE_ATTRIBUTES: &[&str] = &["service.name", "session.id"];

/// What each event of a resource's records carries of it: made once per resource, so the cost
/// of a big resource is paid once per request, not once per record.
pub struct ResourceView {
    service_name: Option<String>,
    session_id: Option<String>,
    /// `payload.resource`: every attribute when small, else a bounded summary.
    shown: Map<String, Value>,
    /// For a big resource: `payload.resource_truncated`, and what the events after the first
    /// carry (the attributes the mapping reads).
    truncated: Option<(Value, Map<String, Value>)>,
    /// Whether an event already carries the summary of a big resource.
    summary_given: std::cell::Cell<bool>,
}

impl ResourceView {
    pub fn of(resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>) -> Self {
        let mut all = resource.map(|r| attrs(&r.attributes)).unwrap_or_default();
        let service_name = s(&all, "service.name");
        let session_id = s(&all, "session.id");
        let size = Value::Object(all.clone()).to_string().len();
        if size <= RESOURCE_INLINE {
            return ResourceView {
                service_name,
                session_id,
                shown: all,
                truncated: None,
                summary_given: std::cell::Cell::new(false),
            };
        }
        // Redact before cutting: a cut secret may no longer look like one to validation.
        redact_map(&mut all);
        let total = all.len();
        let mut shown = Map::new();
        // Room for the braces, and a little for redaction markers growing a value later.
        let mut used = 2;
        let used_first = USED_RESOURCE_ATTRIBUTES
            .iter()
            .filter_map(|k| all.get_key_value(*k))
            .chain(
                all.iter()
                    .filter(|(k, _)| !USED_RESOURCE_ATTRIBUTES.contains(&k.as_str())),
            );
        for (key, value) in used_first {
            let value = match value {
                Value::String(text) if text.chars().count() > SUMMARY_VALUE_CHARS => {
                    let mut cut: String = text.chars().take(SUMMARY_VALUE_CHARS).collect();
                    cut.push('…');
                    Value::String(cut)
                }
                Value::Array(_) | Value::Object(_) => continue,
                other => other.clone(),
            };
            let entry = Value::String(key.clone()).to_string().len() + value.to_string().len() + 2;
            if used + entry > RESOURCE_INLINE - 64 {
                break;
            }
            used += entry;
            shown.insert(key.clone(), value);
        }
        let truncated = json!({"attributes": total, "shown": shown.len(), "bytes": size});
        let used: Map<String, Value> = shown
            .iter()
            .filter(|(k, _)| USED_RESOURCE_ATTRIBUTES.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        ResourceView {
            service_name,
            session_id,
            shown,
            truncated: Some((truncated, used)),
            summary_given: std::cell::Cell::new(false),
        }
    }

    /// Adds the resource to an event's payload: whole when small; for a big one, the summary
    /// on the first event and only the attributes the mapping reads on the others.
    fn add_to_payload(&self, payload: &mut Map<String, Value>) {
        match &self.truncated {
            None => {
                payload.insert("resource".into(), Value::Object(self.shown.clone()));
            }
            Some((truncated, used)) => {
                let shown = if self.summary_given.replace(true) {
                    used
                } else {
                    &self.shown
                };
                payload.insert("resource".into(), Value::Object(shown.clone()));
                payload.insert("resource_truncated".into(), truncated.clone());
            }
        }
    }
}

fn is_claude(resource: &ResourceView, name: &str) -> bool {
    name.starts_with("claude_code.") || resource.service_name.as_deref() == Some("claude-code")
}

/// Maps one log record. `record_hash` identifies it for idempotency.
#[allow(
    clippy::too_many_arguments,
    reason = "the parts of one OTLP record, passed as the decoder walks them"
)]
fn map_log(
    resource: &ResourceView,
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
        .or_else(|| resource.session_id.clone());
    let trace = nonzero_hex(&record.trace_id);
    let run = session.clone().or_else(|| trace.clone());
    let ts =
        nanos_to_ts(record.time_unix_nano).or_else(|| nanos_to_ts(record.observed_time_unix_nano));
    let mut severity = severity_of(record.severity_number, &record.severity_text);
    let mut entity = EntityType::Log;
    let mut status: Option<Status> = None;
    let mut metrics = Metrics::default();
    let mut correlation: Option<String> = None;
    let mut entity_id: Option<String> = None;
    let mut duration = f(&a, "duration_ms");
    let mut id = format!(
        "otlp-log:{}",
        stable_hash(&[&record.encode_to_vec(), scope.as_bytes()])
    );
    // Codex CLI and Gemini CLI name their events in `event.name` (Codex's record `event_name`
    // is a source location) and are mapped by their own modules (crate::codex, crate::gemini).
    let service = resource.service_name.as_deref();
    let cli_name = s(&a, "event.name").unwrap_or_else(|| name.clone());
    let codex = crate::codex::is_codex(service, &cli_name);
    if codex || crate::gemini::is_gemini(service, &cli_name) {
        let mut evidence = Map::new();
        evidence.insert("scope".into(), Value::from(scope));
        evidence.insert("body".into(), body.clone());
        evidence.insert("trace_id".into(), json!(trace));
        evidence.insert("span_id".into(), json!(nonzero_hex(&record.span_id)));
        resource.add_to_payload(&mut evidence);
        return if codex {
            crate::codex::map_otel_log(&a, &cli_name, ts, id, evidence, now)
        } else {
            let body = body_text.as_deref();
            crate::gemini::map_otel_log(&a, &cli_name, body, ts, id, evidence, now)
        };
    }
    let short_name = name
        .strip_prefix("claude_code.")
        .unwrap_or(&name)
        .to_string();
    let title = if claude {
        match short_name.as_str() {
            "api_request" => {
                entity = EntityType::Message;
                metrics.put("input_tokens", f(&a, "input_tokens"));
                metrics.put("output_tokens", f(&a, "output_tokens"));
                metrics.put("cache_read_tokens", f(&a, "cache_read_tokens"));
                metrics.put("cache_write_tokens", f(&a, "cache_creation_tokens"));
                metrics.put("cost_usd", f(&a, "cost_usd"));
                if let Some(r) = s(&a, "request_id") {
                    id = event_id("claude-usage", &[&r]);
                }
                // The request's `llm_request` span and transcript usage share it.
                correlation = s(&a, "request_id");
                format!(
                    "{} · API request",
                    s(&a, "model").unwrap_or_else(|| "model".into())
                )
            }
            "user_prompt" if s(&a, "prompt.id").is_some() => {
                entity = EntityType::Prompt;
                entity_id = s(&a, "prompt.id");
                correlation = entity_id.clone();
                match s(&a, "prompt").filter(|p| p != "<REDACTED>") {
                    Some(p) => format!("Prompt: {}", short(&p, 120)),
                    None => format!(
                        "Prompt ({} characters)",
                        s(&a, "prompt_length").unwrap_or_else(|| "?".into())
                    ),
                }
            }
            // Bookkeeping: hooks being registered and run. Kept, out of the way.
            "hook_registered" => {
                severity = Severity::Debug;
                format!(
                    "Hook registered: {} ({})",
                    s(&a, "hook_event").unwrap_or_else(|| "?".into()),
                    s(&a, "hook_type").unwrap_or_else(|| "?".into())
                )
            }
            "hook_execution_start" | "hook_execution_complete" => {
                severity = Severity::Debug;
                let hook = s(&a, "hook_name")
                    .or_else(|| s(&a, "hook_event"))
                    .unwrap_or_else(|| "hook".into());
                if short_name == "hook_execution_start" {
                    format!("Hook {hook} started")
                } else {
                    duration = f(&a, "total_duration_ms");
                    format!("Hook {hook} done")
                }
            }
            "assistant_response" => {
                entity = EntityType::Message;
                correlation = s(&a, "request_id");
                format!(
                    "{} · response ({} characters)",
                    s(&a, "model").unwrap_or_else(|| "model".into()),
                    s(&a, "response_length").unwrap_or_else(|| "?".into())
                )
            }
            "compaction" => {
                entity = EntityType::Task;
                let ok = s(&a, "success").is_none_or(|v| v == "true");
                status = Some(if ok { Status::Success } else { Status::Failed });
                entity_id = Some("compaction".into());
                metrics.put("context_tokens_before", f(&a, "pre_tokens"));
                metrics.put("context_tokens_after", f(&a, "post_tokens"));
                format!(
                    "Context compacted ({})",
                    s(&a, "trigger").unwrap_or_else(|| "auto".into())
                )
            }
            "subagent_completed" => format!(
                "Subagent {} finished",
                s(&a, "agent_type").unwrap_or_else(|| "subagent".into())
            ),
            "permission_mode_changed" => format!(
                "Permission mode: {}",
                s(&a, "to_mode")
                    .or_else(|| s(&a, "mode"))
                    .or_else(|| s(&a, "permission_mode"))
                    .unwrap_or_else(|| "changed".into())
            ),
            "tool_result" => {
                entity = EntityType::Tool;
                let ok = s(&a, "success").is_none_or(|v| v == "true");
                status = Some(if ok { Status::Success } else { Status::Failed });
                if !ok {
                    severity = Severity::Error;
                }
                correlation = s(&a, "tool_use_id");
                entity_id = correlation.clone();
                let tool = s(&a, "tool_name").unwrap_or_else(|| "tool".into());
                format!("{tool} {}", if ok { "done" } else { "failed" })
            }
            "user_prompt" => {
                entity = EntityType::Prompt;
                match s(&a, "prompt") {
                    Some(p) => format!("Prompt: {}", short(&p, 120)),
                    None => format!(
                        "Prompt ({} characters)",
                        s(&a, "prompt_length").unwrap_or_else(|| "?".into())
                    ),
                }
            }
            "api_error" => {
                severity = Severity::Error;
                format!(
                    "API error: {}",
                    short(&s(&a, "error").unwrap_or_else(|| "unknown".into()), 160)
                )
            }
            "tool_decision" => {
                // A decision ends any wait for it: the session runs on (a rejection warns).
                entity = EntityType::Permission;
                correlation = s(&a, "tool_use_id");
                entity_id = correlation.clone();
                status = Some(Status::Running);
                if s(&a, "decision").is_some_and(|d| d != "accept") {
                    severity = Severity::Warn;
                }
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
    let mut payload = json!({
        "attributes": a,
        "scope": scope,
        "body": body,
        "severity_text": record.severity_text,
        "trace_id": trace,
        "span_id": nonzero_hex(&record.span_id),
    });
    if let Value::Object(map) = &mut payload {
        resource.add_to_payload(map);
    }
    let source_event = if name.is_empty() {
        "log".to_string()
    } else {
        name.clone()
    };
    // Claude Code's logs name no subagent, but a tool call's hooks did, and a subagent's model
    // requests name its type, which the hooks' start and stop times make one subagent when
    // only one of that type was running (claude::link).
    let subagent = if !claude {
        None
    } else if matches!(entity, EntityType::Tool | EntityType::Permission) {
        correlation
            .as_deref()
            .and_then(crate::claude::link::tool_agent)
    } else {
        match (&session, s(&a, "agent.name"), ts) {
            (Some(sess), Some(kind), Some(at)) if kind != "main" => {
                crate::claude::link::subagent_at(sess, &kind, at.millis())
            }
            _ => None,
        }
    };
    if claude
        && let (Some(sess), Some(prompt)) = (&session, s(&a, "prompt.id"))
        && let Some(ts) = ts
    {
        crate::claude::link::note_prompt(sess, &prompt, ts.millis());
    }
    let (session, parent, agent) = match subagent {
        Some(agent_id) => (
            Some(agent_id.clone()),
            session,
            crate::claude::link::agent_type(&agent_id).or_else(|| Some("subagent".into())),
        ),
        None if claude => (session, None, Some("main".to_string())),
        None => (session, None, resource.service_name.clone()),
    };
    Event::builder(
        if claude { Source::Claude } else { Source::Otlp },
        source_event,
        entity,
        title,
    )
    .event_id(id)
    .ts(ts)
    .run_id(run)
    .session_id(session.or(trace))
    .parent_session_id(parent)
    .agent(agent)
    .entity_id(entity_id)
    .status(status)
    .severity(severity)
    .duration_opt(duration.filter(|d| *d >= 0.0))
    .metrics(metrics)
    .correlation_id(correlation)
    .payload_value(payload)
    .build(now)
    .map_err(|e| e.0)
}

/// What the mapping remembers of a span it has seen, to place the spans around it: OTLP
/// exporters send a span when it ends, so children come before their parents, often in an
/// earlier request.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpanInfo {
    pub parent: Option<String>,
    /// `invoke_agent` / `create_agent`: a GenAI span that is a session.
    pub agent: bool,
    /// Claude Code: the subagent the span ran in, when the span says so.
    pub agent_id: Option<String>,
    /// Claude Code: the tool call a `claude_code.tool` span times.
    pub tool_use_id: Option<String>,
    pub tool_name: Option<String>,
}

/// Spans remembered before the map is cleared whole: far more than the spans of the traces a
/// machine runs at once (each entry is ~200 bytes).
const MAX_SPANS: usize = 20_000;
/// Traces whose run is fixed, before that map is cleared whole.
const MAX_TRACES: usize = 20_000;

struct SpanMemory {
    /// (trace id, span id) in hex → what the span says about its place. A span id is unique
    /// only within its trace (OpenTelemetry's rule), so two traces may reuse one.
    spans: std::collections::HashMap<(String, String), SpanInfo>,
    /// trace id (hex) → the run its first span was put in. A trace is one run, never split:
    /// every later span of it follows, whatever it says.
    trace_run: std::collections::HashMap<String, String>,
    /// Claude Code tool spans (by trace and span id) whose permission wait ended in a
    /// rejection: the tool never ran, though its span ends without an error status.
    denied_tools: std::collections::HashSet<(String, String)>,
}

static SPANS: std::sync::LazyLock<std::sync::Mutex<SpanMemory>> = std::sync::LazyLock::new(|| {
    std::sync::Mutex::new(SpanMemory {
        spans: std::collections::HashMap::new(),
        trace_run: std::collections::HashMap::new(),
        denied_tools: std::collections::HashSet::new(),
    })
});

fn span_memory() -> std::sync::MutexGuard<'static, SpanMemory> {
    SPANS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What is known of span `id` of `trace` (this request's spans are known before any is
/// mapped).
pub(crate) fn span_info(trace: &str, id: &str) -> Option<SpanInfo> {
    span_memory()
        .spans
        .get(&(trace.to_string(), id.to_string()))
        .cloned()
}

/// Whether the Claude Code tool span `id` of `trace` waited for a permission that was refused.
pub(crate) fn tool_was_denied(trace: &str, id: &str) -> bool {
    span_memory()
        .denied_tools
        .contains(&(trace.to_string(), id.to_string()))
}

/// The permission decisions of `claude_code.tool.blocked_on_user` that refuse the tool.
pub(crate) fn is_rejection(decision: &str) -> bool {
    matches!(decision, "reject" | "deny" | "denied" | "rejected")
}

fn is_agent_op(op: &str) -> bool {
    matches!(op, "invoke_agent" | "create_agent")
}

/// Learns every span of a request before mapping any, so a child finds a parent sent in the
/// same request, and fixes the run of each trace seen for the first time: the
/// `gen_ai.conversation.id` (or `session.id`) any of its spans in this request carries, else
/// the trace id.
fn learn_spans(req: &ExportTraceServiceRequest) {
    let mut conversations: std::collections::HashMap<String, String> =
        std::collections::HashMap::new();
    let mut memory = span_memory();
    for rs in &req.resource_spans {
        let resource_session = rs
            .resource
            .as_ref()
            .and_then(|r| s(&attrs(&r.attributes), "session.id"));
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                let a = attrs(&span.attributes);
                let trace = nonzero_hex(&span.trace_id).unwrap_or_default();
                if let Some(c) = s(&a, "gen_ai.conversation.id")
                    .or_else(|| s(&a, "session.id"))
                    .or_else(|| resource_session.clone())
                {
                    conversations.entry(trace.clone()).or_insert(c);
                }
                let info = SpanInfo {
                    parent: nonzero_hex(&span.parent_span_id),
                    agent: is_agent_op(&s(&a, "gen_ai.operation.name").unwrap_or_default()),
                    agent_id: s(&a, "agent_id"),
                    tool_use_id: s(&a, "tool_use_id").or_else(|| s(&a, "gen_ai.tool.call.id")),
                    tool_name: s(&a, "tool_name").or_else(|| s(&a, "gen_ai.tool.name")),
                };
                if memory.spans.len() >= MAX_SPANS {
                    memory.spans.clear();
                }
                if span.name == "claude_code.tool.blocked_on_user"
                    && s(&a, "decision").is_some_and(|d| is_rejection(&d))
                    && let Some(parent) = &info.parent
                {
                    if memory.denied_tools.len() >= MAX_SPANS {
                        memory.denied_tools.clear();
                    }
                    memory.denied_tools.insert((trace.clone(), parent.clone()));
                }
                memory.spans.insert((trace, hex(&span.span_id)), info);
            }
        }
    }
    for rs in &req.resource_spans {
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                let trace = nonzero_hex(&span.trace_id).unwrap_or_default();
                if trace.is_empty() || memory.trace_run.contains_key(&trace) {
                    continue;
                }
                if memory.trace_run.len() >= MAX_TRACES {
                    memory.trace_run.clear();
                }
                let run = conversations
                    .get(&trace)
                    .cloned()
                    .unwrap_or_else(|| trace.clone());
                memory.trace_run.insert(trace, run);
            }
        }
    }
}

/// The run a span of `trace` belongs to (fixed by [`learn_spans`]; `fallback` if forgotten).
fn trace_run(trace: &str, fallback: Option<String>) -> Option<String> {
    if trace.is_empty() {
        return fallback;
    }
    let mut memory = span_memory();
    if let Some(run) = memory.trace_run.get(trace) {
        return Some(run.clone());
    }
    let run = fallback.unwrap_or_else(|| trace.to_string());
    memory.trace_run.insert(trace.to_string(), run.clone());
    Some(run)
}

/// The GenAI session that contains the span whose parent is `parent`: the nearest ancestor
/// that is an agent span (the root agent's session is the run itself), else the run. An
/// ancestor not seen yet ends the walk at the run: the usual unknown parent is the root agent,
/// which ends last.
fn genai_session_of(trace: &str, parent: Option<String>, run: &str) -> String {
    let mut current = parent;
    // A bound on the walk, against a cycle in hostile parent ids.
    for _ in 0..64 {
        let Some(id) = current else {
            return run.to_string();
        };
        let Some(info) = span_info(trace, &id) else {
            return run.to_string();
        };
        if info.agent {
            return if info.parent.is_none() {
                run.to_string()
            } else {
                id
            };
        }
        current = info.parent;
    }
    run.to_string()
}

/// The parts of a span every mapping uses.
pub(crate) struct SpanParts<'a> {
    pub span: &'a opentelemetry_proto::tonic::trace::v1::Span,
    pub attributes: &'a Map<String, Value>,
    pub trace: String,
    pub span_id: String,
    pub parent: Option<String>,
    pub failed: bool,
    pub duration: Option<f64>,
}

fn map_span(
    resource: &ResourceView,
    scope: &str,
    span: &opentelemetry_proto::tonic::trace::v1::Span,
    now: Timestamp,
) -> Result<Event, String> {
    let a = attrs(&span.attributes);
    let trace = nonzero_hex(&span.trace_id).unwrap_or_default();
    let span_id = hex(&span.span_id);
    let parent_span = nonzero_hex(&span.parent_span_id);
    let op = s(&a, "gen_ai.operation.name").unwrap_or_default();
    let conversation = s(&a, "gen_ai.conversation.id").or_else(|| s(&a, "session.id"));
    let failed = span.status.as_ref().is_some_and(|st| st.code == 2);
    let duration = (span.end_time_unix_nano > span.start_time_unix_nano)
        .then(|| (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6);
    let mut payload = json!({
        "name": span.name,
        "kind": span.kind,
        "trace_id": trace,
        "span_id": span_id,
        "parent_span_id": parent_span,
        "attributes": a,
        "scope": scope,
        "events": span.events.iter().map(|e| json!({"name": e.name, "time": nanos_to_ts(e.time_unix_nano).map(Timestamp::to_rfc3339), "attributes": attrs(&e.attributes)})).collect::<Vec<_>>(),
    });
    if let Value::Object(map) = &mut payload {
        resource.add_to_payload(map);
    }
    let id = event_id("otlp-span", &[&trace, &span_id]);
    let parts = SpanParts {
        span,
        attributes: &a,
        trace: trace.clone(),
        span_id: span_id.clone(),
        parent: parent_span.clone(),
        failed,
        duration,
    };
    if span.name.starts_with("claude_code.") {
        let session = conversation.or_else(|| resource.session_id.clone());
        return crate::claude::spans::map(&parts, session, payload, id, now);
    }
    // A trace is one run: the run its first span was put in (its conversation, else itself).
    let run = trace_run(&trace, conversation.clone());
    let run_key = run.clone().unwrap_or_default();
    let mut metrics = Metrics::default();
    metrics.put("input_tokens", f(&a, "gen_ai.usage.input_tokens"));
    metrics.put("output_tokens", f(&a, "gen_ai.usage.output_tokens"));
    metrics.put(
        "cache_read_tokens",
        f(&a, "gen_ai.usage.cache_read_input_tokens"),
    );
    metrics.put(
        "cache_write_tokens",
        f(&a, "gen_ai.usage.cache_creation_input_tokens"),
    );
    metrics.put(
        "cost_usd",
        f(&a, "gen_ai.usage.cost").or_else(|| f(&a, "cost_usd")),
    );
    let agent = s(&a, "gen_ai.agent.name").or_else(|| resource.service_name.clone());
    let mut entity_id = None;
    // GenAI spans nest as sessions: an agent span is a session (the trace's root agent is the
    // run's root session), and every other GenAI span belongs to its nearest agent ancestor.
    // Other spans stay in the run's session, nested by their span ids in `payload`.
    let mut session = run.clone();
    let mut parent_session = None;
    let (entity, title) = match op.as_str() {
        "invoke_agent" | "create_agent" => {
            if parent_span.is_some() {
                session = Some(span_id.clone());
                parent_session = Some(genai_session_of(&trace, parent_span.clone(), &run_key));
            }
            (
                EntityType::Session,
                format!(
                    "Agent {}",
                    agent.clone().unwrap_or_else(|| span.name.clone())
                ),
            )
        }
        "execute_tool" => {
            entity_id = s(&a, "gen_ai.tool.call.id");
            session = Some(genai_session_of(&trace, parent_span.clone(), &run_key));
            (
                EntityType::Tool,
                format!(
                    "Tool {}",
                    s(&a, "gen_ai.tool.name").unwrap_or_else(|| span.name.clone())
                ),
            )
        }
        "chat" | "text_completion" | "generate_content" | "embeddings" => {
            session = Some(genai_session_of(&trace, parent_span.clone(), &run_key));
            (
                EntityType::Message,
                format!(
                    "{} {}",
                    op,
                    s(&a, "gen_ai.request.model")
                        .or_else(|| s(&a, "gen_ai.response.model"))
                        .unwrap_or_default()
                ),
            )
        }
        // A trace's root span is its run when the run is the trace: its name titles the run
        // and its end ends it (the run stays running until then, however many child spans
        // have ended).
        _ if parent_span.is_none() && run_key == trace => (EntityType::Run, span.name.clone()),
        _ => (EntityType::Task, span.name.clone()),
    };
    if let (Some(c), Value::Object(map)) = (&conversation, &mut payload)
        && Some(c) != run.as_ref()
    {
        // The span names a conversation its trace's run is not (its trace was placed by a
        // span sent before it): said, never used to split the trace.
        map.insert("conversation_id".into(), Value::String(c.clone()));
    }
    let claude = is_claude(resource, &span.name);
    Event::builder(
        if claude { Source::Claude } else { Source::Otlp },
        if op.is_empty() { span.name.clone() } else { op },
        entity,
        if title.trim().is_empty() {
            "span".to_string()
        } else {
            title
        },
    )
    .event_id(id)
    .ts(nanos_to_ts(span.start_time_unix_nano))
    .run_id(run)
    .session_id(session)
    .parent_session_id(parent_session)
    .agent(agent)
    .entity_id(entity_id.clone().or(Some(span_id)))
    .status(if failed {
        Status::Failed
    } else {
        Status::Success
    })
    .severity(if failed {
        Severity::Error
    } else {
        Severity::Info
    })
    .summary(
        span.status
            .as_ref()
            .map(|st| st.message.clone())
            .filter(|m| !m.is_empty()),
    )
    .duration_opt(duration)
    .metrics(metrics)
    .correlation_id(entity_id)
    .payload_value(payload)
    .build(now)
    .map_err(|e| e.0)
}

fn map_point(
    resource: &ResourceView,
    metric_name: &str,
    unit: &str,
    point_attrs: &[KeyValue],
    time: u64,
    values: &[(String, f64)],
    now: Timestamp,
) -> Result<Event, String> {
    let a = attrs(point_attrs);
    let session = s(&a, "session.id").or_else(|| resource.session_id.clone());
    let mut metrics = Metrics::default();
    for (k, v) in values {
        metrics.put(k.as_str(), Some(*v));
    }
    let shown = values
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    let claude = is_claude(resource, metric_name);
    let a_text = Value::Object(a.clone()).to_string();
    let mut payload = json!({"attributes": a, "unit": unit});
    if let Value::Object(map) = &mut payload {
        resource.add_to_payload(map);
    }
    let title = short(
        &format!(
            "{metric_name} {shown}{}",
            if unit.is_empty() {
                String::new()
            } else {
                format!(" {unit}")
            }
        ),
        200,
    );
    Event::builder(
        if claude { Source::Claude } else { Source::Otlp },
        metric_name,
        EntityType::Metric,
        title,
    )
    .event_id(format!(
        "otlp-metric:{}",
        stable_hash(&[
            metric_name.as_bytes(),
            a_text.as_bytes(),
            &time.to_le_bytes()
        ])
    ))
    .ts(nanos_to_ts(time))
    .run_id(session.clone())
    .session_id(session)
    .agent(resource.service_name.clone())
    .severity(Severity::Debug)
    .metrics(metrics)
    .payload_value(payload)
    .build(now)
    .map_err(|e| e.0)
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
        Some(first) => format!(
            "{} records rejected; first: {}",
            errors.len(),
            first.message
        ),
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
            Signal::Logs => (
                "/v1/logs",
                "OTLP/HTTP logs (protobuf or JSON, optionally gzip)",
            ),
            Signal::Traces => (
                "/v1/traces",
                "OTLP/HTTP traces (protobuf or JSON, optionally gzip)",
            ),
            Signal::Metrics => (
                "/v1/metrics",
                "OTLP/HTTP metrics (protobuf or JSON, optionally gzip)",
            ),
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
                ws_message: None,
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

/// The total JSON size of the events one request may become: 16 bytes of events per byte of
/// request, and at least 4 MiB. An event costs ~500 bytes however small its record (a record
/// can be 2 bytes of protobuf), so without this a body of tiny records would become hundreds of
/// times its size in memory; ordinary batches (an SDK's 512 records, a collector's 8,192 of
/// real spans or logs) stay well inside it.
pub fn event_budget(request_bytes: usize) -> usize {
    request_bytes
        .saturating_mul(EVENT_BYTES_PER_REQUEST_BYTE)
        .max(MIN_EVENT_BUDGET)
}

const EVENT_BYTES_PER_REQUEST_BYTE: usize = 16;
const MIN_EVENT_BUDGET: usize = 4 * 1024 * 1024;
/// Refused records past this many are counted (for `partialSuccess`) without a message of
/// their own, so refusals cannot grow memory faster than the events they replace.
const DETAILED_REFUSALS: usize = 100;

/// Counts the bytes written to it (an event's JSON size, without building the string).
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn json_size(event: &Event) -> usize {
    let mut count = ByteCount(0);
    match serde_json::to_writer(&mut count, event) {
        Ok(()) => count.0,
        // An event always serialises; were it not to, count it as the whole budget.
        Err(_) => usize::MAX,
    }
}

/// Collects mapped records: events, and the records that could not be mapped or did not fit
/// the request's budget (numbered in the order they came, for the partial-success message).
struct Collected {
    events: Vec<Event>,
    errors: Vec<LineError>,
    seen: usize,
    budget: usize,
    budget_left: usize,
    over_budget: bool,
}

impl Collected {
    fn new(request_bytes: usize) -> Collected {
        Collected {
            events: Vec::new(),
            errors: Vec::new(),
            seen: 0,
            budget: event_budget(request_bytes),
            budget_left: event_budget(request_bytes),
            over_budget: false,
        }
    }

    /// Maps one record, unless the request's budget is already spent (then it is refused
    /// without being mapped).
    fn push_with(&mut self, map: impl FnOnce() -> Result<Event, String>) {
        self.seen += 1;
        if self.over_budget {
            self.refuse(String::new(), false);
            return;
        }
        match map() {
            Ok(event) => {
                let size = json_size(&event);
                if size > self.budget_left {
                    self.over_budget = true;
                    let message = format!(
                        "record {} and every record after it are over this request's budget of {} bytes of events ({EVENT_BYTES_PER_REQUEST_BYTE}× its size, at least 4 MiB); send fewer records per request",
                        self.seen, self.budget,
                    );
                    self.refuse(message, true);
                } else {
                    self.budget_left -= size;
                    self.events.push(event);
                }
            }
            Err(message) => self.refuse(message, false),
        }
    }

    fn refuse(&mut self, message: String, always: bool) {
        let message = if always || self.errors.len() < DETAILED_REFUSALS {
            message
        } else {
            String::new()
        };
        self.errors.push(LineError {
            line: self.seen,
            message,
        });
    }
}

fn decode_logs(bytes: &[u8], enc: Encoding, now: Timestamp) -> Result<Collected, HttpError> {
    let req: ExportLogsServiceRequest = decode(bytes, enc)?;
    let mut out = Collected::new(bytes.len());
    for rl in &req.resource_logs {
        let resource = ResourceView::of(rl.resource.as_ref());
        for sl in &rl.scope_logs {
            let scope = sl
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for rec in &sl.log_records {
                out.push_with(|| map_log(&resource, &scope, rec, now));
            }
        }
    }
    Ok(out)
}

fn decode_traces(bytes: &[u8], enc: Encoding, now: Timestamp) -> Result<Collected, HttpError> {
    let req: ExportTraceServiceRequest = decode(bytes, enc)?;
    learn_spans(&req);
    let mut out = Collected::new(bytes.len());
    for rs in &req.resource_spans {
        let resource = ResourceView::of(rs.resource.as_ref());
        for ss in &rs.scope_spans {
            let scope = ss
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for span in &ss.spans {
                out.push_with(|| map_span(&resource, &scope, span, now));
            }
        }
    }
    Ok(out)
}

fn decode_metrics(bytes: &[u8], enc: Encoding, now: Timestamp) -> Result<Collected, HttpError> {
    let req: ExportMetricsServiceRequest = decode(bytes, enc)?;
    let mut out = Collected::new(bytes.len());
    for rm in &req.resource_metrics {
        let resource = ResourceView::of(rm.resource.as_ref());
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let mut push = |attrs_: &[KeyValue], time: u64, values: Vec<(String, f64)>| {
                    out.push_with(|| {
                        map_point(&resource, &m.name, &m.unit, attrs_, time, &values, now)
                    })
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
                    partial_success: some.then_some(ExportLogsPartialSuccess {
                        rejected_log_records: rejected,
                        error_message: message,
                    }),
                },
                enc,
            ),
            Signal::Traces => answer(
                &ExportTraceServiceResponse {
                    partial_success: some.then_some(ExportTracePartialSuccess {
                        rejected_spans: rejected,
                        error_message: message,
                    }),
                },
                enc,
            ),
            Signal::Metrics => answer(
                &ExportMetricsServiceResponse {
                    partial_success: some.then_some(ExportMetricsPartialSuccess {
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

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use proptest::prelude::*;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..KeyValue::default()
        }
    }

    /// One generated span: its index, its parent's index (any index: a cycle, itself, or a
    /// span never sent are all allowed), its GenAI operation, whether it names a conversation.
    type SpanPlan = (usize, Option<usize>, u8, bool);

    fn span(trace: [u8; 16], plan: &SpanPlan, conversation: &str) -> Span {
        let (i, parent, op, names) = *plan;
        let id = |n: usize| ((n as u64) + 1).to_be_bytes().to_vec();
        let mut attributes = Vec::new();
        match op % 4 {
            0 => attributes.push(kv("gen_ai.operation.name", "invoke_agent")),
            1 => attributes.push(kv("gen_ai.operation.name", "execute_tool")),
            2 => attributes.push(kv("gen_ai.operation.name", "chat")),
            _ => {}
        }
        if names {
            attributes.push(kv("gen_ai.conversation.id", conversation));
        }
        Span {
            trace_id: trace.to_vec(),
            span_id: id(i),
            parent_span_id: parent.map(id).unwrap_or_default(),
            name: format!("span {i}"),
            start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
            end_time_unix_nano: 1_700_000_000_000_000_100 + i as u64,
            attributes,
            ..Span::default()
        }
    }

    fn request(spans: Vec<Span>) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
        .encode_to_vec()
    }

    fn plans() -> impl Strategy<Value = Vec<SpanPlan>> {
        prop::collection::vec(
            (
                prop::option::weighted(0.8, 0usize..12),
                any::<u8>(),
                any::<bool>(),
            ),
            1..12,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (p, op, names))| (i, p, op, names))
                .collect()
        })
    }

    proptest! {
        /// Whatever the shape of a trace (parents sent later, in other requests, missing or
        /// cyclic; conversation ids on any spans), however its spans are split into requests
        /// and in whatever order they come, every span of it lands in one run, and every span
        /// has a session.
        #[test]
        fn a_trace_is_one_run_however_it_arrives(
            plans in plans(),
            cuts in prop::collection::vec(any::<bool>(), 12),
            reverse in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut trace = [0u8; 16];
            trace[..8].copy_from_slice(&seed.to_be_bytes());
            trace[8..].copy_from_slice(&(plans.len() as u64 + 1).to_be_bytes());
            let conversation = format!("conv-{seed}");
            let mut spans: Vec<Span> = plans.iter().map(|p| span(trace, p, &conversation)).collect();
            if reverse {
                spans.reverse();
            }
            let mut runs = std::collections::BTreeSet::new();
            let mut batch = Vec::new();
            for (i, s) in spans.into_iter().enumerate() {
                batch.push(s);
                if cuts[i % cuts.len()] {
                    let collected = decode_traces(&request(std::mem::take(&mut batch)), Encoding::Protobuf, Timestamp::now()).unwrap();
                    prop_assert!(collected.errors.is_empty());
                    for e in collected.events {
                        prop_assert!(e.session_id.is_some());
                        runs.insert(e.run_id.clone());
                    }
                }
            }
            if !batch.is_empty() {
                let collected = decode_traces(&request(batch), Encoding::Protobuf, Timestamp::now()).unwrap();
                for e in collected.events {
                    prop_assert!(e.session_id.is_some());
                    runs.insert(e.run_id.clone());
                }
            }
            prop_assert_eq!(runs.len(), 1, "{:?}", runs);
        }
    }

    #[test]
    fn a_conversation_in_the_first_export_of_each_trace_links_them() {
        let conversation = "conv-link-test";
        for seed in [1u8, 2] {
            let trace = [seed; 16];
            let plans = [
                (0, None, 0, true),
                (1, Some(0), 1, false),
                (2, Some(0), 0, false),
                (3, Some(2), 2, false),
            ];
            let spans = plans.iter().map(|p| span(trace, p, conversation)).collect();
            let events = decode_traces(&request(spans), Encoding::Protobuf, Timestamp::now())
                .unwrap()
                .events;
            for e in &events {
                assert_eq!(e.run_id.as_deref(), Some(conversation));
            }
            // The nested agent (span 2) is a session under the root's; its chat is in it.
            let nested = &events[2];
            assert_eq!(nested.session_id.as_deref(), Some("0000000000000003"));
            assert_eq!(nested.parent_session_id.as_deref(), Some(conversation));
            assert_eq!(events[3].session_id.as_deref(), Some("0000000000000003"));
            assert_eq!(events[1].session_id.as_deref(), Some(conversation));
        }
    }

    #[test]
    fn two_traces_that_reuse_a_span_id_do_not_mix_their_nesting() {
        // Span ids are unique only within a trace. Trace A's span 1 is its root agent; trace
        // B's span 1 is an agent nested under B's span 5. A chat under A's span 1, mapped after
        // B was learnt, is still in A's root session (the run), not in B's nested agent.
        let a = [0xA1u8; 16];
        let b = [0xB2u8; 16];
        let first = decode_traces(
            &request(vec![span(a, &(0, None, 0, true), "conv-a")]),
            Encoding::Protobuf,
            Timestamp::now(),
        )
        .unwrap();
        assert!(first.errors.is_empty());
        let nested_b = vec![
            span(b, &(4, None, 0, true), "conv-b"),
            span(b, &(0, Some(4), 0, false), "conv-b"),
        ];
        decode_traces(&request(nested_b), Encoding::Protobuf, Timestamp::now()).unwrap();
        let chat = decode_traces(
            &request(vec![span(a, &(1, Some(0), 2, false), "conv-a")]),
            Encoding::Protobuf,
            Timestamp::now(),
        )
        .unwrap()
        .events;
        assert_eq!(chat[0].run_id.as_deref(), Some("conv-a"));
        assert_eq!(chat[0].session_id.as_deref(), Some("conv-a"));
    }
}
