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
//! With a token (`--token` or `SIGHTLINE_TOKEN`), the agents' export carries `Authorization:
//! Bearer <token>`, which a hub serving with tokens requires: Codex as the `headers` of its
//! `otlp-http` exporter, Gemini CLI (whose settings have no header field) as
//! `OTEL_EXPORTER_OTLP_HEADERS` in the `.env` beside its `settings.json`, in a marked block like
//! Codex's. A file that gets the token is made owner-only (0600): the token must never be left
//! readable by others, nor printed (`--dry-run` shows it masked).
//!
//! Idempotent: running it twice changes nothing the second time. It keeps every hook the user
//! wrote, replaces only entries that are ours (a command running `sightline … hook`, or an http
//! hook posting to `/api/v1/hooks/claude`), writes a backup beside the file before changing it,
//! and prints what it changed. `--uninstall` removes only ours. It must never drop a key of the
//! user's settings it does not understand.
//!
//! Every target's file (the OpenCode plugin too) changes through one helper, `commit_change`: a
//! backup beside it, then a temporary file in the same directory, synced and renamed over it, so
//! an agent starting meanwhile reads the old file or the new one, never half of one.
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

/// Where a target's file is: `--settings` as given; with `--project`, `project` under the current
/// directory; else `file` under the directory the variable `env` names (when set and not empty),
/// or under `home_dir` in the home directory.
fn target_path(
    args: &InstallArgs,
    project: &str,
    env: &str,
    home_dir: &str,
    file: &str,
) -> PathBuf {
    if let Some(p) = &args.settings {
        return p.clone();
    }
    if args.project {
        return PathBuf::from(project);
    }
    std::env::var_os(env)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(home_dir))
        .join(file)
}

fn claude_settings_path(args: &InstallArgs) -> PathBuf {
    target_path(
        args,
        ".claude/settings.json",
        "CLAUDE_CONFIG_DIR",
        ".claude",
        "settings.json",
    )
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

/// The one way every target changes its file: nothing when `changed` is false; with
/// `--dry-run` only the new content (`shown`, secrets masked); otherwise a backup of the old file
/// beside it, then an atomic write of `after` (owner-only when `private`). Then it says
/// `message`.
fn commit_change(
    path: &Path,
    change: Change<'_>,
    message: &str,
    dry_run: bool,
) -> anyhow::Result<i32> {
    if change.changed {
        if dry_run {
            println!("{}: would change ({message}):", path.display());
            println!("{}", change.shown.unwrap_or(change.after));
            return Ok(0);
        }
        if let Some(b) = backup(path)? {
            println!("backup: {}", b.display());
        }
        write_bytes(path, change.after.as_bytes(), change.private)?;
    }
    println!("{}: {message}", path.display());
    Ok(0)
}

/// What [`commit_change`] writes.
struct Change<'a> {
    changed: bool,
    after: &'a str,
    /// `after` as `--dry-run` prints it, when it holds a secret.
    shown: Option<&'a str>,
    /// The file holds a secret: make it owner-only.
    private: bool,
}

impl<'a> Change<'a> {
    fn plain(changed: bool, after: &'a str) -> Change<'a> {
        Change {
            changed,
            after,
            shown: None,
            private: false,
        }
    }
}

/// A JSON settings file as an object: empty when it is missing or blank. `invalid` says what to
/// do about one that does not parse.
fn read_json_settings(path: &Path, invalid: &str) -> anyhow::Result<Map<String, Value>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Exit::config(format!("{} {invalid} ({e}); fix it first", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(Exit::config(format!("cannot read {}: {e}", path.display()))),
    }
}

/// A text file's content, `None` when it does not exist.
fn read_text(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Exit::config(format!("cannot read {}: {e}", path.display()))),
    }
}

/// JSON pretty-printed with a final newline, as the settings files are written.
fn pretty(value: &Value) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
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

/// Replaces the file `path` (or its symlink's target) with `bytes`, atomically: a temporary
/// file in the same directory, given the old file's mode and owner, renamed over it. `private`
/// (the file now holds a token) takes the group's and others' permissions away.
fn write_bytes(path: &Path, bytes: &[u8], private: bool) -> anyhow::Result<()> {
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
    let mode = if private { mode & 0o7700 } else { mode };
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
    let mut settings = read_json_settings(&path, "is not valid JSON")?;
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
    let text = pretty(&after)?;
    commit_change(
        &path,
        Change::plain(after != before, &text),
        &message,
        args.dry_run,
    )
}

fn opencode_plugin_path(args: &InstallArgs) -> PathBuf {
    let plugin = "opencode/plugins/sightline.js";
    target_path(
        args,
        ".opencode/plugins/sightline.js",
        "XDG_CONFIG_HOME",
        ".config",
        plugin,
    )
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
    // A file that is there but cannot be read is refused, never taken for a missing one.
    let existing = read_text(&path)?;
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
    if existing.is_some() && !ours {
        return Err(Exit::config(format!(
            "{} exists and is not sightline's plugin; move it away or choose another path with --settings",
            path.display()
        )));
    }
    let message = if existing.as_deref() == Some(text.as_str()) {
        "already installed; nothing changed".to_string()
    } else {
        format!(
            "{} (events go to {}, spool {})",
            if existing.is_some() {
                "updated"
            } else {
                "installed"
            },
            args.url,
            spool.display()
        )
    };
    // The same backup and atomic write as the other targets: OpenCode loads the plugin at
    // start, so a half-written file would break every OpenCode started during the write.
    commit_change(
        &path,
        Change::plain(existing.as_deref() != Some(text.as_str()), &text),
        &message,
        args.dry_run,
    )
}

/// Opens and closes our block in Codex's `config.toml`.
const CODEX_BEGIN: &str = "# >>> sightline: written by `sightline install codex`; remove with `sightline install codex --uninstall`";
const CODEX_END: &str = "# <<< sightline";

fn codex_config_path(args: &InstallArgs) -> PathBuf {
    target_path(
        args,
        ".codex/config.toml",
        "CODEX_HOME",
        ".codex",
        "config.toml",
    )
}

/// Our `[otel]` table: Codex's log events, as OTLP/HTTP protobuf, to the hub's `/v1/logs`, with
/// `Authorization: Bearer <token>` when the hub needs one. Prompts are logged (the hub is local
/// and redacts); traces are left off (Codex exports hundreds of internal spans per turn, none of
/// which the hub maps).
pub fn codex_block(url: &str, token: Option<&str>) -> String {
    let endpoint = toml_string(&format!("{}/v1/logs", url.trim_end_matches('/')));
    let headers = token
        .map(|t| {
            format!(
                ", headers = {{ \"authorization\" = {} }}",
                toml_string(&format!("Bearer {t}"))
            )
        })
        .unwrap_or_default();
    format!(
        "{CODEX_BEGIN}\n[otel]\nlog_user_prompt = true\nexporter = {{ otlp-http = {{ endpoint = {endpoint}, protocol = \"binary\"{headers} }} }}\n{CODEX_END}\n"
    )
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    // JSON string escapes are valid TOML basic-string escapes.
    serde_json::to_string(s).expect("a string serialises")
}

/// `text` without the block between `begin` and `end` (and the blank line we put before it);
/// `None` when it has none.
fn strip_block(text: &str, begin: &str, end: &str) -> Option<String> {
    let start = text.find(begin)?;
    let end = text[start..].find(end).map(|i| start + i + end.len())?;
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

/// `text` with `block` appended after a blank line.
fn append_block(text: &str, block: &str) -> String {
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(block);
    out
}

/// `text` without our Codex block; `None` when it has none.
pub fn strip_codex_block(text: &str) -> Option<String> {
    strip_block(text, CODEX_BEGIN, CODEX_END)
}

/// The config with our block (for `url`, with `token`'s header) in place of any earlier one (at
/// the end), or without it.
pub fn merge_codex(
    text: &str,
    url: &str,
    token: Option<&str>,
    uninstall: bool,
) -> Result<String, String> {
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
    let out = append_block(&base, &codex_block(url, token));
    // What Codex will read must still be valid TOML.
    out.parse::<toml::Table>()
        .map_err(|e| format!("would not be valid TOML after the change ({e}); please report it"))?;
    Ok(out)
}

/// The hub's token to write, if any: `--token` or `SIGHTLINE_TOKEN`, not blank.
fn token_of(args: &InstallArgs) -> Option<&str> {
    args.token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// `text` with the token of its header masked, for `--dry-run`.
fn masked(text: &str, token: Option<&str>) -> String {
    match token {
        Some(t) => text
            .replace(&format!("Bearer {t}"), "Bearer <token>")
            .replace(
                &format!("Bearer%20{}", percent_encode(t)),
                "Bearer%20<token>",
            ),
        None => text.to_string(),
    }
}

fn install_codex(args: &InstallArgs) -> anyhow::Result<i32> {
    let path = codex_config_path(args);
    let token = token_of(args);
    let before = read_text(&path)?.unwrap_or_default();
    let after = merge_codex(&before, &args.url, token, args.uninstall)
        .map_err(|e| Exit::config(format!("{} {e}", path.display())))?;
    let message = match (args.uninstall, after == before) {
        (true, true) => "nothing of sightline's was installed".to_string(),
        (true, false) => "removed sightline's [otel] section".to_string(),
        (false, true) => "already installed; nothing changed".to_string(),
        (false, false) => format!(
            "Codex sends its OpenTelemetry logs to {}/v1/logs{}",
            args.url.trim_end_matches('/'),
            if token.is_some() {
                " with the hub's token"
            } else {
                " without a token (pass --token or set SIGHTLINE_TOKEN for a hub that requires one)"
            }
        ),
    };
    let shown = masked(&after, token);
    let change = Change {
        changed: after != before,
        after: &after,
        shown: Some(&shown),
        private: token.is_some() && !args.uninstall,
    };
    commit_change(&path, change, &message, args.dry_run)
}

fn gemini_settings_path(args: &InstallArgs) -> PathBuf {
    // `GEMINI_CLI_HOME` stands for the home directory: its `.gemini` holds the settings.
    let file = ".gemini/settings.json";
    target_path(args, file, "GEMINI_CLI_HOME", "", file)
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

/// Opens and closes our block in Gemini CLI's `.env`.
const GEMINI_ENV_BEGIN: &str = "# >>> sightline: written by `sightline install gemini`; remove with `sightline install gemini --uninstall`";
const GEMINI_ENV_END: &str = "# <<< sightline";

/// The `.env` beside Gemini CLI's `settings.json`: `~/.gemini/.env` for the user's settings,
/// `./.gemini/.env` for the project's, both of which Gemini CLI loads in a trusted folder.
fn gemini_env_path(settings: &Path) -> PathBuf {
    settings.with_file_name(".env")
}

/// Our `.env` block: the OTel exporter's headers (`OTEL_EXPORTER_OTLP_HEADERS`, comma-separated
/// `key=value` with the value percent-encoded, as the OpenTelemetry exporter spec has it).
pub fn gemini_env_block(token: &str) -> String {
    let value = format!("Authorization=Bearer%20{}", percent_encode(token));
    format!("{GEMINI_ENV_BEGIN}\nOTEL_EXPORTER_OTLP_HEADERS=\"{value}\"\n{GEMINI_ENV_END}\n")
}

/// Every byte but the unreserved ones (RFC 3986) as `%XX`.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The `.env` with our block for `token` in place of any earlier one, or without it (no token,
/// or uninstall). A `OTEL_EXPORTER_OTLP_HEADERS` of the user's own is refused: the file would
/// set it twice.
pub fn merge_gemini_env(
    text: &str,
    token: Option<&str>,
    uninstall: bool,
) -> Result<String, String> {
    let base =
        strip_block(text, GEMINI_ENV_BEGIN, GEMINI_ENV_END).unwrap_or_else(|| text.to_string());
    let Some(token) = token.filter(|_| !uninstall) else {
        return Ok(base);
    };
    if base.lines().any(|l| {
        l.trim_start()
            .trim_start_matches("export ")
            .starts_with("OTEL_EXPORTER_OTLP_HEADERS")
    }) {
        return Err(
            "already sets OTEL_EXPORTER_OTLP_HEADERS; add `Authorization=Bearer%20<token>` to it \
             yourself, or remove it and run this again"
                .into(),
        );
    }
    Ok(append_block(&base, &gemini_env_block(token)))
}

fn install_gemini(args: &InstallArgs) -> anyhow::Result<i32> {
    let path = gemini_settings_path(args);
    let token = token_of(args);
    let mut settings = read_json_settings(&path, "is not plain JSON (remove its comments)")?;
    // The header first: a `.env` that cannot take it stops the install before anything changed.
    let env_path = gemini_env_path(&path);
    let env_before = read_text(&env_path)?;
    let env_after = merge_gemini_env(
        env_before.as_deref().unwrap_or_default(),
        token,
        args.uninstall,
    )
    .map_err(|e| Exit::config(format!("{} {e}", env_path.display())))?;
    let message = merge_gemini(&mut settings, &args.url, args.uninstall);
    let text = pretty(&Value::Object(settings))?;
    commit_change(
        &path,
        Change::plain(message.is_some(), &text),
        message.as_deref().unwrap_or(if args.uninstall {
            "nothing of sightline's was installed"
        } else {
            "already installed; nothing changed"
        }),
        args.dry_run,
    )?;
    let env_changed = env_after != env_before.as_deref().unwrap_or_default();
    if !env_changed {
        return Ok(0);
    }
    let env_message = if args.uninstall || token.is_none() {
        "removed sightline's OTEL_EXPORTER_OTLP_HEADERS"
    } else {
        "Gemini CLI sends the hub's token with its OpenTelemetry (OTEL_EXPORTER_OTLP_HEADERS; \
         read in trusted folders without a .env of their own)"
    };
    if env_after.trim().is_empty() && !args.dry_run {
        // Only our block was there: the file goes, after its backup.
        if let Some(b) = backup(&env_path)? {
            println!("backup: {}", b.display());
        }
        std::fs::remove_file(&env_path)?;
        println!("{}: {env_message}", env_path.display());
        return Ok(0);
    }
    let shown = masked(&env_after, token);
    let change = Change {
        changed: true,
        after: &env_after,
        shown: Some(&shown),
        private: true,
    };
    commit_change(&env_path, change, env_message, args.dry_run)
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
        let once = merge_codex(user, "http://127.0.0.1:4517", None, false).unwrap();
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
            merge_codex(&once, "http://127.0.0.1:4517", None, false).unwrap(),
            once
        );
        // A new URL replaces the block, not adds a second one.
        let moved = merge_codex(&once, "http://127.0.0.1:9999/", None, false).unwrap();
        assert_eq!(moved.matches("[otel]").count(), 1, "{moved}");
        assert!(moved.contains("http://127.0.0.1:9999/v1/logs"));
        assert_eq!(merge_codex(&moved, "x", None, true).unwrap(), user);
        assert_eq!(merge_codex(user, "x", None, true).unwrap(), user);
        // The user's own [otel] is theirs: refused, not doubled.
        let theirs = "[otel]\nexporter = \"none\"\n";
        assert!(
            merge_codex(theirs, "x", None, false)
                .unwrap_err()
                .contains("[otel]")
        );
        assert!(merge_codex("not = = toml", "x", None, false).is_err());
        // An empty file gets just the block.
        assert!(
            merge_codex("", "http://h", None, false)
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

    #[test]
    fn codex_block_carries_the_token_as_a_header_and_a_new_token_replaces_it() {
        let with = merge_codex("model = \"o4\"\n", "http://h:1", Some("t-1\"x"), false).unwrap();
        let table: toml::Table = with.parse().unwrap();
        assert_eq!(
            table["otel"]["exporter"]["otlp-http"]["headers"]["authorization"].as_str(),
            Some("Bearer t-1\"x")
        );
        assert_eq!(
            merge_codex(&with, "http://h:1", Some("t-1\"x"), false).unwrap(),
            with
        );
        let other = merge_codex(&with, "http://h:1", Some("t-2"), false).unwrap();
        assert_eq!(other.matches("[otel]").count(), 1);
        assert!(
            other.contains("Bearer t-2") && !other.contains("t-1"),
            "{other}"
        );
        // Without a token the header goes; uninstall leaves the user's text.
        let without = merge_codex(&other, "http://h:1", None, false).unwrap();
        assert!(!without.contains("headers"), "{without}");
        assert_eq!(
            merge_codex(&other, "http://h:1", None, true).unwrap(),
            "model = \"o4\"\n"
        );
        assert_eq!(
            masked(&other, Some("t-2")),
            other.replace("Bearer t-2", "Bearer <token>")
        );
    }

    #[test]
    fn gemini_env_block_is_idempotent_keeps_the_rest_and_refuses_a_second_header() {
        let user = "GEMINI_API_KEY=abc\n";
        let once = merge_gemini_env(user, Some("s3cret/+="), false).unwrap();
        assert!(once.starts_with(user), "{once}");
        assert!(
            once.contains("OTEL_EXPORTER_OTLP_HEADERS=\"Authorization=Bearer%20s3cret%2F%2B%3D\""),
            "{once}"
        );
        assert_eq!(
            merge_gemini_env(&once, Some("s3cret/+="), false).unwrap(),
            once
        );
        assert_eq!(merge_gemini_env(&once, None, false).unwrap(), user);
        assert_eq!(merge_gemini_env(&once, Some("x"), true).unwrap(), user);
        assert_eq!(merge_gemini_env("", None, false).unwrap(), "");
        let theirs = "export OTEL_EXPORTER_OTLP_HEADERS=a=b\n";
        assert!(
            merge_gemini_env(theirs, Some("t"), false)
                .unwrap_err()
                .contains("OTEL_EXPORTER_OTLP_HEADERS")
        );
        assert_eq!(
            masked(&once, Some("s3cret/+=")),
            once.replace("Bearer%20s3cret%2F%2B%3D", "Bearer%20<token>")
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any text and token: the Codex config either is refused or keeps the user's text
            /// (ours is appended), parses as TOML with the token's header when it did before,
            /// is unchanged by a second run, and uninstall gives the user's text back.
            #[test]
            fn codex_config_round_trips(
                text in prop_oneof!["(\\PC{0,20}\n?){0,6}", "([a-z]{1,5} = \"[a-z ]{0,8}\"\n){0,4}"],
                token in "\\PC{1,16}",
            ) {
                if let Ok(once) = merge_codex(&text, "http://h:1", Some(&token), false) {
                    prop_assert!(once.starts_with(text.trim_end_matches('\n')));
                    let table: toml::Table = once.parse().unwrap();
                    let header = table["otel"]["exporter"]["otlp-http"]["headers"]["authorization"].as_str();
                    let want = format!("Bearer {token}");
                    prop_assert_eq!(header, Some(want.as_str()));
                    prop_assert_eq!(merge_codex(&once, "http://h:1", Some(&token), false).unwrap(), once.clone());
                    let back = merge_codex(&once, "http://h:1", None, true).unwrap();
                    prop_assert_eq!(back.trim_end_matches('\n'), text.trim_end_matches('\n'));
                }
            }

            /// Any `.env` text and token: the block round-trips, the header's value decodes back
            /// to `Bearer <token>`, and the file is never left with two headers of ours.
            #[test]
            fn gemini_env_round_trips(text in "([A-Z_]{1,8}=\\PC{0,12}\n){0,5}", token in "\\PC{1,16}") {
                let once = merge_gemini_env(&text, Some(&token), false).unwrap();
                prop_assert_eq!(once.matches(GEMINI_ENV_BEGIN).count(), 1);
                prop_assert_eq!(merge_gemini_env(&once, Some(&token), false).unwrap(), once.clone());
                let line = once.lines().find(|l| l.starts_with("OTEL_EXPORTER_OTLP_HEADERS=")).unwrap();
                let value = line.trim_start_matches("OTEL_EXPORTER_OTLP_HEADERS=\"Authorization=").trim_end_matches('"');
                prop_assert_eq!(percent_decode(value), format!("Bearer {token}"));
                prop_assert_eq!(merge_gemini_env(&once, None, true).unwrap(), text);
            }
        }

        fn percent_decode(s: &str) -> String {
            let b = s.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        }
    }
}
