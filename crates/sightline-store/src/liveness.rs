//! What the hub's liveness sweep reads, and the rule the API shows: the open runs and sessions
//! a sweep judges, with what their events say about their producer (pid, host, boot, start
//! time, heartbeat interval), and the `alive` answer of a run or session row.
//!
//! Deciding and acting is `sightline-core::liveness`, which ends things through the one ingest
//! path with events marked `ended_by: "liveness"`; the writer folds the note of such an event
//! into the row (`aggregate.rs`, migration 5). This module only reads: it must never write a
//! row, and never read more than a bounded number of rows and events per sweep.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};
use sightline_schema::{Event, Source, Status};

use crate::StoreError;
use crate::rows::json_column;

/// What a synthetic event carries in `payload.ended_by`.
pub const ENDED_BY: &str = "liveness";

/// Most rows one sweep reads of each kind: a database full of stale rows (an old import, a
/// hub that was off for a week) is worked through over several sweeps, never in one stall.
pub const SWEEP_LIMIT: usize = 500;

/// The payload key under which a hook event carries what `sightline hook` knows of the process
/// that ran it (pid, start time, boot id, pid namespace, host).
pub const PRODUCER_KEY: &str = "sightline_producer";

/// How many of a run's first events are searched for the one that names its process.
const PRODUCER_SCAN: i64 = 200;

/// The rule and reason of an event the sweep made (`payload.ended_by == "liveness"`).
pub fn note_of(e: &Event) -> Option<(String, String)> {
    if e.payload.get("ended_by").and_then(Value::as_str) != Some(ENDED_BY) {
        return None;
    }
    let text = |k: &str| {
        e.payload
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Some((text("liveness_rule"), text("reason")))
}

/// Sources whose runs are one process with a pid and a heartbeat (the pid and heartbeat rules).
pub const PROCESS_SOURCES: &[Source] = &[Source::Python, Source::Process];

/// Sources of agent sessions: one with no event for the idle time stops counting as active
/// (the idle rule). Not tmux: its sessions and windows are `running` while they exist, however
/// quiet, and its own poll closes what disappears.
pub const IDLE_SOURCES: &[Source] = &[
    Source::Claude,
    Source::Codex,
    Source::Gemini,
    Source::Opencode,
    Source::Docker,
];

/// Agent sources whose sessions may name the process that runs them (`sightline hook` sends
/// Claude Code's pid with every command hook): when that process is gone, the session is over
/// (the session-pid rule), whatever the idle rule said before.
pub const SESSION_PID_SOURCES: &[Source] = &[Source::Claude];

/// Sources whose runs and sessions a liveness rule covers (docs/SOURCES-SETUP.md#liveness):
/// for the others the hub cannot tell, and `alive` is null.
pub fn covered(source: Source) -> bool {
    PROCESS_SOURCES.contains(&source) || IDLE_SOURCES.contains(&source)
}

/// The `alive` of a run or session row: false once it ended or the sweep made it idle, true
/// while a covered source keeps it open, null when no rule covers its source.
pub fn alive(
    source: Source,
    status: Option<Status>,
    ended: bool,
    rule: Option<&str>,
) -> Option<bool> {
    if ended || rule.is_some() || status.is_some_and(Status::is_terminal) {
        return Some(false);
    }
    covered(source).then_some(true)
}

/// What the events of a run say about the process that produces it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Producer {
    pub host: Option<String>,
    pub pid: i64,
    /// `/proc/sys/kernel/random/boot_id` of the producer's machine, when it sends it.
    pub boot_id: Option<String>,
    /// The producer's pid namespace (`/proc/self/ns/pid`, e.g. `pid:[4026531836]`): a pid means
    /// the same process only inside the same namespace (a hub in a container shares the host
    /// name and boot with the host, not its pids).
    pub pid_ns: Option<String>,
    /// Field 22 of `/proc/PID/stat` (clock ticks after boot), when the producer sends it: a pid
    /// whose start time differs is another process.
    pub start_ticks: Option<u64>,
    /// The heartbeat interval the producer announced, in milliseconds.
    pub heartbeat_ms: Option<i64>,
}

/// An open run (not ended, not already noted by the sweep) of a covered source.
#[derive(Debug, Clone)]
pub struct OpenRun {
    pub run_id: String,
    pub source: Source,
    pub agent: Option<String>,
    pub status: Option<Status>,
    pub started_at: i64,
    pub last_event_at: i64,
    /// The seq of its newest event: a sweep that sees it move knows events are still arriving.
    pub last_seq: i64,
    pub status_at: Option<i64>,
    pub liveness_rule: Option<String>,
}

/// An open session.
#[derive(Debug, Clone)]
pub struct OpenSession {
    pub session_id: String,
    pub run_id: Option<String>,
    pub parent_session_id: Option<String>,
    pub agent: Option<String>,
    pub source: Source,
    pub status: Option<Status>,
    pub last_event_at: i64,
    pub status_at: Option<i64>,
    pub liveness_rule: Option<String>,
}

/// Statuses a producer is still at work in (queued, running, retry, blocked) or none yet.
const ACTIVE: &str = "(status IS NULL OR status IN (1, 2, 4, 7))";

fn codes(sources: &[Source]) -> String {
    sources
        .iter()
        .map(|s| s.code().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn open_run(row: &rusqlite::Row<'_>) -> rusqlite::Result<OpenRun> {
    Ok(OpenRun {
        run_id: row.get(0)?,
        source: Source::from_code(row.get(1)?).unwrap_or(Source::Custom),
        agent: row.get(2)?,
        status: row.get::<_, Option<i64>>(3)?.and_then(Status::from_code),
        started_at: row.get(4)?,
        last_event_at: row.get(5)?,
        status_at: row.get(6)?,
        liveness_rule: row.get(7)?,
        last_seq: row.get(8)?,
    })
}

const OPEN_RUN_COLUMNS: &str =
    "run_id, source, agent, status, started_at, last_event_at, status_at, liveness_rule, last_seq";
const OPEN_SESSION_COLUMNS: &str = "session_id, run_id, parent_session_id, agent, source, status, \
    last_event_at, status_at, liveness_rule";

fn open_session(row: &rusqlite::Row<'_>) -> rusqlite::Result<OpenSession> {
    Ok(OpenSession {
        session_id: row.get(0)?,
        run_id: row.get(1)?,
        parent_session_id: row.get(2)?,
        agent: row.get(3)?,
        source: Source::from_code(row.get(4)?).unwrap_or(Source::Custom),
        status: row.get::<_, Option<i64>>(5)?.and_then(Status::from_code),
        last_event_at: row.get(6)?,
        status_at: row.get(7)?,
        liveness_rule: row.get(8)?,
    })
}

/// Open runs of `sources` still at work, whose last event is at or before `quiet_since`
/// (milliseconds; `i64::MAX` for all), the longest-quiet first, at most [`SWEEP_LIMIT`].
pub fn open_runs(
    conn: &Connection,
    sources: &[Source],
    quiet_since: i64,
) -> Result<Vec<OpenRun>, StoreError> {
    quiet_open(
        conn,
        "runs",
        OPEN_RUN_COLUMNS,
        sources,
        quiet_since,
        open_run,
    )
}

/// Open sessions of `sources` still at work and quiet since `quiet_since`, oldest first.
pub fn open_sessions(
    conn: &Connection,
    sources: &[Source],
    quiet_since: i64,
) -> Result<Vec<OpenSession>, StoreError> {
    quiet_open(
        conn,
        "sessions",
        OPEN_SESSION_COLUMNS,
        sources,
        quiet_since,
        open_session,
    )
}

/// The one query behind [`open_runs`] and [`open_sessions`]: rows of `table` still at work and
/// quiet since `quiet_since`. The `{table}_open` index holds only rows with ended_at NULL, so
/// the sweep never walks finished history.
fn quiet_open<T>(
    conn: &Connection,
    table: &str,
    columns: &str,
    sources: &[Source],
    quiet_since: i64,
    row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {columns} FROM {table} INDEXED BY {table}_open \
         WHERE ended_at IS NULL AND last_event_at <= ?1 AND liveness_rule IS NULL AND {ACTIVE} \
           AND source IN ({}) ORDER BY last_event_at LIMIT ?2",
        codes(sources)
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params![quiet_since, SWEEP_LIMIT as i64], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Open runs of `sources` that are not over: at work, or idle (by their producer's word or by
/// the idle rule), newest activity first, at most [`SWEEP_LIMIT`]; for the session-pid rule,
/// which ends an idle session too once its process is gone. Newest first: sessions fed by
/// `http` hooks name no process and stay open (idle) for good, and however many pile up, the
/// recent sessions are the ones checked.
pub fn open_or_idle_runs(
    conn: &Connection,
    sources: &[Source],
) -> Result<Vec<OpenRun>, StoreError> {
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {OPEN_RUN_COLUMNS} FROM runs INDEXED BY runs_open \
         WHERE ended_at IS NULL AND (liveness_rule IS NULL OR liveness_rule = 'idle') \
           AND (status IS NULL OR status IN (1, 2, 3, 4, 7)) \
           AND source IN ({}) ORDER BY last_event_at DESC LIMIT ?1",
        codes(sources)
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params![SWEEP_LIMIT as i64], open_run)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The open sessions of one run (any status but ended), for ending them with their run.
pub fn sessions_of_run(conn: &Connection, run_id: &str) -> Result<Vec<OpenSession>, StoreError> {
    let sql = format!(
        "SELECT {OPEN_SESSION_COLUMNS} FROM sessions WHERE run_id = ?1 AND ended_at IS NULL \
         LIMIT {SWEEP_LIMIT}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map([run_id], open_session)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Runs the sweep failed for heartbeat silence that have been heard from since (their last
/// event is newer than the status the sweep set), with the sessions it ended with them.
pub fn silenced_runs_heard_again(
    conn: &Connection,
) -> Result<Vec<(OpenRun, Vec<OpenSession>)>, StoreError> {
    let sql = format!(
        "SELECT {OPEN_RUN_COLUMNS} FROM runs INDEXED BY runs_silenced \
         WHERE liveness_rule = 'heartbeat' AND last_event_at > COALESCE(status_at, 0) \
         ORDER BY last_event_at LIMIT {SWEEP_LIMIT}"
    );
    let runs = conn
        .prepare_cached(&sql)?
        .query_map([], open_run)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let sql = format!(
        "SELECT {OPEN_SESSION_COLUMNS} FROM sessions WHERE run_id = ?1 \
         AND liveness_rule = 'heartbeat' LIMIT {SWEEP_LIMIT}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut out = Vec::with_capacity(runs.len());
    for run in runs {
        let sessions = stmt
            .query_map([&run.run_id], open_session)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        out.push((run, sessions));
    }
    Ok(out)
}

/// The process behind a run: the first of its first [`PRODUCER_SCAN`] events that carries a
/// pid (a `process_start` names it, with the agent's boot id, start time and heartbeat).
pub fn producer(conn: &Connection, run_id: &str) -> Result<Option<Producer>, StoreError> {
    let found = conn
        .prepare_cached(
            "SELECT host, pid, payload FROM (SELECT host, pid, payload, seq FROM events \
             WHERE run_id = ?1 ORDER BY seq LIMIT ?2) WHERE pid IS NOT NULL ORDER BY seq LIMIT 1",
        )?
        .query_row(params![run_id, PRODUCER_SCAN], |row| {
            let payload: Map<String, Value> = json_column(row, 2)?;
            Ok((
                row.get::<_, Option<String>>(0)?,
                row.get::<_, i64>(1)?,
                payload,
            ))
        })
        .optional()?;
    Ok(found.map(|(host, pid, payload)| producer_of(host, pid, &payload)))
}

/// The process behind an agent session now: the newest of its run's last [`PRODUCER_SCAN`]
/// events that carries a pid, else the first (as [`producer`]). Newest, not first: a resumed
/// Claude Code session (`claude --resume`) is run by a new process, and the old one being gone
/// must not end it.
pub fn latest_producer(conn: &Connection, run_id: &str) -> Result<Option<Producer>, StoreError> {
    let found = conn
        .prepare_cached(
            "SELECT host, pid, payload FROM (SELECT host, pid, payload, seq FROM events \
             WHERE run_id = ?1 ORDER BY seq DESC LIMIT ?2) WHERE pid IS NOT NULL \
             ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(params![run_id, PRODUCER_SCAN], |row| {
            let payload: Map<String, Value> = json_column(row, 2)?;
            Ok((
                row.get::<_, Option<String>>(0)?,
                row.get::<_, i64>(1)?,
                payload,
            ))
        })
        .optional()?;
    match found {
        Some((host, pid, payload)) => Ok(Some(producer_of(host, pid, &payload))),
        None => producer(conn, run_id),
    }
}

/// Reads what a producer says about itself from its first event's payload: at the top
/// (`process_start` of the Python agent and `sightline run`), or under `sightline_producer`
/// (what `sightline hook` adds to a Claude Code payload, which keeps its own keys). Untrusted:
/// any shape is accepted, and what does not fit is left out.
pub fn producer_of(host: Option<String>, pid: i64, payload: &Map<String, Value>) -> Producer {
    let payload = match payload.get(PRODUCER_KEY) {
        Some(Value::Object(inner)) => inner,
        _ => payload,
    };
    let heartbeat_ms = payload
        .get("heartbeat_s")
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 86_400.0)
        .map(|s| (s * 1000.0).round() as i64);
    Producer {
        host,
        pid,
        boot_id: payload
            .get("boot_id")
            .and_then(Value::as_str)
            .map(|s| s.chars().take(64).collect()),
        start_ticks: payload.get("start_ticks").and_then(Value::as_u64),
        pid_ns: payload
            .get("pid_ns")
            .and_then(Value::as_str)
            .map(|s| s.chars().take(64).collect()),
        heartbeat_ms,
    }
}
