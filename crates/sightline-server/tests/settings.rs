//! The settings API against a real hub: retention changes apply and persist to the config file,
//! tokens are created with roles, refused and revoked at once, listed without their values, and
//! every change is in the audit log. Real HTTP on port 0, real files.

mod common;

use common::*;
use serde_json::{Value, json};

fn call(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    let agent = agent();
    let mut res = match (method, body) {
        ("GET", _) => {
            let mut r = agent.get(url);
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            r.call().unwrap()
        }
        ("DELETE", _) => {
            let mut r = agent.delete(url);
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            r.call().unwrap()
        }
        (m, b) => {
            let mut r = if m == "PUT" {
                agent.put(url)
            } else {
                agent.post(url)
            };
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            r.header("Content-Type", "application/json")
                .send(b.map(|b| b.to_string()).unwrap_or_default().as_bytes())
                .unwrap()
        }
    };
    let status = res.status().as_u16();
    let text = res.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn hub_with_config() -> (TestHub, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "# the owner's file\nport = 4517\n").unwrap();
    let db = dir.path().join("db.sqlite");
    let path = config.clone();
    let hub = TestHub::start_on(dir, db, 0, move |_, settings| {
        settings.config_file = Some(path);
    });
    (hub, config)
}

#[test]
fn retention_applies_and_persists() {
    let (hub, config) = hub_with_config();
    let url = format!("{}/api/v1/settings/retention", hub.url);
    let (status, body) = call("PUT", &url, None, Some(&json!({"retention": "36h"})));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retention"], "36h");
    assert_eq!(body["persisted"], true);
    let health = hub.get("/api/v1/health");
    assert_eq!(health["storage"]["retention_days"], 1.5);
    let settings = hub.get("/api/v1/settings");
    assert_eq!(settings["retention"], "36h");
    let text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(
        text,
        "# the owner's file\nport = 4517\nretention = \"36h\"\n"
    );
    // Keep forever, then a bad value: refused with what to send, nothing changed.
    let (status, _) = call("PUT", &url, None, Some(&json!({"retention": "0"})));
    assert_eq!(status, 200);
    assert!(hub.get("/api/v1/health")["storage"]["retention_days"].is_null());
    let (status, body) = call("PUT", &url, None, Some(&json!({"retention": "soon"})));
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("like 14d"),
        "{body}"
    );
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("retention = \"0\"")
    );
    // The change is audited as an admin action.
    let audit = hub.get("/api/v1/audit?kind=admin_action");
    let entries = audit["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.to_string().contains("/api/v1/settings/retention")),
        "{audit}"
    );
}

#[test]
fn tokens_are_created_refused_and_revoked_at_once() {
    let (hub, config) = hub_with_config();
    let tokens = format!("{}/api/v1/tokens", hub.url);
    // The first token turns auth on, so it must be able to administer.
    let (status, body) = call(
        "POST",
        &tokens,
        None,
        Some(&json!({"name": "ci", "roles": ["read"]})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("admin"));
    let (status, owner) = call(
        "POST",
        &tokens,
        None,
        Some(&json!({"name": "owner", "roles": ["admin"]})),
    );
    assert_eq!(status, 201, "{owner}");
    assert_eq!(owner["auth_now_required"], true);
    let admin = owner["token"].as_str().unwrap().to_string();
    assert_eq!(admin.len(), 64);
    // Auth is on now: no token, no answer.
    let runs = format!("{}/api/v1/runs", hub.url);
    assert_eq!(call("GET", &runs, None, None).0, 401);
    assert_eq!(call("GET", &runs, Some(&admin), None).0, 200);
    let (status, ci) = call(
        "POST",
        &tokens,
        Some(&admin),
        Some(&json!({"name": "ci", "roles": ["read"]})),
    );
    assert_eq!(status, 201, "{ci}");
    let read = ci["token"].as_str().unwrap().to_string();
    assert_eq!(call("GET", &runs, Some(&read), None).0, 200);
    let settings_url = format!("{}/api/v1/settings", hub.url);
    assert_eq!(call("GET", &settings_url, Some(&read), None).0, 403);
    let (status, settings) = call("GET", &settings_url, Some(&admin), None);
    assert_eq!(status, 200);
    let names: Vec<&str> = strs(&settings["tokens"], "name");
    assert_eq!(names, ["owner", "ci"]);
    assert!(
        !settings.to_string().contains(&read),
        "the list never carries a token's value"
    );
    // Duplicate names and unknown roles are refused.
    let (status, _) = call(
        "POST",
        &tokens,
        Some(&admin),
        Some(&json!({"name": "ci", "roles": ["read"]})),
    );
    assert_eq!(status, 400);
    let (status, _) = call(
        "POST",
        &tokens,
        Some(&admin),
        Some(&json!({"name": "x", "roles": ["root"]})),
    );
    assert_eq!(status, 400);
    let file = std::fs::read_to_string(&config).unwrap();
    assert!(
        file.contains(&read) && file.contains("name = \"ci\""),
        "{file}"
    );
    // Revoked: refused at the next request, and gone from the file.
    let (status, body) = call("DELETE", &format!("{tokens}/ci"), Some(&admin), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["persisted"], true);
    assert_eq!(call("GET", &runs, Some(&read), None).0, 401);
    let file = std::fs::read_to_string(&config).unwrap();
    assert!(!file.contains(&read) && file.contains(&admin), "{file}");
    assert_eq!(
        call("DELETE", &format!("{tokens}/ci"), Some(&admin), None).0,
        404
    );
}
