//! The adapter framework: a name, start/stop, health and a persisted checkpoint per adapter.
//!
//! An adapter is one file implementing [`Adapter`] plus one [`Registration`] line in
//! `lib.rs`'s `REGISTRY`. The [`Adapters`] supervisor runs each selected adapter in its own task;
//! when one fails it is restarted with backoff and its health shows the error, but it never stops
//! the others. Checkpoints (an opaque JSON value per adapter and key: a file offset, a cursor)
//! live in memory and are written to a JSON file beside the database every 2 s and at stop
//! (write to a temporary file, then rename, so a crash leaves the old or the new file, never half
//! of one). An adapter sets a checkpoint only after the events it covers were committed, so a
//! restart resumes without loss; the hub's `event_id` dedup absorbs the small overlap.
//!
//! Adapters must never write SQLite directly: [`AdapterContext::emit`] goes through the hub's one
//! ingest path (`sightline_core::Sink`), which counts, reports health and waits while the write
//! queue is full. An adapter receives only its sink, its checkpoints and its stop signal.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::Value;
use sightline_core::supervisor::SettingKind;
use sightline_core::{Core, IngestError, Sink};
use sightline_schema::{Event, Timestamp};
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often dirty checkpoints are written.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Error)]
pub enum AdapterError {
    /// The adapter cannot start with these settings (the CLI exits with code 3).
    #[error("adapter `{name}` cannot start: {message}")]
    Start { name: String, message: String },
    #[error("unknown source `{0}`")]
    Unknown(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("ingest: {0}")]
    Ingest(#[from] IngestError),
    #[error("{0}")]
    Other(String),
}

/// Settings the adapters read; built by `serve` from the environment (see docs/SOURCES-SETUP.md).
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// Where checkpoints are kept.
    pub checkpoint_path: PathBuf,
    /// Claude Code's config dir (`CLAUDE_CONFIG_DIR` or `~/.claude`); transcripts are under `projects/`.
    pub claude_dir: PathBuf,
    /// Codex CLI's home (`CODEX_HOME` or `~/.codex`); rollouts are under `sessions/`.
    pub codex_dir: PathBuf,
    /// Gemini CLI's home (`GEMINI_CLI_HOME`'s `.gemini` or `~/.gemini`); session logs are under
    /// `tmp/<project>/chats/`.
    pub gemini_dir: PathBuf,
    /// The OpenCode server to subscribe to (`SIGHTLINE_OPENCODE_URL`, default `http://127.0.0.1:4096`).
    pub opencode_url: String,
    /// `OPENCODE_SERVER_PASSWORD`, for Basic auth.
    pub opencode_password: Option<String>,
    /// How long the OpenCode stream may carry nothing before it is dropped, in seconds as
    /// written (`SIGHTLINE_OPENCODE_SILENCE_S`; `None`: 30). `OpenCodeAdapter::build` checks it.
    pub opencode_silence_s: Option<String>,
    /// How long a connect to OpenCode may wait for an answer, in seconds as written
    /// (`SIGHTLINE_OPENCODE_HANDSHAKE_S`; `None`: 10). `OpenCodeAdapter::build` checks it.
    pub opencode_handshake_s: Option<String>,
    /// JSONL files or directories of OpenCode events to replay and follow.
    pub jsonl_paths: Vec<PathBuf>,
    /// Where the OpenCode plugin spools while the hub is down (`<data dir>/spool/opencode`);
    /// files there are deleted once consumed.
    pub opencode_spool: PathBuf,
    /// Agent CLI log files for the log-parser fallback (`SIGHTLINE_LOG_FILES`, comma-separated).
    pub log_files: Vec<PathBuf>,
    /// How often file tailers look for new bytes.
    pub poll: Duration,
}

impl AdapterConfig {
    /// Settings from the environment; `data_dir` holds the OpenCode spool, `db` names the
    /// checkpoint file (`<db>.checkpoints.json`).
    pub fn from_env(data_dir: &Path, db: &Path) -> AdapterConfig {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = env("HOME").map(PathBuf::from).unwrap_or_default();
        let list = |k: &str| -> Vec<PathBuf> {
            env(k)
                .map(|v| v.split(',').map(|p| PathBuf::from(p.trim())).collect())
                .unwrap_or_default()
        };
        let opencode_spool = data_dir.join("spool").join("opencode");
        let mut jsonl_paths = list("SIGHTLINE_OPENCODE_JSONL");
        if !jsonl_paths.contains(&opencode_spool) {
            jsonl_paths.push(opencode_spool.clone());
        }
        AdapterConfig {
            checkpoint_path: checkpoint_path_for(db),
            claude_dir: env("CLAUDE_CONFIG_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".claude")),
            codex_dir: env("CODEX_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".codex")),
            gemini_dir: env("GEMINI_CLI_HOME")
                .map(|h| PathBuf::from(h).join(".gemini"))
                .unwrap_or_else(|| home.join(".gemini")),
            opencode_url: env("SIGHTLINE_OPENCODE_URL")
                .unwrap_or_else(|| "http://127.0.0.1:4096".into()),
            opencode_password: env("OPENCODE_SERVER_PASSWORD"),
            opencode_silence_s: env(crate::opencode::SILENCE_VAR),
            opencode_handshake_s: env(crate::opencode::HANDSHAKE_VAR),
            jsonl_paths,
            opencode_spool,
            log_files: list("SIGHTLINE_LOG_FILES"),
            poll: Duration::from_millis(500),
        }
    }
}

/// `<db>.checkpoints.json`: one per database, so two hubs with two databases never share one.
pub fn checkpoint_path_for(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".checkpoints.json");
    db.with_file_name(name)
}

pub type AdapterFuture = Pin<Box<dyn Future<Output = Result<(), AdapterError>> + Send>>;

/// One source. `run` returns when the context says stop (Ok) or when it fails (Err: the
/// supervisor records it and restarts the adapter after a backoff).
pub trait Adapter: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn run(self: Arc<Self>, ctx: AdapterContext) -> AdapterFuture;
}

/// How to build an adapter; `build` failing is a start-up error.
pub struct Registration {
    pub name: &'static str,
    /// Started when `--source` is not given.
    pub default_on: bool,
    pub build: fn(&AdapterConfig) -> Result<Arc<dyn Adapter>, AdapterError>,
    /// What Settings may change about it and what it reads. `None`: it is still listed in
    /// `GET /api/v1/settings/sources` and can be started and stopped, but nothing about it is
    /// editable (kept here, beside the source, so a new source cannot miss a second list).
    pub settings: Option<Settings>,
}

/// A source's settings as the Settings page shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// What may be changed: nothing but running, a URL, one directory, or paths.
    pub kind: SettingKind,
    /// One line on what it reads, naming the variable it takes its default from.
    pub description: &'static str,
}

impl Registration {
    /// Its settings kind and description; a source registered without settings is start and
    /// stop only, with a generic description.
    pub fn describe(&self) -> (SettingKind, &'static str) {
        match self.settings {
            Some(s) => (s.kind, s.description),
            None => (SettingKind::None, "a background source"),
        }
    }
}

/// adapter → key → value, and whether it changed since the last flush.
type CheckpointMap = (BTreeMap<String, BTreeMap<String, Value>>, bool);

/// Checkpoints of every adapter, keyed `adapter` → `key` → value.
#[derive(Clone)]
pub struct Checkpoints {
    inner: Arc<Mutex<CheckpointMap>>,
    path: Option<PathBuf>,
}

impl Checkpoints {
    /// Loads the file; a missing or unreadable file starts empty (a corrupt one is kept aside).
    pub fn load(path: Option<PathBuf>) -> Checkpoints {
        let map = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Checkpoints {
            inner: Arc::new(Mutex::new((map, false))),
            path,
        }
    }

    pub fn get(&self, adapter: &str, key: &str) -> Option<Value> {
        let guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        guard.0.get(adapter)?.get(key).cloned()
    }

    pub fn all(&self, adapter: &str) -> BTreeMap<String, Value> {
        let guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        guard.0.get(adapter).cloned().unwrap_or_default()
    }

    pub fn set(&self, adapter: &str, key: &str, value: Value) {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = guard.0.entry(adapter.to_string()).or_default();
        if slot.get(key) != Some(&value) {
            slot.insert(key.to_string(), value);
            guard.1 = true;
        }
    }

    /// Writes the file if anything changed since the last flush.
    pub fn flush(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text = {
            let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if !guard.1 {
                return Ok(());
            }
            guard.1 = false;
            serde_json::to_vec_pretty(&guard.0).expect("checkpoints serialise")
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}

/// What a running adapter gets: its sink (the one ingest path, its health, the stop signal) and
/// its checkpoints. Nothing else of the hub.
#[derive(Clone)]
pub struct AdapterContext {
    pub name: &'static str,
    pub sink: Sink,
    pub checkpoints: Checkpoints,
}

impl AdapterContext {
    pub fn new(sink: Sink, checkpoints: Checkpoints) -> Self {
        AdapterContext {
            name: sink.name(),
            sink,
            checkpoints,
        }
    }

    pub fn stopping(&self) -> bool {
        self.sink.stopping()
    }

    /// Sleeps, waking early at stop; true when stopping.
    pub async fn sleep(&self, d: Duration) -> bool {
        self.sink.sleep(d).await
    }

    /// Resolves when stop is asked.
    pub async fn stopped(&self) {
        self.sink.stopped().await
    }

    /// Commits events through the one ingest path; waits while the queue is full so a
    /// backfill never drops events. Returns only after the commit.
    pub async fn emit(&self, events: Vec<Event>) -> Result<(), AdapterError> {
        self.sink.emit(events).await?;
        Ok(())
    }

    pub fn checkpoint(&self, key: &str) -> Option<Value> {
        self.checkpoints.get(self.name, key)
    }

    pub fn set_checkpoint(&self, key: &str, value: Value) {
        self.checkpoints.set(self.name, key, value);
    }

    pub fn set_state(&self, state: &str) {
        self.sink.set_state(state);
    }

    /// Records a non-fatal problem (shown in health, logged) and goes on.
    pub fn error(&self, message: impl Into<String>) {
        self.sink.error(message);
    }

    /// Alive, with nothing to send.
    pub fn heartbeat(&self) {
        self.sink.heartbeat();
    }
}

/// The running adapters. Stop them with [`Adapters::stop`] before the store closes.
pub struct Adapters {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    checkpoints: Checkpoints,
    pub names: Vec<&'static str>,
}

impl Adapters {
    /// Builds and starts the selected adapters (`None`: those on by default). A build failure
    /// of any selected adapter is returned before anything runs.
    pub fn start(
        core: Core,
        registry: &[Registration],
        config: &AdapterConfig,
        selected: Option<&[String]>,
    ) -> Result<Adapters, AdapterError> {
        let chosen: Vec<&Registration> = match selected {
            None => registry.iter().filter(|r| r.default_on).collect(),
            Some(names) => {
                let mut out = Vec::new();
                for n in names {
                    if let Some(r) = registry.iter().find(|r| r.name == n) {
                        out.push(r);
                    }
                }
                out
            }
        };
        let mut built = Vec::new();
        for r in chosen {
            built.push((r.name, (r.build)(config)?));
        }
        let checkpoints = Checkpoints::load(Some(config.checkpoint_path.clone()));
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut names = Vec::new();
        for (name, adapter) in built {
            names.push(name);
            let ctx = AdapterContext::new(core.sink(name, stop_rx.clone()), checkpoints.clone());
            tasks.push(tokio::spawn(supervise(adapter, ctx)));
        }
        let flusher = checkpoints.clone();
        let flush_health = core.health().clone();
        let mut flush_stop = stop_rx;
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
                    _ = flush_stop.wait_for(|s| *s) => return,
                }
                if let Err(e) = flusher.flush() {
                    flush_health.failed("checkpoints", format!("writing checkpoints: {e}"));
                }
            }
        }));
        Ok(Adapters {
            stop,
            tasks,
            checkpoints,
            names,
        })
    }

    /// Asks every adapter to stop, waits for them (at most 5 s) and writes the checkpoints.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        if let Err(e) = self.checkpoints.flush() {
            tracing::warn!("writing checkpoints: {e}");
        }
    }
}

/// Runs one adapter in its own task under the same supervision as [`Adapters`] (restart with
/// backoff, health); for the CLI's source supervisor, which gives each its own stop signal.
pub fn spawn_supervised(adapter: Arc<dyn Adapter>, ctx: AdapterContext) -> JoinHandle<()> {
    tokio::spawn(supervise(adapter, ctx))
}

/// Runs one adapter; restarts it with backoff after a failure, until stop.
async fn supervise(adapter: Arc<dyn Adapter>, ctx: AdapterContext) {
    let mut backoff = Duration::from_millis(500);
    loop {
        ctx.set_state("running");
        let started = Timestamp::now();
        // A panic inside an adapter is contained here: it becomes a failure like any other,
        // shown in health and followed by a restart, never a dead task that health still
        // calls "running".
        let result = match AssertUnwindSafe(adapter.clone().run(ctx.clone()))
            .catch_unwind()
            .await
        {
            Ok(result) => result,
            Err(panic) => Err(AdapterError::Other(format!(
                "the adapter panicked: {}",
                panic_message(&*panic)
            ))),
        };
        if ctx.stopping() {
            ctx.set_state("stopped");
            return;
        }
        match result {
            Ok(()) => {
                ctx.set_state("finished");
                return;
            }
            Err(e) => {
                ctx.error(e.to_string());
                ctx.set_state("failed");
                // A run that lasted a while earns a fresh backoff.
                if Timestamp::now().millis() - started.millis() > 60_000 {
                    backoff = Duration::from_millis(500);
                }
                if ctx.sleep(backoff).await {
                    ctx.set_state("stopped");
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The message of a caught panic (the core's, re-exported for the sources).
pub use sightline_core::panic_message;
