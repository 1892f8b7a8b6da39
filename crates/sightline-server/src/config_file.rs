//! Edits to the hub's TOML config file made by the settings API, so that a change made while the
//! hub runs survives a restart: the top-level `retention` key, `[[tokens]]` tables added or
//! removed by name, one `[source.<name>]` table per source changed in Settings (`running`,
//! `url`, `paths`), and the `[notify.waiting]`, `[notify.failure]`, `[notify.cost]` rules.
//!
//! Edits are textual and minimal: every other line (comments, order, other keys) stays as the
//! user wrote it. The file is replaced atomically (a temp file beside it, then a rename) and is
//! private (0600 on Unix), since it may hold tokens. This module must never write a value it has
//! not checked (names, roles and tokens are plain ASCII words, retentions a duration word), so
//! no edit can inject TOML, and never log a token. Paths and URLs, which may hold any character,
//! are written as TOML basic strings with every quote, backslash and control character escaped.

use std::io::Write;
use std::path::Path;

/// Why a change could not be written to the config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read the config file {path}: {message}; check its permissions")]
    Read { path: String, message: String },
    #[error(
        "cannot write the config file {path}: {message}; the change applies until the hub stops"
    )]
    Write { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// A value safe to put between TOML quotes as is: ASCII letters, digits, `.`, `_`, `-`.
pub fn is_word(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn read(path: &Path) -> Result<String, ConfigFileError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(ConfigFileError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

fn write(path: &Path, text: &str) -> Result<(), ConfigFileError> {
    let fail = |e: std::io::Error| ConfigFileError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".sightline-tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(fail)
}

/// The index of the first table header (`[x]` or `[[x]]`) line: top-level keys go before it.
fn first_table(lines: &[&str]) -> usize {
    lines
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .unwrap_or(lines.len())
}

fn is_key(line: &str, key: &str) -> bool {
    let t = line.trim_start();
    t.strip_prefix(key)
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

/// Sets (or, with `None`, removes) the top-level `retention = "<text>"`.
pub fn set_retention(path: &Path, text: Option<&str>) -> Result<(), ConfigFileError> {
    if let Some(t) = text
        && !is_word(t, 32)
    {
        return Err(ConfigFileError::Invalid(format!(
            "retention `{t}` is not a duration like 14d, 36h or 0"
        )));
    }
    let old = read(path)?;
    let lines: Vec<&str> = old.lines().collect();
    let top = first_table(&lines);
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 1);
    let mut done = false;
    for (i, line) in lines.iter().enumerate() {
        if i < top && is_key(line, "retention") {
            if let Some(t) = text
                && !done
            {
                out.push(format!("retention = \"{t}\""));
                done = true;
            }
            continue;
        }
        if i == top
            && !done
            && let Some(t) = text
        {
            out.push(format!("retention = \"{t}\""));
            done = true;
        }
        out.push((*line).to_string());
    }
    if !done && let Some(t) = text {
        out.push(format!("retention = \"{t}\""));
    }
    write(path, &(out.join("\n") + "\n"))
}

/// Appends a `[[tokens]]` table.
pub fn add_token(
    path: &Path,
    name: &str,
    token: &str,
    roles: &[&str],
) -> Result<(), ConfigFileError> {
    if !is_word(name, 64) || !is_word(token, 256) || !roles.iter().all(|r| is_word(r, 16)) {
        return Err(ConfigFileError::Invalid(
            "token names, values and roles are letters, digits, `.`, `_` and `-`".into(),
        ));
    }
    let mut text = read(path)?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let roles: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
    text.push_str(&format!(
        "\n[[tokens]]\nname = \"{name}\"\ntoken = \"{token}\"\nroles = [{}]\n",
        roles.join(", ")
    ));
    write(path, &text)
}

/// Removes every `[[tokens]]` table whose `name` is `name`; true when one was there.
pub fn remove_token(path: &Path, name: &str) -> Result<bool, ConfigFileError> {
    let old = read(path)?;
    let lines: Vec<&str> = old.lines().collect();
    let mut out: Vec<&str> = Vec::with_capacity(lines.len());
    let mut removed = false;
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "[[tokens]]" {
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].trim_start().starts_with('['))
                .unwrap_or(lines.len());
            let named = lines[i + 1..end].iter().any(|l| {
                is_key(l, "name")
                    && l.split_once('=').is_some_and(|(_, v)| {
                        v.trim().trim_matches(|c| c == '"' || c == '\'') == name
                    })
            });
            if named {
                removed = true;
                // Drop the blank line this table's append put before it, too (one only).
                if out.last().is_some_and(|l| l.trim().is_empty()) {
                    out.pop();
                }
                i = end;
                continue;
            }
        }
        out.push(lines[i]);
        i += 1;
    }
    if removed {
        write(path, &(out.join("\n") + "\n"))?;
    }
    Ok(removed)
}

/// `text` as a TOML basic string: quotes, backslashes and control characters escaped, so no
/// path or URL can end the string or start a key.
pub fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Replaces every table whose header line is `header` (its lines up to the next header) with
/// one new table of `lines` at the end of the file; the rest of the file is kept as written.
fn replace_table(path: &Path, header: &str, lines: &[String]) -> Result<(), ConfigFileError> {
    let old = read(path)?;
    let old_lines: Vec<&str> = old.lines().collect();
    let mut out: Vec<&str> = Vec::with_capacity(old_lines.len());
    let mut i = 0;
    while i < old_lines.len() {
        if old_lines[i].trim() == header {
            let end = (i + 1..old_lines.len())
                .find(|&j| old_lines[j].trim_start().starts_with('['))
                .unwrap_or(old_lines.len());
            // The blank line our append put before it goes with it (one only).
            if out.last().is_some_and(|l| l.trim().is_empty()) {
                out.pop();
            }
            i = end;
            continue;
        }
        out.push(old_lines[i]);
        i += 1;
    }
    let mut text = out.join("\n");
    if !text.is_empty() {
        text.push_str("\n\n");
    }
    text.push_str(header);
    text.push('\n');
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    write(path, &text)
}

/// Writes `[source.<name>]`: whether it runs, and its settings.
pub fn set_source(
    path: &Path,
    name: &str,
    running: bool,
    config: &sightline_core::supervisor::SourceConfig,
) -> Result<(), ConfigFileError> {
    if !is_word(name, 64) {
        return Err(ConfigFileError::Invalid(format!(
            "source name `{name}` is not a word"
        )));
    }
    let mut lines = vec![format!("running = {running}")];
    if let Some(url) = &config.url {
        lines.push(format!("url = {}", toml_string(url)));
    }
    if !config.paths.is_empty() {
        let paths: Vec<String> = config.paths.iter().map(|p| toml_string(p)).collect();
        lines.push(format!("paths = [{}]", paths.join(", ")));
    }
    replace_table(path, &format!("[source.{name}]"), &lines)
}

/// Writes the three `[notify.<rule>]` tables.
pub fn set_notify(
    path: &Path,
    rules: &sightline_core::supervisor::NotifyRules,
) -> Result<(), ConfigFileError> {
    for (name, r) in rules.each() {
        let webhooks: Vec<String> = r.webhooks.iter().map(|w| toml_string(w)).collect();
        let mut lines = vec![
            format!("enabled = {}", r.enabled),
            format!("desktop = {}", r.desktop),
            format!("webhooks = [{}]", webhooks.join(", ")),
            format!("interval_s = {}", r.interval_s),
            format!("per_minute = {}", r.per_minute),
        ];
        if let Some(b) = r.budget_usd {
            if !b.is_finite() {
                return Err(ConfigFileError::Invalid(
                    "budget_usd must be a finite number".into(),
                ));
            }
            // `{:?}` keeps a decimal point, so TOML reads a float back (`5.0`, not `5`).
            lines.push(format!("budget_usd = {b:?}"));
        }
        replace_table(path, &format!("[notify.{name}]"), &lines)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_set_replaced_and_kept_out_of_tables() {
        let dir = std::env::temp_dir().join(format!("sl-cfg-{}", std::process::id()));
        let path = dir.join("config.toml");
        let _ = std::fs::remove_file(&path);
        set_retention(&path, Some("7d")).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "retention = \"7d\"\n"
        );
        std::fs::write(
            &path,
            "# mine\nport = 5000\nretention = \"14d\"\n\n[[tokens]]\nname = \"ci\"\ntoken = \"abcdefgh12\"\nroles = [\"read\"]\n",
        )
        .unwrap();
        set_retention(&path, Some("36h")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# mine\nport = 5000\nretention = \"36h\"\n"),
            "{text}"
        );
        assert_eq!(text.matches("retention").count(), 1);
        add_token(&path, "laptop", "0123456789abcdef", &["read", "admin"]).unwrap();
        assert!(remove_token(&path, "ci").unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("abcdefgh12"), "{text}");
        assert!(
            text.contains(
                "name = \"laptop\"\ntoken = \"0123456789abcdef\"\nroles = [\"read\", \"admin\"]"
            ),
            "{text}"
        );
        assert!(!remove_token(&path, "ci").unwrap());
        assert!(set_retention(&path, Some("7d\"\n[x]")).is_err());
        assert!(add_token(&path, "a\"b", "0123456789abcdef", &["read"]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn source_and_notify_tables_are_replaced_not_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "# mine\nport = 5000\n\n[[tokens]]\nname = \"ci\"\n").unwrap();
        let mut config = sightline_core::supervisor::SourceConfig {
            url: None,
            paths: vec!["/var/log/a \"b\".log".into()],
        };
        set_source(&path, "logs", true, &config).unwrap();
        config.paths.push("/tmp/c\\d".into());
        set_source(&path, "logs", false, &config).unwrap();
        let mut rules = sightline_core::supervisor::NotifyRules::default();
        rules.cost.budget_usd = Some(5.0);
        rules.cost.enabled = true;
        set_notify(&path, &rules).unwrap();
        set_notify(&path, &rules).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("[source.logs]").count(), 1, "{text}");
        assert_eq!(text.matches("[notify.cost]").count(), 1, "{text}");
        assert!(
            text.starts_with("# mine\nport = 5000\n\n[[tokens]]\nname = \"ci\"\n"),
            "{text}"
        );
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        let logs = &parsed["source"]["logs"];
        assert_eq!(logs["running"].as_bool(), Some(false));
        let paths: Vec<&str> = logs["paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(paths, ["/var/log/a \"b\".log", "/tmp/c\\d"]);
        assert_eq!(parsed["notify"]["cost"]["budget_usd"].as_float(), Some(5.0));
        assert!(set_source(&path, "a]b", true, &config).is_err());
    }

    proptest::proptest! {
        /// Any text written as a TOML string reads back as itself, and never adds a key.
        #[test]
        fn any_text_round_trips_as_a_toml_string(text in "\\PC{0,60}|[\\x00-\\x7f]{0,60}") {
            let doc = format!("x = {}\n", toml_string(&text));
            let parsed: toml::Table = toml::from_str(&doc).unwrap();
            proptest::prop_assert_eq!(parsed.len(), 1);
            proptest::prop_assert_eq!(parsed["x"].as_str(), Some(text.as_str()));
        }
    }

    proptest::proptest! {
        /// Whatever the file held before, an edit keeps every line that is not its own, leaves
        /// exactly one top-level retention, and a removed token's table is gone.
        #[test]
        fn edits_keep_the_rest_of_any_file(
            lines in proptest::collection::vec("[ -~]{0,40}", 0..12),
            name in "[a-z]{1,10}",
        ) {
            let dir = std::env::temp_dir().join(format!("sl-cfgp-{}-{name}", std::process::id()));
            let path = dir.join("config.toml");
            let _ = std::fs::create_dir_all(&dir);
            // Lines that look like ours would be edited on purpose: keep the input free of them.
            let mine = |l: &str| is_key(l, "retention") || l.trim() == "[[tokens]]" || is_key(l, "name");
            let user: Vec<String> = lines.into_iter().filter(|l| !mine(l) && !l.trim_start().starts_with('[')).collect();
            std::fs::write(&path, user.join("\n")).unwrap();
            set_retention(&path, Some("7d")).unwrap();
            add_token(&path, &name, "0123456789abcdef", &["read"]).unwrap();
            set_retention(&path, Some("30d")).unwrap();
            proptest::prop_assert!(remove_token(&path, &name).unwrap());
            let text = std::fs::read_to_string(&path).unwrap();
            proptest::prop_assert_eq!(text.lines().filter(|l| is_key(l, "retention")).count(), 1);
            proptest::prop_assert!(text.contains("retention = \"30d\""));
            proptest::prop_assert!(!text.contains("0123456789abcdef"));
            // Blank lines are layout (one before a removed table goes with it); every other
            // line the user wrote is still there.
            for l in user.iter().filter(|l| !l.trim().is_empty()) {
                proptest::prop_assert!(text.lines().any(|t| t == l), "lost line {:?}", l);
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
