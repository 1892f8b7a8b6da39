//! Live control of traced processes: the desired tracing settings per process (run id), with a
//! version that agents long-poll, so a change reaches a running process within a second without
//! a restart.
//!
//! Kept in memory: an agent re-reads it on reconnect, and a hub restart resets to defaults,
//! which agents treat as "keep what you have". Never blocks a writer on a waiting reader.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::ApiError;
use crate::hub::Hub;

/// What an agent should do. Every field optional: absent means "agent default".
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ControlSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_detail_per_s: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Control {
    pub version: u64,
    #[serde(flatten)]
    pub settings: ControlSettings,
}

#[derive(Clone, Default)]
pub struct ControlBoard {
    slots: Arc<Mutex<HashMap<String, watch::Sender<Control>>>>,
}

impl ControlBoard {
    fn slot(&self, run_id: &str) -> watch::Receiver<Control> {
        let mut slots = self.slots.lock().expect("control lock");
        slots
            .entry(run_id.to_string())
            .or_insert_with(|| watch::channel(Control::default()).0)
            .subscribe()
    }

    /// Merges `update` into the stored settings and bumps the version.
    pub fn update(&self, run_id: &str, update: ControlSettings) -> Control {
        let mut slots = self.slots.lock().expect("control lock");
        let tx = slots
            .entry(run_id.to_string())
            .or_insert_with(|| watch::channel(Control::default()).0);
        tx.send_modify(|c| {
            c.version += 1;
            let s = &mut c.settings;
            s.enabled = update.enabled.or(s.enabled);
            s.include = update.include.or(s.include.take());
            s.exclude = update.exclude.or(s.exclude.take());
            s.min_duration_ms = update.min_duration_ms.or(s.min_duration_ms);
            s.max_detail_per_s = update.max_detail_per_s.or(s.max_detail_per_s);
        });
        tx.borrow().clone()
    }
}

#[derive(Deserialize)]
pub struct PollParams {
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    wait_s: Option<f64>,
}

pub async fn get_control(
    State(hub): State<Hub>,
    Path(run_id): Path<String>,
    Query(p): Query<PollParams>,
) -> Json<Control> {
    let mut rx = hub.control.slot(&run_id);
    let known = p.version.unwrap_or(u64::MAX);
    let wait = Duration::from_secs_f64(p.wait_s.unwrap_or(0.0).clamp(0.0, 30.0));
    if rx.borrow().version == known && !wait.is_zero() {
        let _ = tokio::time::timeout(wait, rx.wait_for(|c| c.version != known)).await;
    }
    Json(rx.borrow().clone())
}

pub async fn put_control(
    State(hub): State<Hub>,
    Path(run_id): Path<String>,
    body: Result<Json<ControlSettings>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Control>, ApiError> {
    let Json(update) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    Ok(Json(hub.control.update(&run_id, update)))
}
