//! `sightline tail`: the live stream in the terminal, with the filter language as flags.
//!
//! Reconnects by itself with `Last-Event-ID`, so a hub restart loses nothing on screen.
//! `--bell` rings the terminal bell (BEL, written to the terminal with the event's line) when
//! an agent waits for its user or something fails, at most once per session per
//! [`BELL_EVERY`], so a flood of failures is one ring, not a minute of them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::TailArgs;
use crate::client::{HubClient, encode};

fn query(args: &TailArgs) -> String {
    let mut parts = Vec::new();
    let mut add = |k: &str, v: &[String]| {
        if !v.is_empty() {
            parts.push(format!("{k}={}", encode(&v.join(","))));
        }
    };
    add("sources", &args.sources);
    add("runs", &args.runs);
    add("sessions", &args.sessions);
    add("agents", &args.agents);
    add("entity_types", &args.entity_types);
    add("statuses", &args.statuses);
    add("severities", &args.severities);
    if let Some(q) = &args.q {
        parts.push(format!("q={}", encode(q)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// One ring per session (or run) at most this often.
const BELL_EVERY: Duration = Duration::from_secs(10);
/// Sessions remembered for the bell's rate limit; cleared when full.
const BELL_KEYS: usize = 4096;

/// Does this event ask for the user: a wait (permission, question, idle prompt) or a failure
/// of a run, session, workflow, step or process? The same rules as `serve --notify`.
pub fn wants_bell(e: &Value) -> bool {
    let status = e["status"].as_str().unwrap_or("");
    let entity = e["entity_type"].as_str().unwrap_or("");
    let error = e["severity"].as_str() == Some("error");
    let lifecycle = matches!(entity, "run" | "session" | "workflow" | "step" | "process");
    status == "blocked"
        || (status == "idle" && matches!(entity, "session" | "pane"))
        || (lifecycle && status == "failed")
        || (entity == "session" && error)
}

/// The bell's rate limit: true when this event may ring now.
fn ring_now(seen: &mut HashMap<String, Instant>, e: &Value, now: Instant) -> bool {
    let key = e["session_id"]
        .as_str()
        .or(e["run_id"].as_str())
        .unwrap_or("")
        .to_string();
    if seen
        .get(&key)
        .is_some_and(|t| now.duration_since(*t) < BELL_EVERY)
    {
        return false;
    }
    if seen.len() >= BELL_KEYS {
        seen.clear();
    }
    seen.insert(key, now);
    true
}

/// One line per event: time, source, what, status, title.
fn render(e: &Value, color: bool) -> String {
    let ts = e["ts"].as_str().unwrap_or("");
    let time = ts.get(11..23).unwrap_or(ts);
    let severity = e["severity"].as_str().unwrap_or("info");
    let status = e["status"].as_str().unwrap_or("-");
    let (on, off) = match (color, severity) {
        (true, "error") => ("\x1b[31m", "\x1b[0m"),
        (true, "warn") => ("\x1b[33m", "\x1b[0m"),
        (true, "debug") => ("\x1b[2m", "\x1b[0m"),
        _ => ("", ""),
    };
    let who = e["agent"]
        .as_str()
        .or(e["session_id"].as_str())
        .unwrap_or("");
    format!(
        "{on}{time} {:>6} {:<8} {:<10} {:<9} {:<12} {}{off}",
        e["seq"],
        e["source"].as_str().unwrap_or(""),
        e["entity_type"].as_str().unwrap_or(""),
        status,
        who.chars().take(12).collect::<String>(),
        e["title"].as_str().unwrap_or("")
    )
}

pub fn run(args: &TailArgs) -> anyhow::Result<i32> {
    let client = HubClient::new(&args.hub);
    let path = format!("/api/v1/events/stream{}", query(args));
    let color = std::io::stdout().is_terminal();
    let mut last_id = args.since_seq;
    let mut printed = 0u64;
    let mut backoff = Duration::from_millis(250);
    let mut stdout = std::io::stdout().lock();
    let mut rung: HashMap<String, Instant> = HashMap::new();
    loop {
        let reader = match client.stream(&path, last_id) {
            Ok(r) => r,
            Err(e) if last_id.is_some() || printed > 0 => {
                eprintln!(
                    "sightline: {e}; reconnecting in {:.1} s",
                    backoff.as_secs_f64()
                );
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(e) => return Err(e),
        };
        backoff = Duration::from_millis(250);
        let (mut event, mut data) = (String::new(), String::new());
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if line.is_empty() {
                if event == "sightline.event" && !data.is_empty() {
                    let value: Value = serde_json::from_str(&data)?;
                    last_id = value["seq"].as_u64().or(last_id);
                    let mut text = if args.json {
                        data.clone()
                    } else {
                        render(&value, color)
                    };
                    if args.bell
                        && wants_bell(&value)
                        && ring_now(&mut rung, &value, Instant::now())
                    {
                        text.push('\x07');
                    }
                    if writeln!(stdout, "{text}").is_err() {
                        return Ok(0);
                    }
                    let _ = stdout.flush();
                    printed += 1;
                    if args.limit.is_some_and(|l| printed >= l) {
                        return Ok(0);
                    }
                } else if event == "sightline.reset" {
                    eprintln!("sightline: {data}");
                }
                event.clear();
                data.clear();
            } else if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        // When starting live (no cursor) and the stream drops, resume from what we saw.
        if last_id.is_none() {
            last_id = Some(0).filter(|_| printed > 0);
        }
        eprintln!("sightline: stream closed; reconnecting");
        std::thread::sleep(backoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bell_rings_for_waits_and_failures_once_per_session() {
        let wait = json!({"status": "blocked", "entity_type": "permission", "session_id": "s"});
        let tool = json!({"status": "failed", "entity_type": "tool", "session_id": "s"});
        let turn = json!({"status": "idle", "entity_type": "session", "severity": "error"});
        assert!(wants_bell(&wait));
        assert!(
            !wants_bell(&tool),
            "a failed tool call is the agent's business"
        );
        assert!(wants_bell(&turn));
        let mut seen = HashMap::new();
        let t = Instant::now();
        assert!(ring_now(&mut seen, &wait, t));
        assert!(!ring_now(&mut seen, &wait, t + Duration::from_secs(1)));
        assert!(ring_now(&mut seen, &wait, t + BELL_EVERY));
    }
}
