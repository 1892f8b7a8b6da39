//! `GET /api/v1/events/stream`: Server-Sent Events with the filter language, resume by
//! `Last-Event-ID` or `last_event_id`, heartbeats and a retry hint.
//!
//! Each client gets a task that pulls from its [`Subscription`] and pushes chunks into a small
//! channel that the response body drains. Every event that is ready when the task wakes goes
//! into one chunk (one write), so a busy stream costs a write per wake-up, not per event. A slow
//! client fills its channel, its task waits, its bus receiver lags, and the subscription catches
//! up from SQLite: ingest never waits for it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde_json::json;
use sightline_schema::Filter;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::ApiError;
use crate::hub::Hub;
use crate::subscription::Subscription;

/// Frames buffered per client before its task waits.
const CLIENT_BUFFER: usize = 8;

fn parse_cursor(text: &str) -> Result<u64, ApiError> {
    text.trim().parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "`{text}` is not a seq; Last-Event-ID must be the id of an event"
        ))
    })
}

/// Largest chunk the task assembles before sending (bounds memory per client).
const MAX_CHUNK: usize = 64 * 1024;
/// A comment line this often keeps proxies and clients from timing the stream out.
const HEARTBEAT: Duration = Duration::from_secs(15);

fn frame(out: &mut Vec<u8>, event: &str, id: Option<u64>, data: &str) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    if let Some(id) = id {
        out.extend_from_slice(b"\nid: ");
        out.extend_from_slice(id.to_string().as_bytes());
    }
    // The JSON the hub writes has no raw newlines, so one `data:` line carries it.
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}

pub async fn sse(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let filter = Filter::from_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let cursor = match (
        headers.get("last-event-id").and_then(|v| v.to_str().ok()),
        params.get("last_event_id"),
    ) {
        (Some(h), _) if !h.trim().is_empty() => Some(parse_cursor(h)?),
        (_, Some(p)) => Some(parse_cursor(p)?),
        _ => None,
    };
    let epoch = params.get("epoch").cloned();
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(CLIENT_BUFFER);
    let (mut sub, gap) = Subscription::start(&hub, filter, cursor, epoch.as_deref()).await;
    let mut first = b"retry: 2000\n\n".to_vec();
    let hello = json!({"epoch": hub.store.epoch(), "head_seq": hub.store.head_seq(), "cursor": sub.cursor()});
    frame(&mut first, "sightline.hello", None, &hello.to_string());
    if let Some(gap) = gap {
        frame(
            &mut first,
            "sightline.reset",
            None,
            &json!({"reason": gap.reason()}).to_string(),
        );
    }
    let _ = tx.try_send(Ok(Bytes::from(first)));
    let mut closing = hub.closing.subscribe();
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                e = tokio::time::timeout(HEARTBEAT, sub.next()) => e,
                _ = tx.closed() => return,
                _ = closing.wait_for(|c| *c) => return,
            };
            let chunk = match next {
                Err(_) => b": keep-alive\n\n".to_vec(),
                Ok(None) => return,
                Ok(Some(e)) => {
                    let mut out = Vec::with_capacity(e.json().len() + 64);
                    frame(&mut out, "sightline.event", Some(e.seq()), e.json());
                    while out.len() < MAX_CHUNK {
                        let Some(e) = sub.next_ready() else { break };
                        frame(&mut out, "sightline.event", Some(e.seq()), e.json());
                    }
                    out
                }
            };
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
        }
    });
    let mut response = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
