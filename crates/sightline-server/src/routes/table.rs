//! The route table: every route of the hub, once, with its method, path, the role it needs and
//! what it takes and answers. The router, the access check (`auth::guard`, through
//! [`access_map`]), the OpenAPI document (`routes::openapi`) and the API reference are all
//! derived from it, so they cannot drift apart.
//!
//! To add a route: one [`Route`] here (or an endpoint source in the sources crate, which the
//! table takes in through [`endpoint_routes`]). This module must never leave a mounted route out
//! of the access map: both come from the same list.

use std::collections::HashMap;
use std::sync::Arc;

use axum::routing::{MethodRouter, get, post, put};
use serde_json::{Value, json};
use sightline_core::{Access, EndpointSpec, HttpSource, Method, Role, SchemaFn};

use crate::hub::Hub;
use crate::routes::{
    admin, control, events, export, metrics, openapi, plugins, query, sessions, stream, workflow,
    ws,
};

/// A query or path parameter a route reads.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub description: &'static str,
    /// `string`, `integer` (at least 0: every count, limit and seq), `number`, `boolean`, or
    /// `a|b|c` for one of these words.
    pub kind: &'static str,
}

const fn param(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        description,
        kind: "string",
    }
}

/// The filter every stream, search and export reads (the same names as the WebSocket filter).
pub const FILTER: &[Param] = &[
    param("sources", "comma-separated sources"),
    param("source_events", "comma-separated source event names"),
    param("runs", "comma-separated run ids"),
    param(
        "sessions",
        "comma-separated session ids (matches session or parent session)",
    ),
    param("agents", "comma-separated agents"),
    param("correlations", "comma-separated correlation ids"),
    param("entity_types", "comma-separated entity types"),
    param("statuses", "comma-separated statuses"),
    param("severities", "comma-separated severities"),
    param("since", "RFC 3339, inclusive"),
    param("until", "RFC 3339, exclusive"),
    param("q", "full text: every word must appear"),
];

/// What a route's body or answer looks like.
#[derive(Clone, Copy)]
pub enum Shape {
    /// No body.
    None,
    /// JSON of this schema.
    Json(SchemaFn),
    /// One schema per content type.
    Typed(&'static [(&'static str, SchemaFn)]),
    /// The connection switches protocols (WebSocket).
    Upgrade,
    /// A stream of Server-Sent Events.
    EventStream,
    /// Text in the format the request asked for.
    Text(&'static str),
}

/// One route.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    pub query: &'static [&'static [Param]],
    /// The path's parameters that are not text (the rest are strings).
    pub path_kinds: &'static [Param],
    pub request: Shape,
    pub status: u16,
    pub response: Shape,
    handler: MethodRouter<Hub>,
}

impl Route {
    pub fn handler(&self) -> MethodRouter<Hub> {
        self.handler.clone()
    }
}

struct Builder {
    method: Method,
    path: &'static str,
    access: Access,
    summary: &'static str,
    query: &'static [&'static [Param]],
    path_kinds: &'static [Param],
    request: Shape,
    status: u16,
    response: Shape,
}

fn route(method: Method, path: &'static str, access: Access, summary: &'static str) -> Builder {
    Builder {
        method,
        path,
        access,
        summary,
        query: &[],
        path_kinds: &[],
        request: Shape::None,
        status: 200,
        response: Shape::None,
    }
}

impl Builder {
    fn query(mut self, query: &'static [&'static [Param]]) -> Self {
        self.query = query;
        self
    }
    fn path_kinds(mut self, params: &'static [Param]) -> Self {
        self.path_kinds = params;
        self
    }
    fn request(mut self, shape: Shape) -> Self {
        self.request = shape;
        self
    }
    fn answers(mut self, status: u16, shape: Shape) -> Self {
        self.status = status;
        self.response = shape;
        self
    }
    fn to(self, handler: MethodRouter<Hub>) -> Route {
        Route {
            method: self.method,
            path: self.path,
            access: self.access,
            summary: self.summary,
            query: self.query,
            path_kinds: self.path_kinds,
            request: self.request,
            status: self.status,
            response: self.response,
            handler,
        }
    }
}

use crate::routes::schemas as s;

const READ: Access = Access::Role(Role::Read);
const INGEST: Access = Access::Role(Role::Ingest);
const ADMIN: Access = Access::Role(Role::Admin);

const RUNS_QUERY: &[Param] = &[
    param("status", "comma-separated statuses"),
    param("source", "comma-separated sources"),
    param("agent", "an agent name"),
    param(
        "q",
        "text in the run's title, agent or id, or in its prompts and working directory",
    ),
    param("since", "RFC 3339: runs active at or after"),
    param("until", "RFC 3339: runs active before"),
    Param {
        name: "limit",
        description: "runs per page",
        kind: "integer",
    },
    param("cursor", "the next_cursor of the previous page"),
    param(
        "project",
        "only runs in this project (a page is short only at the end, or after 2,000 runs looked at)",
    ),
];
const LIVE_QUERY: &[Param] = &[
    Param {
        name: "recent_s",
        description: "also list sessions active in the last this many seconds, ended or not (default 600, at most a week)",
        kind: "integer",
    },
    param("run", "only this run's sessions, whatever their age"),
];
const PAGE_QUERY: &[Param] = &[
    Param {
        name: "after",
        description: "seq cursor: events after this one",
        kind: "integer",
    },
    Param {
        name: "limit",
        description: "events per page",
        kind: "integer",
    },
];
const STREAM_QUERY: &[Param] = &[
    Param {
        name: "last_event_id",
        description: "resume after this seq (or the Last-Event-ID header)",
        kind: "integer",
    },
    param("epoch", "the database epoch the cursor came from"),
];
const EXPORT_QUERY: &[Param] = &[
    param("run_id", "one run"),
    param("format", "json, ndjson, csv or yaml"),
];
const IMPORT_QUERY: &[Param] = &[Param {
    name: "format",
    description: "what the body is (default: from its Content-Type, else json)",
    kind: "json|ndjson|jsonl|csv|yaml|yml",
}];
const CONTROL_QUERY: &[Param] = &[
    Param {
        name: "version",
        description: "the version the agent has",
        kind: "integer",
    },
    Param {
        name: "wait_s",
        description: "wait up to this many seconds (≤ 30) for another version",
        kind: "number",
    },
];
const AUDIT_QUERY: &[Param] = &[
    Param {
        name: "after",
        description: "entries after this id",
        kind: "integer",
    },
    param(
        "kind",
        "auth_failed, forbidden, host_refused, origin_refused, admin_action",
    ),
    Param {
        name: "limit",
        description: "entries per page (≤ 10,000)",
        kind: "integer",
    },
];
const WORKFLOW_QUERY: &[Param] = &[Param {
    name: "since",
    description: "resume after this seq",
    kind: "integer",
}];

const WORKFLOWS_QUERY: &[Param] = &[
    Param {
        name: "limit",
        description: "workflows per page (1 to 200, default 100)",
        kind: "integer",
    },
    param("cursor", "the next_cursor of the previous page"),
];

const COUNT_QUERY: &[Param] = &[Param {
    name: "before",
    description: "count only events below this seq (a page's position)",
    kind: "integer",
}];
const GROUPS_QUERY: &[Param] = &[
    param("since", "RFC 3339 (default: a day ago)"),
    Param {
        name: "limit",
        description: "groups (≤ 500, default 200)",
        kind: "integer",
    },
];
const SERIES_QUERY: &[Param] = &[
    param(
        "since",
        "RFC 3339, inclusive (default: an hour before until)",
    ),
    param("until", "RFC 3339, exclusive (default: now)"),
    Param {
        name: "bucket_s",
        description: "bucket width in seconds, rounded up to whole minutes (default 60)",
        kind: "integer",
    },
    param(
        "by",
        "total, source, entity_type, severity, agent, run, model or project",
    ),
];

/// The hub's own routes (the endpoint sources come from [`endpoint_routes`]).
pub fn core_routes() -> Vec<Route> {
    use Method::*;
    vec![
        route(Post, "/api/v1/events", INGEST, "Ingest one event, an array, or NDJSON. All or nothing; 202 after commit.")
            .request(Shape::Typed(&[("application/json", s::ingest_body), ("application/x-ndjson", s::ndjson)]))
            .answers(202, Shape::Json(s::accepted))
            .to(post(events::post_events)),
        route(Get, "/api/v1/events/stream", READ, "Server-Sent Events: `event: sightline.event`, `id: <seq>`; resume with Last-Event-ID or last_event_id")
            .query(&[FILTER, STREAM_QUERY])
            .answers(200, Shape::EventStream)
            .to(get(stream::sse)),
        route(Get, "/api/v1/events/{seq}", READ, "One event")
            .path_kinds(&[Param {
                name: "seq",
                description: "the event's seq",
                kind: "integer",
            }])
            .answers(200, Shape::Json(s::event))
            .to(get(query::event)),
        route(Get, "/api/v1/health", Access::Public, "Service, storage, queue and per-source health")
            .answers(200, Shape::Json(s::health))
            .to(get(query::health)),
        route(Get, "/api/v1/runs", READ, "Runs, newest activity first")
            .query(&[RUNS_QUERY])
            .answers(200, Shape::Json(s::runs_page))
            .to(get(query::runs)),
        route(Get, "/api/v1/runs/{run_id}", READ, "One run with its sessions and aggregates")
            .answers(200, Shape::Json(s::run_detail))
            .to(get(query::run)),
        route(Get, "/api/v1/runs/{run_id}/timeline", READ, "A run's events in seq order")
            .query(&[PAGE_QUERY])
            .answers(200, Shape::Json(s::events_page))
            .to(get(query::timeline)),
        route(Get, "/api/v1/sessions/{session_id}/tree", READ, "A session and its descendants with rolled-up totals")
            .answers(200, Shape::Json(s::session_tree))
            .to(get(query::session_tree)),
        route(Get, "/api/v1/workflows", READ, "Workflow executions, newest activity first, with their steps, attempts and one progress figure (steps done / steps known)")
            .query(&[WORKFLOWS_QUERY])
            .answers(200, Shape::Json(s::workflows_page))
            .to(get(workflow::list)),
        route(Get, "/api/v1/workflows/{id}", READ, "One workflow execution with its steps, each attempt, and its progress")
            .answers(200, Shape::Json(s::workflow))
            .to(get(workflow::one)),
        route(Get, "/api/v1/live", READ, "The active and waiting sessions (and their ancestors) from the hub's derived rows, with why each waits")
            .query(&[LIVE_QUERY])
            .answers(200, Shape::Json(s::live_state))
            .to(get(sessions::live_state)),
        route(Get, "/api/v1/agents", READ, "The distinct agents and sources of the newest 50,000 runs and sessions (for filters)")
            .answers(200, Shape::Json(s::agents_seen))
            .to(get(sessions::agents)),
        route(Get, "/api/v1/sessions/{session_id}/conversation", READ, "One agent session's prompts, answers, tool calls and permission prompts in seq order")
            .query(&[PAGE_QUERY])
            .answers(200, Shape::Json(s::events_page))
            .to(get(sessions::conversation)),
        route(Get, "/api/v1/search", READ, "Events matching a filter, newest first")
            .query(&[FILTER, PAGE_QUERY])
            .answers(200, Shape::Json(s::events_page))
            .to(get(query::search)),
        route(Get, "/api/v1/stats", READ, "Totals, error rate, events per minute, active sessions, cost")
            .query(&[FILTER])
            .answers(200, Shape::Json(s::stats))
            .to(get(query::stats)),
        route(Get, "/api/v1/incidents", READ, "Failures clustered by run, correlation and time window")
            .query(&[FILTER])
            .answers(200, Shape::Json(s::incidents))
            .to(get(query::incidents)),
        route(Get, "/api/v1/count", READ, "How many events a filter matches: exact, or a lower bound marked exact=false past 1,000,000")
            .query(&[FILTER, COUNT_QUERY])
            .answers(200, Shape::Json(s::count))
            .to(get(crate::routes::insight::count)),
        route(Get, "/api/v1/series", READ, "Events, errors, tokens and cost per time bucket, by source, entity_type, severity, agent, run or model (at most 1,440 buckets, 12 lines)")
            .query(&[SERIES_QUERY])
            .answers(200, Shape::Json(s::series))
            .to(get(crate::routes::insight::series)),
        route(Get, "/api/v1/incidents/groups", READ, "Failures grouped by fingerprint (exception type, normalised message and location; tool and error class), with count, first and last seen and the runs affected")
            .query(&[GROUPS_QUERY])
            .answers(200, Shape::Json(s::incident_groups))
            .to(get(crate::routes::insight::incident_groups)),
        route(Get, "/api/v1/settings", ADMIN, "What the hub runs with: retention, the config file changes go to, tokens (names and roles, never values), sources and their health")
            .answers(200, Shape::Json(s::settings_view))
            .to(get(crate::routes::settings::get_settings)),
        route(Put, "/api/v1/settings/retention", ADMIN, "Change how long events are kept (the next sweep uses it); written to the config file")
            .request(Shape::Json(s::retention_body))
            .answers(200, Shape::Json(s::settings_change))
            .to(put(crate::routes::settings::put_retention)),
        route(Post, "/api/v1/tokens", ADMIN, "Create a token with roles; its value is in this answer only; written to the config file")
            .request(Shape::Json(s::new_token))
            .answers(201, Shape::Json(s::created_token))
            .to(post(crate::routes::settings::create_token)),
        route(Delete, "/api/v1/tokens/{name}", ADMIN, "Revoke a token by name (at once); removed from the config file")
            .answers(200, Shape::Json(s::revoked_token))
            .to(axum::routing::delete(crate::routes::settings::revoke_token)),
        route(Get, "/api/v1/settings/sources", ADMIN, "Every configurable background source: its settings (URL or paths), whether it runs, its health")
            .answers(200, Shape::Json(s::sources_view))
            .to(get(crate::routes::settings::get_sources)),
        route(Put, "/api/v1/settings/sources/{name}", ADMIN, "Start, stop or reconfigure one background source at once (a bad path or URL is refused, nothing changed); written to the config file")
            .request(Shape::Json(s::source_change))
            .answers(200, Shape::Json(s::source_changed))
            .to(put(crate::routes::settings::put_source)),
        route(Get, "/api/v1/settings/notify", ADMIN, "The notification rules (waiting, failure, cost over a budget): targets and rate limit of each, and whether desktop notifications work here")
            .answers(200, Shape::Json(s::notify_view))
            .to(get(crate::routes::settings::get_notify)),
        route(Put, "/api/v1/settings/notify", ADMIN, "Replace the notification rules; the next event uses them; written to the config file")
            .request(Shape::Json(s::notify_rules))
            .answers(200, Shape::Json(s::notify_changed))
            .to(put(crate::routes::settings::put_notify)),
        route(Get, "/api/v1/export", READ, "Events of a run or a filter as json, ndjson, csv or yaml")
            .query(&[FILTER, EXPORT_QUERY])
            .answers(200, Shape::Text("application/json, application/x-ndjson, text/csv or application/yaml"))
            .to(get(export::export)),
        route(Post, "/api/v1/import", ADMIN, "Import what export gives (format query parameter), without loss")
            .query(&[IMPORT_QUERY])
            .request(Shape::Typed(&[
                ("application/json", s::import_json),
                ("application/x-ndjson", s::ndjson),
                ("text/csv", s::csv),
                ("application/yaml", s::yaml),
            ]))
            .answers(200, Shape::Json(s::imported))
            .to(post(export::import)),
        route(Get, "/api/v1/processes/{run_id}/control", Access::Either(Role::Read, Role::Ingest), "Long-poll a traced process's tracing settings")
            .query(&[CONTROL_QUERY])
            .answers(200, Shape::Json(s::control))
            .to(get(control::get_control)),
        route(Put, "/api/v1/processes/{run_id}/control", ADMIN, "Change a traced process's tracing settings")
            .request(Shape::Json(s::control_settings))
            .answers(200, Shape::Json(s::control))
            .to(put(control::put_control)),
        route(Post, "/api/v1/shutdown", ADMIN, "Stop the hub gracefully (drains the queue)")
            .answers(202, Shape::Json(s::stopping))
            .to(post(admin::shutdown)),
        route(Get, "/api/v1/plugins", READ, "Configured analyzer plugins (names and kinds)")
            .answers(200, Shape::Json(s::plugin_list))
            .to(get(plugins::list)),
        route(Post, "/api/v1/plugins/{name}/invoke", READ, "Send stored events (by seq or run) to a plugin (JSON-RPC 2.0) and return its answer")
            .request(Shape::Json(s::plugin_invoke))
            .answers(200, Shape::Json(s::plugin_answer))
            .to(post(plugins::invoke)),
        route(Get, "/api/v1/audit", ADMIN, "Audit log: authentication failures, refusals and admin actions")
            .query(&[AUDIT_QUERY])
            .answers(200, Shape::Json(s::audit))
            .to(get(admin::audit_log)),
        route(Get, "/metrics", READ, "The hub's metrics in the Prometheus text format (docs/API.md lists them)")
            .answers(200, Shape::Text(metrics::CONTENT_TYPE))
            .to(get(metrics::metrics)),
        route(Get, "/openapi.json", Access::Public, "This document")
            .answers(200, Shape::Json(s::any_object))
            .to(get(openapi::openapi)),
        route(Get, "/ws", Access::Socket, "WebSocket: auth, subscribe {id, filter, since}, unsubscribe, publish, workflow_update, ping (docs/PROTOCOL.md)")
            .answers(101, Shape::Upgrade)
            .to(get(ws::upgrade)),
        route(Get, "/ws/workflow/{id}", READ, "A workflow execution's updates: {type: status|log|progress|error|complete, timestamp, data}")
            .query(&[WORKFLOW_QUERY])
            .answers(101, Shape::Upgrade)
            .to(get(workflow::stream)),
    ]
}

/// The routes of the endpoint sources, described by their own specs.
pub fn endpoint_routes(endpoints: &[Arc<dyn HttpSource>]) -> Vec<Route> {
    endpoints
        .iter()
        .map(|source| {
            let spec: &EndpointSpec = source.spec();
            Route {
                method: spec.method,
                path: spec.path,
                access: Access::Role(spec.role),
                summary: spec.summary,
                query: &[],
                path_kinds: &[],
                request: Shape::Typed(spec.request),
                status: spec.reply_status,
                response: Shape::Json(spec.reply),
                handler: crate::routes::sources::method_router(source.clone()),
            }
        })
        .collect()
}

/// Every route: the hub's own and the endpoint sources'.
pub fn all(endpoints: &[Arc<dyn HttpSource>]) -> Vec<Route> {
    let mut routes = core_routes();
    routes.extend(endpoint_routes(endpoints));
    routes
}

/// path → (method, access) pairs, for the auth layer.
pub fn access_map(
    endpoints: &[Arc<dyn HttpSource>],
) -> HashMap<&'static str, Vec<(Method, Access)>> {
    let mut map: HashMap<&'static str, Vec<(Method, Access)>> = HashMap::new();
    for r in all(endpoints) {
        map.entry(r.path).or_default().push((r.method, r.access));
    }
    map
}

/// The route's path parameters (`{run_id}` → `run_id`).
pub fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// The role a route needs, as the API reference writes it.
pub fn describe(access: Access) -> Value {
    json!(access.describe())
}
