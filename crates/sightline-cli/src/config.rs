//! Where settings come from: flags, then `SIGHTLINE_*` environment variables (both handled by
//! clap), then the TOML config file, then defaults. Also the data directory.
//!
//! Unknown keys in the config file are an error (exit 2) so that a typo is not ignored.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::exit::Exit;

/// `serve`'s defaults, for settings given neither as a flag, nor in the environment, nor in the
/// config file (`serve` and `sightline config` read them here).
pub const DEFAULT_PORT: u16 = 4517;
pub const DEFAULT_BIND: &str = "127.0.0.1";
pub const DEFAULT_RETENTION: &str = "14d";
/// 8 MiB: a large Claude transcript batch fits; anything bigger is a mistake or an attack.
pub const DEFAULT_MAX_BODY: usize = 8 * 1024 * 1024;

/// The config file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub port: Option<u16>,
    pub bind: Option<String>,
    pub db: Option<PathBuf>,
    pub sources: Option<Vec<String>>,
    pub token: Option<String>,
    pub retention: Option<String>,
    pub max_body: Option<usize>,
    /// `idle_after = "30m"`: when agent sessions stop counting as active (`serve --idle-after`).
    pub idle_after: Option<String>,
    /// `liveness_every = 5`: seconds between liveness sweeps (`serve --liveness-every`).
    pub liveness_every: Option<f64>,
    /// `[[tokens]]` tables: `token`, `roles` (read, ingest, admin), `name` (docs/SECURITY.md).
    pub tokens: Option<Vec<sightline_server::auth::TokenSpec>>,
    pub token_file: Option<PathBuf>,
    pub allow_hosts: Option<Vec<String>>,
    pub allow_origins: Option<Vec<String>>,
    pub rate_limit: Option<f64>,
    pub rate_limit_addr: Option<f64>,
    pub audit_log: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub otlp_export: Option<String>,
    /// `[[plugins]]` tables: `name`, then `command = [..]` or `url`, optional `timeout_ms`
    /// (the same shape as `SIGHTLINE_PLUGINS`, which wins when set).
    pub plugins: Option<Vec<serde_json::Value>>,
    /// `[source.<name>]` tables written by Settings: `running`, `url`, `paths`
    /// (commands/sources.rs).
    pub source: Option<std::collections::BTreeMap<String, crate::commands::sources::SourceTable>>,
    /// `[notify.waiting]`, `[notify.failure]`, `[notify.cost]` written by Settings.
    pub notify: Option<sightline_core::supervisor::NotifyRules>,
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// `$XDG_DATA_HOME/sightline` or `~/.local/share/sightline`.
pub fn data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("sightline");
    }
    home()
        .map(|h| h.join(".local/share/sightline"))
        .unwrap_or_else(|| PathBuf::from(".sightline"))
}

/// `$XDG_CONFIG_HOME/sightline/config.toml` or `~/.config/sightline/config.toml`.
pub fn default_config_path() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("sightline/config.toml"));
    }
    home().map(|h| h.join(".config/sightline/config.toml"))
}

/// The config file in use: the explicit one, else the default path (which may not exist yet).
/// The settings API writes its changes here (`HubSettings::config_file`).
pub fn path_in_use(explicit: Option<&Path>) -> Option<PathBuf> {
    explicit.map(Path::to_path_buf).or_else(default_config_path)
}

/// Reads the config file: the explicit one must exist; the default one may not.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<FileConfig> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => match default_config_path() {
            Some(p) => (p, false),
            None => return Ok(FileConfig::default()),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileConfig::default());
        }
        Err(e) => {
            return Err(Exit::config(format!(
                "cannot read the config file {}: {e}",
                path.display()
            )));
        }
    };
    toml::from_str(&text).map_err(|e| Exit::config(format!("config file {}: {e}", path.display())))
}

/// The liveness sweep's settings from `--idle-after` / `idle_after` (a duration word like
/// `30m`; `0` turns the idle rule off) and `--liveness-every` / `liveness_every` (seconds).
pub fn liveness(
    idle_after: Option<&str>,
    every: Option<f64>,
) -> anyhow::Result<sightline_core::liveness::Settings> {
    let mut settings = sightline_core::liveness::Settings::default();
    if let Some(text) = idle_after {
        // The retention words' reader, with this setting's own messages.
        use sightline_store::retention::PeriodError;
        settings.idle_after = sightline_store::retention::parse_period(text).map_err(|e| {
            let why = match e {
                PeriodError::NotADuration(_) => "is not a duration like 30m or 2h",
                PeriodError::TooShort(_) => "is under a minute",
                PeriodError::TooLong(_) => "is over ten years",
            };
            Exit::config(format!(
                "--idle-after / idle_after `{text}` {why}; use e.g. 30m, or 0 to turn it off"
            ))
        })?;
    }
    if let Some(secs) = every {
        if !(0.1..=3_600.0).contains(&secs) {
            return Err(Exit::config(format!(
                "--liveness-every / liveness_every: {secs} is not between 0.1 and 3600 seconds"
            )));
        }
        settings.every = Duration::from_secs_f64(secs);
    }
    Ok(settings)
}

/// Reads a retention word (`14d`, `36h`, `90m`, `0`) the one way the hub does, as a config error.
pub fn parse_retention(text: &str) -> anyhow::Result<Option<Duration>> {
    sightline_store::retention::parse_period(text).map_err(|e| Exit::config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_forms() {
        assert_eq!(
            parse_retention("14d").unwrap(),
            Some(Duration::from_secs(14 * 86_400))
        );
        assert_eq!(
            parse_retention("36h").unwrap(),
            Some(Duration::from_secs(36 * 3_600))
        );
        assert_eq!(
            parse_retention("2").unwrap(),
            Some(Duration::from_secs(2 * 86_400))
        );
        assert_eq!(parse_retention("0").unwrap(), None);
        assert!(parse_retention("soon").is_err());
        assert!(parse_retention("3w").is_err());
        assert!(parse_retention("1e300d").is_err());
    }

    #[test]
    fn config_file_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "port = 5000\nprot = 1\n").unwrap();
        let err = load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("prot"), "{err}");
        std::fs::write(&path, "port = 5000\nretention = \"3d\"\n").unwrap();
        assert_eq!(load(Some(&path)).unwrap().port, Some(5000));
        std::fs::write(
            &path,
            "[[plugins]]\nname = \"sample\"\ncommand = [\"python3\", \"p.py\"]\n",
        )
        .unwrap();
        let plugins = load(Some(&path)).unwrap().plugins.unwrap();
        assert_eq!(plugins[0]["command"][1], "p.py");
    }
}
