//! `sightline install codex|gemini` (the real binary): Codex's `config.toml` gets one `[otel]`
//! section between markers, idempotently and with a backup, the user's text kept byte for byte
//! and restored by `--uninstall`; the real Codex CLI (npm `@openai/codex`, pinned in the test
//! kit) then sends its telemetry to a real hub through that section. Gemini CLI's
//! `settings.json` gets its `telemetry` block the same way.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

mod common;
use common::TestHub;
use sightline_testkit::peers::{
    MockReply, codex_binary, codex_command, codex_mock_provider, messages_sse, mock_http,
};

use common::sightline_with as sightline;

fn backups(dir: &Path, name: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}.sightline-backup-"))
        })
        .count()
}

/// An HTTP mock (the test kit's [`mock_http`]): each request's path goes to `answer`, which
/// gives the content type and body sent back.
fn http_mock(answer: fn(&str) -> (&'static str, String)) -> std::net::SocketAddr {
    mock_http(move |request| {
        let (content_type, text) = answer(request.line.split(' ').nth(1).unwrap_or("/"));
        MockReply::ok(content_type, text)
    })
}

/// The OpenAI Responses API: a stream with one assistant message and `response.completed`.
fn responses_mock() -> std::net::SocketAddr {
    http_mock(|_| {
        let item = json!({"type": "message", "role": "assistant", "id": "msg_1",
            "content": [{"type": "output_text", "text": "Nothing to do."}]});
        let events = [
            json!({"type": "response.created", "response": {"id": "resp_1"}}),
            json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
            json!({"type": "response.completed", "response": {"id": "resp_1", "usage":
                {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12}}}),
        ];
        let sse = String::from_utf8(messages_sse(&events)).unwrap();
        ("text/event-stream", sse)
    })
}

/// The Gemini API: a streamed answer of one text part; anything else (a next-speaker check,
/// `countTokens`) a small JSON answer.
fn gemini_mock() -> std::net::SocketAddr {
    http_mock(|path| {
        let answer = |text: &str| {
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": "STOP", "index": 0}], "modelVersion": "gemini-2.5-flash",
                "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}})
        };
        if path.contains(":streamGenerateContent") {
            (
                "text/event-stream",
                format!("data: {}\r\n\r\n", answer("Nothing to do.")),
            )
        } else if path.contains(":countTokens") {
            ("application/json", json!({"totalTokens": 5}).to_string())
        } else {
            let next = "{\"reasoning\": \"done\", \"next_speaker\": \"user\"}";
            ("application/json", answer(next).to_string())
        }
    })
}

/// The hub's stored events, read with `token` (the hub requires it).
fn events_with_token(hub: &TestHub, token: &str) -> Vec<Value> {
    let answer = sightline_testkit::agent()
        .get(&format!("{}/api/v1/search?order=asc&limit=1000", hub.url))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .map(|mut r| r.body_mut().read_json::<Value>().unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    answer["events"].as_array().cloned().unwrap_or_default()
}

/// Waits until an event of `source` named `source_event` is stored (read with `token`).
fn wait_for_event(hub: &TestHub, token: &str, source: &str, source_event: &str) {
    let start = std::time::Instant::now();
    // The agents flush their telemetry at exit; 20 s is the agent's export timeout and more.
    while start.elapsed() < Duration::from_secs(20) {
        if events_with_token(hub, token)
            .iter()
            .any(|e| e["source"] == source && e["source_event"] == source_event)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "no {source_event} from {source} reached the hub that requires a token; have {:?}",
        events_with_token(hub, token)
    );
}

/// Runs an agent to its end; the test fails with its output when it does not succeed.
fn run_agent(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what} TEST CANNOT RUN: starting it failed: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A Codex home (`codex`) and a workspace (`work`) under `dir`, both created.
fn codex_home_and_work(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (home, work) = (dir.join("codex"), dir.join("work"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    (home, work)
}

const TOKEN: &str = "install-agents-token-1";

#[test]
fn codex_install_is_idempotent_keeps_the_file_and_real_codex_reports_through_it() {
    let _ = codex_binary();
    let mut hub = TestHub::start();
    let mock = responses_mock();
    let dir = tempfile::tempdir().unwrap();
    let (home, work) = codex_home_and_work(dir.path());
    let config = home.join("config.toml");
    let mine = format!(
        "# my Codex settings, kept as they are\nmodel = \"mock-model\"  # the mock\nmodel_provider = \"mock\"\napproval_policy = \"never\"\n\n{}",
        codex_mock_provider(mock)
    );
    std::fs::write(&config, &mine).unwrap();
    let url = hub.url.clone();
    let install = ["install", "codex", "--url", url.as_str()];

    let (code, out) = sightline(&install, &[("CODEX_HOME", &home)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("backup:"), "{out}");
    let installed = std::fs::read_to_string(&config).unwrap();
    assert!(
        installed.starts_with(&mine),
        "the user's text first, untouched:\n{installed}"
    );
    assert!(
        installed.contains(&format!("endpoint = \"{url}/v1/logs\"")),
        "{installed}"
    );
    assert_eq!(backups(&home, "config.toml"), 1);

    let (code, out) = sightline(&install, &[("CODEX_HOME", &home)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("already installed; nothing changed"), "{out}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), installed);
    assert_eq!(backups(&home, "config.toml"), 1, "no change, no backup");

    // The real Codex reads the section and sends its log events to the hub.
    run_agent(
        codex_command(&home, &work).args(["exec", "--skip-git-repo-check", "say nothing"]),
        "CODEX",
    );
    hub.wait_for(
        "Codex's telemetry",
        Duration::from_secs(20),
        |events: &[Value]| {
            events
                .iter()
                .any(|e| e["source"] == "codex" && e["source_event"] == "codex.conversation_starts")
        },
    );

    // A section of the user's own is refused, not doubled.
    let theirs = dir.path().join("theirs.toml");
    std::fs::write(&theirs, "[otel]\nenvironment = \"prod\"\n").unwrap();
    let (code, out) = sightline(
        &["install", "codex", "--settings", theirs.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("[otel]"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&theirs).unwrap(),
        "[otel]\nenvironment = \"prod\"\n"
    );

    let (code, out) = sightline(
        &["install", "codex", "--uninstall"],
        &[("CODEX_HOME", &home)],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), mine);
    hub.stop();
}

#[test]
fn gemini_install_is_idempotent_and_uninstalls_only_its_block() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let settings = home.join(".gemini/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    let mine = json!({"theme": "GitHub", "security": {"auth": {"selectedType": "gemini-api-key"}}});
    std::fs::write(&settings, mine.to_string()).unwrap();
    let install = ["install", "gemini", "--url", "http://127.0.0.1:4517/"];

    let (code, out) = sightline(&install, &[("HOME", home)]);
    assert_eq!(code, 0, "{out}");
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(
        written["telemetry"],
        json!({"enabled": true, "target": "local", "otlpEndpoint": "http://127.0.0.1:4517",
            "otlpProtocol": "http", "logPrompts": true})
    );
    assert_eq!(written["theme"], "GitHub");
    assert_eq!(backups(settings.parent().unwrap(), "settings.json"), 1);

    let (code, out) = sightline(&install, &[("HOME", home)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("already installed; nothing changed"), "{out}");
    assert_eq!(backups(settings.parent().unwrap(), "settings.json"), 1);

    let (code, out) = sightline(
        &[
            "install",
            "gemini",
            "--uninstall",
            "--url",
            "http://127.0.0.1:4517",
        ],
        &[("HOME", home)],
    );
    assert_eq!(code, 0, "{out}");
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(after, mine);
}

#[test]
fn codex_install_with_a_token_reaches_a_hub_that_requires_one() {
    let _ = codex_binary();
    let mut hub = TestHub::start_with(|_, settings| settings.token = Some(TOKEN.into()));
    // Without the header the hub refuses the export: what the install is for.
    let (status, _) =
        sightline_testkit::post(&format!("{}/v1/logs", hub.url), "application/json", "{}");
    assert_eq!(status, 401, "the hub requires its token on /v1/logs");
    let mock = responses_mock();
    let dir = tempfile::tempdir().unwrap();
    let (home, work) = codex_home_and_work(dir.path());
    let config = home.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "model = \"mock-model\"\nmodel_provider = \"mock\"\napproval_policy = \"never\"\n\n{}",
            codex_mock_provider(mock)
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let url = hub.url.clone();

    // The token from the environment, as `sightline` reads it everywhere.
    let (code, out) = sightline(
        &["install", "codex", "--url", url.as_str()],
        &[("CODEX_HOME", &home), ("SIGHTLINE_TOKEN", Path::new(TOKEN))],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("with the hub's token"), "{out}");
    assert!(!out.contains(TOKEN), "the token is never printed: {out}");
    let installed = std::fs::read_to_string(&config).unwrap();
    let table: toml::Table = installed.parse().unwrap();
    assert_eq!(
        table["otel"]["exporter"]["otlp-http"]["headers"]["authorization"].as_str(),
        Some(format!("Bearer {TOKEN}").as_str()),
        "{installed}"
    );
    assert_eq!(
        mode_of(&config),
        0o600,
        "a file with the token is the owner's only"
    );

    // The same token by flag: nothing to change. Another one by --dry-run: shown masked.
    let (code, out) = sightline(
        &["install", "codex", "--url", url.as_str(), "--token", TOKEN],
        &[("CODEX_HOME", &home)],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("already installed; nothing changed"), "{out}");
    assert_eq!(backups(&home, "config.toml"), 1);
    let (code, out) = sightline(
        &[
            "install",
            "codex",
            "--url",
            url.as_str(),
            "--token",
            "other-secret-2",
            "--dry-run",
        ],
        &[("CODEX_HOME", &home)],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Bearer <token>") && !out.contains("other-secret-2"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), installed);

    // The real Codex sends its telemetry with the header, and the hub takes it.
    run_agent(
        codex_command(&home, &work).args(["exec", "--skip-git-repo-check", "say nothing"]),
        "CODEX",
    );
    wait_for_event(&hub, TOKEN, "codex", "codex.conversation_starts");
    hub.stop();
}

#[test]
fn gemini_install_with_a_token_reaches_a_hub_that_requires_one() {
    let _ = sightline_testkit::peers::gemini_script();
    let mut hub = TestHub::start_with(|_, settings| settings.token = Some(TOKEN.into()));
    let api = gemini_mock();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let work = dir.path().join("work");
    let settings = home.join(".gemini/settings.json");
    let env = home.join(".gemini/.env");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let mine = json!({"security": {"auth": {"selectedType": "gemini-api-key"}}});
    std::fs::write(&settings, mine.to_string()).unwrap();
    let url = hub.url.clone();
    let install = ["install", "gemini", "--url", url.as_str(), "--token", TOKEN];

    let (code, out) = sightline(&install, &[("HOME", &home)]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(TOKEN), "the token is never printed: {out}");
    let written = std::fs::read_to_string(&env).unwrap();
    assert!(
        written.contains(&format!(
            "OTEL_EXPORTER_OTLP_HEADERS=\"Authorization=Bearer%20{TOKEN}\""
        )),
        "{written}"
    );
    assert_eq!(mode_of(&env), 0o600);
    let (code, out) = sightline(&install, &[("HOME", &home)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("already installed; nothing changed"), "{out}");
    assert_eq!(std::fs::read_to_string(&env).unwrap(), written);

    // The real Gemini CLI reads the .env and sends its telemetry with the header.
    run_agent(
        sightline_testkit::peers::gemini_command(&home, &work, &format!("http://{api}")).args([
            "-p",
            "say nothing",
            "-m",
            "gemini-2.5-flash",
        ]),
        "GEMINI CLI",
    );
    wait_for_event(&hub, TOKEN, "gemini", "gemini_cli.user_prompt");

    // Uninstall: the telemetry block and the .env that held only our header are gone.
    let (code, out) = sightline(
        &["install", "gemini", "--uninstall", "--url", url.as_str()],
        &[("HOME", &home)],
    );
    assert_eq!(code, 0, "{out}");
    assert!(!env.exists(), "{out}");
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(after, mine);
    hub.stop();
}
