//! Fuzz target: the Claude Code transcript line mapper (`claude::transcript::map_line_results`),
//! one input being a transcript file's lines, mapped with one state as the tailer does (usage
//! counted once, tool uses remembered for their results), as a main session's file and as a
//! subagent's. It must never panic, and every event must serialise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sightline_schema::Timestamp;
use sightline_sources::claude::transcript::{FileContext, TranscriptState, map_line_results};

fuzz_target!(|data: &[u8]| {
    let now = Timestamp(1_795_255_200_000);
    let subagent = FileContext {
        agent_id: Some("agent-fuzz".into()),
        parent_session: Some("sess-fuzz".into()),
        agent_type: Some("Explore".into()),
    };
    let mut state = TranscriptState::default();
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        let Ok(value) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let file = if i % 2 == 0 { FileContext::default() } else { subagent.clone() };
        for event in map_line_results(&value, &file, &mut state, now).into_iter().flatten() {
            let _ = event.to_json();
        }
    }
});
