//! Gemini CLI: its session logs (`~/.gemini/tmp/<project>/chats/session-<time>-<id>.jsonl`,
//! sub-agents in `chats/<parent session>/<id>.jsonl`), backfilled from the start and then
//! tailed live, and its OpenTelemetry log events (`gemini_cli.*`, mapped here for
//! [`crate::otlp`]; its GenAI spans go through the receiver's own GenAI mapping).
//!
//! A session log opens with a header line (`sessionId`, `projectHash`, `startTime`, `kind`:
//! `main` or `subagent`), then one line per message (`type` `user`, `gemini`, `info`, `error`,
//! `warning`) and `{"$set": {...}}` patches. A `gemini` message is written again when its tool
//! calls finish, with the same id and its `toolCalls[]` (id, name, args, status, result): the
//! events are keyed by message and call id, so the second writing adds the tool events and
//! stores nothing twice. Tokens and cost are counted from the log only, once per message
//! (`gemini-usage:<session>:<message id>`), the cost from [`crate::pricing`] by the message's
//! model (none for a model the table does not know); the telemetry's `api_response` token counts
//! stay in its payload (it names no message, so the two could not be counted once).
//!
//! The format is internal to Gemini CLI and drifts: unknown lines and fields are skipped or kept
//! in payloads. A line that is not JSON or whose mapping fails becomes an error event and a
//! health error, and the checkpoint moves past it. This module must never modify the logs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use sightline_schema::{EntityType, Event, EventBuilder, Severity, Source, Status, Timestamp};

use crate::agent_cli::{CliLog, content_text, prompt_title};
use crate::framework::{Adapter, AdapterConfig, AdapterContext, AdapterError, AdapterFuture};
use crate::pricing::{Usage, note_unpriced};
use crate::session_files::{first_json_line, follow, jsonl_files, jsonl_reader};
use crate::util::{BuilderExt, event_id, number, short, text};

pub const NAME: &str = "gemini-sessions";
/// Most characters of a tool's result kept in its event's payload.
const RESULT_KEPT: usize = 4000;

/// What is known of one session log while reading it.
#[derive(Debug, Default, Clone)]
pub struct SessionLog {
    pub session: Option<String>,
    /// The main session a sub-agent's log belongs to (its directory's name).
    pub parent: Option<String>,
    /// The project directory's name under `tmp/`, for titles.
    pub project: Option<String>,
}

impl SessionLog {
    /// What a file's place and header say, for reading that starts in the middle of it.
    pub fn of(path: &Path) -> SessionLog {
        let chats_parent = |p: &Path| {
            p.parent()
                .and_then(|d| d.file_name())
                .and_then(|n| n.to_str())
                .map(str::to_string)
        };
        let in_chats = chats_parent(path).as_deref() == Some("chats");
        let mut log = SessionLog {
            parent: if in_chats { None } else { chats_parent(path) },
            project: path
                .ancestors()
                .find(|a| a.file_name().is_some_and(|n| n == "chats"))
                .and_then(|c| c.parent())
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .map(str::to_string),
            session: None,
        };
        if let Some(header) = first_json_line(path) {
            log.header(&header);
        }
        log
    }

    fn header(&mut self, line: &Value) {
        if let Some(id) = text(line, "sessionId") {
            self.session = Some(id);
        }
        if text(line, "kind").as_deref() == Some("main") {
            self.parent = None;
        }
    }
}

/// A tool call's title: its command or path when it has one.
fn call_title(name: &str, args: Option<&Value>) -> String {
    let detail = args.and_then(|a| {
        [
            "command",
            "file_path",
            "absolute_path",
            "path",
            "pattern",
            "url",
            "query",
        ]
        .iter()
        .find_map(|k| text(a, k))
    });
    match detail {
        Some(d) => format!("{name}: {}", short(&d, 160)),
        None => name.to_string(),
    }
}

/// Turns one session-log line into events. `at` is its byte offset.
pub fn map_line(
    line: &Value,
    at: u64,
    file: &mut SessionLog,
    now: Timestamp,
) -> Vec<Result<Event, String>> {
    let mut out = Vec::new();
    if line.get("sessionId").is_some() && line.get("type").is_none() {
        file.header(line);
        if let Some(session) = file.session.clone() {
            let ts = text(line, "startTime").and_then(|t| Timestamp::parse(&t).ok());
            let project = file.project.clone().unwrap_or_else(|| "?".into());
            out.push(
                builder(
                    file,
                    "session",
                    EntityType::Session,
                    format!("Gemini session in {project}"),
                    ts,
                    now,
                )
                .event_id(event_id("gemini", &[&session, "start"]))
                .entity_id(&session)
                .status(Status::Running)
                .payload_value(
                    json!({"kind": line.get("kind"), "projectHash": line.get("projectHash"),
                        "directories": line.get("directories")}),
                ),
            );
        }
    } else if let Some(set) = line.get("$set") {
        // The first patch carries the context message(s) written before the prompt.
        if let Some(Value::Array(messages)) = set.get("messages") {
            for m in messages {
                out.extend(map_message(m, file, at, now));
            }
        }
    } else {
        out.extend(map_message(line, file, at, now));
    }
    out.into_iter()
        .map(|b| b.build(now).map_err(|e| e.0))
        .collect()
}

/// A builder with the session's ids.
fn builder(
    file: &SessionLog,
    source_event: &str,
    entity: EntityType,
    title: String,
    ts: Option<Timestamp>,
    now: Timestamp,
) -> EventBuilder {
    let run = file.parent.clone().or_else(|| file.session.clone());
    Event::builder(Source::Gemini, source_event, entity, title)
        .ts(ts.unwrap_or(now))
        .run_id(run)
        .session_id(file.session.clone())
        .parent_session_id(file.parent.clone())
        .agent(if file.parent.is_some() {
            "subagent"
        } else {
            "gemini"
        })
}

fn map_message(m: &Value, file: &SessionLog, at: u64, now: Timestamp) -> Vec<EventBuilder> {
    let Some(session) = file.session.clone() else {
        return vec![];
    };
    let kind = text(m, "type").unwrap_or_default();
    let id = text(m, "id").unwrap_or_else(|| format!("at{at}"));
    let ts = text(m, "timestamp").and_then(|t| Timestamp::parse(&t).ok());
    let base = |source_event: &str, entity: EntityType, key: &[&str], title: String| {
        let mut parts = vec![session.as_str()];
        parts.extend_from_slice(key);
        builder(file, source_event, entity, title, ts, now).event_id(event_id("gemini", &parts))
    };
    let mut out = Vec::new();
    match kind.as_str() {
        "user" => {
            let body = content_text(m.get("content"));
            // Gemini CLI sends its context (`<session_context>`) as a user message; tool
            // results come back as user messages of `functionResponse` parts (no text).
            if !body.trim().is_empty() && !body.trim_start().starts_with('<') {
                out.push(
                    base(
                        "user",
                        EntityType::Prompt,
                        &[&id],
                        format!("Prompt: {}", short(&body, 120)),
                    )
                    .payload_value(json!({"prompt": body})),
                );
            }
        }
        "gemini" => {
            let model = text(m, "model").unwrap_or_else(|| "model".into());
            let body = content_text(m.get("content"));
            if !body.trim().is_empty() {
                out.push(
                    base(
                        "gemini",
                        EntityType::Message,
                        &[&id],
                        format!("Assistant: {}", short(&body, 120)),
                    )
                    .payload_value(json!({"text": body, "model": model})),
                );
            }
            if let Some(t) = m.get("tokens").filter(|t| t.is_object()) {
                let mut payload = json!({"model": model, "tokens": t});
                note_unpriced(&mut payload, &model);
                let input = number(t, "input").unwrap_or(0.0);
                out.push(
                    builder(
                        file,
                        "tokens",
                        EntityType::Message,
                        format!(
                            "{model} · {input} in / {} out",
                            number(t, "output").unwrap_or(0.0)
                        ),
                        ts,
                        now,
                    )
                    .event_id(event_id("gemini-usage", &[&session, &id]))
                    .entity_id(&id)
                    .metrics(Usage::gemini(t).metrics(&model))
                    .payload_value(payload),
                );
            }
            for call in m
                .get("toolCalls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(call_id) = text(call, "id") else {
                    continue;
                };
                let name = text(call, "name").unwrap_or_else(|| "tool".into());
                let status = text(call, "status").unwrap_or_default();
                let (st, sev) = match status.as_str() {
                    "success" => (Status::Success, Severity::Info),
                    "error" => (Status::Failed, Severity::Error),
                    "cancelled" => (Status::Cancelled, Severity::Warn),
                    "awaiting_approval" => (Status::Blocked, Severity::Warn),
                    "scheduled" | "validating" => (Status::Queued, Severity::Info),
                    _ => (Status::Running, Severity::Info),
                };
                let ended = text(call, "timestamp").and_then(|t| Timestamp::parse(&t).ok());
                let duration = match (ts, ended) {
                    (Some(a), Some(b)) => Some((b.millis() - a.millis()).max(0) as f64),
                    _ => None,
                };
                let result = call
                    .get("resultDisplay")
                    .map(|r| match r {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_default();
                let mut e = builder(
                    file,
                    "toolCall",
                    EntityType::Tool,
                    call_title(&name, call.get("args")),
                    ended.or(ts),
                    now,
                )
                .event_id(event_id("gemini", &[&session, &call_id, &status]))
                .entity_id(&call_id)
                .correlation_id(&call_id)
                .status(st)
                .severity(sev)
                .duration_opt(if st.is_terminal() { duration } else { None })
                .tag(format!("tool:{name}"))
                .payload_value(json!({
                    "args": call.get("args"),
                    "status": status,
                    "result": result.chars().take(RESULT_KEPT).collect::<String>(),
                    "result_truncated": result.chars().count() > RESULT_KEPT,
                    "message_id": id,
                }));
                if st == Status::Failed {
                    e = e.summary(short(&result, 400));
                }
                out.push(e);
            }
        }
        "info" | "warning" | "error" => {
            let body = content_text(m.get("content"));
            out.push(
                base(&kind, EntityType::Log, &[&id], short(&body, 160))
                    .severity(match kind.as_str() {
                        "error" => Severity::Error,
                        "warning" => Severity::Warn,
                        _ => Severity::Info,
                    })
                    .payload_value(json!({"content": m.get("content")})),
            );
        }
        _ => {}
    }
    out
}

/// The session-log tailer.
pub struct GeminiAdapter {
    /// `~/.gemini/tmp`: one directory per project, each with its `chats/`.
    pub tmp: PathBuf,
    pub poll: std::time::Duration,
}

impl GeminiAdapter {
    pub fn build(config: &AdapterConfig) -> Result<Arc<dyn Adapter>, AdapterError> {
        Ok(Arc::new(GeminiAdapter {
            tmp: config.gemini_dir.join("tmp"),
            poll: config.poll,
        }))
    }
}

/// Session logs under `tmp`: `*.jsonl` under a `chats` directory of a project.
fn session_logs(tmp: &Path) -> Vec<PathBuf> {
    jsonl_files(tmp)
        .into_iter()
        .filter(|p| {
            p.ancestors()
                .any(|a| a.file_name().is_some_and(|n| n == "chats"))
        })
        .collect()
}

impl Adapter for GeminiAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(self: Arc<Self>, ctx: AdapterContext) -> AdapterFuture {
        Box::pin(async move {
            follow(
                &ctx,
                &self.tmp,
                self.poll,
                session_logs,
                SessionLog::of,
                jsonl_reader(Source::Gemini, "gemini", map_line),
            )
            .await
        })
    }
}

/// Whether an OpenTelemetry log record comes from Gemini CLI (`service.name` `gemini-cli`, events
/// `gemini_cli.*`).
pub fn is_gemini(service_name: Option<&str>, event_name: &str) -> bool {
    event_name.starts_with("gemini_cli.") || service_name == Some("gemini-cli")
}

/// Maps one Gemini CLI OpenTelemetry log record into the session named by `session.id` (the
/// session log's id). `id` identifies the record, `payload` carries the receiver's evidence.
pub fn map_otel_log(
    a: &Map<String, Value>,
    name: &str,
    body: Option<&str>,
    ts: Option<Timestamp>,
    id: String,
    payload: Map<String, Value>,
    now: Timestamp,
) -> Result<Event, String> {
    let attr = |k: &str| crate::otlp::s(a, k);
    let num = |k: &str| crate::otlp::f(a, k);
    let mut log = CliLog::new(Source::Gemini, "gemini", a, "session.id", ts, id);
    let short_name = name.strip_prefix("gemini_cli.").unwrap_or(name);
    let title = match short_name {
        "config" => {
            log.entity = EntityType::Session;
            log.status = Some(Status::Running);
            log.severity = Severity::Info;
            format!(
                "Gemini session started ({})",
                attr("model").unwrap_or_else(|| "model".into())
            )
        }
        "user_prompt" => {
            log.entity = EntityType::Prompt;
            log.severity = Severity::Info;
            prompt_title(a)
        }
        "tool_call" => {
            log.entity = EntityType::Tool;
            let ok = attr("success").is_none_or(|v| v == "true");
            log.status = Some(if ok { Status::Success } else { Status::Failed });
            log.severity = if ok { Severity::Info } else { Severity::Error };
            log.duration = num("duration_ms");
            // Recent versions name the call; the session log's tool events share it.
            log.call = attr("call_id").or_else(|| attr("gen_ai.tool.call.id"));
            let tool = attr("function_name").unwrap_or_else(|| "tool".into());
            let args = attr("function_args").and_then(|s| serde_json::from_str::<Value>(&s).ok());
            call_title(&tool, args.as_ref())
        }
        "api_request" => {
            log.entity = EntityType::Message;
            format!(
                "{} · API request",
                attr("model").unwrap_or_else(|| "model".into())
            )
        }
        "api_response" => {
            log.entity = EntityType::Message;
            log.duration = num("duration_ms");
            log.severity = Severity::Info;
            format!(
                "{} · API response ({})",
                attr("model").unwrap_or_else(|| "model".into()),
                attr("status_code").unwrap_or_else(|| "?".into())
            )
        }
        "api_error" => {
            log.entity = EntityType::Message;
            log.severity = Severity::Error;
            log.duration = num("duration_ms");
            format!(
                "API error: {}",
                short(&attr("error").unwrap_or_else(|| "unknown".into()), 160)
            )
        }
        "conversation_finished" => {
            log.entity = EntityType::Session;
            log.status = Some(Status::Idle);
            log.severity = Severity::Info;
            "Conversation finished".into()
        }
        _ => body
            .map(|b| short(b, 160))
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| format!("Gemini CLI {short_name}")),
    };
    if log.entity == EntityType::Tool && log.call.is_none() {
        // Without the call's id this record cannot join the session log's tool lifecycle;
        // as a tool of its own it would be a second, phantom call.
        log.entity = EntityType::Log;
        log.status = None;
    }
    log.build(name, title, a, payload, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_written_twice_adds_its_tool_calls_once() {
        let mut file = SessionLog::default();
        let now = Timestamp::now();
        let header = json!({"sessionId": "s1", "projectHash": "h", "startTime": "2026-11-30T10:55:37.665Z", "kind": "main"});
        let first = json!({"id": "m1", "timestamp": "2026-11-30T10:55:38.277Z", "type": "gemini", "content": "",
            "tokens": {"input": 50, "output": 7, "cached": 3, "thoughts": 2, "tool": 0, "total": 57}, "model": "gemini-2.5-flash"});
        let mut second = first.clone();
        second["toolCalls"] = json!([{"id": "c1", "name": "run_shell_command",
            "args": {"command": "echo hi"}, "status": "success", "timestamp": "2026-11-30T10:55:38.534Z",
            "resultDisplay": "hi"}]);
        let mut ids = Vec::new();
        for (at, line) in [header, first, second].iter().enumerate() {
            for e in map_line(line, at as u64, &mut file, now) {
                ids.push(e.unwrap());
            }
        }
        let usage: Vec<_> = ids
            .iter()
            .filter(|e| e.event_id.starts_with("gemini-usage:"))
            .collect();
        assert_eq!(usage.len(), 2, "written twice, one id");
        assert_eq!(usage[0].event_id, usage[1].event_id);
        let tool = ids
            .iter()
            .find(|e| e.entity_type == EntityType::Tool)
            .unwrap();
        assert_eq!(tool.title, "run_shell_command: echo hi");
        assert_eq!(tool.status, Some(Status::Success));
        assert_eq!(
            tool.duration_ms.as_ref().map(|d| d.to_string()).as_deref(),
            Some("257")
        );
        assert_eq!(tool.run_id.as_deref(), Some("s1"));
    }

    #[test]
    fn a_sub_agent_log_runs_under_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let chats = dir.path().join("tmp/proj/chats/parent-1");
        std::fs::create_dir_all(&chats).unwrap();
        let path = chats.join("child-1.jsonl");
        std::fs::write(&path, "{\"sessionId\":\"child-1\",\"kind\":\"subagent\"}\n").unwrap();
        let log = SessionLog::of(&path);
        assert_eq!(log.session.as_deref(), Some("child-1"));
        assert_eq!(log.parent.as_deref(), Some("parent-1"));
        assert_eq!(log.project.as_deref(), Some("proj"));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Gemini CLI's message types and statuses, and the keys its mapping reads.
        fn json_value() -> impl Strategy<Value = Value> {
            crate::testing::json_value(
                &["user", "gemini", "error", "success", "s1"],
                &[
                    "type",
                    "id",
                    "sessionId",
                    "$set",
                    "messages",
                    "toolCalls",
                    "tokens",
                    "content",
                    "status",
                    "timestamp",
                ],
            )
        }

        proptest! {
            /// Any JSON line maps without panicking into valid Gemini events.
            #[test]
            fn any_line_maps_or_is_skipped(line in json_value()) {
                let mut file = SessionLog { session: Some("s".into()), ..SessionLog::default() };
                for e in map_line(&line, 0, &mut file, Timestamp::now()).into_iter().flatten() {
                    prop_assert_eq!(e.source, Source::Gemini);
                }
            }

            /// Any attributes map to one event or an error, never a panic.
            #[test]
            fn any_otel_record_maps(attrs in json_value(), name in "gemini_cli\\.[a-z_]{0,12}") {
                let a = match attrs { Value::Object(m) => m, _ => Map::new() };
                let _ = map_otel_log(&a, &name, None, None, "id".into(), Map::new(), Timestamp::now());
            }
        }
    }
}
