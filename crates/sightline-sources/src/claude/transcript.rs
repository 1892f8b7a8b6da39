//! Claude Code transcripts (`<claude dir>/projects/**/*.jsonl`, subagents in
//! `<session>/subagents/agent-<id>.jsonl`): backfilled from the start, then tailed live.
//!
//! Each line becomes events: assistant text, tool uses and tool results (correlated with hook
//! events on `tool_use_id`, so a tool seen by both is one lifecycle), prompts, and one usage
//! event per API call with tokens and cost from [`crate::pricing`]. Transcripts repeat the same
//! `usage` on every content block of a message, so usage is counted once per
//! `message.id` + `requestId`: in memory while tailing, and through the event id
//! (`claude-usage:<requestId>`) across restarts and against the OpenTelemetry `api_request`
//! event of the same call, which uses the same id. Reading, checkpoints (the byte offset of each
//! file, advanced only after the events before it were committed) and bad lines are the shared
//! session-file tailer's ([`crate::session_files`]).
//!
//! The format is internal to Claude Code and drifts: unknown line types and fields are skipped
//! or kept in the payload, never an error. A line that is not JSON, or whose mapping fails or
//! panics, becomes an error event (severity `error`, the file and the byte offset) and a health
//! error, and the checkpoint moves past it: one bad line never stops a file. This module must
//! never modify the transcripts.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use sightline_schema::{EntityType, Event, EventBuilder, Severity, Source, Status, Timestamp};

use super::hooks::tool_title;
use crate::framework::{Adapter, AdapterConfig, AdapterContext, AdapterError, AdapterFuture};
use crate::pricing::{Usage, note_unpriced};
use crate::session_files::{Chunk, follow, jsonl_files, read_jsonl};
use crate::util::{BuilderExt, event_id, short, text};

pub const NAME: &str = "claude-transcripts";

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

/// Turns one transcript line into events, dropping any that do not validate (for callers that
/// want only the events; the tailer uses [`map_line_results`] and records the failures).
pub fn map_line(
    line: &Value,
    file: &FileContext,
    state: &mut TranscriptState,
    now: Timestamp,
) -> Vec<Event> {
    map_line_results(line, file, state, now)
        .into_iter()
        .filter_map(Result::ok)
        .collect()
}

/// Turns one transcript line into events; an event that does not validate is an `Err` with
/// validation's message, beside the others of the same line.
pub fn map_line_results(
    line: &Value,
    file: &FileContext,
    state: &mut TranscriptState,
    now: Timestamp,
) -> Vec<Result<Event, String>> {
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
    let base = |source_event: &str, id: String, entity: EntityType, title: String| {
        Event::builder(Source::Claude, source_event, entity, title)
            .event_id(id)
            .ts(Timestamp(ts_ms))
            .run_id(root.clone())
            .session_id(session.clone())
            .parent_session_id(parent.clone())
            .agent(agent.clone())
    };
    let mut out: Vec<EventBuilder> = Vec::new();
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
                        let e = base(
                            "transcript.tool_use",
                            event_id("claude-tx", &[&uuid, &id]),
                            EntityType::Tool,
                            tool_title(&name, block.get("input")),
                        )
                        .entity_id(&id)
                        .correlation_id(&id)
                        .status(Status::Running)
                        .tag(format!("tool:{name}"))
                        .payload_value(json!({"tool_use": block, "model": model}));
                        out.push(e);
                    }
                    Some("text") => {
                        let t = text(block, "text").unwrap_or_default();
                        if t.trim().is_empty() {
                            continue;
                        }
                        let e = base(
                            "transcript.assistant",
                            event_id("claude-tx", &[&uuid, "text"]),
                            EntityType::Message,
                            format!("Assistant: {}", short(&t, 120)),
                        )
                        .payload_value(json!({"text": t, "model": model}));
                        out.push(e);
                    }
                    _ => {}
                }
            }
            if let Some(u) = message.get("usage") {
                let msg_id = text(&message, "id").unwrap_or_else(|| uuid.clone());
                let request_id = text(line, "requestId");
                let key = format!("{msg_id}:{}", request_id.as_deref().unwrap_or(""));
                if state.seen_usage.insert(key) {
                    let usage = Usage::anthropic(u);
                    let mut payload = json!({"model": model, "message_id": msg_id,
                        "request_id": request_id, "usage": u});
                    note_unpriced(&mut payload, &model);
                    let id = match &request_id {
                        Some(r) => event_id("claude-usage", &[r]),
                        None => event_id("claude-usage", &[&msg_id]),
                    };
                    let e = base(
                        "transcript.usage",
                        id,
                        EntityType::Message,
                        format!(
                            "{} · {} in / {} out",
                            if model.is_empty() { "model" } else { &model },
                            usage.input + usage.cache_read + usage.cache_write,
                            usage.output
                        ),
                    )
                    .entity_id(&msg_id)
                    // The OTel `api_request` log and `llm_request` span of the call share it.
                    .correlation_id(request_id.clone())
                    .metrics(usage.metrics(&model))
                    .payload_value(payload);
                    out.push(e);
                }
            }
        }
        "user" => match message.get("content") {
            Some(Value::String(prompt)) if line.get("isMeta") != Some(&Value::Bool(true)) => {
                let e = base(
                    "transcript.user",
                    event_id("claude-tx", &[&uuid]),
                    EntityType::Prompt,
                    format!("Prompt: {}", short(prompt, 120)),
                )
                // The hooks' `prompt_id` and OTel's `prompt.id` name the same prompt.
                .entity_id(text(line, "promptId"))
                .correlation_id(text(line, "promptId"))
                .payload_value(json!({"prompt": prompt}));
                out.push(e);
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
                        EntityType::Tool,
                        format!("{name} {}", if failed { "failed" } else { "done" }),
                    )
                    .entity_id(&id)
                    .correlation_id(&id)
                    .status(if failed {
                        Status::Failed
                    } else {
                        Status::Success
                    })
                    .severity(if failed {
                        Severity::Error
                    } else {
                        Severity::Info
                    })
                    .duration_ms((ts_ms - started).max(0))
                    .tag(format!("tool:{name}"));
                    if failed {
                        let content = match block.get("content") {
                            Some(Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => String::new(),
                        };
                        e = e.summary(short(&content, 400));
                    }
                    out.push(e.payload_value(
                        json!({"tool_result": block, "tool_use_result": line.get("toolUseResult")}),
                    ));
                }
            }
            _ => {}
        },
        "summary" => {
            let e = base(
                "transcript.summary",
                event_id("claude-tx", &[&uuid, "summary"]),
                EntityType::Log,
                format!(
                    "Summary: {}",
                    short(&text(line, "summary").unwrap_or_default(), 120)
                ),
            )
            .payload_value(json!({"summary": line.get("summary")}));
            out.push(e);
        }
        "system" => {
            let content = text(line, "content").unwrap_or_else(|| "system".into());
            let level = text(line, "level").unwrap_or_default();
            let e = base(
                "transcript.system",
                event_id("claude-tx", &[&uuid]),
                EntityType::Log,
                short(&content, 160),
            )
            .severity(match level.as_str() {
                "error" => Severity::Error,
                "warning" => Severity::Warn,
                _ => Severity::Debug,
            })
            .payload_value(json!({"content": content, "subtype": line.get("subtype")}));
            out.push(e);
        }
        _ => {}
    }
    state.trim();
    out.into_iter()
        .map(|b| b.build(now).map_err(|e| e.0))
        .collect()
}

/// Reads whole lines of `path` from `offset` with the shared session-file reader: a line that is
/// not JSON, whose mapping fails or panics, becomes an error event and a message, and reading
/// goes on after it: one bad line never stops the file.
pub fn read_from(
    path: &Path,
    offset: u64,
    state: &mut TranscriptState,
    now: Timestamp,
) -> std::io::Result<Chunk> {
    let file_ctx = FileContext::of(path);
    read_jsonl(path, offset, Source::Claude, "claude-tx", now, |v, _| {
        map_line_results(v, &file_ctx, state, now)
    })
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
}

impl Adapter for TranscriptAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(self: Arc<Self>, ctx: AdapterContext) -> AdapterFuture {
        Box::pin(async move {
            // One state for every file (bounded by MAX_STATE), not one per file: a hub may
            // follow thousands of transcripts.
            let mut state = TranscriptState::default();
            follow(
                &ctx,
                &self.projects,
                self.poll,
                jsonl_files,
                |_| (),
                |path, offset, ()| read_from(path, offset, &mut state, Timestamp::now()),
            )
            .await
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
