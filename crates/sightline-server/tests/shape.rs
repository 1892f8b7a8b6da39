//! The hub's shape, checked from outside: the route table is the one source of routes, access
//! and the OpenAPI document; and every ingest path (HTTP, WebSocket publish, an endpoint
//! source, a background source) meets a full write queue the same way and is counted the same
//! way.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use sightline_core::{Access, Method, Role};
use sightline_schema::{Timestamp, parse_event};
use sightline_server::routes::table::{self, Shape};

const READ_TOKEN: &str = "read-token-0123";
const INGEST_TOKEN: &str = "ingest-token-0123";

fn routes() -> Vec<table::Route> {
    table::all(&endpoints())
}

/// A concrete URL path for a route path (`{run_id}` → `x`).
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "x" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

fn call(hub: &TestHub, method: Method, path: &str, token: Option<&str>) -> u16 {
    let url = format!("{}{}", hub.url, concrete(path));
    let agent = agent();
    let res = match method {
        Method::Get => {
            let mut r = agent.get(&url);
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            r.call()
        }
        Method::Post | Method::Put | Method::Delete => {
            let mut r = match method {
                Method::Post => agent.post(&url),
                Method::Put => agent.put(&url),
                _ => agent.delete(&url).force_send_body(),
            };
            r = r.header("Content-Type", "application/json");
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            r.send("{}")
        }
    };
    res.unwrap().status().as_u16()
}

fn allows(access: Access, role: Role) -> bool {
    match access {
        Access::Public | Access::Socket => true,
        Access::Role(r) => r == role,
        Access::Either(a, b) => a == role || b == role,
    }
}

/// Routes that are safe to call with an allowed token here: no endless stream, no upgrade, no
/// shutdown (the point is only that access was granted).
fn safe_to_call(r: &table::Route) -> bool {
    !matches!(r.response, Shape::EventStream | Shape::Upgrade) && r.path != "/api/v1/shutdown"
}

#[test]
fn every_route_is_in_the_table_and_every_access_decision_comes_from_it() {
    let hub = TestHub::start_with(|_, settings| {
        settings.token = Some("owner-token-0123".into());
        let t = &mut settings.security.tokens;
        t.add(READ_TOKEN, &[Role::Read], "reader").unwrap();
        t.add(INGEST_TOKEN, &[Role::Ingest], "producer").unwrap();
        // This test makes many requests with wrong tokens on purpose.
        settings.security.auth_failures_per_minute = 100_000;
    });
    let routes = routes();
    assert!(
        routes.len() >= 29,
        "the table lists {} routes",
        routes.len()
    );
    let mut seen = std::collections::HashSet::new();
    for r in &routes {
        assert!(
            seen.insert((r.method, r.path)),
            "{} {} is listed twice",
            r.method.as_str(),
            r.path
        );
        // No token: every route that needs a role answers 401 before any handler runs.
        let anonymous = call(&hub, r.method, r.path, None);
        match r.access {
            Access::Role(_) | Access::Either(..) => assert_eq!(
                anonymous,
                401,
                "{} {} needs {} but answered {anonymous} without a token",
                r.method.as_str(),
                r.path,
                r.access.describe()
            ),
            Access::Public | Access::Socket => {
                assert_ne!(anonymous, 401, "{} {}", r.method.as_str(), r.path)
            }
        }
        for (token, role) in [(READ_TOKEN, Role::Read), (INGEST_TOKEN, Role::Ingest)] {
            if allows(r.access, role) {
                if safe_to_call(r) {
                    let status = call(&hub, r.method, r.path, Some(token));
                    assert!(
                        status != 401 && status != 403,
                        "{} {} allows {} but answered {status}",
                        r.method.as_str(),
                        r.path,
                        role.as_str()
                    );
                }
            } else {
                let status = call(&hub, r.method, r.path, Some(token));
                assert_eq!(
                    status,
                    403,
                    "{} {} does not allow {} but answered {status}",
                    r.method.as_str(),
                    r.path,
                    role.as_str()
                );
            }
        }
    }
    // The router serves exactly the table: a path that is not in it is no API route.
    assert_eq!(
        call(&hub, Method::Get, "/api/v1/no-such-route", Some(READ_TOKEN)),
        404
    );
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("a component ref");
            doc["components"]["schemas"]
                .get(name)
                .unwrap_or_else(|| panic!("{r} is not in components"))
        }
        None => schema,
    }
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[test]
fn openapi_lists_every_route_with_its_role_and_real_schemas() {
    let hub = TestHub::start();
    let doc = hub.get("/openapi.json");
    for r in routes() {
        let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{} {} is missing",
            r.method.as_str(),
            r.path
        );
        assert_eq!(
            op["x-sightline-role"],
            json!(r.access.describe()),
            "{}",
            r.path
        );
        for p in table::path_params(r.path) {
            assert!(
                op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x["name"] == p && x["in"] == "path"),
                "{} lacks its path parameter {p}",
                r.path
            );
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in &all {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{r} does not resolve"
        );
    }
    // The answers users script against are described field by field, not as a bare object.
    let ok = |path: &str, method: &str, status: &str| -> Value {
        let schema = &doc["paths"][path][method]["responses"][status]["content"]["application/json"]
            ["schema"];
        resolve(&doc, schema).clone()
    };
    let props = |v: &Value| -> Vec<String> {
        v["properties"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let runs = ok("/api/v1/runs", "get", "200");
    assert!(props(&runs).contains(&"runs".to_string()));
    let run = resolve(&doc, &runs["properties"]["runs"]["items"]).clone();
    for f in ["run_id", "status", "cost_usd", "started_at", "error_count"] {
        assert!(props(&run).contains(&f.to_string()), "Run lacks {f}");
    }
    let detail = ok("/api/v1/runs/{run_id}", "get", "200");
    let session = resolve(&doc, &detail["properties"]["sessions"]["items"]).clone();
    for f in ["session_id", "parent_session_id", "total_cost_usd"] {
        assert!(
            props(&session).contains(&f.to_string()),
            "Session lacks {f}"
        );
    }
    let health = ok("/api/v1/health", "get", "200");
    for f in ["epoch", "head_seq", "storage", "queue", "adapters"] {
        assert!(props(&health).contains(&f.to_string()), "health lacks {f}");
    }
    let source = resolve(&doc, &health["properties"]["adapters"]["items"]).clone();
    for f in ["name", "state", "refused_full", "errors"] {
        assert!(
            props(&source).contains(&f.to_string()),
            "source health lacks {f}"
        );
    }
    let stats = ok("/api/v1/stats", "get", "200");
    for f in ["total_events", "error_rate", "total_cost_usd", "head_seq"] {
        assert!(props(&stats).contains(&f.to_string()), "stats lacks {f}");
    }
    let audit = ok("/api/v1/audit", "get", "200");
    let entry = resolve(&doc, &audit["properties"]["entries"]["items"]).clone();
    assert!(
        props(&entry).contains(&"kind".to_string()),
        "audit entry: {entry}"
    );
    let plugins = ok("/api/v1/plugins", "get", "200");
    assert!(props(&plugins).contains(&"plugins".to_string()));
    let event = ok("/api/v1/events/{seq}", "get", "200");
    for f in ["seq", "event_id", "source", "entity_type", "payload"] {
        assert!(props(&event).contains(&f.to_string()), "event lacks {f}");
    }
}

fn health_of(hub: &TestHub, name: &str) -> Value {
    hub.adapter_health(name)
        .unwrap_or_else(|| panic!("no health entry `{name}`"))
}

#[test]
fn every_ingest_path_meets_a_full_queue_the_same_way() {
    let (hub, gate) = TestHub::start_gated(50);
    let events_url = format!("{}/api/v1/events", hub.url);
    // The writer takes the first batch and holds it; 40 more fill the queue.
    let first = {
        let url = events_url.clone();
        std::thread::spawn(move || post(&url, "application/json", event("q", 0).to_string()))
    };
    // Held: committed (the head moved) but not acknowledged. Then the filler, queued behind it
    // (fixed pauses let the writer take both at once on a loaded machine).
    let store = hub.core().store().clone();
    wait_until(
        "the writer to hold the first event",
        Duration::from_secs(20),
        || store.head_seq() == 1,
    );
    let filler = {
        let url = events_url.clone();
        let fill = ndjson(&(1..=40).map(|i| event("q", i)).collect::<Vec<_>>());
        std::thread::spawn(move || post(&url, "application/x-ndjson", fill))
    };
    wait_until(
        "the filler queued behind it",
        Duration::from_secs(20),
        || store.queue_depth() == 41,
    );

    // HTTP.
    let over = ndjson(&(41..=60).map(|i| event("q", i)).collect::<Vec<_>>());
    let (status, body) = post(&events_url, "application/x-ndjson", over);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "queue_full");
    assert_eq!(health_of(&hub, "http")["refused_full"], 1);

    // WebSocket publish.
    let answer: Value = hub.runtime.block_on(async {
        let mut ws = hub.ws().await;
        let batch: Vec<Value> = (61..=80).map(|i| event("q", i)).collect();
        ws_send(
            &mut ws,
            json!({"type": "publish", "id": 1, "events": batch}),
        )
        .await;
        ws_until(&mut ws, &["ack", "error"]).await
    });
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["code"], "queue_full");
    assert_eq!(health_of(&hub, "ws")["refused_full"], 1);

    // An endpoint source (Docker telemetry).
    let telemetry: Vec<Value> = (0..20)
        .map(|i| json!({"id": format!("t{i}"), "type": "tool_call", "agentId": "a", "sessionId": "s", "data": {"toolName": "Bash"}}))
        .collect();
    let (status, body) = post(
        &format!("{}/telemetry", hub.url),
        "application/json",
        json!(telemetry).to_string(),
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(health_of(&hub, "telemetry")["refused_full"], 1);

    // A background source waits instead of dropping, and is counted while it waits.
    let core = hub.core();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let sink = core.sink("background-test", stop_rx);
    let now = Timestamp::now();
    let batch: Vec<_> = (100..120)
        .map(|i| parse_event(event("bg", i).to_string().as_bytes(), now).unwrap())
        .collect();
    let emitted = hub.runtime.spawn(async move { sink.emit(batch).await });
    let started = Instant::now();
    while health_of(&hub, "background-test")["refused_full"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the background batch was never refused"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !emitted.is_finished(),
        "a background batch waits for room, it is not dropped"
    );

    // The totals are the sum of the paths.
    let health = hub.get("/api/v1/health");
    let per_path: u64 = health["adapters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["refused_full"].as_u64().unwrap())
        .sum();
    assert_eq!(health["queue"]["rejected"].as_u64().unwrap(), per_path);

    gate.open();
    assert_eq!(first.join().unwrap().0, 202);
    assert_eq!(filler.join().unwrap().0, 202);
    let accepted = hub.runtime.block_on(emitted).unwrap().unwrap();
    assert_eq!(
        accepted.accepted, 20,
        "the waiting batch was committed whole"
    );
    assert_eq!(health_of(&hub, "background-test")["events"], 20);
    let head = hub.get("/api/v1/health")["head_seq"].as_u64().unwrap();
    assert_eq!(
        head, 61,
        "1 + 40 + the 20 background events; the refused batches stored nothing"
    );
}

/// The OpenAPI document says the constraints the hub checks (schemathesis found these
/// operations refusing most of what their documented schemas allowed), and the hub agrees with
/// what it says: values the schema allows are taken, values it rules out are refused.
#[test]
fn openapi_says_the_constraints_the_hub_checks() {
    let hub = TestHub::start();
    let doc = hub.get("/openapi.json");
    let body = |path: &str, method: &str, ct: &str| -> Value {
        let schema = &doc["paths"][path][method]["requestBody"]["content"][ct]["schema"];
        resolve(&doc, schema).clone()
    };
    let param = |path: &str, method: &str, name: &str| -> Value {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} lacks {name}"))["schema"]
            .clone()
    };

    let seq = param("/api/v1/events/{seq}", "get", "seq");
    assert_eq!(seq, json!({"type": "integer", "minimum": 0}));
    let (status, _) = get_status(&format!("{}/api/v1/events/abc", hub.url));
    assert_eq!(status, 400);
    assert_eq!(
        param("/api/v1/runs", "get", "limit"),
        json!({"type": "integer", "minimum": 0})
    );

    let retention = body("/api/v1/settings/retention", "put", "application/json");
    assert!(
        retention["properties"]["retention"]["pattern"].is_string(),
        "{retention}"
    );
    let put = |path: &str, v: Value| {
        let mut res = agent()
            .put(&format!("{}{path}", hub.url))
            .header("Content-Type", "application/json")
            .send(v.to_string())
            .unwrap();
        let text = res.body_mut().read_to_string().unwrap();
        (res.status().as_u16(), text)
    };
    // Within the pattern: taken. Outside it (under a minute, over ten years, no unit known):
    // refused.
    for ok in ["0", "7", "14d", "36h", "90m", "300s", "999d"] {
        let (status, text) = put("/api/v1/settings/retention", json!({"retention": ok}));
        assert_eq!(status, 200, "{ok}: {text}");
    }
    for bad in ["59s", "99999d", "2w", ""] {
        let (status, _) = put("/api/v1/settings/retention", json!({"retention": bad}));
        assert_eq!(status, 400, "{bad}");
    }

    let token = body("/api/v1/tokens", "post", "application/json");
    assert_eq!(
        token["properties"]["name"]["pattern"],
        "^[A-Za-z0-9._-]{1,64}$"
    );
    assert_eq!(token["properties"]["roles"]["minItems"], 1, "{token}");
    assert!(token["properties"]["roles"]["items"]["pattern"].is_string());
    let post_token = |v: Value| {
        post(
            &format!("{}/api/v1/tokens", hub.url),
            "application/json",
            v.to_string(),
        )
        .0
    };
    assert_eq!(
        post_token(json!({"name": "bad name", "roles": ["read"]})),
        400
    );
    assert_eq!(post_token(json!({"name": "ci", "roles": []})), 400);
    assert_eq!(post_token(json!({"name": "ci", "roles": ["owner"]})), 400);
    assert_eq!(
        // The first token must hold admin: it turns authentication on.
        post_token(json!({"name": "ci.bot-1", "roles": ["admin", "read"]})),
        201
    );

    // Import: a body per format, the format's words listed.
    let import = &doc["paths"]["/api/v1/import"]["post"];
    let types: Vec<&String> = import["requestBody"]["content"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        types,
        [
            "application/json",
            "application/x-ndjson",
            "application/yaml",
            "text/csv"
        ]
    );
    assert_eq!(
        param("/api/v1/import", "post", "format")["enum"],
        json!(["json", "ndjson", "jsonl", "csv", "yaml", "yml"])
    );
}
