//! `/openapi.json`: the API described in OpenAPI 3.1, built once from the same vocabularies
//! the code uses (so enum lists can never drift from the schema crate).

use std::sync::LazyLock;

use axum::Json;
use serde_json::{Value, json};
use sightline_schema::{EntityType, Severity, Source, Status};

fn names<T: std::fmt::Display>(all: &[T]) -> Value {
    json!(all.iter().map(|v| v.to_string()).collect::<Vec<_>>())
}

fn filter_params() -> Value {
    let list = |name: &str, desc: &str| json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": "string"}});
    json!([
        list("sources", "comma-separated sources"),
        list("source_events", "comma-separated source event names"),
        list("runs", "comma-separated run ids"),
        list(
            "sessions",
            "comma-separated session ids (matches session or parent session)"
        ),
        list("agents", "comma-separated agents"),
        list("correlations", "comma-separated correlation ids"),
        list("entity_types", "comma-separated entity types"),
        list("statuses", "comma-separated statuses"),
        list("severities", "comma-separated severities"),
        list("since", "RFC 3339, inclusive"),
        list("until", "RFC 3339, exclusive"),
        list("q", "full text: every word must appear"),
    ])
}

fn op(summary: &str, ok: &str, schema: Value) -> Value {
    json!({"summary": summary, "responses": {ok: {"description": "ok", "content": {"application/json": {"schema": schema}}},
        "400": {"$ref": "#/components/responses/Error"}}})
}

fn with_params(mut operation: Value, params: Value) -> Value {
    operation["parameters"] = params;
    operation
}

fn path_param(name: &str, kind: &str) -> Value {
    json!([{"name": name, "in": "path", "required": true, "schema": {"type": kind}}])
}

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let event_ref = json!({"$ref": "#/components/schemas/Event"});
    let events_page = json!({"type": "object", "properties": {"events": {"type": "array", "items": event_ref}, "next_cursor": {"type": ["integer", "null"]}}});
    let ingest = json!({
        "summary": "Ingest one event, an array, or NDJSON. All or nothing; 202 after commit.",
        "requestBody": {"required": true, "content": {
            "application/json": {"schema": {"oneOf": [event_ref, {"type": "array", "items": event_ref}]}},
            "application/x-ndjson": {"schema": {"type": "string"}}}},
        "responses": {
            "202": {"description": "committed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}},
            "400": {"$ref": "#/components/responses/Error"},
            "401": {"$ref": "#/components/responses/Error"},
            "413": {"$ref": "#/components/responses/Error"},
            "503": {"$ref": "#/components/responses/Error"}}
    });
    json!({
        "openapi": "3.1.0",
        "info": {"title": "sightline", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Live, persistent view of agents and processes. See docs/API.md."},
        "paths": {
            "/api/v1/events": {"post": ingest},
            "/telemetry": {"post": {"summary": "Docker-agent TelemetryEvent (camelCase), one or an array",
                "responses": {"202": {"description": "committed"}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}}}},
            "/api/v1/events/stream": {"get": with_params(json!({"summary": "Server-Sent Events: `event: sightline.event`, `id: <seq>`; resume with Last-Event-ID or last_event_id",
                "responses": {"200": {"description": "text/event-stream"}}}), {
                    let mut p = filter_params();
                    p.as_array_mut().unwrap().push(json!({"name": "last_event_id", "in": "query", "schema": {"type": "integer"}}));
                    p.as_array_mut().unwrap().push(json!({"name": "epoch", "in": "query", "schema": {"type": "string"}}));
                    p
                })},
            "/api/v1/health": {"get": op("Service, storage, queue and adapter health", "200", json!({"type": "object"}))},
            "/api/v1/runs": {"get": with_params(op("Runs, newest activity first", "200", json!({"type": "object", "properties": {"runs": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}}, "next_cursor": {"type": ["string", "null"]}}})),
                json!([{"name": "status", "in": "query", "schema": {"type": "string"}}, {"name": "source", "in": "query", "schema": {"type": "string"}},
                       {"name": "agent", "in": "query", "schema": {"type": "string"}}, {"name": "q", "in": "query", "schema": {"type": "string"}},
                       {"name": "since", "in": "query", "schema": {"type": "string"}}, {"name": "until", "in": "query", "schema": {"type": "string"}},
                       {"name": "limit", "in": "query", "schema": {"type": "integer"}}, {"name": "cursor", "in": "query", "schema": {"type": "string"}}]))},
            "/api/v1/runs/{run_id}": {"get": with_params(op("One run with its sessions and aggregates", "200", json!({"type": "object"})), path_param("run_id", "string"))},
            "/api/v1/runs/{run_id}/timeline": {"get": with_params(op("A run's events in seq order", "200", events_page.clone()), path_param("run_id", "string"))},
            "/api/v1/sessions/{session_id}/tree": {"get": with_params(op("A session and its descendants with rolled-up totals", "200", json!({"type": "object"})), path_param("session_id", "string"))},
            "/api/v1/search": {"get": with_params(op("Events matching a filter", "200", events_page), filter_params())},
            "/api/v1/events/{seq}": {"get": with_params(op("One event", "200", event_ref), path_param("seq", "integer"))},
            "/api/v1/stats": {"get": op("Totals, error rate, events per minute, active sessions, cost", "200", json!({"type": "object"}))},
            "/api/v1/incidents": {"get": op("Failures clustered by run, correlation and time window", "200", json!({"type": "object"}))},
            "/api/v1/export": {"get": with_params(op("Events of a run or a filter as json, ndjson, csv or yaml", "200", json!({"type": "string"})), {
                let mut p = filter_params();
                p.as_array_mut().unwrap().push(json!({"name": "run_id", "in": "query", "schema": {"type": "string"}}));
                p.as_array_mut().unwrap().push(json!({"name": "format", "in": "query", "schema": {"enum": ["json", "ndjson", "csv", "yaml"]}}));
                p
            })},
            "/api/v1/import": {"post": op("Import what export gives (format query parameter)", "200", json!({"type": "object"}))},
            "/api/v1/processes/{run_id}/control": {
                "get": with_params(op("Long-poll a process's tracing settings", "200", json!({"type": "object"})), path_param("run_id", "string")),
                "put": with_params(op("Change a process's tracing settings", "200", json!({"type": "object"})), path_param("run_id", "string"))},
            "/api/v1/hooks/claude": {"post": op("A Claude Code hook payload exactly as its `http` hook type posts it", "202", json!({"type": "object"}))},
            "/api/v1/hooks/opencode": {"post": op("An OpenCode bus event forwarded by the sightline plugin", "202", json!({"type": "object"}))},
            "/v1/logs": {"post": op("OTLP/HTTP logs (protobuf or JSON, optionally gzip)", "200", json!({"type": "object"}))},
            "/v1/traces": {"post": op("OTLP/HTTP traces (protobuf or JSON, optionally gzip)", "200", json!({"type": "object"}))},
            "/v1/metrics": {"post": op("OTLP/HTTP metrics (protobuf or JSON, optionally gzip)", "200", json!({"type": "object"}))},
            "/ws": {"get": {"summary": "WebSocket: auth, subscribe {id, filter, since}, unsubscribe, publish, ping (docs/PROTOCOL.md)", "responses": {"101": {"description": "switching protocols"}}}},
            "/ws/workflow/{id}": {"get": with_params(json!({"summary": "A workflow execution's updates: {type: status|log|progress|error|complete, timestamp, data}", "responses": {"101": {"description": "switching protocols"}}}), path_param("id", "string"))},
            "/api/v1/workflows/{id}/updates": {"post": with_params(op("Workflow updates (status, log, progress, error, complete)", "202", json!({"type": "object"})), path_param("id", "string"))},
            "/api/v1/plugins": {"get": op("Configured plugins", "200", json!({"type": "object"}))},
            "/api/v1/plugins/{name}/invoke": {"post": with_params(op("Send selected events to a plugin (JSON-RPC 2.0) and return its answer", "200", json!({"type": "object"})), path_param("name", "string"))},
            "/api/v1/audit": {"get": op("Audit log: authentication failures and admin actions (admin)", "200", json!({"type": "object"}))},
            "/api/v1/shutdown": {"post": op("Stop the hub gracefully (drains the queue)", "202", json!({"type": "object"}))},
        },
        "components": {
            "responses": {"Error": {"description": "error", "content": {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "object",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}}}}}},
            "schemas": {
                "Accepted": {"type": "object", "properties": {"accepted": {"type": "integer"}, "seqs": {"type": "array", "items": {"type": "integer"}}, "duplicates": {"type": "integer"}}},
                "Run": {"type": "object"},
                "Event": {"type": "object", "required": ["source", "source_event", "entity_type", "title"], "additionalProperties": false, "properties": {
                    "seq": {"type": "integer", "readOnly": true},
                    "event_id": {"type": "string"},
                    "ts": {"type": "string", "format": "date-time"},
                    "source": {"enum": names(Source::ALL)},
                    "source_event": {"type": "string"},
                    "run_id": {"type": ["string", "null"]},
                    "session_id": {"type": ["string", "null"]},
                    "parent_session_id": {"type": ["string", "null"]},
                    "agent": {"type": ["string", "null"]},
                    "entity_type": {"enum": names(EntityType::ALL)},
                    "entity_id": {"type": ["string", "null"]},
                    "status": {"enum": names(Status::ALL)},
                    "severity": {"enum": names(Severity::ALL)},
                    "title": {"type": "string"},
                    "summary": {"type": ["string", "null"]},
                    "duration_ms": {"type": ["number", "null"]},
                    "metrics": {"type": ["object", "null"], "additionalProperties": {"type": "number"}},
                    "host": {"type": ["string", "null"]},
                    "pid": {"type": ["integer", "null"]},
                    "thread_id": {"type": ["integer", "null"]},
                    "correlation_id": {"type": ["string", "null"]},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "payload": {"type": "object"}}}
            }
        }
    })
});

pub async fn openapi() -> Json<Value> {
    Json(DOCUMENT.clone())
}
