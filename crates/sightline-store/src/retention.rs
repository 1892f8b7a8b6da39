//! Retention: deletes what arrived before a cutoff, in bounded chunks.
//!
//! Age is arrival age on the hub's clock, read from `seq_marks` (the first seq of each second),
//! so no index on `ts` is needed and an imported old recording is kept for the full period
//! after its import. Called only by the writer thread, between batches, so it never competes
//! with ingest for the write lock for long.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use sightline_schema::Timestamp;

use crate::StoreError;

/// Why a retention word was refused; the message says what to write instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeriodError {
    #[error("retention `{0}` is not a duration like 14d, 36h, 90m or 0")]
    NotADuration(String),
    #[error("retention `{0}` is over ten years; use 0 to keep everything")]
    TooLong(String),
    #[error("retention `{0}` is under a minute; use at least 1m, or 0 to keep everything")]
    TooShort(String),
}

/// The longest retention accepted: ten years is far past any disk, so a bigger number is a typo.
pub const LONGEST: Duration = Duration::from_secs(10 * 365 * 86_400);
/// The shortest: below a minute the sweep would delete what just arrived.
pub const SHORTEST: Duration = Duration::from_secs(60);

/// Parses `14d`, `36h`, `90m`, `120s`, or a bare number of days; `0` keeps everything. The one
/// reading of a retention word, for `serve --retention`, the config file and the settings API.
pub fn parse_period(text: &str) -> Result<Option<Duration>, PeriodError> {
    let text = text.trim();
    let bad = || PeriodError::NotADuration(text.to_string());
    let (number, unit) = text.split_at(
        text.find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(text.len()),
    );
    let n: f64 = number.trim().parse().map_err(|_| bad())?;
    if !n.is_finite() || n < 0.0 {
        return Err(bad());
    }
    let secs = match unit {
        "" | "d" => n * 86_400.0,
        "h" => n * 3_600.0,
        "m" => n * 60.0,
        "s" => n,
        _ => return Err(bad()),
    };
    if secs > LONGEST.as_secs_f64() {
        return Err(PeriodError::TooLong(text.to_string()));
    }
    if secs == 0.0 {
        return Ok(None);
    }
    if secs < SHORTEST.as_secs_f64() {
        return Err(PeriodError::TooShort(text.to_string()));
    }
    // In range by the checks above, so the conversion cannot overflow.
    Ok(Some(Duration::from_secs_f64(secs)))
}

/// A retention as the hub writes it back: whole days, hours, minutes or seconds; `0` for forever.
pub fn period_text(keep: Option<Duration>) -> String {
    let Some(d) = keep else {
        return "0".into();
    };
    let s = d.as_secs();
    if s % 86_400 == 0 {
        format!("{}d", s / 86_400)
    } else if s % 3_600 == 0 {
        format!("{}h", s / 3_600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

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

#[cfg(test)]
mod period_tests {
    use super::*;

    #[test]
    fn retention_words() {
        assert_eq!(
            parse_period("14d").unwrap(),
            Some(Duration::from_secs(14 * 86_400))
        );
        assert_eq!(
            parse_period("36h").unwrap(),
            Some(Duration::from_secs(36 * 3_600))
        );
        assert_eq!(
            parse_period(" 2 ").unwrap(),
            Some(Duration::from_secs(2 * 86_400))
        );
        assert_eq!(parse_period("0").unwrap(), None);
        for bad in [
            "soon", "3w", "-1d", "NaN", "inf", "30s", "1e9d", "1e300d", "",
        ] {
            assert!(parse_period(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            parse_period("99999999999999999999d"),
            Err(PeriodError::TooLong(_))
        ));
        assert!(matches!(parse_period("30s"), Err(PeriodError::TooShort(_))));
        for t in ["14d", "36h", "90m", "0", "61s"] {
            assert_eq!(period_text(parse_period(t).unwrap()), t);
        }
    }

    proptest::proptest! {
        /// Any text: an answer, never a panic; what is accepted is between a minute and ten
        /// years (or forever), and writing it back gives a word that parses to the same period.
        #[test]
        fn any_retention_text(text in proptest::prelude::any::<String>()) {
            if let Ok(keep) = parse_period(&text) {
                if let Some(d) = keep {
                    proptest::prop_assert!(d >= SHORTEST && d <= LONGEST);
                }
                let back = period_text(keep);
                proptest::prop_assert!(back.len() < 16 && back.chars().all(|c| c.is_ascii_alphanumeric()));
                let again = parse_period(&back).unwrap();
                proptest::prop_assert_eq!(again.map(|d| d.as_secs()), keep.map(|d| d.as_secs()));
            }
        }

        /// Numbers of every size with every unit, the huge ones included: never a panic.
        #[test]
        fn any_number_and_unit(n in proptest::prelude::any::<f64>(), unit in "[dhms]?") {
            let _ = parse_period(&format!("{n}{unit}"));
            let _ = parse_period(&format!("{n:e}{unit}"));
        }
    }
}
