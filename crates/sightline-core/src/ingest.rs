//! The one ingest path: every event that enters the hub — an HTTP post, a WebSocket `publish`,
//! an endpoint source (hooks, OTLP, telemetry, workflow updates) or a background source
//! (transcripts, OpenCode, tmux, logs) — is submitted here, with the same validation, the same
//! counters, the same health accounting and the same answer to a full queue.
//!
//! Two back-pressure policies, chosen by the caller's nature, not copied per caller:
//! [`Backpressure::Refuse`] answers a full queue at once (a request gets 503 and retries), and
//! [`Backpressure::Wait`] waits with backoff until the batch is queued (a backfill never drops
//! events). A waiting batch is handed back by the store when refused, never cloned per attempt.
//!
//! This module must never acknowledge an event before its commit, and never store one that did
//! not pass validation (the only way to hold an `Event` is to have validated it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use sightline_schema::validate::describe_json_error;
use sightline_schema::{Event, Timestamp, parse_event};
use sightline_store::{Refused, StoreError};
use thiserror::Error;
use tokio::sync::watch;

use crate::Core;

/// Batches larger than this are prepared (serialised for storage) on the blocking pool, so a
/// big batch never stalls an async worker.
const PREPARE_INLINE_MAX: usize = 256;
/// At most this many bad lines are listed in an answer.
pub const MAX_LISTED_ERRORS: usize = 100;

/// One bad line of a batch (1-based: the NDJSON line or the array index + 1).
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// What a committed batch got.
#[derive(Debug, Clone, Default, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Accepted {
    pub accepted: usize,
    pub seqs: Vec<u64>,
    pub duplicates: usize,
    /// Per event, in order: its seq and whether it was already stored.
    #[serde(skip)]
    #[schemars(skip)]
    pub acks: Vec<sightline_store::Ack>,
}

/// Why a batch was not committed. Nothing of it was stored.
#[derive(Debug, Error)]
pub enum IngestError {
    #[error("the write queue is full (capacity {capacity} events); retry after a moment")]
    QueueFull { capacity: usize },
    #[error("the hub is shutting down")]
    Closed,
    #[error("{} invalid events", .0.len())]
    Invalid(Vec<LineError>),
    #[error("storage: {0}")]
    Store(StoreError),
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::QueueFull { capacity } => IngestError::QueueFull { capacity },
            StoreError::Closed => IngestError::Closed,
            other => IngestError::Store(other),
        }
    }
}

/// What to do when the write queue is full.
#[derive(Debug, Clone)]
pub enum Backpressure {
    /// Refuse at once: the caller answers 503 (HTTP) or an error message (WebSocket).
    Refuse,
    /// Wait with backoff until queued, or until this signal turns true (the source stops).
    Wait(watch::Receiver<bool>),
}

/// Totals over every path, for health.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) refused_full: AtomicU64,
    pub(crate) refused_invalid: AtomicU64,
}

/// A snapshot of the totals.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, schemars::JsonSchema)]
pub struct IngestTotals {
    /// Batches refused because the write queue was full.
    pub rejected_full: u64,
    /// Requests refused as invalid.
    pub rejected_invalid: u64,
}

/// A batch queued for the writer, not yet committed.
pub struct Pending {
    core: Core,
    path: String,
    count: u64,
    last_ts: Option<Timestamp>,
    receiver: Option<sightline_store::CommitReceiver>,
}

impl Pending {
    /// Resolves after the commit, with what the batch got.
    pub async fn committed(self) -> Result<Accepted, IngestError> {
        let Some(receiver) = self.receiver else {
            return Ok(Accepted::default());
        };
        let acks = receiver.await.map_err(|_| IngestError::Closed)??;
        self.core.health().saw(&self.path, self.count, self.last_ts);
        let duplicates = acks.iter().filter(|a| a.duplicate).count();
        Ok(Accepted {
            accepted: acks.len(),
            seqs: acks.iter().map(|a| a.seq).collect(),
            duplicates,
            acks,
        })
    }
}

impl Core {
    /// Queues a validated batch now, on this thread, refusing at once when the queue is full
    /// (so a caller that reads messages in order commits them in that order), and returns
    /// what resolves after the commit.
    pub fn enqueue(&self, path: &str, events: Vec<Event>) -> Result<Pending, IngestError> {
        let count = events.len() as u64;
        let last_ts = events.iter().map(|e| e.ts).max();
        let receiver = if events.is_empty() {
            None
        } else {
            match self.store().try_submit(events) {
                Ok(rx) => Some(rx),
                Err(refused) => {
                    self.note_refused(path, &refused);
                    return Err(refused.error.into());
                }
            }
        };
        Ok(Pending {
            core: self.clone(),
            path: path.to_string(),
            count,
            last_ts,
            receiver,
        })
    }

    /// Submits a validated batch from `path` (a health name: `http`, `ws`, a source's name)
    /// and resolves after its commit.
    pub async fn submit(
        &self,
        path: &str,
        events: Vec<Event>,
        backpressure: Backpressure,
    ) -> Result<Accepted, IngestError> {
        if events.is_empty() {
            self.health().ensure(path);
            return Ok(Accepted::default());
        }
        let last_ts = events.iter().map(|e| e.ts).max();
        let count = events.len() as u64;
        let mut events = events;
        let mut delay = Duration::from_millis(20);
        let receiver = loop {
            let refused = match self.queue(events).await {
                Ok(rx) => break rx,
                Err(refused) => refused,
            };
            let full = self.note_refused(path, &refused);
            match &backpressure {
                Backpressure::Wait(stop) if full && !*stop.borrow() && !self.is_closing() => {
                    events = refused.events;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                _ => return Err(refused.error.into()),
            }
        };
        Pending {
            core: self.clone(),
            path: path.to_string(),
            count,
            last_ts,
            receiver: Some(receiver),
        }
        .committed()
        .await
    }

    /// Hands the batch to the store, preparing big ones on the blocking pool.
    async fn queue(&self, events: Vec<Event>) -> Result<sightline_store::CommitReceiver, Refused> {
        if events.len() <= PREPARE_INLINE_MAX {
            return self.store().try_submit(events);
        }
        let store = self.store().clone();
        match tokio::task::spawn_blocking(move || store.try_submit(events)).await {
            Ok(result) => result,
            // The closure cannot panic on valid events; if the pool is gone the hub is stopping.
            Err(_) => Err(Refused {
                error: StoreError::Closed,
                events: Vec::new(),
            }),
        }
    }

    /// Counts a batch the store refused (only a full queue is the producer's to hear about);
    /// true when the queue was full.
    fn note_refused(&self, path: &str, refused: &Refused) -> bool {
        let full = matches!(refused.error, StoreError::QueueFull { .. });
        if full {
            self.count_full(path);
        }
        full
    }

    fn count_full(&self, path: &str) {
        self.inner
            .counters
            .refused_full
            .fetch_add(1, Ordering::Relaxed);
        self.health().refused_full(path);
    }

    /// Counts a request or message from `path` refused as invalid (nothing of it stored).
    pub fn count_invalid(&self, path: &str) {
        self.inner
            .counters
            .refused_invalid
            .fetch_add(1, Ordering::Relaxed);
        self.health().refused_invalid(path);
    }

    /// Totals over every path.
    pub fn ingest_totals(&self) -> IngestTotals {
        let c = &self.inner.counters;
        IngestTotals {
            rejected_full: c.refused_full.load(Ordering::Relaxed),
            rejected_invalid: c.refused_invalid.load(Ordering::Relaxed),
        }
    }
}

fn is_ndjson_type(content_type: Option<&str>) -> bool {
    content_type
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

/// Parses and validates every item of a canonical-event body (one event, an array, or NDJSON
/// when `content_type` says so or the body has several lines); all-or-nothing.
pub fn parse_batch(
    body: &[u8],
    content_type: Option<&str>,
    now: Timestamp,
) -> Result<Vec<Event>, Vec<LineError>> {
    let items = split_items(body, is_ndjson_type(content_type))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"source":"custom","source_event":"x","entity_type":"log","title":"t"}"#;

    #[test]
    fn accepts_one_array_and_ndjson() {
        let now = Timestamp::now();
        assert_eq!(parse_batch(OK.as_bytes(), None, now).unwrap().len(), 1);
        assert_eq!(
            parse_batch(format!("[{OK},{OK}]").as_bytes(), None, now)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parse_batch(
                format!("{OK}\n\n{OK}\n").as_bytes(),
                Some("application/x-ndjson"),
                now
            )
            .unwrap()
            .len(),
            2
        );
        assert_eq!(
            parse_batch(format!("{OK}\n{OK}").as_bytes(), None, now)
                .unwrap()
                .len(),
            2,
            "ndjson without its content type"
        );
    }

    #[test]
    fn names_every_bad_line() {
        let body = format!("{OK}\n{{bad\n{OK}\n{{\"source\":\"custom\"}}\n");
        let errors = parse_batch(
            body.as_bytes(),
            Some("application/x-ndjson"),
            Timestamp::now(),
        )
        .unwrap_err();
        assert_eq!(
            errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![2, 4]
        );
    }
}
