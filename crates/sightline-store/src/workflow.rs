//! Workflow executions as a whole (docs/CONTRACT.md §3.5): the end of a workflow ends every
//! session of its run, and a workflow's steps, their attempts and its one progress figure are
//! read from its stored `step` and `workflow` events, for the list and the detail alike.
//!
//! Progress is computed here and nowhere else, so the dashboard's list card and detail cannot
//! disagree. This module must never invent a step or an attempt the events do not show, and
//! never hide one: what it leaves out past its bounds it counts (`steps_omitted`,
//! `attempts_omitted`).

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use sightline_schema::{EntityType, Event, Source, Status, Timestamp};

use crate::StoreError;
use crate::query::{self, Page, RUN_COLUMNS, Run, RunQuery, run_from_row};
use crate::rows::{EVENT_COLUMNS, event_from_row};

/// Steps kept per workflow. Each is a few hundred bytes; a workflow with more steps than this
/// is counted past it (`steps_omitted`) rather than held.
pub const MAX_STEPS: usize = 5_000;
/// Attempts listed per step (the newest); `attempt_count` stays exact.
pub const MAX_ATTEMPTS: usize = 100;
/// Workflows per page of the list.
pub const MAX_PAGE: usize = 200;

/// The statuses that end a step or a workflow.
const TERMINAL: [Status; 3] = [Status::Success, Status::Failed, Status::Cancelled];

/// Ends the open sessions of the workflow runs in `runs` that have ended: a session not yet in a
/// terminal status takes the workflow's (a step still running when its workflow failed failed
/// with it), unless the session's own status is newer than the workflow's end. Runs inside the
/// batch's transaction, after the runs and sessions are written, so a late step update that
/// reopened a session of an ended workflow is ended again in the same commit. The status is the
/// producer's (the workflow's end), so a liveness note the hub's sweep left is cleared with it.
pub(crate) fn end_open_sessions<'a>(
    tx: &Transaction<'_>,
    runs: impl IntoIterator<Item = &'a str>,
) -> rusqlite::Result<()> {
    let [a, b, c] = TERMINAL.map(Status::code);
    let mut update = tx.prepare_cached(
        "UPDATE sessions SET status = r.status, ended_at = r.ended_at, status_at = r.status_at, \
           liveness_rule = NULL, liveness_reason = NULL \
         FROM (SELECT status, ended_at, status_at FROM runs \
               WHERE run_id = ?1 AND source = ?2 AND status IN (?3, ?4, ?5)) AS r \
         WHERE sessions.run_id = ?1 \
           AND (sessions.status IS NULL OR sessions.status NOT IN (?3, ?4, ?5)) \
           AND (sessions.status_at IS NULL OR r.status_at IS NULL OR sessions.status_at <= r.status_at)",
    )?;
    for run in runs {
        update.execute(params![run, Source::Workflow.code(), a, b, c])?;
    }
    Ok(())
}

/// One attempt at a step.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Attempt {
    /// 1 for the first; the producer's `data.attempt` when it sends one, else counted: a step
    /// that failed, was cancelled or said `retry` and then runs again starts the next attempt.
    pub attempt: u64,
    pub status: Option<Status>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// The producer's duration when it sent one, else from start to end.
    pub duration_ms: Option<f64>,
    /// What the attempt's failure said (the error, else the failing update's title).
    pub error: Option<String>,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// One step of a workflow, with its attempts.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Step {
    pub name: String,
    /// The last attempt's status; a step left open when its workflow ended takes the workflow's.
    pub status: Option<Status>,
    /// The step's own latest progress (0–100) in its last attempt; 100 once it succeeded.
    pub progress: Option<f64>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// The last attempt's duration.
    pub duration_ms: Option<f64>,
    /// Every attempt counted, listed or not.
    pub attempt_count: u64,
    /// The newest attempts, oldest first (at most 100).
    pub attempts: Vec<Attempt>,
    pub attempts_omitted: u64,
    /// The step's last event, for a link to it.
    pub last_seq: u64,
}

/// How far a workflow got: one figure, the same wherever it is shown.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Progress {
    /// Steps whose last attempt succeeded.
    pub steps_done: u64,
    /// Steps the workflow has reported so far (a step not yet reported is not known).
    pub steps_known: u64,
    /// 0–100: steps done / steps known when any step is known; else the workflow's own latest
    /// `progress`; 100 when it succeeded; else 0.
    pub percent: f64,
    /// Where `percent` came from: `steps`, `reported`, `ended` or `none`.
    pub basis: &'static str,
    /// False past 10,000 distinct steps (5,000 listed and 5,000 more counted by name): the
    /// counts are then lower bounds.
    pub exact: bool,
}

/// A workflow execution: its run row, its progress and its steps in the order first seen.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Workflow {
    pub run: Run,
    pub progress: Progress,
    pub steps: Vec<Step>,
    /// Steps past the first 5,000, counted and not listed.
    pub steps_omitted: u64,
    /// Steps that took more than one attempt.
    pub steps_retried: u64,
}

/// A page of workflows, newest activity first.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WorkflowsPage {
    pub workflows: Vec<Workflow>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug)]
struct StepState {
    step: Step,
    /// The current attempt has ended (failed, cancelled, success or `retry`).
    closed: bool,
}

/// Folds a workflow's `step` and `workflow` events (in seq order) into steps and progress.
#[derive(Debug, Default)]
pub struct Folder {
    steps: Vec<StepState>,
    index: HashMap<String, usize>,
    steps_omitted: u64,
    omitted_names: HashSet<String>,
    inexact: bool,
    reported: Option<f64>,
}

impl Folder {
    pub fn fold(&mut self, e: &Event) {
        match e.entity_type {
            EntityType::Workflow => {
                if let Some(p) = e.metric("progress") {
                    self.reported = Some(p.clamp(0.0, 100.0));
                }
            }
            EntityType::Step => self.fold_step(e),
            _ => {}
        }
    }

    fn fold_step(&mut self, e: &Event) {
        let name = e.entity_id.clone().unwrap_or_else(|| e.title.clone());
        let i = match self.index.get(&name) {
            Some(i) => *i,
            None if self.steps.len() >= MAX_STEPS => {
                if self.omitted_names.len() < MAX_STEPS {
                    if self.omitted_names.insert(name) {
                        self.steps_omitted += 1;
                    }
                } else if !self.omitted_names.contains(&name) {
                    // Past both bounds a new name cannot be told from a seen one.
                    self.inexact = true;
                }
                return;
            }
            None => {
                self.index.insert(name.clone(), self.steps.len());
                self.steps.push(StepState {
                    step: Step {
                        name,
                        status: None,
                        progress: None,
                        started_at: e.ts,
                        ended_at: None,
                        duration_ms: None,
                        attempt_count: 0,
                        attempts: Vec::new(),
                        attempts_omitted: 0,
                        last_seq: e.seq,
                    },
                    closed: false,
                });
                self.steps.len() - 1
            }
        };
        let state = &mut self.steps[i];
        let s = &mut state.step;
        s.last_seq = s.last_seq.max(e.seq);
        let told = e
            .metric("attempt")
            .filter(|n| *n >= 1.0 && n.fract() == 0.0)
            .map(|n| n as u64);
        let current = s.attempts.last().map(|a| a.attempt);
        // Which attempt this update belongs to: the one it names, else the current one, or the
        // next when the current has ended and the step runs again.
        // A `progress` update says how far, not that the step started again: it never opens
        // an attempt nor changes an ended one's status (the source marks it `running`).
        let progress_only = e.source_event == "progress";
        let number = match (told, current) {
            (Some(n), _) => n,
            (None, None) => 1,
            (None, Some(c)) if state.closed && !progress_only && reopens(e.status) => c + 1,
            (None, Some(c)) => c,
        };
        let at = match s.attempts.iter().rposition(|a| a.attempt == number) {
            Some(at) => at,
            None => {
                s.attempt_count += 1;
                s.attempts.push(Attempt {
                    attempt: number,
                    status: None,
                    started_at: e.ts,
                    ended_at: None,
                    duration_ms: None,
                    error: None,
                    first_seq: e.seq,
                    last_seq: e.seq,
                });
                s.progress = None;
                if s.attempts.len() > MAX_ATTEMPTS {
                    s.attempts.remove(0);
                    s.attempts_omitted += 1;
                }
                s.attempts.len() - 1
            }
        };
        let latest = at + 1 == s.attempts.len();
        let a = &mut s.attempts[at];
        a.last_seq = a.last_seq.max(e.seq);
        a.started_at = Timestamp(a.started_at.millis().min(e.ts.millis()));
        // `retry` after a failure announces the next attempt; it does not rewrite how this one
        // ended.
        let ended = a.status.is_some_and(|st| TERMINAL.contains(&st));
        if let Some(status) = e
            .status
            .filter(|st| !(ended && (*st == Status::Retry || progress_only)))
        {
            a.status = Some(status);
            if TERMINAL.contains(&status) || status == Status::Retry {
                a.ended_at = Some(e.ts);
                a.duration_ms = e
                    .duration_ms
                    .as_ref()
                    .and_then(|d| d.as_f64())
                    .or(Some((e.ts.millis() - a.started_at.millis()).max(0) as f64));
            } else {
                a.ended_at = None;
                a.duration_ms = None;
            }
        }
        if e.is_error() && a.error.is_none() {
            a.error = Some(e.summary.clone().unwrap_or_else(|| e.title.clone()));
        }
        if latest {
            state.closed = a.ended_at.is_some();
            if let Some(p) = e.metric("progress") {
                s.progress = Some(p.clamp(0.0, 100.0));
            }
        }
    }

    /// The workflow as of these events, for `run` (whose status ends any step left open).
    pub fn finish(self, run: Run) -> Workflow {
        let (progress, steps, steps_omitted, steps_retried) = self.settle(run.status, run.ended_at);
        Workflow {
            run,
            progress,
            steps,
            steps_omitted,
            steps_retried,
        }
    }

    /// Steps and progress given the run's status and end: (progress, steps, omitted, retried).
    fn settle(
        self,
        run_status: Option<Status>,
        run_ended_at: Option<Timestamp>,
    ) -> (Progress, Vec<Step>, u64, u64) {
        let ended = run_status.filter(|s| TERMINAL.contains(s));
        let mut steps: Vec<Step> = self
            .steps
            .into_iter()
            .map(|state| {
                let mut s = state.step;
                // Named attempts may arrive out of order; the last is the highest number.
                s.attempts.sort_by_key(|a| a.attempt);
                if let Some(last) = s.attempts.last_mut() {
                    if let Some(end) = ended
                        && !last.status.is_some_and(|st| TERMINAL.contains(&st))
                    {
                        // The workflow's end ends the step, as it ends the step's session.
                        last.status = Some(end);
                        if last.ended_at.is_none() {
                            last.ended_at = run_ended_at;
                            last.duration_ms = run_ended_at
                                .map(|t| (t.millis() - last.started_at.millis()).max(0) as f64);
                        }
                    }
                    s.status = last.status;
                    s.ended_at = last.ended_at;
                    s.duration_ms = last.duration_ms;
                }
                if s.status == Some(Status::Success) {
                    s.progress = Some(100.0);
                }
                s
            })
            .collect();
        steps.shrink_to_fit();
        let known = steps.len() as u64 + self.steps_omitted;
        let done = steps
            .iter()
            .filter(|s| s.status == Some(Status::Success))
            .count() as u64;
        let (percent, basis) = if known > 0 {
            (done as f64 * 100.0 / known as f64, "steps")
        } else if run_status == Some(Status::Success) {
            (100.0, "ended")
        } else if let Some(p) = self.reported {
            (p, "reported")
        } else {
            (0.0, "none")
        };
        let steps_retried = steps.iter().filter(|s| s.attempt_count > 1).count() as u64;
        let progress = Progress {
            steps_done: done,
            steps_known: known,
            percent,
            basis,
            exact: !self.inexact,
        };
        (progress, steps, self.steps_omitted, steps_retried)
    }
}

/// Does an update with this status start a new attempt after the last one ended?
fn reopens(status: Option<Status>) -> bool {
    matches!(
        status,
        Some(Status::Running | Status::Queued | Status::Blocked) | None
    )
}

/// One workflow, read from its run row and its `step` and `workflow` events; `None` when no
/// run has that id.
pub fn workflow(conn: &Connection, run_id: &str) -> Result<Option<Workflow>, StoreError> {
    let run = conn
        .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"))?
        .query_row([run_id], run_from_row)
        .optional()?;
    run.map(|run| fold_run(conn, run)).transpose()
}

/// Reads one run's `step` and `workflow` events into its workflow.
fn fold_run(conn: &Connection, run: Run) -> Result<Workflow, StoreError> {
    let mut folder = Folder::default();
    // The run's index (events_run) finds its events; only these two types are decoded.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ?1 AND entity_type IN (?2, ?3) ORDER BY seq"
    ))?;
    let rows = stmt.query_map(
        params![
            run.run_id,
            EntityType::Step.code(),
            EntityType::Workflow.code()
        ],
        event_from_row,
    )?;
    for e in rows {
        folder.fold(&e?);
    }
    Ok(folder.finish(run))
}

/// Workflow runs (source `workflow`), newest activity first, each with its steps and progress.
pub fn workflows(
    conn: &Connection,
    limit: usize,
    cursor: Option<String>,
) -> Result<Page<Vec<Workflow>, String>, StoreError> {
    let page = query::list_runs(
        conn,
        &RunQuery {
            sources: vec![Source::Workflow],
            limit: limit.clamp(1, MAX_PAGE),
            cursor,
            ..RunQuery::default()
        },
    )?;
    let mut items = Vec::with_capacity(page.items.len());
    for run in page.items {
        items.push(fold_run(conn, run)?);
    }
    Ok(Page {
        items,
        next_cursor: page.next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use sightline_schema::parse_event;

    const T: i64 = 1_795_255_200_000;

    fn step(
        seq: u64,
        at: i64,
        kind: &str,
        name: &str,
        status: &str,
        attempt: Option<u64>,
    ) -> Event {
        let mut metrics = serde_json::Map::new();
        if let Some(n) = attempt {
            metrics.insert("attempt".into(), json!(n));
        }
        let raw = json!({"source": "workflow", "source_event": kind, "run_id": "wf",
            "session_id": format!("wf/{name}"), "entity_type": "step", "entity_id": name,
            "status": status, "title": name, "ts": Timestamp(T + at).to_string(),
            "metrics": metrics});
        let mut e = parse_event(raw.to_string().as_bytes(), Timestamp(T + 1_000_000)).unwrap();
        e.seq = seq;
        e
    }

    struct Settled {
        progress: Progress,
        steps: Vec<Step>,
    }

    fn settle(f: Folder, status: Option<Status>) -> Settled {
        let (progress, steps, _, _) = f.settle(status, Some(Timestamp(T + 10_000)));
        Settled { progress, steps }
    }

    #[test]
    fn a_progress_update_after_the_end_opens_no_attempt() {
        let mut f = Folder::default();
        f.fold(&step(1, 0, "status", "a", "running", None));
        f.fold(&step(2, 10, "status", "a", "success", None));
        f.fold(&step(3, 20, "progress", "a", "running", None));
        let w = settle(f, None);
        assert_eq!(w.steps[0].attempt_count, 1);
        assert_eq!(w.steps[0].status, Some(Status::Success));
        assert_eq!(w.progress.percent, 100.0);
    }

    #[test]
    fn named_attempts_arrive_in_any_order() {
        let mut f = Folder::default();
        f.fold(&step(1, 50, "status", "a", "running", Some(2)));
        f.fold(&step(2, 0, "error", "a", "failed", Some(1)));
        f.fold(&step(3, 60, "status", "a", "success", Some(2)));
        let w = settle(f, Some(Status::Success));
        let s = &w.steps[0];
        assert_eq!(s.attempt_count, 2);
        assert_eq!(s.status, Some(Status::Success), "{s:?}");
    }

    #[test]
    fn steps_past_the_bounds_are_counted_then_marked_inexact() {
        let mut f = Folder::default();
        for i in 0..2 * MAX_STEPS as u64 {
            f.fold(&step(i + 1, 0, "status", &format!("s{i}"), "success", None));
        }
        // A step seen again past the list is not counted twice.
        f.fold(&step(1_000_000, 0, "status", "s9999", "success", None));
        let (progress, steps, omitted, _) = f.settle(None, None);
        assert_eq!(steps.len(), MAX_STEPS);
        assert_eq!(omitted, MAX_STEPS as u64);
        assert_eq!(progress.steps_known, 2 * MAX_STEPS as u64);
        assert!(progress.exact);
        let mut f = Folder::default();
        for i in 0..2 * MAX_STEPS as u64 + 1 {
            f.fold(&step(i + 1, 0, "status", &format!("s{i}"), "success", None));
        }
        assert!(
            !f.settle(None, None).0.exact,
            "past both bounds the counts are lower bounds"
        );
    }

    proptest! {
        /// Any sequence of step updates folds into figures that hold together: progress within
        /// 0–100, done ≤ known, every attempt counted, none listed twice.
        #[test]
        fn any_updates_fold_consistently(
            updates in prop::collection::vec((
                0usize..4,
                prop::sample::select(vec!["status", "progress", "error"]),
                prop::sample::select(vec!["queued", "running", "retry", "success", "failed", "cancelled", "blocked"]),
                prop::option::of(1u64..5),
                -5_000i64..5_000,
            ), 0..60),
            end in prop::option::of(prop::sample::select(vec![Status::Success, Status::Failed, Status::Cancelled, Status::Running])),
        ) {
            let mut f = Folder::default();
            for (i, (name, kind, status, attempt, at)) in updates.iter().enumerate() {
                f.fold(&step(i as u64 + 1, *at, kind, &format!("s{name}"), status, *attempt));
            }
            let w = settle(f, end);
            prop_assert!((0.0..=100.0).contains(&w.progress.percent));
            prop_assert!(w.progress.steps_done <= w.progress.steps_known);
            for s in &w.steps {
                prop_assert!(s.attempt_count as usize >= s.attempts.len());
                let mut numbers: Vec<u64> = s.attempts.iter().map(|a| a.attempt).collect();
                prop_assert!(numbers.is_sorted());
                numbers.dedup();
                prop_assert_eq!(numbers.len(), s.attempts.len());
                if end.is_some_and(|e| e != Status::Running) {
                    prop_assert!(s.status.is_some_and(|st| TERMINAL.contains(&st)), "{:?}", s);
                }
            }
        }
    }
}
