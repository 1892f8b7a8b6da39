//! `sightline hook`: the Claude Code hook command. Reads the hook payload on stdin, posts it to
//! the hub's `/api/v1/hooks/claude`, and exits 0 — always, whatever happens, and fast (no async
//! runtime, one blocking request over loopback, a 1 s ceiling).
//!
//! The event id and time are fixed here, once, and travel with the payload (headers, or the
//! spool line), so the hub's `event_id` dedup makes every delivery count once. When the hub
//! cannot be reached (or answers 5xx/401/403) the payload is appended to a bounded spool file
//! under the data directory; the next successful hook run delivers the spool as one NDJSON batch.
//! Delivery claims the spool by renaming it (atomic), so two hook processes never send the same
//! spool, and a claimed file left by a crashed process is picked up after a minute.
//!
//! This command must never print to stdout (Claude Code reads a hook's stdout as instructions)
//! and never exit non-zero (that could block or annotate the agent's turn).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::HookArgs;

/// Largest payload read from stdin; a bigger one is cut by the hub's caps anyway.
const MAX_STDIN: u64 = 8 * 1024 * 1024;
/// Default spool bound (`SIGHTLINE_SPOOL_MAX` bytes overrides).
const DEFAULT_SPOOL_MAX: u64 = 16 * 1024 * 1024;
/// Most bytes of spool sent in one request (below the hub's default 8 MiB body limit).
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// A claimed spool older than this belongs to a process that died while sending it.
const STALE_CLAIM: Duration = Duration::from_secs(60);

pub fn run(args: &HookArgs) -> anyhow::Result<i32> {
    // Whatever fails inside, the agent sees a quiet success.
    let _ = deliver(args);
    Ok(0)
}

fn spool_dir() -> PathBuf {
    std::env::var_os("SIGHTLINE_SPOOL_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::config::data_dir().join("spool"))
}

fn spool_max() -> u64 {
    std::env::var("SIGHTLINE_SPOOL_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SPOOL_MAX)
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

enum Outcome {
    Delivered,
    /// Worth keeping for later (hub down, overloaded, or refusing our token).
    Retry,
    /// The hub refused this payload for good (400): keeping it would only clog the spool.
    Refused,
}

fn post(
    agent: &ureq::Agent,
    args: &HookArgs,
    body: &[u8],
    content_type: &str,
    id_ts: Option<(&str, i64)>,
) -> Outcome {
    let url = format!("{}/api/v1/hooks/claude", args.hub.url.trim_end_matches('/'));
    let mut req = agent.post(&url).header("content-type", content_type);
    if let Some(token) = args.hub.token.as_deref().filter(|t| !t.is_empty()) {
        req = req.header("authorization", &format!("Bearer {token}"));
    }
    if let Some((id, ts)) = id_ts {
        req = req
            .header("x-sightline-event-id", id)
            .header("x-sightline-ts", &ts.to_string());
    }
    match req.send(body) {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match status {
                200..=299 => Outcome::Delivered,
                400 | 413 | 422 => Outcome::Refused,
                _ => Outcome::Retry,
            }
        }
        Err(_) => Outcome::Retry,
    }
}

fn deliver(args: &HookArgs) -> anyhow::Result<()> {
    let mut input = Vec::new();
    std::io::stdin().take(MAX_STDIN).read_to_end(&mut input)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    // Compact JSON: it must fit on one spool line. Not JSON at all: nothing to send.
    let payload: serde_json::Value = serde_json::from_slice(&input)?;
    let compact = serde_json::to_vec(&payload)?;
    let id = format!(
        "claude-hook:{}",
        sightline_sources::util::stable_hash(&[
            &compact,
            now.to_string().as_bytes(),
            std::process::id().to_string().as_bytes(),
        ])
    );
    let agent = agent(Duration::from_millis(args.timeout_ms));
    match post(&agent, args, &compact, "application/json", Some((&id, now))) {
        Outcome::Delivered => {
            let _ = flush_spool(&agent, args);
        }
        Outcome::Retry => append_spool(&id, now, &compact)?,
        Outcome::Refused => {}
    }
    Ok(())
}

fn spool_file(dir: &Path) -> PathBuf {
    dir.join("claude-hooks.jsonl")
}

fn append_spool(id: &str, ts: i64, payload: &[u8]) -> anyhow::Result<()> {
    let dir = spool_dir();
    std::fs::create_dir_all(&dir)?;
    let path = spool_file(&dir);
    let mut line = Vec::with_capacity(payload.len() + 96);
    line.extend_from_slice(format!("{{\"id\":\"{id}\",\"ts\":{ts},\"payload\":").as_bytes());
    line.extend_from_slice(payload);
    line.extend_from_slice(b"}\n");
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    if size + line.len() as u64 > spool_max() {
        // Bounded: past the cap new events are dropped (and counted), never the agent slowed.
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("claude-hooks.dropped"))?;
        f.write_all(b"1\n")?;
        return Ok(());
    }
    // One write of one line with O_APPEND: concurrent hook processes do not interleave.
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    f.write_all(&line)?;
    Ok(())
}

/// Claims the spool (and stale claims) by renaming, sends it, and deletes it once acknowledged;
/// on failure the lines go back into the spool.
fn flush_spool(agent: &ureq::Agent, args: &HookArgs) -> anyhow::Result<()> {
    let dir = spool_dir();
    let mut claimed = Vec::new();
    let stamp = format!(
        "{}.{}",
        std::process::id(),
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos()
    );
    let main = spool_file(&dir);
    if main.exists() {
        let mine = dir.join(format!("claude-hooks.{stamp}.sending"));
        if std::fs::rename(&main, &mine).is_ok() {
            claimed.push(mine);
        }
    }
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let stale = path.extension().is_some_and(|e| e == "sending")
                && !claimed.contains(&path)
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_CLAIM);
            if stale {
                let mine = dir.join(format!("claude-hooks.{stamp}.{}.sending", claimed.len()));
                if std::fs::rename(&path, &mine).is_ok() {
                    claimed.push(mine);
                }
            }
        }
    }
    for file in claimed {
        let data = std::fs::read(&file)?;
        let mut ok = true;
        for batch in batches(&data) {
            match post(agent, args, batch, "application/x-ndjson", None) {
                Outcome::Delivered | Outcome::Refused => {}
                Outcome::Retry => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            // Put everything back; lines already delivered are deduped by id next time.
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(spool_file(&dir))?;
            f.write_all(&data)?;
        }
        std::fs::remove_file(&file)?;
    }
    Ok(())
}

/// Splits NDJSON into batches of whole lines of at most `BATCH_BYTES` (a longer line alone).
fn batches(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut last_cut = 0;
    for (i, b) in data.iter().enumerate() {
        if *b == b'\n' {
            if i + 1 - start > BATCH_BYTES && last_cut > start {
                out.push(&data[start..last_cut]);
                start = last_cut;
            }
            last_cut = i + 1;
        }
    }
    if last_cut > start {
        out.push(&data[start..last_cut]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_whole_lines() {
        let data = b"a\nbb\nccc\n";
        assert_eq!(batches(data), vec![&data[..]]);
        assert!(batches(b"").is_empty());
    }
}
