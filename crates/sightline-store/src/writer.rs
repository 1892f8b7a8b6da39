//! The single writer: one thread that owns the only write connection, batches whatever is
//! queued into one transaction (group commit), assigns seqs, maintains derived rows, and only
//! then acknowledges and announces the events.
//!
//! Rules this module keeps: nothing is acknowledged before its transaction commits; seqs are
//! strictly increasing and announced in order; a failed transaction acknowledges nothing and
//! leaves the seq counter where it was. It must never block on a subscriber: announcing is a
//! callback that must not block.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use sightline_schema::{Event, Timestamp};
use tokio::sync::oneshot;

use crate::aggregate::BatchAggregates;
use crate::retention;
use crate::rows::{INSERT_EVENT, PreparedEvent, insert_event};
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

/// Counters shared with the handle.
#[derive(Default)]
pub struct WriterStats {
    /// Events queued and not yet committed.
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
}

pub(crate) struct WriterConfig {
    pub max_batch: usize,
    pub linger: Duration,
    pub retention: Option<Duration>,
    pub retention_every: Duration,
}

pub(crate) struct Writer {
    pub conn: Connection,
    pub rx: Receiver<Message>,
    pub stats: Arc<WriterStats>,
    pub on_commit: OnCommit,
    pub config: WriterConfig,
    pub next_seq: u64,
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
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut jobs = Vec::new();
            let mut count = 0;
            let push = |m: Message,
                        jobs: &mut Vec<WriteJob>,
                        count: &mut usize,
                        this: &mut Self| match m {
                Message::Write(job) => {
                    *count += job.events.len();
                    jobs.push(job);
                }
                Message::Retain(cutoff, reply) => {
                    let _ =
                        reply.send(retention::delete_before(&mut this.conn, cutoff, usize::MAX));
                }
            };
            push(first, &mut jobs, &mut count, &mut self);
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
                push(next, &mut jobs, &mut count, &mut self);
            }
            if !jobs.is_empty() {
                self.commit(jobs, count);
            }
            // Retention runs between batches, a bounded chunk at a time, so it never stalls ingest.
            if retention_backlog || last_retention.elapsed() >= self.config.retention_every {
                retention_backlog = self.retention_step();
                last_retention = Instant::now();
            }
        }
    }

    /// One chunk of retention; true when more is left to delete.
    fn retention_step(&mut self) -> bool {
        let Some(keep) = self.config.retention else {
            return false;
        };
        let cutoff = Timestamp(Timestamp::now().millis() - keep.as_millis() as i64);
        match retention::delete_before(&mut self.conn, cutoff, retention::CHUNK) {
            Ok(n) => {
                self.stats.retained_away.fetch_add(n, Ordering::Relaxed);
                self.stats.stored.fetch_sub(
                    n.min(self.stats.stored.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
                n as usize >= retention::CHUNK
            }
            Err(e) => {
                tracing::warn!("retention failed: {e}");
                false
            }
        }
    }

    fn commit(&mut self, jobs: Vec<WriteJob>, count: usize) {
        let start_seq = self.next_seq;
        let mut jobs = jobs;
        match self.write_batch(&mut jobs) {
            Ok((acks, stored)) => {
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
                self.stats.depth.fetch_sub(count, Ordering::AcqRel);
                // Announce before acknowledging, so that live subscribers see an event no later
                // than its producer learns it is stored.
                if !stored.is_empty() {
                    (self.on_commit)(stored);
                }
                for (job, acks) in jobs.into_iter().zip(acks) {
                    let _ = job.reply.send(Ok(acks));
                }
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

    /// Inserts every job's events in one transaction. Returns per-job acks and the stored events.
    #[allow(clippy::type_complexity)]
    fn write_batch(
        &mut self,
        jobs: &mut [WriteJob],
    ) -> rusqlite::Result<(Vec<Vec<Ack>>, Vec<Arc<Event>>)> {
        let tx = self.conn.transaction()?;
        let mut acks = Vec::with_capacity(jobs.len());
        let mut stored = Vec::new();
        let mut aggregates = BatchAggregates::default();
        let first_seq = self.next_seq;
        {
            let mut insert = tx.prepare_cached(INSERT_EVENT)?;
            let mut fts =
                tx.prepare_cached("INSERT INTO events_fts (rowid, body) VALUES (?1, ?2)")?;
            let mut find = tx.prepare_cached("SELECT seq FROM events WHERE event_id = ?1")?;
            for job in jobs.iter_mut() {
                let mut job_acks = Vec::with_capacity(job.events.len());
                for prepared in std::mem::take(&mut job.events) {
                    let seq = self.next_seq;
                    if insert_event(&mut insert, seq, &prepared)? {
                        self.next_seq += 1;
                        fts.execute(params![seq as i64, prepared.fts])?;
                        let mut event = prepared.event;
                        event.seq = seq;
                        aggregates.fold(&event);
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
        Ok((acks, stored))
    }
}
