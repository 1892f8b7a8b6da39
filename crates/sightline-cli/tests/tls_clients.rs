//! Every Rust client of a hub over TLS with a private CA: the real `sightline serve
//! --tls-cert/--tls-key` with a certificate signed by a CA this test makes (`testkit::tls`),
//! and the real binary's `status`, `hook`, `tail`, `replay`, `export`, `import`, `run` and
//! `stop`, plus `serve --otlp-export https://…`, each trusting the CA through `--cacert` or
//! `SIGHTLINE_CA_FILE`. Without the CA (or with another one, or with plain `http://` to the TLS
//! port) each fails with a message that says what to do, and `hook` still exits 0, spools and
//! says why on stderr.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sightline_testkit::tls::TestCa;

mod common;
use common::{BIN, Served, run_with_stdin, serve_command};

/// A hub serving TLS with the CA's server certificate, in its own temporary directory.
struct TlsHub {
    served: Served,
    _dir: tempfile::TempDir,
}

fn tls_hub(ca: &TestCa, extra: &[&str]) -> TlsHub {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(&dir.path().join("db.sqlite"));
    cmd.args(["--source", "http", "--tls-cert"])
        .arg(&ca.cert)
        .arg("--tls-key")
        .arg(&ca.key)
        .args(extra)
        .env("HOME", dir.path())
        .env_remove("SIGHTLINE_CA_FILE");
    let served = Served::spawn(cmd);
    assert!(served.url.starts_with("https://"), "{}", served.url);
    TlsHub { served, _dir: dir }
}

/// The CLI with a clean environment: no URL, token or CA from the machine running the tests.
fn sightline(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("SIGHTLINE_URL")
        .env_remove("SIGHTLINE_TOKEN")
        .env_remove("SIGHTLINE_CA_FILE")
        .env_remove("SIGHTLINE_CONFIG")
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run sightline")
}

/// Asserts that the command failed (exit 1) saying each of `words` on stderr.
fn failed_saying(out: &Output, words: &[&str]) {
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    for word in words {
        assert!(err.contains(word), "`{word}` is not in: {err}");
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// GET through a client that trusts the CA.
fn get(ca: &TestCa, url: &str) -> Value {
    let mut res = ca.agent().get(url).call().unwrap();
    assert_eq!(res.status().as_u16(), 200, "GET {url}");
    res.body_mut().read_json().unwrap()
}

fn head_seq(ca: &TestCa, hub: &str) -> u64 {
    get(ca, &format!("{hub}/api/v1/health"))["head_seq"]
        .as_u64()
        .unwrap()
}

/// Waits up to `budget` for `check`; the budget is generous for two shared cores.
fn eventually(budget: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + budget;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

#[test]
fn status_trusts_the_private_ca_from_the_flag_or_the_environment_and_says_what_to_do_without_it() {
    let ca = TestCa::new();
    let hub = tls_hub(&ca, &[]);
    let url = hub.served.url.as_str();
    let ca_path = ca.ca.to_str().unwrap();

    let out = run(&mut sightline(&[
        "status", "--url", url, "--cacert", ca_path,
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("at {url}")),
        "{}",
        text(&out.stdout)
    );

    let out = run(sightline(&["status"])
        .env("SIGHTLINE_URL", url)
        .env("SIGHTLINE_CA_FILE", &ca.ca));
    assert!(out.status.success(), "{}", text(&out.stderr));

    // No CA: the system's roots do not know this one.
    let out = run(&mut sightline(&["status", "--url", url]));
    failed_saying(&out, &["is not trusted", "--cacert", "SIGHTLINE_CA_FILE"]);
    let err = text(&out.stderr);
    assert!(
        !err.contains("start one with"),
        "a TLS problem is not a dead hub: {err}"
    );

    // Another CA is no better.
    let other = TestCa::new();
    let out = run(&mut sightline(&[
        "status",
        "--url",
        url,
        "--cacert",
        other.ca.to_str().unwrap(),
    ]));
    failed_saying(&out, &["is not trusted"]);

    // Plain HTTP to the TLS port.
    let plain = url.replacen("https://", "http://", 1);
    let out = run(&mut sightline(&[
        "status", "--url", &plain, "--cacert", ca_path,
    ]));
    failed_saying(&out, &[&format!("use {url}")]);

    // A CA file that is missing, or holds no certificate.
    let missing = ca.dir().join("nope.pem");
    let out = run(&mut sightline(&[
        "status",
        "--url",
        url,
        "--cacert",
        missing.to_str().unwrap(),
    ]));
    failed_saying(&out, &["cannot read the CA file", "nope.pem"]);
    let out = run(sightline(&["status", "--url", url]).env("SIGHTLINE_CA_FILE", &ca.key));
    failed_saying(&out, &["holds no certificate"]);

    // https:// to a plain hub.
    let plain_dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(&plain_dir.path().join("db.sqlite"));
    cmd.args(["--source", "http"]).env("HOME", plain_dir.path());
    let plain_hub = Served::spawn(cmd);
    let wrong = plain_hub.url.replacen("http://", "https://", 1);
    let out = run(&mut sightline(&[
        "status", "--url", &wrong, "--cacert", ca_path,
    ]));
    failed_saying(&out, &["does not speak TLS", "use http://"]);
}

fn hook(url: &str, spool: &Path, ca: Option<&Path>, prompt: &str) -> Output {
    let mut cmd = sightline(&["hook", "--url", url]);
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    let payload = json!({"session_id": "sess-tls", "transcript_path": "/t.jsonl", "cwd": "/tmp",
        "permission_mode": "default", "hook_event_name": "UserPromptSubmit", "prompt": prompt});
    run_with_stdin(
        cmd.env("SIGHTLINE_SPOOL_DIR", spool).stderr(Stdio::piped()),
        payload.to_string().as_bytes(),
    )
}

fn prompts(ca: &TestCa, hub: &str) -> Vec<String> {
    let found = get(ca, &format!("{hub}/api/v1/search?sources=claude&limit=100"));
    let mut prompts: Vec<String> = found["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["payload"]["prompt"].as_str().map(str::to_string))
        .collect();
    prompts.sort();
    prompts
}

#[test]
fn hook_delivers_to_a_tls_hub_and_says_why_it_spools_without_the_ca() {
    let ca = TestCa::new();
    let hub = tls_hub(&ca, &[]);
    let url = hub.served.url.as_str();
    let spool = ca.dir().join("spool");

    // Without the CA: exit 0, nothing on stdout, the reason on stderr, the payload spooled.
    let out = hook(url, &spool, None, "first");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("is not trusted") && err.contains("--cacert"),
        "{err}"
    );
    assert!(prompts(&ca, url).is_empty());
    let spooled: u64 = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    assert!(spooled > 0, "nothing spooled in {}", spool.display());

    // With it: delivered at once, and the spooled one with it.
    let out = hook(url, &spool, Some(&ca.ca), "second");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(prompts(&ca, url), ["first", "second"]);
}

#[test]
fn replay_export_import_tail_run_and_stop_over_tls() {
    let ca = TestCa::new();
    let hub = tls_hub(&ca, &[]);
    let url = hub.served.url.clone();
    let ca_path = ca.ca.to_str().unwrap();
    let dir = ca.dir();

    // replay, trusting the CA by flag.
    let recording = dir.join("recording.jsonl");
    let events: Vec<Value> = (0..3)
        .map(|i| sightline_testkit::event("run-tls", i))
        .collect();
    std::fs::write(&recording, sightline_testkit::ndjson(&events)).unwrap();
    let out = run(&mut sightline(&[
        "replay",
        "--url",
        &url,
        "--cacert",
        ca_path,
        "--speed",
        "0",
        "--keep-ids",
        recording.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(head_seq(&ca, &url), 3);

    // export, trusting it by the environment.
    let exported = dir.join("run.ndjson");
    let out = run(sightline(&[
        "export",
        "--url",
        &url,
        "--format",
        "ndjson",
        "-o",
        exported.to_str().unwrap(),
        "run-tls",
    ])
    .env("SIGHTLINE_CA_FILE", &ca.ca));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = std::fs::read_to_string(&exported).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");

    // import: the same events again are duplicates, the hub says so and stores nothing new.
    let out = run(&mut sightline(&[
        "import",
        "--url",
        &url,
        "--cacert",
        ca_path,
        exported.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(head_seq(&ca, &url), 3);
    // ... and without the CA it is refused before anything is sent.
    let out = run(&mut sightline(&[
        "import",
        "--url",
        &url,
        exported.to_str().unwrap(),
    ]));
    failed_saying(&out, &["is not trusted"]);

    // tail: the stream over TLS.
    let out = run(&mut sightline(&[
        "tail",
        "--url",
        &url,
        "--cacert",
        ca_path,
        "--since-seq",
        "0",
        "--limit",
        "2",
        "--json",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let streamed: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(streamed.len(), 2);
    assert_eq!(streamed[0]["seq"], 1);
    assert_eq!(streamed[0]["run_id"], "run-tls");
    let out = run(&mut sightline(&["tail", "--url", &url, "--limit", "1"]));
    failed_saying(&out, &["is not trusted"]);

    // run: a program watched from outside, its process events sent over TLS.
    let out = run(&mut sightline(&[
        "run",
        "--url",
        &url,
        "--cacert",
        ca_path,
        "--run-id",
        "run-proc-tls",
        "--no-python-agent",
        "--",
        "true",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        eventually(Duration::from_secs(10), || {
            get(
                &ca,
                &format!("{url}/api/v1/search?runs=run-proc-tls&limit=10"),
            )["events"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
        }),
        "no process event of `sightline run` reached the TLS hub"
    );

    // stop: refused without the CA (the hub keeps running), done with it.
    let out = run(&mut sightline(&["stop", "--url", &url]));
    assert_eq!(out.status.code(), Some(1));
    assert!(head_seq(&ca, &url) >= 3);
    let out = run(sightline(&["stop", "--url", &url]).env("SIGHTLINE_CA_FILE", &ca.ca));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("stopped"),
        "{}",
        text(&out.stderr)
    );
    let mut served = hub.served;
    assert!(
        eventually(Duration::from_secs(10), || served
            .child
            .try_wait()
            .unwrap()
            .is_some()),
        "the hub is still running after stop"
    );
}

#[test]
fn otlp_export_reaches_an_https_collector_with_the_ca_and_reports_why_not_without_it() {
    let ca = TestCa::new();
    // The receiver: a TLS hub's own OTLP/HTTP endpoints.
    let receiver = tls_hub(&ca, &[]);
    let collector = receiver.served.url.clone();

    let exporter = |ca_file: Option<&Path>| {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = serve_command(&dir.path().join("db.sqlite"));
        cmd.args(["--source", "http", "--otlp-export", &collector])
            .env("HOME", dir.path())
            .env_remove("SIGHTLINE_CA_FILE");
        if let Some(ca_file) = ca_file {
            cmd.arg("--cacert").arg(ca_file);
        }
        (Served::spawn(cmd), dir)
    };

    let (with_ca, _d1) = exporter(Some(&ca.ca));
    let events: Vec<Value> = (0..3)
        .map(|i| sightline_testkit::event("run-otlp", i))
        .collect();
    let (status, body) = sightline_testkit::post(
        &format!("{}/api/v1/events", with_ca.url),
        "application/x-ndjson",
        sightline_testkit::ndjson(&events),
    );
    assert_eq!(status, 202, "{body}");
    assert!(
        eventually(Duration::from_secs(20), || head_seq(&ca, &collector) > 0),
        "nothing reached the https collector"
    );

    let (without_ca, _d2) = exporter(None);
    let (status, body) = sightline_testkit::post(
        &format!("{}/api/v1/events", without_ca.url),
        "application/x-ndjson",
        sightline_testkit::ndjson(&[sightline_testkit::event("run-otlp-2", 0)]),
    );
    assert_eq!(status, 202, "{body}");
    let last_error = || {
        let health = sightline_testkit::get(&format!("{}/api/v1/health", without_ca.url));
        health["adapters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "otlp-export")
            .and_then(|a| a["last_error"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    assert!(
        eventually(Duration::from_secs(20), || last_error()
            .contains("is not trusted")),
        "health says: {}",
        last_error()
    );
    assert!(last_error().contains("--cacert"), "{}", last_error());

    // A CA file that cannot be used stops `serve` before it starts (exit 2).
    let dir = tempfile::tempdir().unwrap();
    let out = run(serve_command(&dir.path().join("db.sqlite"))
        .args(["--source", "http", "--otlp-export", &collector, "--cacert"])
        .arg(dir.path().join("missing.pem"))
        .env("HOME", dir.path())
        .stdout(Stdio::null()));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot read the CA file"),
        "{}",
        text(&out.stderr)
    );
}

/// A JSON-RPC analyzer plugin served over HTTPS by Python's `http.server` and `ssl`, with the
/// CA's server certificate; killed when dropped.
struct HttpsPlugin {
    child: std::process::Child,
    url: String,
}

impl HttpsPlugin {
    fn start(ca: &TestCa) -> HttpsPlugin {
        const SERVER: &str = r#"
import http.server, json, ssl, sys
class Plugin(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        n = len(req["params"]["events"])
        body = json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": {"events": n, "over": "tls"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Plugin)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = tls.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .arg(&ca.cert)
            .arg(&ca.key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the test's HTTPS plugin");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let port: u16 = line.trim().parse().expect("the plugin prints its port");
        HttpsPlugin {
            child,
            url: format!("https://127.0.0.1:{port}/rpc"),
        }
    }
}

impl Drop for HttpsPlugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_https_plugin_is_called_with_the_private_ca_and_refused_without_it() {
    let ca = TestCa::new();
    let plugin = HttpsPlugin::start(&ca);
    let plugins = json!([{"name": "tls-analyzer", "url": plugin.url}]).to_string();
    let hub = |ca_file: Option<&Path>| {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = serve_command(&dir.path().join("db.sqlite"));
        cmd.args(["--source", "http"])
            .env("HOME", dir.path())
            .env("SIGHTLINE_PLUGINS", &plugins)
            .env_remove("SIGHTLINE_CA_FILE");
        if let Some(ca_file) = ca_file {
            cmd.env("SIGHTLINE_CA_FILE", ca_file);
        }
        (Served::spawn(cmd), dir)
    };
    let invoke = |hub: &str| {
        sightline_testkit::post(
            &format!("{hub}/api/v1/plugins/tls-analyzer/invoke"),
            "application/json",
            json!({"events": [sightline_testkit::event("run-plugin", 0)]}).to_string(),
        )
    };

    let (trusting, _d1) = hub(Some(&ca.ca));
    let (status, answer) = invoke(&trusting.url);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["result"],
        json!({"events": 1, "over": "tls"}),
        "{answer}"
    );

    let (untrusting, _d2) = hub(None);
    let (status, answer) = invoke(&untrusting.url);
    assert_eq!(status, 502, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("is not trusted") && message.contains("SIGHTLINE_CA_FILE"),
        "{answer}"
    );
}
