//! Turning producer input into a valid [`Event`]: required fields, vocabularies, timestamps,
//! length caps, the payload size cap with its truncation marker, and redaction.
//!
//! Every path into the store goes through [`validate`]; it must never accept an event that the
//! store or the API could not represent, and never let a secret through. Redaction runs first,
//! on every text field (title, summary, source event, entity id, tags, metric names, every
//! payload key and value), and only then are caps applied, so that no cut or preview can keep
//! a secret that a whole value would have lost. Identifiers (`event_id`, `run_id`, ...) are
//! keys and are not rewritten. Validating a valid event's JSON again gives the same event.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Number, Value};
use thiserror::Error;

use crate::event::{EntityType, Event, Sealed, Severity, Source, Status};
use crate::redact::{REDACTED, redact_map, redact_str};
use crate::timestamp::Timestamp;

/// The payload's serialised size above which it is replaced by a preview.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Strings inside a payload longer than this are cut.
pub const MAX_PAYLOAD_STRING: usize = 16 * 1024;
/// Titles and summaries longer than this are cut.
pub const MAX_TEXT: usize = 512;
/// Summaries may be longer than titles.
pub const MAX_SUMMARY: usize = 2048;
/// Identifiers longer than this are refused (they are keys, cutting them would merge things).
pub const MAX_ID: usize = 256;
/// Timestamps further ahead of the hub's clock are refused as absurd.
pub const MAX_FUTURE_MS: i64 = 24 * 3600 * 1000;

/// Why an event was refused. The message says what to change.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{0}")]
pub struct ValidationError(pub String);

/// What producers send. Unknown fields are refused so that a typo is not silently dropped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvent {
    /// Accepted and ignored: the hub assigns seqs, but exports of API output may carry one.
    #[serde(default)]
    pub seq: Option<IgnoredAny>,
    pub event_id: Option<String>,
    pub ts: Option<String>,
    pub source: String,
    pub source_event: String,
    pub run_id: Option<String>,
    pub session_id: Option<String>,
    pub parent_session_id: Option<String>,
    pub agent: Option<String>,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub status: Option<String>,
    pub severity: Option<String>,
    pub title: String,
    pub summary: Option<String>,
    pub duration_ms: Option<Number>,
    pub metrics: Option<BTreeMap<String, Option<Number>>>,
    pub host: Option<String>,
    pub pid: Option<i64>,
    pub thread_id: Option<i64>,
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub payload: Option<Value>,
}

fn vocab<T>(
    field: &str,
    text: &str,
    parse: fn(&str) -> Option<T>,
    names: fn() -> String,
) -> Result<T, ValidationError> {
    parse(text)
        .ok_or_else(|| ValidationError(format!("{field} `{text}` is not one of: {}", names())))
}

fn check_id(field: &str, value: Option<String>) -> Result<Option<String>, ValidationError> {
    let Some(value) = value else { return Ok(None) };
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > MAX_ID {
        return Err(ValidationError(format!(
            "{field} is {} bytes long; identifiers are at most {MAX_ID} bytes",
            value.len()
        )));
    }
    if value.contains('\0') {
        return Err(ValidationError(format!("{field} contains a NUL character")));
    }
    Ok(Some(value))
}

/// Room kept for the `…[truncated N bytes]` marker, so a cut text fits within `max` and
/// cutting it again changes nothing (export → import → export stays byte-identical).
const MARKER_ROOM: usize = 32;

/// Cuts at a char boundary so that the text plus its marker fits in `max` bytes.
///
/// The cut never splits a `[REDACTED]` marker, and the result is stable under redaction: a cut
/// can leave a name right before the marker (`password=…[truncated`), which redaction would
/// read as a value; such a cut is moved back until redacting the result changes nothing, so
/// validating an exported event again gives the same bytes.
pub fn truncate_text(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let original = text.len();
    let mut cut = floor_boundary(text, max.saturating_sub(MARKER_ROOM));
    // Never cut inside a redaction marker: half a marker reads as a value.
    if let Some(inside) = marker_around(text, cut) {
        cut = inside;
    }
    loop {
        let candidate = format!("{}…[truncated {} bytes]", &text[..cut], original - cut);
        let Some(redacted) = redact_str(&candidate) else {
            *text = candidate;
            return;
        };
        if cut == 0 {
            // The marker alone never changes; this is only reached if a rule changed that.
            *text = redacted;
            return;
        }
        // Back to a separator before the first byte redaction changed, then try again.
        let changed = candidate
            .bytes()
            .zip(redacted.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(cut)
            .min(cut);
        let before = text.as_bytes()[..changed.min(cut.saturating_sub(1))]
            .iter()
            .rposition(|b| matches!(b, b' ' | b'\t' | b'\n' | b',' | b'{' | b'['))
            .unwrap_or(0);
        cut = floor_boundary(text, before);
    }
}

fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The start of a `[REDACTED]` marker that `at` falls strictly inside, if any.
fn marker_around(text: &str, at: usize) -> Option<usize> {
    let from = at.saturating_sub(REDACTED.len() - 1);
    let window = text.get(floor_boundary(text, from)..)?;
    let base = text.len() - window.len();
    window
        .match_indices(REDACTED)
        .map(|(i, _)| base + i)
        .take_while(|start| *start < at)
        .find(|start| start + REDACTED.len() > at)
}

/// Free text (title, summary, tags): NULs become U+FFFD, secrets are removed, then long text
/// is cut (in this order: a cut secret would no longer look like one).
fn clean_text(mut text: String, max: usize) -> String {
    if text.contains('\0') {
        text = text.replace('\0', "\u{FFFD}");
    }
    let mut text = redact_str(&text).unwrap_or(text);
    truncate_text(&mut text, max);
    text
}

fn cut_long_strings(value: &mut Value) {
    match value {
        Value::String(s) => truncate_text(s, MAX_PAYLOAD_STRING),
        Value::Array(items) => items.iter_mut().for_each(cut_long_strings),
        Value::Object(map) => map.values_mut().for_each(cut_long_strings),
        _ => {}
    }
}

/// A cheap upper bound of a value's serialised size (a string byte escapes to at most six).
/// Under the cap, the payload surely is; otherwise the exact size is computed.
fn upper_bound_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 24,
        Value::String(s) => 2 + s.len() * 6,
        Value::Array(items) => 2 + items.iter().map(|v| upper_bound_size(v) + 1).sum::<usize>(),
        Value::Object(map) => map_upper_bound(map),
    }
}

fn map_upper_bound(map: &Map<String, Value>) -> usize {
    2 + map
        .iter()
        .map(|(k, v)| 4 + k.len() * 6 + upper_bound_size(v))
        .sum::<usize>()
}

/// Applies the size cap: long strings are cut first; if the payload is still too big it is
/// replaced by a marked preview so that the event is kept and the loss is visible.
fn cap_payload(mut payload: Map<String, Value>) -> Map<String, Value> {
    // The common, small payload is measured without serialising it.
    if map_upper_bound(&payload) <= MAX_PAYLOAD_BYTES {
        return payload;
    }
    let size = serde_json::to_vec(&payload).map(|v| v.len()).unwrap_or(0);
    if size <= MAX_PAYLOAD_BYTES {
        return payload;
    }
    payload.values_mut().for_each(cut_long_strings);
    let text = serde_json::to_string(&payload).unwrap_or_default();
    if text.len() <= MAX_PAYLOAD_BYTES {
        return payload;
    }
    let mut preview = text;
    truncate_text(&mut preview, 4096);
    let mut marker = Map::new();
    marker.insert("_truncated".into(), Value::Bool(true));
    marker.insert("original_bytes".into(), Value::from(size));
    marker.insert("preview".into(), Value::String(preview));
    marker
}

/// Validates and normalises one event. `now` is the hub's clock (for defaults and the
/// future-timestamp check).
pub fn validate(raw: RawEvent, now: Timestamp) -> Result<Event, ValidationError> {
    let source = vocab("source", &raw.source, Source::parse, Source::names)?;
    let entity_type = vocab(
        "entity_type",
        &raw.entity_type,
        EntityType::parse,
        EntityType::names,
    )?;
    let status = match raw.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(vocab("status", s, Status::parse, Status::names)?),
    };
    let severity = match raw.severity.as_deref() {
        None | Some("") => Severity::Info,
        Some(s) => vocab("severity", s, Severity::parse, Severity::names)?,
    };
    let source_event = raw.source_event.trim().to_string();
    if source_event.is_empty() {
        return Err(ValidationError("source_event must not be empty".into()));
    }
    if raw.title.trim().is_empty() {
        return Err(ValidationError("title must not be empty".into()));
    }
    let ts = match raw.ts.as_deref() {
        None | Some("") => now,
        Some(text) => Timestamp::parse(text).map_err(|e| ValidationError(format!("ts: {e}")))?,
    };
    if ts.millis() > now.millis() + MAX_FUTURE_MS {
        return Err(ValidationError(format!(
            "ts {ts} is more than 24 h ahead of the hub's clock ({now})"
        )));
    }
    if let Some(d) = &raw.duration_ms
        && d.as_f64().is_none_or(|v| v < 0.0)
    {
        return Err(ValidationError(format!(
            "duration_ms must be a number ≥ 0, got {d}"
        )));
    }
    let metrics = match raw.metrics {
        None => None,
        Some(map) => {
            let mut clean = BTreeMap::new();
            for (name, value) in map {
                if name.len() > MAX_ID {
                    return Err(ValidationError(
                        "a metric name is longer than 256 bytes".into(),
                    ));
                }
                // A metric's name is text like any other: it may carry a secret.
                let name = redact_str(&name).unwrap_or(name);
                if let Some(v) = value {
                    clean.insert(name, v);
                }
            }
            (!clean.is_empty()).then_some(clean)
        }
    };
    let tags = raw.tags.unwrap_or_default();
    if tags.len() > 64 {
        return Err(ValidationError(format!("{} tags; at most 64", tags.len())));
    }
    let tags = tags.into_iter().map(|t| clean_text(t, 128)).collect();
    let payload = match raw.payload {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(ValidationError(format!(
                "payload must be a JSON object, got {}",
                json_kind(&other)
            )));
        }
    };
    // Redaction first, on the whole payload: a cap turns the payload into a preview string
    // where key-based rules (`db_pwd`, nested `password: {…}`) could no longer apply.
    let mut payload = payload;
    redact_map(&mut payload);
    let payload = cap_payload(payload);

    let event_id = match check_id("event_id", raw.event_id)? {
        Some(id) => id,
        None => uuid::Uuid::now_v7().to_string(),
    };
    Ok(Event {
        seq: 0,
        event_id,
        ts,
        source,
        source_event: clean_text(source_event, MAX_TEXT),
        run_id: check_id("run_id", raw.run_id)?,
        session_id: check_id("session_id", raw.session_id)?,
        parent_session_id: check_id("parent_session_id", raw.parent_session_id)?,
        agent: check_id("agent", raw.agent)?,
        entity_type,
        entity_id: raw
            .entity_id
            .map(|t| clean_text(t, MAX_TEXT))
            .filter(|s| !s.is_empty()),
        status,
        severity,
        title: clean_text(raw.title, MAX_TEXT),
        summary: raw.summary.map(|t| clean_text(t, MAX_SUMMARY)),
        duration_ms: raw.duration_ms,
        metrics,
        host: check_id("host", raw.host)?,
        pid: raw.pid,
        thread_id: raw.thread_id,
        correlation_id: check_id("correlation_id", raw.correlation_id)?,
        tags,
        payload,
        sealed: Sealed,
    })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses one JSON event and validates it.
pub fn parse_event(json: &[u8], now: Timestamp) -> Result<Event, ValidationError> {
    let raw: RawEvent =
        serde_json::from_slice(json).map_err(|e| ValidationError(describe_json_error(&e)))?;
    validate(raw, now)
}

/// A serde_json error in words a producer can act on.
pub fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => format!("invalid JSON: {e}"),
        Category::Data => e.to_string(),
        Category::Io => format!("could not read the body: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-21T10:00:00Z").unwrap()
    }

    fn parse(v: Value) -> Result<Event, ValidationError> {
        parse_event(v.to_string().as_bytes(), now())
    }

    fn minimal() -> Value {
        json!({"source": "custom", "source_event": "x", "entity_type": "log", "title": "hello"})
    }

    #[test]
    fn fills_defaults() {
        let e = parse(minimal()).unwrap();
        assert_eq!(e.ts, now());
        assert_eq!(e.severity, Severity::Info);
        assert_eq!(e.event_id.len(), 36);
        assert!(e.payload.is_empty() && e.tags.is_empty());
    }

    #[test]
    fn names_what_is_wrong() {
        let cases = [
            (json!({"source": "custom"}), "missing field"),
            (
                json!({"source": "nope", "source_event": "x", "entity_type": "log", "title": "t"}),
                "source `nope`",
            ),
            (
                json!({"source": "custom", "source_event": "x", "entity_type": "log", "title": "t", "colour": 1}),
                "unknown field `colour`",
            ),
            (
                json!({"source": "custom", "source_event": "x", "entity_type": "log", "title": 5}),
                "invalid type",
            ),
            (
                json!({"source": "custom", "source_event": "x", "entity_type": "log", "title": "t", "ts": "3026-01-01T00:00:00Z"}),
                "24 h ahead",
            ),
            (
                json!({"source": "custom", "source_event": "x", "entity_type": "log", "title": "t", "ts": "1900-01-01T00:00:00Z"}),
                "before 1970",
            ),
            (
                json!({"source": "custom", "source_event": "x", "entity_type": "log", "title": "t", "payload": [1]}),
                "payload must be a JSON object",
            ),
            (
                json!({"source": "custom", "source_event": "x", "entity_type": "log", "title": "t", "run_id": "a\u{0}b"}),
                "NUL",
            ),
            (
                json!({"source": "custom", "source_event": "x", "entity_type": "log", "title": "t", "duration_ms": -1}),
                "duration_ms",
            ),
        ];
        for (input, needle) in cases {
            let err = parse(input.clone()).unwrap_err().0;
            assert!(err.contains(needle), "{input}: `{err}` lacks `{needle}`");
        }
    }

    #[test]
    fn caps_big_payloads_visibly() {
        let mut v = minimal();
        v["payload"] = json!({"big": "x".repeat(200_000)});
        let e = parse(v).unwrap();
        let big = e.payload["big"].as_str().unwrap();
        assert!(
            big.len() < 20_000 && big.ends_with("bytes]"),
            "{}",
            &big[big.len() - 40..]
        );

        let mut v = minimal();
        let many: Map<String, Value> = (0..100)
            .map(|i| (format!("k{i}"), Value::String("y".repeat(10_000))))
            .collect();
        v["payload"] = Value::Object(many);
        let e = parse(v).unwrap();
        assert_eq!(e.payload["_truncated"], true);
        assert!(e.payload["original_bytes"].as_u64().unwrap() > 1_000_000);
    }

    #[test]
    fn redacts_before_anything_else_sees_it() {
        let mut v = minimal();
        v["title"] = json!("run with Bearer abcdefghijklmnop");
        v["payload"] = json!({"env": {"GITHUB_TOKEN": "ghp_x"}, "cmd": "psql password=hunter2"});
        let e = parse(v).unwrap();
        let text = e.to_json();
        assert!(
            !text.contains("abcdefghijklmnop")
                && !text.contains("ghp_x")
                && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[test]
    fn refuses_deep_nesting_without_crashing() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let body = format!(
            r#"{{"source":"custom","source_event":"x","entity_type":"log","title":"t","payload":{{"a":{deep}}}}}"#
        );
        let err = parse_event(body.as_bytes(), now()).unwrap_err().0;
        assert!(err.contains("recursion limit"), "{err}");
    }
}
