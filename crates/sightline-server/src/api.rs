//! Read endpoints: health, runs, one run, timeline, session tree, search, one event, stats,
//! incidents. Each is a thin shell over `sightline_store::query`, run on the read pool.
//!
//! Handlers here must never write: anything that changes state lives in ingest, export
//! (import) or control.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};
use sightline_schema::{Filter, Source, Status, Timestamp};
use sightline_store::query::{self, Order, RunQuery};

use crate::error::ApiError;
use crate::hub::Hub;

type Params = Query<HashMap<String, String>>;

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

pub async fn health(State(hub): State<Hub>) -> Json<Value> {
    let stats = hub.store.stats();
    let adapters = hub.adapters.read().expect("adapters lock").clone();
    Json(json!({
        "status": "ok",
        "service": "sightline",
        "version": env!("CARGO_PKG_VERSION"),
        "epoch": hub.store.epoch(),
        "head_seq": hub.store.head_seq(),
        "uptime_s": hub.started.elapsed().as_secs(),
        "storage": {
            "path": hub.store.path().display().to_string(),
            "size_bytes": hub.store.size_bytes(),
            "events": stats.stored.load(Ordering::Relaxed),
            "retention_days": hub.settings.retention_days,
            "deleted_by_retention": stats.retained_away.load(Ordering::Relaxed),
        },
        "queue": {
            "depth": hub.store.queue_depth(),
            "capacity": hub.store.queue_capacity(),
            "rejected": hub.counters.rejected_full.load(Ordering::Relaxed),
            "invalid": hub.counters.rejected_invalid.load(Ordering::Relaxed),
            "dropped": 0,
            "batches": stats.batches.load(Ordering::Relaxed),
            "batched_events": stats.batched_events.load(Ordering::Relaxed),
        },
        "adapters": adapters,
        "subscribers": hub.bus.subscribers(),
    }))
}

pub async fn runs(State(hub): State<Hub>, Query(p): Params) -> Result<Json<Value>, ApiError> {
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
        limit: number(&p, "limit", 50usize)?,
        cursor: p.get("cursor").filter(|c| !c.is_empty()).cloned(),
    };
    let page = hub.store.read(move |c| query::list_runs(c, &q)).await?;
    Ok(Json(
        json!({"runs": page.items, "next_cursor": page.next_cursor}),
    ))
}

pub async fn run(
    State(hub): State<Hub>,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = run_id.clone();
    let detail = hub.store.read(move |c| query::get_run(c, &id)).await?;
    let detail = detail.ok_or_else(|| ApiError::NotFound(format!("no run `{run_id}`")))?;
    Ok(Json(
        serde_json::to_value(detail).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

pub async fn timeline(
    State(hub): State<Hub>,
    Path(run_id): Path<String>,
    Query(p): Params,
) -> Result<Json<Value>, ApiError> {
    let after = number(&p, "after", 0u64)?;
    let limit = number(&p, "limit", 500usize)?;
    let page = hub
        .store
        .read(move |c| query::timeline(c, &run_id, after, limit))
        .await?;
    Ok(Json(
        json!({"events": page.items, "next_cursor": page.next_cursor}),
    ))
}

pub async fn session_tree(
    State(hub): State<Hub>,
    Path(session_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = session_id.clone();
    let tree = hub.store.read(move |c| query::session_tree(c, &id)).await?;
    let tree = tree.ok_or_else(|| ApiError::NotFound(format!("no session `{session_id}`")))?;
    Ok(Json(json!({"tree": tree})))
}

pub async fn search(State(hub): State<Hub>, Query(p): Params) -> Result<Json<Value>, ApiError> {
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
        .store
        .read(move |c| query::search(c, &filter, order, cursor, limit))
        .await?;
    Ok(Json(
        json!({"events": page.items, "next_cursor": page.next_cursor}),
    ))
}

pub async fn event(State(hub): State<Hub>, Path(seq): Path<u64>) -> Result<Json<Value>, ApiError> {
    let event = hub.store.read(move |c| query::get_event(c, seq)).await?;
    let event = event.ok_or_else(|| ApiError::NotFound(format!("no event with seq {seq}")))?;
    Ok(Json(
        serde_json::to_value(event).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

pub async fn stats(State(hub): State<Hub>, Query(p): Params) -> Result<Json<Value>, ApiError> {
    let now = Timestamp::now();
    let since = time(&p, "since")?.unwrap_or(Timestamp(now.millis() - 24 * 3600 * 1000));
    let stats = hub.store.read(move |c| query::stats(c, since, now)).await?;
    let mut value = serde_json::to_value(stats).map_err(|e| ApiError::Internal(e.to_string()))?;
    value["head_seq"] = json!(hub.store.head_seq());
    value["epoch"] = json!(hub.store.epoch());
    value["since"] = json!(since);
    Ok(Json(value))
}

pub async fn incidents(State(hub): State<Hub>, Query(p): Params) -> Result<Json<Value>, ApiError> {
    let now = Timestamp::now();
    let since = time(&p, "since")?.unwrap_or(Timestamp(now.millis() - 24 * 3600 * 1000));
    let window_ms = number(&p, "window_s", 300i64)?.max(1) * 1000;
    let limit = number(&p, "limit", 100usize)?;
    let incidents = hub
        .store
        .read(move |c| query::incidents(c, since, window_ms, limit))
        .await?;
    Ok(Json(json!({"incidents": incidents})))
}
