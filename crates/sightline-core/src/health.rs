//! Per-source health: state, events, errors, refusals and lag of every path events come in by
//! (`http`, `ws`, each endpoint source and each background source), as `/api/v1/health` shows it.
//!
//! Written only through [`Health`]'s methods, which the ingest path and the source handle call;
//! the lock is private and recovered if a holder ever panicked, so a panic elsewhere can never
//! turn health into a dead endpoint. It must never hold the lock across an await.

use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;
use sightline_schema::Timestamp;

/// One source's health.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct SourceHealth {
    pub name: String,
    /// `running`, `failed`, `stopped`, `finished`, or a source's own word (`connecting`, ...).
    pub state: String,
    pub last_event_at: Option<Timestamp>,
    pub lag_ms: Option<i64>,
    /// Events committed from this source.
    pub events: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    /// Batches refused because the write queue was full.
    pub refused_full: u64,
    /// Requests or lines refused as invalid.
    pub refused_invalid: u64,
}

impl SourceHealth {
    pub fn running(name: &str) -> Self {
        SourceHealth {
            name: name.into(),
            state: "running".into(),
            last_event_at: None,
            lag_ms: None,
            events: 0,
            errors: 0,
            last_error: None,
            refused_full: 0,
            refused_invalid: 0,
        }
    }
}

/// Every source's health, in the order they first appeared.
#[derive(Clone, Default)]
pub struct Health {
    sources: Arc<RwLock<Vec<SourceHealth>>>,
}

impl Health {
    fn update(&self, name: &str, f: impl FnOnce(&mut SourceHealth)) {
        let mut sources = self.sources.write().unwrap_or_else(PoisonError::into_inner);
        let index = match sources.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                sources.push(SourceHealth::running(name));
                sources.len() - 1
            }
        };
        f(&mut sources[index]);
    }

    /// Shows `name` (as running) if it is not shown yet.
    pub fn ensure(&self, name: &str) {
        self.update(name, |_| {});
    }

    /// Events from `name` were committed.
    pub fn saw(&self, name: &str, events: u64, last: Option<Timestamp>) {
        self.update(name, |s| {
            s.events += events;
            if let Some(ts) = last {
                s.last_event_at = Some(ts);
                s.lag_ms = Some((Timestamp::now().millis() - ts.millis()).max(0));
            }
        });
    }

    /// A problem `name` met and went on from (or failed on).
    pub fn failed(&self, name: &str, error: String) {
        self.update(name, |s| {
            s.errors += 1;
            s.last_error = Some(error);
        });
    }

    pub fn set_state(&self, name: &str, state: &str) {
        self.update(name, |s| {
            if s.state != state {
                tracing::info!(source = name, from = %s.state, to = state, "source state");
                s.state = state.to_string();
            }
        });
    }

    pub(crate) fn refused_full(&self, name: &str) {
        self.update(name, |s| s.refused_full += 1);
    }

    pub(crate) fn refused_invalid(&self, name: &str) {
        self.update(name, |s| s.refused_invalid += 1);
    }

    /// A copy of every source's health.
    pub fn snapshot(&self) -> Vec<SourceHealth> {
        self.sources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One source's health.
    pub fn get(&self, name: &str) -> Option<SourceHealth> {
        self.sources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|s| s.name == name)
            .cloned()
    }
}
