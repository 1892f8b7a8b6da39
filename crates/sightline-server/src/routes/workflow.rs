//! `GET /ws/workflow/{id}`: a workflow execution's events streamed back in the workflow-update
//! shape `{type: status|log|progress|error|complete, timestamp, seq, data}`, from the beginning
//! (or after `since`) and then live. The updates come in through the workflow source
//! (`sightline_sources::workflow`), which keeps each original update in `payload.update`.
//! `GET /api/v1/workflows` and `/workflows/{id}` serve the executions with their steps,
//! attempts and one progress figure, all computed by `sightline_store::workflow`.
//!
//! A client that stops reading is cut off after the hub's send-stall limit; this module must
//! never let one hold a subscription open forever.

use std::collections::HashMap;

use axum::Json;
use axum::extract::ws::{Message, Utf8Bytes, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sightline_schema::{Event, Filter, Source};
use sightline_store::workflow::{self as wf, Workflow, WorkflowsPage};

use crate::error::ApiError;
use crate::hub::Hub;
use crate::routes::query::{Paging, paging};

/// The largest message a workflow-stream client may send.
const CLIENT_MESSAGE_MAX: usize = 4 * 1024;

/// An event in the workflow-update shape: `{type, timestamp, seq, data}`.
pub fn event_to_update(e: &Event) -> Value {
    let original = e.payload.get("update").and_then(Value::as_object);
    let kind = original
        .and_then(|u| u.get("type"))
        .and_then(Value::as_str)
        .unwrap_or(match e.entity_type.as_str() {
            "log" => "log",
            _ if e.is_error() => "error",
            _ if e.status.is_some_and(|s| s.is_terminal()) => "complete",
            _ if e.metric("progress").is_some() => "progress",
            _ => "status",
        });
    let mut data = original
        .and_then(|u| u.get("data"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    // Canonical fields fill what the producer did not say, so every frame is self-contained.
    data.entry("status")
        .or_insert_with(|| json!(e.status.map(|s| s.as_str())));
    data.entry("message").or_insert_with(|| json!(e.title));
    if let Some(p) = e.metric("progress") {
        data.entry("progress").or_insert_with(|| json!(p));
    }
    if e.entity_type.as_str() == "step" {
        data.entry("step").or_insert_with(|| json!(e.entity_id));
    }
    if e.is_error() {
        data.entry("error")
            .or_insert_with(|| json!(e.summary.clone().unwrap_or_else(|| e.title.clone())));
    }
    json!({"type": kind, "timestamp": e.ts, "seq": e.seq, "data": data})
}

/// `GET /api/v1/workflows?limit=&cursor=`: workflow executions, newest activity first, each
/// with its steps, attempts and progress.
pub async fn list(
    State(hub): State<Hub>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<WorkflowsPage>, ApiError> {
    let Paging { limit, cursor } = paging(&params, 100, wf::MAX_PAGE)?;
    let page = hub
        .store()
        .read(move |c| wf::workflows(c, limit, cursor))
        .await?;
    Ok(Json(WorkflowsPage {
        workflows: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// `GET /api/v1/workflows/{id}`: one execution with its steps, attempts and progress.
pub async fn one(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<Workflow>, ApiError> {
    let key = id.clone();
    hub.store()
        .read(move |c| wf::workflow(c, &key))
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no workflow `{id}`: its updates go to POST /api/v1/workflows/{{id}}/updates"
            ))
        })
}

/// `GET /ws/workflow/{id}?since=<seq>`: the workflow's updates from the beginning (or after
/// `since`), then live.
pub async fn stream(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let since = match params.get("since").or(params.get("last_event_id")) {
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| ApiError::BadRequest(format!("since `{s}` is not a seq")))?,
        None => 0,
    };
    let filter = Filter {
        sources: vec![Source::Workflow],
        runs: vec![id.clone()],
        ..Filter::default()
    };
    // The client only listens: it has nothing to send but pings and a close, so a few KiB is
    // all a message may be (tungstenite's default would let it buffer 64 MiB).
    let ws = ws
        .max_message_size(CLIENT_MESSAGE_MAX)
        .max_frame_size(CLIENT_MESSAGE_MAX);
    Ok(ws.on_upgrade(move |socket| async move {
        let (mut sink, mut incoming) = socket.split();
        let (mut sub, _gap) = hub.core().subscribe(filter, Some(since), None).await;
        let mut closing = hub.core().closing();
        loop {
            tokio::select! {
                e = sub.next() => {
                    let Some(e) = e else { break };
                    let frame = event_to_update(&e.event).to_string();
                    let sent = tokio::time::timeout(
                        hub.settings().ws_send_stall,
                        sink.send(Message::Text(Utf8Bytes::from(frame))),
                    ).await;
                    if !matches!(sent, Ok(Ok(()))) { break; }
                }
                m = incoming.next() => match m {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    _ => {}
                },
                _ = crate::routes::ws::stopping(&mut closing) => {
                    let _ = sink.send(crate::routes::ws::going_away()).await;
                    break;
                }
            }
        }
        let _ = sink.close().await;
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_schema::{Timestamp, parse_event};

    #[test]
    fn events_come_back_as_updates() {
        let now = Timestamp::now();
        let e = parse_event(
            json!({"source": "workflow", "source_event": "progress", "run_id": "wf1",
                "entity_type": "step", "entity_id": "build", "status": "running", "title": "build 40%",
                "metrics": {"progress": 40},
                "payload": {"update": {"type": "progress", "data": {"step": "build", "progress": 40}}}})
            .to_string()
            .as_bytes(),
            now,
        )
        .unwrap();
        let back = event_to_update(&e);
        assert_eq!(back["type"], "progress");
        assert_eq!(back["data"]["step"], "build");
        assert_eq!(back["data"]["progress"], 40);
        let failed = parse_event(
            json!({"source": "workflow", "source_event": "complete", "run_id": "wf1",
                "entity_type": "workflow", "status": "failed", "severity": "error", "title": "boom"})
            .to_string()
            .as_bytes(),
            now,
        )
        .unwrap();
        let back = event_to_update(&failed);
        assert_eq!(back["type"], "error");
        assert_eq!(back["data"]["error"], "boom");
    }
}
