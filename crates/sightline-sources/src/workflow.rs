//! Workflow executions: producers send `status`, `log`, `progress`, `error` and `complete`
//! updates (`POST /api/v1/workflows/{id}/updates`, or `workflow_update` over `/ws`); they become
//! canonical `workflow`/`step`/`log` events of run `{id}`: the workflow's own updates in session
//! `{id}`, a step's in the step's session `{id}/{step}` under it, so each step has a status of
//! its own that ends when the step does. The server streams them back in the workflow-update
//! shape at `GET /ws/workflow/{id}`.
//!
//! The original update is kept in the event's payload (`payload.update`) so the stream gives
//! back what was sent. This module must never store an update it could not map: a batch with
//! one bad update is refused whole.

use serde_json::{Map, Value, json};
use sightline_schema::{EntityType, Severity, Source, Status};

use crate::util::BuilderExt;
use sightline_core::{
    Decoded, EndpointSpec, HttpError, HttpRequest, HttpSource, LineError, Method, Role,
};
use sightline_schema::{Event, Timestamp};

/// The source's name in health.
pub const NAME: &str = "workflow";
/// The WebSocket message that carries updates (`{type: "workflow_update", workflow_id, updates}`).
pub const WS_MESSAGE: &str = "workflow_update";

/// The update types a producer may send.
pub const KINDS: &[&str] = &["status", "log", "progress", "error", "complete"];

/// Maps a producer's status word onto the canonical vocabulary.
fn canonical_status(word: &str) -> Option<Status> {
    Some(match word.trim().to_ascii_lowercase().as_str() {
        "queued" | "pending" | "waiting" | "scheduled" => Status::Queued,
        "running" | "in_progress" | "started" | "active" | "busy" => Status::Running,
        "success" | "succeeded" | "completed" | "complete" | "done" | "ok" | "passed" => {
            Status::Success
        }
        "failed" | "failure" | "error" | "errored" => Status::Failed,
        "cancelled" | "canceled" | "aborted" | "stopped" => Status::Cancelled,
        "blocked" | "paused" | "waiting_for_input" => Status::Blocked,
        "retry" | "retrying" => Status::Retry,
        "idle" => Status::Idle,
        _ => return None,
    })
}

/// A step's update is about the step, any other about the workflow.
fn entity_of(step: Option<&str>) -> EntityType {
    if step.is_some() {
        EntityType::Step
    } else {
        EntityType::Workflow
    }
}

/// The session of a step: `{workflow}/{step}`, readable when it fits the schema's 256-byte key
/// limit, else the step's name hashed (a long step name must not get the update refused).
pub fn step_session(workflow_id: &str, step: &str) -> String {
    let readable = format!("{workflow_id}/{step}");
    if readable.len() <= 200 && !readable.contains('\0') {
        readable
    } else {
        format!(
            "{workflow_id}/#{}",
            crate::util::stable_hash(&[step.as_bytes()])
        )
    }
}

/// The producer's attempt number (`data.attempt`), when it is a whole number from 1: anything
/// else is left in the payload and the hub counts attempts itself.
fn attempt_of(data: &Map<String, Value>) -> Option<u64> {
    let n = data.get("attempt")?;
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f < 1e15)
                .map(|f| f as u64)
        })
        .filter(|n| *n >= 1)
}

fn str_field<'a>(data: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    data.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// One update → one canonical event (validated).
pub fn update_to_event(workflow_id: &str, update: &Value, now: Timestamp) -> Result<Event, String> {
    let obj = update
        .as_object()
        .ok_or("an update is a JSON object {type, timestamp?, data}")?;
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or("an update needs `type`: status, log, progress, error or complete")?;
    if !KINDS.contains(&kind) {
        return Err(format!(
            "update type `{kind}` is not one of: {}",
            KINDS.join(", ")
        ));
    }
    let empty = Map::new();
    let data = match obj.get("data") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err("`data` must be an object".into()),
    };
    let step = str_field(data, "step");
    let message = str_field(data, "message");
    let status_word = str_field(data, "status");
    let error_text = match data.get("error") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Object(o)) => o
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| Some(Value::Object(o.clone()).to_string())),
        _ => None,
    };
    let progress = data.get("progress").and_then(Value::as_f64);
    if let Some(p) = progress
        && !(0.0..=100.0).contains(&p)
    {
        return Err(format!("progress {p} is not between 0 and 100"));
    }
    let mapped = status_word.and_then(canonical_status);
    let (entity_type, status, severity, title) = match kind {
        "status" => (
            entity_of(step),
            mapped.unwrap_or(Status::Running),
            if mapped == Some(Status::Failed) {
                Severity::Error
            } else {
                Severity::Info
            },
            message.map(str::to_string).unwrap_or_else(|| match step {
                Some(s) => format!("{s}: {}", status_word.unwrap_or("running")),
                None => format!("workflow {}", status_word.unwrap_or("running")),
            }),
        ),
        "log" => (
            EntityType::Log,
            Status::Running,
            match str_field(data, "level").unwrap_or("info") {
                "debug" | "trace" => Severity::Debug,
                "warn" | "warning" => Severity::Warn,
                "error" | "fatal" | "critical" => Severity::Error,
                _ => Severity::Info,
            },
            message.unwrap_or("(empty log line)").to_string(),
        ),
        "progress" => (
            entity_of(step),
            Status::Running,
            Severity::Info,
            message.map(str::to_string).unwrap_or_else(|| {
                let pct = progress.map(|p| format!("{p:.0}%")).unwrap_or_default();
                match step {
                    Some(s) => format!("{s} {pct}").trim().to_string(),
                    None => format!("progress {pct}").trim().to_string(),
                }
            }),
        ),
        "error" => (
            entity_of(step),
            mapped.unwrap_or(Status::Failed),
            Severity::Error,
            error_text
                .clone()
                .or(message.map(str::to_string))
                .unwrap_or_else(|| "workflow error".into()),
        ),
        _ => {
            // complete: success unless it says otherwise.
            let status = match mapped {
                Some(s) => s,
                None if error_text.is_some() => Status::Failed,
                None => Status::Success,
            };
            (
                EntityType::Workflow,
                status,
                if status == Status::Failed {
                    Severity::Error
                } else {
                    Severity::Info
                },
                message
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("workflow {status}")),
            )
        }
    };
    let correlation = match step {
        Some(s) => format!("{workflow_id}/{s}"),
        None => workflow_id.to_string(),
    };
    // A step's updates (its logs too) live in the step's session; the workflow's own and its
    // completion in the workflow's.
    let session = match step {
        Some(s) if entity_type != EntityType::Workflow => step_session(workflow_id, s),
        _ => workflow_id.to_string(),
    };
    let parent = (session != workflow_id).then(|| workflow_id.to_string());
    let mut event = Event::builder(Source::Workflow, kind, entity_type, title)
        .run_id(workflow_id)
        .session_id(session)
        .parent_session_id(parent)
        .entity_id(step.unwrap_or(workflow_id))
        .status(status)
        .severity(severity)
        .correlation_id(correlation)
        .payload_value(json!({"update": update}));
    match obj.get("timestamp") {
        Some(Value::String(ts)) => event = event.ts_text(Some(ts.as_str()))?,
        Some(ts) => {
            if let Some(ms) = ts.as_i64() {
                event = event.ts(Timestamp(ms));
            }
        }
        None => {}
    }
    if let Some(id) = obj.get("id").and_then(Value::as_str) {
        event = event.event_id(format!("wf:{workflow_id}:{id}"));
    }
    if let Some(p) = progress {
        event = event.metric_f64("progress", p);
    }
    if let Some(n) = attempt_of(data) {
        event = event.metric("attempt", n);
    }
    if let Some(d) = data.get("duration_ms").and_then(Value::as_f64) {
        event = event.duration_ms_f64(d);
    }
    event = event.agent(str_field(data, "agent").or(str_field(data, "workflow")));
    event = event.summary(error_text);
    event.build(now).map_err(|e| e.0)
}

/// One update or an array of them → events; all or nothing.
pub fn updates_to_events(
    workflow_id: &str,
    updates: &Value,
    now: Timestamp,
) -> Result<Vec<Event>, String> {
    if workflow_id.is_empty() {
        return Err("the workflow id is empty".into());
    }
    let list: Vec<&Value> = match updates {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    list.into_iter()
        .enumerate()
        .map(|(i, u)| {
            update_to_event(workflow_id, u, now).map_err(|e| format!("update {}: {e}", i + 1))
        })
        .collect()
}

/// `POST /api/v1/workflows/{id}/updates` (and the `workflow_update` WebSocket message): one
/// update or an array; all or nothing.
pub struct WorkflowUpdates {
    spec: EndpointSpec,
}

impl Default for WorkflowUpdates {
    fn default() -> Self {
        WorkflowUpdates {
            spec: EndpointSpec {
                source: NAME,
                method: Method::Post,
                path: "/api/v1/workflows/{id}/updates",
                role: Role::Ingest,
                summary: "Workflow updates {type: status|log|progress|error|complete, timestamp?, data}, one or an array; all or nothing",
                request: &[("application/json", crate::schemas::workflow_updates)],
                reply_status: 202,
                reply: crate::schemas::accepted,
                ws_message: Some(WS_MESSAGE),
            },
        }
    }
}

impl HttpSource for WorkflowUpdates {
    fn spec(&self) -> &EndpointSpec {
        &self.spec
    }

    fn decode(&self, request: &HttpRequest) -> Result<Decoded, HttpError> {
        let id = request.param("id").unwrap_or_default();
        let updates: Value = serde_json::from_slice(&request.body)
            .map_err(|e| HttpError::bad_request(format!("the body is not JSON: {e}")))?;
        let events = updates_to_events(id, &updates, request.now).map_err(|message| {
            HttpError::invalid(vec![LineError {
                line: message
                    .strip_prefix("update ")
                    .and_then(|r| r.split(':').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
                message,
            }])
        })?;
        Ok(Decoded::events(events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_map() {
        let now = Timestamp::now();
        let e = update_to_event(
            "wf1",
            &json!({"type": "progress", "data": {"step": "build", "progress": 40}}),
            now,
        )
        .unwrap();
        assert_eq!(e.entity_type.as_str(), "step");
        assert_eq!(e.metric("progress"), Some(40.0));
        assert_eq!(e.payload["update"]["data"]["step"], "build");
        let done = update_to_event(
            "wf1",
            &json!({"type": "complete", "data": {"error": "boom"}}),
            now,
        )
        .unwrap();
        assert_eq!(done.status.unwrap().as_str(), "failed");
        assert!(update_to_event("wf1", &json!({"type": "nope"}), now).is_err());
        assert!(
            update_to_event(
                "wf1",
                &json!({"type": "progress", "data": {"progress": 140}}),
                now
            )
            .is_err()
        );
        let log = update_to_event(
            "wf1",
            &json!({"type": "log", "data": {"message": "hi", "level": "warning"}}),
            now,
        )
        .unwrap();
        assert_eq!(log.severity.as_str(), "warn");
    }
}
