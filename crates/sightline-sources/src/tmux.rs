//! The tmux adapter: agent teams run in tmux sessions, windows and panes.
//!
//! Polls a tmux server (`list-panes -a`, `capture-pane`) and emits: sessions, windows and panes
//! appearing and disappearing; new complete lines a pane printed (rate-capped per pane, the
//! excess counted in `payload.skipped_lines`); and a status per pane — `running` (busy) while
//! its output changes, `blocked` (waiting) when it shows a prompt that asks the user, `idle`
//! after a quiet period.
//!
//! Ids make tmux filterable with the ordinary filter: `run_id` is `tmux:<session>`, a window's
//! `session_id` is `tmux:<session>:<window>`, a pane's is `tmux:<session>:<window>.<pane>` with
//! the window as `parent_session_id` — so `runs=tmux:dev` follows a tmux session and
//! `sessions=tmux:dev:1` a window with all its panes.
//!
//! Settings (environment): `SIGHTLINE_TMUX_SOCKET` (a `-L` socket name) or
//! `SIGHTLINE_TMUX_SOCKET_PATH` (`-S`), `SIGHTLINE_TMUX_POLL_MS` (default 1000),
//! `SIGHTLINE_TMUX_QUIET_MS` (default 5000). This adapter only reads: it must never send keys
//! to, resize or otherwise change a tmux server, and a missing tmux or server is "no sessions",
//! not an error.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sightline_schema::{EntityType, Event, EventBuilder, Severity, Source, Status, Timestamp};

use crate::framework::{Adapter, AdapterConfig, AdapterContext, AdapterError, AdapterFuture};

pub const NAME: &str = "tmux";

/// Which tmux server to watch.
#[derive(Debug, Clone, PartialEq)]
pub enum Socket {
    Default,
    /// `tmux -L NAME`
    Name(String),
    /// `tmux -S PATH`
    Path(PathBuf),
}

#[derive(Debug, Clone)]
pub struct TmuxConfig {
    pub socket: Socket,
    pub poll: Duration,
    /// No output change for this long: idle.
    pub quiet: Duration,
    /// Output events per pane per second at most; lines beyond are counted, not sent.
    pub line_events_per_sec: f64,
    /// Lines per output event at most.
    pub lines_per_event: usize,
    /// Scrollback lines captured per poll (to find what is new after scrolling).
    pub history: usize,
}

impl Default for TmuxConfig {
    fn default() -> Self {
        TmuxConfig {
            socket: Socket::Default,
            poll: Duration::from_millis(1000),
            quiet: Duration::from_millis(5000),
            line_events_per_sec: 5.0,
            lines_per_event: 50,
            history: 200,
        }
    }
}

impl TmuxConfig {
    pub fn from_env() -> TmuxConfig {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let ms = |k: &str, d: Duration| {
            env(k)
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_millis)
                .unwrap_or(d)
        };
        let defaults = TmuxConfig::default();
        TmuxConfig {
            socket: match (
                env("SIGHTLINE_TMUX_SOCKET_PATH"),
                env("SIGHTLINE_TMUX_SOCKET"),
            ) {
                (Some(p), _) => Socket::Path(p.into()),
                (None, Some(n)) => Socket::Name(n),
                _ => Socket::Default,
            },
            poll: ms("SIGHTLINE_TMUX_POLL_MS", defaults.poll),
            quiet: ms("SIGHTLINE_TMUX_QUIET_MS", defaults.quiet),
            ..defaults
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new("tmux");
        match &self.socket {
            Socket::Default => {}
            Socket::Name(n) => {
                c.args(["-L", n]);
            }
            Socket::Path(p) => {
                c.arg("-S").arg(p);
            }
        }
        c
    }
}

/// Runs a tmux command; `Ok(None)` when there is no tmux or no server (nothing to watch).
fn tmux(config: &TmuxConfig, args: &[&str]) -> Result<Option<String>, String> {
    let out = match config.command().args(args).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("running tmux: {e}")),
    };
    if out.status.success() {
        return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("no server running")
        || err.contains("error connecting")
        || err.contains("No such file or directory")
        || err.contains("can't find")
    {
        Ok(None)
    } else {
        Err(format!("tmux {}: {}", args.join(" "), err.trim()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PaneStatus {
    Busy,
    Idle,
    Waiting,
}

impl PaneStatus {
    fn canonical(self) -> Status {
        match self {
            PaneStatus::Busy => Status::Running,
            PaneStatus::Idle => Status::Idle,
            PaneStatus::Waiting => Status::Blocked,
        }
    }

    fn word(self) -> &'static str {
        match self {
            PaneStatus::Busy => "busy",
            PaneStatus::Idle => "idle",
            PaneStatus::Waiting => "waiting for input",
        }
    }
}

/// Does the bottom of a pane ask the user something? Agent CLIs' confirmation prompts,
/// y/n questions, "press enter", numbered choices.
pub fn asks_user(lines: &[String]) -> Option<String> {
    const PATTERNS: &[&str] = &[
        "[y/n]",
        "(y/n)",
        "[y/n/",
        "(yes/no)",
        "[yes/no]",
        "do you want to",
        "would you like to",
        "press enter",
        "press any key",
        "continue?",
        "proceed?",
        "allow?",
        "approve?",
        "are you sure",
        "❯ 1.",
        "> 1.",
        "waiting for your input",
        "password:",
        "passphrase",
    ];
    let tail: Vec<&String> = lines
        .iter()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(4)
        .collect();
    tail.iter()
        .find(|l| {
            let lower = l.to_lowercase();
            PATTERNS.iter().any(|p| lower.contains(p))
        })
        .map(|l| l.trim().to_string())
}

/// Complete lines in `cur` that were not in `prev`. The last line is left out of both (it may
/// still be being written). Finds how far `prev` scrolled: the smallest `d` with `prev[d..]` a
/// prefix of `cur`; with no overlap, whatever follows the common prefix is new.
pub fn new_lines(prev: &[String], cur: &[String]) -> Vec<String> {
    let prev = &prev[..prev.len().saturating_sub(1)];
    let cur = &cur[..cur.len().saturating_sub(1)];
    for d in 0..prev.len() {
        let overlap = &prev[d..];
        if overlap.len() <= cur.len() && cur[..overlap.len()] == *overlap {
            return cur[overlap.len()..].to_vec();
        }
    }
    let common = prev.iter().zip(cur).take_while(|(a, b)| a == b).count();
    cur[common..].to_vec()
}

#[derive(Debug, Clone, PartialEq)]
struct PaneRow {
    session_id: String,
    session: String,
    window_id: String,
    window_index: String,
    window_name: String,
    pane_id: String,
    pane_index: String,
    pid: Option<i64>,
    command: String,
}

struct PaneState {
    row: PaneRow,
    capture: Vec<String>,
    last_change: Instant,
    /// `None` until the pane first changes, goes quiet or shows a prompt.
    status: Option<PaneStatus>,
    budget: f64,
    refilled: Instant,
    skipped: u64,
}

/// The tmux model between polls, and the diffing that turns polls into events.
pub struct Watcher {
    pub config: TmuxConfig,
    sessions: BTreeMap<String, String>,
    windows: BTreeMap<String, PaneRow>,
    panes: HashMap<String, PaneState>,
    host: Option<String>,
}

const FORMAT: &str = "#{session_id}\t#{session_name}\t#{window_id}\t#{window_index}\t#{window_name}\t#{pane_id}\t#{pane_index}\t#{pane_pid}\t#{pane_current_command}";

fn run_id(session: &str) -> String {
    format!("tmux:{session}")
}

fn window_key(r: &PaneRow) -> String {
    format!("tmux:{}:{}", r.session, r.window_index)
}

fn pane_key(r: &PaneRow) -> String {
    format!("tmux:{}:{}.{}", r.session, r.window_index, r.pane_index)
}

impl Watcher {
    pub fn new(config: TmuxConfig) -> Self {
        Watcher {
            config,
            sessions: BTreeMap::new(),
            windows: BTreeMap::new(),
            panes: HashMap::new(),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string()),
        }
    }

    fn list(&self) -> Result<Vec<PaneRow>, String> {
        let Some(text) = tmux(&self.config, &["list-panes", "-a", "-F", FORMAT])? else {
            return Ok(Vec::new());
        };
        Ok(text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() >= 9).then(|| PaneRow {
                    session_id: f[0].into(),
                    session: f[1].into(),
                    window_id: f[2].into(),
                    window_index: f[3].into(),
                    window_name: f[4].into(),
                    pane_id: f[5].into(),
                    pane_index: f[6].into(),
                    pid: f[7].parse().ok(),
                    command: f[8].into(),
                })
            })
            .collect())
    }

    fn capture(&self, pane_id: &str) -> Result<Option<Vec<String>>, String> {
        let start = format!("-{}", self.config.history);
        let text = tmux(
            &self.config,
            &["capture-pane", "-p", "-J", "-t", pane_id, "-S", &start],
        )?;
        Ok(text.map(|t| {
            let mut lines: Vec<String> = t.lines().map(|l| l.trim_end().to_string()).collect();
            while lines.last().is_some_and(|l| l.is_empty()) {
                lines.pop();
            }
            lines
        }))
    }

    /// Starts a tmux event: every one has these four fields and its entity id.
    fn begin(
        source_event: &str,
        entity_type: EntityType,
        entity_id: &str,
        title: String,
    ) -> EventBuilder {
        Event::builder(Source::Tmux, source_event, entity_type, title).entity_id(entity_id)
    }

    fn event(&self, builder: EventBuilder) -> Option<Event> {
        match builder.host(self.host.as_deref()).build(Timestamp::now()) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!("tmux: could not build an event: {e}");
                None
            }
        }
    }

    /// One poll: what changed since the last one, as events.
    pub fn poll(&mut self, now: Instant) -> Result<Vec<Event>, String> {
        let rows = self.list()?;
        let mut out = Vec::new();
        // Sessions.
        let sessions: BTreeMap<String, String> = rows
            .iter()
            .map(|r| (r.session_id.clone(), r.session.clone()))
            .collect();
        for (id, name) in &sessions {
            if !self.sessions.contains_key(id) {
                out.extend(
                    self.event(
                        Self::begin(
                            "session-created",
                            EntityType::Session,
                            id,
                            format!("tmux session {name}"),
                        )
                        .run_id(run_id(name))
                        .session_id(run_id(name))
                        .status(Status::Running),
                    ),
                );
            }
        }
        // Windows.
        let mut windows: BTreeMap<String, PaneRow> = BTreeMap::new();
        for r in &rows {
            windows
                .entry(r.window_id.clone())
                .or_insert_with(|| r.clone());
        }
        for (id, r) in &windows {
            if !self.windows.contains_key(id) {
                out.extend(
                    self.event(
                        Self::begin(
                            "window-created",
                            EntityType::Session,
                            id,
                            format!(
                                "tmux window {}:{} ({})",
                                r.session, r.window_index, r.window_name
                            ),
                        )
                        .run_id(run_id(&r.session))
                        .session_id(window_key(r))
                        .parent_session_id(run_id(&r.session))
                        .agent(&r.window_name)
                        .status(Status::Running),
                    ),
                );
            }
        }
        // Panes: new ones take their current screen as the baseline (it is not "new output").
        let current: HashMap<String, PaneRow> = rows
            .iter()
            .map(|r| (r.pane_id.clone(), r.clone()))
            .collect();
        for (id, r) in &current {
            if self.panes.contains_key(id) {
                continue;
            }
            let capture = self.capture(id)?.unwrap_or_default();
            out.extend(
                self.event(
                    Self::begin(
                        "pane-created",
                        EntityType::Pane,
                        id,
                        format!(
                            "tmux pane {}:{}.{} ({})",
                            r.session, r.window_index, r.pane_index, r.command
                        ),
                    )
                    .run_id(run_id(&r.session))
                    .session_id(pane_key(r))
                    .parent_session_id(window_key(r))
                    .agent(&r.command)
                    .pid(r.pid)
                    .status(Status::Running),
                ),
            );
            self.panes.insert(
                id.clone(),
                PaneState {
                    row: r.clone(),
                    capture,
                    last_change: now,
                    status: None,
                    budget: self.config.line_events_per_sec,
                    refilled: now,
                    skipped: 0,
                },
            );
        }
        // Output and status of known panes.
        let ids: Vec<String> = self.panes.keys().cloned().collect();
        for id in ids {
            if !current.contains_key(&id) {
                continue;
            }
            let Some(capture) = self.capture(&id)? else {
                continue;
            };
            let cfg = self.config.clone();
            let mut events = Vec::new();
            let state = self.panes.get_mut(&id).expect("known pane");
            state.row = current[&id].clone();
            let r = state.row.clone();
            let changed = capture != state.capture;
            if changed {
                let lines = new_lines(&state.capture, &capture);
                state.capture = capture;
                state.last_change = now;
                // Token bucket per pane: `line_events_per_sec` events, each up to
                // `lines_per_event` lines; what does not fit is counted.
                let elapsed = now.duration_since(state.refilled).as_secs_f64();
                state.budget = (state.budget + elapsed * cfg.line_events_per_sec)
                    .min(cfg.line_events_per_sec.max(1.0));
                state.refilled = now;
                let mut rest = &lines[..];
                while !rest.is_empty() {
                    if state.budget < 1.0 {
                        state.skipped += rest.len() as u64;
                        break;
                    }
                    state.budget -= 1.0;
                    let n = rest.len().min(cfg.lines_per_event);
                    let chunk = &rest[..n];
                    rest = &rest[n..];
                    let skipped = std::mem::take(&mut state.skipped);
                    let first = chunk
                        .iter()
                        .find(|l| !l.trim().is_empty())
                        .cloned()
                        .unwrap_or_default();
                    let title = if first.is_empty() {
                        "(blank lines)".to_string()
                    } else {
                        first
                    };
                    let summary = format!(
                        "{} new line{}{}",
                        chunk.len(),
                        if chunk.len() == 1 { "" } else { "s" },
                        if skipped > 0 {
                            format!(", {skipped} skipped (rate cap)")
                        } else {
                            String::new()
                        }
                    );
                    events.push(
                        Self::begin("pane-output", EntityType::Log, &id, title)
                            .run_id(run_id(&r.session))
                            .session_id(pane_key(&r))
                            .parent_session_id(window_key(&r))
                            .agent(&r.command)
                            .summary(summary)
                            .payload_value(
                                json!({"lines": chunk, "skipped_lines": skipped, "pane": id}),
                            ),
                    );
                }
            }
            let prompt = asks_user(&state.capture);
            let quiet_for = now.duration_since(state.last_change);
            let status = if changed {
                Some(PaneStatus::Busy)
            } else if prompt.is_some() {
                Some(PaneStatus::Waiting)
            } else if quiet_for >= cfg.quiet {
                Some(PaneStatus::Idle)
            } else {
                state.status
            };
            if let Some(status) = status
                && state.status != Some(status)
            {
                state.status = Some(status);
                let mut v = Self::begin(
                    "pane-status",
                    EntityType::Pane,
                    &id,
                    format!("{} {}", pane_key(&r), status.word()),
                )
                .run_id(run_id(&r.session))
                .session_id(pane_key(&r))
                .parent_session_id(window_key(&r))
                .agent(&r.command)
                .status(status.canonical())
                .payload_value(json!({"pane": id, "command": r.command}));
                if let Some(p) = prompt.filter(|_| status == PaneStatus::Waiting) {
                    v = v.summary(p).severity(Severity::Warn);
                }
                events.push(v);
            }
            for v in events {
                out.extend(self.event(v));
            }
        }
        // Disappearances: panes, then windows, then sessions.
        let gone: Vec<String> = self
            .panes
            .keys()
            .filter(|k| !current.contains_key(*k))
            .cloned()
            .collect();
        for id in gone {
            let state = self.panes.remove(&id).expect("known pane");
            let r = state.row;
            out.extend(
                self.event(
                    Self::begin(
                        "pane-closed",
                        EntityType::Pane,
                        &id,
                        format!("tmux pane {} closed", pane_key(&r)),
                    )
                    .run_id(run_id(&r.session))
                    .session_id(pane_key(&r))
                    .parent_session_id(window_key(&r))
                    .agent(&r.command)
                    .status(Status::Success),
                ),
            );
        }
        let gone: Vec<(String, PaneRow)> = self
            .windows
            .iter()
            .filter(|(k, _)| !windows.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (id, r) in gone {
            out.extend(
                self.event(
                    Self::begin(
                        "window-closed",
                        EntityType::Session,
                        &id,
                        format!("tmux window {}:{} closed", r.session, r.window_index),
                    )
                    .run_id(run_id(&r.session))
                    .session_id(window_key(&r))
                    .parent_session_id(run_id(&r.session))
                    .agent(&r.window_name)
                    .status(Status::Success),
                ),
            );
        }
        for (id, name) in &self.sessions {
            if !sessions.contains_key(id) {
                out.extend(
                    self.event(
                        Self::begin(
                            "session-closed",
                            EntityType::Session,
                            id,
                            format!("tmux session {name} closed"),
                        )
                        .run_id(run_id(name))
                        .session_id(run_id(name))
                        .status(Status::Success),
                    ),
                );
            }
        }
        self.sessions = sessions;
        self.windows = windows;
        Ok(out)
    }
}

pub struct TmuxAdapter {
    pub config: TmuxConfig,
}

impl TmuxAdapter {
    pub fn build(_config: &AdapterConfig) -> Result<Arc<dyn Adapter>, AdapterError> {
        Ok(Arc::new(TmuxAdapter {
            config: TmuxConfig::from_env(),
        }))
    }
}

impl Adapter for TmuxAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(self: Arc<Self>, ctx: AdapterContext) -> AdapterFuture {
        Box::pin(async move {
            let mut watcher = Some(Watcher::new(self.config.clone()));
            loop {
                let mut w = watcher.take().expect("watcher");
                // tmux calls block briefly; keep them off the async workers.
                let (w, result) = tokio::task::spawn_blocking(move || {
                    let r = w.poll(Instant::now());
                    (w, r)
                })
                .await
                .map_err(|e| AdapterError::Other(format!("tmux poll: {e}")))?;
                watcher = Some(w);
                match result {
                    Ok(events) => ctx.emit(events).await?,
                    Err(e) => ctx.error(e),
                }
                if ctx.sleep(self.config.poll).await {
                    return Ok(());
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn new_lines_after_scrolling() {
        let prev = l(&["$ make", "a", "b", "$ "]);
        let cur = l(&["a", "b", "c", "d", "$ "]);
        assert_eq!(new_lines(&prev, &cur), l(&["c", "d"]));
        assert_eq!(new_lines(&prev, &prev), Vec::<String>::new());
        // The line being typed is not complete until the next one starts.
        assert_eq!(
            new_lines(&l(&["x", "typ"]), &l(&["x", "typing"])),
            Vec::<String>::new()
        );
        assert_eq!(
            new_lines(&l(&["x", "typ"]), &l(&["x", "typing", ""])),
            l(&["typing"])
        );
    }

    #[test]
    fn prompts_that_ask_the_user() {
        assert!(asks_user(&l(&["Edit file?", "Do you want to proceed?", "❯ 1. Yes"])).is_some());
        assert!(asks_user(&l(&["Overwrite? [y/N] "])).is_some());
        assert!(asks_user(&l(&["compiling", "$ "])).is_none());
    }
}
