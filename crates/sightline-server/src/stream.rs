//! `GET /api/v1/events/stream`: Server-Sent Events with the filter language, resume by
//! `Last-Event-ID` or `last_event_id`, heartbeats and a retry hint.
//!
//! Each client gets a task that pulls from its [`Subscription`] and pushes frames into a small
//! channel that the response body drains. A slow client fills that channel, its task waits, its
//! bus receiver lags, and the subscription catches up from SQLite: ingest never waits for it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use sightline_schema::Filter;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::ApiError;
use crate::hub::Hub;
use crate::subscription::Subscription;

/// Frames buffered per client before its task waits.
const CLIENT_BUFFER: usize = 512;

fn parse_cursor(text: &str) -> Result<u64, ApiError> {
    text.trim().parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "`{text}` is not a seq; Last-Event-ID must be the id of an event"
        ))
    })
}

pub async fn sse(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
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
    let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
    let (mut sub, gap) = Subscription::start(&hub, filter, cursor, epoch.as_deref()).await;
    let hello = json!({"epoch": hub.store.epoch(), "head_seq": hub.store.head_seq(), "cursor": sub.cursor()});
    let _ = tx.try_send(
        SseEvent::default()
            .retry(Duration::from_millis(2000))
            .event("sightline.hello")
            .data(hello.to_string()),
    );
    if let Some(gap) = gap {
        let _ = tx.try_send(
            SseEvent::default()
                .event("sightline.reset")
                .data(json!({"reason": gap.reason()}).to_string()),
        );
    }
    let mut closing = hub.closing.subscribe();
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                e = sub.next() => e,
                _ = tx.closed() => return,
                _ = closing.wait_for(|c| *c) => return,
            };
            let Some(e) = next else { return };
            let frame = SseEvent::default()
                .event("sightline.event")
                .id(e.seq().to_string())
                .data(e.json());
            if tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::StreamExt::map(ReceiverStream::new(rx), Ok);
    Ok(Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    ))
}
