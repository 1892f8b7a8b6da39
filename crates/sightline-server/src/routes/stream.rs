//! `GET /api/v1/events/stream`: Server-Sent Events with the filter language, resume by
//! `Last-Event-ID` or `last_event_id`, heartbeats and a retry hint.
//!
//! The response body is a stream that pulls from the client's [`Subscription`] when hyper asks
//! for more: no task or channel in between, so a delivery costs one wake-up of the connection
//! rather than two. Every event that is ready when it is polled goes into one chunk (one write),
//! so a busy stream costs a write per wake-up, not per event. A slow client stops being polled,
//! its bus receiver lags, and the subscription catches up from SQLite: ingest never waits for
//! it. This module must never block on a client or hold events for one beyond its bus receiver.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde_json::json;
use sightline_schema::Filter;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::hub::Hub;
use sightline_core::{SubscriberGuard, Subscription, Transport};

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

/// One client's stream: its subscription, and what it still owes the client.
struct Stream {
    sub: Subscription,
    /// Counts this stream in `/metrics` until the response body is dropped (client gone).
    _counted: SubscriberGuard,
    closing: watch::Receiver<bool>,
    /// The hello (and reset) frames, sent first.
    first: Option<Bytes>,
    /// Ticks every [`HEARTBEAT`]; a tick with nothing sent since the last one sends a comment.
    /// One timer per stream, not one per chunk.
    heartbeat: tokio::time::Interval,
    sent_since_tick: bool,
    /// Events written in the current rate window, and when that window began.
    window_events: u32,
    window_start: tokio::time::Instant,
    /// The last window's rate was at least [`BUSY_RATE`].
    busy: bool,
    last_write: Option<tokio::time::Instant>,
}

/// A stream that wrote at least this many events per second over the last [`RATE_WINDOW`] is
/// busy: after each write it waits [`COALESCE`] so that the next write carries every event of
/// that interval. A write and a wake-up cost far more than one event's bytes; at thousands of
/// events per second per subscriber they were most of the hub's CPU. Below the rate (the
/// latency budget is set at 1,000 events/s) a stream never waits.
const BUSY_RATE: u32 = 3_000;
const RATE_WINDOW: Duration = Duration::from_millis(20);
const COALESCE: Duration = Duration::from_millis(3);

impl Stream {
    fn note_write(&mut self, events: u32) {
        let now = tokio::time::Instant::now();
        self.last_write = Some(now);
        self.window_events += events;
        let elapsed = now - self.window_start;
        if elapsed >= RATE_WINDOW {
            self.busy = u64::from(self.window_events) * 1000
                >= u64::from(BUSY_RATE) * elapsed.as_millis() as u64;
            self.window_events = 0;
            self.window_start = now;
        }
    }

    /// The next chunk to write; `None` ends the response (the hub is stopping).
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if let Some(at) = self.last_write
            && self.busy
        {
            tokio::time::sleep_until(at + COALESCE).await;
        }
        loop {
            let event = tokio::select! {
                e = self.sub.next() => e?,
                _ = self.heartbeat.tick() => {
                    if std::mem::take(&mut self.sent_since_tick) {
                        continue;
                    }
                    return Some(Bytes::from_static(b": keep-alive\n\n"));
                }
                _ = self.closing.wait_for(|c| *c) => return None,
            };
            self.sent_since_tick = true;
            let mut out = Vec::with_capacity(event.json().len() + 64);
            frame(&mut out, "sightline.event", Some(event.seq()), event.json());
            let mut events = 1;
            while out.len() < MAX_CHUNK {
                let Some(e) = self.sub.next_ready() else {
                    break;
                };
                frame(&mut out, "sightline.event", Some(e.seq()), e.json());
                events += 1;
            }
            self.note_write(events);
            return Some(Bytes::from(out));
        }
    }
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
    let (sub, gap) = hub.core().subscribe(filter, cursor, epoch.as_deref()).await;
    let mut first = b"retry: 2000\n\n".to_vec();
    let hello = json!({"epoch": hub.store().epoch(), "head_seq": hub.store().head_seq(), "cursor": sub.cursor()});
    frame(&mut first, "sightline.hello", None, &hello.to_string());
    if let Some(gap) = gap {
        frame(
            &mut first,
            "sightline.reset",
            None,
            &json!({"reason": gap.reason()}).to_string(),
        );
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = Stream {
        sub,
        _counted: hub.core().track_subscriber(Transport::Sse),
        closing: hub.core().closing(),
        first: Some(Bytes::from(first)),
        heartbeat,
        sent_since_tick: true,
        window_events: 0,
        window_start: tokio::time::Instant::now(),
        busy: false,
        last_write: None,
    };
    let body = futures_util::stream::unfold(state, |mut st| async move {
        let chunk = st.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), st))
    });
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
