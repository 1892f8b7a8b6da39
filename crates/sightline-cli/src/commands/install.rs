//! `sightline install claude|opencode|codex|gemini`: writes the hook entries (Claude Code
//! `settings.json`), the forwarding plugin (OpenCode), or the OpenTelemetry settings (Codex CLI's
//! `config.toml` `[otel]` section, Gemini CLI's `settings.json` `telemetry` block) that send
//! events to the hub.
//!
//! Codex's `config.toml` is edited as text, never re-serialised, so the user's comments and
//! layout stay: our `[otel]` table sits between two marker comments at the end of the file and
//! is replaced or removed as a whole; a file that already has an `[otel]` table of its own is
//! refused (TOML forbids two, and it is the user's). Gemini's `telemetry` block is ours when its
//! `otlpEndpoint` is the hub's URL; a different one is replaced only after a backup, and said so.
//!
//! Idempotent: running it twice changes nothing the second time. It keeps every hook the user
//! wrote, replaces only entries that are ours (a command running `sightline … hook`, or an http
//! hook posting to `/api/v1/hooks/claude`), writes a backup beside the file before changing it,
//! and prints what it changed. `--uninstall` removes only ours. It must never drop a key of the
//! user's settings it does not understand.
//!
//! `settings.json` may hold secrets (its `env` block), so it is rewritten atomically with the
//! mode and owner it had (a new one is 0600), and through a symlink to its target (dotfiles
//! managers link it): it must never widen the file's mode or turn a link into a copy. The hook
//! command is one shell word whatever the binary's path holds (Claude Code runs it with a shell).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::cli::InstallArgs;
use crate::exit::Exit;

/// The hook events we subscribe to; those in `TOOL_EVENTS` take a tool matcher.
pub const CLAUDE_EVENTS: &[&str] = &[
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PermissionRequest",
    "SessionStart",
    "SessionEnd",
    "UserPromptSubmit",
    "Notification",
    "SubagentStart",
    "SubagentStop",
    "Stop",
    "StopFailure",
    "PreCompact",
    "PostCompact",
    // Waits that end, agent teams, commands and changes of place (docs/CONTRACT.md §3.2).
    // Not subscribed: WorktreeCreate / WorktreeRemove (a hook there replaces Claude Code's own
    // `git worktree` handling), MessageDisplay and PostToolBatch (bookkeeping fired per message
    // and per batch: a process each), FileChanged (needs a file matcher), InstructionsLoaded
    // and Setup; the hub maps them when a user adds hooks for them.
    "PermissionDenied",
    "Elicitation",
    "ElicitationResult",
    "TaskCreated",
    "TaskCompleted",
    "TeammateIdle",
    "UserPromptExpansion",
    "CwdChanged",
    "ConfigChange",
];

const TOOL_EVENTS: &[&str] = &[
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PermissionRequest",
    "PermissionDenied",
];

/// Marks our OpenCode plugin file.
const PLUGIN_MARKER: &str = "// sightline-plugin v1";

pub fn run(args: &InstallArgs) -> anyhow::Result<i32> {
    match args.target.as_str() {
        "claude" => install_claude(args),
        "opencode" => install_opencode(args),
        "codex" => install_codex(args),
        "gemini" => install_gemini(args),
        other => Err(Exit::config(format!(
            "unknown target `{other}`; use claude, opencode, codex or gemini"
        ))),
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn claude_settings_path(args: &InstallArgs) -> PathBuf {
    if let Some(p) = &args.settings {
        return p.clone();
    }
    if args.project {
        return PathBuf::from(".claude").join("settings.json");
    }
    std::env::var_os("CLAUDE_CONFIG_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".claude"))
        .join("settings.json")
}

/// Is this hook handler one of ours?
pub(crate) fn is_ours(handler: &Value) -> bool {
    let command = handler.get("command").and_then(Value::as_str).unwrap_or("");
    let url = handler.get("url").and_then(Value::as_str).unwrap_or("");
    (command.contains("sightline") && command.trim_end().ends_with(" hook"))
        || url.contains("/api/v1/hooks/claude")
}

fn our_handler(args: &InstallArgs, event: &str) -> Value {
    // SessionStart accepts only command handlers.
    if args.http && event != "SessionStart" {
        let url = format!("{}/api/v1/hooks/claude", args.url.trim_end_matches('/'));
        let mut h = json!({"type": "http", "url": url, "timeout": 5});
        if args.with_token {
            h["headers"] = json!({"Authorization": "Bearer $SIGHTLINE_TOKEN"});
            h["allowedEnvVars"] = json!(["SIGHTLINE_TOKEN"]);
        }
        return h;
    }
    let exe = std::env::current_exe()
        .ok()
        .map(|p| p.to_string_lossy().to_string())
        .unwrap_or_else(|| "sightline".into());
    // Claude Code's command hooks are one string run by a shell; there is no argv form.
    json!({"type": "command", "command": format!("{} hook", shell_word(&exe)), "timeout": 5})
}

/// `s` as one POSIX shell word: as it is when no shell would treat any of its characters
/// specially, otherwise in single quotes, inside which only `'` needs care (`'\''`).
pub fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:,@".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Adds or refreshes our entries; returns (added, updated) event names.
pub fn merge_claude(
    settings: &mut Map<String, Value>,
    handler_for: impl Fn(&str) -> Value,
) -> (Vec<String>, Vec<String>) {
    let hooks = settings.entry("hooks").or_insert_with(|| json!({}));
    if !hooks.is_object() {
        *hooks = json!({});
    }
    let hooks = hooks.as_object_mut().expect("object");
    let (mut added, mut updated) = (vec![], vec![]);
    for event in CLAUDE_EVENTS {
        let wanted = handler_for(event);
        let groups = hooks.entry(event.to_string()).or_insert_with(|| json!([]));
        if !groups.is_array() {
            *groups = json!([]);
        }
        let groups = groups.as_array_mut().expect("array");
        let mut found = false;
        let mut changed = false;
        for group in groups.iter_mut() {
            if let Some(list) = group.get_mut("hooks").and_then(Value::as_array_mut) {
                for h in list.iter_mut() {
                    if is_ours(h) {
                        if found {
                            continue;
                        }
                        found = true;
                        if *h != wanted {
                            *h = wanted.clone();
                            changed = true;
                        }
                    }
                }
            }
        }
        if !found {
            let mut group = json!({"hooks": [wanted]});
            if TOOL_EVENTS.contains(event) {
                group["matcher"] = json!("*");
            }
            groups.push(group);
            added.push(event.to_string());
        } else if changed {
            updated.push(event.to_string());
        }
    }
    (added, updated)
}

/// Removes our entries (and groups or events left empty); returns the events touched.
pub fn unmerge_claude(settings: &mut Map<String, Value>) -> Vec<String> {
    let mut removed = vec![];
    let Some(hooks) = settings.get_mut("hooks").and_then(Value::as_object_mut) else {
        return removed;
    };
    for (event, groups) in hooks.iter_mut() {
        let Some(groups) = groups.as_array_mut() else {
            continue;
        };
        let mut touched = false;
        for group in groups.iter_mut() {
            if let Some(list) = group.get_mut("hooks").and_then(Value::as_array_mut) {
                let before = list.len();
                list.retain(|h| !is_ours(h));
                touched |= list.len() != before;
            }
        }
        groups.retain(|g| {
            g.get("hooks")
                .and_then(Value::as_array)
                .is_none_or(|l| !l.is_empty())
        });
        if touched {
            removed.push(event.clone());
        }
    }
    hooks.retain(|_, g| g.as_array().is_none_or(|a| !a.is_empty()));
    if hooks.is_empty() {
        settings.remove("hooks");
    }
    removed
}

fn backup(path: &Path) -> anyhow::Result<Option<PathBuf>> {
    if !path.exists() {
        return Ok(None);
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".sightline-backup-{secs}"));
    let to = path.with_file_name(name);
    std::fs::copy(path, &to)?;
    Ok(Some(to))
}

/// The file a write to `path` lands in: a symlink's final target (relative links resolve from
/// the link's directory), or `path` itself.
fn resolve_links(path: &Path) -> anyhow::Result<PathBuf> {
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&at)?;
                at = match at.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(at),
        }
    }
    Err(Exit::config(format!(
        "{} is a loop of symlinks; point it at a file or pass --settings",
        path.display()
    )))
}

/// Replaces the file `path` (or its symlink's target) with `value`, atomically: a temporary
/// file in the same directory, given the old file's mode and owner, renamed over it.
fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_bytes(path, text.as_bytes())
}

/// Replaces the file `path` (or its symlink's target) with `bytes`, atomically (see
/// [`write_json`]).
fn write_bytes(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let target = resolve_links(path)?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let old = std::fs::metadata(&target).ok();
    // A new settings file may soon hold `env` secrets: private from the start.
    let mode = old
        .as_ref()
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    let cannot = |e: std::io::Error| {
        anyhow::anyhow!(
            "cannot write {} ({e}); check that its directory {} is writable",
            target.display(),
            dir.display()
        )
    };
    // Created 0600, so the content is never readable by others, even for a moment.
    let mut tmp = tempfile::Builder::new()
        .prefix(".sightline-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(cannot)?;
    tmp.write_all(bytes).map_err(cannot)?;
    tmp.as_file().sync_all().map_err(cannot)?;
    if let Some(m) = &old {
        // Root installing into another user's settings leaves them the user's (best effort:
        // anyone else cannot give a file away, and then it is already theirs).
        let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(m.uid()), Some(m.gid()));
    }
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(cannot)?;
    tmp.persist(&target).map_err(|e| cannot(e.error))?;
    Ok(())
}

fn install_claude(args: &InstallArgs) -> anyhow::Result<i32> {
    let path = claude_settings_path(args);
    let mut settings: Map<String, Value> = match std::fs::read(&path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Exit::config(format!(
                "{} is not valid JSON ({e}); fix it or move it away first",
                path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(Exit::config(format!("cannot read {}: {e}", path.display()))),
    };
    let before = Value::Object(settings.clone());
    let message = if args.uninstall {
        let removed = unmerge_claude(&mut settings);
        if removed.is_empty() {
            "nothing of sightline's was installed".to_string()
        } else {
            format!("removed sightline hooks from: {}", removed.join(", "))
        }
    } else {
        let (added, updated) = merge_claude(&mut settings, |e| our_handler(args, e));
        match (added.is_empty(), updated.is_empty()) {
            (true, true) => "already installed; nothing changed".to_string(),
            _ => format!(
                "added hooks for: {}{}",
                if added.is_empty() {
                    "-".into()
                } else {
                    added.join(", ")
                },
                if updated.is_empty() {
                    String::new()
                } else {
                    format!("; updated: {}", updated.join(", "))
                }
            ),
        }
    };
    let after = Value::Object(settings);
    if after != before {
        if args.dry_run {
            println!("{}: would change ({message})", path.display());
            println!("{}", serde_json::to_string_pretty(&after)?);
            return Ok(0);
        }
        if let Some(b) = backup(&path)? {
            println!("backup: {}", b.display());
        }
        write_json(&path, &after)?;
    }
    println!("{}: {message}", path.display());
    Ok(0)
}

fn opencode_plugin_path(args: &InstallArgs) -> PathBuf {
    if let Some(p) = &args.settings {
        return p.clone();
    }
    if args.project {
        return PathBuf::from(".opencode")
            .join("plugins")
            .join("sightline.js");
    }
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".config"))
        .join("opencode")
        .join("plugins")
        .join("sightline.js")
}

/// The plugin: forwards each bus event to the hub without waiting on it; when the hub cannot be
/// reached, appends it to a JSONL spool that the hub's `opencode-jsonl` adapter replays.
pub fn opencode_plugin(url: &str, spool_dir: &Path) -> String {
    let url = serde_json::to_string(url.trim_end_matches('/')).expect("string");
    let spool = serde_json::to_string(&spool_dir.to_string_lossy()).expect("string");
    format!(
        r#"{PLUGIN_MARKER}
// Written by `sightline install opencode`: forwards every OpenCode bus event to the sightline
// hub, and to a JSONL spool when the hub is down. Remove with `sightline install opencode --uninstall`.
import {{ appendFileSync, mkdirSync, statSync }} from "node:fs";
import {{ join }} from "node:path";

const HUB = process.env.SIGHTLINE_URL || {url};
const TOKEN = process.env.SIGHTLINE_TOKEN || "";
const SPOOL_DIR = process.env.SIGHTLINE_OPENCODE_SPOOL || {spool};
const SPOOL_MAX = 16 * 1024 * 1024;
const SKIP = new Set(["server.heartbeat", "message.part.delta"]);

function spool(item) {{
  try {{
    mkdirSync(SPOOL_DIR, {{ recursive: true }});
    const file = join(SPOOL_DIR, "opencode.jsonl");
    let size = 0;
    try {{ size = statSync(file).size; }} catch {{}}
    if (size < SPOOL_MAX) appendFileSync(file, JSON.stringify(item) + "\n");
  }} catch {{}}
}}

async function send(item) {{
  try {{
    const headers = {{ "content-type": "application/json" }};
    if (TOKEN) headers.authorization = "Bearer " + TOKEN;
    const res = await fetch(HUB + "/api/v1/hooks/opencode", {{
      method: "POST", headers, body: JSON.stringify(item), signal: AbortSignal.timeout(2000),
    }});
    if (res.status >= 500 || res.status === 401 || res.status === 403) spool(item);
  }} catch {{
    spool(item);
  }}
}}

export const SightlinePlugin = async ({{ directory }}) => ({{
  event: async ({{ event }}) => {{
    if (!event || SKIP.has(event.type)) return;
    // Not awaited: OpenCode never waits on the hub.
    send({{ directory, payload: event }});
  }},
}});
"#
    )
}

fn install_opencode(args: &InstallArgs) -> anyhow::Result<i32> {
    let path = opencode_plugin_path(args);
    let existing = std::fs::read_to_string(&path).ok();
    let ours = existing
        .as_deref()
        .is_some_and(|t| t.starts_with(PLUGIN_MARKER));
    if args.uninstall {
        if ours {
            std::fs::remove_file(&path)?;
            println!("{}: removed", path.display());
        } else {
            println!("{}: nothing of sightline's was installed", path.display());
        }
        return Ok(0);
    }
    let spool = crate::config::data_dir().join("spool").join("opencode");
    let text = opencode_plugin(&args.url, &spool);
    if existing.as_deref() == Some(text.as_str()) {
        println!("{}: already installed; nothing changed", path.display());
        return Ok(0);
    }
    if args.dry_run {
        println!("{}: would write the plugin:\n{text}", path.display());
        return Ok(0);
    }
    if existing.is_some() && !ours {
        return Err(Exit::config(format!(
            "{} exists and is not sightline's plugin; move it away or choose another path with --settings",
            path.display()
        )));
    }
    if let Some(b) = backup(&path)? {
        println!("backup: {}", b.display());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, text)?;
    println!(
        "{}: {} (events go to {}, spool {})",
        path.display(),
        if existing.is_some() {
            "updated"
        } else {
            "installed"
        },
        args.url,
        spool.display()
    );
    Ok(0)
}

/// Opens and closes our block in Codex's `config.toml`.
const CODEX_BEGIN: &str = "# >>> sightline: written by `sightline install codex`; remove with `sightline install codex --uninstall`";
const CODEX_END: &str = "# <<< sightline";

fn codex_config_path(args: &InstallArgs) -> PathBuf {
    if let Some(p) = &args.settings {
        return p.clone();
    }
    if args.project {
        return PathBuf::from(".codex").join("config.toml");
    }
    std::env::var_os("CODEX_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".codex"))
        .join("config.toml")
}

/// Our `[otel]` table: Codex's log events, as OTLP/HTTP protobuf, to the hub's `/v1/logs`.
/// Prompts are logged (the hub is local and redacts); traces are left off (Codex exports
/// hundreds of internal spans per turn, none of which the hub maps).
pub fn codex_block(url: &str) -> String {
    let endpoint = toml_string(&format!("{}/v1/logs", url.trim_end_matches('/')));
    format!(
        "{CODEX_BEGIN}\n[otel]\nlog_user_prompt = true\nexporter = {{ otlp-http = {{ endpoint = {endpoint}, protocol = \"binary\" }} }}\n{CODEX_END}\n"
    )
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    // JSON string escapes are valid TOML basic-string escapes.
    serde_json::to_string(s).expect("a string serialises")
}

/// `text` without our block (and the blank line we put before it); `None` when it has none.
pub fn strip_codex_block(text: &str) -> Option<String> {
    let start = text.find(CODEX_BEGIN)?;
    let end = text[start..]
        .find(CODEX_END)
        .map(|i| start + i + CODEX_END.len())?;
    let end = if text[end..].starts_with('\n') {
        end + 1
    } else {
        end
    };
    let head = text[..start].strip_suffix('\n').unwrap_or(&text[..start]);
    let head = head
        .strip_suffix('\n')
        .map(|h| format!("{h}\n"))
        .unwrap_or(head.to_string());
    Some(format!("{head}{}", &text[end..]))
}

/// The config with our block in place of any earlier one (at the end), or without it.
pub fn merge_codex(text: &str, url: &str, uninstall: bool) -> Result<String, String> {
    let base = strip_codex_block(text).unwrap_or_else(|| text.to_string());
    let parsed: toml::Table = base
        .parse()
        .map_err(|e| format!("is not valid TOML ({e}); fix it first"))?;
    if uninstall {
        return Ok(base);
    }
    if parsed.contains_key("otel") {
        return Err(
            "already has an [otel] section of its own; point its exporter at the hub's /v1/logs \
             yourself, or remove it and run this again"
                .into(),
        );
    }
    let mut out = base;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&codex_block(url));
    // What Codex will read must still be valid TOML.
    out.parse::<toml::Table>()
        .map_err(|e| format!("would not be valid TOML after the change ({e}); please report it"))?;
    Ok(out)
}

fn install_codex(args: &InstallArgs) -> anyhow::Result<i32> {
    let path = codex_config_path(args);
    let existing = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Exit::config(format!("cannot read {}: {e}", path.display()))),
    };
    let before = existing.clone().unwrap_or_default();
    let after = merge_codex(&before, &args.url, args.uninstall)
        .map_err(|e| Exit::config(format!("{} {e}", path.display())))?;
    let message = match (args.uninstall, after == before) {
        (true, true) => "nothing of sightline's was installed".to_string(),
        (true, false) => "removed sightline's [otel] section".to_string(),
        (false, true) => "already installed; nothing changed".to_string(),
        (false, false) => format!(
            "Codex sends its OpenTelemetry logs to {}/v1/logs",
            args.url.trim_end_matches('/')
        ),
    };
    if after != before {
        if args.dry_run {
            println!("{}: would change ({message}):\n{after}", path.display());
            return Ok(0);
        }
        if let Some(b) = backup(&path)? {
            println!("backup: {}", b.display());
        }
        write_text(&path, &after)?;
    }
    println!("{}: {message}", path.display());
    Ok(0)
}

fn gemini_settings_path(args: &InstallArgs) -> PathBuf {
    if let Some(p) = &args.settings {
        return p.clone();
    }
    if args.project {
        return PathBuf::from(".gemini").join("settings.json");
    }
    std::env::var_os("GEMINI_CLI_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(home)
        .join(".gemini")
        .join("settings.json")
}

/// Our `telemetry` block: OTLP/HTTP to the hub (Gemini CLI appends `/v1/logs`, `/v1/traces`,
/// `/v1/metrics`), prompts included.
pub fn gemini_telemetry(url: &str) -> Value {
    json!({"enabled": true, "target": "local", "otlpEndpoint": url.trim_end_matches('/'),
        "otlpProtocol": "http", "logPrompts": true})
}

/// Sets or removes our `telemetry` block; returns what happened, or `None` for no change.
pub fn merge_gemini(
    settings: &mut Map<String, Value>,
    url: &str,
    uninstall: bool,
) -> Option<String> {
    let ours = gemini_telemetry(url);
    let current = settings.get("telemetry").cloned();
    let is_ours = current
        .as_ref()
        .and_then(|t| t.get("otlpEndpoint"))
        .and_then(Value::as_str)
        .is_some_and(|e| e.trim_end_matches('/') == url.trim_end_matches('/'));
    if uninstall {
        if !is_ours {
            return None;
        }
        settings.remove("telemetry");
        return Some("removed sightline's telemetry settings".into());
    }
    match current {
        Some(c) if c == ours => None,
        Some(c) if !is_ours => {
            settings.insert("telemetry".into(), ours);
            Some(format!(
                "replaced the telemetry settings {c} (kept in the backup)"
            ))
        }
        _ => {
            settings.insert("telemetry".into(), ours);
            Some(format!(
                "Gemini CLI sends its OpenTelemetry to {}",
                url.trim_end_matches('/')
            ))
        }
    }
}

fn install_gemini(args: &InstallArgs) -> anyhow::Result<i32> {
    let path = gemini_settings_path(args);
    let mut settings: Map<String, Value> = match std::fs::read(&path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Exit::config(format!(
                "{} is not plain JSON ({e}); remove its comments or fix it first",
                path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(Exit::config(format!("cannot read {}: {e}", path.display()))),
    };
    let Some(message) = merge_gemini(&mut settings, &args.url, args.uninstall) else {
        let what = if args.uninstall {
            "nothing of sightline's was installed"
        } else {
            "already installed; nothing changed"
        };
        println!("{}: {what}", path.display());
        return Ok(0);
    };
    let after = Value::Object(settings);
    if args.dry_run {
        println!("{}: would change ({message})", path.display());
        println!("{}", serde_json::to_string_pretty(&after)?);
        return Ok(0);
    }
    if let Some(b) = backup(&path)? {
        println!("backup: {}", b.display());
    }
    write_json(&path, &after)?;
    println!("{}: {message}", path.display());
    Ok(0)
}

/// Writes `text` to `path` the way [`write_json`] does (atomic, mode and owner kept, through
/// symlinks).
fn write_text(path: &Path, text: &str) -> anyhow::Result<()> {
    write_bytes(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler(_event: &str) -> Value {
        json!({"type": "command", "command": "/usr/bin/sightline hook", "timeout": 5})
    }

    #[test]
    fn merge_keeps_user_hooks_and_is_idempotent() {
        let mut s: Map<String, Value> = serde_json::from_value(json!({
            "model": "opus",
            "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "./guard.sh"}]}]}
        }))
        .unwrap();
        let (added, _) = merge_claude(&mut s, handler);
        assert_eq!(added.len(), CLAUDE_EVENTS.len());
        let once = s.clone();
        let (added, updated) = merge_claude(&mut s, handler);
        assert!(added.is_empty() && updated.is_empty());
        assert_eq!(s, once);
        let text = Value::Object(s.clone()).to_string();
        assert!(text.contains("./guard.sh") && text.contains("\"model\":\"opus\""));
        let removed = unmerge_claude(&mut s);
        assert_eq!(removed.len(), CLAUDE_EVENTS.len());
        assert_eq!(
            Value::Object(s),
            json!({"model": "opus", "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "./guard.sh"}]}]}})
        );
    }

    /// Each word, run through a real shell, comes back as exactly the string it quotes.
    #[test]
    fn shell_words_survive_a_shell() {
        let tricky = [
            "/usr/local/bin/sightline",
            "/opt/my tools/sightline",
            "/home/o'brien/bin/sightline",
            "/tmp/$(touch pwned)/sightline",
            "/tmp/`id`/a;b|c&d>e<f",
            "/tmp/\"quoted\"/back\\slash",
            "/tmp/glob*?[x]/~tilde/#hash",
            "/tmp/tab\there/new\nline",
            "/tmp/x=y/sightline",
            "/tmp/émoji🔑/sightline",
            "",
        ];
        for s in tricky {
            let word = shell_word(s);
            let out = std::process::Command::new("sh")
                .args(["-c", &format!("printf %s {word}")])
                .output()
                .unwrap();
            assert!(out.status.success(), "{word}: {out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), s, "via {word}");
        }
        assert_eq!(shell_word("/usr/bin/sightline"), "/usr/bin/sightline");
        assert_eq!(shell_word("/a b"), "'/a b'");
        assert_eq!(shell_word("/it's"), "'/it'\\''s'");
    }

    #[test]
    fn codex_block_is_idempotent_keeps_the_rest_and_uninstalls() {
        let user =
            "# my settings\nmodel = \"o4\"\n\n[model_providers.x]\nbase_url = \"http://x\"\n";
        let once = merge_codex(user, "http://127.0.0.1:4517", false).unwrap();
        assert!(once.starts_with(user), "{once}");
        assert!(
            once.contains("endpoint = \"http://127.0.0.1:4517/v1/logs\""),
            "{once}"
        );
        let table: toml::Table = once.parse().unwrap();
        assert_eq!(
            table["otel"]["exporter"]["otlp-http"]["protocol"].as_str(),
            Some("binary")
        );
        assert_eq!(
            merge_codex(&once, "http://127.0.0.1:4517", false).unwrap(),
            once
        );
        // A new URL replaces the block, not adds a second one.
        let moved = merge_codex(&once, "http://127.0.0.1:9999/", false).unwrap();
        assert_eq!(moved.matches("[otel]").count(), 1, "{moved}");
        assert!(moved.contains("http://127.0.0.1:9999/v1/logs"));
        assert_eq!(merge_codex(&moved, "x", true).unwrap(), user);
        assert_eq!(merge_codex(user, "x", true).unwrap(), user);
        // The user's own [otel] is theirs: refused, not doubled.
        let theirs = "[otel]\nexporter = \"none\"\n";
        assert!(
            merge_codex(theirs, "x", false)
                .unwrap_err()
                .contains("[otel]")
        );
        assert!(merge_codex("not = = toml", "x", false).is_err());
        // An empty file gets just the block.
        assert!(
            merge_codex("", "http://h", false)
                .unwrap()
                .starts_with(CODEX_BEGIN)
        );
    }

    #[test]
    fn gemini_telemetry_is_idempotent_and_uninstalls_only_ours() {
        let mut s: Map<String, Value> = serde_json::from_value(json!({"theme": "dark"})).unwrap();
        assert!(merge_gemini(&mut s, "http://h:1", false).is_some());
        assert_eq!(s["telemetry"]["otlpEndpoint"], "http://h:1");
        assert_eq!(merge_gemini(&mut s, "http://h:1/", false), None);
        assert_eq!(merge_gemini(&mut s, "http://other", true), None);
        assert!(merge_gemini(&mut s, "http://h:1", true).is_some());
        assert_eq!(Value::Object(s), json!({"theme": "dark"}));
    }
}
