//! Derived rows (runs, sessions, per-minute stats) folded from a committed batch.
//!
//! The writer folds a whole batch in memory and then writes one upsert per run, session and
//! stats bucket, so the cost is per distinct key rather than per event. Roll-ups of cost and
//! tokens from child sessions into parents are computed at read time from these per-session
//! sums (see `query::session_tree`), which keeps them right when a parent link arrives late.
//! This module must never read the database: it only builds statements from the batch.

use std::collections::HashMap;
use std::sync::LazyLock;

use rusqlite::types::Value;
use rusqlite::{Transaction, params, params_from_iter};
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
    /// The first working directory the batch's events name (`live::cwd_of`); a run keeps the
    /// first it is told, so listing runs with their project reads a column, not events.
    pub cwd: Option<String>,
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
            cwd: None,
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
        if self.cwd.is_none() {
            self.cwd = crate::live::cwd_of(e);
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
        // At the same millisecond an end stands: a start sent after its end (same-ms runs are
        // common with fast producers) must not reopen it.
        let since_status = self.status.is_none_or(|(stored, at)| {
            let ts = e.ts.millis();
            ts > at
                || (ts == at
                    && (!stored.is_terminal() || e.status.is_some_and(Status::is_terminal)))
        });
        match e.status {
            Some(status) if sets_status && since_status => {
                self.status = Some((status, e.ts.millis()));
                self.note = crate::liveness::note_of(e);
                self.activity_after_status = false;
                self.activity_at = i64::MIN;
            }
            // Work never reopens an end (the stored rule does not either): an OTLP root span
            // dated by its start ends its run although its children are dated after it.
            Some(Status::Running | Status::Success | Status::Failed)
                if is_activity(e)
                    && since_status
                    && !self.status.is_some_and(|(s, _)| s.is_terminal()) =>
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

    /// What both upserts bind after their keys, in their order: the title, the status rule's
    /// inputs, times and counts; then `new_sessions` (a run's only), the usage, and the status
    /// rule's times and liveness note.
    fn values(&self, new_sessions: Option<i64>) -> Vec<Value> {
        let (status, has_status, status_at) = self.resolve_status();
        let u = &self.usage;
        let mut values = vec![
            Value::from(self.title.clone()),
            Value::from(self.title_rank),
            Value::from(status),
            Value::from(has_status),
            Value::from(self.activity_after_status),
            Value::from(self.started_at),
            Value::from(self.ended_at()),
            Value::from(self.last_event_at),
            Value::from(self.last_seq as i64),
            Value::from(self.events),
            Value::from(self.errors),
        ];
        values.extend(new_sessions.map(Value::from));
        values.extend([
            Value::from(u.input_tokens),
            Value::from(u.output_tokens),
            Value::from(u.cache_read_tokens),
            Value::from(u.cache_write_tokens),
            Value::from(u.cost_usd),
            Value::from(status_at),
            Value::from(self.reopened_at()),
            Value::from(self.note.as_ref().map(|n| n.0.clone())),
            Value::from(self.note.as_ref().map(|n| n.1.clone())),
        ]);
        values
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
            let mut upsert = tx.prepare_cached(&UPSERT_SESSION)?;
            for (id, d) in &self.sessions {
                let existed: bool = tx
                    .prepare_cached("SELECT 1 FROM sessions WHERE session_id = ?1")?
                    .exists([id])?;
                let keys = [
                    Value::from(id.clone()),
                    Value::from(d.run_id.clone()),
                    Value::from(d.parent_session_id.clone()),
                    Value::from(d.agent.clone()),
                    Value::from(d.source),
                ];
                upsert.execute(params_from_iter(keys.into_iter().chain(d.values(None))))?;
                if !existed && let Some(run) = &d.run_id {
                    *new_sessions_per_run.entry(run.as_str()).or_default() += 1;
                }
            }
        }
        {
            let mut upsert = tx.prepare_cached(&UPSERT_RUN)?;
            for (id, d) in &self.runs {
                let keys = [
                    Value::from(id.clone()),
                    Value::from(d.source),
                    Value::from(d.agent.clone()),
                ];
                let new_sessions = new_sessions_per_run.get(id.as_str()).copied().unwrap_or(0);
                upsert.execute(params_from_iter(
                    keys.into_iter().chain(d.values(Some(new_sessions))),
                ))?;
                if let Some(cwd) = &d.cwd {
                    tx.prepare_cached(
                        "UPDATE runs SET cwd = ?2 WHERE run_id = ?1 AND cwd IS NULL",
                    )?
                    .execute(rusqlite::params![id, cwd])?;
                }
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
// status (`status`; `has_status` says whether there is one, from `status_at`) replaces the
// stored one unless the stored one is newer; otherwise work in the batch (`work`, at `work_at`)
// turns a stored blocked/idle/queued into running unless that wait is newer than the work. A
// late batch changes neither. ended_at and status_at follow the status: set by a terminal one,
// ended_at cleared when work resumes. The liveness note (`rule`, `reason`) follows the status
// too: set when the hub's sweep set it, cleared by any status the producer sets and by work
// that reopens a wait. A running that work alone implied (no status was ever sent, or none
// stored) has no status time: the first status the producer sends replaces it whatever its
// time, as it would in one batch. So the batch boundary does not decide the outcome: an OTLP
// root span (dated by its start, sent after its children) ends its run in either case. The
// rule is written once, below, for both tables.

/// The codes of the statuses that end an entity, for SQL (`5, 6, 8`), from `Status::is_terminal`.
fn terminal_codes() -> String {
    (0..=u8::MAX as i64)
        .filter_map(Status::from_code)
        .filter(|s| s.is_terminal())
        .map(|s| s.code().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where the status rule's values are in one upsert's parameters (`?N`).
struct StatusParams {
    status: u8,
    has_status: u8,
    work: u8,
    ended_at: u8,
    status_at: u8,
    work_at: u8,
    rule: u8,
    reason: u8,
}

const SESSION_STATUS: StatusParams = StatusParams {
    status: 8,
    has_status: 9,
    work: 10,
    ended_at: 12,
    status_at: 22,
    work_at: 23,
    rule: 24,
    reason: 25,
};

const RUN_STATUS: StatusParams = StatusParams {
    status: 6,
    has_status: 7,
    work: 8,
    ended_at: 10,
    status_at: 21,
    work_at: 22,
    rule: 23,
    reason: 24,
};

impl StatusParams {
    /// The inserted row's status.
    fn insert_status(&self) -> String {
        let p = self;
        format!(
            "CASE WHEN ?{} THEN ?{} WHEN ?{} THEN 2 ELSE NULL END",
            p.has_status, p.status, p.work
        )
    }

    /// The inserted row's status_at, liveness_rule and liveness_reason.
    fn insert_status_at_and_note(&self) -> String {
        let p = self;
        format!(
            "CASE WHEN ?{has} THEN ?{} ELSE NULL END, \
             CASE WHEN ?{has} THEN ?{} ELSE NULL END, CASE WHEN ?{has} THEN ?{} ELSE NULL END",
            p.status_at,
            p.rule,
            p.reason,
            has = p.has_status
        )
    }

    /// The `DO UPDATE SET` columns both tables share: the status rule, then the times and the
    /// sums of `counted` that a batch adds to the stored row of table `t`.
    fn updates(&self, t: &str, counted: &[&str]) -> String {
        let p = self;
        // Newer by the producer's clock; at the same millisecond a stored end stands against
        // a status that is not one (the batch fold's rule, `Delta::fold`).
        let terminal = terminal_codes();
        let newer = format!(
            "?{has} AND ({t}.status_at IS NULL OR ?{at} > {t}.status_at OR (?{at} = {t}.status_at \
             AND NOT ({t}.status IN ({terminal}) AND ?{status} NOT IN ({terminal}))))",
            has = p.has_status,
            at = p.status_at,
            status = p.status,
        );
        let waited = format!("{t}.status IN (1, 3, 7)");
        let after_wait = format!("({t}.status_at IS NULL OR ?{} >= {t}.status_at)", p.work_at);
        let reopens = format!(
            "?{} AND ({t}.status IS NULL OR {waited}) AND {after_wait}",
            p.work
        );
        // ended_at is cleared only where there was a wait to reopen (a NULL status keeps it).
        let reopens_ended = format!("?{} AND {waited} AND {after_wait}", p.work);
        let mut sets = vec![
            format!(
                "status = CASE WHEN {newer} THEN ?{} WHEN {reopens} THEN 2 ELSE {t}.status END",
                p.status
            ),
            format!(
                "ended_at = CASE WHEN {newer} THEN ?{} WHEN {reopens_ended} THEN NULL ELSE {t}.ended_at END",
                p.ended_at
            ),
            format!(
                "status_at = CASE WHEN {newer} THEN ?{} WHEN {reopens_ended} THEN ?{} ELSE {t}.status_at END",
                p.status_at, p.work_at
            ),
            format!(
                "liveness_rule = CASE WHEN {newer} THEN ?{} WHEN {reopens} THEN NULL ELSE {t}.liveness_rule END",
                p.rule
            ),
            format!(
                "liveness_reason = CASE WHEN {newer} THEN ?{} WHEN {reopens} THEN NULL ELSE {t}.liveness_reason END",
                p.reason
            ),
            format!("started_at = MIN({t}.started_at, excluded.started_at)"),
            format!("last_event_at = MAX({t}.last_event_at, excluded.last_event_at)"),
            format!("last_seq = MAX({t}.last_seq, excluded.last_seq)"),
        ];
        sets.extend(
            counted
                .iter()
                .map(|c| format!("{c} = {t}.{c} + excluded.{c}")),
        );
        sets.join(", ")
    }
}

static UPSERT_SESSION: LazyLock<String> = LazyLock::new(|| {
    let p = SESSION_STATUS;
    format!(
        "INSERT INTO sessions (session_id, run_id, parent_session_id, agent, source, title, \
         title_rank, status, started_at, ended_at, last_event_at, last_seq, event_count, error_count, input_tokens, \
         output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, status_at, liveness_rule, liveness_reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, {}, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, {}) \
         ON CONFLICT(session_id) DO UPDATE SET \
           run_id = COALESCE(sessions.run_id, excluded.run_id), \
           parent_session_id = COALESCE(sessions.parent_session_id, excluded.parent_session_id), \
           agent = COALESCE(sessions.agent, excluded.agent), \
           title = CASE WHEN excluded.title_rank > sessions.title_rank THEN excluded.title ELSE sessions.title END, \
           title_rank = MAX(sessions.title_rank, excluded.title_rank), {}",
        p.insert_status(),
        p.insert_status_at_and_note(),
        p.updates("sessions", SESSION_SUMS)
    )
});

static UPSERT_RUN: LazyLock<String> = LazyLock::new(|| {
    let p = RUN_STATUS;
    format!(
        "INSERT INTO runs (run_id, source, agent, title, title_rank, status, started_at, ended_at, \
         last_event_at, last_seq, event_count, error_count, session_count, input_tokens, output_tokens, \
         cache_read_tokens, cache_write_tokens, cost_usd, status_at, liveness_rule, liveness_reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, {}, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, {}) \
         ON CONFLICT(run_id) DO UPDATE SET \
           agent = COALESCE(runs.agent, excluded.agent), \
           title = CASE WHEN excluded.title_rank > runs.title_rank THEN excluded.title ELSE runs.title END, \
           title_rank = MAX(runs.title_rank, excluded.title_rank), {}",
        p.insert_status(),
        p.insert_status_at_and_note(),
        p.updates("runs", &RUN_SUMS)
    )
});

/// The columns a batch adds to a session's stored sums.
const SESSION_SUMS: &[&str] = &[
    "event_count",
    "error_count",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
];

/// A run's: a session's, and how many sessions it has.
const RUN_SUMS: [&str; 8] = [
    "event_count",
    "error_count",
    "session_count",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
];

const UPSERT_STATS: &str = "INSERT INTO stats_minute (minute, source, entity_type, severity, events, errors, \
    input_tokens, output_tokens, cost_usd) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
    ON CONFLICT(minute, source, entity_type, severity) DO UPDATE SET \
      events = events + excluded.events, errors = errors + excluded.errors, \
      input_tokens = input_tokens + excluded.input_tokens, \
      output_tokens = output_tokens + excluded.output_tokens, cost_usd = cost_usd + excluded.cost_usd";
