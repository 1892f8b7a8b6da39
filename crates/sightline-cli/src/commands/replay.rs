//! `sightline replay PATH`: plays a recording into the hub as if it were happening now,
//! keeping the recording's rhythm (scaled by --speed).
//!
//! By default ids get a replay suffix so that the replay is a new run beside the original
//! rather than a pile of duplicates the hub would ignore. A progress line follows it on stderr
//! when that is a terminal.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use sightline_schema::Timestamp;

use crate::cli::ReplayArgs;
use crate::client::HubClient;
use crate::commands::import::format_of;
use crate::progress::{Progress, Unit};

/// Reads a recording: NDJSON/JSONL lines, a JSON array, or a YAML sequence.
fn load(path: &std::path::Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let format = format_of(path).unwrap_or("ndjson");
    let values: Vec<Value> = match format {
        "yaml" => yaml_serde::from_str(&text)
            .with_context(|| format!("{} is not a YAML sequence of events", path.display()))?,
        "json" => serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON array of events", path.display()))?,
        _ => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .with_context(|| format!("{} line {}: invalid JSON", path.display(), i + 1))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    Ok(values)
}

fn suffix_ids(event: &mut Value, suffix: &str) {
    for key in [
        "event_id",
        "run_id",
        "session_id",
        "parent_session_id",
        "correlation_id",
    ] {
        if let Some(Value::String(s)) = event.get_mut(key) {
            s.push_str(suffix);
        }
    }
}

pub fn run(args: &ReplayArgs) -> anyhow::Result<i32> {
    if !(args.speed >= 0.0 && args.speed.is_finite()) {
        bail!("--speed must be 0 (as fast as possible) or a positive factor");
    }
    let mut events = load(&args.path)?;
    if events.is_empty() {
        bail!("{} holds no events", args.path.display());
    }
    let times: Vec<Option<i64>> = events
        .iter()
        .map(|e| {
            e["ts"]
                .as_str()
                .and_then(|t| Timestamp::parse(t).ok())
                .map(|t| t.millis())
        })
        .collect();
    let first = times.iter().flatten().min().copied().unwrap_or(0);
    let suffix = format!("~replay-{}", Timestamp::now().millis());
    let client = HubClient::new(&args.hub);
    let start = Instant::now();
    let now = Timestamp::now().millis();
    let mut progress = Progress::new("replay", Unit::Events, Some(events.len() as u64));
    for (i, event) in events.iter_mut().enumerate() {
        if let Value::Object(map) = event {
            map.remove("seq");
        }
        let offset = times[i].map(|t| t - first).unwrap_or(0).max(0);
        if args.speed > 0.0 {
            let due = Duration::from_millis((offset as f64 / args.speed) as u64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if !args.keep_ids {
            suffix_ids(event, &suffix);
        }
        event["ts"] = Value::String(Timestamp(now + offset).to_rfc3339());
        client.post(
            "/api/v1/events",
            "application/json",
            event.to_string().as_bytes(),
        )?;
        progress.add(1);
    }
    progress.finish();
    eprintln!(
        "sightline: replayed {} events{}",
        events.len(),
        if args.keep_ids {
            String::new()
        } else {
            format!(" (ids suffixed {suffix})")
        }
    );
    Ok(0)
}
