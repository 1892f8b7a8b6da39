//! Plugins: external analyzers the dashboard can send selected events to.
//!
//! A plugin is declared in `SIGHTLINE_PLUGINS` (a JSON array, or `@/path/to/plugins.json`):
//!
//! ```json
//! [{"name": "sample-analyzer", "command": ["python3", "plugins/sample-analyzer.py"], "timeout_ms": 10000},
//!  {"name": "remote", "url": "http://127.0.0.1:9000/rpc", "description": "team analyzer"}]
//! ```
//!
//! Both kinds speak JSON-RPC 2.0: the hub sends one request
//! `{"jsonrpc":"2.0","id":N,"method":"analyze","params":{"events":[Event],"context":{..}}}` and
//! expects one response. A command plugin is started per invocation, gets the request as one
//! line on stdin (then EOF) and answers with one line on stdout; an HTTP plugin gets it as the
//! body of a POST to its `http://` or `https://` URL, sent by the shared client stack
//! ([`crate::http`]: the system's roots plus `--cacert` / `SIGHTLINE_CA_FILE`).
//!
//! The server lists them (`GET /api/v1/plugins`, without command lines or URLs) and invokes them
//! (`POST /api/v1/plugins/{name}/invoke`) through the core's `Analyzers` port, which
//! [`Plugins`] implements.
//!
//! The rule of this module: a plugin that crashes, hangs, answers garbage or floods its output
//! yields an error answer (`502 plugin_failed` / `plugin_error`, `504 plugin_timeout`) and never
//! takes the hub down or blocks its async workers. Everything that touches the plugin runs on
//! blocking threads, bounded by the plugin's timeout, its child killed at the deadline, its
//! output capped; at most `MAX_CONCURRENT` invocations run at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use sightline_core::plugins::{
    Analyzers, PluginAnswer, PluginFailure, PluginFuture, PluginInfo, PluginList,
};
use tokio::sync::Semaphore;

use crate::http;

const DEFAULT_TIMEOUT_MS: u64 = 10_000;
const MAX_TIMEOUT_MS: u64 = 120_000;
/// The most output read from a plugin; a larger answer is an error, not an OOM.
const MAX_OUTPUT: usize = 8 * 1024 * 1024;
const MAX_CONCURRENT: usize = 4;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    pub name: String,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub description: Option<String>,
}

impl PluginSpec {
    fn kind(&self) -> &'static str {
        if self.url.is_some() {
            "http"
        } else {
            "command"
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(
            self.timeout_ms
                .unwrap_or(DEFAULT_TIMEOUT_MS)
                .clamp(1, MAX_TIMEOUT_MS),
        )
    }
}

/// The declared plugins, or the configuration error that is reported instead of them.
struct Registry {
    plugins: Vec<PluginSpec>,
    error: Option<String>,
}

fn parse_specs(text: &str) -> Result<Vec<PluginSpec>, String> {
    // The error is listed to read tokens (`config_error`), so it names where the text is wrong,
    // never what it holds: serde's message quotes values (a command line, a URL with a key).
    let specs: Vec<PluginSpec> = serde_json::from_str(text).map_err(|e| {
        format!(
            "SIGHTLINE_PLUGINS is not a valid JSON array of plugins ({:?} error at line {}, \
             column {}): each is {{\"name\", \"command\": [..] or \"url\", \"timeout_ms\", \
             \"description\"}}",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    let mut seen = std::collections::HashSet::new();
    for s in &specs {
        if s.name.is_empty()
            || !s
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(format!(
                "plugin name `{}` must be non-empty and use only letters, digits, `-`, `_`, `.`",
                s.name
            ));
        }
        if !seen.insert(s.name.clone()) {
            return Err(format!("plugin `{}` is declared twice", s.name));
        }
        match (&s.command, &s.url) {
            (Some(c), None) if !c.is_empty() => {}
            (None, Some(u)) if u.starts_with("http://") || http::is_https(u) => {}
            (None, Some(_)) => {
                // Not quoted: the URL may hold a key, and this error is listed to read tokens.
                return Err(format!(
                    "plugin `{}`: its url must start with http:// or https://",
                    s.name
                ));
            }
            _ => {
                return Err(format!(
                    "plugin `{}` needs exactly one of `command` (non-empty list) or `url`",
                    s.name
                ));
            }
        }
    }
    Ok(specs)
}

/// Read once, at first use: the env var is set when the hub starts.
fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let raw = match std::env::var("SIGHTLINE_PLUGINS") {
            Ok(v) if !v.trim().is_empty() => v,
            _ => {
                return Registry {
                    plugins: Vec::new(),
                    error: None,
                };
            }
        };
        let text = match raw.trim().strip_prefix('@') {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    return Registry {
                        plugins: Vec::new(),
                        error: Some(format!("cannot read plugin file {path}: {e}")),
                    };
                }
            },
            None => raw,
        };
        match parse_specs(&text) {
            Ok(plugins) => Registry {
                plugins,
                error: None,
            },
            Err(e) => {
                tracing::warn!("{e}");
                Registry {
                    plugins: Vec::new(),
                    error: Some(e),
                }
            }
        }
    })
}

fn semaphore() -> &'static Semaphore {
    static SEM: OnceLock<Semaphore> = OnceLock::new();
    SEM.get_or_init(|| Semaphore::new(MAX_CONCURRENT))
}

/// The plugins declared in `SIGHTLINE_PLUGINS`, run as the core's [`Analyzers`].
#[derive(Default, Clone, Copy)]
pub struct Plugins;

impl Analyzers for Plugins {
    fn list(&self) -> PluginList {
        let r = registry();
        PluginList {
            plugins: r
                .plugins
                .iter()
                .map(|p| PluginInfo {
                    name: p.name.clone(),
                    kind: p.kind().into(),
                    description: p.description.clone(),
                    timeout_ms: p.timeout().as_millis() as u64,
                })
                .collect(),
            config_error: r.error.clone(),
        }
    }

    fn invoke(&self, name: &str, events: Vec<Value>, context: Value) -> PluginFuture {
        let spec = registry().plugins.iter().find(|p| p.name == name).cloned();
        let name = name.to_string();
        Box::pin(async move {
            let Some(spec) = spec else {
                return Err(PluginFailure::NotFound(name));
            };
            run(spec, events, context).await
        })
    }
}

async fn run(
    spec: PluginSpec,
    events: Vec<Value>,
    context: Value,
) -> Result<PluginAnswer, PluginFailure> {
    let Ok(_permit) = semaphore().try_acquire() else {
        return Err(PluginFailure::Busy(MAX_CONCURRENT));
    };
    let n = events.len();
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "analyze", "params": {"events": events, "context": context}});
    let line = serde_json::to_vec(&request).map_err(|e| PluginFailure::Failed(e.to_string()))?;
    let started = Instant::now();
    let timeout = spec.timeout();
    let task_spec = spec.clone();
    let task = tokio::task::spawn_blocking(move || match &task_spec.url {
        Some(url) => call_http(url, &line, timeout),
        None => call_command(
            task_spec.command.as_deref().unwrap_or_default(),
            &line,
            timeout,
        ),
    });
    // Belt and braces: the blocking call enforces the deadline itself; this one guards the hub
    // against a bug there. A panic in the task is an error answer too.
    let outcome = match tokio::time::timeout(timeout + Duration::from_secs(2), task).await {
        Ok(Ok(o)) => o,
        Ok(Err(join)) => Err(Failure::Failed(format!("plugin runner failed: {join}"))),
        Err(_) => Err(Failure::Timeout),
    };
    let ms = started.elapsed().as_millis() as u64;
    match outcome.and_then(|raw| parse_response(&raw)) {
        Ok(result) => {
            tracing::debug!(plugin = %spec.name, events = n, ms, "plugin answered");
            Ok(PluginAnswer {
                plugin: spec.name,
                ok: true,
                duration_ms: ms,
                events: n,
                result,
            })
        }
        Err(Failure::Timeout) => Err(PluginFailure::Timeout(timeout.as_millis() as u64)),
        Err(Failure::Failed(m)) => Err(PluginFailure::Failed(m)),
        Err(Failure::RpcError(m)) => Err(PluginFailure::PluginError(Value::String(m))),
    }
}

#[derive(Debug)]
enum Failure {
    Timeout,
    Failed(String),
    RpcError(String),
}

fn parse_response(raw: &[u8]) -> Result<Value, Failure> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| {
        let preview = String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned();
        Failure::Failed(format!("answer is not JSON ({e}): {preview:?}"))
    })?;
    if v.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(Failure::Failed(
            "answer is not a JSON-RPC 2.0 response (no \"jsonrpc\": \"2.0\")".into(),
        ));
    }
    if let Some(err) = v.get("error") {
        let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
        let msg = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        return Err(Failure::RpcError(format!("{code}: {msg}")));
    }
    v.get("result")
        .cloned()
        .ok_or_else(|| Failure::Failed("JSON-RPC response has neither result nor error".into()))
}

/// Reads at most `cap` bytes; used on a plugin's stderr.
fn read_capped(mut r: impl Read, cap: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = r.by_ref().take(cap as u64).read_to_end(&mut buf);
    // Drain the rest so the child never blocks on a full pipe.
    let _ = std::io::copy(&mut r, &mut std::io::sink());
    buf
}

fn call_command(argv: &[String], request: &[u8], timeout: Duration) -> Result<Vec<u8>, Failure> {
    let deadline = Instant::now() + timeout;
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Failure::Failed("empty command".into()))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::Failed(format!("cannot start `{program}`: {e}")))?;

    // Each pipe on its own thread: a plugin that never reads stdin or floods stderr cannot
    // block us; the deadline below is the only wait.
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut line = request.to_vec();
    line.push(b'\n');
    std::thread::spawn(move || {
        let _ = stdin.write_all(&line);
        // Dropping stdin sends EOF: a well-behaved plugin answers and exits.
    });
    let stderr = child.stderr.take().expect("piped stderr");
    let err_thread = std::thread::spawn(move || read_capped(stderr, 4096));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout).take(MAX_OUTPUT as u64 + 1);
        let mut answer = Vec::new();
        let result = reader.read_until(b'\n', &mut answer).map(|_| answer);
        let _ = tx.send(result);
        let _ = std::io::copy(&mut reader.into_inner(), &mut std::io::sink());
    });

    let got = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    // Whatever happened, the child does not outlive the invocation.
    let status = match child.try_wait() {
        Ok(Some(s)) => Some(s),
        _ => {
            // Give a plugin that answered a moment to exit on its own, then stop it.
            let grace = Instant::now() + Duration::from_millis(if got.is_ok() { 200 } else { 0 });
            loop {
                if let Ok(Some(s)) = child.try_wait() {
                    break Some(s);
                }
                if Instant::now() >= grace {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    let stderr_tail = || {
        let bytes = err_thread.join().unwrap_or_default();
        let s = String::from_utf8_lossy(&bytes).trim().to_string();
        if s.is_empty() {
            String::new()
        } else {
            format!(
                "; stderr: {}",
                s.chars()
                    .rev()
                    .take(400)
                    .collect::<String>()
                    .chars()
                    .rev()
                    .collect::<String>()
            )
        }
    };
    match got {
        Err(_) => Err(Failure::Timeout),
        Ok(Err(e)) => Err(Failure::Failed(format!("reading its answer: {e}"))),
        Ok(Ok(answer)) if answer.len() > MAX_OUTPUT => Err(Failure::Failed(format!(
            "answer is over {MAX_OUTPUT} bytes"
        ))),
        Ok(Ok(answer)) if answer.iter().all(u8::is_ascii_whitespace) => {
            let how = match status {
                Some(s) => match s.code() {
                    Some(c) => format!("exited with status {c}"),
                    None => "was killed by a signal".to_string(),
                },
                None => "closed its output".to_string(),
            };
            Err(Failure::Failed(format!(
                "it {how} without answering{}",
                stderr_tail()
            )))
        }
        Ok(Ok(answer)) => Ok(answer),
    }
}

/// One JSON-RPC POST through the shared client stack ([`crate::http`]): `https://` with the
/// system's roots and the private CA, chunked answers, and the same bounds as a command plugin
/// (the whole exchange within `timeout`, at most `MAX_OUTPUT` bytes read).
fn call_http(url: &str, body: &[u8], timeout: Duration) -> Result<Vec<u8>, Failure> {
    let timeouts = http::Timeouts {
        connect: Some(timeout),
        global: Some(timeout),
    };
    let agent = http::agent(url, &timeouts).map_err(|e| Failure::Failed(e.to_string()))?;
    let failed = |e: ureq::Error| match e {
        ureq::Error::Timeout(_) => Failure::Timeout,
        ureq::Error::BodyExceedsLimit(_) => {
            Failure::Failed(format!("answer is over {MAX_OUTPUT} bytes"))
        }
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => Failure::Timeout,
        e => Failure::Failed(http::explain(&e, url, "the plugin").1),
    };
    let mut answer = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .header("User-Agent", "sightline-hub")
        .send(body)
        .map_err(failed)?;
    let status = answer.status().as_u16();
    let body = answer
        .body_mut()
        .with_config()
        .limit(MAX_OUTPUT as u64)
        .read_to_vec()
        .map_err(failed)?;
    if !(200..300).contains(&status) {
        let preview = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(Failure::Failed(format!("HTTP {status}: {preview}")));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(code: &str) -> Vec<String> {
        vec!["python3".into(), "-c".into(), code.into()]
    }

    #[test]
    fn specs_are_validated() {
        assert!(
            parse_specs(r#"[{"name":"a","command":["x"]},{"name":"b","url":"http://h:1/"}]"#)
                .is_ok()
        );
        assert!(parse_specs(r#"[{"name":"a","command":["x"],"url":"http://h/"}]"#).is_err());
        assert!(parse_specs(r#"[{"name":"a","url":"https://h/"}]"#).is_ok());
        assert!(parse_specs(r#"[{"name":"a","url":"ftp://h/"}]"#).is_err());
        assert!(parse_specs(r#"[{"name":"a b","command":["x"]}]"#).is_err());
        assert!(
            parse_specs(r#"[{"name":"a","command":["x"]},{"name":"a","command":["y"]}]"#).is_err()
        );
        assert!(parse_specs(r#"[{"name":"a","command":["x"],"bogus":1}]"#).is_err());
    }

    /// Issue 11, item 12: the configuration error is listed to read tokens, so it must not
    /// quote the command line or URL it refuses (serde's own message would).
    #[test]
    fn a_configuration_error_does_not_quote_what_it_refuses() {
        for bad in [
            r#"[{"name":"a","command":"run --api-key=cfg-secret-1"}]"#,
            r#"[{"name":"a","url":"ftp://u:cfg-secret-1@h/"}]"#,
            r#"[{"name":"a","command":["x"],"timeout_ms":"cfg-secret-1"}]"#,
            r#"{"name":"cfg-secret-1"}"#,
        ] {
            let e = parse_specs(bad).unwrap_err();
            assert!(!e.contains("cfg-secret-1"), "{bad} → {e}");
            assert!(
                e.contains("SIGHTLINE_PLUGINS") || e.contains("plugin `a`"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_command_plugin_answers() {
        let argv = py(
            "import sys,json\nreq=json.loads(sys.stdin.readline())\nprint(json.dumps({'jsonrpc':'2.0','id':req['id'],'result':{'n':len(req['params']['events'])}}))",
        );
        let req = br#"{"jsonrpc":"2.0","id":1,"method":"analyze","params":{"events":[{},{}],"context":{}}}"#;
        let raw = call_command(&argv, req, Duration::from_secs(10)).unwrap();
        assert_eq!(parse_response(&raw).unwrap(), json!({"n": 2}));
    }

    #[test]
    fn a_crash_is_a_failure_with_stderr() {
        let err = call_command(
            &py("import sys\nsys.stderr.write('boom')\nsys.exit(3)"),
            b"{}",
            Duration::from_secs(10),
        )
        .unwrap_err();
        match err {
            Failure::Failed(m) => assert!(m.contains("status 3") && m.contains("boom"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_hang_is_a_timeout_and_the_child_is_stopped() {
        let started = Instant::now();
        let err = call_command(
            &py("import time\ntime.sleep(60)"),
            b"{}",
            Duration::from_millis(500),
        )
        .unwrap_err();
        assert!(matches!(err, Failure::Timeout), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn garbage_and_rpc_errors_are_reported() {
        assert!(matches!(
            parse_response(b"not json"),
            Err(Failure::Failed(_))
        ));
        assert!(matches!(
            parse_response(br#"{"result":1}"#),
            Err(Failure::Failed(_))
        ));
        assert!(matches!(
            parse_response(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"no"}}"#),
            Err(Failure::RpcError(_))
        ));
    }

    #[test]
    fn a_missing_program_is_a_failure() {
        let err = call_command(
            &["/nonexistent/plugin".to_string()],
            b"{}",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, Failure::Failed(_)));
    }

    /// Reads a whole request (head, then `Content-Length` bytes), so that the answer never
    /// races the client's body: closing a socket with unread bytes resets it.
    fn read_request(s: &mut std::net::TcpStream) {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if got.len() >= end + 4 + length {
                    return;
                }
            }
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[test]
    fn http_plugins_answer_and_fail_cleanly() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let mut s = stream.unwrap();
                read_request(&mut s);
                if i == 0 {
                    let body = r#"{"jsonrpc":"2.0","id":1,"result":{"ok":true}}"#;
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                } else if i == 1 {
                    let _ = write!(
                        s,
                        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops"
                    );
                } else if i == 2 {
                    // A chunked answer, split mid-value.
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n15\r\n{{\"jsonrpc\":\"2.0\",\"id\"\r\ne\r\n:1,\"result\":7}}\r\n0\r\n\r\n"
                    );
                } else if i == 3 {
                    // An answer over the cap, announced honestly.
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        MAX_OUTPUT + 10
                    );
                    let _ = s.write_all(&vec![b' '; MAX_OUTPUT + 10]);
                } else {
                    std::thread::sleep(Duration::from_secs(5)); // hang
                }
            }
        });
        let url = format!("http://127.0.0.1:{port}/rpc");
        let raw = call_http(&url, b"{}", Duration::from_secs(5)).unwrap();
        assert_eq!(parse_response(&raw).unwrap(), json!({"ok": true}));
        assert!(
            matches!(call_http(&url, b"{}", Duration::from_secs(5)), Err(Failure::Failed(m)) if m.contains("500"))
        );
        let raw = call_http(&url, b"{}", Duration::from_secs(5)).unwrap();
        assert_eq!(parse_response(&raw).unwrap(), json!(7));
        let over = call_http(&url, b"{}", Duration::from_secs(5));
        assert!(
            matches!(&over, Err(Failure::Failed(m)) if m.contains("over")),
            "{over:?}"
        );
        let started = Instant::now();
        assert!(matches!(
            call_http(&url, b"{}", Duration::from_millis(300)),
            Err(Failure::Timeout)
        ));
        assert!(started.elapsed() < Duration::from_secs(3));
        // Nothing listening: a failure that says so, not a timeout.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}/rpc", closed.local_addr().unwrap());
        drop(closed);
        assert!(
            matches!(call_http(&dead, b"{}", Duration::from_secs(2)), Err(Failure::Failed(m)) if m.contains("nothing answers")),
        );
    }
}
