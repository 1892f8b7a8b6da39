//! Read-side queries: runs, one run, timelines, session trees, search, stats, incidents, and the
//! cursor reads that SSE/WS replay uses.
//!
//! Every function takes a read connection and never writes. Filters are turned into SQL here
//! with bound parameters only: no value is ever spliced into SQL text.

use std::collections::{BTreeMap, HashMap};

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};
use serde::Serialize;
use sightline_schema::filter::searchable_text;
use sightline_schema::{EntityType, Event, Filter, Severity, Source, Status, Timestamp};

use crate::rows::{EVENT_COLUMN_COUNT, EVENT_COLUMNS, event_from_row};
use crate::search_text::TextQuery;
use crate::{StoreError, liveness};

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Run {
    pub run_id: String,
    pub source: Source,
    pub agent: Option<String>,
    pub title: String,
    pub status: Option<Status>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub last_event_at: Timestamp,
    pub duration_ms: i64,
    pub event_count: i64,
    pub error_count: i64,
    pub session_count: i64,
    pub input_tokens: f64,
    pub output_tokens: f64,
    pub cache_read_tokens: f64,
    pub cache_write_tokens: f64,
    pub cost_usd: f64,
    /// Whether its producer is known to be alive: false once it ended or the hub's liveness
    /// sweep made it idle, true while a source with a liveness rule keeps it open, null when
    /// no rule covers its source (docs/API.md, "Liveness").
    pub alive: Option<bool>,
    /// `"liveness"` when the hub's sweep, not the producer, set the status.
    pub ended_by: Option<String>,
    /// The sweep's rule (`pid`, `heartbeat`, `idle`, `stream`), with `ended_by`.
    pub liveness_rule: Option<String>,
    /// Why, in the words the dashboard shows ("process 1234 is gone (no exit event)").
    pub liveness_reason: Option<String>,
}

/// A session with its own sums and the sums of its whole subtree (`total_*`).
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Session {
    pub session_id: String,
    pub run_id: Option<String>,
    pub parent_session_id: Option<String>,
    pub agent: Option<String>,
    pub source: Source,
    pub title: String,
    pub status: Option<Status>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub last_event_at: Timestamp,
    pub duration_ms: i64,
    pub event_count: i64,
    pub error_count: i64,
    pub input_tokens: f64,
    pub output_tokens: f64,
    pub cache_read_tokens: f64,
    pub cache_write_tokens: f64,
    pub cost_usd: f64,
    pub total_input_tokens: f64,
    pub total_output_tokens: f64,
    pub total_cost_usd: f64,
    /// Whether its producer is known to be alive: false once it ended or the hub's liveness
    /// sweep made it idle, true while a source with a liveness rule keeps it open, null when
    /// no rule covers its source (docs/API.md, "Liveness").
    pub alive: Option<bool>,
    /// `"liveness"` when the hub's sweep, not the producer, set the status.
    pub ended_by: Option<String>,
    /// The sweep's rule (`pid`, `heartbeat`, `idle`, `stream`), with `ended_by`.
    pub liveness_rule: Option<String>,
    /// Why, in the words the dashboard shows ("process 1234 is gone (no exit event)").
    pub liveness_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SessionNode {
    #[serde(flatten)]
    pub session: Session,
    pub children: Vec<SessionNode>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RunDetail {
    pub run: Run,
    pub sessions: Vec<Session>,
    pub by_entity_type: BTreeMap<String, i64>,
    pub by_severity: BTreeMap<String, i64>,
}

/// Runs per page of `GET /api/v1/runs` (a larger `limit` is clamped to it).
pub const MAX_RUN_PAGE: usize = 1000;

#[derive(Debug, Clone, Serialize)]
pub struct Page<T: Serialize, C: Serialize> {
    #[serde(flatten)]
    pub items: T,
    pub next_cursor: Option<C>,
}

#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Stats {
    pub total_events: i64,
    pub error_events: i64,
    pub error_rate: f64,
    pub events_per_minute: f64,
    pub active_sessions: i64,
    pub by_entity_type: BTreeMap<String, i64>,
    pub by_source: BTreeMap<String, i64>,
    pub by_severity: BTreeMap<String, i64>,
    pub total_cost_usd: f64,
    pub total_input_tokens: f64,
    pub total_output_tokens: f64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Incident {
    pub key: String,
    pub run_id: Option<String>,
    pub correlation_id: Option<String>,
    pub title: String,
    pub source: Source,
    pub count: i64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub first_seq: u64,
    pub last_seq: u64,
    pub sample: Event,
}

/// Which way a search pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Newest first; the cursor is `before`.
    Desc,
    /// Oldest first; the cursor is `after`.
    Asc,
}

pub(crate) const RUN_COLUMNS: &str = "run_id, source, agent, title, status, started_at, ended_at, last_event_at, \
    event_count, error_count, session_count, input_tokens, output_tokens, cache_read_tokens, \
    cache_write_tokens, cost_usd, liveness_rule, liveness_reason";

pub(crate) const SESSION_COLUMNS: &str = "session_id, run_id, parent_session_id, agent, source, title, status, \
    started_at, ended_at, last_event_at, event_count, error_count, input_tokens, output_tokens, \
    cache_read_tokens, cache_write_tokens, cost_usd, liveness_rule, liveness_reason";

fn duration(started: i64, ended: Option<i64>, last: i64) -> i64 {
    ended.unwrap_or(last).saturating_sub(started).max(0)
}

fn source_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Source> {
    Source::from_code(row.get(idx)?).ok_or(rusqlite::Error::IntegralValueOutOfRange(idx, 0))
}

fn status_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Status>> {
    Ok(row.get::<_, Option<i64>>(idx)?.and_then(Status::from_code))
}

pub(crate) fn run_from_row(row: &Row<'_>) -> rusqlite::Result<Run> {
    let (started, ended, last): (i64, Option<i64>, i64) = (row.get(5)?, row.get(6)?, row.get(7)?);
    let (source, status) = (source_at(row, 1)?, status_at(row, 4)?);
    let (rule, reason): (Option<String>, Option<String>) = (row.get(16)?, row.get(17)?);
    Ok(Run {
        run_id: row.get(0)?,
        source,
        agent: row.get(2)?,
        title: row.get(3)?,
        status,
        started_at: Timestamp(started),
        ended_at: ended.map(Timestamp),
        last_event_at: Timestamp(last),
        duration_ms: duration(started, ended, last),
        event_count: row.get(8)?,
        error_count: row.get(9)?,
        session_count: row.get(10)?,
        input_tokens: row.get(11)?,
        output_tokens: row.get(12)?,
        cache_read_tokens: row.get(13)?,
        cache_write_tokens: row.get(14)?,
        cost_usd: row.get(15)?,
        alive: liveness::alive(source, status, ended.is_some(), rule.as_deref()),
        ended_by: rule.as_ref().map(|_| liveness::ENDED_BY.to_string()),
        liveness_rule: rule,
        liveness_reason: reason,
    })
}

pub(crate) fn session_from_row(row: &Row<'_>) -> rusqlite::Result<Session> {
    let (started, ended, last): (i64, Option<i64>, i64) = (row.get(7)?, row.get(8)?, row.get(9)?);
    let (input, output, cost): (f64, f64, f64) = (row.get(12)?, row.get(13)?, row.get(16)?);
    let (source, status) = (source_at(row, 4)?, status_at(row, 6)?);
    let (rule, reason): (Option<String>, Option<String>) = (row.get(17)?, row.get(18)?);
    Ok(Session {
        session_id: row.get(0)?,
        run_id: row.get(1)?,
        parent_session_id: row.get(2)?,
        agent: row.get(3)?,
        source,
        title: row.get(5)?,
        status,
        started_at: Timestamp(started),
        ended_at: ended.map(Timestamp),
        last_event_at: Timestamp(last),
        duration_ms: duration(started, ended, last),
        event_count: row.get(10)?,
        error_count: row.get(11)?,
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: row.get(14)?,
        cache_write_tokens: row.get(15)?,
        cost_usd: cost,
        total_input_tokens: input,
        total_output_tokens: output,
        total_cost_usd: cost,
        alive: liveness::alive(source, status, ended.is_some(), rule.as_deref()),
        ended_by: rule.as_ref().map(|_| liveness::ENDED_BY.to_string()),
        liveness_rule: rule,
        liveness_reason: reason,
    })
}

/// Filters for the runs list.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub statuses: Vec<Status>,
    pub sources: Vec<Source>,
    pub agents: Vec<String>,
    pub q: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub limit: usize,
    /// `"<last_event_at ms>:<run_id>"` from a previous page.
    pub cursor: Option<String>,
    /// Runs that `q` also matches (found through their events' text by the caller: the
    /// working directory and prompts live in payloads, not in the runs row).
    pub q_runs: Vec<String>,
}

fn in_list(
    column: &str,
    values: impl IntoIterator<Item = SqlValue>,
    args: &mut Vec<SqlValue>,
) -> String {
    let start = args.len();
    args.extend(values);
    let marks: Vec<String> = (start..args.len()).map(|i| format!("?{}", i + 1)).collect();
    format!("{column} IN ({})", marks.join(", "))
}

pub(crate) fn bind(value: SqlValue, args: &mut Vec<SqlValue>) -> String {
    args.push(value);
    format!("?{}", args.len())
}

/// Runs, newest activity first, with keyset pagination.
pub fn list_runs(conn: &Connection, q: &RunQuery) -> Result<Page<Vec<Run>, String>, StoreError> {
    list_runs_where(conn, q, |run| Ok(Some(run)))
}

/// Most runs one page of [`list_runs_where`] looks at: a filter the caller applies per run
/// (the project, read from each run's events) may reject most of them, so one request does
/// bounded work however rare the matches are; the page then ends early with a cursor.
pub const RUN_SCAN_BUDGET: usize = 2_000;

/// The runs list with a per-run step of the caller's: `keep` turns a run into a row of the page
/// or rejects it (`None`). Runs are walked in the list's order until the page holds `limit`
/// rows, so a page is short only at the end of the list or when [`RUN_SCAN_BUDGET`] runs were
/// looked at, and `next_cursor` continues right after the last run looked at: no run is
/// skipped, and a full page has a cursor only when another match follows it.
pub fn list_runs_where<T: Serialize>(
    conn: &Connection,
    q: &RunQuery,
    mut keep: impl FnMut(Run) -> Result<Option<T>, StoreError>,
) -> Result<Page<Vec<T>, String>, StoreError> {
    let mut args = Vec::new();
    let mut clauses = vec!["1".to_string()];
    if !q.statuses.is_empty() {
        clauses.push(in_list(
            "status",
            q.statuses.iter().map(|s| SqlValue::Integer(s.code())),
            &mut args,
        ));
    }
    if !q.sources.is_empty() {
        clauses.push(in_list(
            "source",
            q.sources.iter().map(|s| SqlValue::Integer(s.code())),
            &mut args,
        ));
    }
    if !q.agents.is_empty() {
        clauses.push(in_list(
            "agent",
            q.agents.iter().map(|a| SqlValue::Text(a.clone())),
            &mut args,
        ));
    }
    if let Some(text) = &q.q {
        let pattern = bind(
            SqlValue::Text(format!("%{}%", like_escape(text))),
            &mut args,
        );
        let also = if q.q_runs.is_empty() {
            String::new()
        } else {
            format!(
                " OR {}",
                in_list(
                    "run_id",
                    q.q_runs.iter().map(|r| SqlValue::Text(r.clone())),
                    &mut args,
                )
            )
        };
        clauses.push(format!(
            "(title LIKE {pattern} ESCAPE '\\' OR run_id LIKE {pattern} ESCAPE '\\' OR agent LIKE {pattern} ESCAPE '\\'{also})"
        ));
    }
    if let Some(since) = q.since {
        clauses.push(format!(
            "last_event_at >= {}",
            bind(SqlValue::Integer(since.millis()), &mut args)
        ));
    }
    if let Some(until) = q.until {
        clauses.push(format!(
            "started_at < {}",
            bind(SqlValue::Integer(until.millis()), &mut args)
        ));
    }
    if let Some(cursor) = &q.cursor {
        let (at, id) = cursor
            .split_once(':')
            .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_string())))
            .ok_or_else(|| StoreError::BadCursor(cursor.clone()))?;
        let at = bind(SqlValue::Integer(at), &mut args);
        let id = bind(SqlValue::Text(id), &mut args);
        clauses.push(format!(
            "(last_event_at < {at} OR (last_event_at = {at} AND run_id < {id}))"
        ));
    }
    let limit = q.limit.clamp(1, MAX_RUN_PAGE);
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE {} ORDER BY last_event_at DESC, run_id DESC LIMIT {}",
        clauses.join(" AND "),
        RUN_SCAN_BUDGET + 1
    );
    let cursor_of = |r: &Run| format!("{}:{}", r.last_event_at.millis(), r.run_id);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let (mut items, mut scanned) = (Vec::new(), 0);
    let (mut last_kept, mut last_scanned) = (None, None);
    let mut next_cursor = None;
    while let Some(row) = rows.next()? {
        let run = run_from_row(row)?;
        if scanned == RUN_SCAN_BUDGET {
            // Runs remain but the budget is spent: go on after the last one looked at.
            next_cursor = last_scanned;
            break;
        }
        scanned += 1;
        let key = cursor_of(&run);
        if let Some(item) = keep(run)? {
            if items.len() == limit {
                // One more match exists: the page is full and there is a next one.
                next_cursor = last_kept;
                break;
            }
            items.push(item);
            last_kept = Some(key.clone());
        }
        last_scanned = Some(key);
    }
    Ok(Page { items, next_cursor })
}

/// A run's cost as it stood once its event `seq` was committed: the run's total less the cost
/// of its events committed after `seq`, so a reader behind the writer (the notifier) does not
/// count what it has not seen yet. `None` when the run is unknown.
pub fn run_cost_through(
    conn: &Connection,
    run_id: &str,
    seq: u64,
) -> Result<Option<f64>, StoreError> {
    let total: Option<f64> = conn
        .prepare_cached("SELECT cost_usd FROM runs WHERE run_id = ?1")?
        .query_row([run_id], |r| r.get(0))
        .optional()?;
    let Some(total) = total else { return Ok(None) };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ?1 AND seq > ?2 AND metrics IS NOT NULL"
    ))?;
    let later: f64 = stmt
        .query_map(rusqlite::params![run_id, seq as i64], event_from_row)?
        .map(|e| e.map(|e| crate::aggregate::Usage::of(&e).cost_usd))
        .sum::<rusqlite::Result<f64>>()?;
    Ok(Some(total - later))
}

fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

pub fn get_run(conn: &Connection, run_id: &str) -> Result<Option<RunDetail>, StoreError> {
    let run = conn
        .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"))?
        .query_row([run_id], run_from_row)
        .optional()?;
    let Some(run) = run else { return Ok(None) };
    let sessions = sessions_of_run(conn, run_id)?;
    let mut by_entity_type = BTreeMap::new();
    let mut by_severity = BTreeMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT entity_type, severity, COUNT(*) FROM events WHERE run_id = ?1 GROUP BY entity_type, severity",
    )?;
    let mut rows = stmt.query([run_id])?;
    while let Some(row) = rows.next()? {
        let count: i64 = row.get(2)?;
        if let Some(t) = EntityType::from_code(row.get(0)?) {
            *by_entity_type.entry(t.to_string()).or_insert(0) += count;
        }
        if let Some(s) = Severity::from_code(row.get(1)?) {
            *by_severity.entry(s.to_string()).or_insert(0) += count;
        }
    }
    Ok(Some(RunDetail {
        run,
        sessions,
        by_entity_type,
        by_severity,
    }))
}

/// The run's sessions with `total_*` rolled up from descendants, in start order.
pub fn sessions_of_run(conn: &Connection, run_id: &str) -> Result<Vec<Session>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE run_id = ?1 ORDER BY started_at, session_id"
    ))?;
    let mut sessions = stmt
        .query_map([run_id], session_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    roll_up(&mut sessions);
    Ok(sessions)
}

/// Adds every session's own sums to each of its ancestors' totals. Cycles in bad data are
/// cut by a depth bound.
fn roll_up(sessions: &mut [Session]) {
    let index: HashMap<String, usize> = sessions
        .iter()
        .enumerate()
        .map(|(i, s)| (s.session_id.clone(), i))
        .collect();
    let own: Vec<(f64, f64, f64)> = sessions
        .iter()
        .map(|s| (s.input_tokens, s.output_tokens, s.cost_usd))
        .collect();
    for (i, (input, output, cost)) in own.into_iter().enumerate() {
        let mut parent = sessions[i].parent_session_id.clone();
        let mut hops = 0;
        while let Some(p) = parent.and_then(|p| index.get(&p).copied()) {
            if p == i || hops > 64 {
                break;
            }
            let s = &mut sessions[p];
            s.total_input_tokens += input;
            s.total_output_tokens += output;
            s.total_cost_usd += cost;
            parent = s.parent_session_id.clone();
            hops += 1;
        }
    }
}

/// The tree under a session (the session itself as the root).
pub fn session_tree(
    conn: &Connection,
    session_id: &str,
) -> Result<Option<SessionNode>, StoreError> {
    let run_id: Option<Option<String>> = conn
        .prepare_cached("SELECT run_id FROM sessions WHERE session_id = ?1")?
        .query_row([session_id], |r| r.get(0))
        .optional()?;
    let Some(run_id) = run_id else {
        return Ok(None);
    };
    let mut sessions = match &run_id {
        Some(run) => sessions_of_run(conn, run)?,
        None => Vec::new(),
    };
    // Children may lack a run id: take direct descendants by parent link too.
    let mut frontier = vec![session_id.to_string()];
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE parent_session_id = ?1 OR session_id = ?1"
    ))?;
    while let Some(id) = frontier.pop() {
        for s in stmt.query_map([&id], session_from_row)? {
            let s = s?;
            if !sessions.iter().any(|k| k.session_id == s.session_id) {
                frontier.push(s.session_id.clone());
                sessions.push(s);
            }
        }
        if sessions.len() > 10_000 {
            break;
        }
    }
    // Reset totals before rolling up the merged set.
    for s in &mut sessions {
        s.total_input_tokens = s.input_tokens;
        s.total_output_tokens = s.output_tokens;
        s.total_cost_usd = s.cost_usd;
    }
    roll_up(&mut sessions);
    let mut children: HashMap<String, Vec<Session>> = HashMap::new();
    let mut root = None;
    for s in sessions {
        if s.session_id == session_id {
            root = Some(s);
        } else if let Some(p) = s.parent_session_id.clone() {
            children.entry(p).or_default().push(s);
        }
    }
    fn build(
        session: Session,
        children: &mut HashMap<String, Vec<Session>>,
        depth: usize,
    ) -> SessionNode {
        let kids = if depth > 64 {
            Vec::new()
        } else {
            children.remove(&session.session_id).unwrap_or_default()
        };
        SessionNode {
            session,
            children: kids
                .into_iter()
                .map(|k| build(k, children, depth + 1))
                .collect(),
        }
    }
    Ok(root.map(|r| build(r, &mut children, 0)))
}

/// Events of a run in seq order after `after`.
pub fn timeline(
    conn: &Connection,
    run_id: &str,
    after: u64,
    limit: usize,
) -> Result<Page<Vec<Event>, u64>, StoreError> {
    let limit = limit.clamp(1, 5000);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
    ))?;
    let mut events = stmt
        .query_map(
            rusqlite::params![run_id, after as i64, limit as i64 + 1],
            event_from_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if events.len() > limit {
        events.truncate(limit);
        events.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(Page {
        items: events,
        next_cursor,
    })
}

pub fn get_event(conn: &Connection, seq: u64) -> Result<Option<Event>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?1"
        ))?
        .query_row([seq as i64], event_from_row)
        .optional()?)
}

/// The FTS5 `MATCH` argument for the filter's `q`, valid for any text (`search_text.rs`);
/// `None` when `q` has no word the index can see.
pub fn fts_query(filter: &Filter) -> Option<String> {
    TextQuery::new(filter.q.as_deref().unwrap_or_default()).fts
}

/// The WHERE clause for a filter; `text` is its `q` as built by [`TextQuery`] (`None` leaves
/// full text out). Words the index cannot answer for are checked in memory by the caller.
pub(crate) fn filter_clauses(
    filter: &Filter,
    text: Option<&TextQuery>,
    args: &mut Vec<SqlValue>,
) -> Vec<String> {
    let mut clauses = Vec::new();
    let codes: [(&str, Vec<i64>); 4] = [
        ("source", filter.sources.iter().map(|s| s.code()).collect()),
        (
            "entity_type",
            filter.entity_types.iter().map(|t| t.code()).collect(),
        ),
        ("status", filter.statuses.iter().map(|s| s.code()).collect()),
        (
            "severity",
            filter.severities.iter().map(|s| s.code()).collect(),
        ),
    ];
    for (column, values) in codes {
        if !values.is_empty() {
            clauses.push(in_list(
                column,
                values.into_iter().map(SqlValue::Integer),
                args,
            ));
        }
    }
    let texts = |v: &[String]| v.iter().cloned().map(SqlValue::Text).collect::<Vec<_>>();
    for (column, values) in [
        ("source_event", &filter.source_events),
        ("run_id", &filter.runs),
        ("agent", &filter.agents),
        ("correlation_id", &filter.correlations),
    ] {
        if !values.is_empty() {
            clauses.push(in_list(column, texts(values), args));
        }
    }
    if !filter.sessions.is_empty() {
        let a = in_list("session_id", texts(&filter.sessions), args);
        let b = in_list("parent_session_id", texts(&filter.sessions), args);
        clauses.push(format!("({a} OR {b})"));
    }
    if let Some(since) = filter.since {
        clauses.push(format!(
            "ts >= {}",
            bind(SqlValue::Integer(since.millis()), args)
        ));
    }
    if let Some(until) = filter.until {
        clauses.push(format!(
            "ts < {}",
            bind(SqlValue::Integer(until.millis()), args)
        ));
    }
    if let Some(q) = text.and_then(|t| t.fts.clone()) {
        // The index (its own file, attached as `fts`) trails the commit head by the batch being
        // indexed; events above what it covers are candidates here and are checked in memory
        // by `search`, so a search never misses a stored event.
        let m = bind(SqlValue::Text(q), args);
        clauses.push(format!(
            "(seq IN (SELECT rowid FROM fts.events_fts WHERE events_fts MATCH {m}) OR seq > {UNINDEXED_FROM})"
        ));
    }
    clauses
}

/// The last seq the full-text index covers (0 when it covers nothing).
const UNINDEXED_FROM: &str =
    "COALESCE((SELECT indexed_through FROM fts.fts_state WHERE id = 1), 0)";

/// Most rows one search page reads when some of its words are checked in memory (they may
/// reject most rows): the page then ends early with a cursor, so one request does bounded work
/// however rare its words are.
pub const SEARCH_SCAN_BUDGET: usize = 5_000;

/// Events matching a filter, paged by seq in either direction.
pub fn search(
    conn: &Connection,
    filter: &Filter,
    order: Order,
    cursor: Option<u64>,
    limit: usize,
) -> Result<Page<Vec<Event>, u64>, StoreError> {
    let limit = limit.clamp(1, 5000);
    let text = filter.q.as_deref().map(TextQuery::new);
    let mut args = Vec::new();
    let mut clauses = filter_clauses(filter, text.as_ref(), &mut args);
    let direction = match order {
        Order::Desc => {
            if let Some(before) = cursor {
                clauses.push(format!(
                    "seq < {}",
                    bind(SqlValue::Integer(before as i64), &mut args)
                ));
            }
            "DESC"
        }
        Order::Asc => {
            clauses.push(format!(
                "seq > {}",
                bind(SqlValue::Integer(cursor.unwrap_or(0) as i64), &mut args)
            ));
            "ASC"
        }
    };
    if clauses.is_empty() {
        clauses.push("1".into());
    }
    let has_text = text
        .as_ref()
        .is_some_and(|t| t.fts.is_some() || !t.in_memory.is_empty());
    let in_memory = text.as_ref().filter(|t| !t.in_memory.is_empty());
    // Without text, every row the SQL returns is kept and one row past the page says whether
    // there is a next one. With text, rows may be rejected here: words checked in memory, and
    // every event the index does not cover yet (the SQL returns all of those as candidates),
    // so read on, bounded, to fill the page. Reading only `limit + 1` rows there answered an
    // empty first page while the indexer was a batch behind.
    let scan = if has_text {
        SEARCH_SCAN_BUDGET.max(limit + 1)
    } else {
        limit + 1
    };
    let sql = format!(
        "SELECT {EVENT_COLUMNS}, seq > {UNINDEXED_FROM} FROM events WHERE {} ORDER BY seq {direction} LIMIT {scan}",
        clauses.join(" AND "),
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut items: Vec<Event> = Vec::new();
    let mut scanned = 0;
    let mut last_scanned = None;
    while let Some(row) = rows.next()? {
        let event = event_from_row(row)?;
        let unindexed: bool = row.get(EVENT_COLUMN_COUNT)?;
        scanned += 1;
        last_scanned = Some(event.seq);
        // Not yet indexed: the in-memory text rule decides (the same one live streams use).
        // Indexed: the index decided, except for the words it could not answer for.
        let keep = if has_text && unindexed {
            filter.matches(&event)
        } else if let Some(t) = in_memory {
            t.matches_in_memory(&searchable_text(&event).to_lowercase())
        } else {
            true
        };
        if keep {
            items.push(event);
            if items.len() > limit {
                break;
            }
        }
    }
    // The page may come out shorter than `limit`; `next_cursor` still continues after the
    // last row judged, so nothing is skipped or repeated.
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|e| e.seq)
    } else if scanned == scan {
        last_scanned
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// Replay for live streams: events after `after` up to `head` (inclusive) matching the filter.
pub fn replay(
    conn: &Connection,
    filter: &Filter,
    after: u64,
    head: u64,
    limit: usize,
) -> Result<Vec<Event>, StoreError> {
    let mut f = filter.clone();
    // Full text in replay uses the same in-memory rule as the live path, so both agree.
    f.q = None;
    let mut args = Vec::new();
    let mut clauses = filter_clauses(&f, None, &mut args);
    clauses.push(format!(
        "seq > {}",
        bind(SqlValue::Integer(after as i64), &mut args)
    ));
    clauses.push(format!(
        "seq <= {}",
        bind(SqlValue::Integer(head as i64), &mut args)
    ));
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE {} ORDER BY seq LIMIT {}",
        clauses.join(" AND "),
        limit.max(1)
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let events = stmt
        .query_map(params_from_iter(args), event_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(events)
}

/// The largest seq stored (0 when empty); replay reads up to it.
pub fn head_seq(conn: &Connection) -> Result<u64, StoreError> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| {
            r.get::<_, i64>(0)
        })? as u64,
    )
}

/// Totals since `since`, from the per-minute counters.
pub fn stats(conn: &Connection, since: Timestamp, now: Timestamp) -> Result<Stats, StoreError> {
    let mut out = Stats::default();
    let mut stmt = conn.prepare_cached(
        "SELECT source, entity_type, severity, SUM(events), SUM(errors), SUM(input_tokens), SUM(output_tokens), \
         SUM(cost_usd) FROM stats_minute WHERE minute >= ?1 GROUP BY source, entity_type, severity",
    )?;
    let mut rows = stmt.query([since.millis().div_euclid(60_000)])?;
    while let Some(row) = rows.next()? {
        let events: i64 = row.get(3)?;
        out.total_events += events;
        out.error_events += row.get::<_, i64>(4)?;
        out.total_input_tokens += row.get::<_, f64>(5)?;
        out.total_output_tokens += row.get::<_, f64>(6)?;
        out.total_cost_usd += row.get::<_, f64>(7)?;
        if let Some(s) = Source::from_code(row.get(0)?) {
            *out.by_source.entry(s.to_string()).or_insert(0) += events;
        }
        if let Some(t) = EntityType::from_code(row.get(1)?) {
            *out.by_entity_type.entry(t.to_string()).or_insert(0) += events;
        }
        if let Some(s) = Severity::from_code(row.get(2)?) {
            *out.by_severity.entry(s.to_string()).or_insert(0) += events;
        }
    }
    out.error_rate = if out.total_events > 0 {
        out.error_events as f64 / out.total_events as f64
    } else {
        0.0
    };
    let five_minutes_ago = now.millis() - 5 * 60_000;
    let recent: i64 = conn
        .prepare_cached("SELECT COALESCE(SUM(events), 0) FROM stats_minute WHERE minute >= ?1")?
        .query_row([five_minutes_ago.div_euclid(60_000)], |r| r.get(0))?;
    out.events_per_minute = recent as f64 / 5.0;
    out.active_sessions = conn
        .prepare_cached(
            // A session the liveness sweep made idle is no longer active.
            "SELECT COUNT(*) FROM sessions WHERE last_event_at >= ?1 AND ended_at IS NULL \
             AND liveness_rule IS NULL",
        )?
        .query_row([five_minutes_ago], |r| r.get(0))?;
    Ok(out)
}

/// Most failures (the latest by seq) that incidents cluster per call.
const INCIDENT_FAILURES: i64 = 20_000;
/// Most incidents one call returns: each carries a whole sample event.
pub const MAX_INCIDENTS: usize = 1_000;

/// An incident while failures are folded into it: everything but the sample event, which is
/// read once the incidents to return are known.
struct OpenIncident {
    key: String,
    run_id: Option<String>,
    correlation_id: Option<String>,
    title: String,
    source: Source,
    count: i64,
    first_seen: Timestamp,
    last_seen: Timestamp,
    first_seq: u64,
    last_seq: u64,
}

/// Failures clustered by run, correlation (else entity, else title) and time window.
///
/// Reads only the columns clustering needs, already in time order from SQLite, and folds them
/// one row at a time: memory grows with the number of incidents (at most the latest
/// [`INCIDENT_FAILURES`] failures, a few short strings each), never with payloads. Only the
/// sample events of the incidents returned (at most `limit`, capped at [`MAX_INCIDENTS`]) are
/// read whole. One read transaction, so samples come from the same snapshot.
pub fn incidents(
    conn: &Connection,
    since: Timestamp,
    window_ms: i64,
    limit: usize,
) -> Result<Vec<Incident>, StoreError> {
    let tx = conn.unchecked_transaction()?;
    // The inner query uses the partial index on failures (only failures are read); the outer
    // one keeps those at or after `since` and sorts the narrow rows by time.
    let mut stmt = tx.prepare_cached(
        "SELECT seq, ts, run_id, correlation_id, entity_id, title, source FROM ( \
            SELECT seq, ts, run_id, correlation_id, entity_id, title, source FROM events \
            WHERE (severity = 4 OR status = 6) ORDER BY seq DESC LIMIT ?1) \
         WHERE ts >= ?2 ORDER BY ts, seq",
    )?;
    let mut rows = stmt.query(rusqlite::params![INCIDENT_FAILURES, since.millis()])?;
    let mut open: HashMap<(Option<String>, String), usize> = HashMap::new();
    let mut incidents: Vec<OpenIncident> = Vec::new();
    while let Some(row) = rows.next()? {
        let seq = row.get::<_, i64>(0)? as u64;
        let ts = Timestamp(row.get(1)?);
        let run_id: Option<String> = row.get(2)?;
        let correlation_id: Option<String> = row.get(3)?;
        let entity_id: Option<String> = row.get(4)?;
        let title: String = row.get(5)?;
        let what = correlation_id
            .clone()
            .or(entity_id)
            .unwrap_or_else(|| title.clone());
        let key = (run_id, what);
        match open.get(&key).copied() {
            Some(i) if ts.millis() - incidents[i].last_seen.millis() <= window_ms => {
                let inc = &mut incidents[i];
                inc.count += 1;
                inc.last_seen = ts;
                inc.last_seq = seq;
            }
            _ => {
                incidents.push(OpenIncident {
                    key: format!("{}|{}|{}", key.0.as_deref().unwrap_or("-"), key.1, seq),
                    run_id: key.0.clone(),
                    correlation_id,
                    title,
                    source: source_at(row, 6)?,
                    count: 1,
                    first_seen: ts,
                    last_seen: ts,
                    first_seq: seq,
                    last_seq: seq,
                });
                open.insert(key, incidents.len() - 1);
            }
        }
    }
    drop(rows);
    drop(stmt);
    drop(open);
    incidents.sort_by(|a, b| {
        b.last_seen
            .cmp(&a.last_seen)
            .then(b.last_seq.cmp(&a.last_seq))
    });
    incidents.truncate(limit.clamp(1, MAX_INCIDENTS));
    let mut out = Vec::with_capacity(incidents.len());
    for inc in incidents {
        // The sample is the failure that opened the incident; it is in the same snapshot.
        let Some(sample) = get_event(&tx, inc.first_seq)? else {
            continue;
        };
        out.push(Incident {
            key: inc.key,
            run_id: inc.run_id,
            correlation_id: inc.correlation_id,
            title: inc.title,
            source: inc.source,
            count: inc.count,
            first_seen: inc.first_seen,
            last_seen: inc.last_seen,
            first_seq: inc.first_seq,
            last_seq: inc.last_seq,
            sample,
        });
    }
    Ok(out)
}
