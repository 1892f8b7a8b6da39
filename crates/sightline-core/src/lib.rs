//! The middle of the sightline hub: what every path shares and nothing more — the bus, live
//! subscriptions, the one ingest path, per-source health, the control board, and the handles
//! sources receive. No HTTP here: the server and the sources both build on this crate and never
//! on each other.
//!
//! [`Core`] is cheap to clone (one `Arc`) and keeps its state private; callers use its
//! methods. It must never acknowledge an event before its commit, never let one slow
//! subscriber hold up another, and never expose a lock a caller could poison.

pub mod bus;
pub mod client_message;
pub mod control;
pub mod health;
pub mod ingest;
pub mod liveness;
pub mod plugins;
pub mod role;
pub mod source;
pub mod subscription;
pub mod supervisor;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_schema::Filter;
use sightline_store::{Store, StoreConfig, StoreError};
use tokio::sync::{Notify, watch};

pub use crate::bus::{Bus, BusEvent};
pub use crate::control::{Control, ControlBoard, ControlError, ControlSettings};
pub use crate::health::{Health, SourceHealth};
pub use crate::ingest::{Accepted, Backpressure, IngestError, IngestTotals, LineError, Pending};
pub use crate::role::{Access, Role};
pub use crate::source::{
    Decoded, EndpointSpec, HttpError, HttpRequest, HttpSource, Method, Reply, SchemaFn, Sink,
};
pub use crate::subscription::{ResumeGap, SubscriberGuard, Subscription, Transport};
pub use crate::supervisor::Controls;

struct Inner {
    store: Store,
    bus: Bus,
    health: Health,
    control: ControlBoard,
    /// Settings that change what runs: the source supervisor and the notification rules.
    controls: Controls,
    counters: ingest::Counters,
    /// Live subscribers per transport and their overflows, for `/metrics`.
    subscribers: Arc<subscription::SubscriberCounts>,
    /// Notified when someone asks the hub to stop (`POST /api/v1/shutdown`, a signal).
    shutdown: Notify,
    /// Turns true when the hub is stopping: live streams end so the server can drain.
    closing: watch::Sender<bool>,
    started: Instant,
}

/// The hub's shared state. Clone it freely.
#[derive(Clone)]
pub struct Core {
    inner: Arc<Inner>,
}

impl Core {
    /// Opens the store with its commits wired to a new bus.
    pub fn open(config: StoreConfig) -> Result<Core, StoreError> {
        let bus = Bus::default();
        let publisher = bus.clone();
        let store = Store::open(config, Box::new(move |events| publisher.publish(events)))?;
        Ok(Core::with(store, bus))
    }

    /// A core over a store whose commits already go to `bus`.
    pub fn with(store: Store, bus: Bus) -> Core {
        let health = Health::default();
        // The generic ingest paths are always there: show them from the start.
        health.ensure("http");
        Core {
            inner: Arc::new(Inner {
                store,
                bus,
                health,
                control: ControlBoard::default(),
                controls: Controls::default(),
                counters: ingest::Counters::default(),
                subscribers: Arc::default(),
                shutdown: Notify::new(),
                closing: watch::channel(false).0,
                started: Instant::now(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    pub fn control(&self) -> &ControlBoard {
        &self.inner.control
    }

    /// The source supervisor and the notification rules, for the settings API.
    pub fn controls(&self) -> &Controls {
        &self.inner.controls
    }

    /// How long the hub has run.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// A handle for the background source `name`.
    pub fn sink(&self, name: &'static str, stop: watch::Receiver<bool>) -> Sink {
        Sink::new(self, name, stop)
    }

    /// Starts a live subscription (see [`Subscription::start`]).
    pub async fn subscribe(
        &self,
        filter: Filter,
        cursor: Option<u64>,
        epoch: Option<&str>,
    ) -> (Subscription, Option<ResumeGap>) {
        let (mut sub, gap) =
            Subscription::start(self.store(), self.bus(), filter, cursor, epoch).await;
        sub.count_lags_into(self.inner.subscribers.lagged.clone());
        (sub, gap)
    }

    /// Counts a live subscriber of `transport` until the guard is dropped.
    pub fn track_subscriber(&self, transport: Transport) -> SubscriberGuard {
        SubscriberGuard::new(self.inner.subscribers.clone(), transport)
    }

    /// Live subscribers of `transport` now.
    pub fn subscribers(&self, transport: Transport) -> u64 {
        self.inner.subscribers.live(transport)
    }

    /// How many times, in total, a subscription fell behind the bus and caught up from SQLite.
    pub fn subscriber_lags(&self) -> u64 {
        self.inner
            .subscribers
            .lagged
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Asks the hub to stop.
    pub fn request_shutdown(&self) {
        self.inner.shutdown.notify_one();
    }

    /// Resolves when someone asks the hub to stop.
    pub async fn shutdown_requested(&self) {
        self.inner.shutdown.notified().await;
    }

    /// Tells every live stream to end.
    pub fn begin_closing(&self) {
        self.inner.closing.send_replace(true);
    }

    pub fn is_closing(&self) -> bool {
        *self.inner.closing.borrow()
    }

    /// A receiver that turns true when the hub is stopping.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }
}

/// The message of a caught panic, when it has one: what every place that contains panics (the
/// server's middleware, a source's supervisor, the binary's panic hook) logs and reports.
///
/// Redacted: a panic's message may quote the input the code failed on (issue 11 found a
/// redaction bug whose panic printed the very text it was redacting), and it goes to logs,
/// health and error events, which must never hold a secret.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    sightline_schema::redact::redact_str(&text).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn a_panic_message_never_carries_a_secret() {
        let caught = std::panic::catch_unwind(|| {
            let line = "password: hunter2-in-a-panic and AKIAIOSFODNN7EXAMPLE";
            panic!("cannot map `{line}`");
        })
        .unwrap_err();
        let message = panic_message(&*caught);
        assert!(message.starts_with("cannot map `password"), "{message}");
        assert!(!message.contains("hunter2-in-a-panic"), "{message}");
        assert!(!message.contains("AKIAIOSFODNN7EXAMPLE"), "{message}");
        assert_eq!(panic_message(&*Box::new("plain words")), "plain words");
        assert_eq!(panic_message(&*Box::new(7u8)), "no message");
    }
}
