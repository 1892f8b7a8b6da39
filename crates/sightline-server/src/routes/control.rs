//! `GET`/`PUT /api/v1/processes/{run_id}/control`: the HTTP shell over the core's control board
//! (live control of traced processes).
//!
//! Bounded like the board itself: a poll for a process nobody configured leaves nothing
//! behind. It must never wait longer than the board's limit.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use sightline_core::{Control, ControlError, ControlSettings};

use crate::error::ApiError;
use crate::hub::Hub;

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Full => ApiError::Unavailable(e.to_string()),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

fn number<T: std::str::FromStr>(
    params: &HashMap<String, String>,
    key: &str,
) -> Result<Option<T>, ApiError> {
    params
        .get(key)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::BadRequest(format!("{key}: `{v}` is not a number")))
        })
        .transpose()
}

pub async fn get_control(
    State(hub): State<Hub>,
    Path(run_id): Path<String>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<Json<Control>, ApiError> {
    let version = number::<u64>(&p, "version")?;
    let wait = number::<f64>(&p, "wait_s")?;
    Ok(Json(
        hub.core().control().poll(&run_id, version, wait).await?,
    ))
}

pub async fn put_control(
    State(hub): State<Hub>,
    Path(run_id): Path<String>,
    body: Result<Json<ControlSettings>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Control>, ApiError> {
    let Json(update) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    Ok(Json(hub.core().control().update(&run_id, update)?))
}
