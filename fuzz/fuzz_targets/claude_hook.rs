//! Fuzz target: `POST /api/v1/hooks/claude` through `ClaudeHooks::decode`. The first byte
//! picks the body: even → one hook payload as Claude Code posts it (with the producer's id and
//! time headers), odd → the NDJSON spool of `sightline hook`. It must never panic, and every
//! event must serialise.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sightline_core::{Accepted, HttpRequest, HttpSource};
use sightline_schema::Timestamp;
use sightline_sources::claude::hooks::{ClaudeHooks, ID_HEADER, TS_HEADER};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let mut headers = vec![(
        "content-type".to_string(),
        if mode % 2 == 1 { "application/x-ndjson" } else { "application/json" }.to_string(),
    )];
    if mode % 4 == 2 {
        headers.push((ID_HEADER.into(), "fuzz-id".into()));
        headers.push((TS_HEADER.into(), "1795255200000".into()));
    }
    let request = HttpRequest {
        headers,
        params: vec![],
        body: Bytes::copy_from_slice(body),
        now: Timestamp(1_795_255_200_000),
    };
    let hooks = ClaudeHooks::default();
    if let Ok(decoded) = hooks.decode(&request) {
        for event in &decoded.events {
            let _ = event.to_json();
        }
        let _ = hooks.reply(&request, &Accepted::default(), &decoded.refused);
    }
});
