//! Versioned schema migrations, tracked in SQLite's `user_version`.
//!
//! Each entry of [`MIGRATIONS`] runs once, in order, inside a transaction. Never edit a
//! migration that has shipped: add a new one.

use rusqlite::Connection;

use crate::StoreError;

/// Index = version - 1.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

-- One row per event. Vocabularies are small integers (sightline_schema codes); tags, metrics and
-- payload are JSON text, NULL when empty. duration_ms has no declared type so that an integer
-- stays an integer and a fraction a fraction.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    source INTEGER NOT NULL,
    source_event TEXT NOT NULL,
    run_id TEXT,
    session_id TEXT,
    parent_session_id TEXT,
    agent TEXT,
    entity_type INTEGER NOT NULL,
    entity_id TEXT,
    status INTEGER,
    severity INTEGER NOT NULL,
    title TEXT NOT NULL,
    summary TEXT,
    duration_ms,
    metrics TEXT,
    host TEXT,
    pid INTEGER,
    thread_id INTEGER,
    correlation_id TEXT,
    tags TEXT,
    payload TEXT
);
-- Few indexes on purpose: each one costs ingest throughput (issue 2, docs/CONTRACT.md §9).
CREATE UNIQUE INDEX events_event_id ON events(event_id);
CREATE INDEX events_run ON events(run_id, seq) WHERE run_id IS NOT NULL;
-- Partial: only failures are indexed, so it costs nothing for the ordinary event.
CREATE INDEX events_failures ON events(seq) WHERE severity = 4 OR status = 6;

-- Full text over title, summary, ids and payload strings; rowid = seq. detail=none keeps no
-- positions: word and prefix queries work, phrases do not, and the index is several times smaller.
CREATE VIRTUAL TABLE events_fts USING fts5(body, content='', contentless_delete=1, detail=none);

-- Derived rows, maintained by the writer as events commit.
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    source INTEGER NOT NULL,
    agent TEXT,
    title TEXT NOT NULL,
    title_rank INTEGER NOT NULL,
    status INTEGER,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    last_event_at INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    event_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    session_count INTEGER NOT NULL,
    input_tokens REAL NOT NULL,
    output_tokens REAL NOT NULL,
    cache_read_tokens REAL NOT NULL,
    cache_write_tokens REAL NOT NULL,
    cost_usd REAL NOT NULL
);
CREATE INDEX runs_recent ON runs(last_event_at, run_id);

CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    run_id TEXT,
    parent_session_id TEXT,
    agent TEXT,
    source INTEGER NOT NULL,
    title TEXT NOT NULL,
    title_rank INTEGER NOT NULL,
    status INTEGER,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    last_event_at INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    event_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    input_tokens REAL NOT NULL,
    output_tokens REAL NOT NULL,
    cache_read_tokens REAL NOT NULL,
    cache_write_tokens REAL NOT NULL,
    cost_usd REAL NOT NULL
);
CREATE INDEX sessions_run ON sessions(run_id);
CREATE INDEX sessions_parent ON sessions(parent_session_id) WHERE parent_session_id IS NOT NULL;
CREATE INDEX sessions_recent ON sessions(last_event_at);

-- Per-minute counters (by event ts) so that stats never scan events.
CREATE TABLE stats_minute (
    minute INTEGER NOT NULL,
    source INTEGER NOT NULL,
    entity_type INTEGER NOT NULL,
    severity INTEGER NOT NULL,
    events INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    input_tokens REAL NOT NULL,
    output_tokens REAL NOT NULL,
    cost_usd REAL NOT NULL,
    PRIMARY KEY (minute, source, entity_type, severity)
) WITHOUT ROWID;

-- The first seq the hub assigned in each second of its own clock: retention deletes by
-- arrival age with this map instead of an index on ts.
CREATE TABLE seq_marks (second INTEGER PRIMARY KEY, first_seq INTEGER NOT NULL);
"#,
    // 2: full text moves to its own file (`fulltext.rs`), indexed by its own thread; the index is
    // rebuilt there from `events` at the first open.
    r#"
DROP TABLE IF EXISTS events_fts;
"#,
    // 3: payload and metrics may be zstd frames (BLOB) made with one of these dictionaries,
    // trained from this database's own events (`codec.rs`). id = zstd's dictionary id.
    r#"
CREATE TABLE dictionaries (
    id INTEGER PRIMARY KEY,
    content BLOB NOT NULL,
    created_at_seq INTEGER NOT NULL
);
"#,
    // 4: when (by the producer's clock) the stored status was set, so that a batch arriving
    // late (a queue flushed at exit, spans exported when they end) neither overwrites a newer
    // status nor reopens a wait with older work. NULL on rows from before: unknown, any newer
    // batch may set it.
    r#"
ALTER TABLE runs ADD COLUMN status_at INTEGER;
ALTER TABLE sessions ADD COLUMN status_at INTEGER;
"#,
    // 5: the hub's liveness sweep (`liveness.rs`, sightline-core::liveness): which rule set the
    // stored status (`pid`, `heartbeat`, `idle`, `stream`; NULL when the producer set it) and
    // why, so the API can say "ended by the hub: process 1234 is gone". The partial indexes
    // hold only open rows, the ones a sweep reads, so it never scans finished history.
    r#"
ALTER TABLE runs ADD COLUMN liveness_rule TEXT;
ALTER TABLE runs ADD COLUMN liveness_reason TEXT;
ALTER TABLE sessions ADD COLUMN liveness_rule TEXT;
ALTER TABLE sessions ADD COLUMN liveness_reason TEXT;
CREATE INDEX runs_open ON runs(last_event_at) WHERE ended_at IS NULL;
CREATE INDEX sessions_open ON sessions(last_event_at) WHERE ended_at IS NULL;
-- Runs the sweep failed for silence: heard from again, they are running again.
CREATE INDEX runs_silenced ON runs(last_event_at) WHERE liveness_rule = 'heartbeat';
"#,
    // 6: a run's working directory, kept when its events first name one (`aggregate.rs`), so
    // the runs list shows each run's project from a column instead of decoding up to 2,000
    // events per listed run (the first page over 1 M events went from 0.3 ms to 65-96 ms).
    // Runs stored before it are filled once by `backfill_run_cwds` below.
    r#"
ALTER TABLE runs ADD COLUMN cwd TEXT;
"#,
];

/// The version that added `runs.cwd`: upgrading past it fills the column for stored runs.
const RUN_CWD_VERSION: i64 = 6;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`]; refuses a database from a newer sightline.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        if index as i64 + 1 == RUN_CWD_VERSION && current > 0 {
            crate::live::backfill_run_cwds(&tx)?;
        }
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
