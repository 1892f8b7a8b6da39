//! Fuzz target: redaction of arbitrary text and arbitrary JSON. It must never panic, and
//! redacting the result again must change nothing (the property export → import relies on).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_schema::redact::{redact_str, redact_value};

fuzz_target!(|data: &[u8]| {
    // Arbitrary bytes as text: lossy, so that every input exercises the string rules.
    let text = String::from_utf8_lossy(data);
    if let Some(once) = redact_str(&text) {
        assert_eq!(redact_str(&once), None, "redaction is not idempotent on {text:?}");
    }
    // The same bytes as JSON, when they are JSON: keys, nesting, command-line arrays.
    if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(data) {
        redact_value(&mut value);
        let mut again = value.clone();
        redact_value(&mut again);
        assert_eq!(value, again, "JSON redaction is not idempotent");
    }
});
