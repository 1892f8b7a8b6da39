//! One live subscription: replay from SQLite after a cursor, then live events from the bus,
//! gap-free and duplicate-free, with catch-up from SQLite whenever the bus ring overflows.
//!
//! The order of operations is the whole trick: subscribe to the bus *first*, then read the
//! committed head; replay (cursor, head] from SQLite; then take live events, skipping every
//! seq already covered. The writer stores the head before publishing, so every event is either
//! at or below the head read here, or arrives on the bus. Used by SSE and WebSocket alike.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sightline_schema::Filter;
use sightline_store::query;
use tokio::sync::broadcast::error::RecvError;

use sightline_store::Store;

use crate::bus::{Bus, BusEvent};

/// Rows read from SQLite per replay step.
const REPLAY_PAGE: usize = 1000;

/// Why a resume could not be complete.
#[derive(Debug, Clone, PartialEq)]
pub enum ResumeGap {
    /// The cursor is from another database.
    OtherEpoch { expected: String },
    /// The cursor is ahead of this database's head: it cannot be from this database.
    AheadOfHead { head: u64 },
    /// Retention deleted events after the cursor.
    Expired { oldest_kept: u64 },
}

impl ResumeGap {
    pub fn reason(&self) -> String {
        match self {
            ResumeGap::OtherEpoch { expected } => format!(
                "the cursor is from another database (this one's epoch is {expected}); starting live"
            ),
            ResumeGap::AheadOfHead { head } => {
                format!("the cursor is ahead of this database's head ({head}); starting live")
            }
            ResumeGap::Expired { oldest_kept } => format!(
                "events after the cursor were deleted by retention; replaying from seq {oldest_kept}"
            ),
        }
    }
}

pub struct Subscription {
    /// Only the store and the bus: a subscription never needs the rest of the hub.
    store: Store,
    rx: tokio::sync::broadcast::Receiver<Arc<BusEvent>>,
    filter: Filter,
    /// Every seq up to here has been sent or skipped.
    covered: u64,
    /// Replay SQLite up to this seq before reading the bus again.
    replay_to: u64,
    pending: VecDeque<Arc<BusEvent>>,
    /// How many times the bus ring overflowed for this subscriber.
    pub lagged: u64,
    /// The hub-wide count of those overflows (`/metrics`), shared by every subscription the
    /// core starts; a subscription started on its own counts into one nobody reads.
    lag_total: Arc<AtomicU64>,
}

/// How a live subscriber is served, for counting them (`/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Sse,
    Ws,
}

impl Transport {
    pub const ALL: [Transport; 2] = [Transport::Sse, Transport::Ws];

    pub fn name(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::Ws => "ws",
        }
    }
}

/// Live subscribers per transport and the overflows of all of them: plain atomics, so counting
/// costs a stream nothing it would notice and a scrape never waits for a stream.
#[derive(Default)]
pub(crate) struct SubscriberCounts {
    live: [AtomicU64; 2],
    pub(crate) lagged: Arc<AtomicU64>,
}

impl SubscriberCounts {
    pub(crate) fn live(&self, transport: Transport) -> u64 {
        self.live[transport as usize].load(Ordering::Relaxed)
    }
}

/// Counts one live subscriber while it is held; dropping it (the stream ends, the client goes,
/// the task is aborted) uncounts it, so no path can forget to.
pub struct SubscriberGuard {
    counts: Arc<SubscriberCounts>,
    transport: Transport,
}

impl SubscriberGuard {
    pub(crate) fn new(counts: Arc<SubscriberCounts>, transport: Transport) -> Self {
        counts.live[transport as usize].fetch_add(1, Ordering::Relaxed);
        SubscriberGuard { counts, transport }
    }
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.counts.live[self.transport as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Subscription {
    /// Starts a subscription. `cursor` is the last seq the client has (None = live only).
    /// Returns the subscription and, when the resume cannot be complete, why.
    pub async fn start(
        store: &Store,
        bus: &Bus,
        filter: Filter,
        cursor: Option<u64>,
        epoch: Option<&str>,
    ) -> (Subscription, Option<ResumeGap>) {
        let rx = bus.subscribe();
        let head = store.head_seq();
        let mut gap = None;
        let mut from = match cursor {
            None => head,
            Some(_) if epoch.is_some_and(|e| e != store.epoch()) => {
                gap = Some(ResumeGap::OtherEpoch {
                    expected: store.epoch().to_string(),
                });
                head
            }
            Some(c) if c > head => {
                gap = Some(ResumeGap::AheadOfHead { head });
                head
            }
            Some(c) => c,
        };
        // Retention (in this process or an earlier one) may have deleted what follows the cursor.
        if cursor.is_some() && gap.is_none() {
            let oldest = store
                .read(|c| {
                    Ok(c.query_row("SELECT MIN(seq) FROM events", [], |r| {
                        r.get::<_, Option<i64>>(0)
                    })?)
                })
                .await
                .ok()
                .flatten()
                .unwrap_or(0) as u64;
            if oldest > from + 1 {
                gap = Some(ResumeGap::Expired {
                    oldest_kept: oldest,
                });
                from = oldest - 1;
            }
        }
        let sub = Subscription {
            store: store.clone(),
            rx,
            filter,
            covered: from,
            replay_to: head,
            pending: VecDeque::new(),
            lagged: 0,
            lag_total: Arc::default(),
        };
        (sub, gap)
    }

    /// Counts this subscription's overflows into `total` too.
    pub(crate) fn count_lags_into(&mut self, total: Arc<AtomicU64>) {
        self.lag_total = total;
    }

    /// The bus ring overflowed for this subscriber: from here it reads SQLite.
    fn note_lag(&mut self) {
        self.lagged += 1;
        self.lag_total.fetch_add(1, Ordering::Relaxed);
        self.replay_to = self.store.head_seq();
    }

    /// The last seq this subscription has covered (sent or filtered out).
    pub fn cursor(&self) -> u64 {
        self.covered
    }

    /// The next matching event; `None` when the hub shuts down.
    pub async fn next(&mut self) -> Option<Arc<BusEvent>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.covered < self.replay_to {
                if self.replay_page().await.is_err() {
                    // A failed read is retried; the bus keeps new events meanwhile.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                continue;
            }
            match self.rx.recv().await {
                Ok(e) if e.seq() <= self.covered => continue,
                Ok(e) => {
                    self.covered = e.seq();
                    if self.filter.matches(&e.event) {
                        return Some(e);
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Everything up to the committed head is in SQLite: read it from there.
                    self.note_lag();
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// The next matching event if one is ready now, without waiting; `None` when nothing is
    /// ready (or when catching up from SQLite is needed: [`Subscription::next`] does that).
    /// Lets a stream write every ready event in one chunk instead of one write per event.
    pub fn next_ready(&mut self) -> Option<Arc<BusEvent>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.covered < self.replay_to {
                return None;
            }
            match self.rx.try_recv() {
                Ok(e) if e.seq() <= self.covered => continue,
                Ok(e) => {
                    self.covered = e.seq();
                    if self.filter.matches(&e.event) {
                        return Some(e);
                    }
                }
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                    self.note_lag();
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    async fn replay_page(&mut self) -> Result<(), sightline_store::StoreError> {
        let (filter, after, head) = (self.filter.clone(), self.covered, self.replay_to);
        let events = self
            .store
            .read(move |c| query::replay(c, &filter, after, head, REPLAY_PAGE))
            .await?;
        let full = events.len() == REPLAY_PAGE;
        for e in events {
            self.covered = e.seq;
            if self.filter.matches(&e) {
                self.pending.push_back(BusEvent::new(Arc::new(e)));
            }
        }
        if !full {
            self.covered = head;
        }
        Ok(())
    }
}
