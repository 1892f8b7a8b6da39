//! Claude Code transcripts (`<claude dir>/projects/**/*.jsonl`, subagents in
//! `<session>/subagents/agent-<id>.jsonl`): backfilled from the start, then tailed live.
//!
//! Each line becomes events: assistant text, tool uses and tool results (correlated with hook
//! events on `tool_use_id`, so a tool seen by both is one lifecycle), prompts, and one usage
//! event per API call with tokens and cost from [`super::pricing`]. Transcripts repeat the same
//! `usage` on every content block of a message, so usage is counted once per
//! `message.id` + `requestId`: in memory while tailing, and through the event id
//! (`claude-usage:<requestId>`) across restarts and against the OpenTelemetry `api_request`
//! event of the same call, which uses the same id. The checkpoint is the byte offset of each
//! file, advanced only after the events before it were committed.
//!
//! The format is internal to Claude Code and drifts: unknown line types and fields are skipped
//! or kept in the payload, never an error. This module must never modify the transcripts.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use sightline_schema::{Event, Timestamp};

use super::hooks::tool_title;
use super::pricing::{Usage, cost_usd};
use crate::framework::{Adapter, AdapterConfig, AdapterContext, AdapterError, AdapterFuture};
use crate::util::{event_id, metrics_value, put_metric, short, text, to_event};

pub const NAME: &str = "claude-transcripts";
/// Most bytes read from one file in one pass (a pass ends at the last whole line).
const READ_CHUNK: u64 = 16 * 1024 * 1024;

/// Where a transcript file sits in the session tree.
#[derive(Debug, Clone, Default)]
pub struct FileContext {
    /// Set for `subagents/agent-<id>.jsonl`.
    pub agent_id: Option<String>,
    /// The parent session's id for a subagent file (its directory name).
    pub parent_session: Option<String>,
    /// `agentType` from the `agent-<id>.meta.json` sidecar Claude Code writes beside it.
    pub agent_type: Option<String>,
}

impl FileContext {
    pub fn of(path: &Path) -> FileContext {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let parent = path.parent();
        let in_subagents =
            parent.and_then(|p| p.file_name()).and_then(|n| n.to_str()) == Some("subagents");
        if in_subagents {
            let agent_type = std::fs::read(path.with_extension("meta.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|m| text(&m, "agentType"));
            FileContext {
                agent_type,
                agent_id: Some(stem.strip_prefix("agent-").unwrap_or(stem).to_string()),
                parent_session: parent
                    .and_then(|p| p.parent())
                    .and_then(|p| p.file_name())
                    .and_then(|n| n.to_str())
                    .map(str::to_string),
            }
        } else {
            FileContext::default()
        }
    }
}

/// State that lives across lines: usage keys already counted, and open tool uses (for titles
/// and durations of their results). Bounded so a long-running hub does not grow.
#[derive(Default)]
pub struct TranscriptState {
    seen_usage: HashSet<String>,
    tools: HashMap<String, (String, i64)>,
}

const MAX_STATE: usize = 100_000;

impl TranscriptState {
    fn trim(&mut self) {
        if self.seen_usage.len() > MAX_STATE {
            self.seen_usage.clear();
        }
        if self.tools.len() > MAX_STATE {
            self.tools.clear();
        }
    }
}

fn usage_of(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let cache = u.get("cache_creation");
    let one_hour = cache
        .and_then(|c| c.get("ephemeral_1h_input_tokens"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    Usage {
        input: n("input_tokens"),
        output: n("output_tokens"),
        cache_read: n("cache_read_input_tokens"),
        cache_write: n("cache_creation_input_tokens"),
        cache_write_1h: one_hour,
    }
}

/// Turns one transcript line into events.
pub fn map_line(
    line: &Value,
    file: &FileContext,
    state: &mut TranscriptState,
    now: Timestamp,
) -> Vec<Event> {
    let kind = text(line, "type").unwrap_or_default();
    let Some(uuid) = text(line, "uuid").or_else(|| text(line, "leafUuid")) else {
        return vec![];
    };
    let root = text(line, "sessionId").or_else(|| file.parent_session.clone());
    let agent_id = text(line, "agentId").or_else(|| file.agent_id.clone());
    let (session, parent, agent) = match &agent_id {
        Some(a)
            if file.agent_id.is_some() || line.get("isSidechain") == Some(&Value::Bool(true)) =>
        {
            (
                Some(a.clone()),
                root.clone(),
                file.agent_type
                    .clone()
                    .unwrap_or_else(|| "subagent".to_string()),
            )
        }
        _ => (root.clone(), None, "main".to_string()),
    };
    let ts_text = text(line, "timestamp");
    let ts_ms = ts_text
        .as_deref()
        .and_then(|t| Timestamp::parse(t).ok())
        .map(|t| t.millis())
        .unwrap_or(now.millis());
    let base =
        |source_event: &str, id: String, entity: &str, title: String| -> Map<String, Value> {
            let mut m = Map::new();
            m.insert("event_id".into(), json!(id));
            m.insert("ts".into(), json!(Timestamp(ts_ms).to_rfc3339()));
            m.insert("source".into(), json!("claude"));
            m.insert("source_event".into(), json!(source_event));
            m.insert("run_id".into(), json!(root));
            m.insert("session_id".into(), json!(session));
            m.insert("parent_session_id".into(), json!(parent));
            m.insert("agent".into(), json!(agent));
            m.insert("entity_type".into(), json!(entity));
            m.insert("title".into(), json!(title));
            m
        };
    let mut out: Vec<Value> = Vec::new();
    let message = line.get("message").cloned().unwrap_or(Value::Null);
    match kind.as_str() {
        "assistant" => {
            let model = text(&message, "model").unwrap_or_default();
            let blocks = message
                .get("content")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for block in &blocks {
                match text(block, "type").as_deref() {
                    Some("tool_use") => {
                        let Some(id) = text(block, "id") else {
                            continue;
                        };
                        let name = text(block, "name").unwrap_or_else(|| "tool".into());
                        state.tools.insert(id.clone(), (name.clone(), ts_ms));
                        let mut e = base(
                            "transcript.tool_use",
                            event_id("claude-tx", &[&uuid, &id]),
                            "tool",
                            tool_title(&name, block.get("input")),
                        );
                        e.insert("entity_id".into(), json!(id));
                        e.insert("correlation_id".into(), json!(id));
                        e.insert("status".into(), json!("running"));
                        e.insert("tags".into(), json!([format!("tool:{name}")]));
                        e.insert("payload".into(), json!({"tool_use": block, "model": model}));
                        out.push(Value::Object(e));
                    }
                    Some("text") => {
                        let t = text(block, "text").unwrap_or_default();
                        if t.trim().is_empty() {
                            continue;
                        }
                        let mut e = base(
                            "transcript.assistant",
                            event_id("claude-tx", &[&uuid, "text"]),
                            "message",
                            format!("Assistant: {}", short(&t, 120)),
                        );
                        e.insert("payload".into(), json!({"text": t, "model": model}));
                        out.push(Value::Object(e));
                    }
                    _ => {}
                }
            }
            if let Some(u) = message.get("usage") {
                let msg_id = text(&message, "id").unwrap_or_else(|| uuid.clone());
                let request_id = text(line, "requestId");
                let key = format!("{msg_id}:{}", request_id.as_deref().unwrap_or(""));
                if state.seen_usage.insert(key) {
                    let usage = usage_of(u);
                    let mut metrics = Map::new();
                    put_metric(&mut metrics, "input_tokens", Some(usage.input));
                    put_metric(&mut metrics, "output_tokens", Some(usage.output));
                    put_metric(&mut metrics, "cache_read_tokens", Some(usage.cache_read));
                    put_metric(&mut metrics, "cache_write_tokens", Some(usage.cache_write));
                    put_metric(&mut metrics, "cost_usd", cost_usd(&model, &usage));
                    let id = match &request_id {
                        Some(r) => event_id("claude-usage", &[r]),
                        None => event_id("claude-usage", &[&msg_id]),
                    };
                    let mut e = base(
                        "transcript.usage",
                        id,
                        "message",
                        format!(
                            "{} · {} in / {} out",
                            if model.is_empty() { "model" } else { &model },
                            usage.input + usage.cache_read + usage.cache_write,
                            usage.output
                        ),
                    );
                    e.insert("entity_id".into(), json!(msg_id));
                    e.insert("metrics".into(), metrics_value(metrics));
                    e.insert(
                        "payload".into(),
                        json!({"model": model, "message_id": msg_id, "request_id": request_id, "usage": u}),
                    );
                    out.push(Value::Object(e));
                }
            }
        }
        "user" => match message.get("content") {
            Some(Value::String(prompt)) if line.get("isMeta") != Some(&Value::Bool(true)) => {
                let mut e = base(
                    "transcript.user",
                    event_id("claude-tx", &[&uuid]),
                    "prompt",
                    format!("Prompt: {}", short(prompt, 120)),
                );
                e.insert("payload".into(), json!({"prompt": prompt}));
                out.push(Value::Object(e));
            }
            Some(Value::Array(blocks)) => {
                for block in blocks {
                    if text(block, "type").as_deref() != Some("tool_result") {
                        continue;
                    }
                    let Some(id) = text(block, "tool_use_id") else {
                        continue;
                    };
                    let failed = block.get("is_error") == Some(&Value::Bool(true));
                    let (name, started) = state.tools.remove(&id).unwrap_or(("tool".into(), ts_ms));
                    let mut e = base(
                        "transcript.tool_result",
                        event_id("claude-tx", &[&uuid, &id, "result"]),
                        "tool",
                        format!("{name} {}", if failed { "failed" } else { "done" }),
                    );
                    e.insert("entity_id".into(), json!(id));
                    e.insert("correlation_id".into(), json!(id));
                    e.insert(
                        "status".into(),
                        json!(if failed { "failed" } else { "success" }),
                    );
                    e.insert(
                        "severity".into(),
                        json!(if failed { "error" } else { "info" }),
                    );
                    e.insert("duration_ms".into(), json!((ts_ms - started).max(0)));
                    e.insert("tags".into(), json!([format!("tool:{name}")]));
                    if failed {
                        let content = match block.get("content") {
                            Some(Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => String::new(),
                        };
                        e.insert("summary".into(), json!(short(&content, 400)));
                    }
                    e.insert(
                        "payload".into(),
                        json!({"tool_result": block, "tool_use_result": line.get("toolUseResult")}),
                    );
                    out.push(Value::Object(e));
                }
            }
            _ => {}
        },
        "summary" => {
            let mut e = base(
                "transcript.summary",
                event_id("claude-tx", &[&uuid, "summary"]),
                "log",
                format!(
                    "Summary: {}",
                    short(&text(line, "summary").unwrap_or_default(), 120)
                ),
            );
            e.insert("payload".into(), json!({"summary": line.get("summary")}));
            out.push(Value::Object(e));
        }
        "system" => {
            let content = text(line, "content").unwrap_or_else(|| "system".into());
            let level = text(line, "level").unwrap_or_default();
            let mut e = base(
                "transcript.system",
                event_id("claude-tx", &[&uuid]),
                "log",
                short(&content, 160),
            );
            e.insert(
                "severity".into(),
                json!(match level.as_str() {
                    "error" => "error",
                    "warning" => "warn",
                    _ => "debug",
                }),
            );
            e.insert(
                "payload".into(),
                json!({"content": content, "subtype": line.get("subtype")}),
            );
            out.push(Value::Object(e));
        }
        _ => {}
    }
    state.trim();
    out.into_iter()
        .filter_map(|raw| to_event(raw, now).ok())
        .collect()
}

/// Reads whole lines of `path` from `offset`; returns the events and the new offset.
pub fn read_from(
    path: &Path,
    offset: u64,
    state: &mut TranscriptState,
    now: Timestamp,
) -> std::io::Result<(Vec<Event>, u64)> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    // A file that shrank was rewritten: start again (event ids make the re-read harmless).
    let offset = if len < offset { 0 } else { offset };
    if len == offset {
        return Ok((vec![], offset));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.take(READ_CHUNK).read_to_end(&mut buf)?;
    let Some(last_nl) = buf.iter().rposition(|b| *b == b'\n') else {
        if buf.len() as u64 >= READ_CHUNK {
            // One line longer than the chunk: skip it rather than stall the file forever.
            return Ok((vec![], offset + buf.len() as u64));
        }
        return Ok((vec![], offset));
    };
    let file_ctx = FileContext::of(path);
    let mut events = Vec::new();
    for line in buf[..last_nl].split(|b| *b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if let Ok(value) = serde_json::from_slice::<Value>(line) {
            events.extend(map_line(&value, &file_ctx, state, now));
        }
    }
    Ok((events, offset + last_nl as u64 + 1))
}

/// Every `*.jsonl` under `dir`, sorted so that parents come before their subagents.
pub fn transcript_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() && path.extension().is_some_and(|e| e == "jsonl") => {
                    out.push(path)
                }
                _ => {}
            }
        }
    }
    out.sort_by_key(|p| (p.components().count(), p.clone()));
    out
}

/// The tailer.
pub struct TranscriptAdapter {
    pub projects: PathBuf,
    pub poll: std::time::Duration,
}

impl TranscriptAdapter {
    pub fn build(config: &AdapterConfig) -> Result<Arc<dyn Adapter>, AdapterError> {
        Ok(Arc::new(TranscriptAdapter {
            projects: config.claude_dir.join("projects"),
            poll: config.poll,
        }))
    }

    /// One pass over every file; returns how many events were committed.
    pub async fn pass(
        &self,
        ctx: &AdapterContext,
        state: &mut TranscriptState,
    ) -> Result<usize, AdapterError> {
        let mut total = 0;
        for path in transcript_files(&self.projects) {
            let key = path.to_string_lossy().to_string();
            let mut offset = ctx.checkpoint(&key).and_then(|v| v.as_u64()).unwrap_or(0);
            // Most files did not change since the last pass: a stat, not an open.
            if std::fs::metadata(&path).is_ok_and(|m| m.len() == offset) {
                continue;
            }
            loop {
                let (events, next) = match read_from(&path, offset, state, Timestamp::now()) {
                    Ok(r) => r,
                    Err(e) => {
                        ctx.error(format!("{}: {e}", path.display()));
                        break;
                    }
                };
                if next == offset {
                    break;
                }
                total += events.len();
                for chunk in events.chunks(1000) {
                    ctx.emit(chunk.to_vec()).await?;
                }
                offset = next;
                ctx.set_checkpoint(&key, json!(offset));
                if ctx.stopping() {
                    return Ok(total);
                }
            }
        }
        Ok(total)
    }
}

impl Adapter for TranscriptAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(self: Arc<Self>, ctx: AdapterContext) -> AdapterFuture {
        Box::pin(async move {
            let mut state = TranscriptState::default();
            loop {
                if !self.projects.exists() {
                    ctx.set_state("waiting");
                } else {
                    self.pass(&ctx, &mut state).await?;
                    ctx.set_state("running");
                }
                if ctx.sleep(self.poll).await {
                    return Ok(());
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The usage event's cost for one assistant line with this model and usage block.
    fn cost_of(model: &str, usage: Value) -> Option<f64> {
        let line = json!({"type": "assistant", "uuid": "u1", "sessionId": "s1", "requestId": "req_1",
            "timestamp": "2026-11-21T10:00:00Z",
            "message": {"id": "msg_1", "model": model, "content": [], "usage": usage}});
        let events = map_line(
            &line,
            &FileContext::default(),
            &mut TranscriptState::default(),
            Timestamp::now(),
        );
        let usage_event = events
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .find(|e| e["source_event"] == "transcript.usage")
            .expect("a usage event");
        usage_event["metrics"]["cost_usd"].as_f64()
    }

    #[test]
    fn a_long_context_request_is_priced_at_its_tier() {
        // Claude Code's 1M Sonnet 4.5: input 1,000 + 5m writes 9,000 + 1h writes 10,000
        // + reads 190,000 = prompt 210,000 > 200K, so every token is at premium rates:
        //   1,000·6 + 9,000·7.50 + 10,000·12 + 190,000·0.60 + out 4,000·22.50
        //   = 6,000 + 67,500 + 120,000 + 114,000 + 90,000 = 397,500 µ$ → $0.3975
        let usage = json!({"input_tokens": 1000, "output_tokens": 4000,
            "cache_read_input_tokens": 190000, "cache_creation_input_tokens": 19000,
            "cache_creation": {"ephemeral_5m_input_tokens": 9000, "ephemeral_1h_input_tokens": 10000}});
        let cost = cost_of("claude-sonnet-4-5-20250929[1m]", usage.clone()).unwrap();
        assert!((cost - 0.3975).abs() < 1e-12, "{cost}");
        // An unknown model: tokens still counted, no cost metric.
        assert_eq!(cost_of("claude-opus-4-9", usage), None);
    }
}
