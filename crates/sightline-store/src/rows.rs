//! The mapping between an [`Event`] and its row in `events`.
//!
//! The column list lives here once; writer and readers both use it, so the two can never
//! disagree about the order.

use std::collections::BTreeMap;

use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Row, Statement, ToSql, params};
use serde_json::{Map, Number};
use sightline_schema::{CommittedParts, EntityType, Event, Severity, Source, Status, Timestamp};

use crate::codec::{Codec, Packed};

/// Columns in the order [`event_from_row`] reads them.
pub const EVENT_COLUMNS: &str = "seq, event_id, ts, source, source_event, run_id, session_id, \
    parent_session_id, agent, entity_type, entity_id, status, severity, title, summary, \
    duration_ms, metrics, host, pid, thread_id, correlation_id, tags, payload";
/// How many columns [`EVENT_COLUMNS`] names (a query may select more after them).
pub const EVENT_COLUMN_COUNT: usize = 23;

pub const INSERT_EVENT: &str = "INSERT INTO events (seq, event_id, ts, source, source_event, run_id, \
    session_id, parent_session_id, agent, entity_type, entity_id, status, severity, title, summary, \
    duration_ms, metrics, host, pid, thread_id, correlation_id, tags, payload) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23) \
    ON CONFLICT(event_id) DO NOTHING";

/// A JSON number as SQLite keeps it: integers stay integers.
struct SqlNumber<'a>(&'a Number);

impl ToSql for SqlNumber<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0.as_i64() {
            Some(i) => ToSqlOutput::Owned(SqlValue::Integer(i)),
            None => ToSqlOutput::Owned(SqlValue::Real(self.0.as_f64().unwrap_or(0.0))),
        })
    }
}

/// An event with everything the writer needs already serialised: the JSON columns (payload
/// and metrics compressed when the database has a dictionary) and the full-text body. Made on
/// the producer's thread so the single writer only binds and inserts.
pub struct PreparedEvent {
    pub event: Event,
    pub(crate) metrics: Option<Packed>,
    tags: Option<String>,
    pub(crate) payload: Option<Packed>,
    /// What full-text search indexes for this event.
    pub fts: String,
}

impl PreparedEvent {
    pub fn new(event: Event, codec: &Codec) -> PreparedEvent {
        let metrics = event.metrics.as_ref().map(|m| codec.pack(to_json(m)));
        let tags = (!event.tags.is_empty()).then(|| to_json(&event.tags));
        let payload = (!event.payload.is_empty()).then(|| codec.pack(to_json(&event.payload)));
        let fts = sightline_schema::filter::searchable_text(&event);
        PreparedEvent {
            event,
            metrics,
            tags,
            payload,
            fts,
        }
    }
}

/// What is left of a [`PreparedEvent`] once its row is inserted: buffers made on the producer's
/// thread, freed on the indexer's (freeing another thread's allocations is slow, and the writer
/// is the one thread that cannot be parallelised).
pub struct Leftovers {
    _metrics: Option<Packed>,
    _tags: Option<String>,
    _payload: Option<Packed>,
}

impl PreparedEvent {
    /// The event, its full-text body, and the rest.
    pub(crate) fn into_parts(self) -> (Event, String, Leftovers) {
        let leftovers = Leftovers {
            _metrics: self.metrics,
            _tags: self.tags,
            _payload: self.payload,
        };
        (self.event, self.fts, leftovers)
    }
}

/// The event's JSON columns cannot fail to serialise (maps of strings and numbers).
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Inserts the event with `seq`; returns false when its `event_id` is already stored.
pub fn insert_event(
    stmt: &mut Statement<'_>,
    seq: u64,
    p: &PreparedEvent,
) -> rusqlite::Result<bool> {
    let (e, metrics, tags, payload) = (&p.event, &p.metrics, &p.tags, &p.payload);
    let changed = stmt.execute(params![
        seq as i64,
        e.event_id,
        e.ts.millis(),
        e.source.code(),
        e.source_event,
        e.run_id,
        e.session_id,
        e.parent_session_id,
        e.agent,
        e.entity_type.code(),
        e.entity_id,
        e.status.map(Status::code),
        e.severity.code(),
        e.title,
        e.summary,
        e.duration_ms.as_ref().map(SqlNumber),
        metrics,
        e.host,
        e.pid,
        e.thread_id,
        e.correlation_id,
        tags,
        payload,
    ])?;
    Ok(changed == 1)
}

fn bad(column: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Integer,
        format!("unknown {what} code in the database").into(),
    )
}

pub(crate) fn json_column<T: serde::de::DeserializeOwned + Default>(
    row: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<T> {
    match row.get_ref(idx)? {
        ValueRef::Null => Ok(T::default()),
        ValueRef::Text(bytes) => serde_json::from_slice(bytes).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
        }),
        // A BLOB is a compressed value (`codec`).
        ValueRef::Blob(stored) => {
            let fail = |e: Box<dyn std::error::Error + Send + Sync>| {
                rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Blob, e)
            };
            let text = crate::codec::unpack(stored).map_err(|e| fail(Box::new(e)))?;
            serde_json::from_slice(&text).map_err(|e| fail(Box::new(e)))
        }
        _ => Err(bad(idx, "json")),
    }
}

/// Reads a row selected with [`EVENT_COLUMNS`].
pub fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    let duration_ms = match row.get_ref(15)? {
        ValueRef::Integer(i) => Some(Number::from(i)),
        ValueRef::Real(f) => Number::from_f64(f),
        _ => None,
    };
    let metrics: Option<BTreeMap<String, Number>> = json_column::<Option<_>>(row, 16)?;
    let status: Option<i64> = row.get(11)?;
    // The row was validated before this database committed it: rebuilt, not re-validated.
    Ok(Event::from_committed(CommittedParts {
        seq: row.get::<_, i64>(0)? as u64,
        event_id: row.get(1)?,
        ts: Timestamp(row.get(2)?),
        source: Source::from_code(row.get(3)?).ok_or_else(|| bad(3, "source"))?,
        source_event: row.get(4)?,
        run_id: row.get(5)?,
        session_id: row.get(6)?,
        parent_session_id: row.get(7)?,
        agent: row.get(8)?,
        entity_type: EntityType::from_code(row.get(9)?).ok_or_else(|| bad(9, "entity_type"))?,
        entity_id: row.get(10)?,
        status: match status {
            None => None,
            Some(code) => Some(Status::from_code(code).ok_or_else(|| bad(11, "status"))?),
        },
        severity: Severity::from_code(row.get(12)?).ok_or_else(|| bad(12, "severity"))?,
        title: row.get(13)?,
        summary: row.get(14)?,
        duration_ms,
        metrics,
        host: row.get(17)?,
        pid: row.get(18)?,
        thread_id: row.get(19)?,
        correlation_id: row.get(20)?,
        tags: json_column(row, 21)?,
        payload: json_column::<Map<_, _>>(row, 22)?,
    }))
}
