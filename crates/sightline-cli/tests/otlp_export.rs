//! `serve --otlp-export` against a real OTLP/HTTP receiver: PyPI `oteltest`'s `otelsink --http`
//! (installed into a venv under the target directory on first run). Checks that runs, sessions,
//! subagent sessions, tool calls and traced calls arrive as spans with intact parent links,
//! everything else as log records in their session's span, batched.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_sightline");

/// otelsink prints Python dict reprs; this turns each line into JSON.
const TO_JSON: &str = "import ast, json, sys\nfor line in sys.stdin:\n    line = line.strip()\n    if line.startswith('{'):\n        print(json.dumps(ast.literal_eval(line)), flush=True)\n";

fn venv() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("oteltest-venv");
    if !dir.join("bin/otelsink").exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .expect("python3");
        assert!(ok.success(), "python3 -m venv failed");
        let ok = Command::new(dir.join("bin/pip"))
            .args(["install", "-q", "oteltest"])
            .status()
            .expect("pip");
        assert!(ok.success(), "pip install oteltest failed");
    }
    dir
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        .is_ok()
}

#[test]
fn events_reach_otelsink_as_spans_with_their_hierarchy_and_logs() {
    let venv = venv();
    // otelsink always listens on 4318: wait for any other user of the port to finish.
    let deadline = Instant::now() + Duration::from_secs(120);
    while port_open(4318) {
        assert!(Instant::now() < deadline, "port 4318 stays busy");
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut procs = Procs(Vec::new());
    let mut sink = Command::new(venv.join("bin/otelsink"))
        .arg("--http")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sink_out = sink.stdout.take().unwrap();
    procs.0.push(sink);
    let mut conv = Command::new(venv.join("bin/python"))
        .args(["-u", "-c", TO_JSON])
        .stdin(Stdio::from(sink_out))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let conv_out = conv.stdout.take().unwrap();
    procs.0.push(conv);
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(conv_out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    while !port_open(4318) {
        assert!(Instant::now() < deadline, "otelsink did not start");
        std::thread::sleep(Duration::from_millis(200));
    }

    let dir = tempfile::tempdir().unwrap();
    let mut hub = Command::new(BIN)
        .args([
            "serve",
            "--port",
            "0",
            "--source",
            "http",
            "--otlp-export",
            "http://127.0.0.1:4318",
            "--db",
        ])
        .arg(dir.path().join("db.sqlite"))
        .env("HOME", dir.path())
        .env_remove("SIGHTLINE_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(hub.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    procs.0.push(hub);
    let url = line
        .trim()
        .strip_prefix("sightline listening on ")
        .unwrap()
        .to_string();

    let base = |extra: Value| {
        let mut v =
            json!({"source": "claude", "source_event": "x", "run_id": "run-otel", "title": "t"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let mut events = vec![
        base(
            json!({"entity_type": "run", "status": "running", "title": "the run", "ts": "2026-11-21T10:00:00.000Z"}),
        ),
        base(
            json!({"entity_type": "session", "session_id": "main", "status": "running", "title": "main session", "ts": "2026-11-21T10:00:00.100Z"}),
        ),
        base(
            json!({"entity_type": "session", "session_id": "sub", "parent_session_id": "main", "agent": "Explore", "status": "running", "title": "subagent", "ts": "2026-11-21T10:00:01.000Z"}),
        ),
        base(
            json!({"entity_type": "tool", "session_id": "sub", "correlation_id": "toolu_1", "status": "running", "title": "Bash ls", "ts": "2026-11-21T10:00:02.000Z"}),
        ),
        base(
            json!({"entity_type": "tool", "session_id": "sub", "correlation_id": "toolu_1", "status": "failed", "severity": "error", "summary": "exit 2", "title": "Bash ls", "ts": "2026-11-21T10:00:03.000Z"}),
        ),
        base(
            json!({"source": "python", "entity_type": "call", "session_id": "main", "entity_id": "mod.fib", "duration_ms": 12.5, "status": "success", "title": "mod.fib", "ts": "2026-11-21T10:00:04.000Z"}),
        ),
        base(
            json!({"entity_type": "message", "session_id": "sub", "title": "hello from the subagent", "ts": "2026-11-21T10:00:04.500Z"}),
        ),
        base(
            json!({"entity_type": "session", "session_id": "sub", "parent_session_id": "main", "status": "success", "title": "subagent", "ts": "2026-11-21T10:00:05.000Z"}),
        ),
        base(
            json!({"entity_type": "session", "session_id": "main", "status": "success", "title": "main session", "ts": "2026-11-21T10:00:06.000Z"}),
        ),
        base(
            json!({"entity_type": "run", "status": "success", "title": "the run", "ts": "2026-11-21T10:00:07.000Z"}),
        ),
    ];
    for i in 0..300 {
        events.push(base(
            json!({"entity_type": "log", "session_id": "main", "title": format!("log line {i}")}),
        ));
    }
    let body = serde_json::to_string(&events).unwrap();
    let res = sightline_testkit::agent()
        .post(&format!("{url}/api/v1/events"))
        .header("Content-Type", "application/json")
        .send(body)
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);

    let mut spans: Vec<Value> = Vec::new();
    let mut logs: Vec<Value> = Vec::new();
    let mut log_requests = 0;
    let wait_until = Instant::now() + Duration::from_secs(30);
    while (spans.len() < 5 || logs.len() < 301) && Instant::now() < wait_until {
        let Ok(req) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        for rs in req["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                spans.extend(ss["spans"].as_array().cloned().unwrap_or_default());
            }
        }
        if let Some(rl) = req["resourceLogs"].as_array() {
            log_requests += 1;
            for r in rl {
                for sl in r["scopeLogs"].as_array().into_iter().flatten() {
                    logs.extend(sl["logRecords"].as_array().cloned().unwrap_or_default());
                }
            }
        }
    }
    let by_name = |n: &str| {
        spans
            .iter()
            .find(|s| s["name"] == n)
            .unwrap_or_else(|| panic!("span {n} in {spans:#?}"))
            .clone()
    };
    let (run, main, sub, tool, call) = (
        by_name("the run"),
        by_name("main session"),
        by_name("subagent"),
        by_name("Bash ls"),
        by_name("mod.fib"),
    );
    assert!(
        run.get("parentSpanId").is_none(),
        "the run is the root: {run}"
    );
    assert_eq!(main["parentSpanId"], run["spanId"], "session → run");
    assert_eq!(
        sub["parentSpanId"], main["spanId"],
        "subagent → its parent session"
    );
    assert_eq!(
        tool["parentSpanId"], sub["spanId"],
        "tool call → its session"
    );
    assert_eq!(
        call["parentSpanId"], main["spanId"],
        "traced call → its session"
    );
    for s in [&main, &sub, &tool, &call] {
        assert_eq!(s["traceId"], run["traceId"], "one trace per run");
    }
    assert_eq!(tool["status"]["code"], "STATUS_CODE_ERROR");
    // Start and end come from the start and end events.
    let ns = |v: &Value| v.as_str().unwrap().parse::<u64>().unwrap();
    assert_eq!(
        ns(&run["endTimeUnixNano"]) - ns(&run["startTimeUnixNano"]),
        7_000_000_000
    );
    assert_eq!(
        ns(&tool["endTimeUnixNano"]) - ns(&tool["startTimeUnixNano"]),
        1_000_000_000
    );
    assert_eq!(
        ns(&call["endTimeUnixNano"]) - ns(&call["startTimeUnixNano"]),
        12_000_000
    );
    // Everything else: log records inside their session's span, batched.
    assert_eq!(logs.len(), 301, "300 log lines and one message");
    let message = logs
        .iter()
        .find(|l| l["body"]["stringValue"] == "hello from the subagent")
        .unwrap();
    assert_eq!(message["spanId"], sub["spanId"]);
    assert_eq!(message["traceId"], run["traceId"]);
    assert!(
        log_requests <= 5,
        "batched: {log_requests} requests for 301 records"
    );
}
