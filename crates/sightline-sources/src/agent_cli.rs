//! What the Codex CLI and Gemini CLI sources ([`crate::codex`], [`crate::gemini`]) share: the
//! text of a message's content in their session files, and in their OpenTelemetry log mappings
//! one record's place (its session, time and id), the parts each mapping decides (entity,
//! status, severity, duration, tool call), the prompt's title, and the one way such a record
//! becomes an event. It must never count tokens or cost: those come from the agents' session
//! files, once per request, and the OTel records keep theirs in the payload.

use serde_json::{Map, Value};
use sightline_schema::{EntityType, Event, Severity, Source, Status, Timestamp};

use crate::otlp::s as attr_text;
use crate::util::{BuilderExt, short, text};

/// One agent CLI's log record on its way to an event: set what the record says, then
/// [`CliLog::build`].
pub(crate) struct CliLog {
    source: Source,
    agent: &'static str,
    session: Option<String>,
    ts: Option<Timestamp>,
    id: String,
    pub entity: EntityType,
    pub status: Option<Status>,
    pub severity: Severity,
    pub duration: Option<f64>,
    /// The tool call the record is about: its entity and correlation id.
    pub call: Option<String>,
}

impl CliLog {
    /// A debug log row of `source` in the session the attribute `session_key` names, at `ts` or
    /// else the record's own `event.timestamp`, with the receiver's record id `id`.
    pub(crate) fn new(
        source: Source,
        agent: &'static str,
        attributes: &Map<String, Value>,
        session_key: &str,
        ts: Option<Timestamp>,
        id: String,
    ) -> CliLog {
        let ts = ts.or_else(|| {
            attr_text(attributes, "event.timestamp").and_then(|t| Timestamp::parse(&t).ok())
        });
        CliLog {
            source,
            agent,
            session: attr_text(attributes, session_key),
            ts,
            id,
            entity: EntityType::Log,
            status: None,
            severity: Severity::Debug,
            duration: None,
            call: None,
        }
    }

    /// The event: the run and session are the record's session, a session record is that
    /// session's entity and any other the call's, the attributes kept in the payload.
    pub(crate) fn build(
        self,
        name: &str,
        title: String,
        attributes: &Map<String, Value>,
        mut payload: Map<String, Value>,
        now: Timestamp,
    ) -> Result<Event, String> {
        payload.insert("attributes".into(), Value::Object(attributes.clone()));
        Event::builder(self.source, name, self.entity, title)
            .event_id(self.id)
            .ts(self.ts)
            .run_id(self.session.clone())
            .session_id(self.session.clone())
            .entity_id(match self.entity {
                EntityType::Session => self.session.clone(),
                _ => self.call.clone(),
            })
            .correlation_id(self.call)
            .agent(self.agent)
            .status(self.status)
            .severity(self.severity)
            .duration_opt(self.duration.filter(|d| *d >= 0.0))
            .payload(payload)
            .build(now)
            .map_err(|e| e.0)
    }
}

/// A `user_prompt` record's title: the prompt when the agent logs prompts, else its length.
pub(crate) fn prompt_title(attributes: &Map<String, Value>) -> String {
    match attr_text(attributes, "prompt") {
        Some(p) => format!("Prompt: {}", short(&p, 120)),
        None => format!(
            "Prompt ({} characters)",
            attr_text(attributes, "prompt_length").unwrap_or_else(|| "?".into())
        ),
    }
}

/// The text of a message's `content`: a string, or the `text` of its parts (a Responses API
/// message's `input_text` / `output_text`, a Gemini message's `[{text}]`) joined by lines.
pub(crate) fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| text(p, "text"))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}
