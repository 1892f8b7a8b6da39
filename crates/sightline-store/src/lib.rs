//! sightline's storage: one SQLite file (WAL), one writer thread that group-commits, and a pool
//! of read connections for queries.
//!
//! [`Store::submit`] hands events to the writer and returns a receiver that resolves only after
//! their transaction has committed: this is what makes "acknowledged means committed" true.
//! This crate must never hold a database lock across an `.await`, and never write from a read
//! connection.

pub mod aggregate;
pub mod codec;
pub mod fingerprint;
pub mod fulltext;
pub mod insight;
pub mod live;
pub mod liveness;
pub mod migrations;
pub mod query;
pub mod retention;
pub mod rows;
pub mod search_text;
pub mod workflow;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use sightline_schema::{Event, Timestamp};
use thiserror::Error;
use tokio::sync::oneshot;

pub use writer::{AtomicHistogram, HistogramSnapshot, OnCommit, WriteJob, WriterStats};

use crate::writer::{Message, Writer, WriterConfig};

/// What went wrong in storage, in words that say what to do.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open the database at {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error(
        "the database was written by a newer sightline (schema {found}, this build knows {supported}); upgrade sightline or use another --db"
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error("the write queue is full ({capacity} events waiting); retry shortly")]
    QueueFull { capacity: usize },
    #[error("the store is shutting down")]
    Closed,
    #[error("the batch was not committed: {0}")]
    Commit(String),
    #[error("bad cursor `{0}`: use the next_cursor of a previous page")]
    BadCursor(String),
    #[error("a read task failed: {0}")]
    Task(String),
}

/// The writer's answer for one event: its seq, and whether it was already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Ack {
    pub seq: u64,
    pub duplicate: bool,
}

/// Resolves when a submitted batch is committed (or failed).
pub type CommitReceiver = oneshot::Receiver<Result<Vec<Ack>, StoreError>>;

/// A batch the store would not queue, given back with the reason.
#[derive(Debug)]
pub struct Refused {
    pub error: StoreError,
    pub events: Vec<Event>,
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// Events that may wait for the writer before producers get "queue full".
    pub queue_capacity: usize,
    /// Most events in one transaction.
    pub max_batch: usize,
    /// How long the writer waits for more events before committing a partial batch.
    pub linger: Duration,
    /// Delete events older than this (by arrival); `None` keeps everything.
    pub retention: Option<Duration>,
    /// How often retention looks for old events.
    pub retention_every: Duration,
    /// `PRAGMA synchronous`: NORMAL survives a crash of the hub process (kill -9); FULL also
    /// survives power loss, at a throughput cost.
    pub synchronous_full: bool,
}

impl StoreConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            queue_capacity: 200_000,
            max_batch: 5_000,
            linger: Duration::ZERO,
            retention: Some(Duration::from_secs(14 * 24 * 3600)),
            retention_every: Duration::from_secs(60),
            synchronous_full: false,
        }
    }
}

/// A pool of read-only connections; a connection goes back to the pool when its guard drops.
struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    fn take(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
        {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|e| StoreError::Open {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(64);
        // The full-text index lives in its own file; searches join it as `fts`. Attached
        // files take the connection's read-only flag.
        conn.execute(
            "ATTACH DATABASE ?1 AS fts",
            [fulltext::index_path(&self.path).to_string_lossy()],
        )?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < 8 {
            idle.push(conn);
        }
    }
}

struct Inner {
    tx: Mutex<Option<SyncSender<Message>>>,
    stats: Arc<WriterStats>,
    readers: ReadPool,
    epoch: String,
    capacity: usize,
    writer: Mutex<Option<JoinHandle<()>>>,
    stop_checkpoints: Arc<std::sync::atomic::AtomicBool>,
    path: PathBuf,
    codec: Arc<codec::Codec>,
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// Turns off SQLite's memory statistics, process-wide, before the first connection: with them
/// on, every allocation SQLite makes takes one global mutex, which the writer, the indexer and
/// the readers then contend for. Nothing here reads those statistics. Too late (a connection
/// was opened first) is harmless: SQLite refuses and keeps them.
#[allow(
    unsafe_code,
    reason = "one FFI call into SQLite's process-wide configuration; rusqlite has no safe wrapper for it"
)]
fn tune_sqlite_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config with SQLITE_CONFIG_MEMSTATUS takes one int; called before any
        // connection of this process is opened (or it returns SQLITE_MISUSE and changes nothing).
        unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::os::raw::c_int,
            );
        }
    });
}

fn open_writer_connection(path: &Path, synchronous_full: bool) -> Result<Connection, StoreError> {
    tune_sqlite_once();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    let conn = Connection::open(path).map_err(|e| StoreError::Open {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Open {
            path: path.to_path_buf(),
            message: format!("WAL mode unavailable (got {mode})"),
        });
    }
    conn.execute_batch(if synchronous_full {
        "PRAGMA synchronous = FULL;"
    } else {
        "PRAGMA synchronous = NORMAL;"
    })?;
    // A bigger page cache for the writer keeps the indexes' hot pages in memory. The WAL is
    // checkpointed by a background thread ([`checkpointer`]); the writer's own auto-checkpoint
    // is only a safety net for when that thread falls far behind, so commits rarely do I/O
    // beyond appending to the WAL.
    conn.execute_batch(
        "PRAGMA cache_size = -16000; PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 16000;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Copies committed WAL frames into the database file and the full-text file every 250 ms
/// (PASSIVE: it never blocks the writer, the indexer or readers), so their commits stay cheap.
/// Ends when `stop` is set or the store is gone.
fn checkpointer(path: PathBuf, stop: Arc<std::sync::atomic::AtomicBool>) {
    let Ok(conn) = Connection::open(&path) else {
        return;
    };
    let fts = Connection::open(fulltext::index_path(&path)).ok();
    // The store holds the other reference: when it is dropped without `close`, stop too.
    while !stop.load(Ordering::Relaxed) && Arc::strong_count(&stop) > 1 {
        std::thread::sleep(Duration::from_millis(250));
        for c in std::iter::once(&conn).chain(fts.as_ref()) {
            if let Err(e) = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::debug!("background checkpoint: {e}");
            }
        }
    }
}

/// Makes every stored dictionary readable, and compresses with the newest.
fn load_dictionaries(conn: &Connection) -> Result<codec::Codec, StoreError> {
    let codec = codec::Codec::default();
    let mut stmt =
        conn.prepare("SELECT id, content FROM dictionaries ORDER BY created_at_seq, id")?;
    let mut rows = stmt.query([])?;
    let mut newest = None;
    while let Some(row) = rows.next()? {
        let (stored_id, content): (i64, Vec<u8>) = (row.get(0)?, row.get(1)?);
        match codec::register(&content) {
            Some(id) if id as i64 == stored_id => newest = Some((id, content)),
            _ => tracing::warn!(
                "compression dictionary {stored_id} is unusable; its rows will not read"
            ),
        }
    }
    if let Some((id, content)) = newest {
        codec.set(codec::Encoder::new(id, &content));
    }
    Ok(codec)
}

/// Opens the full-text index, catches it up with `events`, and starts its thread.
fn start_indexer(
    config: &StoreConfig,
    main: &Connection,
    epoch: &str,
    stats: Arc<WriterStats>,
) -> Result<(std::sync::mpsc::Sender<fulltext::IndexMsg>, JoinHandle<()>), StoreError> {
    let mut fts = fulltext::open_index(&config.path, config.synchronous_full)?;
    let through = fulltext::catch_up(main, &mut fts, epoch)?;
    stats.indexed_through.store(through, Ordering::Release);
    let main_reader = Connection::open_with_flags(
        &config.path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let (tx, rx) = std::sync::mpsc::channel();
    let indexer = fulltext::Indexer {
        fts,
        main: main_reader,
        epoch: epoch.to_string(),
        rx,
        stats,
        through,
    };
    let handle = std::thread::Builder::new()
        .name("sightline-index".into())
        .spawn(move || indexer.run())
        .map_err(|e| StoreError::Open {
            path: config.path.clone(),
            message: format!("cannot start the full-text indexer: {e}"),
        })?;
    Ok((tx, handle))
}

/// A retention as the writer reads it: milliseconds, 0 for forever (a zero duration, too, keeps
/// everything rather than deleting every event at once).
fn retention_ms(keep: Option<Duration>) -> u64 {
    keep.map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64)
}

impl Store {
    /// Opens (creating and migrating if needed) and starts the writer thread.
    pub fn open(config: StoreConfig, on_commit: OnCommit) -> Result<Store, StoreError> {
        let mut conn = open_writer_connection(&config.path, config.synchronous_full)?;
        migrations::migrate(&mut conn)?;
        let epoch: String = match conn
            .query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
                r.get(0)
            })
            .optional()?
        {
            Some(epoch) => epoch,
            None => {
                let epoch = uuid::Uuid::new_v4().simple().to_string();
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('epoch', ?1)",
                    [&epoch],
                )?;
                epoch
            }
        };
        let head = query::head_seq(&conn)?;
        let stored: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
        let stats = Arc::new(WriterStats::default());
        stats.head_seq.store(head, Ordering::Release);
        stats.stored.store(stored as u64, Ordering::Relaxed);
        stats
            .retention_ms
            .store(retention_ms(config.retention), Ordering::Relaxed);
        // The channel bounds jobs; `depth` bounds events (what memory actually holds).
        let codec = Arc::new(load_dictionaries(&conn)?);
        let (tx, rx) = sync_channel(4096);
        let (index_tx, indexer) = start_indexer(&config, &conn, &epoch, stats.clone())?;
        let writer = Writer {
            conn,
            rx,
            stats: stats.clone(),
            on_commit,
            config: WriterConfig {
                max_batch: config.max_batch.max(1),
                linger: config.linger,
                retention_every: config.retention_every,
            },
            next_seq: head + 1,
            index_tx: Some(index_tx),
            indexer: Some(indexer),
            trainer: codec::Trainer::new(codec.has_dictionary()),
            codec: codec.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("sightline-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Open {
                path: config.path.clone(),
                message: format!("cannot start the writer: {e}"),
            })?;
        let stop_checkpoints = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let (path, stop) = (config.path.clone(), stop_checkpoints.clone());
            let _ = std::thread::Builder::new()
                .name("sightline-checkpoint".into())
                .spawn(move || checkpointer(path, stop));
        }
        Ok(Store {
            inner: Arc::new(Inner {
                stop_checkpoints,
                tx: Mutex::new(Some(tx)),
                stats,
                readers: ReadPool {
                    path: config.path.clone(),
                    idle: Mutex::new(Vec::new()),
                },
                epoch,
                capacity: config.queue_capacity,
                writer: Mutex::new(Some(handle)),
                path: config.path,
                codec,
            }),
        })
    }

    /// Queues events for the writer. The receiver resolves after commit. Refuses at once (never
    /// waits) when the queue is full, so producers get a fast 503 rather than a hang.
    pub fn submit(
        &self,
        events: Vec<Event>,
    ) -> Result<oneshot::Receiver<Result<Vec<Ack>, StoreError>>, StoreError> {
        self.try_submit(events).map_err(|refused| refused.error)
    }

    /// Like [`Store::submit`], but a refused batch comes back whole, so a producer that waits
    /// and retries (a background source) never has to copy its batch before each attempt.
    pub fn try_submit(&self, events: Vec<Event>) -> Result<CommitReceiver, Refused> {
        let n = events.len();
        let stats = &self.inner.stats;
        let before = stats.depth.fetch_add(n, Ordering::AcqRel);
        let refuse = |error: StoreError, events: Vec<Event>| {
            stats.depth.fetch_sub(n, Ordering::AcqRel);
            Refused { error, events }
        };
        if before > 0 && before + n > self.inner.capacity {
            return Err(refuse(
                StoreError::QueueFull {
                    capacity: self.inner.capacity,
                },
                events,
            ));
        }
        // Serialising here, on the producer's thread and before taking the sender's lock, keeps
        // that work off the single writer and lets producers prepare in parallel.
        let prepared: Vec<rows::PreparedEvent> = events
            .into_iter()
            .map(|e| rows::PreparedEvent::new(e, &self.inner.codec))
            .collect();
        let unprepare = |p: Vec<rows::PreparedEvent>| -> Vec<Event> {
            p.into_iter().map(|p| p.event).collect()
        };
        let guard = self.inner.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tx) = guard.as_ref() else {
            return Err(refuse(StoreError::Closed, unprepare(prepared)));
        };
        let (reply, rx) = oneshot::channel();
        let job = Message::Write(WriteJob {
            events: prepared,
            reply,
        });
        let (error, message) = match tx.try_send(job) {
            Ok(()) => return Ok(rx),
            Err(TrySendError::Full(m)) => (
                StoreError::QueueFull {
                    capacity: self.inner.capacity,
                },
                m,
            ),
            Err(TrySendError::Disconnected(m)) => (StoreError::Closed, m),
        };
        let events = match message {
            Message::Write(job) => unprepare(job.events),
            Message::Retain(..) => Vec::new(),
        };
        Err(refuse(error, events))
    }

    /// Submits and waits for the commit.
    pub async fn write(&self, events: Vec<Event>) -> Result<Vec<Ack>, StoreError> {
        self.submit(events)?.await.map_err(|_| StoreError::Closed)?
    }

    /// Deletes everything that arrived before `cutoff`, now (retention does this by itself).
    pub async fn delete_before(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        {
            let guard = self.inner.tx.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = guard.as_ref().ok_or(StoreError::Closed)?;
            tx.send(Message::Retain(cutoff, reply))
                .map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a read on a pooled connection on the blocking thread pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.read_now(f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// A read on the calling thread (for CLI tools and tests outside a runtime).
    pub fn read_blocking<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.inner.read_now(f)
    }

    pub fn epoch(&self) -> &str {
        &self.inner.epoch
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Changes how long events are kept (`None`: forever); the writer's next sweep uses it.
    pub fn set_retention(&self, keep: Option<Duration>) {
        self.inner
            .stats
            .retention_ms
            .store(retention_ms(keep), Ordering::Relaxed);
    }

    /// How long events are kept now (`None`: forever).
    pub fn retention(&self) -> Option<Duration> {
        match self.inner.stats.retention_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    pub fn stats(&self) -> &WriterStats {
        &self.inner.stats
    }

    pub fn head_seq(&self) -> u64 {
        self.inner.stats.head_seq.load(Ordering::Acquire)
    }

    /// Events submitted and not yet indexed (what the queue capacity bounds).
    pub fn queue_depth(&self) -> usize {
        self.inner.stats.depth.load(Ordering::Relaxed)
    }

    pub fn queue_capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Events committed but not yet in the full-text index (search checks those in memory).
    pub fn indexer_lag(&self) -> u64 {
        let stats = &self.inner.stats;
        let indexed = stats.indexed_through.load(Ordering::Acquire);
        self.head_seq().saturating_sub(indexed)
    }

    /// Size of the database file, the full-text file and their WALs, in bytes.
    pub fn size_bytes(&self) -> u64 {
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let with_wal = |p: PathBuf| {
            let mut wal = p.clone().into_os_string();
            wal.push("-wal");
            size(&p) + size(Path::new(&wal))
        };
        with_wal(self.inner.path.clone()) + with_wal(fulltext::index_path(&self.inner.path))
    }

    /// Stops taking events, lets the writer commit everything queued, and waits for it.
    pub fn close(&self) {
        self.inner.stop_checkpoints.store(true, Ordering::Relaxed);
        self.inner
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = handle.join();
        }
    }
}

impl Inner {
    fn read_now<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.readers.take()?;
        let result = f(&conn);
        self.readers.give_back(conn);
        result
    }
}
