//! Fuzz target: one WebSocket text message from a client, through what the socket loop does
//! with it before any I/O: `client_message::parse` (and `message_id`, used when a message is
//! refused), then by type: a `subscribe` filter's round trip through query parameters, a
//! `publish`'s events through the one ingest path's `parse_batch` (validation and redaction),
//! a `workflow_update`'s updates through the workflow mapping. It must never panic, a filter
//! the hub accepts must survive being written back, and every accepted event must serialise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_core::client_message::{self, ClientMessage};
use sightline_core::ingest::parse_batch;
use sightline_schema::{Filter, Timestamp};
use sightline_sources::workflow::updates_to_events;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = Timestamp(1_795_255_200_000);
    let _ = client_message::message_id(text);
    let Ok(msg) = client_message::parse(text) else {
        return;
    };
    match msg {
        ClientMessage::Subscribe {
            filter: Some(filter),
            ..
        } => {
            let written = filter.to_params();
            let back = Filter::from_params(written.iter().map(|(k, v)| (*k, v.as_str())))
                .unwrap_or_else(|e| panic!("written params refused: {e}: {written:?}"));
            assert_eq!(*filter, back, "a subscribe filter does not round-trip");
        }
        ClientMessage::Publish { events, .. } => {
            if let Ok(events) = parse_batch(events.to_string().as_bytes(), None, now) {
                for event in &events {
                    let _ = event.to_json();
                }
            }
        }
        ClientMessage::WorkflowUpdate {
            workflow_id,
            updates,
            ..
        } => {
            if let Ok(events) = updates_to_events(&workflow_id, &updates, now) {
                for event in &events {
                    let _ = event.to_json();
                }
            }
        }
        _ => {}
    }
});
