//! `sightline install claude|opencode`: writes the hook entries (Claude Code `settings.json`) or
//! the forwarding plugin (OpenCode) that send events to the hub.
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

/// The hook events we subscribe to; the first four take a tool matcher.
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
];

const TOOL_EVENTS: &[&str] = &[
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PermissionRequest",
];

/// Marks our OpenCode plugin file.
const PLUGIN_MARKER: &str = "// sightline-plugin v1";

pub fn run(args: &InstallArgs) -> anyhow::Result<i32> {
    match args.target.as_str() {
        "claude" => install_claude(args),
        "opencode" => install_opencode(args),
        other => Err(Exit::config(format!(
            "unknown target `{other}`; use claude or opencode"
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
fn is_ours(handler: &Value) -> bool {
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
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
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
    tmp.write_all(text.as_bytes()).map_err(cannot)?;
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
}
