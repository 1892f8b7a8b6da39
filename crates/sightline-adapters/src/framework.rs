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
//! Adapters must never write SQLite directly: [`AdapterContext::emit`] goes through the store's
//! writer, which is the only writer.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sightline_schema::{Event, Timestamp};
use sightline_server::{AdapterHealth, Hub};
use sightline_store::StoreError;
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
    #[error("storage: {0}")]
    Store(#[from] StoreError),
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
    /// The OpenCode server to subscribe to (`SIGHTLINE_OPENCODE_URL`, default `http://127.0.0.1:4096`).
    pub opencode_url: String,
    /// `OPENCODE_SERVER_PASSWORD`, for Basic auth.
    pub opencode_password: Option<String>,
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
            opencode_url: env("SIGHTLINE_OPENCODE_URL")
                .unwrap_or_else(|| "http://127.0.0.1:4096".into()),
            opencode_password: env("OPENCODE_SERVER_PASSWORD"),
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
        let guard = self.inner.lock().expect("checkpoint lock");
        guard.0.get(adapter)?.get(key).cloned()
    }

    pub fn all(&self, adapter: &str) -> BTreeMap<String, Value> {
        let guard = self.inner.lock().expect("checkpoint lock");
        guard.0.get(adapter).cloned().unwrap_or_default()
    }

    pub fn set(&self, adapter: &str, key: &str, value: Value) {
        let mut guard = self.inner.lock().expect("checkpoint lock");
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
            let mut guard = self.inner.lock().expect("checkpoint lock");
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

/// What a running adapter gets: the hub, its checkpoints, and the stop signal.
#[derive(Clone)]
pub struct AdapterContext {
    pub name: &'static str,
    pub hub: Hub,
    pub checkpoints: Checkpoints,
    stop: watch::Receiver<bool>,
}

impl AdapterContext {
    pub fn new(
        name: &'static str,
        hub: Hub,
        checkpoints: Checkpoints,
        stop: watch::Receiver<bool>,
    ) -> Self {
        ensure_health(&hub, name);
        AdapterContext {
            name,
            hub,
            checkpoints,
            stop,
        }
    }

    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps, waking early at stop; true when stopping.
    pub async fn sleep(&self, d: Duration) -> bool {
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
        self.stopping()
    }

    /// Resolves when stop is asked.
    pub async fn stopped(&self) {
        let mut stop = self.stop.clone();
        let _ = stop.wait_for(|s| *s).await;
    }

    /// Commits events through the writer; waits and retries while the queue is full so a
    /// backfill never drops events. Returns only after the commit.
    pub async fn emit(&self, events: Vec<Event>) -> Result<(), AdapterError> {
        if events.is_empty() {
            return Ok(());
        }
        let n = events.len() as u64;
        let last = events.iter().map(|e| e.ts).max();
        let mut delay = Duration::from_millis(20);
        loop {
            match self.hub.store.write(events.clone()).await {
                Ok(_) => break,
                Err(StoreError::QueueFull { .. }) if !self.stopping() => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.hub.adapter_saw(self.name, n, last);
        Ok(())
    }

    pub fn checkpoint(&self, key: &str) -> Option<Value> {
        self.checkpoints.get(self.name, key)
    }

    pub fn set_checkpoint(&self, key: &str, value: Value) {
        self.checkpoints.set(self.name, key, value);
    }

    pub fn set_state(&self, state: &str) {
        set_state(&self.hub, self.name, state);
    }

    /// Records a non-fatal problem (shown in health) and goes on.
    pub fn error(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(adapter = self.name, "{message}");
        self.hub.adapter_failed(self.name, message);
    }
}

/// Adds a health entry for `name` if there is none.
pub fn ensure_health(hub: &Hub, name: &str) {
    let mut adapters = hub.adapters.write().expect("adapters lock");
    if !adapters.iter().any(|a| a.name == name) {
        adapters.push(AdapterHealth::running(name));
    }
}

pub fn set_state(hub: &Hub, name: &str, state: &str) {
    ensure_health(hub, name);
    let mut adapters = hub.adapters.write().expect("adapters lock");
    if let Some(a) = adapters.iter_mut().find(|a| a.name == name) {
        a.state = state.to_string();
    }
}

/// Health bookkeeping for endpoint adapters (hooks, OTLP), which commit through
/// `ingest::commit` themselves.
pub fn note_endpoint(hub: &Hub, name: &str) {
    ensure_health(hub, name);
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
        hub: Hub,
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
            let ctx = AdapterContext::new(name, hub.clone(), checkpoints.clone(), stop_rx.clone());
            tasks.push(tokio::spawn(supervise(adapter, ctx)));
        }
        let flusher = checkpoints.clone();
        let flush_hub = hub.clone();
        let mut flush_stop = stop_rx;
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
                    _ = flush_stop.wait_for(|s| *s) => return,
                }
                if let Err(e) = flusher.flush() {
                    flush_hub.adapter_failed("checkpoints", format!("writing checkpoints: {e}"));
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

/// Runs one adapter; restarts it with backoff after a failure, until stop.
async fn supervise(adapter: Arc<dyn Adapter>, ctx: AdapterContext) {
    let mut backoff = Duration::from_millis(500);
    loop {
        ctx.set_state("running");
        let started = Timestamp::now();
        let result = adapter.clone().run(ctx.clone()).await;
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
