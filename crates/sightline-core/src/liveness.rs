//! The liveness sweep: a task inside the hub that, every few seconds, ends what is dead and
//! quiets what is idle, so that no run or session stays `running` after its producer is gone.
//!
//! The rule for each source is written in docs/SOURCES-SETUP.md ("Liveness"):
//! - Python agent and `sightline run` processes (`python`, `process`): on this machine (same
//!   host name, and the same boot and pid namespace when the producer sends them) the run fails
//!   as soon as its pid is gone or belongs to another process (start time differs); elsewhere,
//!   or where `/proc` cannot tell, it fails after [`Settings::heartbeat_misses`] heartbeat
//!   intervals of silence (the interval the producer announced in `process_start`, else the
//!   source's default). A run failed for silence that is heard from again is running again.
//! - Agent sessions (`claude`, `codex`, `gemini`, `opencode`, `docker`): no event for
//!   [`Settings::idle_after`] makes a running, queued or blocked session (and its run) `idle`:
//!   not failed, since the user may come back, and new work makes it running again.
//! - Claude Code sessions whose hook events name their process (`sightline hook` sends the
//!   pid, start time, boot id and pid namespace of the Claude Code process that ran it): on this
//!   machine, when that process is gone the session is over, even if it went idle before. It
//!   ends `success` if it was waiting at a prompt (idle), `failed` if it was mid-turn (running,
//!   queued or blocked), with the reason "Claude Code process N is gone (no SessionEnd)".
//!   Sessions fed only by `http` hooks carry no pid and keep the idle rule.
//! - OpenCode's stream ends the sessions it followed when the server goes away (that one is in
//!   `sightline-sources::opencode`, which sees the stream).
//!
//! Every change is an ordinary event through the one ingest path ([`Core::submit`]), marked
//! `payload.ended_by = "liveness"` with the rule and a reason, and dated at the producer's last
//! event (its `last_event_at`): so the store's status-time rule lets any real event from the
//! producer that arrives later (a spooled `process_exit`) say what really happened. This module
//! must never signal, kill or wait on a process (it only reads `/proc/PID/stat`), and never end
//! anything a covered rule does not judge dead or idle.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use serde_json::{Map, Value, json};
use sightline_schema::{EntityType, Event, Severity, Source, Status, Timestamp};
use sightline_store::StoreError;
use sightline_store::liveness::{self as rows, OpenRun, OpenSession, Producer};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Backpressure, Core, IngestError};

/// The health name the sweep's events are counted under.
pub const NAME: &str = "liveness";

/// What the sweep does and how often.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often it looks (`serve --liveness-every`). 5 s: a killed process shows as failed
    /// within that, and a sweep costs two indexed queries and a `/proc` read per open process.
    pub every: Duration,
    /// Agent sessions with no event for this long stop counting as active (`serve
    /// --idle-after`, config key `idle_after`); `None` turns the rule off.
    pub idle_after: Option<Duration>,
    /// How many heartbeat intervals of silence fail a process the hub cannot check by pid.
    pub heartbeat_misses: u32,
}

/// 30 minutes: longer than a model's slowest answer or a long tool call, short enough that a
/// closed terminal stops showing as working within the hour.
pub const DEFAULT_IDLE_AFTER: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_EVERY: Duration = Duration::from_secs(5);
/// 5 misses: a loaded machine or a brief network hiccup delays one or two heartbeats, not five.
pub const DEFAULT_HEARTBEAT_MISSES: u32 = 5;
/// Silence shorter than this never fails a process, whatever its interval: the agent's sender
/// batches and retries for a few seconds before it spools.
const MIN_SILENCE_MS: i64 = 15_000;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            every: DEFAULT_EVERY,
            idle_after: Some(DEFAULT_IDLE_AFTER),
            heartbeat_misses: DEFAULT_HEARTBEAT_MISSES,
        }
    }
}

/// The heartbeat a source's processes have when they do not announce one: the Python agent's
/// default `SIGHTLINE_HEARTBEAT_S` (2 s) and `sightline run`'s resource sample (1 s).
fn default_heartbeat_ms(source: Source) -> i64 {
    match source {
        Source::Process => 1_000,
        _ => 2_000,
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Runs failed (process gone or silent) and sessions ended with them.
    pub failed_runs: usize,
    pub failed_sessions: usize,
    /// Runs and sessions made idle.
    pub idle_runs: usize,
    pub idle_sessions: usize,
    /// Runs and sessions ended `success` (their process went while they waited at a prompt).
    pub ended_runs: usize,
    pub ended_sessions: usize,
    /// Runs running again after a silence.
    pub revived_runs: usize,
}

/// Why the sweep could not finish.
#[derive(Debug, thiserror::Error)]
pub enum LivenessError {
    #[error("reading open runs and sessions: {0}")]
    Store(#[from] StoreError),
    #[error("storing the sweep's events: {0}")]
    Ingest(#[from] IngestError),
    #[error("the sweep made an invalid event (a bug): {0}")]
    Invalid(String),
}

/// The running sweep; [`Sweeper::stop`] ends it.
pub struct Sweeper {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Sweeper {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the sweep on the current runtime.
pub fn start(core: Core, settings: Settings) -> Sweeper {
    let (stop, mut stopped) = watch::channel(false);
    core.health().ensure(NAME);
    let task = tokio::spawn(async move {
        let every = settings.every.max(Duration::from_millis(100));
        // The periodic sweep judges a run only on its second look, its first included: the
        // first sweep of a hub may fall in the middle of a spool's delivery just as well (a
        // Python test met one five seconds after its hub started).
        let mut memo = ProducerMemo::settling();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopped.changed() => return,
            }
            if *stopped.borrow() || core.is_closing() {
                return;
            }
            match sweep_with(
                &core,
                &settings,
                Timestamp::now(),
                stopped.clone(),
                &mut memo,
            )
            .await
            {
                Ok(report) if report != Report::default() => {
                    tracing::info!(?report, "liveness sweep");
                }
                Ok(_) => {}
                Err(e) => {
                    core.health().failed(NAME, e.to_string());
                    tracing::warn!("liveness sweep failed: {e}; retried at the next sweep");
                }
            }
        }
    });
    Sweeper { stop, task }
}

/// What the store gave one sweep to judge.
struct Snapshot {
    processes: Vec<(OpenRun, Option<Producer>, Vec<OpenSession>)>,
    idle_runs: Vec<OpenRun>,
    idle_sessions: Vec<OpenSession>,
    /// Agent runs whose events name their process (the session-pid rule).
    agent_pids: Vec<(OpenRun, Producer, Vec<OpenSession>)>,
    revive: Vec<(OpenRun, Vec<OpenSession>)>,
}

/// What the last sweep found about each open agent run's process, keyed by run and valid while
/// the run's `last_event_at` is unchanged. Without it every sweep re-reads up to 400 events of
/// each of up to 500 open or idle Claude runs (a backfill of old transcripts leaves hundreds
/// idle for good), a constant load for an answer that only a new event can change.
///
/// It also keeps the newest seq of every run the pid rules judged. A run whose events are still
/// arriving (a spool of a process that died while the hub was away, delivered in batches)
/// would otherwise be ended by the pid rule between two of its batches, one synthetic end
/// before the real `process_exit` further down the spool. So a run is judged only when its
/// newest seq is the one the previous sweep saw: at most one interval later than without the
/// memo, and never in the middle of a delivery (unless it pauses for a whole interval). The
/// periodic sweep's memo starts settling (`ProducerMemo::settling`), so this holds from a
/// hub's first sweep on; a run whose process died while the hub was down is ended on the
/// second sweep after start.
#[derive(Debug, Default)]
pub struct ProducerMemo {
    producers: std::collections::HashMap<String, (i64, Option<Producer>)>,
    /// `None`: the next sweep judges at once (a one-off sweep); else each judged run's newest
    /// seq at the previous sweep.
    last_seqs: Option<std::collections::HashMap<String, i64>>,
}

impl ProducerMemo {
    /// A memo whose first sweep judges nothing of the pid rules, only remembers: what the
    /// periodic sweep starts with. (`default()`, which judges at once, is for a one-off sweep.)
    pub fn settling() -> ProducerMemo {
        ProducerMemo {
            producers: Default::default(),
            last_seqs: Some(Default::default()),
        }
    }

    /// Whether nothing arrived for `run` since the previous sweep (always, before the first).
    fn settled(&self, run: &OpenRun) -> bool {
        self.last_seqs
            .as_ref()
            .is_none_or(|seen| seen.get(&run.run_id) == Some(&run.last_seq))
    }
}

/// One sweep at `now`: reads what is open, judges it, and submits the events that end it.
pub async fn sweep(
    core: &Core,
    settings: &Settings,
    now: Timestamp,
    stop: watch::Receiver<bool>,
) -> Result<Report, LivenessError> {
    sweep_with(core, settings, now, stop, &mut ProducerMemo::default()).await
}

/// [`sweep`], reusing what earlier sweeps learned about each agent run's process.
pub async fn sweep_with(
    core: &Core,
    settings: &Settings,
    now: Timestamp,
    stop: watch::Receiver<bool>,
    memo: &mut ProducerMemo,
) -> Result<Report, LivenessError> {
    let mut known = std::mem::take(&mut memo.producers);
    let idle_since = settings.idle_after.map(|d| {
        now.millis()
            .saturating_sub(d.as_millis().min(i64::MAX as u128) as i64)
    });
    let snapshot = core
        .store()
        .read(move |conn| {
            let mut processes = Vec::new();
            for run in rows::open_runs(conn, rows::PROCESS_SOURCES, i64::MAX)? {
                let producer = rows::producer(conn, &run.run_id)?;
                let sessions = rows::sessions_of_run(conn, &run.run_id)?;
                processes.push((run, producer, sessions));
            }

            let (idle_runs, idle_sessions) = match idle_since {
                Some(at) => (
                    rows::open_runs(conn, rows::IDLE_SOURCES, at)?,
                    rows::open_sessions(conn, rows::IDLE_SOURCES, at)?,
                ),
                None => (Vec::new(), Vec::new()),
            };
            let revive = rows::silenced_runs_heard_again(conn)?;
            let mut agent_pids = Vec::new();
            let mut seen = std::collections::HashMap::new();
            for run in rows::open_or_idle_runs(conn, rows::SESSION_PID_SOURCES)? {
                let producer = match known.remove(&run.run_id) {
                    Some((at, producer)) if at == run.last_event_at => producer,
                    _ => rows::latest_producer(conn, &run.run_id)?,
                };
                // Only the runs still open are remembered, so the memo stays as small as the
                // list it serves.
                seen.insert(run.run_id.clone(), (run.last_event_at, producer.clone()));
                if let Some(producer) = producer {
                    let sessions = rows::sessions_of_run(conn, &run.run_id)?;
                    agent_pids.push((run, producer, sessions));
                }
            }
            Ok((
                Snapshot {
                    processes,
                    idle_runs,
                    idle_sessions,
                    agent_pids,
                    revive,
                },
                seen,
            ))
        })
        .await?;
    let (snapshot, seen) = snapshot;
    memo.producers = seen;
    // Judged this time only if settled since the last sweep; remembered for the next.
    let mut last_seqs = std::collections::HashMap::new();
    let mut settled = std::collections::HashSet::new();
    let judged = (snapshot.processes.iter().map(|(run, ..)| run))
        .chain(snapshot.agent_pids.iter().map(|(run, ..)| run));
    for run in judged {
        if memo.settled(run) {
            settled.insert(run.run_id.clone());
        }
        last_seqs.insert(run.run_id.clone(), run.last_seq);
    }
    memo.last_seqs = Some(last_seqs);

    let here = Machine::current();
    let mut events = Vec::new();
    let mut report = Report::default();
    for (run, producer, sessions) in &snapshot.processes {
        if !settled.contains(&run.run_id) {
            continue;
        }
        let Some(verdict) = judge_process(run, producer.as_ref(), &here, settings, now) else {
            continue;
        };
        report.failed_runs += 1;
        let entity = if producer.is_some() {
            EntityType::Process
        } else {
            EntityType::Run
        };
        events.push(run_event(run, entity, Status::Failed, &verdict, now)?);
        for s in sessions {
            report.failed_sessions += 1;
            events.push(session_event(s, Status::Failed, &verdict, now)?);
        }
    }
    // The session-pid rule goes before the idle rule: a session whose process is gone is over,
    // not idle, and the idle rule must not also touch it in the same sweep.
    let mut ended_runs = std::collections::HashSet::new();
    for (run, producer, sessions) in &snapshot.agent_pids {
        if !settled.contains(&run.run_id) {
            continue;
        }
        let Some(gone) = process_gone(producer, &here, run.started_at) else {
            continue;
        };
        // Waiting at a prompt (idle) when the process went: the user closed it between turns.
        // Anything else was cut off mid-turn.
        let status = if run.status == Some(Status::Idle) {
            Status::Success
        } else {
            Status::Failed
        };
        let verdict = Verdict {
            rule: "pid",
            reason: format!(
                "Claude Code process {} is gone (no SessionEnd){gone}",
                producer.pid
            ),
        };
        ended_runs.insert(run.run_id.clone());
        if status == Status::Failed {
            report.failed_runs += 1;
        } else {
            report.ended_runs += 1;
        }
        events.push(run_event(run, EntityType::Run, status, &verdict, now)?);
        for s in sessions {
            // Each session by its own state: a subagent still at work when its main session
            // sat at the prompt was cut off too.
            let status = match s.status {
                Some(Status::Idle) => Status::Success,
                None => status,
                Some(_) => Status::Failed,
            };
            if status == Status::Failed {
                report.failed_sessions += 1;
            } else {
                report.ended_sessions += 1;
            }
            events.push(session_event(s, status, &verdict, now)?);
        }
    }
    if let Some(idle) = settings.idle_after {
        let verdict = Verdict {
            rule: "idle",
            reason: format!("no event for {} (idle after {})", words(idle), words(idle)),
        };
        for run in &snapshot.idle_runs {
            if ended_runs.contains(&run.run_id) {
                continue;
            }
            let quiet = Duration::from_millis((now.millis() - run.last_event_at).max(0) as u64);
            let v = Verdict {
                reason: format!("no event for {} (idle after {})", words(quiet), words(idle)),
                ..verdict.clone()
            };
            report.idle_runs += 1;
            events.push(run_event(run, EntityType::Run, Status::Idle, &v, now)?);
        }
        for s in &snapshot.idle_sessions {
            if s.run_id.as_ref().is_some_and(|r| ended_runs.contains(r)) {
                continue;
            }
            let quiet = Duration::from_millis((now.millis() - s.last_event_at).max(0) as u64);
            let v = Verdict {
                reason: format!("no event for {} (idle after {})", words(quiet), words(idle)),
                ..verdict.clone()
            };
            report.idle_sessions += 1;
            events.push(session_event(s, Status::Idle, &v, now)?);
        }
    }
    for (run, sessions) in &snapshot.revive {
        report.revived_runs += 1;
        events.push(revive_event(
            &run.run_id,
            None,
            run.source,
            run.agent.as_deref(),
            run.last_event_at,
            EntityType::Process,
            now,
        )?);
        for s in sessions {
            events.push(revive_event(
                &run.run_id,
                Some(s),
                s.source,
                s.agent.as_deref(),
                s.last_event_at.max(run.last_event_at),
                EntityType::Session,
                now,
            )?);
        }
    }
    if !events.is_empty() {
        // Bounded by the store's SWEEP_LIMIT per kind; Wait, like a background source: the
        // sweep's events are never dropped for a full queue, only delayed.
        core.submit(NAME, events, Backpressure::Wait(stop)).await?;
    }
    Ok(report)
}

#[derive(Debug, Clone, PartialEq)]
struct Verdict {
    rule: &'static str,
    reason: String,
}

/// This machine, as the pid rule compares it with a producer's.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub host: Option<String>,
    pub boot_id: Option<String>,
    /// Boot time, seconds since the epoch (`btime` of `/proc/stat`).
    pub boot_time: Option<i64>,
    /// This hub's pid namespace (`/proc/self/ns/pid`).
    pub pid_ns: Option<String>,
    /// Whether `/proc` answers at all (a missing `/proc/PID` means gone only then).
    pub procfs: bool,
}

impl Machine {
    pub fn current() -> Machine {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse().ok())
        });
        Machine {
            host: read("/proc/sys/kernel/hostname"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            boot_time,
            pid_ns: std::fs::read_link("/proc/self/ns/pid")
                .ok()
                .map(|p| p.to_string_lossy().into_owned()),
            procfs: std::path::Path::new("/proc/self/stat").exists(),
        }
    }
}

/// What `/proc` says about a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidState {
    Alive,
    /// No such process, or a zombie (it has exited; only its parent can read the status).
    Gone,
    /// A process with this pid exists but started at another time: the pid was reused.
    Reused,
    /// `/proc` cannot tell (not Linux, not mounted, no permission).
    Unknown,
}

/// Linux reports start times in USER_HZ ticks, which is 100 on every architecture it supports
/// for user space (sysconf(_SC_CLK_TCK)); only the fallback comparison below depends on it.
const TICKS_PER_SECOND: i64 = 100;
/// A process that started this long after its run's first event cannot be that run's producer.
const REUSE_SLACK_MS: i64 = 5_000;

/// Reads `/proc/PID/stat` only: never a signal. `start_ticks` is what the producer announced
/// (exact); without it, a process that started after `started_at` (ms, the run's first event)
/// is another one.
pub fn check_pid(
    machine: &Machine,
    pid: i64,
    start_ticks: Option<u64>,
    started_at: i64,
) -> PidState {
    if !machine.procfs || pid <= 0 || pid > i64::from(i32::MAX) {
        return PidState::Unknown;
    }
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return PidState::Gone,
        Err(_) => return PidState::Unknown,
    };
    let Some((state, ticks)) = parse_stat(&stat) else {
        return PidState::Unknown;
    };
    if state == 'Z' || state == 'X' {
        return PidState::Gone;
    }
    match (start_ticks, machine.boot_time) {
        (Some(announced), _) if announced != ticks => PidState::Reused,
        (Some(_), _) => PidState::Alive,
        (None, Some(boot)) => {
            let started_ms = boot * 1000 + ticks as i64 * 1000 / TICKS_PER_SECOND;
            if started_ms > started_at + REUSE_SLACK_MS {
                PidState::Reused
            } else {
                PidState::Alive
            }
        }
        (None, None) => PidState::Alive,
    }
}

/// (state, starttime) from the text of `/proc/PID/stat`. The command name is in parentheses
/// and may hold spaces and parentheses itself, so fields are counted after the last `)`.
pub fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // starttime is field 22 of the whole line; after the command, state is field 3.
    let ticks = fields.nth(18)?.parse().ok()?;
    Some((state, ticks))
}

fn judge_process(
    run: &OpenRun,
    producer: Option<&Producer>,
    here: &Machine,
    settings: &Settings,
    now: Timestamp,
) -> Option<Verdict> {
    if let Some(p) = producer {
        // Same machine, and (when both are known) the same pid namespace: otherwise its pid
        // means nothing here, and the heartbeat rule judges it.
        let same_ns = match (&p.pid_ns, &here.pid_ns) {
            (Some(theirs), Some(ours)) => theirs == ours,
            _ => true,
        };
        let same_host = p.host.is_some() && p.host == here.host && same_ns;
        let same_boot = match (&p.boot_id, &here.boot_id) {
            (Some(theirs), Some(ours)) => Some(theirs == ours),
            _ => None,
        };
        if same_host && same_boot == Some(false) {
            return Some(Verdict {
                rule: "pid",
                reason: format!(
                    "process {} is gone (this machine restarted since; no exit event)",
                    p.pid
                ),
            });
        }
        if same_host {
            match check_pid(here, p.pid, p.start_ticks, run.started_at) {
                PidState::Alive => return None,
                PidState::Gone => {
                    return Some(Verdict {
                        rule: "pid",
                        reason: format!("process {} is gone (no exit event)", p.pid),
                    });
                }
                PidState::Reused => {
                    return Some(Verdict {
                        rule: "pid",
                        reason: format!(
                            "process {} is gone (its pid now belongs to another process; no exit event)",
                            p.pid
                        ),
                    });
                }
                PidState::Unknown => {}
            }
        }
    }
    let interval = producer
        .and_then(|p| p.heartbeat_ms)
        .unwrap_or_else(|| default_heartbeat_ms(run.source));
    let silent = now.millis().saturating_sub(run.last_event_at);
    let limit = (interval.saturating_mul(i64::from(settings.heartbeat_misses))).max(MIN_SILENCE_MS);
    (silent > limit).then(|| Verdict {
        rule: "heartbeat",
        reason: format!(
            "no heartbeat for {} (interval {})",
            words(Duration::from_millis(silent as u64)),
            words(Duration::from_millis(interval as u64))
        ),
    })
}

/// Whether the process `p` names is gone, judged on this machine only (same host, boot and pid
/// namespace; elsewhere its pid means nothing here): `Some(detail)` to add to the reason.
fn process_gone(p: &Producer, here: &Machine, started_at: i64) -> Option<&'static str> {
    let same_ns = match (&p.pid_ns, &here.pid_ns) {
        (Some(theirs), Some(ours)) => theirs == ours,
        _ => true,
    };
    if p.host.is_none() || p.host != here.host || !same_ns {
        return None;
    }
    if let (Some(theirs), Some(ours)) = (&p.boot_id, &here.boot_id)
        && theirs != ours
    {
        return Some(" (this machine restarted since)");
    }
    match check_pid(here, p.pid, p.start_ticks, started_at) {
        PidState::Gone => Some(""),
        PidState::Reused => Some(" (its pid now belongs to another process)"),
        PidState::Alive | PidState::Unknown => None,
    }
}

/// A duration as a person reads it: `45 s`, `1.5 s`, `30 min`, `2 h`.
pub fn words(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 10_000 && !ms.is_multiple_of(1000) {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 120_000 {
        format!("{} s", ms / 1000)
    } else if ms < 2 * 3_600_000 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} h", ms / 3_600_000)
    }
}

fn short_hash(parts: &[&str]) -> u64 {
    // Only for a stable event id within this hub (a repeated sweep before the first one's
    // commit is stored once); SipHash with fixed keys.
    let mut h = std::hash::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

fn payload(v: &Verdict, now: Timestamp, last_seen: i64) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "ended_by": rows::ENDED_BY,
        "liveness_rule": v.rule,
        "reason": v.reason,
        "detected_at": now.to_rfc3339(),
        "last_seen": Timestamp(last_seen).to_rfc3339(),
    }) else {
        unreachable!("a json! object literal is an object")
    };
    map
}

fn finish(b: sightline_schema::EventBuilder, now: Timestamp) -> Result<Event, LivenessError> {
    b.build(now)
        .map_err(|e| LivenessError::Invalid(e.to_string()))
}

fn severity(status: Status) -> Severity {
    if status == Status::Failed {
        Severity::Warn
    } else {
        Severity::Info
    }
}

fn run_event(
    run: &OpenRun,
    entity: EntityType,
    status: Status,
    v: &Verdict,
    now: Timestamp,
) -> Result<Event, LivenessError> {
    let id = short_hash(&["run", &run.run_id]);
    finish(
        Event::builder(
            run.source,
            format!("liveness_{}", status.as_str()),
            entity,
            v.reason.clone(),
        )
        .event_id(format!(
            "liveness-run-{id:016x}-{}-{}",
            run.last_event_at,
            status.as_str()
        ))
        // Dated at the producer's last sign of life: any later real event outranks it.
        .ts(Timestamp(run.last_event_at))
        .run_id(run.run_id.as_str())
        .agent(run.agent.as_deref())
        .status(status)
        .severity(severity(status))
        .summary(format!("ended by the hub's liveness sweep: {}", v.rule))
        .payload(payload(v, now, run.last_event_at)),
        now,
    )
}

fn session_event(
    s: &OpenSession,
    status: Status,
    v: &Verdict,
    now: Timestamp,
) -> Result<Event, LivenessError> {
    let id = short_hash(&["session", &s.session_id]);
    finish(
        Event::builder(
            s.source,
            format!("liveness_{}", status.as_str()),
            EntityType::Session,
            v.reason.clone(),
        )
        .event_id(format!(
            "liveness-session-{id:016x}-{}-{}",
            s.last_event_at,
            status.as_str()
        ))
        .ts(Timestamp(s.last_event_at))
        .run_id(s.run_id.as_deref())
        .session_id(s.session_id.as_str())
        .parent_session_id(s.parent_session_id.as_deref())
        .agent(s.agent.as_deref())
        .status(status)
        .severity(severity(status))
        .summary(format!("ended by the hub's liveness sweep: {}", v.rule))
        .payload(payload(v, now, s.last_event_at)),
        now,
    )
}

/// A run (or one of its sessions) the sweep failed for silence has been heard from again.
fn revive_event(
    run_id: &str,
    session: Option<&OpenSession>,
    source: Source,
    agent: Option<&str>,
    at: i64,
    entity: EntityType,
    now: Timestamp,
) -> Result<Event, LivenessError> {
    let key = session.map_or(run_id, |s| s.session_id.as_str());
    let id = short_hash(&["revive", key]);
    let Value::Object(payload) = json!({
        "revived_by": rows::ENDED_BY,
        "reason": "heard from again after the silence",
        "detected_at": now.to_rfc3339(),
    }) else {
        unreachable!("a json! object literal is an object")
    };
    finish(
        Event::builder(source, "liveness_running", entity, "heard from again")
            .event_id(format!("liveness-revive-{id:016x}-{at}"))
            .ts(Timestamp(at))
            .run_id(run_id)
            .session_id(session.map(|s| s.session_id.as_str()))
            .parent_session_id(session.and_then(|s| s.parent_session_id.as_deref()))
            .agent(agent)
            .status(Status::Running)
            .payload(payload),
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let line = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 200 18446744073709551615";
        assert_eq!(parse_stat(line), Some(('S', 98765)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) R"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_free_pid_is_gone() {
        let here = Machine::current();
        if !here.procfs {
            panic!("these tests need /proc (Linux)");
        }
        let me = std::process::id() as i64;
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let (_, ticks) = parse_stat(&stat).unwrap();
        assert_eq!(check_pid(&here, me, Some(ticks), 0), PidState::Alive);
        assert_eq!(check_pid(&here, me, Some(ticks + 1), 0), PidState::Reused);
        // Without the start time: this process started before now, so it can be the producer
        // of a run that began now, not of one that began an hour before it.
        let now = Timestamp::now().millis();
        assert_eq!(check_pid(&here, me, None, now), PidState::Alive);
        assert_eq!(
            check_pid(&here, me, None, 1_000),
            PidState::Reused,
            "a process started in 2026 cannot have produced a run of 1970"
        );
        // pid_max is at most 2^22 on Linux: this one cannot exist.
        assert_eq!(check_pid(&here, 2_147_483_000, None, 0), PidState::Gone);
        assert_eq!(check_pid(&here, -1, None, 0), PidState::Unknown);
    }

    /// Any JSON value, a few levels deep (the payload a producer sends).
    fn json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,40}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("heartbeat_s".to_string()),
                        Just("boot_id".to_string()),
                        Just("start_ticks".to_string()),
                        ".{0,12}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// `/proc/PID/stat` text: any string is answered without a panic, and a real-shaped
        /// line with any command name (spaces and parentheses included) gives its fields back.
        #[test]
        fn any_stat_text_is_answered(text in ".{0,300}") {
            let _ = parse_stat(&text);
        }

        #[test]
        fn stat_lines_give_back_state_and_start(
            pid in 1u32..4_194_304,
            comm in "[ -~]{0,15}",
            state in proptest::sample::select(vec!['R', 'S', 'D', 'Z', 'T', 'X', 'I']),
            middle in proptest::collection::vec(0u64..1_000_000, 18),
            ticks: u64,
            tail in proptest::collection::vec(0u64..1_000_000, 0..30),
        ) {
            let nums = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
            let line = format!("{pid} ({comm}) {state} {} {ticks} {}", nums(&middle), nums(&tail));
            proptest::prop_assert_eq!(parse_stat(&line), Some((state, ticks)));
        }

        /// What a producer says about itself is untrusted: any payload gives a producer, and
        /// a heartbeat only within (0 s, 1 day).
        #[test]
        fn any_payload_gives_a_producer(payload in json(), pid: i64) {
            let map = match payload {
                Value::Object(m) => m,
                other => Map::from_iter([("heartbeat_s".to_string(), other)]),
            };
            let p = rows::producer_of(Some("h".into()), pid, &map);
            proptest::prop_assert_eq!(p.pid, pid);
            if let Some(ms) = p.heartbeat_ms {
                proptest::prop_assert!((0..=86_400_000).contains(&ms), "{ms}");
            }
            proptest::prop_assert!(p.boot_id.is_none_or(|b| b.chars().count() <= 64));
        }
    }

    #[test]
    fn a_pid_from_another_pid_namespace_is_judged_by_its_heartbeat() {
        let here = Machine::current();
        let now = Timestamp::now();
        let run = OpenRun {
            run_id: "r".into(),
            source: Source::Python,
            agent: None,
            status: Some(Status::Running),
            started_at: now.millis() - 5_000,
            last_event_at: now.millis() - 1_000,
            last_seq: 1,
            status_at: None,
            liveness_rule: None,
        };
        // A pid that cannot exist, on this host name.
        let mut producer = Producer {
            host: here.host.clone(),
            pid: 2_147_483_000,
            pid_ns: here.pid_ns.clone(),
            ..Producer::default()
        };
        let settings = Settings::default();
        let local = judge_process(&run, Some(&producer), &here, &settings, now);
        assert_eq!(local.map(|v| v.rule), Some("pid"));
        // The same pid in a container's namespace says nothing here; it was heard from a
        // second ago, so it stands.
        producer.pid_ns = Some("pid:[1]".into());
        assert_eq!(
            judge_process(&run, Some(&producer), &here, &settings, now),
            None
        );
        // Silent for a minute, it fails by its heartbeat instead.
        let quiet = OpenRun {
            last_event_at: now.millis() - 60_000,
            ..run
        };
        let v = judge_process(&quiet, Some(&producer), &here, &settings, now).unwrap();
        assert_eq!(v.rule, "heartbeat");
        assert_eq!(v.reason, "no heartbeat for 60 s (interval 2 s)");
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(words(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(words(Duration::from_secs(45)), "45 s");
        assert_eq!(words(Duration::from_secs(1800)), "30 min");
        assert_eq!(words(Duration::from_secs(3 * 3600)), "3 h");
    }
}
