//! Real peers the integration tests install for themselves, into a cache that outlives one run
//! (`$SIGHTLINE_TEST_CACHE`, default `~/.cache/sightline-tests`). Shared by this crate's tests
//! and the CLI's, so OpenCode is found and
//! installed one way. A peer that cannot be installed fails the test saying so.
#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn cache_dir() -> PathBuf {
    std::env::var_os("SIGHTLINE_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
                .join(".cache/sightline-tests")
        })
}

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
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x64"
    };
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
    let dir = cache_dir().join("opencode");
    if let Some(p) = installed_opencode(&dir) {
        return p;
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("package.json"),
        r#"{"name":"sightline-opencode-test","private":true}"#,
    )
    .unwrap();
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "opencode-ai"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("OPENCODE TEST CANNOT RUN: npm is not available ({e}); install Node.js/npm")
        });
    assert!(
        out.status.success(),
        "OPENCODE TEST CANNOT RUN: `npm install opencode-ai` failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    installed_opencode(&dir).unwrap_or_else(|| {
        panic!(
            "OPENCODE TEST CANNOT RUN: opencode-ai installed but no opencode binary in {}",
            dir.display()
        )
    })
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
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x64"
    };
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
    let dir = cache_dir().join(format!("claude-{CLAUDE_CODE_VERSION}"));
    if let Some(p) = installed_claude(&dir) {
        return p;
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("package.json"),
        r#"{"name":"sightline-claude-test","private":true}"#,
    )
    .unwrap();
    let package = format!("@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}");
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", &package])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("CLAUDE CODE TEST CANNOT RUN: npm is not available ({e}); install Node.js/npm")
        });
    assert!(
        out.status.success(),
        "CLAUDE CODE TEST CANNOT RUN: `npm install {package}` failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    installed_claude(&dir).unwrap_or_else(|| {
        panic!(
            "CLAUDE CODE TEST CANNOT RUN: {package} installed but no claude binary in {}",
            dir.display()
        )
    })
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
