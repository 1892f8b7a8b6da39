//! Retention: deletes what arrived before a cutoff, in bounded chunks.
//!
//! Age is arrival age on the hub's clock, read from `seq_marks` (the first seq of each second),
//! so no index on `ts` is needed and an imported old recording is kept for the full period
//! after its import. Called only by the writer thread, between batches, so it never competes
//! with ingest for the write lock for long.

use rusqlite::{Connection, OptionalExtension, params};
use sightline_schema::Timestamp;

use crate::StoreError;

/// Events deleted per step; small enough that a step takes milliseconds.
pub const CHUNK: usize = 5_000;

/// Deletes up to `limit` of the events that arrived before `cutoff`, and runs, sessions and
/// stats that ended before it. Returns the number of events deleted.
pub fn delete_before(
    conn: &mut Connection,
    cutoff: Timestamp,
    limit: usize,
) -> Result<u64, StoreError> {
    Ok(delete_before_upto(conn, cutoff, limit)?.0)
}

/// [`delete_before`], also returning the seq below which no event is left (the full-text
/// index, in its own file, forgets below it).
pub(crate) fn delete_before_upto(
    conn: &mut Connection,
    cutoff: Timestamp,
    limit: usize,
) -> Result<(u64, u64), StoreError> {
    let cutoff_second = cutoff.millis().div_euclid(1000);
    let tx = conn.transaction()?;
    // The first seq that arrived at or after the cutoff; everything below it is older.
    let keep_from: Option<i64> = tx
        .query_row(
            "SELECT first_seq FROM seq_marks WHERE second >= ?1 ORDER BY second LIMIT 1",
            [cutoff_second],
            |r| r.get(0),
        )
        .optional()?;
    let keep_from = match keep_from {
        Some(seq) => seq,
        None => tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM events", [], |r| {
            r.get(0)
        })?,
    };
    let oldest: Option<i64> = tx.query_row("SELECT MIN(seq) FROM events", [], |r| r.get(0))?;
    let mut deleted = 0;
    let mut below = oldest.unwrap_or(0);
    if let Some(oldest) = oldest
        && oldest < keep_from
    {
        let upto = keep_from.min(oldest.saturating_add(limit.min(i64::MAX as usize) as i64));
        below = upto;
        deleted = tx.execute(
            "DELETE FROM events WHERE seq >= ?1 AND seq < ?2",
            params![oldest, upto],
        )? as u64;
    }
    tx.execute("DELETE FROM runs WHERE last_seq < ?1", [keep_from])?;
    tx.execute("DELETE FROM sessions WHERE last_seq < ?1", [keep_from])?;
    tx.execute(
        "DELETE FROM stats_minute WHERE minute < ?1",
        [cutoff.millis().div_euclid(60_000)],
    )?;
    tx.execute("DELETE FROM seq_marks WHERE second < ?1", [cutoff_second])?;
    tx.commit()?;
    Ok((deleted, below.max(0) as u64))
}
