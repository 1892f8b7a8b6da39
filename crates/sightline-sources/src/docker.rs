//! `POST /telemetry`: the Docker-agent `TelemetryEvent` (camelCase) turned into canonical events.
//!
//! The whole original object is kept as the payload, so fields this mapping does not know are
//! never lost. Needs `Authorization: Bearer` when the hub has a token (checked by the auth layer).

use serde_json::{Map, Value};
use sightline_core::{
    Decoded, EndpointSpec, HttpError, HttpRequest, HttpSource, LineError, Method, Role,
};
use sightline_schema::validate::describe_json_error;
use sightline_schema::{EntityType, Event, Severity, Source, Status, Timestamp};

use crate::util::{BuilderExt, Metrics};

/// The source's name in health.
pub const NAME: &str = "telemetry";

fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `timestamp` may be RFC 3339 or epoch milliseconds (or seconds).
fn timestamp(obj: &Map<String, Value>) -> Option<String> {
    match obj.get("timestamp")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => {
            let v = n.as_f64()?;
            let millis = if v < 1e11 { v * 1000.0 } else { v } as i64;
            Some(Timestamp(millis).to_rfc3339())
        }
        _ => None,
    }
}

/// Maps one TelemetryEvent to a canonical (validated, redacted) event.
pub fn map_telemetry(obj: Map<String, Value>, now: Timestamp) -> Result<Event, String> {
    let kind = text(&obj, "type").ok_or("`type` is required (agent_start, agent_complete, agent_error, tool_call, bash_command, metric, custom, ...)")?;
    let agent_id = text(&obj, "agentId");
    let session_id = text(&obj, "sessionId").or_else(|| agent_id.clone());
    let run_id = text(&obj, "workflowId").or_else(|| session_id.clone());
    let data = obj
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let tool = text(&obj, "toolName")
        .or_else(|| text(&data, "toolName"))
        .or_else(|| text(&data, "tool"));
    let (entity_type, status, severity, title) = match kind.as_str() {
        "agent_start" => (
            EntityType::Session,
            Some(Status::Running),
            Severity::Info,
            format!("Agent {} started", agent_id.as_deref().unwrap_or("?")),
        ),
        "agent_complete" => (
            EntityType::Session,
            Some(Status::Success),
            Severity::Info,
            format!("Agent {} completed", agent_id.as_deref().unwrap_or("?")),
        ),
        "agent_error" => (
            EntityType::Session,
            Some(Status::Failed),
            Severity::Error,
            format!("Agent {} failed", agent_id.as_deref().unwrap_or("?")),
        ),
        "tool_call" => (
            EntityType::Tool,
            Some(if data.get("error").is_some() {
                Status::Failed
            } else {
                Status::Success
            }),
            if data.get("error").is_some() {
                Severity::Error
            } else {
                Severity::Info
            },
            format!("Tool {}", tool.as_deref().unwrap_or("call")),
        ),
        // A non-zero exit code (or an error) is a failed command.
        "bash_command" => {
            let failed = data.get("error").is_some_and(|e| !e.is_null())
                || data
                    .get("exitCode")
                    .or_else(|| data.get("exit_code"))
                    .and_then(Value::as_i64)
                    .is_some_and(|c| c != 0);
            (
                EntityType::Tool,
                Some(if failed {
                    Status::Failed
                } else {
                    Status::Success
                }),
                if failed {
                    Severity::Error
                } else {
                    Severity::Info
                },
                format!("Bash {}", text(&data, "command").unwrap_or_default()),
            )
        }
        "metric" => (
            EntityType::Metric,
            None,
            Severity::Info,
            format!("Metric {}", text(&data, "name").unwrap_or_default()),
        ),
        "custom" => (
            EntityType::Log,
            None,
            Severity::Info,
            text(&data, "name")
                .or_else(|| text(&data, "message"))
                .unwrap_or_else(|| "custom".into()),
        ),
        other => (EntityType::Log, None, Severity::Info, other.to_string()),
    };
    // What went wrong, or what the agent said it finished with.
    let summary = text(&data, "error")
        .or_else(|| {
            data.get("error")
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(|| text(&data, "message"))
        .or_else(|| text(&data, "result"));
    // Numbers as the producer sent them (an integer stays one).
    let mut metrics = Metrics::default();
    if let Some(usage) = obj.get("tokenUsage").and_then(Value::as_object) {
        for (from, to) in [
            ("input", "input_tokens"),
            ("inputTokens", "input_tokens"),
            ("output", "output_tokens"),
            ("outputTokens", "output_tokens"),
            ("cacheRead", "cache_read_tokens"),
            ("cacheWrite", "cache_write_tokens"),
            ("cost", "cost_usd"),
            ("costUsd", "cost_usd"),
            ("total", "total_tokens"),
        ] {
            if let Some(Value::Number(v)) = usage.get(from) {
                metrics.put_number(to, v.clone());
            }
        }
    }
    if kind == "metric"
        && let (Some(name), Some(Value::Number(value))) = (text(&data, "name"), data.get("value"))
    {
        metrics.put_number(name, value.clone());
    }
    let duration = match data.get("durationMs").or_else(|| data.get("duration")) {
        Some(Value::Number(d)) if d.as_f64().is_some_and(|d| d >= 0.0) => Some(d.clone()),
        _ => None,
    };
    let ts = timestamp(&obj);
    Event::builder(Source::Docker, kind, entity_type, title)
        .event_id(text(&obj, "id"))
        .ts_text(ts.as_deref())?
        .run_id(run_id)
        .session_id(session_id)
        .agent(agent_id)
        .host(text(&obj, "containerId"))
        .entity_id(tool.or_else(|| text(&obj, "nodeId")))
        .status(status)
        .severity(severity)
        .summary(summary)
        .duration_number(duration)
        .metrics(metrics)
        .correlation_id(text(&data, "toolUseId").or_else(|| text(&data, "callId")))
        .payload(obj)
        .build(now)
        .map_err(|e| e.0)
}

/// `POST /telemetry`: one `TelemetryEvent` or an array; all or nothing.
pub struct DockerTelemetry {
    spec: EndpointSpec,
}

impl Default for DockerTelemetry {
    fn default() -> Self {
        DockerTelemetry {
            spec: EndpointSpec {
                source: NAME,
                method: Method::Post,
                path: "/telemetry",
                role: Role::Ingest,
                summary: "Docker-agent TelemetryEvent (camelCase), one or an array; all or nothing",
                request: &[("application/json", crate::schemas::telemetry_request)],
                reply_status: 202,
                reply: crate::schemas::accepted,
                ws_message: None,
            },
        }
    }
}

impl HttpSource for DockerTelemetry {
    fn spec(&self) -> &EndpointSpec {
        &self.spec
    }

    fn decode(&self, request: &HttpRequest) -> Result<Decoded, HttpError> {
        let value: Value = serde_json::from_slice(&request.body)
            .map_err(|e| HttpError::bad_request(describe_json_error(&e)))?;
        let items = match value {
            Value::Array(items) => items,
            other => vec![other],
        };
        let mut events = Vec::with_capacity(items.len());
        let mut errors = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let result = match item {
                Value::Object(obj) => map_telemetry(obj, request.now),
                _ => Err("each TelemetryEvent must be a JSON object".to_string()),
            };
            match result {
                Ok(e) => events.push(e),
                Err(message) => errors.push(LineError {
                    line: i + 1,
                    message,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(HttpError::invalid(errors));
        }
        Ok(Decoded::events(events))
    }
}
