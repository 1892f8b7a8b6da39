//! Claude Code hooks → canonical events, and `POST /api/v1/hooks/claude`.
//!
//! The endpoint takes a hook payload exactly as Claude Code's `http` hook type posts it (and as
//! `sightline hook` forwards it from stdin), or a batch of spooled payloads as NDJSON
//! (`{"id", "ts", "payload"}` per line) from `sightline hook`'s spool. Mapping (docs/CONTRACT.md §3.2):
//! the run is the root session; a subagent (`agent_id`) is a child session of it; a tool's
//! Pre/Post pair shares `correlation_id = entity_id = tool_use_id` and the Post carries the
//! duration; PermissionRequest, Elicitation and the Notification types that wait for the user
//! block the session until work resumes or an ElicitationResult ends the wait; a
//! PermissionDenied (auto mode's refusal) ends its tool call, `cancelled`; agent-teams tasks and idle teammates go to the teammate's lane; compaction is a task;
//! bookkeeping (PostToolBatch, MessageDisplay, Setup, InstructionsLoaded, FileChanged) is kept at
//! `debug`; unknown hook names are kept as generic `log` events. Each payload also tells
//! [`super::link`] which subagent made a tool call and which prompt a session got, for the OTel
//! routes.
//!
//! The answer to a single payload is a 2xx with `{}`: Claude Code reads an http hook's answer as
//! hook output, and an empty object asks it for nothing. This module must never answer in a way
//! that could steer the agent, and never fail a payload because of an unknown field.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use serde_json::{Value, json};
use sightline_core::{
    Accepted, Decoded, EndpointSpec, HttpError, HttpRequest, HttpSource, LineError, Method, Reply,
    Role,
};
use sightline_schema::validate::describe_json_error;
use sightline_schema::{EntityType, Event, Severity, Source, Status, Timestamp};

use super::link;
use crate::util::{BuilderExt, Metrics, event_id, short, stable_hash, text};

/// Every hook event Claude Code 2.1.197 (the version the real-binary tests pin) can send; the
/// mapping below knows each (its property tests draw from this list).
pub const HOOK_EVENTS: &[&str] = &[
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "Notification",
    "UserPromptSubmit",
    "UserPromptExpansion",
    "SessionStart",
    "SessionEnd",
    "Stop",
    "StopFailure",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "PostCompact",
    "PermissionRequest",
    "PermissionDenied",
    "Setup",
    "TeammateIdle",
    "TaskCreated",
    "TaskCompleted",
    "Elicitation",
    "ElicitationResult",
    "ConfigChange",
    "WorktreeCreate",
    "WorktreeRemove",
    "InstructionsLoaded",
    "CwdChanged",
    "FileChanged",
    "MessageDisplay",
];

/// The adapter name in health.
pub const NAME: &str = "claude-hook";
/// Header carrying the producer's event id (set by `sightline hook`, kept across its spool).
pub const ID_HEADER: &str = "x-sightline-event-id";
/// Header carrying when the hook fired, in epoch milliseconds.
pub const TS_HEADER: &str = "x-sightline-ts";

/// Header carrying the Claude Code process that ran the hook (`sightline hook`): compact JSON
/// `{pid, start_ticks, boot_id, pid_ns, host}`, for the liveness sweep's session-pid rule.
pub const PRODUCER_HEADER: &str = "x-sightline-producer";

/// Sets the event's `pid` and `host` from what `sightline hook` said of the process that ran
/// it, and keeps the rest (start time, boot id, pid namespace) under the payload's
/// `sightline_producer`, beside Claude Code's own keys. Untrusted: anything malformed is
/// ignored, never fails the payload.
fn with_producer(mut e: Event, producer: Option<&Value>) -> Event {
    let Some(Value::Object(p)) = producer else {
        return e;
    };
    let Some(pid) = p
        .get("pid")
        .and_then(Value::as_i64)
        .filter(|pid| (1..=i64::from(i32::MAX)).contains(pid))
    else {
        return e;
    };
    let bounded = |k: &str| {
        p.get(k)
            .and_then(Value::as_str)
            .map(|s| s.chars().take(64).collect::<String>())
    };
    e.pid = Some(pid);
    if let Some(host) = bounded("host") {
        e.host = Some(host);
    }
    e.payload.insert(
        // The key `sightline_store::liveness::PRODUCER_KEY` reads (the store is not a
        // dependency of this crate).
        "sightline_producer".into(),
        json!({
            "pid": pid,
            "start_ticks": p.get("start_ticks").and_then(Value::as_u64),
            "boot_id": bounded("boot_id"),
            "pid_ns": bounded("pid_ns"),
        }),
    );
    e
}

/// When each running tool started (tool_use_id → epoch ms), to give PostToolUse a duration
/// when the payload has none. Bounded: cleared when it grows past this.
const MAX_OPEN_TOOLS: usize = 50_000;
static TOOL_STARTS: LazyLock<Mutex<HashMap<String, i64>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// A one-line description of a tool call from its input.
pub fn tool_title(tool: &str, input: Option<&Value>) -> String {
    let detail = input.and_then(|i| {
        [
            "command",
            "file_path",
            "path",
            "pattern",
            "url",
            "query",
            "description",
            "prompt",
        ]
        .iter()
        .find_map(|k| text(i, k))
    });
    match detail {
        Some(d) => format!("{tool}: {}", short(&d, 100)),
        None => tool.to_string(),
    }
}

/// Where an event of this payload belongs: (run, session, parent, agent).
fn placement(p: &Value) -> (Option<String>, Option<String>, Option<String>, String) {
    let session = text(p, "session_id");
    match text(p, "agent_id") {
        Some(agent_id) => (
            session.clone(),
            Some(agent_id),
            session,
            text(p, "agent_type").unwrap_or_else(|| "subagent".into()),
        ),
        None => (session.clone(), session, None, "main".into()),
    }
}

/// The lane of the teammate an agent-teams payload is about: (session id, agent name). The
/// payload names the teammate only by `teammate_name`; the real binary opened its session
/// with a `SubagentStart` (`agent_id` `a<name>-<hash>`, `agent_type` the name), so that session
/// is its lane (one lane per teammate, not two). A restarted hub knows it too, from the store's
/// open sessions (`link::recover`); a teammate it knows nothing of gets
/// `<session>:teammate:<team>/<name>` under the lead's session.
fn teammate_lane(p: &Value) -> Option<(String, String)> {
    let name = text(p, "teammate_name")?;
    let session = text(p, "session_id")?;
    if let Some(agent_id) = link::teammate_agent(&session, &name) {
        return Some((agent_id, name));
    }
    let team = text(p, "team_name").unwrap_or_else(|| "team".into());
    Some((format!("{session}:teammate:{team}/{name}"), name))
}

/// Maps one hook payload. `id` and `ts` come from `sightline hook` when it forwarded it.
pub fn map_hook(
    payload: Value,
    id: Option<String>,
    ts: Option<Timestamp>,
    now: Timestamp,
) -> Result<Event, String> {
    let Value::Object(_) = &payload else {
        return Err("a hook payload must be a JSON object".into());
    };
    let name = text(&payload, "hook_event_name")
        .ok_or("`hook_event_name` is missing: is this a Claude Code hook payload?")?;
    let ts = ts.unwrap_or(now);
    let (run_id, mut session_id, mut parent, mut agent) = placement(&payload);
    let tool = text(&payload, "tool_name");
    let tool_use_id = text(&payload, "tool_use_id");
    let input = payload.get("tool_input");
    let mut entity_type = EntityType::Log;
    let mut entity_id: Option<String> = None;
    let mut status: Option<Status> = None;
    let mut severity = Severity::Info;
    let mut summary: Option<String> = None;
    let mut duration: Option<f64> = payload.get("duration_ms").and_then(Value::as_f64);
    let mut metrics = Metrics::default();
    let mut natural_key: Option<String> = tool_use_id.clone();
    let mut correlation: Option<String> = tool_use_id.clone();
    let tool_name = tool.clone().unwrap_or_else(|| "tool".into());
    let title = match name.as_str() {
        "SessionStart" => {
            entity_type = EntityType::Session;
            status = Some(Status::Running);
            let how = text(&payload, "source").unwrap_or_else(|| "startup".into());
            if let Some(model) = text(&payload, "model") {
                summary = Some(format!("model {model}"));
            }
            format!("Claude Code session ({how})")
        }
        "SessionEnd" => {
            entity_type = EntityType::Session;
            status = Some(Status::Success);
            let reason = text(&payload, "reason").unwrap_or_else(|| "other".into());
            format!("Session ended ({reason})")
        }
        "UserPromptSubmit" => {
            entity_type = EntityType::Prompt;
            status = Some(Status::Running);
            entity_id = text(&payload, "prompt_id");
            correlation = entity_id.clone();
            format!(
                "Prompt: {}",
                short(&text(&payload, "prompt").unwrap_or_default(), 120)
            )
        }
        "PreToolUse" => {
            entity_type = EntityType::Tool;
            status = Some(Status::Running);
            entity_id = tool_use_id.clone();
            tool_title(&tool_name, input)
        }
        "PostToolUse" => {
            entity_type = EntityType::Tool;
            status = Some(Status::Success);
            entity_id = tool_use_id.clone();
            if let Some(resp) = payload.get("tool_response") {
                // The Agent (formerly Task) tool reports its subagent's totals.
                metrics.put(
                    "total_tokens",
                    resp.get("totalTokens").and_then(Value::as_f64),
                );
                metrics.put(
                    "tool_use_count",
                    resp.get("totalToolUseCount").and_then(Value::as_f64),
                );
                if duration.is_none() {
                    duration = resp.get("totalDurationMs").and_then(Value::as_f64);
                }
            }
            tool_title(&tool_name, input)
        }
        "PostToolUseFailure" => {
            entity_type = EntityType::Tool;
            entity_id = tool_use_id.clone();
            let interrupted = payload.get("is_interrupt").and_then(Value::as_bool) == Some(true);
            if interrupted {
                status = Some(Status::Cancelled);
                severity = Severity::Warn;
            } else {
                status = Some(Status::Failed);
                severity = Severity::Error;
            }
            summary = text(&payload, "error").map(|e| short(&e, 400));
            format!("{} failed", tool_title(&tool_name, input))
        }
        "PermissionRequest" => {
            entity_type = EntityType::Permission;
            status = Some(Status::Blocked);
            severity = Severity::Warn;
            entity_id = tool_use_id.clone().or_else(|| tool.clone());
            format!("Permission needed: {}", tool_title(&tool_name, input))
        }
        "Notification" => {
            let kind = text(&payload, "notification_type").unwrap_or_default();
            let message = text(&payload, "message").unwrap_or_else(|| "Notification".into());
            summary = text(&payload, "title");
            match kind.as_str() {
                "permission_prompt" => {
                    entity_type = EntityType::Permission;
                    status = Some(Status::Blocked);
                    severity = Severity::Warn;
                }
                // Claude Code waits for the user: to answer an MCP server's form, or a
                // teammate's question.
                "elicitation_dialog" | "agent_needs_input" => {
                    entity_type = EntityType::Permission;
                    status = Some(Status::Blocked);
                    severity = Severity::Warn;
                }
                "idle_prompt" => {
                    entity_type = EntityType::Session;
                    status = Some(Status::Idle);
                }
                "auth_success" => severity = Severity::Debug,
                _ => {}
            }
            short(&message, 200)
        }
        "SubagentStart" | "SubagentStop" => {
            entity_type = EntityType::Session;
            let agent_id = text(&payload, "agent_id");
            natural_key = agent_id.clone();
            // The event is about the child: it is the session, the hook's session its parent.
            session_id = agent_id.or(session_id);
            parent = text(&payload, "session_id");
            // Claude Code's own agents (the one that writes a compaction's summary) stop with
            // an empty type: they are its, not the user's.
            agent = match payload.get("agent_type") {
                Some(Value::String(t)) if t.is_empty() => "internal".into(),
                _ => text(&payload, "agent_type").unwrap_or_else(|| "subagent".into()),
            };
            if name == "SubagentStart" {
                status = Some(Status::Running);
                format!("Subagent {agent} started")
            } else {
                status = Some(Status::Success);
                summary = text(&payload, "last_assistant_message").map(|m| short(&m, 400));
                format!("Subagent {agent} finished")
            }
        }
        "Stop" => {
            entity_type = EntityType::Session;
            status = Some(Status::Idle);
            summary = text(&payload, "last_assistant_message").map(|m| short(&m, 400));
            "Turn finished; waiting for input".into()
        }
        "StopFailure" => {
            // The turn ended on an API error; the session itself waits for the user again, so
            // it is idle, and the error shows as severity and in the session's error count.
            entity_type = EntityType::Session;
            status = Some(Status::Idle);
            severity = Severity::Error;
            let error = text(&payload, "error").unwrap_or_else(|| "unknown".into());
            summary = text(&payload, "error_details").map(|d| short(&d, 400));
            format!("Turn failed: {error}")
        }
        "PreCompact" => {
            // Compaction is work the agent does on its own context: a task from Pre to Post.
            entity_type = EntityType::Task;
            status = Some(Status::Running);
            entity_id = Some("compaction".into());
            let trigger = text(&payload, "trigger").unwrap_or_else(|| "manual".into());
            format!("Compacting context ({trigger})")
        }
        "PostCompact" => {
            entity_type = EntityType::Task;
            status = Some(Status::Success);
            entity_id = Some("compaction".into());
            summary = text(&payload, "compact_summary").map(|s| short(&s, 400));
            let trigger = text(&payload, "trigger").unwrap_or_else(|| "manual".into());
            format!("Context compacted ({trigger})")
        }
        "PermissionDenied" => {
            // Auto mode's classifier refused the call (Claude Code fires this hook for no other
            // denial: a user's "no" at a prompt, or a deny rule, ends the call without it). The
            // call never runs and no PostToolUse follows, so this ends it: the tool `cancelled`
            // on its tool_use_id, a warning, as OTel's span of a refused call says. Being work,
            // it also ends any wait, and the agent goes on without the tool.
            entity_type = EntityType::Tool;
            status = Some(Status::Cancelled);
            severity = Severity::Warn;
            entity_id = tool_use_id.clone().or_else(|| tool.clone());
            summary = text(&payload, "reason").map(|r| short(&r, 400));
            format!("Permission denied: {}", tool_title(&tool_name, input))
        }
        "Elicitation" => {
            // An MCP server asks the user for input: the agent waits for them.
            entity_type = EntityType::Permission;
            status = Some(Status::Blocked);
            severity = Severity::Warn;
            entity_id = text(&payload, "mcp_server_name");
            summary = text(&payload, "message").map(|m| short(&m, 400));
            format!(
                "Input requested by {}",
                text(&payload, "mcp_server_name").unwrap_or_else(|| "an MCP server".into())
            )
        }
        "ElicitationResult" => {
            entity_type = EntityType::Permission;
            status = Some(Status::Running);
            entity_id = text(&payload, "mcp_server_name");
            let action = text(&payload, "action").unwrap_or_else(|| "answered".into());
            if action != "accept" {
                severity = Severity::Warn;
            }
            format!(
                "Input for {}: {action}",
                text(&payload, "mcp_server_name").unwrap_or_else(|| "an MCP server".into())
            )
        }
        "TaskCreated" | "TaskCompleted" => {
            // Agent teams: a task on the team's list, in the lane of the teammate it is for.
            entity_type = EntityType::Task;
            entity_id = text(&payload, "task_id");
            natural_key = entity_id.clone();
            summary = text(&payload, "task_description").map(|d| short(&d, 400));
            if let Some((lane, name)) = teammate_lane(&payload) {
                session_id = Some(lane);
                parent = run_id.clone();
                agent = name;
            }
            let subject = text(&payload, "task_subject")
                .or_else(|| entity_id.clone())
                .unwrap_or_else(|| "task".into());
            if name == "TaskCreated" {
                status = Some(Status::Queued);
                format!("Task created: {}", short(&subject, 160))
            } else {
                status = Some(Status::Success);
                format!("Task completed: {}", short(&subject, 160))
            }
        }
        "TeammateIdle" => {
            // A teammate finished its turn and waits: its lane is idle.
            entity_type = EntityType::Session;
            status = Some(Status::Idle);
            if let Some((lane, name)) = teammate_lane(&payload) {
                session_id = Some(lane);
                parent = run_id.clone();
                agent = name;
            }
            format!("Teammate {agent} idle")
        }
        "UserPromptExpansion" => {
            entity_type = EntityType::Prompt;
            entity_id = text(&payload, "prompt_id");
            correlation = entity_id.clone();
            let command = text(&payload, "command_name").unwrap_or_else(|| "command".into());
            let args = text(&payload, "command_args").unwrap_or_default();
            short(&format!("Command /{command} {args}"), 160)
                .trim_end()
                .to_string()
        }
        "MessageDisplay" => {
            // Streaming display of assistant text: the transcript and OTel carry the message
            // itself, so this copy is kept out of the way.
            entity_type = EntityType::Message;
            severity = Severity::Debug;
            entity_id = text(&payload, "message_id");
            format!(
                "Displayed: {}",
                short(&text(&payload, "delta").unwrap_or_default(), 120)
            )
        }
        "PostToolBatch" => {
            severity = Severity::Debug;
            let calls = payload
                .get("tool_calls")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            format!("Tool batch finished ({calls} calls)")
        }
        "Setup" => {
            severity = Severity::Debug;
            let trigger = text(&payload, "trigger").unwrap_or_else(|| "init".into());
            format!("Setup ({trigger})")
        }
        "InstructionsLoaded" => {
            severity = Severity::Debug;
            let file = text(&payload, "file_path").unwrap_or_else(|| "instructions".into());
            format!("Instructions loaded: {}", short(&file, 160))
        }
        "FileChanged" => {
            severity = Severity::Debug;
            let file = text(&payload, "file_path").unwrap_or_else(|| "a file".into());
            let how = text(&payload, "event").unwrap_or_else(|| "changed".into());
            format!("File {how}: {}", short(&file, 160))
        }
        "CwdChanged" => format!(
            "Working directory: {}",
            short(&text(&payload, "new_cwd").unwrap_or_default(), 160)
        ),
        "DirectoryAdded" => format!(
            "Directory added: {}",
            short(&text(&payload, "directory").unwrap_or_default(), 160)
        ),
        "ConfigChange" => format!(
            "Settings changed: {}",
            short(
                &text(&payload, "file_path")
                    .or_else(|| text(&payload, "source"))
                    .unwrap_or_default(),
                160
            )
        ),
        "WorktreeCreate" => format!(
            "Worktree created: {}",
            short(&text(&payload, "name").unwrap_or_default(), 160)
        ),
        "WorktreeRemove" => format!(
            "Worktree removed: {}",
            short(&text(&payload, "worktree_path").unwrap_or_default(), 160)
        ),
        "PreModelSwitch" | "PostModelSwitch" => {
            let from = text(&payload, "from_model").unwrap_or_else(|| "?".into());
            let to = text(&payload, "to_model").unwrap_or_else(|| "?".into());
            if name == "PreModelSwitch" {
                severity = Severity::Debug;
                format!("Switching model: {from} → {to}")
            } else {
                format!("Model switched: {from} → {to}")
            }
        }
        other => format!("Claude Code {other}"),
    };

    // Tool durations: from the payload, else from the Pre we saw.
    if let Some(tid) = &tool_use_id {
        let mut starts = TOOL_STARTS.lock().unwrap_or_else(PoisonError::into_inner);
        match name.as_str() {
            "PreToolUse" => {
                if starts.len() >= MAX_OPEN_TOOLS {
                    starts.clear();
                }
                starts.insert(tid.clone(), ts.millis());
            }
            "PostToolUse" | "PostToolUseFailure" => {
                if let Some(start) = starts.remove(tid)
                    && duration.is_none()
                {
                    duration = Some((ts.millis() - start).max(0) as f64);
                }
            }
            _ => {}
        }
    }

    // What the OTel routes need to place their events of the same calls (claude::link).
    if let Some(agent_id) = text(&payload, "agent_id") {
        if let Some(tid) = &tool_use_id {
            link::note_tool_agent(tid, &agent_id);
        }
        if let Some(kind) = text(&payload, "agent_type") {
            link::note_agent_type(&agent_id, &kind);
        }
    }
    if let (Some(session), Some(agent_id)) =
        (text(&payload, "session_id"), text(&payload, "agent_id"))
    {
        match name.as_str() {
            "SubagentStart" => link::note_subagent_start(
                &session,
                &agent_id,
                &text(&payload, "agent_type").unwrap_or_else(|| "subagent".into()),
                ts.millis(),
            ),
            "SubagentStop" => link::note_subagent_stop(&session, &agent_id, ts.millis()),
            _ => {}
        }
    }
    if let (Some(session), Some(prompt_id)) =
        (text(&payload, "session_id"), text(&payload, "prompt_id"))
    {
        link::note_prompt(&session, &prompt_id, ts.millis());
    }

    let event_id = match id {
        Some(id) => id,
        None => match (&natural_key, name.as_str()) {
            (
                Some(key),
                "PreToolUse" | "PostToolUse" | "PostToolUseFailure" | "PermissionRequest"
                | "PermissionDenied" | "SubagentStart" | "SubagentStop" | "TaskCreated"
                | "TaskCompleted",
            ) => event_id(
                "claude-hook",
                &[session_id.as_deref().unwrap_or("-"), &name, key],
            ),
            // No natural key: the payload plus the moment it arrived.
            _ => format!(
                "claude-hook:{}",
                stable_hash(&[
                    payload.to_string().as_bytes(),
                    ts.millis().to_string().as_bytes()
                ])
            ),
        },
    };
    Event::builder(Source::Claude, name, entity_type, title)
        .event_id(event_id)
        .ts(ts)
        .run_id(run_id)
        .session_id(session_id)
        .parent_session_id(parent)
        .agent(agent)
        .entity_id(entity_id)
        .status(status)
        .severity(severity)
        .summary(summary)
        .duration_opt(duration)
        .metrics(metrics)
        .correlation_id(correlation)
        .tags(tool.map(|t| format!("tool:{t}")))
        .payload_value(payload)
        .build(now)
        .map_err(|e| e.0)
}

fn header_str(request: &HttpRequest, name: &str) -> Option<String> {
    request
        .header(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn millis(v: Option<&Value>) -> Option<Timestamp> {
    let ms = match v? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    (ms > 0).then_some(Timestamp(ms))
}

/// `POST /api/v1/hooks/claude`: one payload as Claude Code posts it, or the NDJSON spool of
/// `sightline hook`.
pub struct ClaudeHooks {
    spec: EndpointSpec,
}

impl Default for ClaudeHooks {
    fn default() -> Self {
        ClaudeHooks {
            spec: EndpointSpec {
                source: NAME,
                method: Method::Post,
                path: "/api/v1/hooks/claude",
                role: Role::Ingest,
                summary: "A Claude Code hook payload exactly as Claude Code sends it (its `http` hook type), or the NDJSON spool of `sightline hook` ({id, ts, payload} per line)",
                request: &[
                    ("application/json", crate::schemas::any_object),
                    ("application/x-ndjson", crate::schemas::ndjson),
                ],
                reply_status: 202,
                reply: crate::schemas::hook_reply,
                ws_message: None,
            },
        }
    }
}

fn is_spool(request: &HttpRequest) -> bool {
    request
        .content_type()
        .is_some_and(|ct| ct.contains("ndjson"))
}

impl HttpSource for ClaudeHooks {
    fn spec(&self) -> &EndpointSpec {
        &self.spec
    }

    fn decode(&self, request: &HttpRequest) -> Result<Decoded, HttpError> {
        let now = request.now;
        if is_spool(request) {
            // The spool: every line is {"id", "ts", "payload"}; bad lines are reported, never
            // retried forever, so one corrupt line cannot wedge the spool.
            let mut decoded = Decoded::default();
            for (i, line) in request.body.split(|b| *b == b'\n').enumerate() {
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                let result = serde_json::from_slice::<Value>(line)
                    .map_err(|e| describe_json_error(&e))
                    .and_then(|item| {
                        let id = text(&item, "id");
                        let ts = millis(item.get("ts"));
                        let payload = item.get("payload").cloned().unwrap_or(Value::Null);
                        map_hook(payload, id, ts, now)
                            .map(|e| with_producer(e, item.get("producer")))
                    });
                match result {
                    Ok(e) => decoded.events.push(e),
                    Err(message) => decoded.refused.push(LineError {
                        line: i + 1,
                        message,
                    }),
                }
            }
            return Ok(decoded);
        }
        let payload: Value = serde_json::from_slice(&request.body)
            .map_err(|e| HttpError::bad_request(describe_json_error(&e)))?;
        let id = header_str(request, ID_HEADER);
        let ts = header_str(request, TS_HEADER)
            .and_then(|t| t.parse().ok())
            .filter(|t| *t > 0)
            .map(Timestamp);
        let event = map_hook(payload, id, ts, now).map_err(HttpError::bad_request)?;
        let producer = header_str(request, PRODUCER_HEADER)
            .and_then(|h| serde_json::from_str::<Value>(&h).ok());
        Ok(Decoded::events(vec![with_producer(
            event,
            producer.as_ref(),
        )]))
    }

    fn reply(&self, request: &HttpRequest, accepted: &Accepted, refused: &[LineError]) -> Reply {
        if is_spool(request) {
            return Reply::json(
                202,
                &json!({"accepted": accepted.accepted, "duplicates": accepted.duplicates, "refused": refused}),
            );
        }
        // Claude Code reads the answer as hook output: an empty object asks it for nothing.
        Reply::json(202, &json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-21T10:00:00Z").unwrap()
    }

    #[test]
    fn subagent_events_nest_under_the_parent() {
        let e = map_hook(
            json!({"session_id": "s1", "hook_event_name": "SubagentStart", "agent_id": "a1", "agent_type": "Explore"}),
            None,
            None,
            now(),
        )
        .unwrap();
        assert_eq!(e.session_id.as_deref(), Some("a1"));
        assert_eq!(e.parent_session_id.as_deref(), Some("s1"));
        assert_eq!(e.run_id.as_deref(), Some("s1"));
        assert_eq!(e.agent.as_deref(), Some("Explore"));
    }

    #[test]
    fn tool_pairs_share_a_correlation_and_get_a_duration() {
        let pre = json!({"session_id": "s", "hook_event_name": "PreToolUse", "tool_name": "Bash",
            "tool_input": {"command": "ls"}, "tool_use_id": "toolu_dur"});
        let post = json!({"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Bash",
            "tool_input": {"command": "ls"}, "tool_use_id": "toolu_dur", "tool_response": {}});
        let a = map_hook(pre, None, Some(Timestamp(1_000)), now()).unwrap();
        let b = map_hook(post, None, Some(Timestamp(1_250)), now()).unwrap();
        assert_eq!(a.correlation_id, b.correlation_id);
        assert_ne!(a.event_id, b.event_id);
        assert_eq!(b.duration_ms_f64(), Some(250.0));
        assert_eq!(a.title, "Bash: ls");
    }

    fn hook(body: Value) -> Event {
        map_hook(body, None, Some(Timestamp(1_000)), now()).unwrap()
    }

    #[test]
    fn waits_for_the_user_block_and_their_answers_end_the_block() {
        for kind in [
            "permission_prompt",
            "elicitation_dialog",
            "agent_needs_input",
        ] {
            let e = hook(json!({"session_id": "s", "hook_event_name": "Notification",
                "notification_type": kind, "message": "Claude needs you"}));
            assert_eq!(e.entity_type, EntityType::Permission, "{kind}");
            assert_eq!(e.status, Some(Status::Blocked), "{kind}");
        }
        let denied = hook(
            json!({"session_id": "s", "hook_event_name": "PermissionDenied",
            "tool_name": "Bash", "tool_input": {"command": "rm -rf /"}, "tool_use_id": "toolu_d",
            "reason": "[Irreversible Local Destruction] deletes the disk"}),
        );
        // The call never runs: the denial ends it (no PostToolUse follows).
        assert_eq!(denied.entity_type, EntityType::Tool);
        assert_eq!(denied.entity_id.as_deref(), Some("toolu_d"));
        assert_eq!(denied.status, Some(Status::Cancelled));
        assert_eq!(denied.severity, Severity::Warn);
        assert_eq!(denied.correlation_id.as_deref(), Some("toolu_d"));
        let answered = hook(
            json!({"session_id": "s", "hook_event_name": "ElicitationResult",
            "mcp_server_name": "jira", "action": "accept"}),
        );
        assert_eq!(answered.status, Some(Status::Running));
        assert_eq!(answered.severity, Severity::Info);
    }

    #[test]
    fn team_tasks_and_idle_teammates_are_in_the_teammates_lane() {
        let created = hook(
            json!({"session_id": "lead", "hook_event_name": "TaskCreated",
            "task_id": "t1", "task_subject": "write tests", "teammate_name": "ana",
            "team_name": "core"}),
        );
        assert_eq!(created.entity_type, EntityType::Task);
        assert_eq!(created.status, Some(Status::Queued));
        assert_eq!(
            created.session_id.as_deref(),
            Some("lead:teammate:core/ana")
        );
        assert_eq!(created.parent_session_id.as_deref(), Some("lead"));
        assert_eq!(created.run_id.as_deref(), Some("lead"));
        assert_eq!(created.agent.as_deref(), Some("ana"));
        let done = hook(
            json!({"session_id": "lead", "hook_event_name": "TaskCompleted",
            "task_id": "t1", "task_subject": "write tests", "teammate_name": "ana",
            "team_name": "core"}),
        );
        assert_eq!(done.status, Some(Status::Success));
        assert_eq!(done.entity_id, created.entity_id);
        assert_ne!(done.event_id, created.event_id);
        let idle = hook(
            json!({"session_id": "lead", "hook_event_name": "TeammateIdle",
            "teammate_name": "ana", "team_name": "core"}),
        );
        assert_eq!(idle.entity_type, EntityType::Session);
        assert_eq!(idle.status, Some(Status::Idle));
        assert_eq!(idle.session_id, created.session_id);
    }

    #[test]
    fn a_teammate_started_as_a_subagent_is_one_lane() {
        // The payloads of Claude Code 2.1.197 (an in-process teammate `researcher`).
        let started = hook(
            json!({"session_id": "lead-rb", "hook_event_name": "SubagentStart",
            "agent_id": "aresearcher-86d393b70a61774a", "agent_type": "researcher"}),
        );
        let idle = hook(
            json!({"session_id": "lead-rb", "hook_event_name": "TeammateIdle",
            "teammate_name": "researcher", "team_name": "session-lead-rb"}),
        );
        let task = hook(
            json!({"session_id": "lead-rb", "hook_event_name": "TaskCreated",
            "task_id": "1", "task_subject": "s", "teammate_name": "researcher",
            "team_name": "session-lead-rb"}),
        );
        assert_eq!(
            started.session_id.as_deref(),
            Some("aresearcher-86d393b70a61774a")
        );
        for e in [&idle, &task] {
            assert_eq!(e.session_id, started.session_id, "{}", e.source_event);
            assert_eq!(e.parent_session_id.as_deref(), Some("lead-rb"));
            assert_eq!(e.agent.as_deref(), Some("researcher"));
        }
        assert_eq!(idle.status, Some(Status::Idle));
        // Another teammate of the same lead, never seen starting: its own lane.
        let other = hook(
            json!({"session_id": "lead-rb", "hook_event_name": "TeammateIdle",
            "teammate_name": "writer", "team_name": "session-lead-rb"}),
        );
        assert_eq!(
            other.session_id.as_deref(),
            Some("lead-rb:teammate:session-lead-rb/writer")
        );
    }

    #[test]
    fn bookkeeping_is_debug_and_compaction_is_a_task() {
        for name in [
            "PostToolBatch",
            "MessageDisplay",
            "Setup",
            "InstructionsLoaded",
            "FileChanged",
        ] {
            let e = hook(json!({"session_id": "s", "hook_event_name": name}));
            assert_eq!(e.severity, Severity::Debug, "{name}");
        }
        for name in [
            "CwdChanged",
            "ConfigChange",
            "WorktreeCreate",
            "WorktreeRemove",
            "PostModelSwitch",
        ] {
            let e = hook(json!({"session_id": "s", "hook_event_name": name}));
            assert_eq!(e.severity, Severity::Info, "{name}");
            assert!(!e.title.starts_with("Claude Code"), "{name}: {}", e.title);
        }
        let pre =
            hook(json!({"session_id": "s", "hook_event_name": "PreCompact", "trigger": "auto"}));
        let post =
            hook(json!({"session_id": "s", "hook_event_name": "PostCompact", "trigger": "auto"}));
        assert_eq!(
            (pre.entity_type, pre.status),
            (EntityType::Task, Some(Status::Running))
        );
        assert_eq!(
            (post.entity_type, post.status),
            (EntityType::Task, Some(Status::Success))
        );
    }

    #[test]
    fn a_prompt_is_correlated_by_its_id() {
        let e = hook(
            json!({"session_id": "s", "hook_event_name": "UserPromptSubmit",
            "prompt_id": "p-1", "prompt": "hello"}),
        );
        assert_eq!(e.entity_id.as_deref(), Some("p-1"));
        assert_eq!(e.correlation_id.as_deref(), Some("p-1"));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Every hook event name Claude Code 2.1.197 sends, and two it may send later.
        fn names() -> Vec<&'static str> {
            let later = ["PreModelSwitch", "PostModelSwitch"];
            HOOK_EVENTS.iter().copied().chain(later).collect()
        }
        /// The fields the mapping reads, so generated payloads exercise every branch.
        const FIELDS: &[&str] = &[
            "agent_id",
            "agent_type",
            "tool_name",
            "tool_input",
            "tool_use_id",
            "tool_response",
            "prompt",
            "prompt_id",
            "notification_type",
            "message",
            "title",
            "teammate_name",
            "team_name",
            "task_id",
            "task_subject",
            "task_description",
            "mcp_server_name",
            "action",
            "reason",
            "error",
            "error_details",
            "is_interrupt",
            "duration_ms",
            "tool_calls",
            "delta",
            "message_id",
            "trigger",
            "file_path",
            "new_cwd",
            "from_model",
            "to_model",
            "source",
            "model",
            "last_assistant_message",
            "compact_summary",
        ];

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<f64>().prop_map(|n| json!(n)),
                // Keys with NUL are refused by validation (docs/CONTRACT.md §2.3), by design.
                "[^\\x00]{0,40}".prop_map(Value::String),
                prop::sample::select(vec![
                    "permission_prompt",
                    "idle_prompt",
                    "agent_needs_input",
                    "elicitation_dialog",
                    "auth_success",
                    "accept",
                    "decline"
                ])
                .prop_map(|s| Value::String(s.into())),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(".{0,8}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            /// Any payload of any hook name, with any values in the fields the mapping reads,
            /// maps without panicking into a valid event of the hook's run; a payload without
            /// a session still maps, and only a missing hook name is refused.
            #[test]
            fn any_hook_payload_maps_into_its_run(
                name in prop::sample::select(names()),
                fields in prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()), json_value(), 0..10),
                session in prop::option::of("[a-z0-9-]{1,40}"),
            ) {
                let mut payload = serde_json::Map::new();
                for (k, v) in fields {
                    payload.insert(k.to_string(), v);
                }
                payload.insert("hook_event_name".into(), json!(name));
                if let Some(s) = &session {
                    payload.insert("session_id".into(), json!(s));
                }
                let e = map_hook(Value::Object(payload), None, Some(Timestamp(1_000)), now());
                let e = e.map_err(TestCaseError::fail)?;
                prop_assert_eq!(e.run_id.as_deref(), session.as_deref());
                prop_assert_eq!(e.source_event.as_str(), name);
                if matches!(name, "PostToolBatch" | "MessageDisplay" | "Setup" | "InstructionsLoaded" | "FileChanged" | "PreModelSwitch") {
                    prop_assert_eq!(e.severity, Severity::Debug);
                }
            }

            /// Anything that is not an object, or an object without a hook name, is refused
            /// with a message, never a panic.
            #[test]
            fn a_non_hook_is_refused(v in json_value()) {
                let is_hook = v.get("hook_event_name").and_then(Value::as_str).is_some_and(|s| !s.is_empty());
                let result = map_hook(v, None, None, now());
                if !is_hook {
                    prop_assert!(result.is_err());
                }
            }
        }
    }

    #[test]
    fn the_producer_named_by_sightline_hook_becomes_the_events_pid() {
        let e = hook(json!({"session_id": "s", "hook_event_name": "Stop"}));
        let p = json!({"pid": 4242, "start_ticks": 99, "boot_id": "b", "pid_ns": "pid:[1]", "host": "box"});
        let e = with_producer(e, Some(&p));
        assert_eq!(e.pid, Some(4242));
        assert_eq!(e.host.as_deref(), Some("box"));
        assert_eq!(
            e.payload["sightline_producer"],
            json!({"pid": 4242, "start_ticks": 99, "boot_id": "b", "pid_ns": "pid:[1]"})
        );
        // Malformed or out of range: ignored, the event is kept as it was.
        for bad in [
            json!({"pid": -1}),
            json!({"pid": "12"}),
            json!([1]),
            json!({"pid": 1u64 << 40}),
        ] {
            let e = with_producer(
                hook(json!({"session_id": "s", "hook_event_name": "Stop"})),
                Some(&bad),
            );
            assert_eq!(e.pid, None, "{bad}");
            assert!(!e.payload.contains_key("sightline_producer"), "{bad}");
        }
    }

    #[test]
    fn the_producer_travels_in_a_header_or_on_a_spool_line() {
        let request = |ct: &str, headers: Vec<(String, String)>, body: &str| HttpRequest {
            headers: [vec![("content-type".to_string(), ct.to_string())], headers].concat(),
            params: vec![],
            body: body.to_string().into_bytes().into(),
            now: now(),
        };
        let hooks = ClaudeHooks::default();
        let single = request(
            "application/json",
            vec![(PRODUCER_HEADER.into(), r#"{"pid": 77, "host": "h"}"#.into())],
            r#"{"session_id": "s", "hook_event_name": "Stop"}"#,
        );
        let d = hooks.decode(&single).unwrap();
        assert_eq!(d.events[0].pid, Some(77));
        let spool = request(
            "application/x-ndjson",
            vec![],
            "{\"id\":\"a\",\"ts\":1000,\"producer\":{\"pid\":78,\"host\":\"h\"},\"payload\":{\"session_id\":\"s\",\"hook_event_name\":\"Stop\"}}\n\
             {\"id\":\"b\",\"ts\":1001,\"payload\":{\"session_id\":\"s\",\"hook_event_name\":\"Stop\"}}\n",
        );
        let d = hooks.decode(&spool).unwrap();
        assert_eq!(
            d.events.iter().map(|e| e.pid).collect::<Vec<_>>(),
            vec![Some(78), None]
        );
    }

    proptest::proptest! {
        #[test]
        fn any_producer_header_is_taken_or_ignored_without_panicking(text in "\\PC{0,200}") {
            let base = hook(json!({"session_id": "s", "hook_event_name": "Stop"}));
            let parsed = serde_json::from_str::<Value>(&text).ok();
            let e = with_producer(base, parsed.as_ref());
            if let Some(pid) = e.pid {
                proptest::prop_assert!((1..=i64::from(i32::MAX)).contains(&pid));
            }
            for k in ["boot_id", "pid_ns"] {
                let v = &e.payload.get("sightline_producer").map(|p| p[k].clone()).unwrap_or(Value::Null);
                proptest::prop_assert!(v.as_str().is_none_or(|s| s.chars().count() <= 64));
            }
        }

        #[test]
        fn any_well_formed_producer_is_kept(pid in 1i64..=i64::from(i32::MAX), ticks in proptest::prelude::any::<u64>(), host in "[a-z0-9.-]{1,80}") {
            let p = json!({"pid": pid, "start_ticks": ticks, "host": host});
            let e = with_producer(hook(json!({"session_id": "s", "hook_event_name": "Stop"})), Some(&p));
            proptest::prop_assert_eq!(e.pid, Some(pid));
            proptest::prop_assert_eq!(e.host, Some(host.chars().take(64).collect::<String>()));
            proptest::prop_assert_eq!(&e.payload["sightline_producer"]["start_ticks"], &json!(ticks));
        }
    }
}
