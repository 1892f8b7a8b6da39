//! The hub's live state read from the derived rows: which sessions are active or waiting now
//! (with the ancestors they nest under), why each waits, what it is doing, its working directory
//! and its current prompt, and one agent session's conversation in order.
//!
//! The dashboard's Live page and its "waiting for you" queue read this instead of rebuilding
//! lanes from a window of recent events, so a session that waits stays listed however many
//! other events arrive. Membership comes from the `sessions` and `runs` rows (indexed by
//! `last_event_at`); the details come from a bounded backwards walk over the session's run
//! (the `(run_id, seq)` index). Every function takes a read connection and must never write,
//! and every walk has a row bound written beside it.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sightline_schema::{EntityType, Event, Severity, Status, Timestamp};

use crate::StoreError;
use crate::query::{
    Page, RUN_COLUMNS, Run, SESSION_COLUMNS, Session, run_from_row, session_from_row,
};
use crate::rows::{EVENT_COLUMNS, event_from_row};

/// A blocked session (a permission prompt, a question) stays listed this long without news:
/// it waits for a person, who may be away for a weekend. Past that it is presumed abandoned
/// (the agent was killed without a last word) and `/runs?status=blocked` still finds it.
pub const BLOCKED_KEEP_MS: i64 = 7 * 24 * 3600 * 1000;
/// An idle session (its turn ended, it waits for the next prompt) stays listed for a day:
/// people leave finished sessions open, and a week of them would bury the ones that matter.
pub const IDLE_KEEP_MS: i64 = 24 * 3600 * 1000;
/// At most this many sessions in one answer (the Live page renders the 40 newest trees and
/// offers the rest behind a button); `truncated` says when more matched.
pub const MAX_LIVE: usize = 1000;
/// Rows of a run walked backwards to find a session's wait, prompt, activity and directory.
/// Newest first, so the answer is the latest; a session whose last prompt is further back than
/// this in a busy run shows no prompt rather than costing an unbounded scan.
pub const DETAIL_WALK: i64 = 2000;
/// Events of one session decoded at most per walk: past this the details found so far stand
/// (a session without a prompt or directory would otherwise decode its whole walk).
pub const DETAIL_DECODE: usize = 200;
/// Ancestor hops followed to nest a subagent (cycles in bad data stop here).
const MAX_DEPTH: usize = 16;

/// Why a session waits for its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    /// A tool call waits for the user's permission.
    Permission,
    /// The agent asked the user a question and waits for the answer.
    Question,
    /// The turn ended and the agent waits for the next prompt.
    Idle,
    /// The turn ended on an error (an API failure); the agent waits for the user.
    FailedTurn,
    /// Blocked for another reason the source reported (a tmux pane at a prompt, a workflow gate).
    Blocked,
}

/// What a session waits on, from the event that put it there.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Wait {
    pub kind: WaitKind,
    pub title: String,
    pub summary: Option<String>,
    /// When the wait began (the producer's clock).
    pub since: Timestamp,
    pub seq: u64,
}

/// What the walk over a session's recent events finds.
#[derive(Debug, Clone, Default, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Details {
    pub wait: Option<Wait>,
    /// The latest prompt's title.
    pub prompt: Option<String>,
    /// A tool, step or call that started and has not ended.
    pub activity: Option<String>,
    /// The working directory the source reported (`cwd`, OpenCode's `directory`).
    pub cwd: Option<String>,
}

/// One lane of the Live page: a session (or a run that has no sessions, such as a traced
/// Python process), with its details.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LiveSession {
    /// The lane's key: the session id, or `run:<run_id>` for a run without sessions.
    pub key: String,
    #[serde(flatten)]
    pub session: Session,
    /// False for an ancestor listed only so that its active subagents nest under it.
    pub active: bool,
    /// The git repository's name (the directory holding `.git`, walked up from `cwd` on the
    /// hub's machine), else the working directory's last component. Filled by the server.
    pub project: Option<String>,
    #[serde(flatten)]
    pub details: Details,
}

/// What [`live_rows`] selects.
#[derive(Debug, Clone)]
pub struct LiveQuery {
    pub now: Timestamp,
    /// Sessions with activity this recent are listed, ended or not.
    pub recent_ms: i64,
    /// Only the sessions of this run (every one of them, whatever its age).
    pub run_id: Option<String>,
}

/// A listed row before its details: the session (or synthesized from a run) and its key.
#[derive(Debug, Clone)]
pub struct LiveRow {
    pub key: String,
    pub session: Session,
    pub active: bool,
}

/// The sessions active in the last `recent_ms`, every session still blocked (within
/// [`BLOCKED_KEEP_MS`]) or idle (within [`IDLE_KEEP_MS`]), runs without sessions in the same
/// windows, and the ancestors of all of them. Waiting rows first, then newest activity; at most
/// [`MAX_LIVE`] (the bool says more matched), cut among the rows that do not wait.
pub fn live_rows(conn: &Connection, q: &LiveQuery) -> Result<(Vec<LiveRow>, bool), StoreError> {
    let now = q.now.millis();
    let recent = now - q.recent_ms.max(0);
    let (blocked, idle) = (Status::Blocked.code(), Status::Idle.code());
    let mut sessions: Vec<Session> = Vec::new();
    let limit = MAX_LIVE as i64 + 1;
    if let Some(run) = &q.run_id {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE run_id = ?1 \
             ORDER BY last_event_at DESC LIMIT ?2"
        ))?;
        for s in stmt.query_map(params![run, limit], session_from_row)? {
            sessions.push(s?);
        }
    } else {
        // The range on last_event_at uses `sessions_recent`; the oldest bound is the blocked
        // window, so the scan covers at most a week of sessions.
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE last_event_at >= ?1 AND (\
               last_event_at >= ?2 \
               OR (ended_at IS NULL AND status = ?3) \
               OR (ended_at IS NULL AND status = ?4 AND last_event_at >= ?5)) \
             ORDER BY (ended_at IS NULL AND status IN (?3, ?4)) DESC, last_event_at DESC LIMIT ?6"
        ))?;
        let rows = stmt.query_map(
            params![
                now - BLOCKED_KEEP_MS,
                recent,
                blocked,
                idle,
                now - IDLE_KEEP_MS,
                limit
            ],
            session_from_row,
        )?;
        for s in rows {
            sessions.push(s?);
        }
    }
    let mut runs: Vec<Run> = Vec::new();
    {
        let (sql, args): (String, Vec<rusqlite::types::Value>) = match &q.run_id {
            Some(run) => (
                format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1 AND session_count = 0"),
                vec![run.clone().into()],
            ),
            None => (
                format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE last_event_at >= ?1 AND session_count = 0 AND (\
                       last_event_at >= ?2 \
                       OR (ended_at IS NULL AND status = ?3) \
                       OR (ended_at IS NULL AND status = ?4 AND last_event_at >= ?5)) \
                     ORDER BY (ended_at IS NULL AND status IN (?3, ?4)) DESC, last_event_at DESC LIMIT ?6"
                ),
                vec![
                    (now - BLOCKED_KEEP_MS).into(),
                    recent.into(),
                    blocked.into(),
                    idle.into(),
                    (now - IDLE_KEEP_MS).into(),
                    limit.into(),
                ],
            ),
        };
        let mut stmt = conn.prepare_cached(&sql)?;
        for r in stmt.query_map(rusqlite::params_from_iter(args), run_from_row)? {
            runs.push(r?);
        }
    }
    let truncated = sessions.len() > MAX_LIVE || runs.len() > MAX_LIVE;
    let mut rows: Vec<LiveRow> = sessions
        .into_iter()
        .take(MAX_LIVE)
        .map(|s| LiveRow {
            key: s.session_id.clone(),
            session: s,
            active: true,
        })
        .collect();
    rows.extend(runs.into_iter().take(MAX_LIVE).map(|r| LiveRow {
        key: format!("run:{}", r.run_id),
        session: session_of_run(r),
        active: true,
    }));
    // Waiting rows first, so that a cut (past MAX_LIVE) never drops a session that waits.
    let waits = |r: &LiveRow| {
        r.session.ended_at.is_none()
            && matches!(r.session.status, Some(Status::Blocked | Status::Idle))
    };
    rows.sort_by(|a, b| {
        waits(b)
            .cmp(&waits(a))
            .then(b.session.last_event_at.cmp(&a.session.last_event_at))
    });
    let truncated = truncated || rows.len() > MAX_LIVE;
    rows.truncate(MAX_LIVE);

    // Ancestors, so that a subagent is shown under its parent even when the parent itself has
    // been quiet for longer than the window.
    let mut have: HashSet<String> = rows.iter().map(|r| r.key.clone()).collect();
    let mut wanted: Vec<String> = rows
        .iter()
        .filter_map(|r| r.session.parent_session_id.clone())
        .filter(|p| !have.contains(p))
        .collect();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?1"
    ))?;
    for _ in 0..MAX_DEPTH {
        if wanted.is_empty() {
            break;
        }
        let mut next = Vec::new();
        for id in wanted.drain(..) {
            if !have.insert(id.clone()) {
                continue;
            }
            if let Some(s) = stmt.query_row([&id], session_from_row).optional()? {
                if let Some(p) = &s.parent_session_id
                    && !have.contains(p)
                {
                    next.push(p.clone());
                }
                rows.push(LiveRow {
                    key: s.session_id.clone(),
                    session: s,
                    active: false,
                });
            }
        }
        wanted = next;
    }
    Ok((rows, truncated))
}

/// A run without sessions, shaped as the session lane it is on the Live page.
fn session_of_run(r: Run) -> Session {
    Session {
        session_id: format!("run:{}", r.run_id),
        run_id: Some(r.run_id),
        parent_session_id: None,
        agent: r.agent,
        source: r.source,
        title: r.title,
        status: r.status,
        started_at: r.started_at,
        ended_at: r.ended_at,
        last_event_at: r.last_event_at,
        duration_ms: r.duration_ms,
        event_count: r.event_count,
        error_count: r.error_count,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        cache_read_tokens: r.cache_read_tokens,
        cache_write_tokens: r.cache_write_tokens,
        cost_usd: r.cost_usd,
        total_input_tokens: r.input_tokens,
        total_output_tokens: r.output_tokens,
        total_cost_usd: r.cost_usd,
        alive: r.alive,
        ended_by: r.ended_by,
        liveness_rule: r.liveness_rule,
        liveness_reason: r.liveness_reason,
    }
}

/// The details of one listed row, from at most [`DETAIL_WALK`] of its run's newest events.
/// A session without a run id has no index to walk and gets none (its row still shows).
pub fn details(conn: &Connection, row: &LiveRow) -> Result<Details, StoreError> {
    let s = &row.session;
    let Some(run_id) = &s.run_id else {
        return Ok(Details::default());
    };
    let run_only = row.key.starts_with("run:");
    // The inner query walks the (run_id, seq) index backwards without decoding anything; only
    // the session's own rows are decoded.
    const WALK: &str = "SELECT seq FROM events WHERE run_id = ?1 ORDER BY seq DESC LIMIT ?2";
    // Rows are decoded one at a time and the walk stops as soon as everything is found (the
    // newest event usually names the directory, the prompt is a few turns back), so a busy
    // session costs a handful of decodes, not DETAIL_WALK.
    let mut walk = Walk::new(s.status);
    if run_only {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq IN ({WALK}) \
             AND session_id IS NULL ORDER BY seq DESC"
        ))?;
        let mut rows = stmt.query(params![run_id, DETAIL_WALK])?;
        while let Some(row) = rows.next()? {
            if walk.push(&event_from_row(row)?) {
                break;
            }
        }
    } else {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq IN ({WALK}) \
             AND session_id = ?3 ORDER BY seq DESC"
        ))?;
        let mut rows = stmt.query(params![run_id, DETAIL_WALK, s.session_id])?;
        while let Some(row) = rows.next()? {
            if walk.push(&event_from_row(row)?) {
                break;
            }
        }
    }
    Ok(walk.d)
}

/// Reads the details from a session's events, newest first. Pure, so it is tested without a
/// database.
pub fn details_of(status: Option<Status>, newest_first: &[Event]) -> Details {
    let mut walk = Walk::new(status);
    for e in newest_first {
        if walk.push(e) {
            break;
        }
    }
    walk.d
}

/// The details found so far by a walk over a session's events, newest first.
struct Walk {
    d: Details,
    status: Option<Status>,
    /// Tools, steps and calls seen ending (newer than what is being read), by correlation.
    ended: HashSet<String>,
    seen: usize,
}

impl Walk {
    fn new(status: Option<Status>) -> Walk {
        Walk {
            d: Details::default(),
            status,
            ended: HashSet::new(),
            seen: 0,
        }
    }

    /// Takes the next older event; true when nothing more is to be learned.
    fn push(&mut self, e: &Event) -> bool {
        let (d, status) = (&mut self.d, self.status);
        let first = self.seen == 0;
        self.seen += 1;
        if d.cwd.is_none() {
            d.cwd = cwd_of(e);
        }
        if d.prompt.is_none() && e.entity_type == EntityType::Prompt {
            d.prompt = Some(e.title.clone());
        }
        let is_work = matches!(
            e.entity_type,
            EntityType::Tool | EntityType::Step | EntityType::Call | EntityType::Task
        );
        let work_key = e
            .correlation_id
            .as_deref()
            .or(e.entity_id.as_deref())
            .unwrap_or("");
        if is_work && e.status != Some(Status::Running) && self.ended.len() < 10_000 {
            self.ended.insert(work_key.to_string());
        }
        if d.activity.is_none()
            && is_work
            && e.status == Some(Status::Running)
            && !self.ended.contains(work_key)
        {
            d.activity = Some(e.title.clone());
            // A question the agent put to its user and that is still open is a wait.
            if first && asks_user(e) && d.wait.is_none() {
                d.wait = Some(Wait {
                    kind: WaitKind::Question,
                    title: e.title.clone(),
                    summary: e.summary.clone(),
                    since: e.ts,
                    seq: e.seq,
                });
            }
        }
        if d.wait.is_none()
            && let Some(st @ (Status::Blocked | Status::Idle)) = status
            && e.status == Some(st)
            && matches!(
                e.entity_type,
                EntityType::Session
                    | EntityType::Permission
                    | EntityType::Run
                    | EntityType::Process
                    | EntityType::Pane
                    | EntityType::Workflow
            )
        {
            let kind = if e.entity_type == EntityType::Permission {
                WaitKind::Permission
            } else if e.severity == Severity::Error {
                WaitKind::FailedTurn
            } else if st == Status::Idle {
                WaitKind::Idle
            } else {
                WaitKind::Blocked
            };
            d.wait = Some(Wait {
                kind,
                title: e.title.clone(),
                summary: e.summary.clone(),
                since: e.ts,
                seq: e.seq,
            });
        }
        // The activity is the newest running work: whatever is older cannot be the current one.
        (d.cwd.is_some()
            && d.prompt.is_some()
            && (d.wait.is_some() || status_needs_no_wait(status)))
            || self.seen >= DETAIL_DECODE
    }
}

fn status_needs_no_wait(status: Option<Status>) -> bool {
    !matches!(status, Some(Status::Blocked | Status::Idle))
}

/// Claude Code's question tool (`AskUserQuestion`) and OpenCode's `question` tool.
fn asks_user(e: &Event) -> bool {
    e.entity_type == EntityType::Tool
        && e.tags.iter().any(|t| {
            matches!(
                t.as_str(),
                "tool:AskUserQuestion" | "tool:question" | "tool:ask_user"
            )
        })
}

/// The working directory an event names: `cwd` (Claude Code hooks and transcripts, the Python
/// agent's process start), `directory` (OpenCode), or a `dir:` tag (OpenCode's mapping).
pub fn cwd_of(e: &Event) -> Option<String> {
    for key in ["cwd", "directory"] {
        if let Some(serde_json::Value::String(s)) = e.payload.get(key)
            && !s.is_empty()
        {
            return Some(s.clone());
        }
    }
    e.tags
        .iter()
        .find_map(|t| t.strip_prefix("dir:"))
        .filter(|d| !d.is_empty())
        .map(str::to_string)
}

/// The working directory of a run: the first one its events named, kept on its row as they
/// were stored (`aggregate.rs`); one primary-key read.
pub fn run_cwd(conn: &Connection, run_id: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT cwd FROM runs WHERE run_id = ?1")?
        .query_row([run_id], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

/// Fills `runs.cwd` of a database stored before the column existed: for each run, the first
/// directory its earliest events name (at most [`DETAIL_WALK`] rows from its start). Run once,
/// by the migration that adds the column.
pub(crate) fn backfill_run_cwds(conn: &Connection) -> Result<(), StoreError> {
    let ids: Vec<String> = conn
        .prepare("SELECT run_id FROM runs WHERE cwd IS NULL")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut events = conn.prepare(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let mut set = conn.prepare("UPDATE runs SET cwd = ?2 WHERE run_id = ?1")?;
    for id in ids {
        let mut rows = events.query(params![id, DETAIL_WALK])?;
        while let Some(row) = rows.next()? {
            if let Some(cwd) = cwd_of(&event_from_row(row)?) {
                set.execute(params![id, cwd])?;
                break;
            }
        }
    }
    Ok(())
}

/// Entity types a conversation shows: what was asked, answered and done.
const CONVERSATION_TYPES: &[EntityType] = &[
    EntityType::Prompt,
    EntityType::Message,
    EntityType::Tool,
    EntityType::Permission,
    EntityType::Session,
    EntityType::Task,
    EntityType::Todo,
];

/// One agent session's conversation in seq order after `after`: prompts, answers (messages and
/// the turn-end events that carry the last answer), tool calls and permission prompts, from every
/// source that reported the session (hooks, transcripts, telemetry). `None` when the session is
/// unknown. Walks the run's `(run_id, seq)` index, at most 5,000 events a page.
pub fn conversation(
    conn: &Connection,
    session_id: &str,
    after: u64,
    limit: usize,
) -> Result<Option<Page<Vec<Event>, u64>>, StoreError> {
    let run: Option<Option<String>> = conn
        .prepare_cached("SELECT run_id FROM sessions WHERE session_id = ?1")?
        .query_row([session_id], |r| r.get(0))
        .optional()?;
    let Some(run) = run else { return Ok(None) };
    let Some(run) = run else {
        return Ok(Some(Page {
            items: Vec::new(),
            next_cursor: None,
        }));
    };
    let limit = limit.clamp(1, 5000);
    let types: Vec<String> = CONVERSATION_TYPES
        .iter()
        .map(|t| t.code().to_string())
        .collect();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ?1 AND seq > ?2 AND session_id = ?3 \
         AND entity_type IN ({}) ORDER BY seq LIMIT ?4",
        types.join(", ")
    ))?;
    let mut events = stmt
        .query_map(
            params![run, after as i64, session_id, limit as i64 + 1],
            event_from_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if events.len() > limit {
        events.truncate(limit);
        events.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(Some(Page {
        items: events,
        next_cursor,
    }))
}

/// How many of the newest runs and of the newest sessions [`agents_seen`] looks at: enough for
/// months of agent work, and a bounded read (two index walks) however large the store.
pub const AGENTS_SCAN: i64 = 50_000;
/// Most distinct agent names it returns.
pub const AGENTS_MAX: usize = 500;

/// The distinct agents and sources of the newest [`AGENTS_SCAN`] runs and sessions, sorted;
/// `truncated` when there were more than [`AGENTS_MAX`] agents or older rows went unread.
pub fn agents_seen(conn: &Connection) -> Result<(Vec<String>, Vec<String>, bool), StoreError> {
    let mut agents = std::collections::BTreeSet::new();
    let mut sources = std::collections::BTreeSet::new();
    let mut truncated = false;
    for table in ["runs", "sessions"] {
        // Newest first over the recent index; the outer GROUP BY dedups the bounded window.
        let sql = format!(
            "SELECT agent, source, COUNT(*) FROM \
             (SELECT agent, source FROM {table} ORDER BY last_event_at DESC LIMIT ?1) \
             GROUP BY agent, source"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![AGENTS_SCAN])?;
        let mut seen = 0i64;
        while let Some(row) = rows.next()? {
            seen += row.get::<_, i64>(2)?;
            if let Some(agent) = row.get::<_, Option<String>>(0)?
                && !agent.is_empty()
            {
                agents.insert(agent);
            }
            if let Some(s) = sightline_schema::Source::from_code(row.get(1)?) {
                sources.insert(s.as_str().to_string());
            }
        }
        truncated |= seen >= AGENTS_SCAN;
    }
    if agents.len() > AGENTS_MAX {
        truncated = true;
    }
    Ok((
        agents.into_iter().take(AGENTS_MAX).collect(),
        sources.into_iter().collect(),
        truncated,
    ))
}
