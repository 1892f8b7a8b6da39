//! The in-process bus: every committed event, in seq order, to every live subscriber.
//!
//! A `tokio::sync::broadcast` channel: publishing never waits for a subscriber, and a
//! subscriber that falls behind the ring learns it (`Lagged`) and catches up from SQLite.
//! Each event's JSON is made at most once, by whoever needs it first, and shared.

use std::sync::{Arc, OnceLock};

use sightline_schema::Event;
use tokio::sync::broadcast;

/// A committed event with its JSON, shared by every subscriber.
#[derive(Debug)]
pub struct BusEvent {
    pub event: Arc<Event>,
    json: OnceLock<String>,
}

impl BusEvent {
    pub fn new(event: Arc<Event>) -> Arc<Self> {
        Arc::new(BusEvent {
            event,
            json: OnceLock::new(),
        })
    }

    pub fn seq(&self) -> u64 {
        self.event.seq
    }

    /// The event as the API writes it (with `seq`).
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| self.event.to_json())
    }
}

/// Events the ring keeps for slow subscribers before they lag.
pub const BUS_CAPACITY: usize = 16_384;

#[derive(Clone)]
pub struct Bus {
    tx: broadcast::Sender<Arc<BusEvent>>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus {
            tx: broadcast::channel(BUS_CAPACITY).0,
        }
    }
}

impl Bus {
    /// Called by the writer after commit, in seq order. Never blocks.
    pub fn publish(&self, events: Vec<Arc<Event>>) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        for event in events {
            let _ = self.tx.send(BusEvent::new(event));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.tx.subscribe()
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}
