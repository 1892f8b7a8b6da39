//! Read-side numbers the dashboard draws: exact (or openly bounded) counts of what a filter
//! matches, and time series of events, errors, tokens and cost per bucket, grouped by source,
//! entity type, severity, agent, run or model.
//!
//! Every function takes a read connection and never writes. Each one does bounded work: a count
//! stops at [`COUNT_BUDGET`] and says it is a lower bound; a series has at most
//! [`MAX_BUCKETS`] buckets and [`MAX_KEYS`] lines, and a series read from the events table (not
//! from the per-minute counters) scans at most [`SERIES_SCAN_BUDGET`] rows and says when it
//! stopped early. No value is ever spliced into SQL text.

use std::collections::HashMap;

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use serde::Serialize;
use sightline_schema::{EntityType, Filter, Severity, Source, Timestamp};

use crate::StoreError;
use crate::query::{Order, bind, filter_clauses, search};

/// Most events one count reads before it answers with a lower bound: a count over a million
/// rows of the index takes about 100 ms here, and a dashboard label does not need more.
pub const COUNT_BUDGET: u64 = 1_000_000;

/// How many events match, exactly or at least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Count {
    /// The number of matching events (a lower bound when `exact` is false).
    pub count: u64,
    /// False when counting stopped at the budget: there are at least `count`.
    pub exact: bool,
}

/// Events matching `filter` (and below seq `before`, when given), counted up to
/// [`COUNT_BUDGET`].
///
/// Without full text, SQLite counts over the indexes. With full text, the same search that
/// pages the Timeline is run page by page, so the count agrees with what paging shows (words
/// the index cannot answer for are checked in memory, exactly as `search` does).
pub fn count(conn: &Connection, filter: &Filter, before: Option<u64>) -> Result<Count, StoreError> {
    let has_text = filter.q.as_deref().is_some_and(|q| !q.trim().is_empty());
    if !has_text {
        let mut args = Vec::new();
        let mut f = filter.clone();
        f.q = None;
        let mut clauses = filter_clauses(&f, None, &mut args);
        if let Some(b) = before {
            clauses.push(format!(
                "seq < {}",
                bind(SqlValue::Integer(b.min(i64::MAX as u64) as i64), &mut args)
            ));
        }
        if clauses.is_empty() {
            clauses.push("1".into());
        }
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE {} LIMIT {})",
            clauses.join(" AND "),
            COUNT_BUDGET + 1
        );
        let n: i64 = conn.query_row(&sql, params_from_iter(args), |r| r.get(0))?;
        let n = n.max(0) as u64;
        return Ok(if n > COUNT_BUDGET {
            Count {
                count: COUNT_BUDGET,
                exact: false,
            }
        } else {
            Count {
                count: n,
                exact: true,
            }
        });
    }
    let mut counted = 0u64;
    let mut cursor = None;
    loop {
        let page = search(conn, filter, Order::Asc, cursor, 5_000)?;
        for e in &page.items {
            if before.is_some_and(|b| e.seq >= b) {
                return Ok(Count {
                    count: counted,
                    exact: true,
                });
            }
            counted += 1;
        }
        match page.next_cursor {
            None => {
                return Ok(Count {
                    count: counted,
                    exact: true,
                });
            }
            Some(c) if before.is_some_and(|b| c >= b) => {
                return Ok(Count {
                    count: counted,
                    exact: true,
                });
            }
            Some(c) => cursor = Some(c),
        }
        if counted >= COUNT_BUDGET {
            return Ok(Count {
                count: counted,
                exact: false,
            });
        }
    }
}

/// Most buckets one series has; a wider range gets wider buckets (a day at one minute each).
pub const MAX_BUCKETS: i64 = 1_440;
/// Most lines one series has; the rest are summed into one line named [`OTHER`].
pub const MAX_KEYS: usize = 12;
/// The line that holds every key beyond the [`MAX_KEYS`] largest.
pub const OTHER: &str = "(other)";
/// The line of events that have no value for the grouping (no agent, no run, no model).
pub const NONE: &str = "(none)";
/// Most rows a series grouped by agent, run or model reads from `events` (those groupings are
/// not in the per-minute counters); about a second of work here. Past it the series is marked
/// `partial`.
pub const SERIES_SCAN_BUDGET: usize = 2_000_000;

/// What a series groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesBy {
    /// One line: everything.
    Total,
    Source,
    EntityType,
    Severity,
    Agent,
    Run,
    /// The `payload.model` of events that carry token usage (model requests).
    Model,
}

impl SeriesBy {
    /// Parses the API's `by` parameter.
    pub fn parse(text: &str) -> Option<SeriesBy> {
        Some(match text {
            "" | "total" => SeriesBy::Total,
            "source" => SeriesBy::Source,
            "entity_type" => SeriesBy::EntityType,
            "severity" => SeriesBy::Severity,
            "agent" => SeriesBy::Agent,
            "run" => SeriesBy::Run,
            "model" => SeriesBy::Model,
            _ => return None,
        })
    }

    /// The names [`SeriesBy::parse`] accepts, for error messages.
    pub const NAMES: &'static str = "total, source, entity_type, severity, agent, run, model";

    fn name(self) -> &'static str {
        match self {
            SeriesBy::Total => "total",
            SeriesBy::Source => "source",
            SeriesBy::EntityType => "entity_type",
            SeriesBy::Severity => "severity",
            SeriesBy::Agent => "agent",
            SeriesBy::Run => "run",
            SeriesBy::Model => "model",
        }
    }
}

/// One line of a series: per-bucket values, oldest bucket first.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct SeriesLine {
    pub key: String,
    pub events: Vec<i64>,
    pub errors: Vec<i64>,
    pub input_tokens: Vec<f64>,
    pub output_tokens: Vec<f64>,
    pub cost_usd: Vec<f64>,
    /// The sum of `events`.
    pub total_events: i64,
}

/// Events, errors, tokens and cost per time bucket, per key.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Series {
    /// What the lines are grouped by.
    pub by: String,
    /// The width of one bucket, in milliseconds (a whole number of minutes).
    pub bucket_ms: i64,
    /// The start of the first bucket (UTC milliseconds, aligned to the bucket width).
    pub start_ms: i64,
    /// How many buckets each line has.
    pub buckets: usize,
    /// The largest lines first; keys beyond [`MAX_KEYS`] are summed into `(other)`.
    pub lines: Vec<SeriesLine>,
    /// Rows read from `events` (0 when the per-minute counters answered).
    pub scanned: u64,
    /// True when the scan budget ran out: the lines are lower bounds.
    pub partial: bool,
}

/// What to draw: the range, the bucket width wanted and the grouping.
#[derive(Debug, Clone, Copy)]
pub struct SeriesQuery {
    pub since: Timestamp,
    pub until: Timestamp,
    /// Wanted bucket width; rounded up to whole minutes and widened to fit [`MAX_BUCKETS`].
    pub bucket_ms: i64,
    pub by: SeriesBy,
    /// Lines kept before the rest are summed into `(other)`: [`MAX_KEYS`] for charts; more
    /// (at most [`MAX_LINES`]) when the caller regroups them (runs into projects).
    pub lines: usize,
}

/// Most lines a series keeps for a caller that regroups them.
pub const MAX_LINES: usize = 2_000;

#[derive(Default, Clone)]
struct Acc {
    events: Vec<i64>,
    errors: Vec<i64>,
    input: Vec<f64>,
    output: Vec<f64>,
    cost: Vec<f64>,
}

impl Acc {
    fn new(n: usize) -> Acc {
        Acc {
            events: vec![0; n],
            errors: vec![0; n],
            input: vec![0.0; n],
            output: vec![0.0; n],
            cost: vec![0.0; n],
        }
    }
    /// The sums of a line already made (to regroup it).
    fn of(line: &SeriesLine) -> Acc {
        Acc {
            events: line.events.clone(),
            errors: line.errors.clone(),
            input: line.input_tokens.clone(),
            output: line.output_tokens.clone(),
            cost: line.cost_usd.clone(),
        }
    }
    fn add_at(&mut self, i: usize, other: (i64, i64, f64, f64, f64)) {
        self.events[i] += other.0;
        self.errors[i] += other.1;
        self.input[i] += other.2;
        self.output[i] += other.3;
        self.cost[i] += other.4;
    }
    fn merge(&mut self, other: &Acc) {
        for i in 0..self.events.len() {
            self.add_at(
                i,
                (
                    other.events[i],
                    other.errors[i],
                    other.input[i],
                    other.output[i],
                    other.cost[i],
                ),
            );
        }
    }
}

const MINUTE_MS: i64 = 60_000;

/// The series for `q`. Source, entity type and severity (and the total) come from the
/// per-minute counters and cost one indexed range read; agent, run and model are folded from
/// the events that arrived since `q.since`, within [`SERIES_SCAN_BUDGET`].
pub fn series(conn: &Connection, q: &SeriesQuery) -> Result<Series, StoreError> {
    let span = (q.until.millis() - q.since.millis()).max(MINUTE_MS);
    let mut bucket = q.bucket_ms.max(MINUTE_MS);
    bucket = bucket.div_euclid(MINUTE_MS) * MINUTE_MS
        + if bucket % MINUTE_MS == 0 {
            0
        } else {
            MINUTE_MS
        };
    let fit = span.div_euclid(MAX_BUCKETS) + 1;
    if bucket < fit {
        bucket = fit.div_euclid(MINUTE_MS) * MINUTE_MS + MINUTE_MS;
    }
    let start = q.since.millis().div_euclid(bucket) * bucket;
    let buckets =
        ((q.until.millis() - start + bucket - 1).div_euclid(bucket)).clamp(1, MAX_BUCKETS) as usize;
    let end = start + bucket * buckets as i64;
    let slot = |ts: i64| -> Option<usize> {
        if ts < start || ts >= end {
            return None;
        }
        Some(((ts - start) / bucket) as usize)
    };
    let keep = q.lines.clamp(1, MAX_LINES);
    let mut by_key: HashMap<String, Acc> = HashMap::new();
    let mut scanned = 0u64;
    let mut partial = false;
    match q.by {
        SeriesBy::Total | SeriesBy::Source | SeriesBy::EntityType | SeriesBy::Severity => {
            let column = match q.by {
                SeriesBy::Source => "source",
                SeriesBy::EntityType => "entity_type",
                SeriesBy::Severity => "severity",
                _ => "0",
            };
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT minute, {column}, SUM(events), SUM(errors), SUM(input_tokens), \
                 SUM(output_tokens), SUM(cost_usd) FROM stats_minute \
                 WHERE minute >= ?1 AND minute < ?2 GROUP BY minute{}",
                if q.by == SeriesBy::Total {
                    String::new()
                } else {
                    format!(", {column}")
                }
            ))?;
            let mut rows = stmt.query([start.div_euclid(MINUTE_MS), end.div_euclid(MINUTE_MS)])?;
            while let Some(row) = rows.next()? {
                let minute: i64 = row.get(0)?;
                let Some(i) = slot(minute * MINUTE_MS) else {
                    continue;
                };
                let code: i64 = row.get(1)?;
                let key = match q.by {
                    SeriesBy::Source => Source::from_code(code).map(|s| s.to_string()),
                    SeriesBy::EntityType => EntityType::from_code(code).map(|s| s.to_string()),
                    SeriesBy::Severity => Severity::from_code(code).map(|s| s.to_string()),
                    _ => Some("all".to_string()),
                }
                .unwrap_or_else(|| NONE.to_string());
                by_key
                    .entry(key)
                    .or_insert_with(|| Acc::new(buckets))
                    .add_at(
                        i,
                        (
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                            row.get(5)?,
                            row.get(6)?,
                        ),
                    );
            }
        }
        SeriesBy::Agent | SeriesBy::Run | SeriesBy::Model => {
            // Arrival order bounds the scan: whatever arrived before `since` cannot carry a ts
            // inside the range except by more than the 24 h validation allows ahead, so the
            // first seq that arrived at or after `since - 24 h` is a safe place to start.
            let from_second = (q.since.millis() - 24 * 3_600_000).div_euclid(1000);
            let first_seq: i64 = conn
                .query_row(
                    "SELECT first_seq FROM seq_marks WHERE second >= ?1 ORDER BY second LIMIT 1",
                    [from_second],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(i64::MAX);
            let (column, extra) = match q.by {
                SeriesBy::Agent => ("agent", ""),
                SeriesBy::Run => ("run_id", ""),
                _ => ("payload", " AND metrics IS NOT NULL"),
            };
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT ts, {column}, severity = 4 OR COALESCE(status = 6, 0), metrics FROM events \
                 WHERE seq >= ?1 AND ts >= ?2 AND ts < ?3{extra} ORDER BY seq LIMIT ?4"
            ))?;
            let mut rows = stmt.query(rusqlite::params![
                first_seq,
                start,
                end,
                SERIES_SCAN_BUDGET as i64 + 1
            ])?;
            while let Some(row) = rows.next()? {
                scanned += 1;
                if scanned as usize > SERIES_SCAN_BUDGET {
                    partial = true;
                    scanned -= 1;
                    break;
                }
                let Some(i) = slot(row.get(0)?) else {
                    continue;
                };
                let key = if q.by == SeriesBy::Model {
                    let payload: serde_json::Map<String, serde_json::Value> =
                        crate::rows::json_column(row, 1)?;
                    payload
                        .get("model")
                        .and_then(|m| m.as_str())
                        .filter(|m| !m.is_empty())
                        .map(|m| m.chars().take(120).collect::<String>())
                } else {
                    match row.get_ref(1)? {
                        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
                        _ => None,
                    }
                }
                .unwrap_or_else(|| NONE.to_string());
                let error: bool = row.get(2)?;
                let metrics: Option<std::collections::BTreeMap<String, serde_json::Number>> =
                    crate::rows::json_column(row, 3)?;
                let get = |k: &str| {
                    metrics
                        .as_ref()
                        .and_then(|m| m.get(k))
                        .and_then(|n| n.as_f64())
                        .unwrap_or(0.0)
                };
                by_key
                    .entry(key)
                    .or_insert_with(|| Acc::new(buckets))
                    .add_at(
                        i,
                        (
                            1,
                            i64::from(error),
                            get("input_tokens"),
                            get("output_tokens"),
                            get("cost_usd"),
                        ),
                    );
                // Many distinct keys (runs) would grow memory with the range: fold the
                // smallest into `(other)` as soon as there are far more than are shown.
                if by_key.len() > keep * 64 {
                    fold_small(&mut by_key, keep * 8, buckets);
                }
            }
        }
    }
    fold_small(&mut by_key, keep, buckets);
    let lines = into_lines(by_key);
    Ok(Series {
        by: q.by.name().to_string(),
        bucket_ms: bucket,
        start_ms: start,
        buckets,
        lines,
        scanned,
        partial,
    })
}

/// A series' lines from its sums: the most events first, ties by key, `(other)` last.
fn into_lines(by_key: HashMap<String, Acc>) -> Vec<SeriesLine> {
    let mut lines: Vec<SeriesLine> = by_key
        .into_iter()
        .map(|(key, a)| SeriesLine {
            total_events: a.events.iter().sum(),
            key,
            events: a.events,
            errors: a.errors,
            input_tokens: a.input,
            output_tokens: a.output,
            cost_usd: a.cost,
        })
        .collect();
    lines.sort_by(|a, b| {
        (a.key == OTHER)
            .cmp(&(b.key == OTHER))
            .then(b.total_events.cmp(&a.total_events))
            .then(a.key.cmp(&b.key))
    });
    lines
}

/// Keeps the `keep` largest keys (by events) and sums the rest into [`OTHER`].
fn fold_small(by_key: &mut HashMap<String, Acc>, keep: usize, buckets: usize) {
    let named = by_key.keys().filter(|k| *k != OTHER).count();
    if named <= keep {
        return;
    }
    let mut sizes: Vec<(i64, String)> = by_key
        .iter()
        .filter(|(k, _)| *k != OTHER)
        .map(|(k, a)| (a.events.iter().sum::<i64>(), k.clone()))
        .collect();
    sizes.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut other = by_key.remove(OTHER).unwrap_or_else(|| Acc::new(buckets));
    for (_, k) in sizes.into_iter().skip(keep) {
        if let Some(a) = by_key.remove(&k) {
            other.merge(&a);
        }
    }
    by_key.insert(OTHER.to_string(), other);
}

/// Sums a series' lines into new keys (`key_of` maps an old key to its new one; `(other)` and
/// `(none)` stay themselves) and keeps the [`MAX_KEYS`] largest, the rest in `(other)`. The
/// dashboard's "by project" is runs regrouped by the project of their working directory.
pub fn regroup(series: Series, by: &str, key_of: impl Fn(&str) -> Option<String>) -> Series {
    let n = series.buckets;
    let mut by_key: HashMap<String, Acc> = HashMap::new();
    for line in &series.lines {
        let key = if line.key == OTHER || line.key == NONE {
            line.key.clone()
        } else {
            key_of(&line.key).unwrap_or_else(|| NONE.to_string())
        };
        by_key
            .entry(key)
            .or_insert_with(|| Acc::new(n))
            .merge(&Acc::of(line));
    }
    fold_small(&mut by_key, MAX_KEYS, n);
    let lines = into_lines(by_key);
    Series {
        by: by.to_string(),
        lines,
        ..series
    }
}
