//! `serve`'s background sources under the core's supervisor: the concrete factory (which
//! sources exist, what each is configured with, how one is checked and started) that lets the
//! settings API start, stop and reconfigure each one while the hub runs.
//!
//! A source's settings come from, in order: its `[source.<name>]` table in the config file
//! (written by Settings, the newest word), then the environment variables the sources always
//! read (docs/SOURCES-SETUP.md), then defaults. Whether it runs: `--source` / SIGHTLINE_SOURCES
//! when given, else its table's `running`, else the file's `sources` list, else its default.
//! Checks made for a change from the API are strict (a path must exist, a URL must parse) so a
//! typo is a clear 400; at start-up a missing directory is only waited for, as it always was.
//! This module must never start a source twice (the supervisor owns every instance) nor keep
//! a password in a configuration that is shown or written (OpenCode's stays in its variable).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sightline_core::Sink;
use sightline_core::supervisor::{
    MAX_PATHS, MAX_SETTING_LEN, SettingKind, SourceConfig, SourceFactory, SourceKind, check_url,
};
use sightline_sources::framework::{AdapterContext, CHECKPOINT_EVERY, Checkpoints};
use sightline_sources::{AdapterConfig, REGISTRY, Registration};
use tokio::task::JoinHandle;

/// A `[source.<name>]` table of the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTable {
    pub running: Option<bool>,
    pub url: Option<String>,
    pub paths: Option<Vec<String>>,
}

/// The settings page's list: every registered source, in registry order, with the settings
/// kind its registration gives (so a source added to the registry needs no line here; one
/// registered without settings is start and stop only).
fn kinds_of(registry: &[Registration]) -> Vec<SourceKind> {
    registry
        .iter()
        .map(|r| {
            let (setting, description) = r.describe();
            SourceKind {
                name: r.name,
                description,
                setting,
            }
        })
        .collect()
}

/// The configuration a source starts with from the environment (before its table).
fn from_env(registration: &Registration, base: &AdapterConfig) -> SourceConfig {
    let text = |p: &Path| p.display().to_string();
    let name = registration.name;
    let (setting, _) = registration.describe();
    use sightline_sources::{claude, codex, gemini, logparse, opencode};
    match setting {
        SettingKind::Url => SourceConfig {
            url: Some(base.opencode_url.clone()),
            paths: Vec::new(),
        },
        SettingKind::Directory => {
            let dir = if name == claude::transcript::NAME {
                &base.claude_dir
            } else if name == codex::NAME {
                &base.codex_dir
            } else if name == gemini::NAME {
                &base.gemini_dir
            } else {
                return SourceConfig::default();
            };
            SourceConfig {
                url: None,
                paths: vec![text(dir)],
            }
        }
        SettingKind::Paths => {
            let paths: Vec<String> = if name == logparse::NAME {
                base.log_files.iter().map(|p| text(p)).collect()
            } else if name == opencode::JSONL_NAME {
                base.jsonl_paths
                    .iter()
                    .filter(|p| **p != base.opencode_spool)
                    .map(|p| text(p))
                    .collect()
            } else {
                Vec::new()
            };
            SourceConfig { url: None, paths }
        }
        SettingKind::None => SourceConfig::default(),
    }
}

/// The adapters' settings with one source's configuration applied.
fn adapter_config(name: &str, base: &AdapterConfig, config: &SourceConfig) -> AdapterConfig {
    use sightline_sources::{claude, codex, gemini, logparse, opencode};
    let mut c = base.clone();
    let paths: Vec<PathBuf> = config.paths.iter().map(PathBuf::from).collect();
    let first = paths.first().cloned();
    if name == claude::transcript::NAME {
        c.claude_dir = first.unwrap_or(c.claude_dir);
    } else if name == codex::NAME {
        c.codex_dir = first.unwrap_or(c.codex_dir);
    } else if name == gemini::NAME {
        c.gemini_dir = first.unwrap_or(c.gemini_dir);
    } else if name == opencode::NAME {
        if let Some(url) = &config.url {
            c.opencode_url = url.clone();
        }
    } else if name == opencode::JSONL_NAME {
        c.jsonl_paths = paths;
        if !c.jsonl_paths.contains(&c.opencode_spool) {
            c.jsonl_paths.push(c.opencode_spool.clone());
        }
    } else if name == logparse::NAME {
        c.log_files = paths;
    }
    c
}

/// Every configurable source with the configuration it starts with, and whether it starts.
pub fn initial(
    base: &AdapterConfig,
    tables: &BTreeMap<String, SourceTable>,
    selected_by_flag: Option<&[String]>,
    selected_by_file: Option<&[String]>,
) -> (BTreeMap<String, SourceConfig>, Vec<&'static str>) {
    let mut configs = BTreeMap::new();
    let mut run = Vec::new();
    for r in REGISTRY {
        let table = tables.get(r.name);
        let mut config = from_env(r, base);
        if let Some(t) = table {
            if let Some(url) = &t.url {
                config.url = Some(url.clone());
            }
            if let Some(paths) = &t.paths {
                config.paths = paths.clone();
            }
        }
        let on = match (selected_by_flag, table.and_then(|t| t.running)) {
            (Some(names), _) => names.iter().any(|n| n == r.name),
            (None, Some(running)) => running,
            (None, None) => match selected_by_file {
                Some(names) => names.iter().any(|n| n == r.name),
                None => r.default_on,
            },
        };
        if on {
            run.push(r.name);
        }
        configs.insert(r.name.to_string(), config);
    }
    (configs, run)
}

/// Table names of the config file that are not sources: a typo is a config error.
pub fn unknown_tables(tables: &BTreeMap<String, SourceTable>) -> Option<String> {
    tables
        .keys()
        .find(|k| !REGISTRY.iter().any(|r| r.name == k.as_str()))
        .cloned()
}

/// The factory the core's supervisor starts sources with.
pub struct Factory {
    base: AdapterConfig,
    checkpoints: Checkpoints,
}

impl Factory {
    pub fn new(base: AdapterConfig) -> Factory {
        let checkpoints = Checkpoints::load(Some(base.checkpoint_path.clone()));
        Factory { base, checkpoints }
    }

    /// Writes dirty checkpoints every 2 s until `stop` turns true, then once more.
    pub fn flush_checkpoints(
        &self,
        core: sightline_core::Core,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let checkpoints = self.checkpoints.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                if let Err(e) = checkpoints.flush() {
                    core.health()
                        .failed("checkpoints", format!("writing checkpoints: {e}"));
                }
            }
            if let Err(e) = checkpoints.flush() {
                tracing::warn!("writing checkpoints: {e}");
            }
        })
    }
}

/// A path from the API: absolute, existing, of the right kind.
fn check_path(p: &str, want_dir: bool) -> Result<(), String> {
    if p.is_empty() {
        return Err("a path is empty".into());
    }
    if p.len() > MAX_SETTING_LEN || p.contains('\0') {
        return Err(format!(
            "a path is longer than {MAX_SETTING_LEN} bytes or holds a NUL"
        ));
    }
    let path = Path::new(p);
    if !path.is_absolute() {
        return Err(format!("`{p}` is not an absolute path; give the full path"));
    }
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "`{p}` does not exist; check the spelling or create it first"
        )),
        Err(e) => Err(format!("`{p}` cannot be read: {e}")),
        Ok(m) if want_dir && !m.is_dir() => Err(format!("`{p}` is not a directory")),
        // The tailers walk their directory tree every poll: the whole filesystem is never what
        // was meant, and walking it twice a second would load the machine.
        Ok(_) if want_dir && path.parent().is_none() => Err(format!(
            "`{p}` is the whole filesystem; give the agent's own directory"
        )),
        Ok(_) => Ok(()),
    }
}

impl SourceFactory for Factory {
    fn kinds(&self) -> Vec<SourceKind> {
        kinds_of(REGISTRY)
    }

    fn check(&self, kind: &SourceKind, config: &SourceConfig) -> Result<(), String> {
        match kind.setting {
            SettingKind::None => {}
            SettingKind::Url => {
                let url = config.url.as_deref().unwrap_or("");
                check_url(url, &["http://"]).map_err(|e| {
                    format!(
                        "url {e} (OpenCode serves plain HTTP on this machine: http://127.0.0.1:4096)"
                    )
                })?;
            }
            SettingKind::Directory => {
                let [dir] = config.paths.as_slice() else {
                    return Err(format!(
                        "give exactly one directory in `paths` (got {})",
                        config.paths.len()
                    ));
                };
                check_path(dir, true)?;
            }
            SettingKind::Paths => {
                if config.paths.len() > MAX_PATHS {
                    return Err(format!("at most {MAX_PATHS} paths"));
                }
                if config.paths.is_empty() && kind.name == sightline_sources::logparse::NAME {
                    return Err("give at least one log file in `paths`".into());
                }
                for p in &config.paths {
                    check_path(p, false)?;
                }
            }
        }
        // The source's own start checks (OpenCode's URL form, ...), without starting it.
        let registration = REGISTRY
            .iter()
            .find(|r| r.name == kind.name)
            .ok_or_else(|| format!("`{}` is not a registered source", kind.name))?;
        (registration.build)(&adapter_config(kind.name, &self.base, config))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn spawn(
        &self,
        kind: &SourceKind,
        config: &SourceConfig,
        sink: Sink,
    ) -> Result<JoinHandle<()>, String> {
        let registration = REGISTRY
            .iter()
            .find(|r| r.name == kind.name)
            .ok_or_else(|| format!("`{}` is not a registered source", kind.name))?;
        let adapter = (registration.build)(&adapter_config(kind.name, &self.base, config))
            .map_err(|e| e.to_string())?;
        let ctx = AdapterContext::new(sink, self.checkpoints.clone());
        Ok(sightline_sources::framework::spawn_supervised(adapter, ctx))
    }
}

/// The factory as the supervisor takes it.
pub fn factory(base: AdapterConfig) -> Arc<Factory> {
    Arc::new(Factory::new(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(dir: &Path) -> AdapterConfig {
        let mut c = AdapterConfig::from_env(dir, &dir.join("db.sqlite"));
        c.log_files = vec![dir.join("env.log")];
        c.opencode_url = "http://127.0.0.1:4096".into();
        c
    }

    #[test]
    fn which_run_and_with_what_flag_then_table_then_file_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let base = base(dir.path());
        let tables = BTreeMap::from([
            (
                "logs".to_string(),
                SourceTable {
                    running: Some(true),
                    url: None,
                    paths: Some(vec!["/var/log/table.log".into()]),
                },
            ),
            (
                "tmux".to_string(),
                SourceTable {
                    running: Some(false),
                    ..SourceTable::default()
                },
            ),
        ]);
        // No flag, no list: tables decide for theirs, defaults for the rest.
        let (configs, run) = initial(&base, &tables, None, None);
        assert!(run.contains(&"logs") && !run.contains(&"tmux"), "{run:?}");
        assert!(run.contains(&"claude-transcripts"), "{run:?}");
        assert_eq!(
            configs["logs"].paths,
            ["/var/log/table.log"],
            "the table wins over the environment"
        );
        assert_eq!(
            configs["opencode"].url.as_deref(),
            Some("http://127.0.0.1:4096")
        );
        // The file's list gives way to a table, not to defaults.
        let list = vec!["tmux".to_string()];
        let (_, run) = initial(&base, &tables, None, Some(&list));
        assert_eq!(run, ["logs"]);
        // A flag decides alone.
        let flag = vec!["tmux".to_string()];
        let (_, run) = initial(&base, &tables, Some(&flag), None);
        assert_eq!(run, ["tmux"]);
        assert_eq!(unknown_tables(&tables), None);
        let typo = BTreeMap::from([("lgos".to_string(), SourceTable::default())]);
        assert_eq!(unknown_tables(&typo).as_deref(), Some("lgos"));
    }

    #[test]
    fn a_source_registered_without_settings_is_listed_start_and_stop_only() {
        fn never(
            _: &AdapterConfig,
        ) -> Result<Arc<dyn sightline_sources::Adapter>, sightline_sources::AdapterError> {
            Err(sightline_sources::AdapterError::Unknown("never".into()))
        }
        let registry = [
            Registration {
                name: "bare",
                default_on: false,
                build: never,
                settings: None,
            },
            Registration {
                name: "editable",
                default_on: false,
                build: never,
                settings: Some(sightline_sources::Settings {
                    kind: SettingKind::Paths,
                    description: "some files",
                }),
            },
        ];
        let kinds = kinds_of(&registry);
        let names: Vec<_> = kinds.iter().map(|k| k.name).collect();
        assert_eq!(names, ["bare", "editable"]);
        assert_eq!(kinds[0].setting, SettingKind::None);
        assert_eq!(kinds[0].description, "a background source");
        assert_eq!(kinds[1].setting, SettingKind::Paths);
        assert_eq!(kinds[1].description, "some files");
    }

    #[test]
    fn checks_refuse_what_could_not_work() {
        let dir = tempfile::tempdir().unwrap();
        let factory = Factory::new(base(dir.path()));
        let kinds = factory.kinds();
        let kind = |n: &str| kinds.iter().find(|k| k.name == n).unwrap().clone();
        let paths = |p: &[&str]| SourceConfig {
            url: None,
            paths: p.iter().map(|s| s.to_string()).collect(),
        };
        let d = dir.path().display().to_string();
        let file = dir.path().join("x.log");
        std::fs::write(&file, "").unwrap();
        let f = file.display().to_string();
        assert!(
            factory
                .check(&kind("codex-rollouts"), &paths(&[&d]))
                .is_ok()
        );
        assert!(
            factory
                .check(&kind("codex-rollouts"), &paths(&[&f]))
                .is_err(),
            "a file"
        );
        assert!(
            factory
                .check(&kind("codex-rollouts"), &paths(&[&d, &d]))
                .is_err(),
            "two"
        );
        assert!(
            factory
                .check(&kind("codex-rollouts"), &paths(&["/"]))
                .is_err(),
            "the root"
        );
        assert!(factory.check(&kind("logs"), &paths(&[&f, &d])).is_ok());
        assert!(factory.check(&kind("logs"), &paths(&[])).is_err());
        assert!(
            factory.check(&kind("logs"), &paths(&["x.log"])).is_err(),
            "relative"
        );
        let url = |u: &str| SourceConfig {
            url: Some(u.into()),
            paths: vec![],
        };
        assert!(
            factory
                .check(&kind("opencode"), &url("http://127.0.0.1:4096"))
                .is_ok()
        );
        assert!(
            factory
                .check(&kind("opencode"), &url("https://127.0.0.1:4096"))
                .is_err()
        );
        assert!(factory.check(&kind("opencode"), &url("http://")).is_err());
        assert!(
            factory
                .check(&kind("tmux"), &SourceConfig::default())
                .is_ok()
        );
    }
}
