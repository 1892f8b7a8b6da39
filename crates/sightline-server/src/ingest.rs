//! `POST /api/v1/events`: one event, a JSON array, or NDJSON → validated → committed → 202.
//!
//! A batch is all-or-nothing: when any event is invalid the answer is 400 naming every bad line
//! and nothing is stored, so a producer can fix and resend the whole batch without creating
//! duplicates or holes. The 202 is sent only after the writer's commit. This module must never
//! store an event it has not validated.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use serde_json::value::RawValue;
use sightline_schema::validate::describe_json_error;
use sightline_schema::{Event, Timestamp, parse_event};

use crate::error::{ApiError, LineError};
use crate::hub::Hub;

/// Bodies above this are parsed on the blocking pool so a large batch never stalls a worker.
const PARSE_INLINE_MAX: usize = 64 * 1024;
/// At most this many bad lines are listed in a 400.
const MAX_LISTED_ERRORS: usize = 100;

#[derive(Debug, Serialize)]
pub struct Accepted {
    pub accepted: usize,
    pub seqs: Vec<u64>,
    pub duplicates: usize,
}

/// Reads a body up to `limit` bytes; over it is a 413.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    // A declared length over the limit is refused before reading a byte, so the producer gets
    // its 413 at once instead of a reset while it is still sending.
    if axum::body::HttpBody::size_hint(&body).lower() > limit as u64 {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("length limit") {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::BadRequest(format!("could not read the body: {text}"))
        }
    })
}

fn is_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("ndjson") || ct.contains("jsonl") || ct.contains("json-seq"))
}

/// Splits a body into (line number, JSON text) items: NDJSON lines, array elements, or one object.
fn split_items(body: &[u8], ndjson: bool) -> Result<Vec<(usize, &[u8])>, Vec<LineError>> {
    let trimmed = body.trim_ascii_start();
    if trimmed.is_empty() {
        return Err(vec![LineError {
            line: 1,
            message: "the body is empty; send an event, an array of events or NDJSON".into(),
        }]);
    }
    if !ndjson && trimmed[0] == b'[' {
        let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| {
            vec![LineError {
                line: 1,
                message: describe_json_error(&e),
            }]
        })?;
        return Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, raw)| (i + 1, raw.get().as_bytes()))
            .collect());
    }
    // One object, unless it is followed by more lines (NDJSON without the content type).
    let looks_multi = ndjson
        || body.trim_ascii().contains(&b'\n') && serde_json::from_slice::<&RawValue>(body).is_err();
    if !looks_multi {
        return Ok(vec![(1, body)]);
    }
    Ok(body
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim_ascii()))
        .filter(|(_, line)| !line.is_empty())
        .collect())
}

/// Parses and validates every item; all-or-nothing.
pub fn parse_batch(
    body: &[u8],
    ndjson: bool,
    now: Timestamp,
) -> Result<Vec<Event>, Vec<LineError>> {
    let items = split_items(body, ndjson)?;
    let mut events = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (line, text) in items {
        match parse_event(text, now) {
            Ok(e) => events.push(e),
            Err(e) => {
                if errors.len() < MAX_LISTED_ERRORS {
                    errors.push(LineError { line, message: e.0 });
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(errors)
    }
}

/// Parses on the blocking pool when the body is big.
pub async fn parse_batch_async(body: Bytes, ndjson: bool) -> Result<Vec<Event>, Vec<LineError>> {
    let now = Timestamp::now();
    if body.len() <= PARSE_INLINE_MAX {
        return parse_batch(&body, ndjson, now);
    }
    tokio::task::spawn_blocking(move || parse_batch(&body, ndjson, now))
        .await
        .unwrap_or_else(|e| {
            Err(vec![LineError {
                line: 0,
                message: format!("parser failed: {e}"),
            }])
        })
}

/// Commits events and builds the 202 answer.
pub async fn commit(
    hub: &Hub,
    events: Vec<Event>,
    adapter: &str,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    if events.is_empty() {
        return Ok((
            StatusCode::ACCEPTED,
            Json(Accepted {
                accepted: 0,
                seqs: vec![],
                duplicates: 0,
            }),
        ));
    }
    let last_ts = events.iter().map(|e| e.ts).max();
    let count = events.len() as u64;
    // Big batches are prepared (serialised for storage) on the blocking pool, not on a worker.
    let submitted = if events.len() > 256 {
        let store = hub.store.clone();
        tokio::task::spawn_blocking(move || store.submit(events))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
    } else {
        hub.store.submit(events)
    };
    let acks = match submitted {
        Ok(rx) => rx
            .await
            .map_err(|_| ApiError::Unavailable("the hub is shutting down".into()))??,
        Err(e) => {
            if matches!(e, sightline_store::StoreError::QueueFull { .. }) {
                hub.counters
                    .rejected_full
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            return Err(e.into());
        }
    };
    hub.adapter_saw(adapter, count, last_ts);
    let duplicates = acks.iter().filter(|a| a.duplicate).count();
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            accepted: acks.len(),
            seqs: acks.into_iter().map(|a| a.seq).collect(),
            duplicates,
        }),
    ))
}

pub async fn post_events(
    State(hub): State<Hub>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let body = read_body(body, hub.settings.max_body).await?;
    let events = parse_batch_async(body, is_ndjson(&headers))
        .await
        .map_err(|lines| {
            hub.counters
                .rejected_invalid
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ApiError::InvalidEvents(lines)
        })?;
    commit(&hub, events, "http").await
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"source":"custom","source_event":"x","entity_type":"log","title":"t"}"#;

    #[test]
    fn accepts_one_array_and_ndjson() {
        let now = Timestamp::now();
        assert_eq!(parse_batch(OK.as_bytes(), false, now).unwrap().len(), 1);
        assert_eq!(
            parse_batch(format!("[{OK},{OK}]").as_bytes(), false, now)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parse_batch(format!("{OK}\n\n{OK}\n").as_bytes(), true, now)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parse_batch(format!("{OK}\n{OK}").as_bytes(), false, now)
                .unwrap()
                .len(),
            2,
            "ndjson without its content type"
        );
    }

    #[test]
    fn names_every_bad_line() {
        let body = format!("{OK}\n{{bad\n{OK}\n{{\"source\":\"custom\"}}\n");
        let errors = parse_batch(body.as_bytes(), true, Timestamp::now()).unwrap_err();
        assert_eq!(
            errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![2, 4]
        );
    }
}
