//! Real peers the integration tests install for themselves, into a cache that outlives one run
//! (`$SIGHTLINE_TEST_CACHE`, default `~/.cache/sightline-tests`), and what they are run
//! against: the Claude Code settings of a test and a mock of the model API it talks to. Shared
//! by the sources' tests and the CLI's, so each peer is found, installed and fed one way. A
//! peer that cannot be installed fails the test saying so; nothing here ever talks to a real
//! model provider.
#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub fn cache_dir() -> PathBuf {
    std::env::var_os("SIGHTLINE_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
                .join(".cache/sightline-tests")
        })
}

/// This machine's CPU as npm's platform packages name it.
const NPM_ARCH: &str = if cfg!(target_arch = "aarch64") {
    "arm64"
} else {
    "x64"
};

/// The `opencode` binary of the npm package `opencode-ai`, installed once into the cache (the
/// platform package ships it; npm may skip the wrapper's postinstall, so the platform binary is
/// used directly).
pub fn opencode_binary() -> PathBuf {
    // Tests run in parallel: one npm install at a time.
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(install_opencode).clone()
}

fn installed_opencode(dir: &Path) -> Option<PathBuf> {
    let nm = dir.join("node_modules");
    let arch = NPM_ARCH;
    [
        nm.join(format!("opencode-linux-{arch}/bin/opencode")),
        nm.join(format!("opencode-linux-{arch}-baseline/bin/opencode")),
        nm.join(format!("opencode-darwin-{arch}/bin/opencode")),
        nm.join("opencode-ai/bin/opencode.exe"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

fn install_opencode() -> PathBuf {
    npm_peer("OPENCODE", "opencode", "opencode-ai", installed_opencode)
}

/// `opencode serve` on 127.0.0.1:`port`, isolated in `home` (its own config, data, cache and
/// npm registry settings; no model list, update, share or LSP downloads), output discarded.
/// Add environment and spawn it.
pub fn opencode_serve(home: &Path, port: u16) -> Command {
    let mut cmd = Command::new(opencode_binary());
    cmd.args([
        "serve",
        "--port",
        &port.to_string(),
        "--hostname",
        "127.0.0.1",
    ])
    .current_dir(home)
    .env("HOME", home)
    .env("XDG_CONFIG_HOME", home.join(".config"))
    .env("XDG_DATA_HOME", home.join(".local/share"))
    .env("XDG_CACHE_HOME", home.join(".cache"))
    .env("XDG_STATE_HOME", home.join(".local/state"))
    .env("NPM_CONFIG_USERCONFIG", home.join(".npmrc"))
    .env("OPENCODE_DISABLE_MODELS_FETCH", "1")
    .env("OPENCODE_DISABLE_AUTOUPDATE", "1")
    .env("OPENCODE_DISABLE_SHARE", "1")
    .env("OPENCODE_DISABLE_LSP_DOWNLOAD", "1")
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    cmd
}

/// The Claude Code version the real-binary tests pin: the hooks, OTel events and spans they
/// check are this version's (issue 13 saw 2.1.197 resolved on Node 20).
pub const CLAUDE_CODE_VERSION: &str = "2.1.197";

/// The native `claude` binary of the npm package `@anthropic-ai/claude-code` at
/// [`CLAUDE_CODE_VERSION`], installed once into the cache (the platform package ships it; the
/// wrapper's postinstall may be skipped, so the platform binary is used directly).
pub fn claude_binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(install_claude).clone()
}

fn installed_claude(dir: &Path) -> Option<PathBuf> {
    let nm = dir.join("node_modules/@anthropic-ai");
    let arch = NPM_ARCH;
    let os = if cfg!(target_os = "macos") {
        "darwin"
    } else {
        "linux"
    };
    [
        nm.join(format!("claude-code-{os}-{arch}/claude")),
        nm.join(format!("claude-code-{os}-{arch}-musl/claude")),
    ]
    .into_iter()
    .find(|p| p.exists())
}

fn install_claude() -> PathBuf {
    npm_peer(
        "CLAUDE CODE",
        &format!("claude-{CLAUDE_CODE_VERSION}"),
        &format!("@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}"),
        installed_claude,
    )
}

/// `claude` isolated in `home` (its own HOME and config dir `claude_dir`, no update, no
/// traffic but to `api_url`, the Anthropic Messages API mock), run from `cwd`. As root,
/// `--dangerously-skip-permissions` needs `IS_SANDBOX=1`, which is set. Add arguments and run.
pub fn claude_command(home: &Path, claude_dir: &Path, cwd: &Path, api_url: &str) -> Command {
    let mut cmd = Command::new(claude_binary());
    cmd.current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CLAUDE_CONFIG_DIR", claude_dir)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("ANTHROPIC_BASE_URL", api_url)
        .env("ANTHROPIC_API_KEY", "sk-ant-test-not-a-key")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("IS_SANDBOX", "1")
        .env("SHELL", "/bin/bash")
        .env("TERM", "dumb");
    cmd
}

/// Writes `dir/settings.json` for `claude --settings`: each `(events, hook)` pair sets the
/// hook list `hook` (`[{"hooks": [...]}]`) on every event it names; returns the file's path.
pub fn claude_settings_file(dir: &Path, hooks: &[(&[&str], Value)]) -> PathBuf {
    let mut map = serde_json::Map::new();
    for (events, hook) in hooks {
        for event in *events {
            map.insert(event.to_string(), hook.clone());
        }
    }
    let file = dir.join("settings.json");
    std::fs::write(&file, serde_json::json!({ "hooks": map }).to_string()).unwrap();
    file
}

/// Makes `repo` (created if missing) a git repository with everything in it committed once: an
/// agent's workspace, so the agent sees a project with a history. Fails the test when git does.
pub fn git_repo(repo: &Path) {
    std::fs::create_dir_all(repo).unwrap();
    for args in [
        &["init", "-q"][..],
        &["add", "."],
        &["commit", "-qm", "init"],
    ] {
        let ok = Command::new("git")
            .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
            .args(args)
            .current_dir(repo)
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "git {args:?} failed in {}", repo.display());
    }
}

/// One request a mock peer API received: its request line and its body (de-chunked).
pub struct MockRequest {
    pub line: String,
    pub body: Vec<u8>,
}

/// Reads one HTTP/1.1 request, its body sent with a Content-Length or chunked (as Node's
/// fetch sends it).
pub fn read_request(reader: &mut impl BufRead) -> std::io::Result<MockRequest> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let (mut length, mut chunked) = (0usize, false);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(MockRequest { line, body })
}

/// What a mock peer API answers: a status, a content type, more headers, a body.
pub struct MockReply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl MockReply {
    /// A 200 answer of `content_type`.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> MockReply {
        MockReply {
            status: 200,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

/// A mock HTTP/1.1 API on 127.0.0.1:0 (its address returned) standing in for a model provider
/// or a peer's backend: each connection carries one request, answered by `answer`, then
/// closed; each connection on a thread of its own. A broken connection is the client's
/// business: the tests check results.
pub fn mock_http(
    answer: impl Fn(&MockRequest) -> MockReply + Send + Sync + 'static,
) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || {
                let _ = serve_one(stream, &*answer);
            });
        }
    });
    addr
}

fn serve_one(
    stream: std::net::TcpStream,
    answer: &dyn Fn(&MockRequest) -> MockReply,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let request = read_request(&mut reader)?;
    let reply = answer(&request);
    let mut head = format!(
        "HTTP/1.1 {} OK\r\ncontent-type: {}\r\n",
        reply.status, reply.content_type
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        reply.body.len()
    ));
    out.write_all(head.as_bytes())?;
    out.write_all(&reply.body)?;
    out.flush()
}

/// A mock of the Anthropic Messages API (see [`mock_http`]), for [`claude_command`]'s
/// `api_url` (returned): `POST /v1/messages/count_tokens` counts 10 tokens, a request to any
/// other path is a 404, and each `POST /v1/messages` is answered by `answer`, given the
/// request's JSON (null when it is not JSON): the request id for the `request-id` header
/// (empty: none) and the body of a `text/event-stream` answer (see [`messages_sse`]).
pub fn mock_messages_api(
    answer: impl Fn(&Value) -> (String, Vec<u8>) + Send + Sync + 'static,
) -> String {
    let addr = mock_http(move |MockRequest { line, body }| {
        if !line.starts_with("POST /v1/messages") {
            let mut reply = MockReply::ok("application/json", "{}");
            reply.status = 404;
            reply
        } else if line.contains("count_tokens") {
            MockReply::ok("application/json", r#"{"input_tokens": 10}"#)
        } else {
            let request = serde_json::from_slice(body).unwrap_or(Value::Null);
            let (request_id, stream) = answer(&request);
            let mut reply = MockReply::ok("text/event-stream", stream);
            if !request_id.is_empty() {
                reply.headers.push(("request-id", request_id));
            }
            reply
        }
    });
    format!("http://{addr}")
}

/// The Messages API's SSE stream of `events`, each named by its `type` (the OpenAI Responses
/// API frames its stream the same way).
pub fn messages_sse(events: &[Value]) -> Vec<u8> {
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("")))
        .collect::<String>()
        .into_bytes()
}

/// The Codex CLI version the real-binary tests pin: the rollout lines and telemetry they check
/// are this version's.
pub const CODEX_VERSION: &str = "0.171.0";
/// The Gemini CLI version the real-binary tests pin.
pub const GEMINI_CLI_VERSION: &str = "0.61.0";

/// Installs `package` with npm into `<cache>/<dir>` unless `find` already finds what is needed
/// there; `what` names the peer in the failure ("CODEX TEST CANNOT RUN: ...").
fn npm_peer(what: &str, dir: &str, package: &str, find: fn(&Path) -> Option<PathBuf>) -> PathBuf {
    let dir = cache_dir().join(dir);
    if let Some(p) = find(&dir) {
        return p;
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("package.json"),
        r#"{"name":"sightline-peer-test","private":true}"#,
    )
    .unwrap();
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", package])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("{what} TEST CANNOT RUN: npm is not available ({e}); install Node.js/npm")
        });
    assert!(
        out.status.success(),
        "{what} TEST CANNOT RUN: `npm install {package}` failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    find(&dir).unwrap_or_else(|| {
        panic!(
            "{what} TEST CANNOT RUN: {package} installed but nothing to run in {}",
            dir.display()
        )
    })
}

/// The native `codex` binary of `@openai/codex` at [`CODEX_VERSION`], installed once into the
/// cache (the platform package ships it under `vendor/<target>/bin`; the JS wrapper only
/// finds and starts it).
pub fn codex_binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY
        .get_or_init(|| {
            npm_peer(
                "CODEX",
                &format!("codex-{CODEX_VERSION}"),
                &format!("@openai/codex@{CODEX_VERSION}"),
                installed_codex,
            )
        })
        .clone()
}

fn installed_codex(dir: &Path) -> Option<PathBuf> {
    let (package, target) = match (cfg!(target_os = "macos"), cfg!(target_arch = "aarch64")) {
        (false, false) => ("codex-linux-x64", "x86_64-unknown-linux-musl"),
        (false, true) => ("codex-linux-arm64", "aarch64-unknown-linux-musl"),
        (true, false) => ("codex-darwin-x64", "x86_64-apple-darwin"),
        (true, true) => ("codex-darwin-arm64", "aarch64-apple-darwin"),
    };
    let p = dir.join(format!(
        "node_modules/@openai/{package}/vendor/{target}/bin/codex"
    ));
    p.exists().then_some(p)
}

/// Gemini CLI's entry script (`bundle/gemini.js` of `@google/gemini-cli` at
/// [`GEMINI_CLI_VERSION`]), installed once into the cache; run it with `node`.
pub fn gemini_script() -> PathBuf {
    static SCRIPT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SCRIPT
        .get_or_init(|| {
            npm_peer(
                "GEMINI CLI",
                &format!("gemini-{GEMINI_CLI_VERSION}"),
                &format!("@google/gemini-cli@{GEMINI_CLI_VERSION}"),
                |dir| {
                    let p = dir.join("node_modules/@google/gemini-cli/bundle/gemini.js");
                    p.exists().then_some(p)
                },
            )
        })
        .clone()
}

/// The `[model_providers.mock]` table of a Codex `config.toml`: the OpenAI Responses API mock
/// at `model` (an address on 127.0.0.1), its key read from `SIGHTLINE_MOCK_KEY`, which
/// [`codex_command`] sets. Select it with `model_provider = "mock"`.
pub fn codex_mock_provider(model: std::net::SocketAddr) -> String {
    format!(
        "[model_providers.mock]\nname = \"mock\"\nbase_url = \"http://{model}/v1\"\nenv_key = \"SIGHTLINE_MOCK_KEY\"\nwire_api = \"responses\"\n"
    )
}

/// `codex` isolated in `codex_home` (`CODEX_HOME` and `HOME`), run from `cwd`, with the key the
/// mock provider's `env_key = "SIGHTLINE_MOCK_KEY"` names. Add arguments and run.
pub fn codex_command(codex_home: &Path, cwd: &Path) -> Command {
    let mut cmd = Command::new(codex_binary());
    cmd.current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", codex_home)
        .env("CODEX_HOME", codex_home)
        .env("SIGHTLINE_MOCK_KEY", "mock")
        .env("TERM", "dumb")
        .stdin(std::process::Stdio::null());
    cmd
}

/// `node gemini.js` isolated in `home` (its `~/.gemini` is `home/.gemini`), talking only to
/// `api_url` (a Gemini API mock, through `GOOGLE_GEMINI_BASE_URL`), the workspace `cwd`
/// trusted. Add arguments and run.
pub fn gemini_command(home: &Path, cwd: &Path, api_url: &str) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(gemini_script())
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GEMINI_API_KEY", "mock")
        .env("GOOGLE_GEMINI_BASE_URL", api_url)
        .env("GEMINI_CLI_TRUST_WORKSPACE", "true")
        .env("TERM", "dumb")
        .stdin(std::process::Stdio::null());
    cmd
}
