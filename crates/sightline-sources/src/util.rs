//! Small helpers every adapter shares: reading loosely typed JSON, stable ids, short titles,
//! and turning a mapped JSON object into a validated (hence redacted) [`Event`].
//!
//! Nothing here does I/O. Every event an adapter produces must pass through [`to_event`], which
//! runs the schema's `validate` — that is where redaction and size caps happen, so an adapter
//! must never build an `Event` by hand.

use serde_json::{Map, Value};
use sightline_schema::{Event, RawEvent, Timestamp, validate};

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

/// Validates a mapped event (an object in the shape of `RawEvent`). Validation redacts the
/// payload, title and summary and applies the size caps.
pub fn to_event(mut raw: Value, now: Timestamp) -> Result<Event, String> {
    if let Value::Object(map) = &mut raw {
        // Absent optional fields are left out rather than sent as null to keep `RawEvent` happy
        // about the shapes it expects.
        map.retain(|_, v| !v.is_null());
    }
    let raw: RawEvent = serde_json::from_value(raw).map_err(|e| e.to_string())?;
    validate(raw, now).map_err(|e| e.0)
}

/// A JSON number that stays an integer when the value is whole (1234, not 1234.0).
pub fn num(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// Inserts a numeric metric when the value is a finite number.
pub fn put_metric(metrics: &mut Map<String, Value>, name: &str, value: Option<f64>) {
    if let Some(v) = value.filter(|v| v.is_finite()) {
        metrics.insert(name.to_string(), num(v));
    }
}

/// `Some(Value::Object)` when non-empty, else `Value::Null` (left out of the event).
pub fn metrics_value(metrics: Map<String, Value>) -> Value {
    if metrics.is_empty() {
        Value::Null
    } else {
        Value::Object(metrics)
    }
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
    fn short_takes_the_first_line() {
        assert_eq!(short("hello\nworld", 10), "hello");
        assert_eq!(short("abcdefghijkl", 5), "abcd…");
    }
}
