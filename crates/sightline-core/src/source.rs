//! What a source receives from the hub, and what an HTTP source gives the server.
//!
//! A background source (transcript tailer, OpenCode stream, tmux poller, ...) gets a [`Sink`]:
//! its name, the one ingest path, its health, and a stop signal — nothing else of the hub. An
//! endpoint source (Claude hooks, OTLP, Docker telemetry, ...) implements [`HttpSource`]: a
//! route description and a decode function from a request to canonical events; the server
//! mounts it, reads and bounds the body, submits what it decoded and writes the reply. So the
//! sources and the server never depend on each other.
//!
//! Nothing here may touch SQLite, sockets or files: sources do their own reading, the store
//! does the writing.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use sightline_schema::{Event, Timestamp};
use tokio::sync::watch;

use crate::Core;
use crate::ingest::{Accepted, Backpressure, IngestError, LineError};
use crate::role::Role;

/// The handle a background source sends through.
#[derive(Clone)]
pub struct Sink {
    core: Core,
    name: &'static str,
    stop: watch::Receiver<bool>,
}

impl Sink {
    /// A handle for the source `name`, stopping when `stop` turns true.
    pub fn new(core: &Core, name: &'static str, stop: watch::Receiver<bool>) -> Sink {
        core.health().ensure(name);
        Sink {
            core: core.clone(),
            name,
            stop,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Commits events through the one ingest path; waits while the queue is full so a
    /// backfill never drops events. Returns only after the commit (or at stop, with an error).
    pub async fn emit(&self, events: Vec<Event>) -> Result<Accepted, IngestError> {
        self.core
            .submit(self.name, events, Backpressure::Wait(self.stop.clone()))
            .await
    }

    /// The source is alive but had nothing to send (keeps its lag and state fresh).
    pub fn heartbeat(&self) {
        self.core.health().saw(self.name, 0, None);
    }

    /// Records a problem (shown in health, logged) and goes on.
    pub fn error(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(source = self.name, "{message}");
        self.core.health().failed(self.name, message);
    }

    pub fn set_state(&self, state: &str) {
        self.core.health().set_state(self.name, state);
    }

    /// The state health shows for this source now.
    pub fn state(&self) -> Option<String> {
        self.core.health().get(self.name).map(|h| h.state)
    }

    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps, waking early at stop; true when stopping.
    pub async fn sleep(&self, d: Duration) -> bool {
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
        self.stopping()
    }

    /// Resolves when stop is asked.
    pub async fn stopped(&self) {
        let mut stop = self.stop.clone();
        let _ = stop.wait_for(|s| *s).await;
    }
}

/// An HTTP method a route can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// A JSON Schema, made on demand (for the OpenAPI document).
pub type SchemaFn = fn() -> Value;

/// How an endpoint source's route is described: the one place its path, role and shapes live.
#[derive(Debug, Clone, Copy)]
pub struct EndpointSpec {
    /// The health name of the source (`claude-hooks`, `otlp`, `telemetry`, ...).
    pub source: &'static str,
    pub method: Method,
    /// An axum-style path (`/api/v1/workflows/{id}/updates`).
    pub path: &'static str,
    pub role: Role,
    pub summary: &'static str,
    /// Content types the body may have, with the body's schema for each.
    pub request: &'static [(&'static str, SchemaFn)],
    /// The success status and the reply's schema.
    pub reply_status: u16,
    pub reply: SchemaFn,
    /// The WebSocket message type that carries the same body (`workflow_update`), if any: the
    /// server decodes such messages with this source, so both ways in map alike.
    pub ws_message: Option<&'static str>,
}

/// A request to an endpoint source, with its body already read, bounded and decompressed.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// Path parameters by name (`id` of `/api/v1/workflows/{id}/updates`).
    pub params: Vec<(String, String)>,
    pub body: Bytes,
    /// The hub's clock when the request arrived.
    pub now: Timestamp,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }
}

/// What a source made of a request: the events to commit, and the items it refused (reported
/// to the producer and in health, never retried by the hub).
#[derive(Debug, Default)]
pub struct Decoded {
    pub events: Vec<Event>,
    pub refused: Vec<LineError>,
}

impl Decoded {
    pub fn events(events: Vec<Event>) -> Decoded {
        Decoded {
            events,
            refused: Vec::new(),
        }
    }
}

/// A request the source refuses whole (nothing stored): a status in the 4xx range, a stable
/// code and a message that says what to change.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// The bad lines, when the request was a batch.
    pub lines: Vec<LineError>,
}

impl HttpError {
    pub fn bad_request(message: impl Into<String>) -> HttpError {
        HttpError {
            status: 400,
            code: "bad_request",
            message: message.into(),
            lines: Vec::new(),
        }
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> HttpError {
        HttpError {
            status: 415,
            code: "unsupported_media_type",
            message: message.into(),
            lines: Vec::new(),
        }
    }

    /// Every item was invalid: the canonical 400 naming each bad line.
    pub fn invalid(lines: Vec<LineError>) -> HttpError {
        let message = match lines.as_slice() {
            [] => "nothing valid was sent; nothing was stored".to_string(),
            [one] => format!("line {}: {}; nothing was stored", one.line, one.message),
            many => format!(
                "{} events are invalid (first: line {}: {}); nothing was stored",
                many.len(),
                many[0].line,
                many[0].message
            ),
        };
        HttpError {
            status: 400,
            code: "invalid_events",
            message,
            lines,
        }
    }
}

/// What the server sends back for a committed request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()),
        }
    }
}

/// An endpoint source: the server reads the body (bounded by the hub's limit, gzip undone),
/// calls [`HttpSource::decode`], submits the events through the one ingest path, and answers
/// with [`HttpSource::reply`]. Decode runs on a blocking thread for big bodies and must not
/// block on I/O.
pub trait HttpSource: Send + Sync + 'static {
    fn spec(&self) -> &EndpointSpec;

    fn decode(&self, request: &HttpRequest) -> Result<Decoded, HttpError>;

    /// The answer once the events are committed. By default: the spec's status with
    /// `{accepted, seqs, duplicates}`, plus `refused` when some items were refused.
    fn reply(&self, _request: &HttpRequest, accepted: &Accepted, refused: &[LineError]) -> Reply {
        if refused.is_empty() {
            Reply::json(self.spec().reply_status, accepted)
        } else {
            Reply::json(
                self.spec().reply_status,
                &serde_json::json!({
                    "accepted": accepted.accepted,
                    "seqs": accepted.seqs,
                    "duplicates": accepted.duplicates,
                    "refused": refused,
                }),
            )
        }
    }
}
