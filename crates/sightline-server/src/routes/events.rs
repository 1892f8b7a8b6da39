//! `POST /api/v1/events`: one event, a JSON array, or NDJSON → validated → committed → 202; and
//! the body reader every route that takes a body uses.
//!
//! A batch is all-or-nothing: when any event is invalid the answer is 400 naming every bad line
//! and nothing is stored, so a producer can fix and resend the whole batch without creating
//! duplicates or holes. The 202 is sent only after the commit (the core's ingest path). This
//! module must never store an event it has not validated.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use sightline_core::ingest::parse_batch;
use sightline_core::{Accepted, Backpressure, LineError};
use sightline_schema::{Event, Timestamp};

use crate::error::ApiError;
use crate::hub::Hub;

/// Bodies above this are parsed on the blocking pool so a large batch never stalls a worker.
const PARSE_INLINE_MAX: usize = 64 * 1024;
/// The health name of this path.
pub const PATH_NAME: &str = "http";

/// How much of an oversized body is read and thrown away before the 413, and for how long: a
/// client that writes its whole body before reading (most HTTP libraries) then gets the 413
/// and its message instead of a broken pipe. Bounded, so a client that never stops sending
/// is cut off.
const DRAIN_MAX: u64 = 64 * 1024 * 1024;
const DRAIN_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads and discards what is left of a body stream, within [`DRAIN_MAX`] and [`DRAIN_FOR`].
async fn drain(stream: &mut axum::body::BodyDataStream) {
    use futures_util::StreamExt;
    let mut seen = 0u64;
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len() as u64;
            if seen > DRAIN_MAX {
                break;
            }
        }
    })
    .await;
}

/// Reads a body up to `limit` bytes; over it is a 413 (sent once the body has been read and
/// discarded, within bounds).
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt;
    let declared_over = axum::body::HttpBody::size_hint(&body).lower() > limit as u64;
    let mut stream = body.into_data_stream();
    // A declared length over the limit is refused without keeping a byte of it.
    if declared_over {
        drain(&mut stream).await;
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
        if out.len() + chunk.len() > limit {
            drop(out);
            drain(&mut stream).await;
            return Err(ApiError::PayloadTooLarge(limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

pub(crate) fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// Parses on the blocking pool when the body is big.
pub async fn parse_batch_async(
    body: Bytes,
    content_type: Option<String>,
) -> Result<Vec<Event>, Vec<LineError>> {
    let now = Timestamp::now();
    if body.len() <= PARSE_INLINE_MAX {
        return parse_batch(&body, content_type.as_deref(), now);
    }
    tokio::task::spawn_blocking(move || parse_batch(&body, content_type.as_deref(), now))
        .await
        .unwrap_or_else(|e| {
            Err(vec![LineError {
                line: 0,
                message: format!("parser failed: {e}"),
            }])
        })
}

pub async fn post_events(
    State(hub): State<Hub>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let body = read_body(body, hub.settings().max_body).await?;
    let events = parse_batch_async(body, content_type(&headers).map(str::to_string))
        .await
        .map_err(|lines| {
            hub.core().count_invalid(PATH_NAME);
            ApiError::InvalidEvents(lines)
        })?;
    let accepted = hub
        .core()
        .submit(PATH_NAME, events, Backpressure::Refuse)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}
