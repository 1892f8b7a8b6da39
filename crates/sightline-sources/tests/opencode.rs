//! A real OpenCode server (`opencode-ai` from npm, run offline on loopback): sessions and a child
//! session created through its API appear in sightline with the right parent, through the SSE
//! adapter. Also the plugin endpoint and the JSONL replay of the plugin's spool.
//!
//! The package is installed by this test with npm into `$SIGHTLINE_TEST_CACHE/opencode`
//! (default `~/.cache/sightline-tests`); if it cannot be installed the test fails saying so.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::peers::opencode_binary;
use common::{TestHub, agent, post};
use serde_json::{Value, json};

struct OpenCode {
    child: Child,
    url: String,
    _home: tempfile::TempDir,
}

impl Drop for OpenCode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_opencode(config: Option<&str>) -> OpenCode {
    start_opencode_with(config, None)
}

fn start_opencode_with(config: Option<&str>, password: Option<&str>) -> OpenCode {
    // Installs it on first use (or says why it cannot).
    let _ = opencode_binary();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // Its background plugin install must fail fast offline: point npm at a dead port.
    std::fs::write(h.join(".npmrc"), "registry=http://127.0.0.1:9/\n").unwrap();
    let port = common::free_port();
    let mut cmd = common::peers::opencode_serve(h, port);
    if let Some(c) = config {
        cmd.env("OPENCODE_CONFIG_CONTENT", c);
    }
    if let Some(pw) = password {
        cmd.env("OPENCODE_SERVER_PASSWORD", pw);
    }
    let child = cmd.spawn().expect("start opencode serve");
    let url = format!("http://127.0.0.1:{port}");
    let oc = OpenCode {
        child,
        url,
        _home: home,
    };
    let start = Instant::now();
    // Short per-request timeout: while starting, the server may accept and not answer yet.
    let quick = sightline_testkit::agent_with(Duration::from_secs(2));
    loop {
        let mut req = quick.get(&format!("{}/global/health", oc.url));
        if let Some(pw) = password {
            req = req.header(
                "authorization",
                &sightline_sources::opencode::basic_auth(pw),
            );
        }
        if let Ok(mut r) = req.call()
            && r.status().as_u16() == 200
            && r.body_mut()
                .read_to_string()
                .unwrap_or_default()
                .contains("healthy")
        {
            return oc;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "opencode serve did not answer /global/health in 120 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the hub's OpenCode adapter follows `oc`'s event stream. Health says running
/// before the first connect too (the supervisor sets it as the task starts), so that alone let a
/// loaded machine make the test's sessions before the stream was up, and their
/// `session.created` was never seen (the idle one of `idle_and_working` never showed idle). A
/// probe session made on `oc` then reaching the hub proves the stream is live: it comes through
/// the stream, or through the listing the adapter makes once the stream has answered.
fn wait_connected(hub: &TestHub, oc: &OpenCode, within: Duration) {
    let start = Instant::now();
    while !hub
        .adapter_health("opencode")
        .is_some_and(|a| a["state"] == "running")
    {
        assert!(
            start.elapsed() < within,
            "the OpenCode adapter did not connect within {within:?}: {:?}",
            hub.adapter_health("opencode")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let probe = create_session(oc, json!({"title": "sightline probe"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    hub.wait_for("the probe session at the hub", within, |e| {
        e.iter().any(|e| e["session_id"] == probe.as_str())
    });
}

/// A real OpenCode server whose only model, `mock/m` (described by `model`), is served by
/// `handler` (an OpenAI-compatible chat completions endpoint on the hub's runtime), with the
/// hub's OpenCode adapter connected to it.
fn opencode_on_model(
    hub: &mut TestHub,
    handler: axum::routing::MethodRouter,
    model: Value,
) -> OpenCode {
    opencode_on_model_with(hub, handler, model, |_| {})
}

/// [`opencode_on_model`], with the adapter's settings changed by `settings` before it starts.
fn opencode_on_model_with(
    hub: &mut TestHub,
    handler: axum::routing::MethodRouter,
    model: Value,
    settings: impl FnOnce(&mut sightline_sources::AdapterConfig),
) -> OpenCode {
    let addr = hub.runtime.block_on(async {
        let app = axum::Router::new().route("/v1/chat/completions", handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let config = json!({"model": "mock/m", "provider": {"mock": {"npm": "@ai-sdk/openai-compatible",
        "options": {"baseURL": format!("http://{addr}/v1"), "apiKey": "x"}, "models": {"m": model}}}});
    let oc = start_opencode(Some(&config.to_string()));
    let mut adapter_config = hub.config();
    adapter_config.opencode_url = oc.url.clone();
    settings(&mut adapter_config);
    hub.start_adapters(sightline_sources::REGISTRY, &adapter_config, &["opencode"]);
    wait_connected(hub, &oc, Duration::from_secs(30));
    oc
}

fn create_session(oc: &OpenCode, body: Value) -> Value {
    let (status, v) = post(
        &format!("{}/session", oc.url),
        "application/json",
        body.to_string(),
    );
    assert_eq!(status, 200, "{v}");
    v
}

#[test]
fn real_opencode_sessions_and_child_sessions_arrive_with_their_parent() {
    let oc = start_opencode(None);
    let mut hub = TestHub::start();
    let mut config = hub.config();
    config.opencode_url = oc.url.clone();
    hub.start_adapters(sightline_sources::REGISTRY, &config, &["opencode"]);
    wait_connected(&hub, &oc, Duration::from_secs(30));
    let parent = create_session(&oc, json!({"title": "sightline parent"}));
    let pid = parent["id"].as_str().unwrap().to_string();
    let child = create_session(&oc, json!({"title": "sightline child", "parentID": pid}));
    let cid = child["id"].as_str().unwrap().to_string();
    let r = agent()
        .patch(&format!("{}/session/{pid}", oc.url))
        .header("content-type", "application/json")
        .send(json!({"title": "renamed parent"}).to_string().as_bytes())
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    hub.wait_for(
        "both OpenCode sessions",
        Duration::from_secs(30),
        |events| {
            events.iter().any(|e| e["session_id"] == pid.as_str())
                && events.iter().any(|e| {
                    e["session_id"] == cid.as_str() && e["parent_session_id"] == pid.as_str()
                })
        },
    );
    let tree = hub.get(&format!("/api/v1/sessions/{pid}/tree"))["tree"].clone();
    assert_eq!(tree["children"][0]["session_id"], cid.as_str(), "{tree}");
    assert_eq!(
        tree["children"][0]["parent_session_id"],
        pid.as_str(),
        "{tree}"
    );
    let run = hub.get(&format!("/api/v1/runs/{pid}"));
    assert_eq!(run["run"]["session_count"], 2, "{run}");
    assert_eq!(run["run"]["source"], "opencode");
}

#[test]
fn plugin_posts_and_jsonl_spool_map_the_same_events_once() {
    let mut hub = TestHub::start();
    let created = json!({"directory": "/w", "payload": {"id": "evt_a1", "type": "session.created", "properties": {"info": {"id": "ses_1", "title": "t"}}}});
    let busy = json!({"directory": "/w", "payload": {"id": "evt_a2", "type": "session.status", "properties": {"sessionID": "ses_1", "status": {"type": "busy"}}}});
    let tool = json!({"directory": "/w", "payload": {"id": "evt_a3", "type": "message.part.updated", "properties": {"part": {"id": "prt_1", "sessionID": "ses_1", "messageID": "msg_1", "type": "tool", "callID": "call_1", "tool": "bash",
        "state": {"status": "completed", "input": {"command": "ls"}, "output": "a", "time": {"start": 1795255200000i64, "end": 1795255200420i64}}}}}});
    let usage = json!({"directory": "/w", "payload": {"id": "evt_a4", "type": "message.updated", "properties": {"info": {"id": "msg_1", "sessionID": "ses_1", "role": "assistant", "cost": 0.02, "modelID": "m",
        "tokens": {"input": 100, "output": 10, "reasoning": 0, "cache": {"read": 5, "write": 1}}, "time": {"created": 1795255200000i64, "completed": 1795255201000i64}}}}});
    let perm = json!({"type": "permission.asked", "properties": {"id": "per_1", "sessionID": "ses_1", "permission": "bash"}, "id": "evt_a5"});
    let todo = json!({"id": "evt_a6", "type": "todo.updated", "properties": {"sessionID": "ses_1", "todos": [{"status": "completed"}, {"status": "pending"}]}});
    let unknown =
        json!({"id": "evt_a7", "type": "something.new", "properties": {"sessionID": "ses_1"}});
    let (status, answer) = post(
        &format!("{}/api/v1/hooks/opencode", hub.url),
        "application/json",
        json!([created, busy, tool]).to_string(),
    );
    assert_eq!(status, 202, "{answer}");
    // The rest arrive through the JSONL spool (what the plugin writes when the hub is down),
    // together with a repeat of one the hub already has.
    let config = hub.config();
    std::fs::create_dir_all(&config.jsonl_paths[0]).unwrap();
    let lines: Vec<String> = [&tool, &usage, &perm, &todo, &unknown]
        .iter()
        .map(|v| v.to_string())
        .collect();
    std::fs::write(
        config.jsonl_paths[0].join("opencode.jsonl"),
        lines.join("\n") + "\n",
    )
    .unwrap();
    hub.start_adapters(sightline_sources::REGISTRY, &config, &["opencode-jsonl"]);
    let events = hub.wait_for("the spool", Duration::from_secs(20), |e| e.len() >= 7);
    assert_eq!(events.len(), 7, "{events:#?}");
    let find = |t: &str| {
        events
            .iter()
            .find(|e| e["source_event"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(find("message.part.updated")["duration_ms"], 420);
    assert_eq!(find("message.part.updated")["correlation_id"], "call_1");
    assert_eq!(find("message.updated")["metrics"]["cost_usd"], 0.02);
    assert_eq!(find("permission.asked")["status"], "blocked");
    assert_eq!(find("todo.updated")["metrics"]["progress"], 50);
    assert_eq!(find("something.new")["entity_type"], "log");
    // The plugin's spool is consumed: renamed aside, read, deleted.
    let spool_file = config.jsonl_paths[0].join("opencode.jsonl");
    let start = Instant::now();
    while spool_file.exists() || std::fs::read_dir(&config.jsonl_paths[0]).unwrap().count() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the spool was not consumed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = hub.get("/api/v1/runs/ses_1");
    assert!(
        (run["run"]["cost_usd"].as_f64().unwrap() - 0.02).abs() < 1e-12,
        "{run}"
    );
    assert_eq!(run["sessions"][0]["status"], "blocked", "{run}");
}

/// A tiny OpenAI-compatible model: asks for one `bash` tool call, then answers in text; usage
/// 100/20 tokens then 150/5.
async fn mock_model(axum::Json(body): axum::Json<Value>) -> axum::response::Response {
    let after_tool = body["messages"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
    let chunk = |choice: Value, usage: Option<Value>| {
        let mut c = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice]});
        if let Some(u) = usage {
            c["usage"] = u;
        }
        format!("data: {c}\n\n")
    };
    let text = if after_tool {
        chunk(
            json!({"index": 0, "delta": {"role": "assistant", "content": "All done."}, "finish_reason": null}),
            None,
        ) + &chunk(
            json!({"index": 0, "delta": {}, "finish_reason": "stop"}),
            Some(json!({"prompt_tokens": 150, "completion_tokens": 5, "total_tokens": 155})),
        )
    } else {
        let args = json!({"command": "echo hi", "description": "say hi"}).to_string();
        chunk(
            json!({"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "bash", "arguments": args}}]}, "finish_reason": null}),
            None,
        ) + &chunk(
            json!({"index": 0, "delta": {}, "finish_reason": "tool_calls"}),
            Some(json!({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120})),
        )
    } + "data: [DONE]\n\n";
    axum::response::Response::builder()
        .header("content-type", "text/event-stream")
        .body(axum::body::Body::from(text))
        .unwrap()
}

#[test]
fn a_real_prompt_gives_tool_lifecycle_tokens_and_cost() {
    let mut hub = TestHub::start();
    // Priced at $1000/M input and $2000/M output so the cost is easy to count:
    // 100·1000 + 20·2000 = 0.14, then 150·1000 + 5·2000 = 0.16; 0.30 in all.
    let oc = opencode_on_model(
        &mut hub,
        axum::routing::post(mock_model),
        json!({"cost": {"input": 1000, "output": 2000}}),
    );
    let sid = create_session(&oc, json!({"title": "prompted"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let slow = sightline_testkit::agent_with(Duration::from_secs(90));
    let mut r = slow
        .post(&format!("{}/session/{sid}/message", oc.url))
        .header("content-type", "application/json")
        .send(
            json!({"parts": [{"type": "text", "text": "say hi"}]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "{}",
        r.body_mut().read_to_string().unwrap_or_default()
    );
    let events = hub.wait_for("the prompt's events", Duration::from_secs(30), |e| {
        e.iter()
            .any(|e| e["source_event"] == "session.idle" && e["session_id"] == sid.as_str())
            && e.iter()
                .filter(|e| {
                    e["event_id"]
                        .as_str()
                        .is_some_and(|i| i.starts_with("oc-usage:"))
                })
                .count()
                == 2
    });
    let tool: Vec<&Value> = events
        .iter()
        .filter(|e| e["entity_type"] == "tool" && e["correlation_id"] == "call_1")
        .collect();
    let statuses: Vec<&str> = tool.iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert!(
        statuses.contains(&"running") && statuses.contains(&"success"),
        "{statuses:?}"
    );
    assert_eq!(tool.last().unwrap()["title"], "bash: echo hi");
    assert!(events.iter().all(|e| e["source_event"] != "plugin.added"));
    let run = hub.get(&format!("/api/v1/runs/{sid}"));
    let r = &run["run"];
    assert!((r["cost_usd"].as_f64().unwrap() - 0.30).abs() < 1e-9, "{r}");
    assert_eq!(r["input_tokens"], 250.0, "{r}");
    assert_eq!(r["output_tokens"], 25.0, "{r}");
    assert_eq!(run["sessions"][0]["status"], "idle", "{run}");
}

#[test]
fn basic_auth_when_opencode_has_a_password() {
    let oc = start_opencode_with(None, Some("s3cret-pw"));
    let mut hub = TestHub::start();
    let adapter_state =
        |hub: &TestHub| -> Value { hub.adapter_health("opencode").unwrap_or_default() };
    // Wrong password: the adapter keeps retrying and health says why.
    let mut config = hub.config();
    config.opencode_url = oc.url.clone();
    config.opencode_password = Some("wrong".into());
    hub.start_adapters(sightline_sources::REGISTRY, &config, &["opencode"]);
    let start = Instant::now();
    while !adapter_state(&hub)["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("401"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}",
            adapter_state(&hub)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(adapter_state(&hub)["state"], "running");
    hub.stop_adapters();
    // Right password: connected, and the session list arrives.
    config.opencode_password = Some("s3cret-pw".into());
    hub.start_adapters(sightline_sources::REGISTRY, &config, &["opencode"]);
    let start = Instant::now();
    while adapter_state(&hub)["state"] != "running" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}",
            adapter_state(&hub)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A model that never answers: a prompt to it keeps its session working.
async fn stuck_model() -> axum::response::Response {
    tokio::time::sleep(Duration::from_secs(300)).await;
    axum::response::Response::new(axum::body::Body::empty())
}

/// A session's row in the hub (`null` until its first event is stored).
fn status_of(hub: &TestHub, sid: &str) -> Value {
    // 404 until the session's first event is stored.
    let (_, run) = sightline_testkit::get_status(&format!("{}/api/v1/runs/{sid}", hub.url));
    run["sessions"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["session_id"] == sid).cloned())
        .unwrap_or_default()
}

/// Two sessions on `oc` (a server on [`stuck_model`]), shown in the hub as one left idle and one
/// working on a prompt that never ends; the thread holding that prompt's request ends when the
/// server does. Returns (idle, working, thread).
fn idle_and_working(hub: &TestHub, oc: &OpenCode) -> (String, String, std::thread::JoinHandle<()>) {
    let idle = create_session(oc, json!({"title": "left idle"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let working = create_session(oc, json!({"title": "working"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The prompt's request waits on the stuck model; it fails when the server dies. Its
    // timeout outlasts the tests, so the client never gives up (and aborts the prompt) first.
    let prompt_url = format!("{}/session/{working}/message", oc.url);
    let prompt = std::thread::spawn(move || {
        let _ = sightline_testkit::agent_with(Duration::from_secs(280))
            .post(&prompt_url)
            .header("content-type", "application/json")
            .send(
                json!({"parts": [{"type": "text", "text": "hi"}]})
                    .to_string()
                    .as_bytes(),
            );
    });
    let start = Instant::now();
    while status_of(hub, &working)["status"] != "running"
        || status_of(hub, &idle)["status"] != "idle"
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the sessions never showed working and idle: {} {}",
            status_of(hub, &working),
            status_of(hub, &idle)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status_of(hub, &working)["alive"], true);
    (idle, working, prompt)
}

/// Liveness (docs/SOURCES-SETUP.md): the OpenCode server killed by its pid, without a word to
/// its clients; the sessions the stream followed end within a reconnect (a working one failed,
/// an idle one succeeded), marked as ended by the hub and saying why.
#[test]
fn a_vanished_opencode_server_ends_its_sessions() {
    let mut hub = TestHub::start();
    let mut oc = opencode_on_model(&mut hub, axum::routing::post(stuck_model), json!({}));
    let (idle, working, prompt) = idle_and_working(&hub, &oc);

    // SIGKILL, by the pid this test started.
    oc.child.kill().unwrap();
    oc.child.wait().unwrap();
    let killed = Instant::now();
    while status_of(&hub, &working)["ended_at"].is_null()
        || status_of(&hub, &idle)["ended_at"].is_null()
    {
        // Budget: the stream ends at once, the reconnect waits 250 ms and is refused; 15 s
        // leaves room for a loaded machine.
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "still open {:?} after the kill: {} {}",
            killed.elapsed(),
            status_of(&hub, &working),
            status_of(&hub, &idle)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("sessions ended {:?} after the kill", killed.elapsed());
    let w = status_of(&hub, &working);
    assert_eq!(w["status"], "failed", "{w}");
    assert_eq!(w["alive"], false, "{w}");
    assert_eq!(w["ended_by"], "liveness", "{w}");
    assert_eq!(w["liveness_rule"], "stream", "{w}");
    assert!(
        w["liveness_reason"]
            .as_str()
            .unwrap()
            .contains("went away while the session was working"),
        "{w}"
    );
    let i = status_of(&hub, &idle);
    assert_eq!(i["status"], "success", "{i}");
    assert_eq!(i["ended_by"], "liveness", "{i}");
    assert!(
        i["liveness_reason"]
            .as_str()
            .unwrap()
            .contains("(the session was idle)"),
        "{i}"
    );
    // The runs (each session is its own root) end with them.
    assert_eq!(
        hub.get(&format!("/api/v1/runs/{working}"))["run"]["status"],
        "failed"
    );
    prompt.join().unwrap();
}

/// Liveness (docs/SOURCES-SETUP.md): the OpenCode server stopped (SIGSTOP, by the pid this test
/// started) keeps its socket, so its stream goes silent and a reconnect is accepted and never
/// answered. Its sessions end within the documented bound (three missed heartbeats, then one
/// unanswered connect), the same way as a killed server's; continued (SIGCONT), the server is
/// followed again without reopening them.
#[test]
fn a_hung_opencode_server_ends_its_sessions_and_is_followed_again_when_continued() {
    use sightline_sources::opencode::{HANDSHAKE, SILENCE};
    let mut hub = TestHub::start();
    let oc = opencode_on_model(&mut hub, axum::routing::post(stuck_model), json!({}));
    let (idle, working, prompt) = idle_and_working(&hub, &oc);
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &oc.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {}: {status}", oc.child.id());
    };

    signal("-STOP");
    let stopped = Instant::now();
    // SOURCES-SETUP.md: ended within 41 s of the last frame (SILENCE + the first retry's 250 ms
    // + HANDSHAKE), and the stop comes after that frame; 9 s more for a loaded machine (here
    // they ended 40.3 s after the stop: the sessions' own events were the last frames).
    let bound = SILENCE + HANDSHAKE + Duration::from_secs(10);
    while status_of(&hub, &working)["ended_at"].is_null()
        || status_of(&hub, &idle)["ended_at"].is_null()
    {
        assert!(
            stopped.elapsed() < bound,
            "still open {:?} after SIGSTOP: {} {}",
            stopped.elapsed(),
            status_of(&hub, &working),
            status_of(&hub, &idle)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = stopped.elapsed();
    println!("sessions ended {took:?} after SIGSTOP");
    // Not before the stream had been silent for SILENCE less one heartbeat (the last one may
    // have come just before the stop): a hang is told by silence, not by anything else.
    assert!(took >= SILENCE - Duration::from_secs(10), "{took:?}");
    let w = status_of(&hub, &working);
    assert_eq!(w["status"], "failed", "{w}");
    assert_eq!(w["alive"], false, "{w}");
    assert_eq!(w["ended_by"], "liveness", "{w}");
    assert_eq!(w["liveness_rule"], "stream", "{w}");
    assert!(
        w["liveness_reason"]
            .as_str()
            .unwrap()
            .contains("went away while the session was working"),
        "{w}"
    );
    let i = status_of(&hub, &idle);
    assert_eq!(i["status"], "success", "{i}");
    assert_eq!(i["ended_by"], "liveness", "{i}");
    // The liveness event says what was seen: a connect that was accepted and never answered.
    let events = hub.events();
    let ended = events
        .iter()
        .find(|e| e["session_id"] == working.as_str() && e["source_event"] == "liveness_failed")
        .expect("the working session's liveness event");
    assert!(
        ended["summary"]
            .as_str()
            .is_some_and(|s| s.contains("did not answer within")),
        "{ended}"
    );
    let health = hub.adapter_health("opencode").unwrap();
    assert_ne!(health["state"], "running", "{health}");
    assert!(
        health["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no event or heartbeat")),
        "{health}"
    );

    // Continued: the adapter reconnects within its backoff (10 s at most) and follows the
    // server again; its listing of old sessions does not reopen the ones it ended.
    signal("-CONT");
    wait_connected(&hub, &oc, Duration::from_secs(30));
    let fresh = create_session(&oc, json!({"title": "after SIGCONT"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    hub.wait_for(
        "the session made after SIGCONT",
        Duration::from_secs(20),
        |e| {
            e.iter().any(|e| {
                e["session_id"] == fresh.as_str() && e["source_event"] == "session.created"
            })
        },
    );
    let i = status_of(&hub, &idle);
    assert_eq!(i["status"], "success", "{i}");
    assert_eq!(i["ended_by"], "liveness", "{i}");
    assert_eq!(status_of(&hub, &fresh)["alive"], true);
    // Killed by its pid (Drop), which also ends the prompt's request.
    drop(oc);
    prompt.join().unwrap();
}

/// The silence and handshake timeouts are settings (docs/SOURCES-SETUP.md, "Liveness"): with
/// the shortest silence (two heartbeats, 20 s) and a 5 s handshake, a hung server's sessions end
/// within 25.25 s of the stop, where the defaults take at least 30.25 s (30 s of silence less
/// at most the one heartbeat before the stop, the first retry's 250 ms, a 10 s handshake). The
/// health's error names the 20 s silence, which only the setting can produce.
#[test]
fn a_shorter_silence_setting_ends_a_hung_servers_sessions_sooner() {
    let mut hub = TestHub::start();
    let oc = opencode_on_model_with(&mut hub, axum::routing::post(stuck_model), json!({}), |c| {
        c.opencode_silence_s = Some("20".into());
        c.opencode_handshake_s = Some("5".into());
    });
    let (idle, working, prompt) = idle_and_working(&hub, &oc);
    let status = std::process::Command::new("kill")
        .args(["-STOP", &oc.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -STOP {}: {status}", oc.child.id());
    let stopped = Instant::now();
    // At most 20 s of silence + the first retry's 250 ms + 5 s of handshake = 25.25 s (25.3 s
    // measured); the bound leaves a loaded machine room. That the setting, not the default,
    // ended them is what the health's "for 20 s" below proves.
    let bound = Duration::from_secs(35);
    while status_of(&hub, &working)["ended_at"].is_null()
        || status_of(&hub, &idle)["ended_at"].is_null()
    {
        assert!(
            stopped.elapsed() < bound,
            "still open {:?} after SIGSTOP with a 20 s silence: {} {}",
            stopped.elapsed(),
            status_of(&hub, &working),
            status_of(&hub, &idle)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("sessions ended {:?} after SIGSTOP", stopped.elapsed());
    assert_eq!(status_of(&hub, &working)["status"], "failed");
    assert_eq!(status_of(&hub, &idle)["status"], "success");
    let health = hub.adapter_health("opencode").unwrap();
    assert!(
        health["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("for 20 s")),
        "{health}"
    );
    // Killed by its pid (Drop) while stopped: SIGKILL ends a stopped process too, and the
    // prompt's request with it.
    drop(oc);
    prompt.join().unwrap();
}
