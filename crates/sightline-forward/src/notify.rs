//! `serve --notify` / `--notify-webhook URL`: tells the user when an agent waits for them, when
//! something fails, or when a run's cost passes a budget — as a desktop notification through
//! the platform's notifier (`notify-send` on Linux, `osascript` on macOS) and as a POST of a
//! Slack-compatible body (`{"text": "..."}`) to each webhook.
//!
//! A consumer of committed events like the OTLP exporter: it reads the bus (never slowing
//! ingest), decides with [`Rules::classify`] (pure, tested without a hub), and hands alerts to
//! a sender task through a bounded queue (full: the alert is dropped and counted). Each rule is
//! rate-limited twice: one alert per rule and session (or run) per `per_key_interval`, and at
//! most `per_rule_burst` alerts per rule per minute; what is held back is counted and said in
//! the next alert that goes out. Health shows `notify` with alerts sent and the last failure.
//!
//! The rules are live: the notifier reads them from the core's [`Controls`] (a watch channel
//! the settings API writes), so a rule changed in Settings applies to the next event; each rule
//! has its own targets (desktop, webhooks) and its own rate limit.
//! This module must never block the bus or the writer, never put a payload in an alert (titles
//! and ids only: payloads are redacted, but a webhook leaves the machine), and never retry a
//! webhook forever (one retry, then the failure is in health).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sightline_schema::{EntityType, Event, Filter, Severity, Status};
use tokio::sync::{mpsc, watch};

use sightline_core::Core;
use sightline_core::supervisor::{NotifyRules, RuleSettings};

#[allow(unused_imports, reason = "named in the module's documentation")]
use sightline_core::Controls;

/// The health entry's name.
pub const NAME: &str = "notify";
/// Alerts waiting for the sender; past this they are dropped and counted (a burst of failures
/// would otherwise queue a minute of desktop pop-ups).
const QUEUE: usize = 64;
/// Runs whose cost is tracked at once; the map is cleared when full (a run seen again is
/// re-read from the store, so nothing is lost but a repeated alert after the clear).
const MAX_TRACKED_RUNS: usize = 10_000;
/// A notifier command or webhook that takes longer than this is abandoned.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What to notify about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// A session waits for its user: a permission prompt, a question, an idle prompt.
    Waiting,
    /// A run, session, workflow, step or process failed, or a turn ended on an error.
    Failure,
    /// A run's cost passed the budget.
    Cost,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::Waiting => "waiting",
            Rule::Failure => "failure",
            Rule::Cost => "cost",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        match s.trim() {
            "waiting" | "wait" => Some(Rule::Waiting),
            "failure" | "failures" | "failed" => Some(Rule::Failure),
            "cost" => Some(Rule::Cost),
            _ => None,
        }
    }
}

/// Where alerts go and which rules fire.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// Desktop notifications through the platform's notifier.
    pub desktop: bool,
    /// Webhook URLs; each gets `{"text": "..."}` (Slack's incoming-webhook body).
    pub webhooks: Vec<String>,
    /// The rules that fire (default: all three; `Cost` only with a budget).
    pub rules: Vec<Rule>,
    /// A run whose cost passes this many US dollars raises one `Cost` alert.
    pub cost_budget_usd: Option<f64>,
    /// One alert per rule and session (or run) per this long.
    pub per_key_interval: Duration,
    /// At most this many alerts per rule per minute.
    pub per_rule_burst: u32,
    /// The dashboard's address, for links in alerts (`<url>/#/run/<id>`).
    pub dashboard_url: Option<String>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            desktop: false,
            webhooks: Vec::new(),
            rules: vec![Rule::Waiting, Rule::Failure, Rule::Cost],
            cost_budget_usd: None,
            per_key_interval: Duration::from_secs(60),
            per_rule_burst: 6,
            dashboard_url: None,
        }
    }
}

impl NotifySettings {
    /// The same choices as live rules: every chosen rule goes to the desktop (when asked) and
    /// to every webhook, with the one interval and burst (whole seconds). `Cost` is on only
    /// with a budget.
    pub fn to_rules(&self) -> NotifyRules {
        let rule = |r: Rule| RuleSettings {
            enabled: self.rules.contains(&r) && (r != Rule::Cost || self.cost_budget_usd.is_some()),
            desktop: self.desktop,
            webhooks: self.webhooks.clone(),
            interval_s: self.per_key_interval.as_secs(),
            per_minute: self.per_rule_burst.max(1),
            budget_usd: if r == Rule::Cost {
                self.cost_budget_usd
            } else {
                None
            },
        };
        NotifyRules {
            waiting: rule(Rule::Waiting),
            failure: rule(Rule::Failure),
            cost: rule(Rule::Cost),
        }
    }
}

/// The settings of one rule in `rules`.
pub fn rule_settings(rules: &NotifyRules, rule: Rule) -> &RuleSettings {
    match rule {
        Rule::Waiting => &rules.waiting,
        Rule::Failure => &rules.failure,
        Rule::Cost => &rules.cost,
    }
}

/// Where one alert goes: taken from its rule when it is raised.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Targets {
    pub desktop: bool,
    pub webhooks: Vec<String>,
}

impl Targets {
    fn of(r: &RuleSettings) -> Targets {
        Targets {
            desktop: r.desktop,
            webhooks: r.webhooks.clone(),
        }
    }

    fn is_empty(&self) -> bool {
        !self.desktop && self.webhooks.is_empty()
    }
}

/// One notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub rule: Rule,
    /// The session (or run) it is about: the rate limit's key.
    pub key: String,
    pub title: String,
    pub body: String,
    pub run_id: Option<String>,
}

impl Alert {
    /// The one-line text a webhook and a terminal get.
    pub fn text(&self, dashboard: Option<&str>, held_back: u64) -> String {
        let mut t = format!("{}: {}", self.title, self.body);
        if let (Some(url), Some(run)) = (dashboard, &self.run_id) {
            t.push_str(&format!(
                " — {}/#/run/{}",
                url.trim_end_matches('/'),
                percent(run)
            ));
        }
        if held_back > 0 {
            t.push_str(&format!(
                " (+{held_back} more {} alerts held back by the rate limit)",
                self.rule.name()
            ));
        }
        t
    }
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Who an event is about, in words: agent, project (the working directory's last component)
/// and a short id.
fn who(e: &Event) -> String {
    let agent = e.agent.clone().unwrap_or_else(|| e.source.to_string());
    let project = ["cwd", "directory"].iter().find_map(|k| {
        e.payload
            .get(*k)
            .and_then(|v| v.as_str())
            .and_then(|p| p.trim_end_matches('/').rsplit('/').next())
            .filter(|p| !p.is_empty())
            .map(str::to_string)
    });
    let id = e
        .session_id
        .as_deref()
        .or(e.run_id.as_deref())
        .unwrap_or("");
    match project {
        Some(p) => format!("{} {agent} in {p} ({id})", e.source),
        None => format!("{} {agent} ({id})", e.source),
    }
}

/// The rules' decisions; the cost totals are the only state.
#[derive(Debug)]
pub struct Rules {
    rules: NotifyRules,
    /// run → (cost so far, alerted).
    costs: HashMap<String, (f64, bool)>,
}

impl Rules {
    pub fn new(settings: NotifySettings) -> Rules {
        Rules::live(settings.to_rules())
    }

    pub fn live(rules: NotifyRules) -> Rules {
        Rules {
            rules,
            costs: HashMap::new(),
        }
    }

    /// New rules for the next event; the cost totals are kept (a lower budget alerts a run
    /// already past it at its next cost).
    pub fn set(&mut self, rules: NotifyRules) {
        self.rules = rules;
    }

    /// Where an alert of `rule` goes now.
    pub fn targets(&self, rule: Rule) -> Targets {
        Targets::of(rule_settings(&self.rules, rule))
    }

    fn on(&self, rule: Rule) -> bool {
        rule_settings(&self.rules, rule).enabled
    }

    /// Does this event need its run's stored cost before [`classify`](Self::classify)? (The
    /// first cost event of a run the notifier has not seen since it started.)
    pub fn needs_run_cost<'e>(&self, e: &'e Event) -> Option<&'e str> {
        let run = e.run_id.as_deref()?;
        (self.on(Rule::Cost)
            && self.rules.cost.budget_usd.is_some()
            && cost_of(e) > 0.0
            && !self.costs.contains_key(run))
        .then_some(run)
    }

    /// Seeds a run's cost from the store (which already includes the event being classified,
    /// so the event's own cost is subtracted: classify adds it).
    pub fn seed_run_cost(&mut self, run: &str, stored: f64, e: &Event) {
        if self.costs.len() >= MAX_TRACKED_RUNS {
            self.costs.clear();
        }
        let before = (stored - cost_of(e)).max(0.0);
        // A run already over budget when the hub started was over before we could say so:
        // alert once now rather than never.
        self.costs.insert(run.to_string(), (before, false));
    }

    /// The alerts an event raises (at most one per rule).
    pub fn classify(&mut self, e: &Event) -> Vec<Alert> {
        let mut out = Vec::new();
        let key = e
            .session_id
            .clone()
            .or_else(|| e.run_id.clone())
            .unwrap_or_else(|| e.source.to_string());
        if self.on(Rule::Waiting) {
            let waiting = match e.status {
                Some(Status::Blocked) => true,
                // An idle session or pane waits for its next prompt; an idle step does not.
                Some(Status::Idle) => {
                    matches!(e.entity_type, EntityType::Session | EntityType::Pane)
                        && e.severity != Severity::Error
                }
                _ => false,
            };
            if waiting {
                let why = if e.entity_type == EntityType::Permission {
                    "waits for permission"
                } else if e.status == Some(Status::Idle) {
                    "waits for input"
                } else {
                    "waits for you"
                };
                out.push(Alert {
                    rule: Rule::Waiting,
                    key: key.clone(),
                    title: format!("{} {why}", who(e)),
                    body: e.title.clone(),
                    run_id: e.run_id.clone(),
                });
            }
        }
        if self.on(Rule::Failure) {
            let lifecycle = matches!(
                e.entity_type,
                EntityType::Run
                    | EntityType::Session
                    | EntityType::Workflow
                    | EntityType::Step
                    | EntityType::Process
            );
            let failed = lifecycle
                && (e.status == Some(Status::Failed)
                    || (e.severity == Severity::Error && e.entity_type == EntityType::Session));
            if failed {
                out.push(Alert {
                    rule: Rule::Failure,
                    key: key.clone(),
                    title: format!("{} failed", who(e)),
                    body: match &e.summary {
                        Some(s) => format!("{} — {s}", e.title),
                        None => e.title.clone(),
                    },
                    run_id: e.run_id.clone(),
                });
            }
        }
        if self.on(Rule::Cost)
            && let (Some(budget), Some(run)) = (self.rules.cost.budget_usd, &e.run_id)
        {
            let add = cost_of(e);
            if add > 0.0 {
                if self.costs.len() >= MAX_TRACKED_RUNS && !self.costs.contains_key(run) {
                    self.costs.clear();
                }
                let entry = self.costs.entry(run.clone()).or_insert((0.0, false));
                entry.0 += add;
                if entry.0 > budget && !entry.1 {
                    entry.1 = true;
                    out.push(Alert {
                        rule: Rule::Cost,
                        key: run.clone(),
                        title: format!("{} passed the cost budget", who(e)),
                        body: format!("run {run} has cost ${:.2} (budget ${budget:.2})", entry.0),
                        run_id: Some(run.clone()),
                    });
                }
            }
        }
        out
    }
}

fn cost_of(e: &Event) -> f64 {
    e.metrics
        .as_ref()
        .and_then(|m| m.get("cost_usd"))
        .and_then(|n| n.as_f64())
        .filter(|c| c.is_finite() && *c > 0.0)
        .unwrap_or(0.0)
}

/// The two rate limits of every rule.
#[derive(Debug)]
pub struct Limiter {
    per_key: Duration,
    burst: u32,
    /// Per-rule limits set from live rules; a rule not here uses the two above.
    limits: HashMap<Rule, (Duration, u32)>,
    last: HashMap<(Rule, String), Instant>,
    window: HashMap<Rule, (Instant, u32)>,
    held: HashMap<Rule, u64>,
}

/// Keys remembered for the per-key limit; cleared of expired entries when full.
const MAX_KEYS: usize = 10_000;

impl Limiter {
    pub fn new(per_key: Duration, burst: u32) -> Limiter {
        Limiter {
            per_key,
            burst: burst.max(1),
            limits: HashMap::new(),
            last: HashMap::new(),
            window: HashMap::new(),
            held: HashMap::new(),
        }
    }

    /// Sets one rule's limits (from its live settings); they apply to its next alert.
    pub fn set_limits(&mut self, rule: Rule, per_key: Duration, burst: u32) {
        self.limits.insert(rule, (per_key, burst.max(1)));
    }

    /// Some(alerts held back since the last one of this rule) when the alert may go now.
    pub fn admit(&mut self, alert: &Alert, now: Instant) -> Option<u64> {
        let (per_key, burst) = self
            .limits
            .get(&alert.rule)
            .copied()
            .unwrap_or((self.per_key, self.burst));
        let k = (alert.rule, alert.key.clone());
        if let Some(t) = self.last.get(&k)
            && now.duration_since(*t) < per_key
        {
            *self.held.entry(alert.rule).or_default() += 1;
            return None;
        }
        let w = self.window.entry(alert.rule).or_insert((now, 0));
        if now.duration_since(w.0) >= Duration::from_secs(60) {
            *w = (now, 0);
        }
        if w.1 >= burst {
            *self.held.entry(alert.rule).or_default() += 1;
            return None;
        }
        w.1 += 1;
        if self.last.len() >= MAX_KEYS {
            // The longest interval of any rule: an entry younger than it may still hold one.
            let longest = self
                .limits
                .values()
                .map(|(d, _)| *d)
                .fold(self.per_key, Duration::max);
            self.last.retain(|_, t| now.duration_since(*t) < longest);
            if self.last.len() >= MAX_KEYS {
                self.last.clear();
            }
        }
        self.last.insert(k, now);
        Some(self.held.remove(&alert.rule).unwrap_or(0))
    }
}

/// What the notifier did, for health and tests.
#[derive(Debug, Default)]
pub struct NotifyStats {
    pub sent: AtomicU64,
    pub held_back: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
}

pub struct Notifier {
    background: crate::background::Background,
    pub stats: Arc<NotifyStats>,
}

impl Notifier {
    /// Stops reading the bus and sends nothing more.
    pub async fn stop(self) {
        self.background.stop(Duration::from_secs(5)).await;
    }
}

/// The desktop notifier this platform has, or why there is none.
pub fn desktop_notifier() -> Result<&'static str, String> {
    let candidates: &[&'static str] = if cfg!(target_os = "macos") {
        &["osascript"]
    } else {
        &["notify-send"]
    };
    for c in candidates {
        if on_path(c) {
            return Ok(c);
        }
    }
    Err(if cfg!(target_os = "macos") {
        "osascript was not found on PATH, so --notify cannot show desktop notifications".into()
    } else {
        "notify-send was not found on PATH, so --notify cannot show desktop notifications; \
         install it (Debian/Ubuntu: apt install libnotify-bin) or use --notify-webhook"
            .into()
    })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Starts the notifier with the flags' settings (see [`start_live`]). Returns an error only
/// when nothing could ever be delivered (no webhook, and `--notify` without a desktop
/// notifier).
pub fn start(hub: Core, settings: NotifySettings) -> Result<Notifier, String> {
    if settings.desktop
        && settings.webhooks.is_empty()
        && let Err(e) = desktop_notifier()
    {
        return Err(e);
    }
    start_live(hub, settings.to_rules(), settings.dashboard_url.clone())
}

/// Starts the notifier with `rules`, which it publishes in the core's controls and then
/// follows: a change there (the settings API) applies to the next event. A rule that asks for
/// desktop notifications on a machine without a notifier is reported in health, and the
/// settings API refuses such a rule with what to install.
pub fn start_live(
    hub: Core,
    rules: NotifyRules,
    dashboard_url: Option<String>,
) -> Result<Notifier, String> {
    let desktop = desktop_notifier();
    hub.controls()
        .set_desktop(desktop.as_ref().map(|_| ()).map_err(Clone::clone));
    if rules.active() {
        hub.health().ensure(NAME);
    }
    if let Err(e) = &desktop
        && rules.each().iter().any(|(_, r)| r.enabled && r.desktop)
    {
        tracing::warn!("{e}; webhooks still get alerts");
        hub.health().failed(NAME, e.clone());
    }
    hub.controls().set_notify_rules(rules.clone());
    let stats = Arc::new(NotifyStats::default());
    let (stop, stop_rx) = watch::channel(false);
    let (tx, rx) = mpsc::channel::<Outgoing>(QUEUE);
    // The committed head now, before the task that subscribes is even scheduled: the
    // subscription replays from here, so an event committed after `start_live` returns is
    // classified however late the task first runs (a live-only subscription missed what
    // arrived in between; the tests paused 300 ms after start to hide that).
    let from = hub.store().head_seq();
    let feeder = {
        let hub = hub.clone();
        let stats = stats.clone();
        let mut stop_rx = stop_rx.clone();
        let mut changes = hub.controls().watch_notify();
        tokio::spawn(async move {
            let mut live = changes.borrow_and_update().clone();
            let mut rules = Rules::live(live.clone());
            let mut limiter = Limiter::new(Duration::from_secs(60), 6);
            apply_limits(&mut limiter, &live);
            let (mut sub, _) = hub.subscribe(Filter::default(), Some(from), None).await;
            // Takes the rules the settings API wrote: always after `changed()` (which marks
            // them seen), otherwise only if they changed since last time.
            let follow = |changes: &mut watch::Receiver<NotifyRules>,
                          live: &mut NotifyRules,
                          rules: &mut Rules,
                          limiter: &mut Limiter,
                          seen: bool| {
                if !seen && !changes.has_changed().unwrap_or(false) {
                    return;
                }
                *live = changes.borrow_and_update().clone();
                if live.active() {
                    hub.health().ensure(NAME);
                }
                rules.set(live.clone());
                apply_limits(limiter, live);
                tracing::info!("notification rules changed; the next event uses them");
            };
            loop {
                let e = tokio::select! {
                    e = sub.next() => e,
                    changed = changes.changed() => {
                        if changed.is_ok() {
                            follow(&mut changes, &mut live, &mut rules, &mut limiter, true);
                        }
                        continue;
                    }
                    _ = stop_rx.wait_for(|s| *s) => None,
                };
                let Some(e) = e else { break };
                // A change the settings API made before this event was committed applies to it
                // (its answer comes after the watch has the rules): `select!` may pick the event
                // before the change when both are ready (a busy machine), and the event was then
                // judged by the old rules (an alert for a rule just turned on never went out).
                follow(&mut changes, &mut live, &mut rules, &mut limiter, false);
                let event = e.event.clone();
                if !live.active() {
                    continue;
                }
                if let Some(run) = rules.needs_run_cost(&event).map(str::to_string) {
                    // The run's cost through this event, not the stored total: the notifier reads
                    // behind the writer, and the total already held the run's later events (a
                    // budget alert said $1.60 for the event that took the run to $1.20).
                    let (id, seq) = (run.clone(), event.seq);
                    let stored = hub
                        .store()
                        .read(move |c| sightline_store::query::run_cost_through(c, &id, seq))
                        .await
                        .ok()
                        .flatten()
                        .unwrap_or(0.0);
                    rules.seed_run_cost(&run, stored, &event);
                }
                for alert in rules.classify(&event) {
                    let targets = rules.targets(alert.rule);
                    if targets.is_empty() {
                        continue;
                    }
                    match limiter.admit(&alert, Instant::now()) {
                        None => {
                            stats.held_back.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(held) => {
                            if tx.try_send((alert, held, targets)).is_err() {
                                stats.dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
        })
    };
    let sender = tokio::spawn(send_loop(
        hub,
        dashboard_url,
        desktop.ok(),
        rx,
        stats.clone(),
    ));
    Ok(Notifier {
        background: crate::background::Background {
            stop,
            tasks: vec![feeder, sender],
        },
        stats,
    })
}

/// An alert on its way: the alert, how many of its rule were held back, where it goes.
type Outgoing = (Alert, u64, Targets);

fn apply_limits(limiter: &mut Limiter, rules: &NotifyRules) {
    for (rule, r) in
        [Rule::Waiting, Rule::Failure, Rule::Cost].map(|rule| (rule, rule_settings(rules, rule)))
    {
        limiter.set_limits(rule, Duration::from_secs(r.interval_s), r.per_minute);
    }
}

/// Webhook agents kept for reuse; cleared when full (rules name at most 3 × 8 URLs, so only a
/// long run of edits fills it).
const MAX_AGENTS: usize = 64;

async fn send_loop(
    hub: Core,
    dashboard_url: Option<String>,
    desktop: Option<&'static str>,
    mut rx: mpsc::Receiver<Outgoing>,
    stats: Arc<NotifyStats>,
) {
    let timeouts = crate::http::Timeouts {
        connect: Some(SEND_TIMEOUT),
        global: Some(SEND_TIMEOUT),
    };
    let mut agents: HashMap<String, ureq::Agent> = HashMap::new();
    while let Some((alert, held, targets)) = rx.recv().await {
        let text = alert.text(dashboard_url.as_deref(), held);
        let mut ok = true;
        if targets.desktop {
            let sent = match desktop {
                Some(cmd) => desktop_send(cmd, &alert, held).await,
                None => Err(desktop_notifier().err().unwrap_or_default()),
            };
            if let Err(e) = sent {
                ok = false;
                hub.health().failed(NAME, e);
            }
        }
        for url in &targets.webhooks {
            if agents.len() >= MAX_AGENTS && !agents.contains_key(url) {
                agents.clear();
            }
            let agent = match agents.get(url) {
                Some(a) => a.clone(),
                None => match crate::http::agent(url, &timeouts) {
                    Ok(a) => {
                        agents.insert(url.clone(), a.clone());
                        a
                    }
                    Err(e) => {
                        ok = false;
                        tracing::warn!("notify: webhook {}: {e}", redact_url(url));
                        hub.health().failed(NAME, e.to_string());
                        continue;
                    }
                },
            };
            let body = json!({ "text": text }).to_string();
            let target = url.clone();
            // ureq is blocking: off the runtime's threads. One retry, then health says why.
            let result = tokio::task::spawn_blocking(move || {
                let post = |b: &str| {
                    agent
                        .post(&target)
                        .header("content-type", "application/json")
                        .send(b)
                };
                let status = |r: Result<ureq::http::Response<ureq::Body>, ureq::Error>| {
                    r.map_err(|e| e.to_string()).and_then(|resp| {
                        let s = resp.status();
                        if s.is_success() {
                            Ok(())
                        } else {
                            Err(format!("HTTP {s}"))
                        }
                    })
                };
                status(post(&body)).or_else(|_| {
                    std::thread::sleep(Duration::from_millis(500));
                    status(post(&body))
                })
            })
            .await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    ok = false;
                    hub.health().failed(
                        NAME,
                        format!("webhook {} refused the alert: {e}", redact_url(url)),
                    );
                }
                Err(e) => {
                    ok = false;
                    hub.health()
                        .failed(NAME, format!("webhook {}: {e}", redact_url(url)));
                }
            }
        }
        if ok {
            stats.sent.fetch_add(1, Ordering::Relaxed);
            hub.health()
                .saw(NAME, 1, Some(sightline_schema::Timestamp::now()));
        } else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A webhook URL without its path and query (Slack's carry the secret there), for messages.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split('/').next().unwrap_or("");
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}/…")
        }
        None => "(not a URL)".into(),
    }
}

async fn desktop_send(cmd: &str, alert: &Alert, held: u64) -> Result<(), String> {
    let body = if held > 0 {
        format!("{} (+{held} more held back)", alert.body)
    } else {
        alert.body.clone()
    };
    let mut command = std::process::Command::new(cmd);
    if cmd == "osascript" {
        let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        command.arg("-e").arg(format!(
            "display notification \"{}\" with title \"{}\"",
            quote(&body),
            quote(&alert.title)
        ));
    } else {
        let urgency = if alert.rule == Rule::Waiting {
            "critical"
        } else {
            "normal"
        };
        // `--` so that a title starting with `-` is never read as an option.
        command.args(["--app-name=sightline", "--urgency", urgency, "--"]);
        command.arg(&alert.title).arg(&body);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let cmd = cmd.to_string();
    // The notifier runs on the blocking pool, polled until SEND_TIMEOUT, then killed.
    tokio::task::spawn_blocking(move || {
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {cmd}: {e}"))?;
        let deadline = Instant::now() + SEND_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("{cmd} failed ({status})")),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{cmd} did not finish in {}s",
                        SEND_TIMEOUT.as_secs()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("waiting for {cmd}: {e}")),
            }
        }
    })
    .await
    .map_err(|e| format!("the notifier task failed: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_schema::{Source, Timestamp};

    fn ev(entity: EntityType, status: Option<Status>, severity: Severity) -> Event {
        Event::builder(Source::Claude, "x", entity, "title")
            .session_id(Some("s1".to_string()))
            .run_id(Some("r1".to_string()))
            .status(status)
            .severity(severity)
            .build(Timestamp::now())
            .expect("a valid event")
    }

    #[test]
    fn waiting_failure_and_quiet_events() {
        let mut rules = Rules::new(NotifySettings::default());
        let a = rules.classify(&ev(
            EntityType::Permission,
            Some(Status::Blocked),
            Severity::Warn,
        ));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].rule, Rule::Waiting);
        assert!(
            a[0].title.contains("waits for permission"),
            "{}",
            a[0].title
        );
        let f = rules.classify(&ev(
            EntityType::Session,
            Some(Status::Idle),
            Severity::Error,
        ));
        assert_eq!(
            f.iter().map(|a| a.rule).collect::<Vec<_>>(),
            [Rule::Failure]
        );
        assert!(
            rules
                .classify(&ev(EntityType::Tool, Some(Status::Running), Severity::Info))
                .is_empty()
        );
        assert!(
            rules
                .classify(&ev(EntityType::Step, Some(Status::Idle), Severity::Info))
                .is_empty()
        );
    }

    #[test]
    fn limiter_holds_back_and_counts() {
        let mut l = Limiter::new(Duration::from_secs(60), 2);
        let t = Instant::now();
        let a = |key: &str| Alert {
            rule: Rule::Waiting,
            key: key.into(),
            title: String::new(),
            body: String::new(),
            run_id: None,
        };
        assert_eq!(l.admit(&a("s1"), t), Some(0));
        assert_eq!(l.admit(&a("s1"), t), None, "same key within the interval");
        assert_eq!(l.admit(&a("s2"), t), Some(1), "the held one is reported");
        assert_eq!(l.admit(&a("s3"), t), None, "burst of 2 per minute");
        assert_eq!(
            l.admit(&a("s3"), t + Duration::from_secs(61)),
            Some(1),
            "a new minute"
        );
    }

    #[test]
    fn webhook_urls_lose_their_secret_path() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/SECRET"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact_url("http://u:p@127.0.0.1:9/x"),
            "http://127.0.0.1:9/…"
        );
    }
}
