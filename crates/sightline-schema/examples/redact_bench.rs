//! A quick timing loop for redaction and validation (no criterion): how many typical events per
//! second one core validates, and how fast `redact_str` scans clean and secret-bearing text.
//! Run with `cargo run --release -p sightline-schema --example redact_bench [SECTION [ROUNDS]]`
//! (SECTION: `events`, `clean-ascii`, `clean-non-ascii`, `secrets`; all by default); a small
//! ROUNDS under `valgrind --tool=callgrind` gives instruction counts that a loaded machine
//! cannot skew. It measures only; it must never be part of the test suite's pass/fail.

use std::hint::black_box;
use std::time::Instant;

use sightline_schema::redact::redact_str;
use sightline_schema::{Timestamp, parse_event};

/// A Claude-hook-like event: a command, a file's content, some non-ASCII, nested objects.
fn typical_event(i: usize) -> String {
    let content =
        "fn main() {\n    println!(\"hello, world\");\n    let x = compute(42);\n}\n".repeat(20);
    serde_json::json!({
        "source": "claude",
        "source_event": "PostToolUse",
        "entity_type": "tool",
        "entity_id": format!("toolu_{i:08}"),
        "session_id": "7f9c2b1e-5d3a-4e8b-9c1f-2a3b4c5d6e7f",
        "run_id": "7f9c2b1e-5d3a-4e8b-9c1f-2a3b4c5d6e7f",
        "status": "success",
        "title": format!("Bash cargo test -p sightline-schema ({i})"),
        "summary": "ran the tests: 42 passed, 0 failed — résumé ok ✓",
        "tags": ["rust", "tests"],
        "metrics": {"input_tokens": 1200, "output_tokens": 300},
        "payload": {
            "tool_name": "Bash",
            "cwd": "/home/alice/src/sightline",
            "tool_input": {"command": "cargo test -p sightline-schema --quiet", "description": "Run the schema tests", "timeout": 120000},
            "tool_response": {"stdout": content, "stderr": "warning: unused variable `x`\n", "interrupted": false},
            "transcript_path": "/home/alice/.claude/projects/x/abc.jsonl",
            "note": "日本語のテキストとтекст на русском, مرحبا 👋"
        }
    })
    .to_string()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let section = args.get(1).cloned().unwrap_or_default();
    let wanted = |name: &str| section.is_empty() || section == name;
    let scale: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(0);
    let now = Timestamp::parse("2026-11-21T10:00:00Z").expect("a valid timestamp");
    let events: Vec<String> = (0..1000).map(typical_event).collect();
    let bytes: usize = events.iter().map(String::len).sum();
    // Warm up (memo, lazy automaton).
    for e in &events {
        black_box(parse_event(e.as_bytes(), now).expect("valid"));
    }
    let rounds = if scale > 0 { scale } else { 30 };
    let start = Instant::now();
    for _ in 0..(if wanted("events") { rounds } else { 0 }) {
        for e in &events {
            black_box(parse_event(e.as_bytes(), now).expect("valid"));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let n = (rounds * events.len()) as f64;
    println!(
        "parse_event (typical {} B event): {:.0} events/s, {:.1} MB/s",
        bytes / events.len(),
        n / secs,
        (rounds * bytes) as f64 / secs / 1e6
    );

    let texts = [
        ("clean-ascii", "cargo test -p sightline-schema --quiet && echo the build is done; ls -la /home/alice/src\n".repeat(200)),
        ("clean-non-ascii", "日本語のテキストとтекст на русском, مرحبا 👋 résumé — ok\n".repeat(200)),
        ("secrets", "export GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789 then curl -H 'Authorization: Bearer abcdefgh12345678' https://alice:pw@host/x\n".repeat(100)),
    ];
    for (name, text) in &texts {
        if !wanted(name) {
            continue;
        }
        let rounds = if scale > 0 { scale } else { 2000 };
        let start = Instant::now();
        for _ in 0..rounds {
            black_box(redact_str(black_box(text)));
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "redact_str ({name}, {} B): {:.0} MB/s",
            text.len(),
            (rounds * text.len()) as f64 / secs / 1e6
        );
    }
}
