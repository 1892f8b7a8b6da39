//! Derived rows (runs, sessions, per-minute stats) folded from a committed batch.
//!
//! The writer folds a whole batch in memory and then writes one upsert per run, session and
//! stats bucket, so the cost is per distinct key rather than per event. Roll-ups of cost and
//! tokens from child sessions into parents are computed at read time from these per-session
//! sums (see `query::session_tree`), which keeps them right when a parent link arrives late.
//! This module must never read the database: it only builds statements from the batch.

use std::collections::HashMap;

use rusqlite::{Transaction, params};
use sightline_schema::{EntityType, Event, Source, Status};

/// The numbers summed into runs, sessions and stats.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub input_tokens: f64,
    pub output_tokens: f64,
    pub cache_read_tokens: f64,
    pub cache_write_tokens: f64,
    pub cost_usd: f64,
}

impl Usage {
    pub fn of(e: &Event) -> Usage {
        let Some(m) = &e.metrics else {
            return Usage::default();
        };
        let get = |k: &str| m.get(k).and_then(|n| n.as_f64()).unwrap_or(0.0);
        Usage {
            input_tokens: get("input_tokens"),
            output_tokens: get("output_tokens"),
            cache_read_tokens: get("cache_read_tokens"),
            cache_write_tokens: get("cache_write_tokens"),
            cost_usd: get("cost_usd"),
        }
    }

    fn add(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.cost_usd += other.cost_usd;
    }
}

/// How good an event's title is as the title of its run or session (higher wins; the first
/// of the best rank is kept). The user's first prompt says more than "Session started".
fn title_rank(e: &Event, for_session: bool) -> i64 {
    match e.entity_type {
        EntityType::Run | EntityType::Workflow | EntityType::Process => 4,
        EntityType::Prompt => 3,
        EntityType::Session if for_session || e.parent_session_id.is_none() => 2,
        _ => 1,
    }
}

/// What one batch does to one run or session.
#[derive(Debug, Clone)]
pub struct Delta {
    pub source: i64,
    pub agent: Option<String>,
    pub run_id: Option<String>,
    pub parent_session_id: Option<String>,
    pub title: String,
    pub title_rank: i64,
    /// The last explicit status in the batch, and when it was set.
    pub status: Option<(Status, i64)>,
    /// When the hub's liveness sweep set that status: its rule and reason (`liveness.rs`).
    pub note: Option<(String, String)>,
    /// Work happened after the last explicit status (or with none): a blocked or idle entity
    /// is running again.
    pub activity_after_status: bool,
    /// The producer's time of the latest such work: what a reopening is dated by.
    pub activity_at: i64,
    pub started_at: i64,
    pub last_event_at: i64,
    pub last_seq: u64,
    pub events: i64,
    pub errors: i64,
    pub usage: Usage,
}

impl Delta {
    fn new(e: &Event, rank: i64) -> Delta {
        Delta {
            source: e.source.code(),
            agent: e.agent.clone(),
            run_id: e.run_id.clone(),
            parent_session_id: e.parent_session_id.clone(),
            title: e.title.clone(),
            title_rank: rank,
            status: None,
            note: None,
            activity_after_status: false,
            activity_at: i64::MIN,
            started_at: e.ts.millis(),
            last_event_at: e.ts.millis(),
            last_seq: e.seq,
            events: 0,
            errors: 0,
            usage: Usage::default(),
        }
    }

    fn fold(&mut self, e: &Event, usage: Usage, rank: i64, sets_status: bool) {
        if rank > self.title_rank {
            self.title = e.title.clone();
            self.title_rank = rank;
        }
        if self.agent.is_none() {
            self.agent = e.agent.clone();
        }
        if self.run_id.is_none() {
            self.run_id = e.run_id.clone();
        }
        if self.parent_session_id.is_none() {
            self.parent_session_id = e.parent_session_id.clone();
        }
        self.started_at = self.started_at.min(e.ts.millis());
        self.last_event_at = self.last_event_at.max(e.ts.millis());
        self.last_seq = self.last_seq.max(e.seq);
        self.events += 1;
        self.errors += e.is_error() as i64;
        self.usage.add(usage);
        // "After" means by the producer's clock, not by arrival: sources deliver late (a
        // queue flushed at exit, spans exported when they end), and an event from before the
        // last status must neither replace it nor count as work that reopens it.
        let since_status = self.status.is_none_or(|(_, at)| e.ts.millis() >= at);
        match e.status {
            Some(status) if sets_status && since_status => {
                self.status = Some((status, e.ts.millis()));
                self.note = crate::liveness::note_of(e);
                self.activity_after_status = false;
                self.activity_at = i64::MIN;
            }
            Some(Status::Running | Status::Success | Status::Failed)
                if is_activity(e) && since_status =>
            {
                self.activity_after_status = true;
                self.activity_at = self.activity_at.max(e.ts.millis());
                // Work after the sweep's note: the producer is back, the note no longer holds.
                self.note = None;
            }
            _ => {}
        }
    }

    /// The batch's own status (code, whether there is one, and the producer's time it holds
    /// from): its last explicit status, or running from the work that reopened that wait.
    fn resolve_status(&self) -> (Option<i64>, bool, Option<i64>) {
        match (self.status, self.activity_after_status) {
            (Some((Status::Blocked | Status::Idle | Status::Queued, _)), true) => {
                (Some(Status::Running.code()), true, Some(self.activity_at))
            }
            (Some((s, at)), _) => (Some(s.code()), true, Some(at)),
            (None, _) => (None, false, None),
        }
    }

    /// When the work that may reopen a stored wait happened (none: `None`).
    fn reopened_at(&self) -> Option<i64> {
        self.activity_after_status.then_some(self.activity_at)
    }

    fn ended_at(&self) -> Option<i64> {
        match self.status {
            Some((s, at)) if s.is_terminal() && !self.activity_after_status => Some(at),
            _ => None,
        }
    }
}

/// Tool calls, messages and prompts are work: they end a wait.
fn is_activity(e: &Event) -> bool {
    matches!(
        e.entity_type,
        EntityType::Tool
            | EntityType::Message
            | EntityType::Prompt
            | EntityType::Task
            | EntityType::Step
            | EntityType::Call
    )
}

/// Does this event set its run's status? Events about the run itself, and about its root session.
fn sets_run_status(e: &Event) -> bool {
    match e.entity_type {
        EntityType::Run | EntityType::Workflow | EntityType::Process => true,
        EntityType::Session | EntityType::Permission => {
            e.parent_session_id.is_none() && (e.session_id.is_none() || e.session_id == e.run_id)
        }
        _ => false,
    }
}

/// Does this event set its session's status? Events about the session itself; a workflow's
/// own events for the workflow's session; a step's for the step's own session (one that is not
/// its run's root: a step reported inside the workflow's session is work in it, not its end).
fn sets_session_status(e: &Event) -> bool {
    match e.entity_type {
        EntityType::Session
        | EntityType::Permission
        | EntityType::Run
        | EntityType::Process
        | EntityType::Pane
        | EntityType::Workflow => true,
        EntityType::Step => e.session_id.is_some() && e.session_id != e.run_id,
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    events: i64,
    errors: i64,
    input_tokens: f64,
    output_tokens: f64,
    cost_usd: f64,
}

/// The batch's delta for `key`, made on first sight (the key is copied only then: most events
/// of a batch belong to a run already seen in it).
fn delta<'a>(
    map: &'a mut HashMap<String, Delta>,
    key: &str,
    e: &Event,
    rank: i64,
) -> &'a mut Delta {
    if !map.contains_key(key) {
        map.insert(key.to_string(), Delta::new(e, rank));
    }
    map.get_mut(key).expect("inserted above")
}

/// Everything a batch changes outside `events`.
#[derive(Default)]
pub struct BatchAggregates {
    runs: HashMap<String, Delta>,
    sessions: HashMap<String, Delta>,
    stats: HashMap<(i64, i64, i64, i64), Bucket>,
}

impl BatchAggregates {
    /// Folds one newly stored event (with its seq).
    pub fn fold(&mut self, e: &Event) {
        // Read the metrics map once; runs, sessions and stats all sum the same numbers.
        let usage = Usage::of(e);
        if let Some(run_id) = &e.run_id {
            let rank = title_rank(e, false);
            delta(&mut self.runs, run_id, e, rank).fold(e, usage, rank, sets_run_status(e));
        }
        if let Some(session_id) = &e.session_id {
            let rank = title_rank(e, true);
            delta(&mut self.sessions, session_id, e, rank).fold(
                e,
                usage,
                rank,
                sets_session_status(e),
            );
        }
        let bucket = self
            .stats
            .entry((
                e.ts.millis().div_euclid(60_000),
                e.source.code(),
                e.entity_type.code(),
                e.severity.code(),
            ))
            .or_default();
        bucket.events += 1;
        bucket.errors += e.is_error() as i64;
        bucket.input_tokens += usage.input_tokens;
        bucket.output_tokens += usage.output_tokens;
        bucket.cost_usd += usage.cost_usd;
    }

    /// Writes the upserts inside the batch's transaction.
    pub fn write(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let mut new_sessions_per_run: HashMap<&str, i64> = HashMap::new();
        {
            let mut upsert = tx.prepare_cached(UPSERT_SESSION)?;
            for (id, d) in &self.sessions {
                let (status, has_status, status_at) = d.resolve_status();
                let existed: bool = tx
                    .prepare_cached("SELECT 1 FROM sessions WHERE session_id = ?1")?
                    .exists([id])?;
                upsert.execute(params![
                    id,
                    d.run_id,
                    d.parent_session_id,
                    d.agent,
                    d.source,
                    d.title,
                    d.title_rank,
                    status,
                    has_status,
                    d.activity_after_status,
                    d.started_at,
                    d.ended_at(),
                    d.last_event_at,
                    d.last_seq as i64,
                    d.events,
                    d.errors,
                    d.usage.input_tokens,
                    d.usage.output_tokens,
                    d.usage.cache_read_tokens,
                    d.usage.cache_write_tokens,
                    d.usage.cost_usd,
                    status_at,
                    d.reopened_at(),
                    d.note.as_ref().map(|n| n.0.as_str()),
                    d.note.as_ref().map(|n| n.1.as_str()),
                ])?;
                if !existed && let Some(run) = &d.run_id {
                    *new_sessions_per_run.entry(run.as_str()).or_default() += 1;
                }
            }
        }
        {
            let mut upsert = tx.prepare_cached(UPSERT_RUN)?;
            for (id, d) in &self.runs {
                let (status, has_status, status_at) = d.resolve_status();
                upsert.execute(params![
                    id,
                    d.source,
                    d.agent,
                    d.title,
                    d.title_rank,
                    status,
                    has_status,
                    d.activity_after_status,
                    d.started_at,
                    d.ended_at(),
                    d.last_event_at,
                    d.last_seq as i64,
                    d.events,
                    d.errors,
                    new_sessions_per_run.get(id.as_str()).copied().unwrap_or(0),
                    d.usage.input_tokens,
                    d.usage.output_tokens,
                    d.usage.cache_read_tokens,
                    d.usage.cache_write_tokens,
                    d.usage.cost_usd,
                    status_at,
                    d.reopened_at(),
                    d.note.as_ref().map(|n| n.0.as_str()),
                    d.note.as_ref().map(|n| n.1.as_str()),
                ])?;
            }
        }
        // A workflow's end ends every session of it still open (docs/CONTRACT.md §2.5).
        let workflow = Source::Workflow.code();
        crate::workflow::end_open_sessions(
            tx,
            self.runs
                .iter()
                .filter(|(_, d)| d.source == workflow)
                .map(|(id, _)| id.as_str()),
        )?;
        let mut upsert = tx.prepare_cached(UPSERT_STATS)?;
        for ((minute, source, entity_type, severity), b) in &self.stats {
            upsert.execute(params![
                minute,
                source,
                entity_type,
                severity,
                b.events,
                b.errors,
                b.input_tokens,
                b.output_tokens,
                b.cost_usd
            ])?;
        }
        Ok(())
    }
}

// Status rule shared by runs and sessions, by the producer's clock (`status_at`): the batch's
// status (?8, ?9 says whether there is one, from ?22) replaces the stored one unless the stored
// one is newer; otherwise work in the batch (?10, at ?23) turns a stored blocked/idle/queued into
// running unless that wait is newer than the work. A late batch changes neither. ended_at and
// status_at follow the status: set by a terminal one, ended_at cleared when work resumes. The
// liveness note (?24, ?25 for sessions; ?23, ?24 for runs) follows the status too: set when the
// hub's sweep set it, cleared by any status the producer sets and by work that reopens a wait.
const UPSERT_SESSION: &str = "INSERT INTO sessions (session_id, run_id, parent_session_id, agent, source, title, \
    title_rank, status, started_at, ended_at, last_event_at, last_seq, event_count, error_count, input_tokens, \
    output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, status_at, liveness_rule, liveness_reason) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
      CASE WHEN ?9 THEN ?8 WHEN ?10 THEN 2 ELSE NULL END, \
      ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, \
      CASE WHEN ?9 THEN ?22 WHEN ?10 THEN ?23 ELSE NULL END, \
      CASE WHEN ?9 THEN ?24 ELSE NULL END, CASE WHEN ?9 THEN ?25 ELSE NULL END) \
    ON CONFLICT(session_id) DO UPDATE SET \
      run_id = COALESCE(sessions.run_id, excluded.run_id), \
      parent_session_id = COALESCE(sessions.parent_session_id, excluded.parent_session_id), \
      agent = COALESCE(sessions.agent, excluded.agent), \
      title = CASE WHEN excluded.title_rank > sessions.title_rank THEN excluded.title ELSE sessions.title END, \
      title_rank = MAX(sessions.title_rank, excluded.title_rank), \
      status = CASE WHEN ?9 AND (sessions.status_at IS NULL OR ?22 >= sessions.status_at) THEN ?8 \
                    WHEN ?10 AND (sessions.status IS NULL OR sessions.status IN (1, 3, 7)) \
                         AND (sessions.status_at IS NULL OR ?23 >= sessions.status_at) THEN 2 \
                    ELSE sessions.status END, \
      ended_at = CASE WHEN ?9 AND (sessions.status_at IS NULL OR ?22 >= sessions.status_at) THEN ?12 \
                      WHEN ?10 AND sessions.status IN (1, 3, 7) \
                           AND (sessions.status_at IS NULL OR ?23 >= sessions.status_at) THEN NULL \
                      ELSE sessions.ended_at END, \
      status_at = CASE WHEN ?9 AND (sessions.status_at IS NULL OR ?22 >= sessions.status_at) THEN ?22 \
                       WHEN ?10 AND (sessions.status IS NULL OR sessions.status IN (1, 3, 7)) \
                            AND (sessions.status_at IS NULL OR ?23 >= sessions.status_at) THEN ?23 \
                       ELSE sessions.status_at END, \
      liveness_rule = CASE WHEN ?9 AND (sessions.status_at IS NULL OR ?22 >= sessions.status_at) THEN ?24 \
                           WHEN ?10 AND (sessions.status IS NULL OR sessions.status IN (1, 3, 7)) \
                                AND (sessions.status_at IS NULL OR ?23 >= sessions.status_at) THEN NULL \
                           ELSE sessions.liveness_rule END, \
      liveness_reason = CASE WHEN ?9 AND (sessions.status_at IS NULL OR ?22 >= sessions.status_at) THEN ?25 \
                             WHEN ?10 AND (sessions.status IS NULL OR sessions.status IN (1, 3, 7)) \
                                  AND (sessions.status_at IS NULL OR ?23 >= sessions.status_at) THEN NULL \
                             ELSE sessions.liveness_reason END, \
      started_at = MIN(sessions.started_at, excluded.started_at), \
      last_event_at = MAX(sessions.last_event_at, excluded.last_event_at), \
      last_seq = MAX(sessions.last_seq, excluded.last_seq), \
      event_count = sessions.event_count + excluded.event_count, \
      error_count = sessions.error_count + excluded.error_count, \
      input_tokens = sessions.input_tokens + excluded.input_tokens, \
      output_tokens = sessions.output_tokens + excluded.output_tokens, \
      cache_read_tokens = sessions.cache_read_tokens + excluded.cache_read_tokens, \
      cache_write_tokens = sessions.cache_write_tokens + excluded.cache_write_tokens, \
      cost_usd = sessions.cost_usd + excluded.cost_usd";

const UPSERT_RUN: &str = "INSERT INTO runs (run_id, source, agent, title, title_rank, status, started_at, ended_at, \
    last_event_at, last_seq, event_count, error_count, session_count, input_tokens, output_tokens, \
    cache_read_tokens, cache_write_tokens, cost_usd, status_at, liveness_rule, liveness_reason) \
    VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?7 THEN ?6 WHEN ?8 THEN 2 ELSE NULL END, \
      ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, \
      CASE WHEN ?7 THEN ?21 WHEN ?8 THEN ?22 ELSE NULL END, \
      CASE WHEN ?7 THEN ?23 ELSE NULL END, CASE WHEN ?7 THEN ?24 ELSE NULL END) \
    ON CONFLICT(run_id) DO UPDATE SET \
      agent = COALESCE(runs.agent, excluded.agent), \
      title = CASE WHEN excluded.title_rank > runs.title_rank THEN excluded.title ELSE runs.title END, \
      title_rank = MAX(runs.title_rank, excluded.title_rank), \
      status = CASE WHEN ?7 AND (runs.status_at IS NULL OR ?21 >= runs.status_at) THEN ?6 \
                    WHEN ?8 AND (runs.status IS NULL OR runs.status IN (1, 3, 7)) \
                         AND (runs.status_at IS NULL OR ?22 >= runs.status_at) THEN 2 \
                    ELSE runs.status END, \
      ended_at = CASE WHEN ?7 AND (runs.status_at IS NULL OR ?21 >= runs.status_at) THEN ?10 \
                      WHEN ?8 AND runs.status IN (1, 3, 7) \
                           AND (runs.status_at IS NULL OR ?22 >= runs.status_at) THEN NULL \
                      ELSE runs.ended_at END, \
      status_at = CASE WHEN ?7 AND (runs.status_at IS NULL OR ?21 >= runs.status_at) THEN ?21 \
                       WHEN ?8 AND (runs.status IS NULL OR runs.status IN (1, 3, 7)) \
                            AND (runs.status_at IS NULL OR ?22 >= runs.status_at) THEN ?22 \
                       ELSE runs.status_at END, \
      liveness_rule = CASE WHEN ?7 AND (runs.status_at IS NULL OR ?21 >= runs.status_at) THEN ?23 \
                           WHEN ?8 AND (runs.status IS NULL OR runs.status IN (1, 3, 7)) \
                                AND (runs.status_at IS NULL OR ?22 >= runs.status_at) THEN NULL \
                           ELSE runs.liveness_rule END, \
      liveness_reason = CASE WHEN ?7 AND (runs.status_at IS NULL OR ?21 >= runs.status_at) THEN ?24 \
                             WHEN ?8 AND (runs.status IS NULL OR runs.status IN (1, 3, 7)) \
                                  AND (runs.status_at IS NULL OR ?22 >= runs.status_at) THEN NULL \
                             ELSE runs.liveness_reason END, \
      started_at = MIN(runs.started_at, excluded.started_at), \
      last_event_at = MAX(runs.last_event_at, excluded.last_event_at), \
      last_seq = MAX(runs.last_seq, excluded.last_seq), \
      event_count = runs.event_count + excluded.event_count, \
      error_count = runs.error_count + excluded.error_count, \
      session_count = runs.session_count + excluded.session_count, \
      input_tokens = runs.input_tokens + excluded.input_tokens, \
      output_tokens = runs.output_tokens + excluded.output_tokens, \
      cache_read_tokens = runs.cache_read_tokens + excluded.cache_read_tokens, \
      cache_write_tokens = runs.cache_write_tokens + excluded.cache_write_tokens, \
      cost_usd = runs.cost_usd + excluded.cost_usd";

const UPSERT_STATS: &str = "INSERT INTO stats_minute (minute, source, entity_type, severity, events, errors, \
    input_tokens, output_tokens, cost_usd) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
    ON CONFLICT(minute, source, entity_type, severity) DO UPDATE SET \
      events = events + excluded.events, errors = errors + excluded.errors, \
      input_tokens = input_tokens + excluded.input_tokens, \
      output_tokens = output_tokens + excluded.output_tokens, cost_usd = cost_usd + excluded.cost_usd";
