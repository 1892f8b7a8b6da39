//! Fuzz target: the OpenCode event mapper (`opencode::map_event`, after `unwrap` of the
//! plugin's and the spool's envelopes), one input being JSONL mapped with one state as the
//! stream and the JSONL tailer do (sessions learnt from `parentID`); and the same bytes posted
//! to the plugin's endpoint (`OpenCodePlugin::decode`). It must never panic, and every event
//! must serialise.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sightline_core::{HttpRequest, HttpSource};
use sightline_schema::Timestamp;
use sightline_sources::opencode::{OcState, OpenCodePlugin, map_event, unwrap};

fuzz_target!(|data: &[u8]| {
    let now = Timestamp(1_795_255_200_000);
    let mut state = OcState::default();
    for line in data.split(|b| *b == b'\n') {
        let Ok(item) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let (dir, ev) = unwrap(&item);
        if let Some(Ok(event)) = map_event(&ev, dir.as_deref(), &mut state, now) {
            let _ = event.to_json();
        }
    }
    let request = HttpRequest {
        headers: vec![("content-type".into(), "application/x-ndjson".into())],
        params: vec![],
        body: Bytes::copy_from_slice(data),
        now,
    };
    if let Ok(decoded) = OpenCodePlugin::default().decode(&request) {
        for event in &decoded.events {
            let _ = event.to_json();
        }
    }
});
