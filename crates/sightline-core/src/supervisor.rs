//! Settings that change what the hub runs while it runs: the source supervisor (each
//! configurable background source with its own stop signal, so it can be started, stopped and
//! reconfigured without a restart) and the live notification rules.
//!
//! The core knows no concrete source: the CLI, which does, gives the [`Supervisor`] a
//! [`SourceFactory`] (what sources exist, how to check a configuration, how to spawn one), and
//! the server reaches the supervisor through the [`SourceControl`] trait object in
//! [`Controls`] — so the server never depends on the sources crate. The notifier reads
//! [`NotifyRules`] from a watch channel, so a rule changed in Settings applies to the next
//! event. This module must never hold a `std` lock across an await, never start two instances
//! of one source at once (the old one has stopped, or was given 5 s to, before the new one
//! starts), and never write files: the server persists what it changed.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::Core;
use crate::health::SourceHealth;
use crate::source::Sink;

/// How long a stopping source may take before its task is abandoned (it was told to stop; a
/// source that ignores that is a bug, and the settings call must still answer).
pub const STOP_WAIT: Duration = Duration::from_secs(5);
/// Paths one source may be given: a list longer than this is a mistake, not a setup.
pub const MAX_PATHS: usize = 64;
/// The longest path or URL accepted (PATH_MAX on Linux).
pub const MAX_SETTING_LEN: usize = 4096;

/// Which settings a source takes, so a client knows what to edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettingKind {
    /// Start and stop only.
    None,
    /// `url`: a server to connect to.
    Url,
    /// `paths` with exactly one directory.
    Directory,
    /// `paths`: one or more files or directories.
    Paths,
}

/// One configurable source, as the factory describes it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SourceKind {
    /// Its name in health and in `serve --source`.
    pub name: &'static str,
    /// One line on what it reads.
    pub description: &'static str,
    pub setting: SettingKind,
}

/// A source's configuration: what its [`SettingKind`] says it takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SourceConfig {
    /// The server to connect to (OpenCode's `opencode serve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Directories or files to read.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// `GET /api/v1/settings/sources`: one source, its configuration, whether it runs, its health.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SourceStatus {
    pub name: String,
    pub description: String,
    pub setting: SettingKind,
    pub config: SourceConfig,
    /// True while its task runs (it may still be `waiting` or `failed` and retrying: see health).
    pub running: bool,
    /// Its health entry (state, events, errors, last error); none until it first ran.
    pub health: Option<SourceHealth>,
}

/// A change to one source: any of the three, the rest kept.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceChange {
    /// Start (`true`) or stop (`false`).
    #[serde(default)]
    pub running: Option<bool>,
    /// A new URL (sources whose setting is `url`).
    #[serde(default)]
    pub url: Option<String>,
    /// New paths (sources whose setting is `directory` or `paths`).
    #[serde(default)]
    pub paths: Option<Vec<String>>,
}

/// Why a change was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceControlError {
    #[error("no configurable source named `{0}`; GET /api/v1/settings/sources lists them")]
    Unknown(String),
    #[error("{0}")]
    Invalid(String),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the server asks of the sources, without knowing them.
pub trait SourceControl: Send + Sync + 'static {
    /// Every configurable source, in a stable order.
    fn list(&self) -> BoxFuture<'_, Vec<SourceStatus>>;
    /// Applies `change` to `name`: checked first (nothing changes when it is refused), then
    /// the source is stopped, reconfigured and started as asked. Answers its new status.
    fn apply<'a>(
        &'a self,
        name: &'a str,
        change: SourceChange,
    ) -> BoxFuture<'a, Result<SourceStatus, SourceControlError>>;
}

/// What the composition root knows: the concrete sources.
pub trait SourceFactory: Send + Sync + 'static {
    fn kinds(&self) -> Vec<SourceKind>;
    /// Checks a configuration (a clear message naming what to fix when it is refused). Must
    /// not start anything.
    fn check(&self, kind: &SourceKind, config: &SourceConfig) -> Result<(), String>;
    /// Starts the source with this configuration; it sends through `sink` and ends when the
    /// sink's stop signal turns true.
    fn spawn(
        &self,
        kind: &SourceKind,
        config: &SourceConfig,
        sink: Sink,
    ) -> Result<JoinHandle<()>, String>;
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

struct Instance {
    kind: SourceKind,
    config: SourceConfig,
    running: Option<Running>,
}

/// Owns every configurable source instance. Cheap to share (`Arc`).
pub struct Supervisor {
    core: Core,
    factory: Arc<dyn SourceFactory>,
    // A tokio mutex: a change holds it across the old instance's stop, so two changes to the
    // sources never interleave (and never run two instances of one source).
    instances: Mutex<BTreeMap<&'static str, Instance>>,
    /// Set by [`Supervisor::stop_all`]: the hub is stopping, so nothing may start again.
    closed: std::sync::atomic::AtomicBool,
}

impl Supervisor {
    /// A supervisor of the factory's sources, each with its initial configuration (a source
    /// missing from `initial` starts with the default, empty configuration). Starts nothing.
    pub fn new(
        core: Core,
        factory: Arc<dyn SourceFactory>,
        mut initial: BTreeMap<String, SourceConfig>,
    ) -> Supervisor {
        let instances = factory
            .kinds()
            .into_iter()
            .map(|kind| {
                let config = initial.remove(kind.name).unwrap_or_default();
                (
                    kind.name,
                    Instance {
                        kind,
                        config,
                        running: None,
                    },
                )
            })
            .collect();
        Supervisor {
            core,
            factory,
            instances: Mutex::new(instances),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Starts `name` with its current configuration, as the hub starts (a start-up error
    /// names it). Only the factory's own start checks apply here, not [`SourceFactory::check`]:
    /// a configured directory that does not exist yet is waited for, as it always was.
    pub async fn start(&self, name: &str) -> Result<(), SourceControlError> {
        let mut map = self.instances.lock().await;
        let inst = map
            .get_mut(name)
            .ok_or_else(|| SourceControlError::Unknown(name.into()))?;
        forget_finished(inst);
        if inst.running.is_some() {
            return Ok(());
        }
        inst.running = Some(self.spawn(inst)?);
        Ok(())
    }

    fn spawn(&self, inst: &Instance) -> Result<Running, SourceControlError> {
        let (stop, stop_rx) = watch::channel(false);
        let sink = self.core.sink(inst.kind.name, stop_rx);
        // The answer to this start (and any list right after it) says `running`, so health must
        // not still say the `stopped` of the previous stop: the new task sets its own state only
        // once the runtime schedules it, which on a loaded machine came after the answer, and
        // the Settings page showed a started source as stopped. Set before the spawn, so a task
        // that fails at once is not overwritten back to running.
        self.core.health().set_state(inst.kind.name, "running");
        let task = match self.factory.spawn(&inst.kind, &inst.config, sink) {
            Ok(task) => task,
            Err(e) => {
                self.core.health().set_state(inst.kind.name, "stopped");
                return Err(SourceControlError::Invalid(e));
            }
        };
        Ok(Running { stop, task })
    }

    /// The names of the sources running now.
    pub async fn running(&self) -> Vec<&'static str> {
        let map = self.instances.lock().await;
        map.iter()
            .filter(|(_, i)| i.running.is_some())
            .map(|(n, _)| *n)
            .collect()
    }

    /// Stops every source (at most [`STOP_WAIT`] each), for the hub's shutdown.
    pub async fn stop_all(&self) {
        let mut map = self.instances.lock().await;
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let running: Vec<Running> = map.values_mut().filter_map(|i| i.running.take()).collect();
        for r in &running {
            r.stop.send_replace(true);
        }
        for r in running {
            let _ = tokio::time::timeout(STOP_WAIT, r.task).await;
        }
    }

    fn status(&self, inst: &Instance) -> SourceStatus {
        SourceStatus {
            name: inst.kind.name.to_string(),
            description: inst.kind.description.to_string(),
            setting: inst.kind.setting,
            config: inst.config.clone(),
            running: inst.running.as_ref().is_some_and(|r| !r.task.is_finished()),
            health: self.core.health().get(inst.kind.name),
        }
    }
}

/// A task that ended by itself (a source that finished its work) no longer counts as running,
/// so a start starts it again.
fn forget_finished(inst: &mut Instance) {
    if inst.running.as_ref().is_some_and(|r| r.task.is_finished()) {
        inst.running = None;
    }
}

async fn stop_one(running: Running) {
    running.stop.send_replace(true);
    if tokio::time::timeout(STOP_WAIT, running.task).await.is_err() {
        tracing::warn!(
            "a source did not stop within {}s; it was abandoned",
            STOP_WAIT.as_secs()
        );
    }
}

impl SourceControl for Supervisor {
    fn list(&self) -> BoxFuture<'_, Vec<SourceStatus>> {
        Box::pin(async move {
            let map = self.instances.lock().await;
            map.values().map(|i| self.status(i)).collect()
        })
    }

    fn apply<'a>(
        &'a self,
        name: &'a str,
        change: SourceChange,
    ) -> BoxFuture<'a, Result<SourceStatus, SourceControlError>> {
        Box::pin(async move {
            let mut map = self.instances.lock().await;
            let inst = map
                .get_mut(name)
                .ok_or_else(|| SourceControlError::Unknown(name.into()))?;
            forget_finished(inst);
            if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(SourceControlError::Invalid(
                    "the hub is stopping; change sources after it restarts".into(),
                ));
            }
            let mut config = inst.config.clone();
            match inst.kind.setting {
                SettingKind::None if change.url.is_some() || change.paths.is_some() => {
                    return Err(SourceControlError::Invalid(format!(
                        "`{name}` has no settings: send only `running`"
                    )));
                }
                SettingKind::Url if change.paths.is_some() => {
                    return Err(SourceControlError::Invalid(format!(
                        "`{name}` takes a `url`, not `paths`"
                    )));
                }
                SettingKind::Directory | SettingKind::Paths if change.url.is_some() => {
                    return Err(SourceControlError::Invalid(format!(
                        "`{name}` takes `paths`, not a `url`"
                    )));
                }
                _ => {}
            }
            if let Some(url) = change.url {
                config.url = Some(url.trim().to_string());
            }
            if let Some(paths) = change.paths {
                config.paths = paths.iter().map(|p| p.trim().to_string()).collect();
            }
            let reconfigured = config != inst.config;
            let want_running = change.running.unwrap_or(inst.running.is_some());
            if want_running || reconfigured {
                // A stopped source may be given a configuration it is not yet started with,
                // but never one it could not start with.
                self.factory
                    .check(&inst.kind, &config)
                    .map_err(SourceControlError::Invalid)?;
            }
            let must_stop = inst.running.is_some() && (!want_running || reconfigured);
            if must_stop && let Some(running) = inst.running.take() {
                stop_one(running).await;
                self.core.health().set_state(inst.kind.name, "stopped");
            }
            inst.config = config;
            if want_running && inst.running.is_none() {
                // The checks passed, so this fails only if the source's own start does; the
                // old instance is stopped by now, and the message says so.
                inst.running = Some(self.spawn(inst).map_err(|e| {
                    SourceControlError::Invalid(format!("{e} (the source is stopped)"))
                })?);
            }
            tracing::info!(
                source = name,
                running = inst.running.is_some(),
                reconfigured,
                "source changed from settings"
            );
            Ok(self.status(inst))
        })
    }
}

/// One notification rule: whether it fires, where its alerts go, and its rate limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSettings {
    pub enabled: bool,
    /// A desktop notification through the platform's notifier (notify-send, osascript).
    pub desktop: bool,
    /// `http://` or `https://` URLs that get `{"text": "..."}` (Slack-compatible); at most 8.
    pub webhooks: Vec<String>,
    /// At most one alert per session (or run) in this many seconds.
    pub interval_s: u64,
    /// At most this many alerts of this rule per minute (what is held back is counted and
    /// said in the next alert).
    pub per_minute: u32,
    /// The cost rule only: a run whose cost passes this many US dollars raises one alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
}

impl Default for RuleSettings {
    fn default() -> Self {
        RuleSettings {
            enabled: false,
            desktop: false,
            webhooks: Vec::new(),
            interval_s: 60,
            per_minute: 6,
            budget_usd: None,
        }
    }
}

/// Webhooks one rule may post to.
pub const MAX_WEBHOOKS: usize = 8;
/// The longest interval accepted: a day (longer is "off", which `enabled` says better).
pub const MAX_INTERVAL_S: u64 = 86_400;
/// The largest per-minute burst accepted.
pub const MAX_PER_MINUTE: u32 = 600;

/// The three rules: a session waits for its user, something fails, a run passes its budget.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyRules {
    pub waiting: RuleSettings,
    pub failure: RuleSettings,
    pub cost: RuleSettings,
}

impl NotifyRules {
    /// The rules by name, in a fixed order.
    pub fn each(&self) -> [(&'static str, &RuleSettings); 3] {
        [
            ("waiting", &self.waiting),
            ("failure", &self.failure),
            ("cost", &self.cost),
        ]
    }

    /// True when some enabled rule has somewhere to send.
    pub fn active(&self) -> bool {
        self.each()
            .iter()
            .any(|(_, r)| r.enabled && (r.desktop || !r.webhooks.is_empty()))
    }

    /// Refuses what could not work, naming the rule and what to change. A webhook's path is
    /// never repeated (Slack's carry their secret there).
    pub fn check(&self) -> Result<(), String> {
        for (name, r) in self.each() {
            if r.webhooks.len() > MAX_WEBHOOKS {
                return Err(format!(
                    "{name}: at most {MAX_WEBHOOKS} webhooks (got {})",
                    r.webhooks.len()
                ));
            }
            for w in &r.webhooks {
                check_url(w, &["http://", "https://"])
                    .map_err(|e| format!("{name}: webhook {e}"))?;
            }
            if r.interval_s > MAX_INTERVAL_S {
                return Err(format!(
                    "{name}: interval_s at most {MAX_INTERVAL_S} (a day); to silence the rule set enabled to false"
                ));
            }
            if r.per_minute == 0 || r.per_minute > MAX_PER_MINUTE {
                return Err(format!("{name}: per_minute between 1 and {MAX_PER_MINUTE}"));
            }
            match (name, r.budget_usd) {
                ("cost", None) if r.enabled => {
                    return Err(
                        "cost: give budget_usd, the US dollars a run may cost before the alert"
                            .into(),
                    );
                }
                ("cost", Some(b)) if !(b.is_finite() && b > 0.0 && b < 1e9) => {
                    return Err("cost: budget_usd must be a positive number of US dollars".into());
                }
                ("waiting" | "failure", Some(_)) => {
                    return Err(format!("{name}: budget_usd is for the cost rule only"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Checks a URL's form without echoing it (its path may be a secret): one of `schemes`, a host,
/// no whitespace or control characters, at most [`MAX_SETTING_LEN`] bytes.
pub fn check_url(url: &str, schemes: &[&str]) -> Result<(), String> {
    let Some(rest) = schemes.iter().find_map(|s| url.strip_prefix(s)) else {
        return Err(format!("must start with {}", schemes.join(" or ")));
    };
    if url.len() > MAX_SETTING_LEN {
        return Err(format!("is longer than {MAX_SETTING_LEN} bytes"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    // `[::1]:8080`, `host:8080` or `host`: the port, when there is one, must be a number.
    let (host_only, port) = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, rest)) => (h, rest.strip_prefix(':')),
            None => return Err("has an IPv6 host without its closing `]`".into()),
        },
        None => match host.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        },
    };
    if let Some(p) = port
        && p.parse::<u16>().is_err()
    {
        return Err("has a port that is not a number from 0 to 65535".into());
    }
    if host_only.is_empty() {
        return Err("has no host".into());
    }
    Ok(())
}

/// The late-bound controls the server reaches through the core: the source supervisor (set
/// once by the composition root after the hub opened) and the notification rules.
pub struct Controls {
    sources: OnceLock<Arc<dyn SourceControl>>,
    notify: watch::Sender<NotifyRules>,
    /// Set by the notifier: whether this machine can show desktop notifications (`Err` says
    /// what to install). Unset: no notifier runs, so rules cannot be changed.
    desktop: OnceLock<Result<(), String>>,
}

impl Default for Controls {
    fn default() -> Self {
        Controls {
            sources: OnceLock::new(),
            notify: watch::channel(NotifyRules::default()).0,
            desktop: OnceLock::new(),
        }
    }
}

impl Controls {
    /// Hands the supervisor over; a second call is ignored (one hub, one supervisor).
    pub fn set_sources(&self, control: Arc<dyn SourceControl>) {
        let _ = self.sources.set(control);
    }

    pub fn sources(&self) -> Option<&Arc<dyn SourceControl>> {
        self.sources.get()
    }

    /// The rules now.
    pub fn notify_rules(&self) -> NotifyRules {
        self.notify.borrow().clone()
    }

    /// A receiver that sees every change of the rules.
    pub fn watch_notify(&self) -> watch::Receiver<NotifyRules> {
        self.notify.subscribe()
    }

    /// Replaces the rules; the notifier applies them to the next event.
    pub fn set_notify_rules(&self, rules: NotifyRules) {
        self.notify.send_replace(rules);
    }

    /// Called once by the running notifier.
    pub fn set_desktop(&self, available: Result<(), String>) {
        let _ = self.desktop.set(available);
    }

    /// `None` when no notifier runs in this hub.
    pub fn desktop(&self) -> Option<&Result<(), String>> {
        self.desktop.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_without_being_echoed() {
        assert!(check_url("http://127.0.0.1:4096", &["http://"]).is_ok());
        assert!(check_url("https://hooks.slack.com/services/T/B/S", &["https://"]).is_ok());
        let e = check_url("ftp://x/SECRET", &["http://"]).unwrap_err();
        assert!(!e.contains("SECRET"), "{e}");
        assert!(check_url("http://", &["http://"]).is_err());
        assert!(check_url("http://host:99999/", &["http://"]).is_err());
        assert!(check_url("http://a b/", &["http://"]).is_err());
        assert!(check_url("http://[::1]:8080/x", &["http://"]).is_ok());
    }

    #[test]
    fn rules_are_checked() {
        let mut r = NotifyRules::default();
        assert!(r.check().is_ok());
        assert!(!r.active());
        r.cost.enabled = true;
        assert!(r.check().unwrap_err().contains("budget_usd"));
        r.cost.budget_usd = Some(2.5);
        r.cost.webhooks = vec!["http://127.0.0.1:1/hook".into()];
        assert!(r.check().is_ok());
        assert!(r.active());
        r.waiting.per_minute = 0;
        assert!(r.check().unwrap_err().starts_with("waiting"));
    }

    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A source that counts its starts and runs until told to stop; a path containing `bad`
    /// is refused by its check.
    #[derive(Default)]
    struct Fake {
        starts: Arc<AtomicUsize>,
    }

    impl SourceFactory for Fake {
        fn kinds(&self) -> Vec<SourceKind> {
            vec![SourceKind {
                name: "fake",
                description: "a test source",
                setting: SettingKind::Paths,
            }]
        }
        fn check(&self, _: &SourceKind, config: &SourceConfig) -> Result<(), String> {
            match config.paths.iter().find(|p| p.contains("bad")) {
                Some(p) => Err(format!("`{p}` is bad")),
                None => Ok(()),
            }
        }
        fn spawn(
            &self,
            _: &SourceKind,
            _: &SourceConfig,
            sink: Sink,
        ) -> Result<JoinHandle<()>, String> {
            self.starts.fetch_add(1, Ordering::SeqCst);
            Ok(tokio::spawn(async move { sink.stopped().await }))
        }
    }

    #[test]
    fn sources_start_stop_and_reconfigure_and_a_refusal_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let core = Core::open(sightline_store::StoreConfig::new(
                dir.path().join("db.sqlite"),
            ))
            .unwrap();
            let fake = Fake::default();
            let starts = fake.starts.clone();
            let initial = BTreeMap::from([(
                "fake".to_string(),
                SourceConfig {
                    url: None,
                    paths: vec!["/a".into()],
                },
            )]);
            let sup = Supervisor::new(core, Arc::new(fake), initial);
            sup.start("fake").await.unwrap();
            assert_eq!(sup.running().await, ["fake"]);
            let change = |paths: Option<Vec<&str>>, running: Option<bool>| SourceChange {
                running,
                url: None,
                paths: paths.map(|p| p.into_iter().map(String::from).collect()),
            };
            let err = sup
                .apply("fake", change(Some(vec!["/bad"]), None))
                .await
                .unwrap_err();
            assert_eq!(err, SourceControlError::Invalid("`/bad` is bad".into()));
            let list = sup.list().await;
            assert!(list[0].running, "a refused change leaves it running");
            assert_eq!(list[0].config.paths, ["/a"]);
            assert_eq!(starts.load(Ordering::SeqCst), 1);

            let stopped = sup.apply("fake", change(None, Some(false))).await.unwrap();
            assert!(!stopped.running);
            assert_eq!(stopped.health.unwrap().state, "stopped");
            // Reconfigured while stopped: kept for the next start, nothing started.
            let s = sup
                .apply("fake", change(Some(vec!["/b"]), None))
                .await
                .unwrap();
            assert!(!s.running);
            assert_eq!(starts.load(Ordering::SeqCst), 1);
            let s = sup.apply("fake", change(None, Some(true))).await.unwrap();
            assert!(s.running);
            assert_eq!(s.config.paths, ["/b"]);
            // Started again: health no longer says the previous stop's `stopped`, though the
            // fake's task never sets a state (a real one sets it only once it is scheduled).
            assert_eq!(s.health.unwrap().state, "running");
            assert_eq!(
                sup.list().await[0].health.as_ref().unwrap().state,
                "running"
            );
            // Reconfigured while running: one stop, one new start.
            let s = sup
                .apply("fake", change(Some(vec!["/c"]), None))
                .await
                .unwrap();
            assert!(s.running);
            assert_eq!(starts.load(Ordering::SeqCst), 3);

            let url = SourceChange {
                url: Some("http://x".into()),
                ..SourceChange::default()
            };
            assert!(matches!(
                sup.apply("fake", url).await,
                Err(SourceControlError::Invalid(_))
            ));
            assert!(matches!(
                sup.apply("nope", SourceChange::default()).await,
                Err(SourceControlError::Unknown(_))
            ));
            sup.stop_all().await;
            assert!(sup.running().await.is_empty());
            let again = sup
                .apply("fake", change(None, Some(true)))
                .await
                .unwrap_err();
            assert!(again.to_string().contains("stopping"), "{again}");
        });
    }

    proptest::proptest! {
        /// Any text is answered (never a panic), and a refusal never repeats the URL's path.
        #[test]
        fn any_url_is_answered(url in "\\PC{0,80}", path in "[A-Za-z0-9]{12}") {
            let full = format!("{url}/{path}");
            if let Err(e) = check_url(&full, &["http://", "https://"]) {
                proptest::prop_assert!(!e.contains(&path));
            }
        }
    }
}
