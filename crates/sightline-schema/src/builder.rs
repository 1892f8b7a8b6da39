//! A typed builder for sources that make events in Rust (tmux, workflow, process, ...), so that
//! they stop writing untyped JSON, turning it into a string and parsing it again.
//!
//! The builder only collects fields into a [`RawEvent`]; [`EventBuilder::build`] hands it to
//! [`validate`], so a built event is checked, capped and redacted exactly like one posted as JSON.
//! This module must never check, cap or redact anything itself: a second copy of the rules
//! would drift from the first.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

use crate::event::{EntityType, Event, Severity, Source, Status};
use crate::timestamp::Timestamp;
use crate::validate::{RawEvent, ValidationError, validate};

/// An optional text field's value: a string, or an `Option` of one (`None` leaves the field
/// unset). Lets sources pass what they hold (`Option<String>`, `&str`, ...) without unwrapping.
pub trait IntoOptionalString {
    fn into_optional_string(self) -> Option<String>;
}

impl IntoOptionalString for String {
    fn into_optional_string(self) -> Option<String> {
        Some(self)
    }
}
impl IntoOptionalString for &str {
    fn into_optional_string(self) -> Option<String> {
        Some(self.to_string())
    }
}
impl IntoOptionalString for &String {
    fn into_optional_string(self) -> Option<String> {
        Some(self.clone())
    }
}
impl IntoOptionalString for Cow<'_, str> {
    fn into_optional_string(self) -> Option<String> {
        Some(self.into_owned())
    }
}
impl<T: IntoOptionalString> IntoOptionalString for Option<T> {
    fn into_optional_string(self) -> Option<String> {
        self.and_then(IntoOptionalString::into_optional_string)
    }
}

/// Collects an event's fields with their Rust types; [`EventBuilder::build`] validates them.
///
/// ```
/// use sightline_schema::{EntityType, Event, Source, Status, Timestamp};
///
/// let event = Event::builder(Source::Claude, "PreToolUse", EntityType::Tool, "Bash: ls")
///     .run_id("run-1")
///     .session_id(Some("s-1"))
///     .status(Status::Running)
///     .metric("input_tokens", 1200u64)
///     .build(Timestamp::now())
///     .unwrap();
/// assert_eq!(event.run_id.as_deref(), Some("run-1"));
/// ```
#[derive(Debug)]
#[must_use = "an EventBuilder does nothing until `build` is called"]
pub struct EventBuilder {
    raw: RawEvent,
}

macro_rules! optional_text {
    ($($(#[$doc:meta])* $field:ident),+ $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $field(mut self, value: impl IntoOptionalString) -> Self {
                self.raw.$field = value.into_optional_string();
                self
            }
        )+
    };
}

impl EventBuilder {
    /// The four fields every event must have; see also [`Event::builder`].
    pub fn new(
        source: Source,
        source_event: impl Into<String>,
        entity_type: EntityType,
        title: impl Into<String>,
    ) -> Self {
        // The vocabularies travel as their wire names: `validate` parses them back, which is
        // cheap and keeps exactly one path from fields to an `Event`.
        EventBuilder {
            raw: RawEvent {
                seq: None,
                event_id: None,
                ts: None,
                source: source.as_str().to_string(),
                source_event: source_event.into(),
                run_id: None,
                session_id: None,
                parent_session_id: None,
                agent: None,
                entity_type: entity_type.as_str().to_string(),
                entity_id: None,
                status: None,
                severity: None,
                title: title.into(),
                summary: None,
                duration_ms: None,
                metrics: None,
                host: None,
                pid: None,
                thread_id: None,
                correlation_id: None,
                tags: None,
                payload: None,
            },
        }
    }

    optional_text!(
        /// The producer's id, for idempotency; without one the hub generates a UUIDv7.
        event_id,
        run_id,
        session_id,
        parent_session_id,
        agent,
        entity_id,
        summary,
        host,
        correlation_id,
    );

    /// When it happened at the producer; without one, the `now` given to [`Self::build`].
    pub fn ts(mut self, ts: impl Into<Option<Timestamp>>) -> Self {
        self.raw.ts = ts.into().map(Timestamp::to_rfc3339);
        self
    }

    pub fn status(mut self, status: impl Into<Option<Status>>) -> Self {
        self.raw.status = status.into().map(|s| s.as_str().to_string());
        self
    }

    /// Defaults to `info`.
    pub fn severity(mut self, severity: Severity) -> Self {
        self.raw.severity = Some(severity.as_str().to_string());
        self
    }

    /// Integers stay integers on the wire (`1200`, not `1200.0`).
    pub fn duration_ms(mut self, ms: impl Into<Number>) -> Self {
        self.raw.duration_ms = Some(ms.into());
        self
    }

    /// A measured duration; NaN and infinities leave it unset (JSON cannot carry them either).
    pub fn duration_ms_f64(mut self, ms: f64) -> Self {
        self.raw.duration_ms = Number::from_f64(ms);
        self
    }

    /// One metric (`input_tokens`, `cost_usd`, ...); a repeated name replaces the earlier value.
    pub fn metric(mut self, name: impl Into<String>, value: impl Into<Number>) -> Self {
        self.raw
            .metrics
            .get_or_insert_with(Default::default)
            .insert(name.into(), Some(value.into()));
        self
    }

    /// A metric from a float; NaN and infinities are dropped, as a JSON `null` metric is.
    pub fn metric_f64(mut self, name: impl Into<String>, value: f64) -> Self {
        self.raw
            .metrics
            .get_or_insert_with(Default::default)
            .insert(name.into(), Number::from_f64(value));
        self
    }

    pub fn pid(mut self, pid: impl Into<Option<i64>>) -> Self {
        self.raw.pid = pid.into();
        self
    }

    pub fn thread_id(mut self, thread_id: impl Into<Option<i64>>) -> Self {
        self.raw.thread_id = thread_id.into();
        self
    }

    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.raw.tags.get_or_insert_with(Vec::new).push(tag.into());
        self
    }

    pub fn tags<T: Into<String>>(mut self, tags: impl IntoIterator<Item = T>) -> Self {
        self.raw
            .tags
            .get_or_insert_with(Vec::new)
            .extend(tags.into_iter().map(Into::into));
        self
    }

    /// The source's evidence as a JSON value. It must be an object (or null): anything else is
    /// refused by [`Self::build`], as it is when posted.
    pub fn payload_value(mut self, payload: Value) -> Self {
        self.raw.payload = Some(payload);
        self
    }

    pub fn payload(self, payload: Map<String, Value>) -> Self {
        self.payload_value(Value::Object(payload))
    }

    /// Adds one key to the payload object.
    pub fn payload_field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        match &mut self.raw.payload {
            Some(Value::Object(map)) => {
                map.insert(key.into(), value.into());
            }
            slot @ (None | Some(Value::Null)) => {
                let mut map = Map::new();
                map.insert(key.into(), value.into());
                *slot = Some(Value::Object(map));
            }
            // A non-object payload stays as it is so that `build` refuses it with the same
            // message a posted one gets, rather than the key silently replacing it.
            Some(_) => {}
        }
        self
    }

    /// Validates, caps and redacts, exactly as for a posted event. `now` is the hub's clock.
    pub fn build(self, now: Timestamp) -> Result<Event, ValidationError> {
        validate(self.raw, now)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validate::parse_event;

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-21T10:00:00Z").unwrap()
    }

    #[test]
    fn equals_the_same_event_parsed_from_json() {
        let ts = Timestamp::parse("2026-11-21T09:59:58.250Z").unwrap();
        let built = Event::builder(Source::Claude, "PostToolUse", EntityType::Tool, "Bash: ls")
            .event_id("e-1")
            .ts(ts)
            .run_id("run-1")
            .session_id(Some("s-1".to_string()))
            .parent_session_id(None::<String>)
            .agent("main")
            .entity_id("toolu_1")
            .status(Status::Success)
            .severity(Severity::Warn)
            .summary("listed 3 files")
            .duration_ms(1500u64)
            .metric("input_tokens", 1200u64)
            .metric_f64("cost_usd", 0.25)
            .host("box")
            .pid(42)
            .thread_id(7)
            .correlation_id("toolu_1")
            .tag("a")
            .tags(["b", "c"])
            .payload_value(json!({"tool_name": "Bash", "n": 3}))
            .payload_field("cwd", "/tmp")
            .build(now())
            .unwrap();
        let json = json!({
            "event_id": "e-1", "ts": "2026-11-21T09:59:58.250Z", "source": "claude",
            "source_event": "PostToolUse", "run_id": "run-1", "session_id": "s-1",
            "agent": "main", "entity_type": "tool", "entity_id": "toolu_1",
            "status": "success", "severity": "warn", "title": "Bash: ls",
            "summary": "listed 3 files", "duration_ms": 1500,
            "metrics": {"input_tokens": 1200, "cost_usd": 0.25}, "host": "box", "pid": 42,
            "thread_id": 7, "correlation_id": "toolu_1", "tags": ["a", "b", "c"],
            "payload": {"tool_name": "Bash", "n": 3, "cwd": "/tmp"}
        });
        let parsed = parse_event(json.to_string().as_bytes(), now()).unwrap();
        assert_eq!(built, parsed);
        // Same bytes on the wire too (integers stay integers).
        assert_eq!(built.to_json(), parsed.to_json());
        assert!(built.to_json().contains(r#""duration_ms":1500,"#));
    }

    #[test]
    fn defaults_match_validation() {
        let e = Event::builder(Source::Custom, "x", EntityType::Log, "hello")
            .build(now())
            .unwrap();
        assert_eq!(e.ts, now());
        assert_eq!(e.severity, Severity::Info);
        assert_eq!(e.event_id.len(), 36, "a generated UUID");
        assert!(e.payload.is_empty() && e.tags.is_empty() && e.metrics.is_none());
    }

    #[test]
    fn redacts_secrets_in_every_kind_of_field() {
        let e = Event::builder(
            Source::Process,
            "exec",
            EntityType::Process,
            "curl -H 'Authorization: Bearer abcdefghijklmnop'",
        )
        .summary("psql password=hunter2")
        .tag("token=ghp_abcdefghijklmnopqrstuvwxyz0123456789")
        .payload_field("env", json!({"GITHUB_TOKEN": "ghp_x"}))
        .build(now())
        .unwrap();
        let text = e.to_json();
        for secret in ["abcdefghijklmnop", "hunter2", "ghp_x", "ghp_abcdefghij"] {
            assert!(!text.contains(secret), "`{secret}` leaked: {text}");
        }
    }

    #[test]
    fn refuses_what_validation_refuses() {
        let err = Event::builder(Source::Custom, " ", EntityType::Log, "t")
            .build(now())
            .unwrap_err();
        assert!(err.0.contains("source_event must not be empty"), "{err}");
        let err = Event::builder(Source::Custom, "x", EntityType::Log, "t")
            .payload_value(json!([1]))
            .payload_field("k", 1)
            .build(now())
            .unwrap_err();
        assert!(err.0.contains("payload must be a JSON object"), "{err}");
        let err = Event::builder(Source::Custom, "x", EntityType::Log, "t")
            .ts(Timestamp(now().millis() + 25 * 3600 * 1000))
            .build(now())
            .unwrap_err();
        assert!(err.0.contains("24 h ahead"), "{err}");
        let err = Event::builder(Source::Custom, "x", EntityType::Log, "t")
            .run_id("r".repeat(300))
            .build(now())
            .unwrap_err();
        assert!(err.0.contains("run_id"), "{err}");
    }

    #[test]
    fn caps_a_big_payload_like_validation() {
        let e = Event::builder(Source::Custom, "x", EntityType::Log, "t")
            .payload_field("big", "x".repeat(200_000))
            .build(now())
            .unwrap();
        let big = e.payload["big"].as_str().unwrap();
        assert!(big.len() < 20_000 && big.ends_with("bytes]"));
    }

    #[test]
    fn non_finite_floats_are_dropped_not_stored() {
        let e = Event::builder(Source::Python, "call", EntityType::Call, "f")
            .metric_f64("progress", f64::NAN)
            .metric("output_tokens", 3u32)
            .duration_ms_f64(f64::INFINITY)
            .build(now())
            .unwrap();
        assert_eq!(e.metric("progress"), None);
        assert_eq!(e.metric("output_tokens"), Some(3.0));
        assert_eq!(e.duration_ms, None);
    }
}
