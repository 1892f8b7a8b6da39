//! `GET /api/v1/plugins` and `POST /api/v1/plugins/{name}/invoke`: the HTTP shell over the
//! core's `Analyzers` port (the forward crate runs the plugins).
//!
//! The events sent are stored ones (by seq or run), or inline ones that pass the same
//! validation and redaction as ingest: a plugin must never receive what the hub would not have
//! stored. Listing shows names and kinds, never command lines or URLs.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sightline_core::plugins::{PluginFailure, PluginList};
use sightline_schema::{Timestamp, parse_event};
use sightline_store::query;

use crate::error::ApiError;
use crate::hub::Hub;

/// The most events one invocation sends.
const MAX_EVENTS: usize = 5_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct InvokeBody {
    #[serde(default)]
    events: Option<Vec<Value>>,
    #[serde(default)]
    seqs: Option<Vec<u64>>,
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    context: Option<Value>,
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message.into(), "details": null}})),
    )
        .into_response()
}

/// `GET /api/v1/plugins`
pub async fn list(State(hub): State<Hub>) -> Json<PluginList> {
    Json(hub.plugins().list())
}

/// `POST /api/v1/plugins/{name}/invoke`
pub async fn invoke(
    State(hub): State<Hub>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !hub.plugins().list().plugins.iter().any(|p| p.name == name) {
        return Err(ApiError::NotFound(
            PluginFailure::NotFound(name).to_string(),
        ));
    }
    let req: InvokeBody = if body.is_empty() {
        InvokeBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::BadRequest(format!("body must be {{events|seqs|run_id, context}}: {e}"))
        })?
    };
    // The events to send: given inline (validated and redacted like ingest), looked up by seq,
    // or a whole run.
    let events: Vec<Value> = if let Some(evs) = req.events {
        if evs.len() > MAX_EVENTS {
            return Ok(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_events",
                format!("at most {MAX_EVENTS} events per invocation"),
            ));
        }
        let now = Timestamp::now();
        let mut out = Vec::with_capacity(evs.len());
        for (i, v) in evs.iter().enumerate() {
            let e = parse_event(v.to_string().as_bytes(), now).map_err(|e| {
                ApiError::BadRequest(format!("events[{i}] is not a valid event: {}", e.0))
            })?;
            out.push(serde_json::to_value(&e).unwrap_or(Value::Null));
        }
        out
    } else if let Some(seqs) = req.seqs {
        let seqs: Vec<u64> = seqs.into_iter().take(MAX_EVENTS).collect();
        hub.store()
            .read(move |c| {
                seqs.iter()
                    .filter_map(|s| query::get_event(c, *s).transpose())
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?
            .into_iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect()
    } else if let Some(run_id) = req.run_id.clone() {
        hub.store()
            .read(move |c| query::timeline(c, &run_id, 0, MAX_EVENTS))
            .await?
            .items
            .into_iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect()
    } else {
        return Err(ApiError::BadRequest(
            "send `events`, `seqs` or `run_id`".into(),
        ));
    };
    let mut context = req.context.unwrap_or_else(|| json!({}));
    if let (Some(obj), Some(run)) = (context.as_object_mut(), req.run_id) {
        obj.entry("run_id").or_insert(json!(run));
    }
    Ok(match hub.plugins().invoke(&name, events, context).await {
        Ok(answer) => (StatusCode::OK, Json(answer)).into_response(),
        Err(PluginFailure::NotFound(n)) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            PluginFailure::NotFound(n).to_string(),
        ),
        Err(e @ PluginFailure::Busy(_)) => {
            error(StatusCode::TOO_MANY_REQUESTS, "busy", e.to_string())
        }
        Err(PluginFailure::Timeout(ms)) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "plugin_timeout",
            format!("plugin `{name}` timed out after {ms} ms and was stopped"),
        ),
        Err(PluginFailure::Failed(m)) => error(
            StatusCode::BAD_GATEWAY,
            "plugin_failed",
            format!("plugin `{name}` failed: {m}"),
        ),
        Err(PluginFailure::PluginError(m)) => error(
            StatusCode::BAD_GATEWAY,
            "plugin_error",
            format!(
                "plugin `{name}` answered with an error: {}",
                m.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| m.to_string())
            ),
        ),
    })
}
