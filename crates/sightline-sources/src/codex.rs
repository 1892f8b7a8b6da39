//! Codex CLI: its session rollouts (`$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl`),
//! backfilled from the start and then tailed live, and its OpenTelemetry log events
//! (`codex.*`, mapped here for [`crate::otlp`]).
//!
//! A rollout is one Codex session (a thread): `session_meta` starts it, each turn runs from
//! `task_started` to `task_complete` (or `turn_aborted`), tool calls are `function_call` items
//! answered by `function_call_output` (and, for shell commands, an `item_completed` of type
//! `CommandExecution` with the command, its output and exit code), and every model request
//! leaves a `token_usage_record` (older versions: `token_count`). The run is the root
//! session's id (a spawned sub-agent's rollout names its parent thread); the session id is the
//! one in the file name, so a file read from the middle after a restart still lands in its
//! session. Tool events share `entity_id = correlation_id = call_id` with the OpenTelemetry
//! `codex.tool_result` of the same call, so the two routes are one lifecycle.
//!
//! Tokens and cost are counted from the rollout only, once per request: the usage event's id is
//! the session plus the thread's cumulative token total after that request, which a
//! `token_usage_record` and the `token_count` that follows it both carry, so the two (and a
//! re-read after a restart) store one event. Its `cost_usd` comes from [`crate::pricing`] by the
//! turn's model (`turn_context`); a model the table does not know gets tokens and no cost. The
//! telemetry's token counts and Codex's own estimate (`codex.sse_event`, `usage.estimated_usd`)
//! are kept in its payload, never as metrics (they carry no request id to count them once by).
//!
//! The format is internal to Codex and drifts: unknown line and item types are skipped, unknown
//! fields are kept in payloads, never an error. A line that is not JSON or whose mapping fails
//! becomes an error event and a health error, and the checkpoint moves past it. This module must
//! never modify the rollouts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use sightline_schema::{EntityType, Event, EventBuilder, Severity, Source, Status, Timestamp};

use crate::agent_cli::{CliLog, content_text, prompt_title};
use crate::framework::{Adapter, AdapterConfig, AdapterContext, AdapterError, AdapterFuture};
use crate::pricing::{Usage, note_unpriced};
use crate::session_files::{first_json_line, follow, jsonl_files, jsonl_reader};
use crate::util::{BuilderExt, Metrics, event_id, number, short, text};

pub const NAME: &str = "codex-rollouts";
/// Most characters of a command's output kept in a tool event's payload.
const OUTPUT_KEPT: usize = 4000;
/// Open tool calls remembered per file (for titles and durations), past which they are dropped.
const MAX_OPEN_CALLS: usize = 10_000;

/// What is known of one rollout while reading it.
#[derive(Debug, Default, Clone)]
pub struct Rollout {
    /// This session (thread) id.
    pub session: Option<String>,
    /// The thread that spawned it, for a sub-agent.
    pub parent: Option<String>,
    /// The model of the current turn (`turn_context`).
    pub model: Option<String>,
    /// Open calls: call id → (tool name, title, start in ms).
    calls: HashMap<String, (String, String, i64)>,
}

impl Rollout {
    /// What a file's name and first line say: its session id (the UUID that ends the name) and,
    /// from `session_meta`, its parent thread. Used when reading starts in the middle of a file.
    pub fn of(path: &Path) -> Rollout {
        let mut r = Rollout {
            session: session_from_file_name(path),
            ..Rollout::default()
        };
        if let Some(Value::Object(line)) = first_json_line(path)
            && line.get("type").and_then(Value::as_str) == Some("session_meta")
        {
            let payload = line.get("payload").cloned().unwrap_or(Value::Null);
            r.session = text(&payload, "id").or(r.session);
            r.parent = parent_thread(&payload);
        }
        r
    }

    fn run(&self) -> Option<String> {
        self.parent.clone().or_else(|| self.session.clone())
    }
}

/// The session id at the end of `rollout-2026-11-30T10-54-33-<uuid>.jsonl`.
pub fn session_from_file_name(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let tail = stem.get(stem.len().checked_sub(36)?..)?;
    (tail.len() == 36 && tail.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
        .then(|| tail.to_string())
}

/// A spawned sub-agent's parent thread: Codex writes it inside `session_meta.source`
/// (`{"subagent": {"thread_spawn": {"parent_thread_id": ...}}}` in recent versions); any
/// `parent_thread_id` found there is taken.
fn parent_thread(meta: &Value) -> Option<String> {
    fn find(v: &Value, depth: usize) -> Option<String> {
        if depth > 6 {
            return None;
        }
        match v {
            Value::Object(m) => {
                if let Some(id) = text(v, "parent_thread_id") {
                    return Some(id);
                }
                m.values().find_map(|c| find(c, depth + 1))
            }
            _ => None,
        }
    }
    meta.get("source").and_then(|s| find(s, 0))
}

/// The command a tool call runs, from its JSON arguments (`cmd` of `exec_command`, `command`
/// of `shell` as a string or an argv), for its title.
fn call_title(name: &str, arguments: Option<&Value>) -> String {
    let args = match arguments {
        Some(Value::String(s)) => {
            serde_json::from_str::<Value>(s).unwrap_or(Value::String(s.clone()))
        }
        Some(v) => v.clone(),
        None => Value::Null,
    };
    let command = match args.get("cmd").or_else(|| args.get("command")) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(argv)) => {
            let words: Vec<&str> = argv.iter().filter_map(Value::as_str).collect();
            // `["bash", "-lc", "the script"]`: the script is what the user wants to read.
            match words.as_slice() {
                [_, flag, script] if flag.starts_with('-') && flag.ends_with('c') => {
                    Some(script.to_string())
                }
                _ => Some(words.join(" ")),
            }
        }
        _ => None,
    };
    match command {
        Some(c) => format!("{name}: {}", short(&c, 160)),
        None => match &args {
            Value::String(s) if !s.is_empty() => format!("{name}: {}", short(s, 160)),
            _ => name.to_string(),
        },
    }
}

/// The exit code a tool's output reports: `Process exited with code N` (unified exec) or the
/// JSON `{"metadata": {"exit_code": N}}` older versions wrote.
fn exit_code_of(output: &str) -> Option<i64> {
    if let Some(rest) = output.split("Process exited with code ").nth(1) {
        let digits: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .collect();
        if let Ok(n) = digits.parse() {
            return Some(n);
        }
    }
    serde_json::from_str::<Value>(output)
        .ok()
        .and_then(|v| v.get("metadata")?.get("exit_code")?.as_i64())
}

/// A finished tool call's status and severity.
fn outcome(failed: bool) -> (Status, Severity) {
    if failed {
        (Status::Failed, Severity::Error)
    } else {
        (Status::Success, Severity::Info)
    }
}

/// Turns one rollout line into events; `at` is its byte offset (an id for lines that carry
/// none). An event that does not validate is an `Err` beside the others.
pub fn map_line(
    line: &Value,
    at: u64,
    file: &mut Rollout,
    now: Timestamp,
) -> Vec<Result<Event, String>> {
    let kind = text(line, "type").unwrap_or_default();
    let payload = line.get("payload").cloned().unwrap_or(Value::Null);
    let ts_ms = text(line, "timestamp")
        .and_then(|t| Timestamp::parse(&t).ok())
        .map(|t| t.millis())
        .unwrap_or(now.millis());
    if kind == "session_meta" {
        file.session = text(&payload, "id").or(file.session.take());
        file.parent = parent_thread(&payload).or(file.parent.take());
    }
    let Some(session) = file.session.clone() else {
        return vec![];
    };
    let run = file.run();
    let parent = file.parent.clone();
    let agent = if parent.is_some() {
        "subagent"
    } else {
        "codex"
    };
    let base = |source_event: &str, id: String, entity: EntityType, title: String| {
        Event::builder(Source::Codex, source_event, entity, title)
            .event_id(id)
            .ts(Timestamp(ts_ms))
            .run_id(run.clone())
            .session_id(session.clone())
            .parent_session_id(parent.clone())
            .agent(agent)
    };
    let line_id = text(line, "ordinal").unwrap_or_else(|| format!("at{at}"));
    let mut out: Vec<EventBuilder> = Vec::new();
    let sub = text(&payload, "type").unwrap_or_default();
    match (kind.as_str(), sub.as_str()) {
        ("session_meta", _) => {
            let cwd = text(&payload, "cwd").unwrap_or_default();
            let mut meta = Map::new();
            for key in [
                "cwd",
                "originator",
                "cli_version",
                "source",
                "model_provider",
                "thread_source",
                "forked_from_id",
            ] {
                if let Some(v) = payload.get(key) {
                    meta.insert(key.into(), v.clone());
                }
            }
            out.push(
                base(
                    "session_meta",
                    event_id("codex", &[&session, "meta"]),
                    EntityType::Session,
                    format!(
                        "Codex session in {}",
                        if cwd.is_empty() { "?" } else { &cwd }
                    ),
                )
                .entity_id(&session)
                .status(Status::Running)
                .payload(meta),
            );
        }
        ("turn_context", _) => {
            file.model = text(&payload, "model").or(file.model.take());
        }
        ("event_msg", "task_started") => {
            let turn = text(&payload, "turn_id").unwrap_or_else(|| line_id.clone());
            out.push(
                base(
                    "task_started",
                    event_id("codex", &[&session, &turn, "start"]),
                    EntityType::Task,
                    "Turn".into(),
                )
                .entity_id(&turn)
                .status(Status::Running)
                .payload_value(payload.clone()),
            );
        }
        ("event_msg", "task_complete") | ("event_msg", "turn_aborted") => {
            let done = sub == "task_complete";
            let turn = text(&payload, "turn_id").unwrap_or_else(|| line_id.clone());
            let last = text(&payload, "last_agent_message");
            let mut task = base(
                &sub,
                event_id("codex", &[&session, &turn, "end"]),
                EntityType::Task,
                if done {
                    "Turn done".into()
                } else {
                    format!(
                        "Turn aborted: {}",
                        text(&payload, "reason").unwrap_or_else(|| "interrupted".into())
                    )
                },
            )
            .entity_id(&turn)
            .status(if done {
                Status::Success
            } else {
                Status::Cancelled
            })
            .severity(if done { Severity::Info } else { Severity::Warn })
            .duration_opt(number(&payload, "duration_ms"));
            if let Some(last) = &last {
                task = task.summary(short(last, 400));
            }
            out.push(task.payload_value(payload.clone()));
            // The turn ended: the session waits for the next prompt (or its process exits).
            // A millisecond after the turn's end, so that the turn's own event (work, which
            // would put the session back to running) is not later than it.
            out.push(
                base(
                    &sub,
                    event_id("codex", &[&session, &turn, "idle"]),
                    EntityType::Session,
                    "Waiting for input".into(),
                )
                .ts(Timestamp(ts_ms + 1))
                .entity_id(&session)
                .status(Status::Idle),
            );
        }
        ("event_msg", "item_completed") => {
            let item = payload.get("item").cloned().unwrap_or(Value::Null);
            if text(&item, "type").as_deref() == Some("CommandExecution") {
                let Some(id) = text(&item, "id") else {
                    return vec![];
                };
                let exit = item.get("exit_code").and_then(Value::as_i64);
                let failed = exit.is_some_and(|c| c != 0)
                    || text(&item, "status").is_some_and(|s| s == "failed" || s == "declined");
                let (name, title, started) = file
                    .calls
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| ("exec_command".into(), String::new(), ts_ms));
                let title = if title.is_empty() {
                    call_title(
                        &name,
                        item.get("command").map(|c| json!({"command": c})).as_ref(),
                    )
                } else {
                    title
                };
                let secs = item.pointer("/duration/secs").and_then(Value::as_f64);
                let nanos = item.pointer("/duration/nanos").and_then(Value::as_f64);
                let duration = match (secs, nanos) {
                    (Some(s), n) => Some(s * 1000.0 + n.unwrap_or(0.0) / 1e6),
                    _ => Some((ts_ms - started).max(0) as f64),
                };
                let output = text(&item, "aggregated_output").unwrap_or_default();
                let mut metrics = Metrics::default();
                metrics.put("exit_code", exit.map(|c| c as f64));
                let mut e = base(
                    "CommandExecution",
                    event_id("codex", &[&session, &id, "exec"]),
                    EntityType::Tool,
                    title,
                )
                .entity_id(&id)
                .correlation_id(&id)
                .status(outcome(failed).0)
                .severity(outcome(failed).1)
                .duration_opt(duration.map(|d| d.round()))
                .metrics(metrics)
                .tag(format!("tool:{name}"))
                .payload_value(json!({
                    "command": item.get("command"),
                    "cwd": item.get("cwd"),
                    "exit_code": exit,
                    "output": output.chars().take(OUTPUT_KEPT).collect::<String>(),
                    "output_truncated": output.chars().count() > OUTPUT_KEPT,
                }));
                if failed {
                    e = e.summary(short(&output, 400));
                }
                out.push(e);
            }
        }
        ("token_usage_record", _) => {
            let u = payload.get("usage").cloned().unwrap_or(Value::Null);
            let total = payload
                .pointer("/thread_token_usage/total_tokens")
                .and_then(Value::as_f64);
            let key = match total {
                Some(t) => format!("t{t}"),
                None => text(&payload, "response_id").unwrap_or_else(|| line_id.clone()),
            };
            out.push(usage_event(
                &base,
                &session,
                &key,
                &u,
                file.model.as_deref(),
                &payload,
            ));
        }
        ("event_msg", "token_count") => {
            // Older versions write only this; newer ones write it after a
            // `token_usage_record` with the same thread total, which the id folds into one.
            let info = payload.get("info").cloned().unwrap_or(Value::Null);
            let (Some(last), Some(total)) = (
                info.get("last_token_usage"),
                info.pointer("/total_token_usage/total_tokens")
                    .and_then(Value::as_f64),
            ) else {
                return vec![];
            };
            let key = format!("t{total}");
            out.push(usage_event(
                &base,
                &session,
                &key,
                last,
                file.model.as_deref(),
                &info,
            ));
        }
        ("event_msg", "error") | ("event_msg", "stream_error") => {
            let message = text(&payload, "message").unwrap_or_else(|| sub.clone());
            out.push(
                base(
                    &sub,
                    event_id("codex", &[&session, &line_id]),
                    EntityType::Log,
                    format!("Codex error: {}", short(&message, 160)),
                )
                .severity(if sub == "error" {
                    Severity::Error
                } else {
                    Severity::Warn
                })
                .payload_value(payload.clone()),
            );
        }
        ("response_item", "message") => {
            let role = text(&payload, "role").unwrap_or_default();
            let body = content_text(payload.get("content"));
            let id = text(&payload, "id").unwrap_or_else(|| line_id.clone());
            match role.as_str() {
                // Codex sends its context (`<environment_context>`, `<user_instructions>`,
                // AGENTS.md) as user messages too; those open with a tag and are not prompts.
                "user" if !body.trim().is_empty() && !body.trim_start().starts_with('<') => {
                    out.push(
                        base(
                            "message",
                            event_id("codex", &[&session, &id]),
                            EntityType::Prompt,
                            format!("Prompt: {}", short(&body, 120)),
                        )
                        .payload_value(json!({"prompt": body})),
                    );
                }
                "assistant" if !body.trim().is_empty() => {
                    out.push(
                        base(
                            "message",
                            event_id("codex", &[&session, &id]),
                            EntityType::Message,
                            format!("Assistant: {}", short(&body, 120)),
                        )
                        .payload_value(json!({"text": body, "model": file.model})),
                    );
                }
                _ => {}
            }
        }
        ("response_item", "function_call")
        | ("response_item", "custom_tool_call")
        | ("response_item", "local_shell_call") => {
            let Some(call) = text(&payload, "call_id").or_else(|| text(&payload, "id")) else {
                return vec![];
            };
            let name = text(&payload, "name").unwrap_or_else(|| "shell".into());
            let args = payload.get("arguments").or_else(|| payload.get("input"));
            let title = if sub == "local_shell_call" {
                call_title(&name, payload.get("action"))
            } else {
                call_title(&name, args)
            };
            if file.calls.len() >= MAX_OPEN_CALLS {
                file.calls.clear();
            }
            file.calls
                .insert(call.clone(), (name.clone(), title.clone(), ts_ms));
            out.push(
                base(
                    &sub,
                    event_id("codex", &[&session, &call, "call"]),
                    EntityType::Tool,
                    title,
                )
                .entity_id(&call)
                .correlation_id(&call)
                .status(Status::Running)
                .tag(format!("tool:{name}"))
                .payload_value(payload.clone()),
            );
        }
        ("response_item", "function_call_output")
        | ("response_item", "custom_tool_call_output") => {
            let Some(call) = text(&payload, "call_id") else {
                return vec![];
            };
            let output = match payload.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            let exit = exit_code_of(&output);
            let failed = exit.is_some_and(|c| c != 0);
            let (name, title, started) = file
                .calls
                .remove(&call)
                .unwrap_or_else(|| ("tool".into(), "tool".into(), ts_ms));
            let mut metrics = Metrics::default();
            metrics.put("exit_code", exit.map(|c| c as f64));
            let mut e = base(
                &sub,
                event_id("codex", &[&session, &call, "output"]),
                EntityType::Tool,
                title,
            )
            .entity_id(&call)
            .correlation_id(&call)
            .status(outcome(failed).0)
            .severity(outcome(failed).1)
            .duration_ms((ts_ms - started).max(0))
            .metrics(metrics)
            .tag(format!("tool:{name}"))
            .payload_value(json!({
                "call_id": call,
                "output": output.chars().take(OUTPUT_KEPT).collect::<String>(),
                "output_truncated": output.chars().count() > OUTPUT_KEPT,
            }));
            if failed {
                e = e.summary(short(&output, 400));
            }
            out.push(e);
        }
        ("compacted", _) => {
            out.push(
                base(
                    "compacted",
                    event_id("codex", &[&session, &line_id]),
                    EntityType::Log,
                    "Context compacted".into(),
                )
                .severity(Severity::Debug),
            );
        }
        _ => {}
    }
    out.into_iter()
        .map(|b| b.build(now).map_err(|e| e.0))
        .collect()
}

fn usage_event(
    base: &impl Fn(&str, String, EntityType, String) -> EventBuilder,
    session: &str,
    key: &str,
    usage: &Value,
    model: Option<&str>,
    evidence: &Value,
) -> EventBuilder {
    let model = model.unwrap_or("model");
    let mut payload = json!({"model": model, "usage": usage, "record": evidence});
    note_unpriced(&mut payload, model);
    let input = number(usage, "input_tokens").unwrap_or(0.0);
    let output = number(usage, "output_tokens").unwrap_or(0.0);
    base(
        "token_usage",
        event_id("codex-usage", &[session, key]),
        EntityType::Message,
        format!("{model} · {input} in / {output} out"),
    )
    .metrics(Usage::openai(usage).metrics(model))
    .payload_value(payload)
}

/// The rollout tailer.
pub struct CodexAdapter {
    pub sessions: PathBuf,
    pub poll: std::time::Duration,
}

impl CodexAdapter {
    pub fn build(config: &AdapterConfig) -> Result<Arc<dyn Adapter>, AdapterError> {
        Ok(Arc::new(CodexAdapter {
            sessions: config.codex_dir.join("sessions"),
            poll: config.poll,
        }))
    }
}

impl Adapter for CodexAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(self: Arc<Self>, ctx: AdapterContext) -> AdapterFuture {
        Box::pin(async move {
            follow(
                &ctx,
                &self.sessions,
                self.poll,
                jsonl_files,
                |p| {
                    let mut r = Rollout::of(p);
                    // Read from the start, `session_meta` sets everything again.
                    r.calls.clear();
                    r
                },
                jsonl_reader(Source::Codex, "codex", map_line),
            )
            .await
        })
    }
}

/// Whether an OpenTelemetry log record comes from Codex (its `service.name` is `codex_exec`,
/// `codex-tui`, `codex_cli_rs`, ...; its events are named `codex.*`).
pub fn is_codex(service_name: Option<&str>, event_name: &str) -> bool {
    event_name.starts_with("codex.") || service_name.is_some_and(|s| s.starts_with("codex"))
}

/// Maps one Codex OpenTelemetry log record (its attributes, as JSON) into the session named by
/// `conversation.id` (the rollout's session id). `id` identifies the record (the receiver's
/// hash), `payload` carries the receiver's evidence (resource, scope).
pub fn map_otel_log(
    a: &Map<String, Value>,
    name: &str,
    ts: Option<Timestamp>,
    id: String,
    payload: Map<String, Value>,
    now: Timestamp,
) -> Result<Event, String> {
    let attr = |k: &str| crate::otlp::s(a, k);
    let num = |k: &str| crate::otlp::f(a, k);
    let mut log = CliLog::new(Source::Codex, "codex", a, "conversation.id", ts, id);
    // Records without an `event.name` are Codex's own diagnostics ("flushing OTEL metrics"),
    // named by a source location: kept as debug `codex.log` rows titled by their body.
    let name = if name.starts_with("codex.") {
        name
    } else {
        "codex.log"
    };
    let body = match payload.get("body") {
        Some(Value::String(b)) if !b.is_empty() => Some(b.clone()),
        _ => None,
    };
    let short_name = name.strip_prefix("codex.").unwrap_or(name);
    let title = match short_name {
        "conversation_starts" => {
            log.entity = EntityType::Session;
            log.status = Some(Status::Running);
            log.severity = Severity::Info;
            format!(
                "Codex session started ({} via {})",
                attr("model").unwrap_or_else(|| "model".into()),
                attr("provider_name").unwrap_or_else(|| "provider".into())
            )
        }
        "user_prompt" => {
            log.entity = EntityType::Prompt;
            log.severity = Severity::Info;
            prompt_title(a)
        }
        "tool_decision" => {
            log.entity = EntityType::Permission;
            log.call = attr("call_id");
            let decision = attr("decision").unwrap_or_else(|| "decided".into());
            // An approval lets the session go on; a denial is worth a look but does not end it.
            if decision.starts_with("approved") {
                log.status = Some(Status::Running);
            } else {
                log.severity = Severity::Warn;
            }
            format!(
                "{} {decision}",
                attr("tool_name").unwrap_or_else(|| "tool".into())
            )
        }
        "tool_result" => {
            log.entity = EntityType::Tool;
            log.call = attr("call_id");
            let ok = attr("success").is_none_or(|v| v == "true");
            log.status = Some(if ok { Status::Success } else { Status::Failed });
            log.severity = if ok { Severity::Info } else { Severity::Error };
            log.duration = num("duration_ms");
            let tool = attr("tool_name").unwrap_or_else(|| "tool".into());
            call_title(&tool, a.get("arguments"))
        }
        "api_request" => {
            log.entity = EntityType::Message;
            log.duration = num("duration_ms");
            let code = num("http.response.status_code");
            if code.is_some_and(|c| c >= 400.0) || attr("error.message").is_some() {
                log.severity = Severity::Error;
            }
            format!(
                "{} · API request{}",
                attr("model").unwrap_or_else(|| "model".into()),
                code.map(|c| format!(" ({c})")).unwrap_or_default()
            )
        }
        "sse_event" => format!(
            "Response stream: {}",
            attr("event.kind").unwrap_or_else(|| "event".into())
        ),
        "log" => short(&body.unwrap_or_else(|| "Codex log".into()), 160),
        other => format!("Codex {other}"),
    };
    if attr("error.message").is_some() && log.severity < Severity::Warn {
        log.severity = Severity::Warn;
    }
    log.build(name, title, a, payload, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(e: &Event) -> Value {
        serde_json::to_value(e).unwrap()
    }

    #[test]
    fn the_session_comes_from_the_file_name() {
        let p = Path::new(
            "/x/sessions/2026/11/30/rollout-2026-11-30T10-54-33-01a22c17-97cc-7413-9794-71f1adb48371.jsonl",
        );
        assert_eq!(
            session_from_file_name(p).as_deref(),
            Some("01a22c17-97cc-7413-9794-71f1adb48371")
        );
        assert_eq!(session_from_file_name(Path::new("a.jsonl")), None);
    }

    #[test]
    fn titles_show_the_command() {
        assert_eq!(
            call_title("exec_command", Some(&json!("{\"cmd\": \"ls -la\"}"))),
            "exec_command: ls -la"
        );
        assert_eq!(
            call_title(
                "shell",
                Some(&json!({"command": ["bash", "-lc", "make test"]}))
            ),
            "shell: make test"
        );
        assert_eq!(call_title("view_image", Some(&json!("{}"))), "view_image");
    }

    #[test]
    fn exit_codes_are_read_from_both_output_shapes() {
        assert_eq!(
            exit_code_of("Chunk ID: 1\nProcess exited with code 2\nOutput:\n"),
            Some(2)
        );
        assert_eq!(
            exit_code_of(r#"{"output":"x","metadata":{"exit_code":0,"duration_seconds":0.1}}"#),
            Some(0)
        );
        assert_eq!(exit_code_of("plain"), None);
    }

    #[test]
    fn a_request_is_counted_once_from_record_and_count() {
        let mut file = Rollout {
            session: Some("s1".into()),
            ..Rollout::default()
        };
        let now = Timestamp::now();
        let usage = json!({"input_tokens": 100, "cached_input_tokens": 10, "output_tokens": 20,
            "reasoning_output_tokens": 5, "total_tokens": 120});
        let record = json!({"timestamp": "2026-11-30T10:54:33.645Z", "type": "token_usage_record",
            "payload": {"response_id": "resp_0", "usage": usage,
                "thread_token_usage": {"total_tokens": 120}}});
        let count = json!({"timestamp": "2026-11-30T10:54:33.797Z", "type": "event_msg",
            "payload": {"type": "token_count", "info": {"last_token_usage": usage,
                "total_token_usage": {"total_tokens": 120}}}});
        let a: Vec<Event> = map_line(&record, 0, &mut file, now)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let b: Vec<Event> = map_line(&count, 100, &mut file, now)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].event_id, b[0].event_id);
        let m = ev(&a[0])["metrics"].clone();
        assert_eq!(m["input_tokens"], 90);
        assert_eq!(m["cache_read_tokens"], 10);
        assert_eq!(m["output_tokens"], 20);
    }

    #[test]
    fn context_messages_are_not_prompts() {
        let mut file = Rollout {
            session: Some("s1".into()),
            ..Rollout::default()
        };
        let ctx = json!({"type": "response_item", "payload": {"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "<environment_context>\n</environment_context>"}]}});
        assert!(map_line(&ctx, 0, &mut file, Timestamp::now()).is_empty());
        let prompt = json!({"type": "response_item", "payload": {"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "fix the tests"}]}});
        let out = map_line(&prompt, 1, &mut file, Timestamp::now());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].as_ref().unwrap().title, "Prompt: fix the tests");
    }

    #[test]
    fn a_sub_agent_runs_under_its_parent() {
        let mut file = Rollout::default();
        let meta = json!({"type": "session_meta", "payload": {"id": "child",
            "source": {"subagent": {"thread_spawn": {"parent_thread_id": "root", "depth": 1}}}}});
        let out = map_line(&meta, 0, &mut file, Timestamp::now());
        let e = ev(out[0].as_ref().unwrap());
        assert_eq!(e["run_id"], "root");
        assert_eq!(e["session_id"], "child");
        assert_eq!(e["parent_session_id"], "root");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Codex's line and item types, and the keys its mapping reads.
        fn json_value() -> impl Strategy<Value = Value> {
            crate::testing::json_value(
                &[
                    "session_meta",
                    "event_msg",
                    "response_item",
                    "token_usage_record",
                    "task_complete",
                    "function_call",
                    "function_call_output",
                    "item_completed",
                    "message",
                    "CommandExecution",
                    "token_count",
                    "call_id",
                    "id",
                ],
                &[
                    "type",
                    "payload",
                    "id",
                    "call_id",
                    "item",
                    "output",
                    "usage",
                    "info",
                    "content",
                    "role",
                    "arguments",
                    "timestamp",
                ],
            )
        }

        proptest! {
            /// Any JSON line maps without panicking, and every event it gives is a valid Codex
            /// event in the file's session.
            #[test]
            fn any_line_maps_or_is_skipped(line in json_value()) {
                let mut file = Rollout { session: Some("s".into()), ..Rollout::default() };
                for e in map_line(&line, 0, &mut file, Timestamp::now()).into_iter().flatten() {
                    prop_assert_eq!(e.source, Source::Codex);
                    prop_assert!(e.session_id.is_some());
                }
            }

            /// Any attributes map to one event or an error, never a panic.
            #[test]
            fn any_otel_record_maps(attrs in json_value(), name in "codex\\.[a-z_]{0,12}") {
                let a = match attrs { Value::Object(m) => m, _ => Map::new() };
                let _ = map_otel_log(&a, &name, None, "id".into(), Map::new(), Timestamp::now());
            }
        }
    }
}
