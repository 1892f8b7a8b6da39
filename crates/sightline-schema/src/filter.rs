//! The one filter language shared by SSE, WebSocket, search and export (docs/CONTRACT.md §5).
//!
//! Lists are OR within a field and AND across fields. As JSON it is an object of lists; as
//! query parameters the same names with comma-separated values. Matching in memory
//! ([`Filter::matches`]) and in SQL (the store) must agree; this module must never do I/O.

use serde::{Deserialize, Serialize};

use crate::event::{EntityType, Event, Severity, Source, Status};
use crate::timestamp::Timestamp;
use crate::validate::ValidationError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Filter {
    pub sources: Vec<Source>,
    pub source_events: Vec<String>,
    pub runs: Vec<String>,
    pub sessions: Vec<String>,
    pub agents: Vec<String>,
    /// Correlation ids: one lifecycle (a tool call's Pre/Post pair, a workflow step).
    pub correlations: Vec<String>,
    pub entity_types: Vec<EntityType>,
    pub statuses: Vec<Status>,
    pub severities: Vec<Severity>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub q: Option<String>,
}

/// The query-parameter names a filter reads (other parameters are left to the endpoint).
pub const FILTER_PARAMS: &[&str] = &[
    "sources",
    "source_events",
    "runs",
    "sessions",
    "agents",
    "correlations",
    "entity_types",
    "statuses",
    "severities",
    "since",
    "until",
    "q",
];

fn split(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_list<T>(
    field: &str,
    value: &str,
    parse: fn(&str) -> Option<T>,
    names: fn() -> String,
) -> Result<Vec<T>, ValidationError> {
    split(value)
        .map(|item| {
            parse(item).ok_or_else(|| {
                ValidationError(format!("{field}: `{item}` is not one of: {}", names()))
            })
        })
        .collect()
}

impl Filter {
    /// Reads the filter from query parameters; unrelated parameters are ignored.
    pub fn from_params<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ValidationError> {
        let mut f = Filter::default();
        for (key, value) in params {
            let strings = || split(value).map(str::to_string).collect::<Vec<_>>();
            match key {
                "sources" | "source" => {
                    f.sources
                        .extend(parse_list(key, value, Source::parse, Source::names)?)
                }
                "source_events" => f.source_events.extend(strings()),
                "runs" | "run_id" => f.runs.extend(strings()),
                "sessions" | "session_id" => f.sessions.extend(strings()),
                "agents" | "agent" => f.agents.extend(strings()),
                "correlations" | "correlation_id" => f.correlations.extend(strings()),
                "entity_types" => f.entity_types.extend(parse_list(
                    key,
                    value,
                    EntityType::parse,
                    EntityType::names,
                )?),
                "statuses" | "status" => {
                    f.statuses
                        .extend(parse_list(key, value, Status::parse, Status::names)?)
                }
                "severities" | "severity" => {
                    f.severities
                        .extend(parse_list(key, value, Severity::parse, Severity::names)?)
                }
                "since" => f.since = Some(parse_time(key, value)?),
                "until" => f.until = Some(parse_time(key, value)?),
                "q" => f.q = Some(value.trim().to_string()).filter(|q| !q.is_empty()),
                _ => {}
            }
        }
        Ok(f)
    }

    /// The filter as query parameters (the inverse of [`Filter::from_params`]).
    pub fn to_params(&self) -> Vec<(&'static str, String)> {
        fn join<T: ToString>(items: &[T]) -> String {
            items.iter().map(T::to_string).collect::<Vec<_>>().join(",")
        }
        let mut out = Vec::new();
        let mut push = |k: &'static str, v: String| {
            if !v.is_empty() {
                out.push((k, v));
            }
        };
        push("sources", join(&self.sources));
        push("source_events", self.source_events.join(","));
        push("runs", self.runs.join(","));
        push("sessions", self.sessions.join(","));
        push("agents", self.agents.join(","));
        push("correlations", self.correlations.join(","));
        push("entity_types", join(&self.entity_types));
        push("statuses", join(&self.statuses));
        push("severities", join(&self.severities));
        push(
            "since",
            self.since.map(|t| t.to_rfc3339()).unwrap_or_default(),
        );
        push(
            "until",
            self.until.map(|t| t.to_rfc3339()).unwrap_or_default(),
        );
        push("q", self.q.clone().unwrap_or_default());
        out
    }

    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// The lower-cased words of `q`; an event matches when it contains every one.
    pub fn query_terms(&self) -> Vec<String> {
        self.q
            .as_deref()
            .map(|q| q.split_whitespace().map(str::to_lowercase).collect())
            .unwrap_or_default()
    }

    /// Does the event pass? Cheap checks first; full text last.
    pub fn matches(&self, e: &Event) -> bool {
        fn any<T: PartialEq>(list: &[T], value: &T) -> bool {
            list.is_empty() || list.contains(value)
        }
        fn any_opt(list: &[String], value: &Option<String>) -> bool {
            list.is_empty() || value.as_ref().is_some_and(|v| list.contains(v))
        }
        any(&self.sources, &e.source)
            && any(&self.entity_types, &e.entity_type)
            && any(&self.severities, &e.severity)
            && (self.statuses.is_empty() || e.status.is_some_and(|s| self.statuses.contains(&s)))
            && any(&self.source_events, &e.source_event)
            && any_opt(&self.runs, &e.run_id)
            && (self.sessions.is_empty()
                || any_opt(&self.sessions, &e.session_id)
                || any_opt(&self.sessions, &e.parent_session_id))
            && any_opt(&self.agents, &e.agent)
            && any_opt(&self.correlations, &e.correlation_id)
            && self.since.is_none_or(|t| e.ts >= t)
            && self.until.is_none_or(|t| e.ts < t)
            && self.matches_text(e)
    }

    fn matches_text(&self, e: &Event) -> bool {
        let terms = self.query_terms();
        if terms.is_empty() {
            return true;
        }
        let text = searchable_text(e).to_lowercase();
        terms.iter().all(|t| text.contains(t.as_str()))
    }
}

/// How much of an event full-text search indexes: enough for commands, paths and error
/// messages, bounded so that one huge payload cannot dominate the writer's time.
pub const MAX_SEARCHABLE: usize = 2048;

/// The text full-text search sees: title, summary, ids and the strings and keys of the payload
/// (up to [`MAX_SEARCHABLE`] bytes).
pub fn searchable_text(e: &Event) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(&e.title);
    for s in [&e.summary, &e.entity_id, &e.agent].into_iter().flatten() {
        out.push(' ');
        out.push_str(s);
    }
    out.push(' ');
    out.push_str(&e.source_event);
    for tag in &e.tags {
        out.push(' ');
        out.push_str(tag);
    }
    fn walk(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::String(s) => {
                out.push(' ');
                out.push_str(s);
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    out.push(' ');
                    out.push_str(k);
                    walk(v, out);
                }
            }
            serde_json::Value::Number(n) => {
                out.push(' ');
                out.push_str(&n.to_string());
            }
            _ => {}
        }
    }
    for (k, v) in &e.payload {
        out.push(' ');
        out.push_str(k);
        walk(v, &mut out);
        if out.len() > MAX_SEARCHABLE {
            break;
        }
    }
    out
}

fn parse_time(field: &str, value: &str) -> Result<Timestamp, ValidationError> {
    Timestamp::parse(value).map_err(|e| ValidationError(format!("{field}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::parse_event;

    fn event(json: &str) -> Event {
        parse_event(json.as_bytes(), Timestamp::now()).unwrap()
    }

    #[test]
    fn or_within_and_across_fields() {
        let e = event(
            r#"{"source":"claude","source_event":"PreToolUse","entity_type":"tool","title":"Bash ls","run_id":"r1","status":"running"}"#,
        );
        let f = |q: &str| {
            Filter::from_params(q.split('&').filter_map(|kv| kv.split_once('='))).unwrap()
        };
        assert!(f("sources=claude,opencode").matches(&e));
        assert!(!f("sources=opencode").matches(&e));
        assert!(f("sources=claude&runs=r1&statuses=running").matches(&e));
        assert!(!f("sources=claude&runs=r2").matches(&e));
        assert!(f("q=bash").matches(&e));
        assert!(
            !f("correlations=toolu_1").matches(&e),
            "no correlation id on the event"
        );
        assert!(!f("q=bash zsh").matches(&e));
    }

    #[test]
    fn unknown_names_are_errors_with_the_accepted_list() {
        let err = Filter::from_params([("severities", "loud")]).unwrap_err().0;
        assert!(err.contains("debug, info, warn, error"), "{err}");
    }

    #[test]
    fn params_round_trip() {
        let f = Filter::from_params([
            ("sources", "python,claude"),
            ("q", "boom"),
            ("since", "2026-01-01T00:00:00Z"),
        ])
        .unwrap();
        let params = f.to_params();
        let back = Filter::from_params(params.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        assert_eq!(f, back);
    }
}
