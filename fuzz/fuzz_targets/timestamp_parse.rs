//! Fuzz target: RFC 3339 parsing. It must never panic, and an accepted timestamp must format
//! to its canonical form and parse back to the same instant.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_schema::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ts) = Timestamp::parse(text) {
        let canonical = ts.to_rfc3339();
        assert_eq!(Timestamp::parse(&canonical), Ok(ts), "{text} → {canonical}");
        assert_eq!(canonical.len(), 24, "{canonical}");
    }
});
