//! Numbers the dashboard draws: `GET /api/v1/count` (how many events a filter matches, exact or
//! a labelled lower bound) and `GET /api/v1/series` (events, errors, tokens and cost per time
//! bucket, by source, entity type, severity, agent, run or model) and
//! `GET /api/v1/incidents/groups` (failures grouped by fingerprint).
//!
//! Thin shells over `sightline_store::insight`, run on the read pool. They must never write and
//! never do unbounded work: the store bounds each query and says when an answer is partial.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use sightline_schema::Timestamp;
use sightline_store::fingerprint::{self, IncidentGroups};
use sightline_store::insight::{self, Count, Series, SeriesBy, SeriesQuery};

use crate::error::ApiError;
use crate::hub::Hub;
use crate::routes::query::filter_from;

type Params = Query<HashMap<String, String>>;

/// The longest range one series covers; older data is still reachable by moving the range.
const MAX_RANGE_MS: i64 = 90 * 24 * 3_600_000;

fn time(p: &HashMap<String, String>, key: &str) -> Result<Option<Timestamp>, ApiError> {
    p.get(key)
        .filter(|v| !v.is_empty())
        .map(|v| Timestamp::parse(v).map_err(|e| ApiError::BadRequest(format!("{key}: {e}"))))
        .transpose()
}

fn integer(p: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    p.get(key)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ApiError::BadRequest(format!("{key}: `{v}` is not a whole number")))
        })
        .transpose()
}

/// `GET /api/v1/count?<filter>&before=<seq>`: the filter's matches, counted.
pub async fn count(State(hub): State<Hub>, Query(p): Params) -> Result<Json<Count>, ApiError> {
    let filter = filter_from(&p)?;
    let before = match integer(&p, "before")? {
        Some(b) if b < 0 => {
            return Err(ApiError::BadRequest(
                "before: a seq is zero or positive".into(),
            ));
        }
        b => b.map(|b| b as u64),
    };
    Ok(Json(
        hub.store()
            .read(move |c| insight::count(c, &filter, before))
            .await?,
    ))
}

/// `GET /api/v1/series?since=&until=&bucket_s=&by=`: a time series for charts.
pub async fn series(State(hub): State<Hub>, Query(p): Params) -> Result<Json<Series>, ApiError> {
    let now = Timestamp::now();
    let until = time(&p, "until")?.unwrap_or(now);
    let since = time(&p, "since")?.unwrap_or(Timestamp(until.millis() - 3_600_000));
    if since.millis() >= until.millis() {
        return Err(ApiError::BadRequest(
            "since must be before until (both RFC 3339)".into(),
        ));
    }
    if until.millis() - since.millis() > MAX_RANGE_MS {
        return Err(ApiError::BadRequest(
            "the range is longer than 90 days; choose a later since or an earlier until".into(),
        ));
    }
    let bucket_s = integer(&p, "bucket_s")?.unwrap_or(60);
    if !(1..=86_400).contains(&bucket_s) {
        return Err(ApiError::BadRequest(
            "bucket_s: from 60 to 86400 seconds (smaller values are rounded up to a minute)".into(),
        ));
    }
    let by_text = p.get("by").map(String::as_str).unwrap_or("total");
    // `project` is runs regrouped by the project of their working directory (the same lookup
    // the runs list uses); the store keeps up to MAX_LINES runs apart for it.
    let project = by_text == "project";
    let by = if project {
        SeriesBy::Run
    } else {
        SeriesBy::parse(by_text).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "by: `{by_text}` is not one of: {}, project",
                SeriesBy::NAMES
            ))
        })?
    };
    let q = SeriesQuery {
        since,
        until,
        bucket_ms: bucket_s * 1000,
        by,
        lines: if project {
            insight::MAX_LINES
        } else {
            insight::MAX_KEYS
        },
    };
    if project {
        return Ok(Json(
            hub.store()
                .read(move |c| {
                    let s = insight::series(c, &q)?;
                    let mut projects = std::collections::HashMap::new();
                    for line in &s.lines {
                        let cwd = sightline_store::live::run_cwd(c, &line.key)?;
                        let p = cwd.as_deref().and_then(crate::routes::sessions::project_of);
                        projects.insert(line.key.clone(), p);
                    }
                    Ok(insight::regroup(s, "project", |run| {
                        projects.get(run).cloned().flatten()
                    }))
                })
                .await?,
        ));
    }
    Ok(Json(
        hub.store().read(move |c| insight::series(c, &q)).await?,
    ))
}

/// `GET /api/v1/incidents/groups?since=&limit=`: failures grouped by fingerprint.
pub async fn incident_groups(
    State(hub): State<Hub>,
    Query(p): Params,
) -> Result<Json<IncidentGroups>, ApiError> {
    let since = time(&p, "since")?.unwrap_or(Timestamp(Timestamp::now().millis() - 86_400_000));
    let limit = integer(&p, "limit")?
        .unwrap_or(200)
        .clamp(1, fingerprint::MAX_GROUPS as i64) as usize;
    Ok(Json(
        hub.store()
            .read(move |c| fingerprint::incident_groups(c, since, limit))
            .await?,
    ))
}
