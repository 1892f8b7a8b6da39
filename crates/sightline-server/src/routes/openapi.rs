//! `/openapi.json`: the API described in OpenAPI 3.1, derived from the route table (paths,
//! methods, roles, parameters, bodies) and the Rust types (schemas), built once.
//!
//! Nothing here lists a route: a route missing from this document is a route missing from the
//! table, which cannot be mounted either.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use crate::hub::Hub;
use crate::routes::schemas;
use crate::routes::table::{self, Route, Shape};

fn error_ref() -> Value {
    json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn content(shape: &Shape) -> Option<Value> {
    match shape {
        Shape::None | Shape::Upgrade => None,
        Shape::Json(f) => Some(json!({"application/json": {"schema": f()}})),
        Shape::Typed(list) => Some(Value::Object(
            list.iter()
                .map(|(ct, f)| (ct.to_string(), json!({"schema": f()})))
                .collect(),
        )),
        Shape::EventStream => Some(json!({"text/event-stream": {"schema": {"type": "string"}}})),
        Shape::Text(what) => {
            Some(json!({"text/plain": {"schema": {"type": "string", "description": what}}}))
        }
    }
}

/// The schema of a parameter's kind (`table::Param::kind`).
fn param_schema(kind: &str) -> Value {
    match kind {
        "integer" => json!({"type": "integer", "minimum": 0}),
        words if words.contains('|') => {
            json!({"type": "string", "enum": words.split('|').collect::<Vec<_>>()})
        }
        other => json!({"type": other}),
    }
}

/// One operation of the document.
pub fn operation(route: &Route) -> Value {
    let mut parameters: Vec<Value> = table::path_params(route.path)
        .into_iter()
        .map(|name| match route.path_kinds.iter().find(|p| p.name == name) {
            Some(p) => json!({"name": name, "in": "path", "required": true,
                "description": p.description, "schema": param_schema(p.kind)}),
            None => json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}),
        })
        .collect();
    for group in route.query {
        for p in *group {
            parameters.push(json!({"name": p.name, "in": "query", "required": false,
                "description": p.description, "schema": param_schema(p.kind)}));
        }
    }
    let mut ok = json!({"description": "ok"});
    if let Some(c) = content(&route.response) {
        ok["content"] = c;
    }
    let mut responses = Map::new();
    responses.insert(route.status.to_string(), ok);
    for code in ["400", "401", "403", "413", "429", "503"] {
        responses.insert(code.into(), error_ref());
    }
    let mut op = json!({
        "summary": route.summary,
        "parameters": parameters,
        "responses": responses,
        "x-sightline-role": table::describe(route.access),
    });
    if let Some(c) = content(&route.request) {
        op["requestBody"] = json!({"required": true, "content": c});
    }
    op
}

/// The whole document for these routes.
pub fn document(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for r in routes {
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.as_str().to_ascii_lowercase()] = operation(r);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "sightline", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Live, persistent view of agents and processes. See docs/API.md."},
        "paths": paths,
        "components": {"schemas": schemas::components()},
    })
}

/// Built on each request (it is small and rarely asked for), so a hub with other endpoint
/// sources in the same process is never described by another's document.
pub async fn openapi(State(hub): State<Hub>) -> Json<Value> {
    Json(document(&table::all(hub.endpoints())))
}
