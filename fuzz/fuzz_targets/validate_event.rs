//! Fuzz target: `parse_event` on arbitrary bytes. It must never panic, and a valid event's
//! portable JSON must validate again to the same bytes (export → import → export).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_schema::{Timestamp, parse_event};

fuzz_target!(|data: &[u8]| {
    let now = Timestamp(1_795_000_000_000);
    if let Ok(event) = parse_event(data, now) {
        let exported = event.to_portable_json();
        let again = parse_event(exported.as_bytes(), now)
            .unwrap_or_else(|e| panic!("an exported event is refused: {e}: {exported}"));
        assert_eq!(exported, again.to_portable_json(), "export is not stable");
    }
});
