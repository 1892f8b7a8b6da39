//! Full-text index in its own SQLite file beside the database (`<db>-fts`), written by its own
//! thread (the indexer) one pipeline stage behind the writer.
//!
//! Why: FTS5 tokenising and segment merging were a third of the single writer's time. SQLite
//! allows one writer per file, so the index lives in a second file and the two threads commit
//! in parallel. The writer commits a batch, publishes it, acknowledges its producers and hands
//! it here; the indexer indexes it in its own transaction. Acknowledgement means committed, not
//! indexed: waiting for this stage as well put a second commit into every producer's round trip
//! (single-event POSTs went from 17,200-18,200 to 20,400-21,700 events/s when it stopped, see
//! docs/BENCHMARKS.md), and search does not need it, because `query::search` checks the events
//! above `indexed_through` in memory. The queue depth a producer is refused at still counts a
//! batch until it is indexed, so this stage's backlog is bounded like the writer's.
//!
//! The index is derived data. The file records the epoch of its database and the last seq it
//! covers (`fts_state`, updated in the same transaction as the rows); at open it is checked and
//! caught up from `events` (or rebuilt when it belongs to another database), so a crash, a
//! deleted file or a restored backup never leaves search wrong. Searches still cover the
//! in-flight window: `query::search` checks events above `indexed_through` in memory.
//!
//! The index keeps token positions (`detail=full`) so that a word with punctuation inside
//! (`main.rs`, `127.0.0.1`, `foo-bar`, `don't`) and a word of a script the tokenizer splits at
//! its marks (Hindi, Thai) are phrases: `main.rs` finds `main.rs`, never a document that holds
//! `main` and `rs` apart. `detail=none` refused every such query (search answered 500), and
//! `detail=column` refuses phrases too. Measured with `examples/fts_cost.rs`, 200,000 events,
//! 2 cores under load (other builds running, load average 10-12), 2026-11-30:
//!
//! ```text
//! full-text file, bytes/event          none   column   full
//!   varied agent events (875 B JSON)    118     210     233
//!   bench events (593 B, templated)      49-52   111     119-126
//! indexer stage alone, events/s
//!   varied agent events               62-64k    48-51k  50-53k
//!   bench events                        122k    109k    103k
//! whole store, bench events (both files, bytes/event; committed+indexed events/s)
//!   none 279-282 at 22-33k/s            full 349-359 at 23-28k/s
//! ```
//!
//! So positions cost about 70 bytes per bench event (115 on varied text) and a fifth of the
//! indexer's own speed; the indexer runs beside the writer, so committed ingest did not move
//! beyond the noise. Disk per event stays under the 450-byte floor of docs/CONTRACT.md §9 and goes past
//! its 300-byte target on the bench event: phrases that always answer right were judged worth
//! it (the alternative, `detail=none` with each piece a separate term and an in-memory check,
//! needs this crate to predict SQLite's tokenizer exactly, or it errors on other scripts again).
//! A file made with other arguments (an older sightline's `detail=none`) is dropped and rebuilt
//! from `events` at open ([`open_index`]).
//!
//! This module must never write to the main database, and never leave a batch in the queue
//! depth: when indexing fails the batch is released all the same and the index is caught up
//! from `events` before the next batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;

use rusqlite::{Connection, OpenFlags, params};
use sightline_schema::Event;

use crate::StoreError;
use crate::rows::{EVENT_COLUMNS, Leftovers, event_from_row};
use crate::writer::WriterStats;

/// Events read from `events` per catch-up transaction.
const CATCH_UP_CHUNK: i64 = 10_000;
/// Most documents the indexer puts in one transaction when batches queue up.
const MAX_DOCS_PER_TX: usize = 50_000;

/// Where the index of the database at `db` lives.
pub fn index_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-fts");
    PathBuf::from(p)
}

/// The index's FTS5 arguments. An index file made with other arguments (an older sightline's
/// `detail=none`) is rebuilt at open: see [`open_index`].
const FTS_ARGS: &str = "body, content='', contentless_delete=1, detail=full";

const SCHEMA: &str = "
CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(body, content='', contentless_delete=1, detail=full);
CREATE TABLE IF NOT EXISTS fts_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch TEXT NOT NULL,
    indexed_through INTEGER NOT NULL
);";

/// Opens (creating if needed) the index file for writing.
pub(crate) fn open_index(db: &Path, synchronous_full: bool) -> Result<Connection, StoreError> {
    let path = index_path(db);
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Open {
        path: path.clone(),
        message: e.to_string(),
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch(if synchronous_full {
        "PRAGMA synchronous = FULL;"
    } else {
        "PRAGMA synchronous = NORMAL;"
    })?;
    // Indexing appends segments and merges a few: a small cache does (memory is budgeted).
    conn.execute_batch("PRAGMA cache_size = -4000; PRAGMA wal_autocheckpoint = 16000;")?;
    drop_if_other_format(&conn)?;
    conn.execute_batch(SCHEMA)?;
    // Merging segments was half of the indexer's work with the default (4 segments per level
    // before a merge); 16 halves the merges for a slightly slower multi-segment query.
    conn.execute(
        "INSERT INTO events_fts (events_fts, rank) VALUES ('automerge', 16)",
        [],
    )?;
    conn.set_prepared_statement_cache_capacity(16);
    Ok(conn)
}

/// Drops an index made with other FTS5 arguments (an older sightline's `detail=none` cannot
/// answer phrases) together with its state, so that [`catch_up`] rebuilds it from `events`.
/// The index is derived data: nothing is lost, the first open after an upgrade takes longer.
fn drop_if_other_format(conn: &Connection) -> Result<(), StoreError> {
    use rusqlite::OptionalExtension;
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events_fts'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(sql) = sql
        && !sql.contains(FTS_ARGS)
    {
        tracing::warn!("the full-text index has an older format; rebuilding it");
        conn.execute_batch(
            "BEGIN; DROP TABLE events_fts; DROP TABLE IF EXISTS fts_state; COMMIT;",
        )?;
    }
    Ok(())
}

/// The last seq the index covers, and the epoch it was built for.
fn state(fts: &Connection) -> Result<Option<(String, u64)>, StoreError> {
    use rusqlite::OptionalExtension;
    Ok(fts
        .query_row(
            "SELECT epoch, indexed_through FROM fts_state WHERE id = 1",
            [],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)),
        )
        .optional()?)
}

fn set_state(fts: &Connection, epoch: &str, through: u64) -> rusqlite::Result<()> {
    fts.prepare_cached(
        "INSERT INTO fts_state (id, epoch, indexed_through) VALUES (1, ?1, ?2) \
         ON CONFLICT(id) DO UPDATE SET epoch = excluded.epoch, indexed_through = excluded.indexed_through",
    )?
    .execute(params![epoch, through as i64])?;
    Ok(())
}

/// Brings the index up to the main database's head: rebuilds it when it belongs to another
/// database (or is ahead of this one), drops rows retention has deleted, and indexes every
/// event it does not cover yet. Returns the seq it now covers.
pub(crate) fn catch_up(
    main: &Connection,
    fts: &mut Connection,
    epoch: &str,
) -> Result<u64, StoreError> {
    let head: i64 = main.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
    let oldest: i64 =
        main.query_row("SELECT COALESCE(MIN(seq), 0) FROM events", [], |r| r.get(0))?;
    let mut through = match state(fts)? {
        Some((e, t)) if e == epoch && t <= head as u64 => t,
        other => {
            if other.is_some() {
                tracing::warn!(
                    "the full-text index belongs to another database state; rebuilding it"
                );
            }
            let tx = fts.transaction()?;
            tx.execute(
                "INSERT INTO events_fts (events_fts) VALUES ('delete-all')",
                [],
            )?;
            set_state(&tx, epoch, 0)?;
            tx.commit()?;
            0
        }
    };
    fts.execute("DELETE FROM events_fts WHERE rowid < ?1", [oldest])?;
    if (through as i64) < head {
        tracing::info!(
            "indexing events {}..={head} for full-text search",
            through + 1
        );
    }
    while (through as i64) < head {
        let tx = fts.transaction()?;
        {
            let mut read = main.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let mut insert = tx.prepare_cached(INSERT_DOC)?;
            let mut rows = read.query(params![through as i64, CATCH_UP_CHUNK])?;
            let mut last = None;
            while let Some(row) = rows.next()? {
                let event = event_from_row(row)?;
                insert.execute(params![
                    event.seq as i64,
                    sightline_schema::filter::searchable_text(&event)
                ])?;
                last = Some(event.seq);
            }
            through = last.unwrap_or(head as u64);
        }
        set_state(&tx, epoch, through)?;
        tx.commit()?;
    }
    Ok(through)
}

const INSERT_DOC: &str = "INSERT INTO events_fts (rowid, body) VALUES (?1, ?2)";

/// One committed (and already acknowledged) batch on its way to the index.
pub(crate) struct IndexBatch {
    /// (seq, searchable text) of every newly stored event, in seq order.
    pub docs: Vec<(u64, String)>,
    /// The batch's events and row buffers: freed here rather than on the writer's thread.
    pub garbage: (Vec<Arc<Event>>, Vec<Leftovers>),
    /// Events the batch counted in the queue depth (released once indexed).
    pub count: usize,
}

pub(crate) enum IndexMsg {
    Batch(IndexBatch),
    /// Retention deleted every event below this seq.
    Forget(u64),
}

/// The indexer thread's state.
pub(crate) struct Indexer {
    pub fts: Connection,
    /// A read-only connection to the main file, for catching up after a failed batch.
    pub main: Connection,
    pub epoch: String,
    pub rx: Receiver<IndexMsg>,
    pub stats: Arc<WriterStats>,
    /// The last seq the index covers.
    pub through: u64,
}

impl Indexer {
    /// Runs until the writer is gone and everything it sent is indexed.
    pub fn run(mut self) {
        let mut behind = false;
        while let Ok(first) = self.rx.recv() {
            let mut batches = Vec::new();
            let mut docs = 0;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    IndexMsg::Batch(b) => {
                        docs += b.docs.len();
                        batches.push(b);
                    }
                    IndexMsg::Forget(below) => {
                        if let Err(e) = self
                            .fts
                            .execute("DELETE FROM events_fts WHERE rowid < ?1", [below as i64])
                        {
                            tracing::warn!("full-text retention: {e}");
                        }
                    }
                }
                if docs < MAX_DOCS_PER_TX {
                    next = self.rx.try_recv().ok();
                }
            }
            if behind {
                behind = self.resync();
            }
            if !behind && let Err(e) = self.index(&batches) {
                tracing::error!(
                    "full-text indexing failed, catching up from the events table: {e}"
                );
                behind = self.resync();
            }
            self.stats
                .indexed_through
                .store(self.through, Ordering::Release);
            self.release(batches);
        }
    }

    /// Indexes the batches in one transaction.
    fn index(&mut self, batches: &[IndexBatch]) -> rusqlite::Result<()> {
        let through = self.through;
        // After a catch-up, what it already covered is skipped.
        let docs = || {
            batches
                .iter()
                .flat_map(|b| &b.docs)
                .filter(move |d| d.0 > through)
        };
        let Some(last) = docs().map(|d| d.0).max() else {
            return Ok(());
        };
        let tx = self.fts.transaction()?;
        {
            let mut insert = tx.prepare_cached(INSERT_DOC)?;
            for (seq, text) in docs() {
                insert.execute(params![*seq as i64, text])?;
            }
        }
        set_state(&tx, &self.epoch, last)?;
        tx.commit()?;
        self.through = last;
        Ok(())
    }

    /// Catches up from `events`; true when that failed too (try again next time).
    fn resync(&mut self) -> bool {
        match catch_up(&self.main, &mut self.fts, &self.epoch) {
            Ok(through) => {
                self.through = through;
                false
            }
            Err(e) => {
                tracing::error!("full-text catch-up failed: {e}");
                true
            }
        }
    }

    /// The batches are indexed (or queued for catch-up): they leave the queue depth, and their
    /// events and buffers are freed here rather than on the writer's thread.
    fn release(&self, batches: Vec<IndexBatch>) {
        for batch in batches {
            self.stats.depth.fetch_sub(batch.count, Ordering::AcqRel);
            drop(batch.garbage);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The format check at open compares against `FTS_ARGS`: the schema must make exactly it,
    /// or every open would rebuild the index.
    #[test]
    fn the_schema_makes_the_format_the_open_check_expects() {
        assert!(SCHEMA.contains(&format!("fts5({FTS_ARGS})")));
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        let conn = open_index(&db, false).unwrap();
        conn.execute("INSERT INTO events_fts (rowid, body) VALUES (1, 'a b')", [])
            .unwrap();
        drop(conn);
        // Opening again keeps what is there.
        let conn = open_index(&db, false).unwrap();
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM events_fts WHERE events_fts MATCH '\"a b\"'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
    }
}
