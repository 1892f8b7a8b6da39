//! The canonical event (docs/CONTRACT.md §2): the one shape every source is turned into.
//!
//! `Event` is what the hub stores and streams. Outside this crate it can be obtained only
//! through [`crate::validate`] (or [`crate::EventBuilder`], which goes through it) and, for rows
//! the store committed, [`Event::from_committed`]; so every `Event` in the process is already
//! valid, capped and redacted. A private field makes struct literals fail outside the crate and
//! `Event` deliberately does not implement `Deserialize` (producer JSON goes through
//! [`crate::RawEvent`]). This module must never do I/O.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::builder::EventBuilder;
use crate::timestamp::Timestamp;

/// Declares a closed vocabulary: its wire names, and a stable small integer for storage.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// The integer stored in SQLite; stable across versions.
            pub fn code(self) -> i64 {
                match self { $($name::$variant => $code),+ }
            }

            pub fn from_code(code: i64) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($wire => Some($name::$variant),)+ _ => None }
            }

            /// The accepted names, for error messages.
            pub fn names() -> String {
                [$($wire),+].join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary!(
    /// Where an event came from.
    Source {
        Claude = 1 => "claude",
        Opencode = 2 => "opencode",
        Docker = 3 => "docker",
        Workflow = 4 => "workflow",
        Tmux = 5 => "tmux",
        Python = 6 => "python",
        Process = 7 => "process",
        Otlp = 8 => "otlp",
        Custom = 9 => "custom",
        Codex = 10 => "codex",
        Gemini = 11 => "gemini",
    }
);

vocabulary!(
    /// What the event is about.
    EntityType {
        Run = 1 => "run",
        Session = 2 => "session",
        Task = 3 => "task",
        Tool = 4 => "tool",
        Permission = 5 => "permission",
        Message = 6 => "message",
        Prompt = 7 => "prompt",
        Todo = 8 => "todo",
        Workflow = 9 => "workflow",
        Step = 10 => "step",
        Process = 11 => "process",
        Call = 12 => "call",
        Exception = 13 => "exception",
        Log = 14 => "log",
        Metric = 15 => "metric",
        Pane = 16 => "pane",
    }
);

vocabulary!(
    /// The lifecycle state the event reports for its entity.
    Status {
        Queued = 1 => "queued",
        Running = 2 => "running",
        Idle = 3 => "idle",
        Retry = 4 => "retry",
        Success = 5 => "success",
        Failed = 6 => "failed",
        Blocked = 7 => "blocked",
        Cancelled = 8 => "cancelled",
    }
);

vocabulary!(
    /// How much a human should care.
    Severity {
        Debug = 1 => "debug",
        Info = 2 => "info",
        Warn = 3 => "warn",
        Error = 4 => "error",
    }
);

impl Status {
    /// A terminal status ends its entity (sets `ended_at`).
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Success | Status::Failed | Status::Cancelled)
    }
}

#[allow(
    clippy::derivable_impls,
    reason = "the enum comes from `vocabulary!`, which cannot take `#[default]` on one variant"
)]
impl Default for Severity {
    fn default() -> Self {
        Severity::Info
    }
}

/// A valid, stored-or-storable event. `seq` is 0 until the writer assigns it.
///
/// Field order here is the order of the JSON the hub writes (export depends on it being stable).
/// The JSON Schema (and from it the TypeScript of `ui/` and `clients/js`) is derived from this
/// type as it is serialised: see [`crate::event_json_schema`].
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(
    title = "SightlineEvent",
    description = "A stored event as the hub returns it (docs/CONTRACT.md §2). Optional fields are written as null, never left out.",
    transform = stored_event_has_seq
)]
pub struct Event {
    /// Assigned by the hub on commit; the cursor (≥ 1).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seq: u64,
    pub event_id: String,
    pub ts: Timestamp,
    pub source: Source,
    pub source_event: String,
    pub run_id: Option<String>,
    pub session_id: Option<String>,
    pub parent_session_id: Option<String>,
    pub agent: Option<String>,
    pub entity_type: EntityType,
    pub entity_id: Option<String>,
    pub status: Option<Status>,
    pub severity: Severity,
    pub title: String,
    pub summary: Option<String>,
    pub duration_ms: Option<Number>,
    pub metrics: Option<BTreeMap<String, Number>>,
    pub host: Option<String>,
    pub pid: Option<i64>,
    pub thread_id: Option<i64>,
    pub correlation_id: Option<String>,
    pub tags: Vec<String>,
    pub payload: Map<String, Value>,
    /// The seal: private, so `Event { .. }` (and `..other`) only compiles inside this crate.
    #[serde(skip)]
    #[schemars(skip)]
    pub(crate) sealed: Sealed,
}

/// Zero-sized proof that an [`Event`] was made by this crate (validation or the store's
/// committed rows). Its constructor is crate-private; it carries no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Sealed;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `seq` is skipped while 0, so schemars makes it optional; but the schema describes events as
/// the API and the stream return them, which are all stored and so all carry a seq ≥ 1. (Only
/// export files leave it out, and those are read back as producer input, not as this type.)
fn stored_event_has_seq(schema: &mut schemars::Schema) {
    let object = schema.ensure_object();
    if let Some(Value::Array(required)) = object.get_mut("required")
        && !required.iter().any(|f| f == "seq")
    {
        required.insert(0, Value::from("seq"));
    }
    if let Some(Value::Object(seq)) = object.get_mut("properties").and_then(|p| p.get_mut("seq")) {
        seq.insert("minimum".into(), Value::from(1));
    }
}

/// Every field of an event the store has committed, to rebuild it from its row.
///
/// Only for rows this database committed, which were validated before they were written; never
/// for producer input (that goes through [`crate::validate`] or [`crate::EventBuilder`], which
/// check, cap and redact). The fields are the same as [`Event`]'s.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedParts {
    pub seq: u64,
    pub event_id: String,
    pub ts: Timestamp,
    pub source: Source,
    pub source_event: String,
    pub run_id: Option<String>,
    pub session_id: Option<String>,
    pub parent_session_id: Option<String>,
    pub agent: Option<String>,
    pub entity_type: EntityType,
    pub entity_id: Option<String>,
    pub status: Option<Status>,
    pub severity: Severity,
    pub title: String,
    pub summary: Option<String>,
    pub duration_ms: Option<Number>,
    pub metrics: Option<BTreeMap<String, Number>>,
    pub host: Option<String>,
    pub pid: Option<i64>,
    pub thread_id: Option<i64>,
    pub correlation_id: Option<String>,
    pub tags: Vec<String>,
    pub payload: Map<String, Value>,
}

impl Event {
    /// Rebuilds an event from a row this database committed.
    ///
    /// Only for rows this database committed (validated before they were written); never for
    /// producer input, which must go through [`crate::validate`] or [`crate::EventBuilder`].
    /// Nothing is checked here: the store is trusted to give back what it was given.
    pub fn from_committed(parts: CommittedParts) -> Event {
        // Destructured rather than `..`-copied so that a field added to one struct and not the
        // other fails to compile here.
        let CommittedParts {
            seq,
            event_id,
            ts,
            source,
            source_event,
            run_id,
            session_id,
            parent_session_id,
            agent,
            entity_type,
            entity_id,
            status,
            severity,
            title,
            summary,
            duration_ms,
            metrics,
            host,
            pid,
            thread_id,
            correlation_id,
            tags,
            payload,
        } = parts;
        Event {
            seq,
            event_id,
            ts,
            source,
            source_event,
            run_id,
            session_id,
            parent_session_id,
            agent,
            entity_type,
            entity_id,
            status,
            severity,
            title,
            summary,
            duration_ms,
            metrics,
            host,
            pid,
            thread_id,
            correlation_id,
            tags,
            payload,
            sealed: Sealed,
        }
    }

    /// Starts a typed event for a source; see [`EventBuilder`]. The four arguments are the
    /// fields every event must have.
    pub fn builder(
        source: Source,
        source_event: impl Into<String>,
        entity_type: EntityType,
        title: impl Into<String>,
    ) -> EventBuilder {
        EventBuilder::new(source, source_event, entity_type, title)
    }

    /// A metric as f64, when present.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.as_ref()?.get(name)?.as_f64()
    }

    pub fn duration_ms_f64(&self) -> Option<f64> {
        self.duration_ms.as_ref().and_then(Number::as_f64)
    }

    /// Does this event count as an error (error severity or a failed status)?
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error || self.status == Some(Status::Failed)
    }

    /// JSON with `seq` (as the API returns it).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an Event always serialises")
    }

    /// JSON without `seq`: the portable form used by export, which import takes back.
    pub fn to_portable_json(&self) -> String {
        let mut copy = self.clone();
        copy.seq = 0;
        copy.to_json()
    }
}
