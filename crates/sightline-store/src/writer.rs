//! The single writer: one thread that owns the only write connection, batches whatever is
//! queued into one transaction (group commit), assigns seqs, maintains derived rows, and only
//! then acknowledges and announces the events.
//!
//! Rules this module keeps: nothing is acknowledged before its transaction commits; seqs are
//! strictly increasing and announced in order; a failed transaction acknowledges nothing and
//! leaves the seq counter where it was. It must never block on a subscriber: announcing is a
//! callback that must not block. Full-text indexing is not its job: a committed batch is
//! acknowledged here and goes on to the indexer (`fulltext`), which releases its place in the
//! queue depth once it is indexed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use sightline_schema::{Event, Timestamp};
use tokio::sync::oneshot;

use crate::aggregate::BatchAggregates;
use crate::codec::{self, Codec, Encoder, Trainer};
use crate::fulltext::{IndexBatch, IndexMsg};
use crate::retention;
use crate::rows::{INSERT_EVENT, Leftovers, PreparedEvent, insert_event};
use crate::{Ack, StoreError};

/// What the writer does with committed events (the hub publishes them on its bus).
pub type OnCommit = Box<dyn Fn(Vec<Arc<Event>>) + Send>;

/// One producer request: its events, and where to send the acknowledgement.
pub struct WriteJob {
    pub events: Vec<PreparedEvent>,
    pub reply: oneshot::Sender<Result<Vec<Ack>, StoreError>>,
}

pub(crate) enum Message {
    Write(WriteJob),
    /// Run retention now with this cutoff (tests and the admin API).
    Retain(Timestamp, oneshot::Sender<Result<u64, StoreError>>),
}

/// A histogram the writer fills without a lock: one atomic per bucket and one for the sum, so
/// recording a batch costs two uncontended atomic adds and a reader (`/metrics`) never makes
/// the writer wait. Values are integers in the histogram's own unit (events, microseconds).
pub struct AtomicHistogram {
    /// Inclusive upper bounds, ascending; values above the last go to the overflow bucket.
    bounds: &'static [u64],
    /// Per bucket (not cumulative), with the overflow bucket last.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

/// What an [`AtomicHistogram`] held when it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// (inclusive upper bound, observations in this bucket alone); the overflow bucket is
    /// last, with `u64::MAX` as its bound.
    pub buckets: Vec<(u64, u64)>,
    pub sum: u64,
    /// Observations: the buckets' total, so the two always agree.
    pub count: u64,
}

impl AtomicHistogram {
    pub fn new(bounds: &'static [u64]) -> Self {
        debug_assert!(bounds.is_sorted());
        AtomicHistogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: u64) {
        let bucket = self.bounds.partition_point(|&b| b < value);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Bucket by bucket, so a read during a record may see the count a moment before the sum:
    /// harmless for a scrape, and the count is never out of step with the buckets.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<(u64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(u64::MAX))
            .zip(self.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        HistogramSnapshot {
            count: buckets.iter().map(|b| b.1).sum(),
            buckets,
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

/// Bounds of [`WriterStats::commit_batch_events`]: events per committed batch.
pub const BATCH_EVENTS_BOUNDS: &[u64] = &[1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000];
/// Bounds of [`WriterStats::commit_latency_us`], in microseconds: 100 µs to 10 s.
pub const COMMIT_LATENCY_US_BOUNDS: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Counters shared with the handle.
pub struct WriterStats {
    /// Events queued and not yet through the pipeline (committed and indexed): what a
    /// producer is refused at, so the indexer's backlog is bounded too.
    pub depth: AtomicUsize,
    /// Last committed seq.
    pub head_seq: AtomicU64,
    /// Events stored in total (kept current so health never counts rows).
    pub stored: AtomicU64,
    /// Batches committed, and the events they held (for the benchmark's batch size figure).
    pub batches: AtomicU64,
    pub batched_events: AtomicU64,
    /// Events removed by retention.
    pub retained_away: AtomicU64,
    /// How long events are kept, in milliseconds (0: forever). Read at every sweep, so a change
    /// (`Store::set_retention`, the settings API) takes effect at the next one.
    pub retention_ms: AtomicU64,
    /// Events per committed batch.
    pub commit_batch_events: AtomicHistogram,
    /// Per committed batch, from its first job reaching the writer to its transaction's
    /// commit (linger, inserts and the commit itself), in microseconds.
    pub commit_latency_us: AtomicHistogram,
    /// The last seq the full-text indexer covers (kept by the indexer; `Store::indexer_lag`).
    pub indexed_through: AtomicU64,
}

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            depth: AtomicUsize::new(0),
            head_seq: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            batched_events: AtomicU64::new(0),
            retained_away: AtomicU64::new(0),
            retention_ms: AtomicU64::new(0),
            commit_batch_events: AtomicHistogram::new(BATCH_EVENTS_BOUNDS),
            commit_latency_us: AtomicHistogram::new(COMMIT_LATENCY_US_BOUNDS),
            indexed_through: AtomicU64::new(0),
        }
    }
}

pub(crate) struct WriterConfig {
    pub max_batch: usize,
    pub linger: Duration,
    pub retention_every: Duration,
}

pub(crate) struct Writer {
    pub conn: Connection,
    pub rx: Receiver<Message>,
    pub stats: Arc<WriterStats>,
    pub on_commit: OnCommit,
    pub config: WriterConfig,
    pub next_seq: u64,
    /// The indexer's queue; committed, acknowledged batches go there to be indexed.
    pub index_tx: Option<Sender<IndexMsg>>,
    pub indexer: Option<JoinHandle<()>>,
    /// The compression dictionary producers use, and its training.
    pub codec: Arc<Codec>,
    pub trainer: Trainer,
}

/// What a committed batch leaves for the stages after it.
struct Committed {
    acks: Vec<Vec<Ack>>,
    stored: Vec<Arc<Event>>,
    docs: Vec<(u64, String)>,
    leftovers: Vec<Leftovers>,
}

impl Writer {
    /// Runs until every sender is gone, then returns after the last batch commits.
    pub fn run(mut self) {
        let mut last_retention = Instant::now();
        let mut retention_backlog = true;
        loop {
            // Idle: wake up now and then for retention.
            let first = match self.rx.recv_timeout(self.config.retention_every) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    retention_backlog = self.retention_step();
                    last_retention = Instant::now();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut jobs = Vec::new();
            let mut count = 0;
            // When the batch's first job reached the writer: its commit latency starts there.
            let mut received = Instant::now();
            let push = |m: Message,
                        jobs: &mut Vec<WriteJob>,
                        count: &mut usize,
                        received: &mut Instant,
                        this: &mut Self| match m {
                Message::Write(job) => {
                    if jobs.is_empty() {
                        *received = Instant::now();
                    }
                    *count += job.events.len();
                    jobs.push(job);
                }
                Message::Retain(cutoff, reply) => {
                    let done = retention::delete_before_upto(&mut this.conn, cutoff, usize::MAX);
                    let _ = reply.send(done.map(|(n, below)| {
                        this.forget_below(below);
                        n
                    }));
                }
            };
            push(first, &mut jobs, &mut count, &mut received, &mut self);
            let deadline = Instant::now() + self.config.linger;
            while count < self.config.max_batch {
                let next = match self.rx.try_recv() {
                    Ok(m) => m,
                    Err(_) if self.config.linger.is_zero() => break,
                    Err(_) => match self
                        .rx
                        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    {
                        Ok(m) => m,
                        Err(_) => break,
                    },
                };
                push(next, &mut jobs, &mut count, &mut received, &mut self);
            }
            if !jobs.is_empty() {
                self.commit(jobs, count, received);
            }
            if let Some(dictionary) = self.trainer.ready() {
                self.install_dictionary(&dictionary);
            }
            self.trainer.check(&self.codec);
            // Retention runs between batches, a bounded chunk at a time, so it never stalls ingest.
            if retention_backlog || last_retention.elapsed() >= self.config.retention_every {
                retention_backlog = self.retention_step();
                last_retention = Instant::now();
            }
        }
        // Every producer is gone: let the indexer finish what it has, then stop.
        self.index_tx.take();
        if let Some(indexer) = self.indexer.take() {
            let _ = indexer.join();
        }
    }

    /// Commits a trained dictionary, then lets producers compress with it (never before: a
    /// row must not name a dictionary the database does not hold).
    fn install_dictionary(&mut self, content: &[u8]) {
        let Some(id) = codec::register(content) else {
            tracing::warn!(
                "a trained dictionary was unusable (its id is taken); keeping the old one"
            );
            return;
        };
        let saved = self.conn.execute(
            "INSERT OR IGNORE INTO dictionaries (id, content, created_at_seq) VALUES (?1, ?2, ?3)",
            params![id as i64, content, self.next_seq as i64],
        );
        match saved {
            Ok(_) => self.codec.set(Encoder::new(id, content)),
            Err(e) => tracing::warn!("could not store a compression dictionary: {e}"),
        }
    }

    fn forget_below(&self, below: u64) {
        if let Some(tx) = &self.index_tx {
            let _ = tx.send(IndexMsg::Forget(below));
        }
    }

    /// One chunk of retention; true when more is left to delete.
    fn retention_step(&mut self) -> bool {
        let keep_ms = self.stats.retention_ms.load(Ordering::Relaxed);
        if keep_ms == 0 {
            return false;
        }
        let cutoff = Timestamp(
            Timestamp::now()
                .millis()
                .saturating_sub(keep_ms.min(i64::MAX as u64) as i64),
        );
        match retention::delete_before_upto(&mut self.conn, cutoff, retention::CHUNK) {
            Ok((n, below)) => {
                if n > 0 {
                    self.forget_below(below);
                    tracing::info!(deleted = n, cutoff = %cutoff, "retention sweep");
                }
                self.stats.retained_away.fetch_add(n, Ordering::Relaxed);
                self.stats.stored.fetch_sub(
                    n.min(self.stats.stored.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
                n as usize >= retention::CHUNK
            }
            Err(e) => {
                tracing::warn!(
                    "retention failed: {e}; it is retried at the next sweep (check the disk and the database file's permissions)"
                );
                false
            }
        }
    }

    fn commit(&mut self, jobs: Vec<WriteJob>, count: usize, received: Instant) {
        let start_seq = self.next_seq;
        let mut jobs = jobs;
        match self.write_batch(&mut jobs) {
            Ok(Committed {
                acks,
                stored,
                docs,
                leftovers,
            }) => {
                let latency = received.elapsed().as_micros().min(u64::MAX as u128) as u64;
                self.stats.commit_latency_us.observe(latency);
                self.stats.commit_batch_events.observe(count as u64);
                self.stats
                    .head_seq
                    .store(self.next_seq - 1, Ordering::Release);
                self.stats
                    .stored
                    .fetch_add(stored.len() as u64, Ordering::Relaxed);
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .batched_events
                    .fetch_add(count as u64, Ordering::Relaxed);
                // Announce before acknowledging, so that live subscribers see an event no later
                // than its producer learns it is stored.
                if !stored.is_empty() {
                    (self.on_commit)(stored.clone());
                }
                // Committed is acknowledged: indexing is not waited for (search covers what
                // the index does not yet, see `fulltext`).
                for (job, acks) in jobs.into_iter().zip(acks) {
                    let _ = job.reply.send(Ok(acks));
                }
                let batch = IndexBatch {
                    docs,
                    garbage: (stored, leftovers),
                    count,
                };
                self.hand_to_indexer(batch);
            }
            Err(e) => {
                tracing::error!("batch of {count} events not committed: {e}");
                self.next_seq = start_seq;
                self.stats.depth.fetch_sub(count, Ordering::AcqRel);
                for job in jobs {
                    let _ = job.reply.send(Err(StoreError::Commit(e.to_string())));
                }
            }
        }
    }

    /// The batch is committed and acknowledged: the indexer releases it once it is indexed.
    /// Without an indexer (it died), release it now: the index catches up from `events` at the
    /// next open.
    fn hand_to_indexer(&mut self, batch: IndexBatch) {
        let batch = match &self.index_tx {
            Some(tx) => match tx.send(IndexMsg::Batch(batch)) {
                Ok(()) => return,
                Err(e) => match e.0 {
                    IndexMsg::Batch(b) => b,
                    IndexMsg::Forget(_) => return,
                },
            },
            None => batch,
        };
        tracing::error!(
            "the full-text indexer is gone; events are stored but not indexed until the hub restarts"
        );
        self.stats.depth.fetch_sub(batch.count, Ordering::AcqRel);
    }

    /// Inserts every job's events in one transaction. Returns per-job acks, the stored events
    /// and their full-text documents.
    fn write_batch(&mut self, jobs: &mut [WriteJob]) -> rusqlite::Result<Committed> {
        let tx = self.conn.transaction()?;
        let mut acks = Vec::with_capacity(jobs.len());
        let mut stored = Vec::new();
        let mut docs = Vec::new();
        let mut leftovers = Vec::new();
        let mut aggregates = BatchAggregates::default();
        let first_seq = self.next_seq;
        {
            let mut insert = tx.prepare_cached(INSERT_EVENT)?;
            let mut find = tx.prepare_cached("SELECT seq FROM events WHERE event_id = ?1")?;
            for job in jobs.iter_mut() {
                let mut job_acks = Vec::with_capacity(job.events.len());
                for prepared in std::mem::take(&mut job.events) {
                    let seq = self.next_seq;
                    if insert_event(&mut insert, seq, &prepared)? {
                        self.next_seq += 1;
                        let (mut event, fts, rest) = prepared.into_parts();
                        docs.push((seq, fts));
                        leftovers.push(rest);
                        event.seq = seq;
                        aggregates.fold(&event);
                        self.trainer.observe(&event);
                        stored.push(Arc::new(event));
                        job_acks.push(Ack {
                            seq,
                            duplicate: false,
                        });
                    } else {
                        let existing: i64 =
                            find.query_row([&prepared.event.event_id], |r| r.get(0))?;
                        job_acks.push(Ack {
                            seq: existing as u64,
                            duplicate: true,
                        });
                    }
                }
                acks.push(job_acks);
            }
        }
        aggregates.write(&tx)?;
        if self.next_seq > first_seq {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO seq_marks (second, first_seq) VALUES (?1, ?2)",
            )?
            .execute(params![Timestamp::now().millis() / 1000, first_seq as i64])?;
        }
        tx.commit()?;
        Ok(Committed {
            acks,
            stored,
            docs,
            leftovers,
        })
    }
}
