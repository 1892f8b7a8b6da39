//! Security through the real binary: the auth matrix (endpoint kind × no/wrong/read/ingest/admin
//! token), Host and Origin checks, rate limits with Retry-After, the audit log, TLS, and the
//! refusal to bind beyond loopback without a token (exit 2).

use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

mod common;
use common::{BIN, Served, agent, serve_command};

const READ: &str = "read-token-0001";
const INGEST: &str = "ingest-token-0001";
const ADMIN: &str = "admin-token-0001";

/// A hub with the three test tokens; its temporary directory lives as long as it does.
struct Hub {
    url: String,
    _served: Served,
    _dir: tempfile::TempDir,
}

fn start(extra: &[&str]) -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        format!(
            "# test tokens\n{READ} read reader\n{INGEST} ingest producer\n{ADMIN} admin owner\n"
        ),
    )
    .unwrap();
    let mut cmd = serve_command(&dir.path().join("db.sqlite"));
    cmd.args(["--source", "http", "--token-file"])
        .arg(&tokens)
        .args(extra)
        .env("HOME", dir.path());
    let served = Served::spawn(cmd);
    Hub {
        url: served.url.clone(),
        _served: served,
        _dir: dir,
    }
}

fn token_value(t: &Option<&str>) -> Option<String> {
    t.map(|t| format!("Bearer {t}"))
}

fn request(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let a = agent();
    let auth = token_value(&token);
    let mut res = match method {
        "GET" => {
            let mut r = a.get(url);
            if let Some(h) = &auth {
                r = r.header("Authorization", h);
            }
            r.call().unwrap()
        }
        _ => {
            let mut r = a.post(url).header("Content-Type", "application/json");
            if let Some(h) = &auth {
                r = r.header("Authorization", h);
            }
            r.send(body.unwrap_or("{}")).unwrap()
        }
    };
    let status = res.status().as_u16();
    // Streams never end: read only what an answer's first bytes say.
    let text = if res
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").contains("event-stream"))
    {
        String::new()
    } else {
        res.body_mut().read_to_string().unwrap_or_default()
    };
    (status, text)
}

fn event(i: usize) -> String {
    json!({"event_id": format!("sec-{i}"), "source": "custom", "source_event": "x", "entity_type": "log",
           "run_id": "sec", "title": format!("event {i}")})
    .to_string()
}

#[test]
fn auth_matrix() {
    let hub = start(&[]);
    let u = |p: &str| format!("{}{p}", hub.url);
    let otlp_logs = json!({"resourceLogs": []}).to_string();
    let wf = json!({"type": "log", "data": {"message": "hi"}}).to_string();
    let export_line = event(99);
    // (name, method, url, body, expected for [none, wrong, read, ingest, admin])
    type Case<'a> = (&'a str, &'a str, String, Option<String>, [u16; 5]);
    let cases: Vec<Case<'_>> = vec![
        ("health", "GET", u("/api/v1/health"), None, [200, 200, 200, 200, 200]),
        ("dashboard", "GET", u("/"), None, [200, 200, 200, 200, 200]),
        ("query", "GET", u("/api/v1/runs"), None, [401, 401, 200, 403, 200]),
        ("search", "GET", u("/api/v1/search?q=x"), None, [401, 401, 200, 403, 200]),
        ("sse", "GET", u("/api/v1/events/stream"), None, [401, 401, 200, 403, 200]),
        ("ingest", "POST", u("/api/v1/events"), Some(event(1)), [401, 401, 403, 202, 202]),
        ("telemetry", "POST", u("/telemetry"), Some(json!({"id": "t1", "type": "agent_start", "agentId": "a", "timestamp": 1_763_700_000_000u64, "data": {}}).to_string()), [401, 401, 403, 202, 202]),
        ("otlp", "POST", u("/v1/logs"), Some(otlp_logs), [401, 401, 403, 200, 200]),
        ("workflow", "POST", u("/api/v1/workflows/w1/updates"), Some(wf), [401, 401, 403, 202, 202]),
        ("import", "POST", u("/api/v1/import?format=ndjson"), Some(export_line), [401, 401, 403, 403, 200]),
        ("audit", "GET", u("/api/v1/audit"), None, [401, 401, 403, 403, 200]),
    ];
    let tokens = [
        None,
        Some("wrong-token-999"),
        Some(READ),
        Some(INGEST),
        Some(ADMIN),
    ];
    let mut failures = Vec::new();
    for (name, method, url, body, expected) in &cases {
        for (token, want) in tokens.iter().zip(expected) {
            let (got, text) = request(method, url, *token, body.as_deref());
            if got != *want {
                failures.push(format!(
                    "{name} with {token:?}: got {got}, want {want}: {text}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // SSE accepts the token as `access_token` (browsers' EventSource cannot set headers).
    let (s, _) = request(
        "GET",
        &u(&format!("/api/v1/events/stream?access_token={READ}")),
        None,
        None,
    );
    assert_eq!(s, 200);

    // DNS rebinding: a foreign Host is refused even on public paths.
    let res = agent()
        .get(&u("/api/v1/health"))
        .header("Host", "evil.example")
        .call()
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    // A page from another origin is refused; our own origin is fine.
    let res = agent()
        .get(&u("/api/v1/runs"))
        .header("Authorization", format!("Bearer {READ}"))
        .header("Origin", "http://evil.example")
        .call()
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let own = hub.url.clone();
    let res = agent()
        .get(&u("/api/v1/runs"))
        .header("Authorization", format!("Bearer {READ}"))
        .header("Origin", &own)
        .call()
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ws = hub.url.replacen("http://", "ws://", 1) + "/ws";
        // Foreign Origin: the upgrade is refused.
        let mut req = ws.as_str().into_client_request().unwrap();
        req.headers_mut().insert("Origin", "http://evil.example".parse().unwrap());
        let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
        assert!(err.to_string().contains("403"), "{err}");
        // Wrong token at the upgrade: 401.
        let mut req = ws.as_str().into_client_request().unwrap();
        req.headers_mut().insert("Authorization", "Bearer wrong-token-999".parse().unwrap());
        let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
        assert!(err.to_string().contains("401"), "{err}");

        async fn recv(s: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin)) -> Value {
            loop {
                match tokio::time::timeout(Duration::from_secs(10), s.next()).await.unwrap() {
                    Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
                    Some(Ok(Message::Close(c))) => return json!({"type": "close", "code": c.map(|c| u16::from(c.code))}),
                    Some(Ok(_)) => continue,
                    other => return json!({"type": "ended", "detail": format!("{other:?}")}),
                }
            }
        }
        // No token: the socket opens but must authenticate before anything else.
        let (mut s, _) = tokio_tungstenite::connect_async(ws.as_str()).await.unwrap();
        assert_eq!(recv(&mut s).await["auth_required"], true);
        s.send(Message::Text(json!({"type": "subscribe", "id": 1}).to_string().into())).await.unwrap();
        assert_eq!(recv(&mut s).await["code"], "unauthorized");
        s.send(Message::Text(json!({"type": "auth", "token": "wrong-token-999"}).to_string().into())).await.unwrap();
        assert_eq!(recv(&mut s).await["code"], "unauthorized");
        assert_eq!(recv(&mut s).await["code"], 4001);
        // Roles per message: read may subscribe, not publish; ingest the reverse.
        for (token, can_sub, can_pub) in [(READ, true, false), (INGEST, false, true), (ADMIN, true, true)] {
            let (mut s, _) = tokio_tungstenite::connect_async(ws.as_str()).await.unwrap();
            recv(&mut s).await;
            s.send(Message::Text(json!({"type": "auth", "token": token}).to_string().into())).await.unwrap();
            assert_eq!(recv(&mut s).await["type"], "authenticated");
            s.send(Message::Text(json!({"type": "subscribe", "id": "x"}).to_string().into())).await.unwrap();
            let v = recv(&mut s).await;
            assert_eq!(v["type"] == "subscribed", can_sub, "{token}: {v}");
            s.send(Message::Text(json!({"type": "publish", "events": [serde_json::from_str::<Value>(&event(500)).unwrap()]}).to_string().into())).await.unwrap();
            let mut v = recv(&mut s).await;
            while v["type"] == "event" {
                v = recv(&mut s).await;
            }
            assert_eq!(v["type"] == "ack", can_pub, "{token}: {v}");
        }
        // The token in the upgrade request works too (header or access_token).
        let (mut s, _) = tokio_tungstenite::connect_async(format!("{ws}?access_token={READ}")).await.unwrap();
        assert_eq!(recv(&mut s).await["auth_required"], false);
    });

    // The audit log shows the failures and the admin actions, with token names only.
    let (s, text) = request("GET", &u("/api/v1/audit?limit=1000"), Some(ADMIN), None);
    assert_eq!(s, 200);
    let audit: Value = serde_json::from_str(&text).unwrap();
    let entries = audit["entries"].as_array().unwrap();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in [
        "auth_failed",
        "forbidden",
        "host_refused",
        "origin_refused",
        "admin_action",
    ] {
        assert!(kinds.contains(&k), "audit has {k}: {kinds:?}");
    }
    assert!(entries.iter().any(|e| e["kind"] == "admin_action"
        && e["token"] == "owner"
        && e["path"] == "/api/v1/import"));
    assert!(
        !text.contains(ADMIN) && !text.contains("wrong-token-999"),
        "no token values in the audit log"
    );
    let (_, only) = request("GET", &u("/api/v1/audit?kind=forbidden"), Some(ADMIN), None);
    let only: Value = serde_json::from_str(&only).unwrap();
    assert!(
        only["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] == "forbidden")
    );
}

/// A page on an origin named by `--allow-origin` can use the REST API from a browser: its
/// preflight is answered, and every answer (errors included) names the origin that may read it.
/// Other origins get no CORS headers and a 403.
#[test]
fn cors_lets_an_allowed_page_call_the_api() {
    const PAGE: &str = "http://page.example:8080";
    let hub = start(&["--allow-origin", PAGE]);
    let u = |p: &str| format!("{}{p}", hub.url);
    let header = |res: &ureq::http::Response<ureq::Body>, name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };

    // Preflight of a JSON POST with a token: no credentials on it, 204, methods and headers.
    let res = agent()
        .options(&u("/api/v1/events"))
        .header("Origin", PAGE)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .call()
        .unwrap();
    assert_eq!(res.status().as_u16(), 204);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(PAGE)
    );
    let methods = header(&res, "access-control-allow-methods").unwrap();
    assert!(
        methods.contains("POST") && methods.contains("PUT"),
        "{methods}"
    );
    let allowed = header(&res, "access-control-allow-headers").unwrap();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );

    // The request itself, and an error answer, both readable by the page.
    let res = agent()
        .post(&u("/api/v1/events"))
        .header("Origin", PAGE)
        .header("Authorization", format!("Bearer {INGEST}"))
        .header("Content-Type", "application/json")
        .send(event(1))
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(PAGE)
    );
    assert!(header(&res, "vary").is_some_and(|v| v.to_ascii_lowercase().contains("origin")));
    let res = agent()
        .get(&u("/api/v1/runs"))
        .header("Origin", PAGE)
        .call()
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(PAGE)
    );

    // Another origin: refused, preflight included, and told nothing that would let it read.
    let preflight = agent()
        .options(&u("/api/v1/runs"))
        .header("Origin", "http://evil.example")
        .header("Access-Control-Request-Method", "GET")
        .call()
        .unwrap();
    let request = agent()
        .get(&u("/api/v1/runs"))
        .header("Origin", "http://evil.example")
        .header("Authorization", format!("Bearer {READ}"))
        .call()
        .unwrap();
    for res in [preflight, request] {
        assert_eq!(res.status().as_u16(), 403);
        assert_eq!(header(&res, "access-control-allow-origin"), None);
    }
}

#[test]
fn rate_limits_answer_429_with_retry_after() {
    let hub = start(&[
        "--rate-limit",
        "5",
        "--rate-limit-addr",
        "1000",
        "--rate-limit-loopback",
    ]);
    let url = format!("{}/api/v1/runs", hub.url);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..30 {
        let res = agent()
            .get(&url)
            .header("Authorization", format!("Bearer {READ}"))
            .call()
            .unwrap();
        statuses.push(res.status().as_u16());
        if res.status().as_u16() == 429 {
            retry_after = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
        }
    }
    assert!(
        statuses[..10].iter().all(|s| *s == 200),
        "the burst passes: {statuses:?}"
    );
    assert!(statuses.contains(&429), "then 429: {statuses:?}");
    assert!(retry_after.is_some_and(|r| r.parse::<u64>().unwrap() >= 1));
    // Another token has its own budget.
    let res = agent()
        .get(&url)
        .header("Authorization", format!("Bearer {ADMIN}"))
        .call()
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    std::thread::sleep(Duration::from_millis(1200));
    let res = agent()
        .get(&url)
        .header("Authorization", format!("Bearer {READ}"))
        .call()
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "the budget refills");
}

#[test]
fn non_loopback_bind_without_a_token_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--port", "0", "--bind", "0.0.0.0", "--db"])
        .arg(dir.path().join("db.sqlite"))
        .env("HOME", dir.path())
        .env_remove("SIGHTLINE_TOKEN")
        .env_remove("SIGHTLINE_TOKEN_FILE")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("token"));
    // A bad token file is a config error too.
    let bad = dir.path().join("tokens");
    std::fs::write(&bad, "abcdefghij superuser\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--port", "0", "--db"])
        .arg(dir.path().join("db.sqlite"))
        .arg("--token-file")
        .arg(&bad)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
}

/// A blank `--token` (or `SIGHTLINE_TOKEN`) must not turn auth off on a public bind, and the
/// single token is held to the same minimum length as token files; a usable one starts the hub
/// on a public bind and is required there.
#[test]
fn a_blank_or_short_token_exits_2_and_a_usable_one_starts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let refused = |mut cmd: Command, what: &str| {
        let out = cmd
            .env("HOME", dir.path())
            .env_remove("SIGHTLINE_TOKEN_FILE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains("--token / SIGHTLINE_TOKEN"),
            "{what}: the message names the setting: {err}"
        );
    };
    let mut cmd = serve_command(&db);
    cmd.args(["--token", " ", "--bind", "0.0.0.0"]);
    refused(cmd, "--token ' ' --bind 0.0.0.0");
    let mut cmd = serve_command(&db);
    cmd.args(["--bind", "0.0.0.0"])
        .env("SIGHTLINE_TOKEN", "  \t ");
    refused(cmd, "SIGHTLINE_TOKEN=blank --bind 0.0.0.0");
    let mut cmd = serve_command(&db);
    cmd.env("SIGHTLINE_TOKEN", "short");
    refused(cmd, "SIGHTLINE_TOKEN=short");
    let mut cmd = serve_command(&db);
    cmd.args(["--token", "1234567", "--bind", "0.0.0.0"]);
    refused(cmd, "--token of 7 characters");

    let token = "usable-token-0001";
    let mut cmd = serve_command(&db);
    cmd.args(["--bind", "0.0.0.0", "--source", "http"])
        .env("SIGHTLINE_TOKEN", token)
        .env("HOME", dir.path());
    let served = Served::spawn(cmd);
    let port = served.url.rsplit(':').next().unwrap().to_string();
    let url = format!("http://127.0.0.1:{port}/api/v1/runs");
    assert_eq!(
        request("GET", &url, None, None).0,
        401,
        "the token is required"
    );
    assert_eq!(request("GET", &url, Some("wrong-token-999"), None).0, 401);
    assert_eq!(request("GET", &url, Some(token), None).0, 200);
}

#[test]
fn tls_serves_https_with_the_same_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed to make a test certificate");
    assert!(ok.success());
    let hub = start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(hub.url.starts_with("https://"), "{}", hub.url);
    let curl = |path: &str, token: Option<&str>| {
        let mut c = Command::new("curl");
        c.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&cert);
        if let Some(t) = token {
            c.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        let out = c.arg(format!("{}{path}", hub.url)).output().expect("curl");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(curl("/api/v1/health", None), "200");
    assert_eq!(curl("/api/v1/runs", None), "401");
    assert_eq!(curl("/api/v1/runs", Some(READ)), "200");
    // Plain HTTP on the TLS port gets nothing useful.
    let plain = hub.url.replacen("https://", "http://", 1);
    let out = Command::new("curl")
        .args(["-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{plain}/api/v1/health"))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&out.stdout), "200");
}

/// Issue 11, item 12: `GET /api/v1/plugins` gives a read token names and kinds, never a
/// plugin's command line or URL (where secrets live); and events sent inline to a plugin are
/// validated and redacted as ingest does: an invalid one is a 400 and the plugin never runs,
/// a valid one reaches the plugin without its secrets.
#[test]
fn a_read_token_sees_no_plugin_command_or_url_and_inline_events_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        format!("{READ} read reader\n{ADMIN} admin owner\n"),
    )
    .unwrap();
    let ran = dir.path().join("plugin-ran");
    let script = dir.path().join("echo_plugin.py");
    std::fs::write(
        &script,
        "import json, sys\n\
         ran = sys.argv[1]\n\
         req = json.loads(sys.stdin.readline())\n\
         open(ran, 'a').write('ran\\n')\n\
         print(json.dumps({'jsonrpc': '2.0', 'id': req['id'], 'result': req['params']}))\n",
    )
    .unwrap();
    let plugins = json!([
        {"name": "echo", "command": ["python3", script.to_str().unwrap(), ran.to_str().unwrap(),
                                     "--api-key=plugin-arg-secret-7731"]},
        {"name": "remote", "url": "http://127.0.0.1:9/rpc?key=plugin-url-secret-8842"}
    ]);
    let mut cmd = serve_command(&dir.path().join("db.sqlite"));
    cmd.args(["--source", "http", "--token-file"])
        .arg(&tokens)
        .env("HOME", dir.path())
        .env("SIGHTLINE_PLUGINS", plugins.to_string());
    let served = Served::spawn(cmd);
    let u = |p: &str| format!("{}{p}", served.url);

    let (status, listed) = request("GET", &u("/api/v1/plugins"), Some(READ), None);
    assert_eq!(status, 200, "{listed}");
    let list: Value = serde_json::from_str(&listed).unwrap();
    let names: Vec<&str> = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "remote"], "{listed}");
    for hidden in [
        "plugin-arg-secret-7731",
        "plugin-url-secret-8842",
        "echo_plugin.py",
        "python3",
        "127.0.0.1:9",
    ] {
        assert!(!listed.contains(hidden), "`{hidden}` listed: {listed}");
    }

    // An event that would not be stored is not sent: 400, and the plugin does not run.
    let invalid = json!({"events": [{"event_id": "p-0", "source": "custom", "title": 42}]});
    let (status, answer) = request(
        "POST",
        &u("/api/v1/plugins/echo/invoke"),
        Some(READ),
        Some(&invalid.to_string()),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("events[0]"), "says which event: {answer}");
    assert!(!ran.exists(), "the plugin ran on an invalid event");

    // A valid one reaches the plugin redacted, like ingest would store it.
    let valid = json!({"events": [{"event_id": "p-1", "source": "custom", "source_event": "x",
        "entity_type": "log", "run_id": "plug", "title": "deploy",
        "payload": {"password": "hunter2-plugin-secret",
                    "cmd": "curl -u alice:s3cr3t-plugin-pw https://example.com",
                    "note": "ordinary text stays"}}]});
    let (status, answer) = request(
        "POST",
        &u("/api/v1/plugins/echo/invoke"),
        Some(READ),
        Some(&valid.to_string()),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(ran.exists(), "the plugin ran");
    assert!(answer.contains("ordinary text stays"), "{answer}");
    for secret in ["hunter2-plugin-secret", "s3cr3t-plugin-pw"] {
        assert!(
            !answer.contains(secret),
            "`{secret}` reached the plugin: {answer}"
        );
    }
}
