//! OpenCode: its server's event stream (`GET /event` of `opencode serve`), its plugin's posts
//! (`POST /api/v1/hooks/opencode`) and the plugin's JSONL spool, all mapped the same way.
//!
//! Mapping (docs/CONTRACT.md §3.3): `session.created/updated/deleted` → session rows, nested through
//! `parentID` (the run is the root session); `session.status` busy → running, retry → retry +
//! warn, idle → idle; `session.idle` → idle; `session.error` → error; `message.updated` of a
//! completed assistant message → tokens and cost, once per message (`oc-usage:<messageID>`);
//! `message.part.updated` tool parts → tool lifecycle on `callID`, finished text parts →
//! message; `permission.updated/asked` → blocked, `permission.replied` → running again;
//! `todo.updated` → todo; anything else → a generic `log` event. Heartbeats and
//! `server.connected` only touch health. Event ids come from OpenCode's own `evt_…` ids, so the
//! stream and the plugin's spool of the same event are stored once.
//!
//! The SSE client reconnects with backoff and, on each connect, lists `/session` so that
//! sessions created while it was away still appear. When the server goes away, the sessions the
//! stream saw events for end (docs/SOURCES-SETUP.md, "Liveness"): one rule for a killed and a
//! hung server — the stream stops (it ends, or carries not even a heartbeat for the silence
//! timeout, by default [`SILENCE`], three of OpenCode's 10 s heartbeats) and the next connect
//! gets no answer (refused, or none within the handshake timeout, by default [`HANDSHAKE`]: a
//! stopped server's kernel still accepts). Both are settings ([`Timeouts`]), checked when the
//! adapter is built: a silence shorter than one heartbeat is refused, since it would drop a live
//! server's stream between two heartbeats. One that was working fails,
//! an idle one succeeds, each marked `ended_by: "liveness"` and dated at the stream's last
//! frame, so a real event that arrives later (the plugin's spool) still wins. The client keeps
//! retrying with its backoff, and a server that comes back (SIGCONT) is followed again. A JSONL line that is not JSON, or whose
//! mapping fails or panics, becomes an error event and a health error and is skipped (the offset
//! moves past it); on the stream, such an event is a health error. It must never send anything
//! to OpenCode but reads (GET) and never fail because of an unknown event type.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use sightline_core::{Decoded, EndpointSpec, HttpError, HttpRequest, HttpSource, Method, Role};
use sightline_schema::{EntityType, Event, Severity, Source, Status, Timestamp};

use crate::framework::{Adapter, AdapterConfig, AdapterContext, AdapterError, AdapterFuture};
use crate::util::{
    BuilderExt, Metrics, contain, event_id, line_error_event, redacted, short, stable_hash, text,
    ts_string,
};

pub const NAME: &str = "opencode";
pub const HOOK_NAME: &str = "opencode-plugin";
pub const JSONL_NAME: &str = "opencode-jsonl";

/// Which run each session belongs to (session → root), learnt from `parentID`s.
#[derive(Default)]
pub struct OcState {
    roots: HashMap<String, String>,
}

impl OcState {
    fn root_of(&self, session: &str) -> String {
        let mut at = session.to_string();
        for _ in 0..32 {
            match self.roots.get(&at) {
                Some(next) if *next != at => at = next.clone(),
                _ => break,
            }
        }
        at
    }

    fn learn(&mut self, session: &str, parent: Option<&str>) {
        if self.roots.len() > 200_000 {
            self.roots.clear();
        }
        self.roots
            .insert(session.to_string(), parent.unwrap_or(session).to_string());
    }
}

fn status_of_tool(s: &str) -> Status {
    match s {
        "pending" => Status::Queued,
        "running" => Status::Running,
        "completed" => Status::Success,
        "error" => Status::Failed,
        _ => Status::Running,
    }
}

/// Maps one OpenCode bus event (`{"id"?, "type", "properties"}`). `None` for events that only
/// matter to health (heartbeats) or that would be noise (streaming deltas).
pub fn map_event(
    ev: &Value,
    directory: Option<&str>,
    state: &mut OcState,
    now: Timestamp,
) -> Option<Result<Event, String>> {
    let kind = text(ev, "type")?;
    let props = ev.get("properties").cloned().unwrap_or(Value::Null);
    let evt_id = text(ev, "id");
    let default_id = || match &evt_id {
        Some(id) => event_id("oc", &[id]),
        None => format!(
            "oc:{}",
            stable_hash(&[kind.as_bytes(), props.to_string().as_bytes()])
        ),
    };
    let mut id = default_id();
    let mut session = text(&props, "sessionID");
    let mut parent: Option<String> = None;
    let mut entity = EntityType::Log;
    let mut entity_id: Option<String> = None;
    let mut status: Option<Status> = None;
    let mut severity = Severity::Info;
    let mut summary: Option<String> = None;
    let mut duration: Option<f64> = None;
    let mut metrics = Metrics::default();
    let mut ts: Option<String> = None;
    let mut agent: Option<String> = None;
    let title = match kind.as_str() {
        // Health-only, streaming deltas, and instance bookkeeping (dozens of `plugin.added` at
        // every instance start) that would only bury the agent's events.
        "server.connected"
        | "server.heartbeat"
        | "sync"
        | "message.part.delta"
        | "session.diff"
        | "plugin.added"
        | "catalog.updated"
        | "reference.updated"
        | "integration.updated" => {
            return None;
        }
        "session.created" | "session.updated" | "session.deleted" => {
            let info = props.get("info")?;
            let sid = text(info, "id")?;
            parent = text(info, "parentID");
            state.learn(&sid, parent.as_deref());
            session = Some(sid);
            entity = EntityType::Session;
            status = match kind.as_str() {
                "session.created" => Some(Status::Idle),
                "session.deleted" => Some(Status::Cancelled),
                _ => None,
            };
            ts = info
                .get("time")
                .and_then(|t| {
                    t.get(if kind == "session.created" {
                        "created"
                    } else {
                        "updated"
                    })
                })
                .and_then(ts_string);
            format!(
                "Session: {}",
                short(
                    &text(info, "title").unwrap_or_else(|| "untitled".into()),
                    120
                )
            )
        }
        "session.status" => {
            let st = props.get("status").cloned().unwrap_or(Value::Null);
            entity = EntityType::Session;
            match text(&st, "type").as_deref() {
                Some("busy") => {
                    status = Some(Status::Running);
                    "Working".into()
                }
                Some("retry") => {
                    status = Some(Status::Retry);
                    severity = Severity::Warn;
                    summary = text(&st, "message");
                    format!(
                        "Retrying (attempt {})",
                        text(&st, "attempt").unwrap_or_else(|| "?".into())
                    )
                }
                _ => {
                    status = Some(Status::Idle);
                    "Idle".into()
                }
            }
        }
        "session.idle" => {
            entity = EntityType::Session;
            status = Some(Status::Idle);
            "Idle".into()
        }
        "session.error" => {
            entity = EntityType::Session;
            severity = Severity::Error;
            let err = props.get("error").cloned().unwrap_or(Value::Null);
            let name = text(&err, "name").unwrap_or_else(|| "error".into());
            let message = err
                .get("data")
                .and_then(|d| text(d, "message"))
                .unwrap_or_default();
            summary = Some(short(&message, 400));
            format!("Session error: {name}")
        }
        "message.updated" => {
            let info = props.get("info")?;
            let mid = text(info, "id")?;
            session = text(info, "sessionID").or(session);
            match text(info, "role").as_deref() {
                Some("assistant") => {
                    let completed = info
                        .get("time")
                        .and_then(|t| t.get("completed"))
                        .filter(|v| !v.is_null());
                    completed?;
                    ts = completed.and_then(ts_string);
                    entity = EntityType::Message;
                    status = Some(Status::Success);
                    entity_id = Some(mid.clone());
                    id = event_id("oc-usage", &[&mid]);
                    let tokens = info.get("tokens").cloned().unwrap_or(Value::Null);
                    let n = |v: Option<&Value>| v.and_then(Value::as_f64);
                    metrics.put("input_tokens", n(tokens.get("input")));
                    metrics.put("output_tokens", n(tokens.get("output")));
                    metrics.put("reasoning_tokens", n(tokens.get("reasoning")));
                    metrics.put(
                        "cache_read_tokens",
                        n(tokens.get("cache").and_then(|c| c.get("read"))),
                    );
                    metrics.put(
                        "cache_write_tokens",
                        n(tokens.get("cache").and_then(|c| c.get("write"))),
                    );
                    metrics.put("cost_usd", n(info.get("cost")));
                    if info.get("error").is_some_and(|e| !e.is_null()) {
                        severity = Severity::Error;
                        status = Some(Status::Failed);
                    }
                    agent = text(info, "mode").or_else(|| text(info, "agent"));
                    format!(
                        "{} · {} in / {} out",
                        text(info, "modelID").unwrap_or_else(|| "model".into()),
                        n(tokens.get("input")).unwrap_or(0.0),
                        n(tokens.get("output")).unwrap_or(0.0)
                    )
                }
                Some("user") => {
                    entity = EntityType::Prompt;
                    id = event_id("oc-msg", &[&mid]);
                    entity_id = Some(mid);
                    ts = info
                        .get("time")
                        .and_then(|t| t.get("created"))
                        .and_then(ts_string);
                    "User message".into()
                }
                _ => return None,
            }
        }
        "message.part.updated" => {
            let part = props.get("part")?;
            let pid = text(part, "id")?;
            session = text(part, "sessionID").or(session);
            match text(part, "type").as_deref() {
                Some("tool") => {
                    let st = part.get("state").cloned().unwrap_or(Value::Null);
                    let s = text(&st, "status").unwrap_or_else(|| "running".into());
                    let call = text(part, "callID").unwrap_or(pid.clone());
                    entity = EntityType::Tool;
                    status = Some(status_of_tool(&s));
                    if s == "error" {
                        severity = Severity::Error;
                        summary = text(&st, "error").map(|e| short(&e, 400));
                    }
                    entity_id = Some(call.clone());
                    id = event_id("oc-part", &[&pid, &s]);
                    let time = st.get("time");
                    if let (Some(start), Some(end)) = (
                        time.and_then(|t| t.get("start")).and_then(Value::as_f64),
                        time.and_then(|t| t.get("end")).and_then(Value::as_f64),
                    ) {
                        duration = Some((end - start).max(0.0));
                    }
                    let tool = text(part, "tool").unwrap_or_else(|| "tool".into());
                    crate::claude::hooks::tool_title(&tool, st.get("input"))
                }
                Some("text") => {
                    let end = part
                        .get("time")
                        .and_then(|t| t.get("end"))
                        .filter(|v| !v.is_null());
                    end?;
                    entity = EntityType::Message;
                    status = Some(Status::Success);
                    id = event_id("oc-part", &[&pid, "text"]);
                    format!(
                        "Assistant: {}",
                        short(&text(part, "text").unwrap_or_default(), 120)
                    )
                }
                _ => return None,
            }
        }
        "permission.updated" | "permission.asked" => {
            entity = EntityType::Permission;
            status = Some(Status::Blocked);
            severity = Severity::Warn;
            entity_id = text(&props, "id");
            let what = text(&props, "title")
                .or_else(|| text(&props, "permission"))
                .or_else(|| text(&props, "type"))
                .unwrap_or_else(|| "permission".into());
            format!("Permission needed: {}", short(&what, 120))
        }
        "permission.replied" => {
            entity = EntityType::Permission;
            status = Some(Status::Running);
            entity_id = text(&props, "permissionID").or_else(|| text(&props, "requestID"));
            format!(
                "Permission {}",
                text(&props, "response")
                    .or_else(|| text(&props, "reply"))
                    .unwrap_or_else(|| "answered".into())
            )
        }
        "todo.updated" => {
            entity = EntityType::Todo;
            let todos = props
                .get("todos")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let done = todos
                .iter()
                .filter(|t| text(t, "status").as_deref() == Some("completed"))
                .count();
            metrics.put(
                "progress",
                (!todos.is_empty()).then(|| 100.0 * done as f64 / todos.len() as f64),
            );
            format!("Todos: {done}/{} done", todos.len())
        }
        other => other.to_string(),
    };
    let run = session.as_deref().map(|s| state.root_of(s));
    let correlation = if entity == EntityType::Tool {
        entity_id.clone()
    } else {
        None
    };
    let built = Event::builder(Source::Opencode, kind, entity, title)
        .event_id(id)
        .ts_text(ts.as_deref())
        .and_then(|b| {
            b.run_id(run)
                .session_id(session)
                .parent_session_id(parent)
                .agent(agent)
                .entity_id(entity_id)
                .status(status)
                .severity(severity)
                .summary(summary)
                .duration_opt(duration)
                .metrics(metrics)
                .correlation_id(correlation)
                .tags(directory.map(|d| format!("dir:{}", short(d, 100))))
                .payload_value(ev.clone())
                .build(now)
                .map_err(|e| e.0)
        });
    Some(built)
}

/// Unwraps the shapes the plugin, `/global/event` and the spool use:
/// `{"directory", "payload"}`, `{"directory", "event"}` or a bare event.
pub fn unwrap(item: &Value) -> (Option<String>, Value) {
    let dir = text(item, "directory");
    for key in ["payload", "event"] {
        if let Some(inner) = item.get(key).filter(|v| v.get("type").is_some()) {
            return (dir, inner.clone());
        }
    }
    (dir, item.clone())
}

/// `POST /api/v1/hooks/opencode`: what the plugin written by `sightline install opencode`
/// sends (one item, an array, or NDJSON). Keeps which session belongs to which run across
/// requests.
pub struct OpenCodePlugin {
    spec: EndpointSpec,
    state: Mutex<OcState>,
}

impl Default for OpenCodePlugin {
    fn default() -> Self {
        OpenCodePlugin {
            spec: EndpointSpec {
                source: HOOK_NAME,
                method: Method::Post,
                path: "/api/v1/hooks/opencode",
                role: Role::Ingest,
                summary: "OpenCode plugin events (one, an array, or NDJSON), as the plugin written by `sightline install opencode` sends them",
                request: &[
                    ("application/json", crate::schemas::any_json),
                    ("application/x-ndjson", crate::schemas::ndjson),
                ],
                reply_status: 202,
                reply: crate::schemas::accepted,
                ws_message: None,
            },
            state: Mutex::new(OcState::default()),
        }
    }
}

impl HttpSource for OpenCodePlugin {
    fn spec(&self) -> &EndpointSpec {
        &self.spec
    }

    fn decode(&self, request: &HttpRequest) -> Result<Decoded, HttpError> {
        let body = &request.body;
        let items: Vec<Value> = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Array(items)) => items,
            Ok(one) => vec![one],
            Err(_) => body
                .split(|b| *b == b'\n')
                .filter(|l| !l.trim_ascii().is_empty())
                .map(|l| {
                    serde_json::from_slice(l)
                        .map_err(|e| HttpError::bad_request(format!("invalid JSON line: {e}")))
                })
                .collect::<Result<_, _>>()?,
        };
        let mut events = Vec::new();
        // The mapping state is updated per item and never left half-way by a failed item (the
        // failure is an `Err` value), so a lock poisoned by a panic elsewhere is safe to reuse.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for item in &items {
            let (dir, ev) = unwrap(item);
            if let Some(r) = map_event(&ev, dir.as_deref(), &mut state, request.now) {
                events.push(r.map_err(HttpError::bad_request)?);
            }
        }
        Ok(Decoded::events(events))
    }
}

/// `Basic` credentials for OpenCode's server.
pub fn basic_auth(password: &str) -> String {
    format!(
        "Basic {}",
        base64(format!("opencode:{password}").as_bytes())
    )
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

/// How often OpenCode's server sends `server.heartbeat` on `/event` (opencode-ai 1.18.33: one
/// every 10 s, measured on the raw stream, right after `server.connected`).
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// The default silence timeout. A stream that carries nothing, not even a heartbeat, for three
/// heartbeat intervals is dead: the connection is dropped and a reconnect asks whether the
/// server is still there. One missed heartbeat is not enough (a busy event loop can be late);
/// three is not a server at work.
pub const SILENCE: Duration = Duration::from_secs(3 * HEARTBEAT.as_secs());

/// The default handshake timeout: how long a connect may take to get an HTTP answer (or
/// `/session` its list). A server that is stopped (SIGSTOP) or wedged still has its socket, so
/// the kernel accepts the connection and nothing ever answers: without this bound the reconnect
/// would wait forever. A live server on loopback answers in milliseconds; one heartbeat
/// interval is far past that.
pub const HANDSHAKE: Duration = HEARTBEAT;

/// The shortest silence timeout accepted: two heartbeats, so that one late heartbeat (a busy
/// event loop on the server, a loaded machine) never drops a live server's stream. With one
/// heartbeat as the floor a late one dropped the stream, and a reconnect slower than a short
/// handshake then ended a live server's sessions (seen under load in the tests).
pub const SILENCE_MIN: Duration = Duration::from_secs(2 * HEARTBEAT.as_secs());

/// The shortest handshake timeout accepted: a loopback server answers in milliseconds, but a
/// busy machine can take a few hundred; below a second a live server could be taken for a
/// hung one and its sessions ended.
pub const HANDSHAKE_MIN: Duration = Duration::from_secs(1);

/// The longest either timeout may be: past an hour a hung server's sessions would stay open so
/// long that the timeout is no liveness rule at all (and the value stays far from overflow).
pub const TIMEOUT_MAX: Duration = Duration::from_secs(3600);

/// The variables the two timeouts are read from (docs/SOURCES-SETUP.md, "Liveness").
pub const SILENCE_VAR: &str = "SIGHTLINE_OPENCODE_SILENCE_S";
pub const HANDSHAKE_VAR: &str = "SIGHTLINE_OPENCODE_HANDSHAKE_S";

/// The stream's two liveness timeouts, checked: `silence` is at least two heartbeats
/// ([`SILENCE_MIN`]), `handshake` at least [`HANDSHAKE_MIN`], both at most [`TIMEOUT_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub silence: Duration,
    pub handshake: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            silence: SILENCE,
            handshake: HANDSHAKE,
        }
    }
}

/// Why a timeout setting was refused; the message names the variable and the range to use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TimeoutError {
    #[error("{var} `{value}` is not a number of seconds: write e.g. {var}={example}")]
    NotSeconds {
        var: &'static str,
        value: String,
        example: u64,
    },
    #[error(
        "{var} `{value}` is shorter than two of OpenCode's heartbeats: use at least {min} s (OpenCode sends one every {beat} s, and one late heartbeat must not drop a live server's stream)",
        min = SILENCE_MIN.as_secs(),
        beat = HEARTBEAT.as_secs()
    )]
    SilenceBelowHeartbeat { var: &'static str, value: String },
    #[error("{var} `{value}` is out of range: use {min} to {max} s", min = min.as_secs_f64(), max = max.as_secs())]
    OutOfRange {
        var: &'static str,
        value: String,
        min: Duration,
        max: Duration,
    },
}

impl Timeouts {
    /// The timeouts from their settings as written (seconds, decimals allowed, e.g. `15` or
    /// `2.5`); `None` or blank keeps the default.
    pub fn parse(silence: Option<&str>, handshake: Option<&str>) -> Result<Timeouts, TimeoutError> {
        let seconds = |var: &'static str, text: &str, example: Duration| {
            let value = text.trim();
            value
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite())
                .map(|s| (value.to_string(), s))
                .ok_or_else(|| TimeoutError::NotSeconds {
                    var,
                    value: value.to_string(),
                    example: example.as_secs(),
                })
        };
        // To the millisecond, as written: `10.001` is 10,001 ms (the float is 10.000999..).
        // In range (checked first), so the cast cannot overflow.
        let millis = |s: f64| Duration::from_millis((s * 1000.0).round() as u64);
        let mut t = Timeouts::default();
        if let Some(text) = silence.filter(|s| !s.trim().is_empty()) {
            let (value, s) = seconds(SILENCE_VAR, text, SILENCE)?;
            if s < SILENCE_MIN.as_secs_f64() {
                return Err(TimeoutError::SilenceBelowHeartbeat {
                    var: SILENCE_VAR,
                    value,
                });
            }
            if s > TIMEOUT_MAX.as_secs_f64() {
                return Err(TimeoutError::OutOfRange {
                    var: SILENCE_VAR,
                    value,
                    min: SILENCE_MIN,
                    max: TIMEOUT_MAX,
                });
            }
            t.silence = millis(s);
        }
        if let Some(text) = handshake.filter(|s| !s.trim().is_empty()) {
            let (value, s) = seconds(HANDSHAKE_VAR, text, HANDSHAKE)?;
            if !(HANDSHAKE_MIN.as_secs_f64()..=TIMEOUT_MAX.as_secs_f64()).contains(&s) {
                return Err(TimeoutError::OutOfRange {
                    var: HANDSHAKE_VAR,
                    value,
                    min: HANDSHAKE_MIN,
                    max: TIMEOUT_MAX,
                });
            }
            t.handshake = millis(s);
        }
        Ok(t)
    }
}

/// The SSE subscriber.
pub struct OpenCodeAdapter {
    pub url: String,
    pub password: Option<String>,
    pub timeouts: Timeouts,
}

impl OpenCodeAdapter {
    pub fn build(config: &AdapterConfig) -> Result<Arc<dyn Adapter>, AdapterError> {
        let url = config.opencode_url.trim_end_matches('/').to_string();
        if !url.starts_with("http://") || url.parse::<hyper::Uri>().is_err() {
            return Err(AdapterError::Start {
                name: NAME.into(),
                message: format!(
                    "SIGHTLINE_OPENCODE_URL `{url}` is not an http:// URL (https is not supported; OpenCode serves plain HTTP on loopback)"
                ),
            });
        }
        let timeouts = Timeouts::parse(
            config.opencode_silence_s.as_deref(),
            config.opencode_handshake_s.as_deref(),
        )
        .map_err(|e| AdapterError::Start {
            name: NAME.into(),
            message: e.to_string(),
        })?;
        Ok(Arc::new(OpenCodeAdapter {
            url,
            password: config.opencode_password.clone(),
            timeouts,
        }))
    }

    fn request(&self, path: &str) -> Result<hyper::Request<Empty<Bytes>>, AdapterError> {
        let mut b = hyper::Request::get(format!("{}{path}", self.url))
            .header("accept", "text/event-stream, application/json");
        if let Some(pw) = &self.password {
            b = b.header("authorization", basic_auth(pw));
        }
        b.body(Empty::new())
            .map_err(|e| AdapterError::Other(e.to_string()))
    }

    /// Lists sessions so that those made while disconnected appear too.
    async fn list_sessions(
        &self,
        client: &HttpClient,
        ctx: &AdapterContext,
        state: &mut OcState,
    ) -> Result<(), AdapterError> {
        let get = async {
            let resp = client
                .request(self.request("/session")?)
                .await
                .map_err(|e| AdapterError::Other(e.to_string()))?;
            if !resp.status().is_success() {
                return Err(AdapterError::Other(format!(
                    "GET /session answered {}",
                    resp.status()
                )));
            }
            Ok(resp
                .into_body()
                .collect()
                .await
                .map_err(|e| AdapterError::Other(e.to_string()))?
                .to_bytes())
        };
        let handshake = self.timeouts.handshake;
        let body = tokio::time::timeout(handshake, get).await.map_err(|_| {
            AdapterError::Other(format!(
                "OpenCode at {} did not list its sessions within {} s",
                self.url,
                handshake.as_secs_f64()
            ))
        })??;
        let mut sessions: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
        sessions.sort_by_key(|s| {
            s.get("time")
                .and_then(|t| t.get("created"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        });
        let now = Timestamp::now();
        let mut events = Vec::new();
        for info in sessions {
            let updated = info
                .get("time")
                .and_then(|t| t.get("updated"))
                .map(|v| v.to_string())
                .unwrap_or_default();
            let sid = text(&info, "id").unwrap_or_default();
            let ev = json!({"id": format!("list-{sid}-{updated}"), "type": "session.updated", "properties": {"info": info}});
            if let Some(Ok(e)) = map_event(&ev, None, state, now) {
                events.push(e);
            }
        }
        ctx.emit(events).await
    }

    async fn stream(
        &self,
        client: &HttpClient,
        ctx: &AdapterContext,
        state: &mut OcState,
        following: &mut Following,
    ) -> Result<(), AdapterError> {
        let Timeouts { silence, handshake } = self.timeouts;
        let connect = tokio::time::timeout(handshake, client.request(self.request("/event")?));
        let resp = tokio::select! {
            r = connect => r,
            _ = ctx.stopped() => return Ok(()),
        };
        // No answer in time counts as nothing listening: a hung server is a gone one.
        let resp = resp
            .map_err(|_| {
                AdapterError::Other(format!(
                    "OpenCode at {} accepted the connection but did not answer within {} s (is it stopped or hung?); retrying",
                    self.url,
                    handshake.as_secs_f64()
                ))
            })?
            .map_err(|e| {
                AdapterError::Other(format!(
                    "cannot reach OpenCode at {}: {e}; retrying (start `opencode serve`, or point SIGHTLINE_OPENCODE_URL at it)",
                    self.url
                ))
            })?;
        following.reached = true;
        if resp.status() == hyper::StatusCode::UNAUTHORIZED {
            return Err(AdapterError::Other(
                "OpenCode answered 401: set OPENCODE_SERVER_PASSWORD to its password".into(),
            ));
        }
        if !resp.status().is_success() {
            return Err(AdapterError::Other(format!(
                "GET /event answered {}",
                resp.status()
            )));
        }
        ctx.set_state("running");
        following.connected = true;
        self.list_sessions(client, ctx, state).await?;
        let mut body = resp.into_body();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let frame = tokio::select! {
                f = body.frame() => f,
                _ = ctx.stopped() => return Ok(()),
                // Silence past a few heartbeats: a dead connection or a hung server. Dropping
                // the stream makes the next connect tell which (see `run`).
                _ = tokio::time::sleep(silence) => return Err(AdapterError::Other(format!(
                    "no event or heartbeat from OpenCode at {} for {} s (it sends one every {} s); reconnecting",
                    self.url,
                    silence.as_secs_f64(),
                    HEARTBEAT.as_secs()
                ))),
            };
            let Some(frame) = frame else {
                return Err(AdapterError::Other(
                    "OpenCode closed the event stream".into(),
                ));
            };
            let frame = frame.map_err(|e| AdapterError::Other(e.to_string()))?;
            following.last_frame = Timestamp::now();
            let Some(data) = frame.data_ref() else {
                continue;
            };
            buf.extend_from_slice(data);
            let mut events = Vec::new();
            while let Some(end) = find_frame_end(&buf) {
                let block: Vec<u8> = buf.drain(..end).collect();
                let text_block = String::from_utf8_lossy(&block);
                let data: Vec<&str> = text_block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|l| l.strip_prefix(' ').unwrap_or(l))
                    .collect();
                if data.is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(&data.join("\n")) {
                    Ok(item) => {
                        let (dir, ev) = unwrap(&item);
                        // A panic while mapping one event skips that event, not the stream.
                        let mapped = contain(|| {
                            map_event(&ev, dir.as_deref(), state, Timestamp::now()).transpose()
                        });
                        match mapped {
                            Ok(Some(e)) => events.push(e),
                            Err(m) => ctx.error(redacted(&m)),
                            Ok(None) => ctx.heartbeat(),
                        }
                    }
                    Err(e) => ctx.error(format!("bad event from OpenCode: {e}")),
                }
            }
            following.saw(&events);
            ctx.emit(events).await?;
        }
    }
}

/// What the stream knows of the sessions it saw events for: enough to end them when the
/// server goes away. Bounded: past [`FOLLOWED_MAX`] sessions the quietest are forgotten.
#[derive(Default)]
struct Following {
    sessions: HashMap<String, Followed>,
    /// When the stream last carried anything (a heartbeat included).
    last_frame: Timestamp,
    /// Whether the current attempt got an HTTP answer in time (a server is there).
    reached: bool,
    /// Whether the current attempt got as far as the stream (the server answered 2xx).
    connected: bool,
}

struct Followed {
    run_id: Option<String>,
    parent_session_id: Option<String>,
    /// The last status the stream gave it: working (running, retry, blocked, queued) or not.
    working: bool,
    seen: Timestamp,
}

/// OpenCode servers hold a handful of live sessions; 10,000 is far past that.
const FOLLOWED_MAX: usize = 10_000;

impl Following {
    fn saw(&mut self, events: &[Event]) {
        for e in events {
            let Some(sid) = &e.session_id else { continue };
            if e.status.is_some_and(Status::is_terminal) && e.entity_type == EntityType::Session {
                self.sessions.remove(sid);
                continue;
            }
            if self.sessions.len() >= FOLLOWED_MAX && !self.sessions.contains_key(sid) {
                let oldest = self
                    .sessions
                    .iter()
                    .min_by_key(|(_, f)| f.seen)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.sessions.remove(&k);
                }
            }
            let f = self.sessions.entry(sid.clone()).or_insert(Followed {
                run_id: None,
                parent_session_id: None,
                working: false,
                seen: e.ts,
            });
            f.run_id = f.run_id.take().or_else(|| e.run_id.clone());
            f.parent_session_id = f
                .parent_session_id
                .take()
                .or_else(|| e.parent_session_id.clone());
            f.seen = f.seen.max(e.ts);
            if e.entity_type == EntityType::Session
                && let Some(status) = e.status
            {
                f.working = matches!(
                    status,
                    Status::Running | Status::Retry | Status::Blocked | Status::Queued
                );
            }
        }
    }

    /// The events that end every followed session, and forgets them.
    fn end_all(&mut self, url: &str, why: &str) -> Vec<Event> {
        let now = Timestamp::now();
        let at = self.last_frame;
        let mut out = Vec::new();
        for (sid, f) in self.sessions.drain() {
            let (status, reason) = if f.working {
                (
                    Status::Failed,
                    format!("the OpenCode server at {url} went away while the session was working"),
                )
            } else {
                (
                    Status::Success,
                    format!("the OpenCode server at {url} went away (the session was idle)"),
                )
            };
            let built = Event::builder(
                Source::Opencode,
                format!("liveness_{}", status.as_str()),
                EntityType::Session,
                reason.clone(),
            )
            .event_id(format!(
                "oc-liveness:{}",
                stable_hash(&[sid.as_bytes(), at.millis().to_string().as_bytes()])
            ))
            // Its last sign of life, never before the session's own last event.
            .ts(Timestamp(at.millis().max(f.seen.millis())))
            .session_id(sid.as_str())
            .run_id(f.run_id.as_deref())
            .parent_session_id(f.parent_session_id.as_deref())
            .status(status)
            .severity(if status == Status::Failed {
                Severity::Warn
            } else {
                Severity::Info
            })
            .summary(redacted(why))
            .payload_value(json!({
                "ended_by": "liveness",
                "liveness_rule": "stream",
                "reason": reason,
                "detected_at": now.to_rfc3339(),
                "last_seen": at.to_rfc3339(),
            }))
            .build(now);
            // Made here from ids OpenCode gave: a refusal is a bug worth a log line, not a panic.
            match built {
                Ok(e) => out.push(e),
                Err(e) => tracing::warn!("an OpenCode liveness event was refused: {e}"),
            }
        }
        out
    }
}

/// End (exclusive, including the blank line) of the first complete SSE frame in `buf`.
fn find_frame_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Adapter for OpenCodeAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(self: Arc<Self>, ctx: AdapterContext) -> AdapterFuture {
        Box::pin(async move {
            let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
            let mut state = OcState::default();
            let mut following = Following::default();
            let mut backoff = Duration::from_millis(250);
            loop {
                following.reached = false;
                following.connected = false;
                match self.stream(&client, &ctx, &mut state, &mut following).await {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        // A stream that ran is a new outage: retry soon, and say so once.
                        if following.connected {
                            backoff = Duration::from_millis(250);
                        }
                        // Nothing answers where the server was (refused, or accepted and never
                        // answered within the handshake timeout: stopped or hung): its sessions are over.
                        if !following.reached && !following.sessions.is_empty() {
                            let ended = following.end_all(&self.url, &e.to_string());
                            if let Err(e) = ctx.emit(ended).await {
                                ctx.error(format!("could not end the server's sessions: {e}"));
                            }
                        }
                        ctx.set_state("reconnecting");
                        // An absent server is the normal case before OpenCode starts: count it
                        // once per outage rather than once per attempt.
                        if backoff <= Duration::from_millis(250) {
                            ctx.error(e.to_string());
                        }
                    }
                }
                if ctx.sleep(backoff).await {
                    return Ok(());
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        })
    }
}

/// Replays and tails JSONL files written by the OpenCode plugin while the hub was down (or any
/// file of OpenCode events, one per line). Files in the plugin's own spool directory are
/// consumed: once read to the end they are renamed aside, read once more (for lines appended in
/// between), and deleted, so the plugin's bounded spool never fills up. Other files are only read.
pub struct JsonlAdapter {
    pub paths: Vec<PathBuf>,
    pub spool_dir: PathBuf,
    pub poll: Duration,
}

impl JsonlAdapter {
    pub fn build(config: &AdapterConfig) -> Result<Arc<dyn Adapter>, AdapterError> {
        Ok(Arc::new(JsonlAdapter {
            paths: config.jsonl_paths.clone(),
            spool_dir: config.opencode_spool.clone(),
            poll: config.poll,
        }))
    }

    /// Reads `file` from `offset` to its last whole line; returns the new offset.
    async fn drain(
        &self,
        ctx: &AdapterContext,
        state: &mut OcState,
        file: &std::path::Path,
        mut offset: u64,
        checkpoint_key: Option<&str>,
    ) -> Result<u64, AdapterError> {
        loop {
            let (lines, next) = match crate::tail::read_lines(file, offset) {
                Ok(r) => r,
                Err(e) => {
                    ctx.error(format!("{}: {e}", file.display()));
                    return Ok(offset);
                }
            };
            if next == offset {
                return Ok(offset);
            }
            let now = Timestamp::now();
            let mut events = Vec::new();
            let mut at = offset;
            for line in &lines {
                let line_start = at;
                at += line.len() as u64 + 1;
                if line.trim().is_empty() {
                    continue;
                }
                // A line that is not JSON, does not map or panics while mapping is recorded
                // (an error event, health) and skipped: the offset still moves past it.
                let mapped = contain(|| {
                    let item = serde_json::from_str::<Value>(line)
                        .map_err(|e| format!("bad line: {e}"))?;
                    let (dir, ev) = unwrap(&item);
                    map_event(&ev, dir.as_deref(), state, now).transpose()
                });
                match mapped {
                    Ok(Some(e)) => events.push(e),
                    Ok(None) => {}
                    Err(message) => {
                        events.extend(line_error_event(
                            Source::Opencode,
                            "oc-jsonl",
                            file,
                            line_start,
                            line,
                            &message,
                            now,
                        ));
                        ctx.error(redacted(&format!(
                            "{}: the line at byte {line_start}: {message}",
                            file.display()
                        )));
                    }
                }
            }
            ctx.emit(events).await?;
            offset = next;
            if let Some(key) = checkpoint_key {
                ctx.set_checkpoint(key, json!(offset));
            }
        }
    }

    fn in_spool(&self, file: &std::path::Path) -> bool {
        file.parent() == Some(self.spool_dir.as_path())
    }
}

impl Adapter for JsonlAdapter {
    fn name(&self) -> &'static str {
        JSONL_NAME
    }

    fn run(self: Arc<Self>, ctx: AdapterContext) -> AdapterFuture {
        Box::pin(async move {
            let mut state = OcState::default();
            loop {
                // Consumed spool files left by a crash between rename and delete.
                for done in crate::tail::expand(std::slice::from_ref(&self.spool_dir), Some("done"))
                {
                    self.drain(&ctx, &mut state, &done, 0, None).await?;
                    let _ = std::fs::remove_file(&done);
                }
                for file in crate::tail::expand(&self.paths, Some("jsonl")) {
                    let key = file.to_string_lossy().to_string();
                    let start = ctx.checkpoint(&key).and_then(|v| v.as_u64()).unwrap_or(0);
                    let offset = self
                        .drain(&ctx, &mut state, &file, start, Some(&key))
                        .await?;
                    let at_end = std::fs::metadata(&file).is_ok_and(|m| m.len() == offset);
                    if offset > 0 && at_end && self.in_spool(&file) {
                        let stamp = Timestamp::now().millis();
                        let aside = file.with_extension(format!("{stamp}.done"));
                        if std::fs::rename(&file, &aside).is_ok() {
                            // The plugin opens the path for every append, so later lines go to
                            // a new file; lines appended before the rename are read here.
                            self.drain(&ctx, &mut state, &aside, offset, None).await?;
                            let _ = std::fs::remove_file(&aside);
                            ctx.set_checkpoint(&key, json!(0));
                        }
                    }
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

    #[test]
    fn base64_matches_the_rfc() {
        assert_eq!(base64(b"opencode:pw"), "b3BlbmNvZGU6cHc=");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn child_sessions_join_their_root_run() {
        let mut st = OcState::default();
        let now = Timestamp::now();
        let parent = json!({"id": "evt_1", "type": "session.created", "properties": {"info": {"id": "ses_p", "title": "p"}}});
        let child = json!({"id": "evt_2", "type": "session.created", "properties": {"info": {"id": "ses_c", "parentID": "ses_p", "title": "c"}}});
        let grandchild = json!({"id": "evt_3", "type": "session.created", "properties": {"info": {"id": "ses_g", "parentID": "ses_c"}}});
        map_event(&parent, None, &mut st, now).unwrap().unwrap();
        let c = map_event(&child, None, &mut st, now).unwrap().unwrap();
        let g = map_event(&grandchild, None, &mut st, now).unwrap().unwrap();
        assert_eq!(c.parent_session_id.as_deref(), Some("ses_p"));
        assert_eq!(g.run_id.as_deref(), Some("ses_p"));
        let hb = json!({"type": "server.heartbeat", "properties": {}});
        assert!(map_event(&hb, None, &mut st, now).is_none());
    }

    #[test]
    fn timeouts_default_to_three_heartbeats_and_one() {
        assert_eq!(Timeouts::parse(None, None), Ok(Timeouts::default()));
        assert_eq!(
            Timeouts::parse(Some(" "), Some("")),
            Ok(Timeouts::default())
        );
        assert_eq!(Timeouts::default().silence, Duration::from_secs(30));
        assert_eq!(Timeouts::default().handshake, Duration::from_secs(10));
        let t = Timeouts::parse(Some("25"), Some("2.5")).unwrap();
        assert_eq!(t.silence, Duration::from_secs(25));
        assert_eq!(t.handshake, Duration::from_millis(2500));
        // Two heartbeats are the floor, and allowed.
        assert_eq!(
            Timeouts::parse(Some("20"), None).unwrap().silence,
            SILENCE_MIN
        );
        assert_eq!(SILENCE_MIN, 2 * HEARTBEAT);
    }

    #[test]
    fn a_silence_shorter_than_the_heartbeat_is_refused_naming_the_minimum() {
        let e = Timeouts::parse(Some("19.5"), None).unwrap_err();
        assert!(
            matches!(e, TimeoutError::SilenceBelowHeartbeat { .. }),
            "{e:?}"
        );
        let m = e.to_string();
        assert!(m.contains(SILENCE_VAR) && m.contains("`19.5`"), "{m}");
        assert!(m.contains("at least 20 s"), "{m}");
        let m = Timeouts::parse(Some("thirty"), None)
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("not a number of seconds") && m.contains("=30"),
            "{m}"
        );
        let m = Timeouts::parse(None, Some("0.2")).unwrap_err().to_string();
        assert!(
            m.contains(HANDSHAKE_VAR) && m.contains("use 1 to 3600 s"),
            "{m}"
        );
        assert!(Timeouts::parse(Some("3601"), None).is_err());
        assert!(Timeouts::parse(None, Some("inf")).is_err());
        assert!(Timeouts::parse(Some("NaN"), None).is_err());
    }

    #[test]
    fn a_bad_timeout_is_a_start_up_error_of_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AdapterConfig::from_env(dir.path(), &dir.path().join("db.sqlite"));
        config.opencode_url = "http://127.0.0.1:4096".into();
        config.opencode_silence_s = Some("5".into());
        let Err(e) = OpenCodeAdapter::build(&config) else {
            panic!("a 5 s silence was accepted");
        };
        assert!(matches!(e, AdapterError::Start { .. }), "{e:?}");
        assert!(e.to_string().contains("at least 20 s"), "{e}");
        config.opencode_silence_s = Some("22".into());
        config.opencode_handshake_s = Some("1".into());
        assert!(OpenCodeAdapter::build(&config).is_ok());
    }

    proptest::proptest! {
        /// Any text: parsing never panics, and what it accepts is inside the documented ranges.
        #[test]
        fn any_timeout_text_is_parsed_or_refused_within_the_ranges(
            silence in proptest::option::of(".{0,12}"),
            handshake in proptest::option::of("[-+0-9.eE]{0,12}"),
        ) {
            if let Ok(t) = Timeouts::parse(silence.as_deref(), handshake.as_deref()) {
                proptest::prop_assert!(t.silence >= SILENCE_MIN && t.silence <= TIMEOUT_MAX);
                proptest::prop_assert!(t.handshake >= HANDSHAKE_MIN && t.handshake <= TIMEOUT_MAX);
            }
        }

        /// Every number of seconds in range is taken as written (to the millisecond).
        #[test]
        fn a_number_in_range_is_taken(silence in 20_000u64..=3_600_000, handshake in 1_000u64..=3_600_000) {
            let text = |ms: u64| format!("{}.{:03}", ms / 1000, ms % 1000);
            let t = Timeouts::parse(Some(&text(silence)), Some(&text(handshake))).unwrap();
            proptest::prop_assert_eq!(t.silence.as_millis(), u128::from(silence));
            proptest::prop_assert_eq!(t.handshake.as_millis(), u128::from(handshake));
        }
    }
}
