//! Claude Code's trace spans (`OTEL_TRACES_EXPORTER=otlp` with
//! `CLAUDE_CODE_ENHANCED_TELEMETRY_BETA=1`) → the same lifecycle its hooks, OTel logs and
//! transcripts describe.
//!
//! Claude Code sends one trace per turn: a `claude_code.interaction` span (the turn) holding a
//! `claude_code.llm_request` span per model request and a `claude_code.tool` span per tool
//! call, which holds `claude_code.tool.blocked_on_user` (the wait for a permission decision)
//! and `claude_code.tool.execution` (the run itself). A subagent's spans sit under the
//! execution span of the `Agent` tool that started it and carry its `agent_id` (some of them;
//! the rest are found through their parents, [`crate::otlp`]'s span memory, or the hooks' note
//! of which subagent made a tool call, [`super::link`]).
//!
//! Mapping (docs/CONTRACT.md §3.2): the run is `session.id`; a subagent's spans are in its
//! session (`agent_id`) under the root session, as its hooks are. The turn is a `prompt`
//! (`success` when it ended) joined to the prompt's hook and OTel events by their prompt id
//! (`correlation_id`); a model request is a `message` joined by its request id; a tool call,
//! its execution and its wait are `tool` and `permission` events with `entity_id =
//! correlation_id = tool_use_id`, like the hooks' Pre/Post; a tool span whose wait was refused
//! ends its call `cancelled` (in `claude -p` no hook says so). Spans carry no usage metrics: a
//! request's tokens and cost are counted by its one usage event (`claude-usage:<request id>`,
//! from the OTel `api_request` log or the transcript), so a span never counts them twice.
//! `claude_code.hook` spans are bookkeeping, kept at `debug`. The span ids stay in the payload,
//! so the dashboard nests the spans by parent. This module must never give a span an event id
//! another route uses, and never put a metric on a span that another event already counts.

use serde_json::{Map, Value};
use sightline_schema::{EntityType, Event, Severity, Source, Status, Timestamp};

use super::link;
use crate::otlp::{SpanParts, is_rejection, nanos_to_ts, span_info, tool_was_denied};
use crate::util::{BuilderExt, short};

fn s(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The subagent a span ran in: its own `agent_id`, else the nearest ancestor's, else the
/// subagent the hooks saw make its tool call.
fn subagent_of(parts: &SpanParts<'_>, tool_use_id: Option<&str>) -> Option<String> {
    if let Some(id) = s(parts.attributes, "agent_id") {
        return Some(id);
    }
    let mut current = parts.parent.clone();
    // A bound on the walk, against a cycle in hostile parent ids.
    for _ in 0..64 {
        let Some(id) = current else { break };
        let Some(info) = span_info(&parts.trace, &id) else {
            break;
        };
        if let Some(agent) = info.agent_id {
            return Some(agent);
        }
        // The execution span of the `Agent` tool is the main agent's: its subagent's spans are
        // below it, never above.
        current = info.parent;
    }
    tool_use_id.and_then(link::tool_agent)
}

/// The tool call a span belongs to: its own `tool_use_id`, else its parent's (the wait span
/// carries none; its parent, the `claude_code.tool` span, does).
fn tool_call(parts: &SpanParts<'_>) -> (Option<String>, Option<String>) {
    let own =
        s(parts.attributes, "tool_use_id").or_else(|| s(parts.attributes, "gen_ai.tool.call.id"));
    let name = s(parts.attributes, "tool_name");
    if own.is_some() && name.is_some() {
        return (own, name);
    }
    let parent = parts
        .parent
        .as_deref()
        .and_then(|p| span_info(&parts.trace, p));
    (
        own.or_else(|| parent.as_ref().and_then(|p| p.tool_use_id.clone())),
        name.or_else(|| parent.and_then(|p| p.tool_name)),
    )
}

/// Maps one `claude_code.*` span. `session` is its `session.id` (attribute or resource).
pub(crate) fn map(
    parts: &SpanParts<'_>,
    session: Option<String>,
    payload: Value,
    id: String,
    now: Timestamp,
) -> Result<Event, String> {
    let a = parts.attributes;
    let span = parts.span;
    let kind = span.name.strip_prefix("claude_code.").unwrap_or(&span.name);
    let failed = parts.failed || a.get("success") == Some(&Value::Bool(false));
    // Only tool spans are about a tool call: a subagent's request under the `Agent` tool's
    // execution span is not that call.
    let (tool_use_id, tool_name) = if kind.starts_with("tool") {
        tool_call(parts)
    } else {
        (None, None)
    };
    let subagent = subagent_of(parts, tool_use_id.as_deref());
    if let (Some(agent), Some(tool)) = (&subagent, &tool_use_id) {
        link::note_tool_agent(tool, agent);
    }
    let run = session.clone().or_else(|| Some(parts.trace.clone()));
    let (session_id, parent, agent) = match &subagent {
        Some(agent_id) => (
            Some(agent_id.clone()),
            run.clone(),
            link::agent_type(agent_id).or_else(|| Some("subagent".into())),
        ),
        None => (run.clone(), None, Some("main".to_string())),
    };
    let ok = if failed {
        Status::Failed
    } else {
        Status::Success
    };
    let mut status = Some(ok);
    let mut severity = if failed {
        Severity::Error
    } else {
        Severity::Info
    };
    let mut entity_id: Option<String> = None;
    let mut correlation: Option<String> = None;
    let tool = tool_name.clone().unwrap_or_else(|| "tool".into());
    let end_ms = (span.end_time_unix_nano / 1_000_000) as i64;
    let (entity, title) = match kind {
        "interaction" => {
            // The turn: the prompt it answered is the latest one its session got before it
            // ended (the span itself carries no prompt id).
            let prompt = session
                .as_deref()
                .and_then(|sess| link::prompt_before(sess, end_ms));
            entity_id = prompt.clone().or_else(|| Some(parts.span_id.clone()));
            correlation = prompt;
            let n = s(a, "interaction.sequence")
                .map(|n| format!(" {n}"))
                .unwrap_or_default();
            let prompt_text = s(a, "user_prompt").filter(|p| p != "<REDACTED>");
            (
                EntityType::Prompt,
                match prompt_text {
                    Some(p) => format!("Turn{n}: {}", short(&p, 120)),
                    None => format!("Turn{n}"),
                },
            )
        }
        "llm_request" => {
            let request = s(a, "request_id").or_else(|| s(a, "gen_ai.response.id"));
            entity_id = request.clone();
            correlation = request;
            let model = s(a, "model")
                .or_else(|| s(a, "gen_ai.request.model"))
                .unwrap_or_else(|| "model".into());
            let why = s(a, "stop_reason")
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            (EntityType::Message, format!("{model} · model request{why}"))
        }
        "tool" if tool_was_denied(&parts.trace, &parts.span_id) => {
            // Its permission wait ended in a refusal: the tool never ran. No hook says so in
            // every mode (`claude -p` sends only the PreToolUse), so this ends the call.
            entity_id = tool_use_id.clone();
            correlation = tool_use_id.clone();
            status = Some(Status::Cancelled);
            severity = Severity::Warn;
            (EntityType::Tool, format!("{tool} (permission denied)"))
        }
        "tool" => {
            entity_id = tool_use_id.clone();
            correlation = tool_use_id.clone();
            (EntityType::Tool, tool.clone())
        }
        "tool.execution" => {
            entity_id = tool_use_id.clone();
            correlation = tool_use_id.clone();
            (EntityType::Tool, format!("{tool} · execution"))
        }
        "tool.blocked_on_user" => {
            // The wait for a permission decision. It is over when the span is sent: a
            // decision lets the session run again; an unknown decision means no one was
            // asked (a rule or a bypass decided), which is bookkeeping.
            entity_id = tool_use_id.clone();
            correlation = tool_use_id.clone();
            let decision = s(a, "decision").unwrap_or_else(|| "unknown".into());
            match decision.as_str() {
                "unknown" => {
                    status = None;
                    severity = Severity::Debug;
                }
                d if is_rejection(d) => {
                    status = Some(Status::Running);
                    severity = Severity::Warn;
                }
                _ => status = Some(Status::Running),
            }
            (
                EntityType::Permission,
                format!("{tool} · waited for permission ({decision})"),
            )
        }
        "hook" => {
            severity = Severity::Debug;
            status = None;
            let hook = s(a, "hook_name")
                .or_else(|| s(a, "hook_event"))
                .unwrap_or_else(|| "hook".into());
            (EntityType::Log, format!("Hook {}", short(&hook, 120)))
        }
        other => (EntityType::Task, format!("Claude Code {other}")),
    };
    Event::builder(Source::Claude, span.name.clone(), entity, title)
        .event_id(id)
        .ts(nanos_to_ts(span.start_time_unix_nano))
        .run_id(run)
        .session_id(session_id)
        .parent_session_id(parent)
        .agent(agent)
        .entity_id(entity_id.or_else(|| Some(parts.span_id.clone())))
        .status(status)
        .severity(severity)
        .summary(
            span.status
                .as_ref()
                .map(|st| st.message.clone())
                .filter(|m| !m.is_empty()),
        )
        .duration_opt(parts.duration)
        .correlation_id(correlation)
        .tags(tool_name.map(|t| format!("tool:{t}")))
        .payload_value(payload)
        .build(now)
        .map_err(|e| e.0)
}
