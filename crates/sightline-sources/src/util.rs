//! Small helpers every source shares: reading loosely typed JSON, stable ids, short titles,
//! numbers and metrics in the shape the typed event builder takes, and the error event a
//! background source records for a line it cannot map.
//!
//! Nothing here does I/O. Every event a source produces is made with
//! `sightline_schema::Event::builder`, whose `build` runs the schema's `validate` — that is
//! where redaction and size caps happen — so a source must never hold an `Event` that did not
//! come out of it, and this module must never check, cap or redact anything itself.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::{Map, Number, Value};
use sightline_schema::redact::redact_str;
use sightline_schema::{EntityType, Event, EventBuilder, Severity, Source, Timestamp};

/// A string field (numbers are accepted and printed), `None` when absent or empty.
pub fn text(obj: &Value, key: &str) -> Option<String> {
    match obj.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A number field, from a JSON number or a numeric string (OTLP JSON sends 64-bit ints as strings).
pub fn number(obj: &Value, key: &str) -> Option<f64> {
    match obj.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// 128-bit FNV-1a over the parts (with a separator), as 32 hex digits. Stable across builds and
/// machines, so the same input always maps to the same event id (the hub dedupes on it).
pub fn stable_hash(parts: &[&[u8]]) -> String {
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for part in parts {
        for b in part.iter().chain(std::iter::once(&0xffu8)) {
            h ^= *b as u128;
            h = h.wrapping_mul(PRIME);
        }
    }
    format!("{h:032x}")
}

/// An event id from a prefix and parts; short parts are kept readable, long ones hashed, so the
/// id always fits the schema's 256-byte limit.
pub fn event_id(prefix: &str, parts: &[&str]) -> String {
    let joined = parts.join(":");
    if prefix.len() + joined.len() < 200 && !joined.contains('\0') {
        format!("{prefix}:{joined}")
    } else {
        let bytes: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
        format!("{prefix}:{}", stable_hash(&bytes))
    }
}

/// First line of `s`, cut to `max` characters with an ellipsis.
pub fn short(s: &str, max: usize) -> String {
    let line = s.trim().lines().next().unwrap_or("").trim();
    if line.chars().count() <= max {
        return line.to_string();
    }
    let mut out: String = line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Epoch milliseconds (or seconds, or an RFC 3339 string) as an RFC 3339 timestamp string.
pub fn ts_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => {
            if let Ok(n) = s.parse::<f64>() {
                return ts_from_number(n);
            }
            Some(s.clone())
        }
        Value::Number(n) => ts_from_number(n.as_f64()?),
        _ => None,
    }
}

fn ts_from_number(v: f64) -> Option<String> {
    if !v.is_finite() || v <= 0.0 {
        return None;
    }
    let millis = if v < 1e11 { v * 1000.0 } else { v } as i64;
    Some(Timestamp(millis).to_rfc3339())
}

/// A JSON number that stays an integer when the value is whole (1234, not 1234.0); `None`
/// for NaN and infinities, which JSON cannot carry.
pub fn json_number(v: f64) -> Option<Number> {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Some(Number::from(v as i64))
    } else {
        Number::from_f64(v)
    }
}

/// Metrics collected while mapping, in the order they were put (a repeated name replaces the
/// earlier value, as the builder does).
#[derive(Debug, Default)]
pub struct Metrics(Vec<(String, Number)>);

impl Metrics {
    /// Puts a numeric metric when the value is a finite number.
    pub fn put(&mut self, name: impl Into<String>, value: Option<f64>) {
        if let Some(n) = value.filter(|v| v.is_finite()).and_then(json_number) {
            self.0.push((name.into(), n));
        }
    }

    /// Puts a number as the producer sent it (integer or float kept as they were).
    pub fn put_number(&mut self, name: impl Into<String>, value: Number) {
        self.0.push((name.into(), value));
    }
}

/// What the typed builder takes as values, offered for the `Option`s a mapping holds.
pub trait BuilderExt: Sized {
    /// Sets `duration_ms` when there is a valid one (integers stay integers, as [`json_number`]);
    /// a negative or non-finite one is left out, never a reason to lose the event.
    fn duration_opt(self, ms: Option<f64>) -> Self;
    /// Sets `duration_ms` to a number as the producer sent it.
    fn duration_number(self, ms: Option<Number>) -> Self;
    fn metrics(self, metrics: Metrics) -> Self;
    /// The timestamp a producer wrote as text (RFC 3339): parsed here, because the builder
    /// takes a [`Timestamp`]. An unparsable one is refused with the words `validate` uses.
    fn ts_text(self, ts: Option<&str>) -> Result<Self, String>;
}

impl BuilderExt for EventBuilder {
    fn duration_opt(self, ms: Option<f64>) -> Self {
        self.duration_number(ms.and_then(json_number))
    }

    // A producer's negative duration is its own bug; the event is still worth keeping, so the
    // field is left out instead of the whole event being refused by validation.
    fn duration_number(self, ms: Option<Number>) -> Self {
        match ms {
            Some(n) if n.as_f64().is_some_and(|f| f >= 0.0) => self.duration_ms(n),
            _ => self,
        }
    }

    fn metrics(self, metrics: Metrics) -> Self {
        metrics
            .0
            .into_iter()
            .fold(self, |b, (name, value)| b.metric(name, value))
    }

    fn ts_text(self, ts: Option<&str>) -> Result<Self, String> {
        match ts.filter(|t| !t.is_empty()) {
            None => Ok(self),
            Some(text) => Timestamp::parse(text)
                .map(|t| self.ts(t))
                .map_err(|e| format!("ts: {e}")),
        }
    }
}

/// Runs the mapping of one input, turning a panic inside it into an error like any other, so
/// a source skips the input (and moves its checkpoint past it) instead of dying on it and
/// meeting it again after every restart.
pub fn contain<T>(map: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(map)).unwrap_or_else(|panic| {
        Err(format!(
            "the mapping panicked: {}",
            crate::framework::panic_message(&*panic)
        ))
    })
}

/// A message for health and the log, with any secret it quotes removed (health is served to
/// every reader; an error message may quote the input it failed on).
pub fn redacted(message: &str) -> String {
    redact_str(message).unwrap_or_else(|| message.to_string())
}

/// Most characters of the offending line an error event keeps.
const LINE_PREVIEW: usize = 200;

/// The event a background source records for a line it could not map: severity `error`, which
/// file and where in it, why, and the start of the line. Built (so redacted) like any other;
/// its id comes from the file and the offset, so reading the line again stores it once.
pub fn line_error_event(
    source: Source,
    id_prefix: &str,
    file: &std::path::Path,
    offset: u64,
    line: &str,
    message: &str,
    now: Timestamp,
) -> Option<Event> {
    let path = file.to_string_lossy();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let at = format!("the line at byte {offset}");
    let mut payload = Map::new();
    payload.insert("file".into(), Value::from(path.as_ref()));
    payload.insert("offset".into(), Value::from(offset));
    payload.insert("error".into(), Value::from(message));
    payload.insert(
        "line".into(),
        Value::from(line.chars().take(LINE_PREVIEW).collect::<String>()),
    );
    Event::builder(
        source,
        "source.error",
        EntityType::Log,
        format!("Could not read {at} of {name}"),
    )
    .event_id(event_id(
        &format!("{id_prefix}-error"),
        &[&stable_hash(&[path.as_bytes()]), &offset.to_string()],
    ))
    .severity(Severity::Error)
    .summary(short(message, 400))
    .tag("source-error")
    .payload(payload)
    .build(now)
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_bounded() {
        assert_eq!(stable_hash(&[b"a", b"b"]), stable_hash(&[b"a", b"b"]));
        assert_ne!(stable_hash(&[b"ab"]), stable_hash(&[b"a", b"b"]));
        let long = "x".repeat(500);
        assert!(event_id("p", &[&long]).len() < 100);
        assert_eq!(event_id("p", &["a", "b"]), "p:a:b");
    }

    #[test]
    fn a_panicking_mapping_is_an_error_not_a_crash() {
        let r: Result<(), String> = contain(|| panic!("boom on line 7"));
        assert_eq!(r.unwrap_err(), "the mapping panicked: boom on line 7");
        assert_eq!(contain(|| Ok::<_, String>(3)), Ok(3));
        assert_eq!(contain(|| Err::<(), _>("no".to_string())), Err("no".into()));
    }

    #[test]
    fn numbers_stay_integers_when_whole() {
        assert_eq!(json_number(1234.0).unwrap().to_string(), "1234");
        assert_eq!(json_number(0.25).unwrap().to_string(), "0.25");
        assert_eq!(json_number(f64::NAN), None);
        let mut m = Metrics::default();
        m.put("a", Some(f64::INFINITY));
        m.put("b", None);
        m.put("c", Some(2.0));
        assert_eq!(m.0.len(), 1);
    }

    #[test]
    fn a_line_error_event_is_redacted_and_says_where() {
        let now = Timestamp::parse("2026-11-21T10:00:00Z").unwrap();
        let e = line_error_event(
            Source::Process,
            "log",
            std::path::Path::new("/var/log/a.log"),
            42,
            "token=ghp_abcdefghijklmnopqrstuvwxyz0123456789 and more",
            "bad password=hunter2",
            now,
        )
        .unwrap();
        let json = e.to_json();
        assert!(
            !json.contains("ghp_abcdefghij") && !json.contains("hunter2"),
            "{json}"
        );
        assert_eq!(e.severity, Severity::Error);
        assert!(
            e.title.contains("byte 42") && e.title.contains("a.log"),
            "{}",
            e.title
        );
        assert_eq!(e.payload["offset"], 42);
        // The same line read again is the same event.
        let again = line_error_event(
            Source::Process,
            "log",
            std::path::Path::new("/var/log/a.log"),
            42,
            "",
            "",
            now,
        )
        .unwrap();
        assert_eq!(e.event_id, again.event_id);
    }

    #[test]
    fn short_takes_the_first_line() {
        assert_eq!(short("hello\nworld", 10), "hello");
        assert_eq!(short("abcdefghijkl", 5), "abcd…");
    }
}
