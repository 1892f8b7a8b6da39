//! Live control of traced processes: the desired tracing settings per process (run id), with a
//! version that agents long-poll, so a change reaches a running process within a second without
//! a restart.
//!
//! Kept in memory: an agent re-reads it on reconnect, and a hub restart resets to defaults,
//! which agents treat as "keep what you have". Never blocks a writer on a waiting reader, and
//! never grows without bound: a slot nobody changed is dropped when its last poller leaves, and
//! the number of slots is capped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;

/// The most processes whose control the board remembers at once.
pub const MAX_SLOTS: usize = 10_000;
/// The longest run id a slot may be keyed by (the schema's identifier limit).
pub const MAX_RUN_ID: usize = sightline_schema::validate::MAX_ID;
/// The longest a poll may wait.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Why a control request was refused.
#[derive(Debug, Error, PartialEq)]
pub enum ControlError {
    #[error("the run id is {0} bytes long; run ids are at most {MAX_RUN_ID} bytes")]
    RunIdTooLong(usize),
    #[error("the hub already tracks the control of {MAX_SLOTS} processes; retry later")]
    Full,
    #[error("wait_s must be a number of seconds between 0 and 30")]
    BadWait,
}

/// What an agent should do. Every field optional: absent means "agent default".
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
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

#[derive(Debug, Clone, Default, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Control {
    pub version: u64,
    #[serde(flatten)]
    pub settings: ControlSettings,
}

type Slots = HashMap<String, watch::Sender<Control>>;

#[derive(Clone, Default)]
pub struct ControlBoard {
    slots: Arc<Mutex<Slots>>,
}

impl ControlBoard {
    /// The lock, recovered if a holder panicked: every update is a single `send_modify`, so a
    /// panic cannot leave a slot half-written, and one bad request must not kill the endpoint.
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check(run_id: &str) -> Result<(), ControlError> {
        if run_id.len() > MAX_RUN_ID {
            return Err(ControlError::RunIdTooLong(run_id.len()));
        }
        Ok(())
    }

    /// The current settings of `run_id` (defaults when nobody set any); creates nothing.
    pub fn get(&self, run_id: &str) -> Control {
        self.lock()
            .get(run_id)
            .map(|tx| tx.borrow().clone())
            .unwrap_or_default()
    }

    /// Waits up to `wait_s` seconds for the version to differ from `known`, then answers the
    /// current settings. A slot made only to wait in is dropped when its last poller leaves.
    pub async fn poll(
        &self,
        run_id: &str,
        known: Option<u64>,
        wait_s: Option<f64>,
    ) -> Result<Control, ControlError> {
        Self::check(run_id)?;
        let wait = match wait_s {
            None => Duration::ZERO,
            // Clamped before converting: a huge number would overflow a Duration.
            Some(s) if s.is_finite() && s >= 0.0 => {
                Duration::from_secs_f64(s.min(MAX_WAIT.as_secs_f64()))
            }
            Some(_) => return Err(ControlError::BadWait),
        };
        let known = known.unwrap_or(u64::MAX);
        let current = self.get(run_id);
        if current.version != known || wait.is_zero() {
            return Ok(current);
        }
        let mut rx = {
            let mut slots = self.lock();
            if !slots.contains_key(run_id) && slots.len() >= MAX_SLOTS {
                return Err(ControlError::Full);
            }
            slots
                .entry(run_id.to_string())
                .or_insert_with(|| watch::channel(Control::default()).0)
                .subscribe()
        };
        let _ = tokio::time::timeout(wait, rx.wait_for(|c| c.version != known)).await;
        let answer = rx.borrow().clone();
        drop(rx);
        // Forget a slot that nobody changed and nobody else waits on.
        let mut slots = self.lock();
        if slots
            .get(run_id)
            .is_some_and(|tx| tx.borrow().version == 0 && tx.receiver_count() == 0)
        {
            slots.remove(run_id);
        }
        Ok(answer)
    }

    /// Merges `update` into the stored settings and bumps the version.
    pub fn update(&self, run_id: &str, update: ControlSettings) -> Result<Control, ControlError> {
        Self::check(run_id)?;
        let mut slots = self.lock();
        if !slots.contains_key(run_id) && slots.len() >= MAX_SLOTS {
            return Err(ControlError::Full);
        }
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
        let answer = tx.borrow().clone();
        Ok(answer)
    }

    /// How many processes the board remembers.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn polling_unknown_runs_leaves_nothing_behind() {
        let board = ControlBoard::default();
        for i in 0..100 {
            let c = board
                .poll(&format!("run-{i}"), Some(0), Some(0.001))
                .await
                .unwrap();
            assert_eq!(c.version, 0);
        }
        assert_eq!(board.len(), 0, "slots made only to wait in are dropped");
        board.update("kept", ControlSettings::default()).unwrap();
        assert_eq!(board.len(), 1);
    }

    #[tokio::test]
    async fn bad_waits_and_long_ids_are_refused() {
        let board = ControlBoard::default();
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            assert_eq!(
                board.poll("r", Some(0), Some(bad)).await,
                Err(ControlError::BadWait)
            );
        }
        // A number too big for a Duration (schemathesis sent 9.76e148) waits the longest
        // allowed; here nothing waits because the version already differs.
        assert!(board.poll("r", Some(7), Some(9.76e148)).await.is_ok());
        assert!(board.poll("r", Some(7), Some(f64::MAX)).await.is_ok());
        let long = "x".repeat(MAX_RUN_ID + 1);
        assert!(matches!(
            board.update(&long, ControlSettings::default()),
            Err(ControlError::RunIdTooLong(_))
        ));
    }

    #[tokio::test]
    async fn a_waiting_poll_wakes_on_update() {
        let board = ControlBoard::default();
        let waiter = {
            let board = board.clone();
            tokio::spawn(async move { board.poll("r", Some(0), Some(5.0)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        board
            .update(
                "r",
                ControlSettings {
                    enabled: Some(false),
                    ..Default::default()
                },
            )
            .unwrap();
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(got.version, 1);
        assert_eq!(got.settings.enabled, Some(false));
    }
}
