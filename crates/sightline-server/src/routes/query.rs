//! Read endpoints: health, runs, one run, timeline, session tree, search, one event, stats,
//! incidents. Each is a thin shell over `sightline_store::query`, run on the read pool.
//!
//! Handlers here must never write: anything that changes state lives in ingest, export
//! (import) or control.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, Query, State};
use schemars::JsonSchema;
use serde::Serialize;
use sightline_core::SourceHealth;
use sightline_schema::{Event, Filter, Source, Status, Timestamp};
use sightline_store::query::{self, Order, RunQuery};

use crate::error::ApiError;
use crate::hub::Hub;

type Params = Query<HashMap<String, String>>;

/// Events searched for runs whose prompts or working directory match `q` (newest first).
const RUN_TEXT_SCAN: usize = 2000;

fn list<T>(
    params: &HashMap<String, String>,
    keys: &[&str],
    parse: fn(&str) -> Option<T>,
    names: fn() -> String,
) -> Result<Vec<T>, ApiError> {
    let mut out = Vec::new();
    for key in keys {
        if let Some(value) = params.get(*key) {
            for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                out.push(parse(item).ok_or_else(|| {
                    ApiError::BadRequest(format!("{key}: `{item}` is not one of: {}", names()))
                })?);
            }
        }
    }
    Ok(out)
}

fn number<T: std::str::FromStr>(
    params: &HashMap<String, String>,
    key: &str,
    default: T,
) -> Result<T, ApiError> {
    match params.get(key) {
        None => Ok(default),
        Some(v) if v.is_empty() => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("{key}: `{v}` is not a number"))),
    }
}

/// Where a cursor-paged list (`/runs`, `/workflows`) starts and how long a page is.
#[derive(Debug, PartialEq)]
pub(crate) struct Paging {
    /// A whole number; the store clamps it to 1..=`max`.
    pub limit: usize,
    /// The opaque `next_cursor` of the previous page; empty is none.
    pub cursor: Option<String>,
}

/// Reads `limit` and `cursor` the one way every cursor-paged list takes them, so a bad limit
/// gets the same answer everywhere and says what would be taken.
pub(crate) fn paging(
    params: &HashMap<String, String>,
    default_limit: usize,
    max: usize,
) -> Result<Paging, ApiError> {
    let limit = match params.get("limit").filter(|v| !v.is_empty()) {
        None => default_limit,
        Some(v) => v.parse::<usize>().map_err(|_| {
            ApiError::BadRequest(format!("limit: `{v}` is not a whole number (1 to {max})"))
        })?,
    };
    let cursor = params.get("cursor").filter(|c| !c.is_empty()).cloned();
    Ok(Paging { limit, cursor })
}

fn time(params: &HashMap<String, String>, key: &str) -> Result<Option<Timestamp>, ApiError> {
    params
        .get(key)
        .filter(|v| !v.is_empty())
        .map(|v| Timestamp::parse(v).map_err(|e| ApiError::BadRequest(format!("{key}: {e}"))))
        .transpose()
}

pub fn filter_from(params: &HashMap<String, String>) -> Result<Filter, ApiError> {
    Ok(Filter::from_params(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )?)
}

/// `GET /api/v1/health`.
#[derive(Serialize, JsonSchema)]
pub struct HealthReport {
    pub status: &'static str,
    pub service: &'static str,
    pub version: &'static str,
    pub epoch: String,
    pub head_seq: u64,
    pub uptime_s: u64,
    pub storage: StorageHealth,
    pub queue: QueueHealth,
    /// Every path events come in by: `http`, `ws`, each endpoint and background source.
    pub adapters: Vec<SourceHealth>,
    pub subscribers: usize,
}

#[derive(Serialize, JsonSchema)]
pub struct StorageHealth {
    pub path: String,
    pub size_bytes: u64,
    pub events: u64,
    pub retention_days: Option<f64>,
    pub deleted_by_retention: u64,
}

#[derive(Serialize, JsonSchema)]
pub struct QueueHealth {
    pub depth: usize,
    pub capacity: usize,
    /// Batches refused because the queue was full (every path).
    pub rejected: u64,
    /// Requests refused as invalid (every path).
    pub invalid: u64,
    pub dropped: u64,
    pub batches: u64,
    pub batched_events: u64,
}

pub async fn health(State(hub): State<Hub>) -> Json<HealthReport> {
    let store = hub.store();
    let stats = store.stats();
    let totals = hub.core().ingest_totals();
    Json(HealthReport {
        status: "ok",
        service: "sightline",
        version: env!("CARGO_PKG_VERSION"),
        epoch: store.epoch().to_string(),
        head_seq: store.head_seq(),
        uptime_s: hub.core().uptime().as_secs(),
        storage: StorageHealth {
            path: store.path().display().to_string(),
            size_bytes: store.size_bytes(),
            events: stats.stored.load(Ordering::Relaxed),
            retention_days: hub.store().retention().map(|d| d.as_secs_f64() / 86_400.0),
            deleted_by_retention: stats.retained_away.load(Ordering::Relaxed),
        },
        queue: QueueHealth {
            depth: store.queue_depth(),
            capacity: store.queue_capacity(),
            rejected: totals.rejected_full,
            invalid: totals.rejected_invalid,
            dropped: 0,
            batches: stats.batches.load(Ordering::Relaxed),
            batched_events: stats.batched_events.load(Ordering::Relaxed),
        },
        adapters: hub.core().health().snapshot(),
        subscribers: hub.core().bus().subscribers(),
    })
}

/// A page of runs.
#[derive(Serialize, JsonSchema)]
pub struct RunsPage {
    pub runs: Vec<RunRow>,
    pub next_cursor: Option<String>,
}

/// A run with the working directory its first events name and the project that is in
/// (`routes::sessions::project_of`).
#[derive(Serialize, JsonSchema)]
pub struct RunRow {
    #[serde(flatten)]
    pub run: query::Run,
    pub cwd: Option<String>,
    pub project: Option<String>,
}

/// A page of events.
#[derive(Serialize, JsonSchema)]
pub struct EventsPage {
    pub events: Vec<Event>,
    pub next_cursor: Option<u64>,
}

/// A session and its descendants.
#[derive(Serialize, JsonSchema)]
pub struct SessionTree {
    pub tree: query::SessionNode,
}

/// Totals over a window.
#[derive(Serialize, JsonSchema)]
pub struct StatsReport {
    #[serde(flatten)]
    pub stats: query::Stats,
    pub head_seq: u64,
    pub epoch: String,
    pub since: Timestamp,
}

/// Failures clustered.
#[derive(Serialize, JsonSchema)]
pub struct Incidents {
    pub incidents: Vec<query::Incident>,
}

pub async fn runs(State(hub): State<Hub>, Query(p): Params) -> Result<Json<RunsPage>, ApiError> {
    let Paging { limit, cursor } = paging(&p, 50, query::MAX_RUN_PAGE)?;
    let q = RunQuery {
        statuses: list(&p, &["status", "statuses"], Status::parse, Status::names)?,
        sources: list(&p, &["source", "sources"], Source::parse, Source::names)?,
        agents: p
            .get("agent")
            .or(p.get("agents"))
            .map(|a| a.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        q: p.get("q").filter(|q| !q.is_empty()).cloned(),
        since: time(&p, "since")?,
        until: time(&p, "until")?,
        limit,
        cursor,
        q_runs: Vec::new(),
    };
    let wanted = p.get("project").filter(|p| !p.is_empty()).cloned();
    let (runs, next_cursor) = hub
        .store()
        .read(move |c| {
            let mut q = q;
            // `q` also finds runs by their prompts and working directory, which live in the
            // payloads of prompt and lifecycle events (full text), not in the runs row.
            if let Some(text) = &q.q {
                let filter = Filter {
                    q: Some(text.clone()),
                    entity_types: crate::routes::sessions::TEXT_TYPES.to_vec(),
                    ..Filter::default()
                };
                let found = query::search(c, &filter, Order::Desc, None, RUN_TEXT_SCAN)?;
                let mut ids: Vec<String> =
                    found.items.into_iter().filter_map(|e| e.run_id).collect();
                ids.sort();
                ids.dedup();
                q.q_runs = ids;
            }
            // The project is read from each run's events and this machine's directories, not
            // a column: it is applied run by run as the list is walked, so pages stay full.
            let page = query::list_runs_where(c, &q, |run| {
                let cwd = sightline_store::live::run_cwd(c, &run.run_id)?;
                let project = cwd.as_deref().and_then(crate::routes::sessions::project_of);
                if wanted.is_none() || project == wanted {
                    Ok(Some(RunRow { run, cwd, project }))
                } else {
                    Ok(None)
                }
            })?;
            Ok((page.items, page.next_cursor))
        })
        .await?;
    Ok(Json(RunsPage { runs, next_cursor }))
}

pub async fn run(
    State(hub): State<Hub>,
    Path(run_id): Path<String>,
) -> Result<Json<query::RunDetail>, ApiError> {
    let id = run_id.clone();
    let detail = hub.store().read(move |c| query::get_run(c, &id)).await?;
    let detail = detail.ok_or_else(|| ApiError::NotFound(format!("no run `{run_id}`")))?;
    Ok(Json(detail))
}

pub async fn timeline(
    State(hub): State<Hub>,
    Path(run_id): Path<String>,
    Query(p): Params,
) -> Result<Json<EventsPage>, ApiError> {
    let after = number(&p, "after", 0u64)?;
    let limit = number(&p, "limit", 500usize)?;
    let page = hub
        .store()
        .read(move |c| query::timeline(c, &run_id, after, limit))
        .await?;
    Ok(Json(EventsPage {
        events: page.items,
        next_cursor: page.next_cursor,
    }))
}

pub async fn session_tree(
    State(hub): State<Hub>,
    Path(session_id): Path<String>,
) -> Result<Json<SessionTree>, ApiError> {
    let id = session_id.clone();
    let tree = hub
        .store()
        .read(move |c| query::session_tree(c, &id))
        .await?;
    let tree = tree.ok_or_else(|| ApiError::NotFound(format!("no session `{session_id}`")))?;
    Ok(Json(SessionTree { tree }))
}

pub async fn search(
    State(hub): State<Hub>,
    Query(p): Params,
) -> Result<Json<EventsPage>, ApiError> {
    let filter = filter_from(&p)?;
    let order = match p.get("order").map(String::as_str) {
        None | Some("") | Some("desc") => Order::Desc,
        Some("asc") => Order::Asc,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "order: `{other}` is not asc or desc"
            )));
        }
    };
    let cursor = match order {
        Order::Desc => p
            .get("before")
            .filter(|v| !v.is_empty())
            .map(|v| v.parse::<u64>())
            .transpose(),
        Order::Asc => p
            .get("after")
            .filter(|v| !v.is_empty())
            .map(|v| v.parse::<u64>())
            .transpose(),
    }
    .map_err(|_| ApiError::BadRequest("before/after must be a seq".into()))?;
    let limit = number(&p, "limit", 100usize)?;
    let page = hub
        .store()
        .read(move |c| query::search(c, &filter, order, cursor, limit))
        .await?;
    Ok(Json(EventsPage {
        events: page.items,
        next_cursor: page.next_cursor,
    }))
}

pub async fn event(State(hub): State<Hub>, Path(seq): Path<u64>) -> Result<Json<Event>, ApiError> {
    let event = hub.store().read(move |c| query::get_event(c, seq)).await?;
    let event = event.ok_or_else(|| ApiError::NotFound(format!("no event with seq {seq}")))?;
    Ok(Json(event))
}

pub async fn stats(
    State(hub): State<Hub>,
    Query(p): Params,
) -> Result<Json<StatsReport>, ApiError> {
    let now = Timestamp::now();
    let since = time(&p, "since")?.unwrap_or(Timestamp(now.millis() - 24 * 3600 * 1000));
    let stats = hub
        .store()
        .read(move |c| query::stats(c, since, now))
        .await?;
    Ok(Json(StatsReport {
        stats,
        head_seq: hub.store().head_seq(),
        epoch: hub.store().epoch().to_string(),
        since,
    }))
}

pub async fn incidents(
    State(hub): State<Hub>,
    Query(p): Params,
) -> Result<Json<Incidents>, ApiError> {
    let now = Timestamp::now();
    let since = time(&p, "since")?.unwrap_or(Timestamp(now.millis() - 24 * 3600 * 1000));
    let window_ms = number(&p, "window_s", 300i64)?.max(1) * 1000;
    let limit = number(&p, "limit", 100usize)?;
    let incidents = hub
        .store()
        .read(move |c| query::incidents(c, since, window_ms, limit))
        .await?;
    Ok(Json(Incidents { incidents }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn paging_reads_limit_and_cursor_the_same_way_for_every_list() {
        assert_eq!(
            paging(&params(&[]), 50, 1000).unwrap(),
            Paging {
                limit: 50,
                cursor: None
            }
        );
        assert_eq!(
            paging(&params(&[("limit", ""), ("cursor", "")]), 100, 200).unwrap(),
            Paging {
                limit: 100,
                cursor: None
            },
            "empty is absent"
        );
        assert_eq!(
            paging(
                &params(&[("limit", "7"), ("cursor", "123:run-a")]),
                100,
                200
            )
            .unwrap(),
            Paging {
                limit: 7,
                cursor: Some("123:run-a".into())
            }
        );
        for bad in ["-1", "x", "1.5", "99999999999999999999999"] {
            let Err(ApiError::BadRequest(message)) = paging(&params(&[("limit", bad)]), 100, 200)
            else {
                panic!("limit={bad} was taken");
            };
            assert!(
                message.contains("1 to 200") && message.contains(bad),
                "{message}"
            );
        }
    }
}
