//! The hub's shared state: the store, the bus, settings and counters that handlers read.
//!
//! Cloned into every handler (everything inside is behind `Arc`). It must never own a
//! database connection directly: reads go through the store's pool, writes through its writer.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde::Serialize;
use sightline_schema::Timestamp;
use sightline_store::Store;
use tokio::sync::{Notify, watch};

use crate::bus::Bus;
use crate::control::ControlBoard;
use crate::security::{Role, Security, SecuritySettings};

/// Settings the HTTP layer needs.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// When set, every endpoint but health and the dashboard's static files needs
    /// `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Largest ingest body, in bytes.
    pub max_body: usize,
    /// Largest import body, in bytes.
    pub max_import_body: usize,
    /// Retention in days, for health and settings.
    pub retention_days: Option<f64>,
    /// Tokens and roles, Host/Origin allow-lists, rate limits, audit log (`security.rs`).
    pub security: SecuritySettings,
    /// How long a WebSocket frame may wait for a client that stopped reading before the
    /// connection is closed with 4009 (`ws.rs`).
    pub ws_send_stall: std::time::Duration,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            token: None,
            max_body: 8 * 1024 * 1024,
            max_import_body: 512 * 1024 * 1024,
            retention_days: Some(14.0),
            security: SecuritySettings::default(),
            ws_send_stall: crate::ws::SEND_STALL,
        }
    }
}

/// One adapter's health, as `/api/v1/health` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterHealth {
    pub name: String,
    pub state: String,
    pub last_event_at: Option<Timestamp>,
    pub lag_ms: Option<i64>,
    pub events: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

impl AdapterHealth {
    pub fn running(name: &str) -> Self {
        AdapterHealth {
            name: name.into(),
            state: "running".into(),
            last_event_at: None,
            lag_ms: None,
            events: 0,
            errors: 0,
            last_error: None,
        }
    }
}

/// Counters of what the HTTP layer refused.
#[derive(Default)]
pub struct Counters {
    /// Requests refused with 503 because the queue was full.
    pub rejected_full: AtomicU64,
    /// Requests refused with 400.
    pub rejected_invalid: AtomicU64,
}

#[derive(Clone)]
pub struct Hub {
    pub store: Store,
    pub bus: Bus,
    pub settings: Arc<HubSettings>,
    pub started: Instant,
    pub adapters: Arc<RwLock<Vec<AdapterHealth>>>,
    pub counters: Arc<Counters>,
    pub control: ControlBoard,
    /// Notified when `POST /api/v1/shutdown` asks the hub to stop.
    pub shutdown: Arc<Notify>,
    /// Turns true when the hub is stopping: live streams end so the server can drain.
    pub closing: watch::Sender<bool>,
    /// Tokens, limits and the audit log.
    pub security: Arc<Security>,
}

impl Hub {
    pub fn new(store: Store, bus: Bus, settings: HubSettings) -> Hub {
        let mut security = settings.security.clone();
        if let Some(token) = &settings.token {
            // The single `--token` is the owner's: it may do everything.
            let _ = security.tokens.add(token, &[Role::Admin], "token");
        }
        Hub {
            security: Arc::new(Security::new(security)),
            store,
            bus,
            settings: Arc::new(settings),
            started: Instant::now(),
            adapters: Arc::new(RwLock::new(vec![
                AdapterHealth::running("http"),
                AdapterHealth::running("telemetry"),
            ])),
            counters: Arc::new(Counters::default()),
            control: ControlBoard::default(),
            shutdown: Arc::new(Notify::new()),
            closing: watch::channel(false).0,
        }
    }

    /// Tells every live stream to end.
    pub fn begin_closing(&self) {
        self.closing.send_replace(true);
    }

    /// Records events arriving through an adapter (for health).
    pub fn adapter_saw(&self, name: &str, events: u64, last: Option<Timestamp>) {
        let mut adapters = self.adapters.write().expect("adapters lock");
        if let Some(a) = adapters.iter_mut().find(|a| a.name == name) {
            a.events += events;
            if let Some(ts) = last {
                a.last_event_at = Some(ts);
                a.lag_ms = Some((Timestamp::now().millis() - ts.millis()).max(0));
            }
        }
    }

    /// Records an adapter failure (for health).
    pub fn adapter_failed(&self, name: &str, error: String) {
        let mut adapters = self.adapters.write().expect("adapters lock");
        if let Some(a) = adapters.iter_mut().find(|a| a.name == name) {
            a.errors += 1;
            a.last_error = Some(error);
        }
    }
}
