//! Export and import of events as JSON, NDJSON, CSV or YAML.
//!
//! The portable form is the canonical event without `seq` (seqs belong to one database); import
//! takes back exactly what export gives, so export → import → export is byte-identical. Import
//! validates everything before storing anything, like ingest.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Map, Value};
use sightline_schema::validate::describe_json_error;
use sightline_schema::{Event, RawEvent, Timestamp, validate};
use sightline_store::query::{self, Order};

use crate::error::ApiError;
use crate::hub::Hub;
use crate::routes::events::read_body;
use crate::routes::query::filter_from;
use sightline_core::Backpressure;
use sightline_core::LineError;

/// Events per commit during import.
const IMPORT_CHUNK: usize = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
    Csv,
    Yaml,
}

impl Format {
    pub fn parse(text: &str) -> Result<Format, String> {
        match text.to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "ndjson" | "jsonl" => Ok(Format::Ndjson),
            "csv" => Ok(Format::Csv),
            "yaml" | "yml" => Ok(Format::Yaml),
            other => Err(format!(
                "format `{other}` is not one of: json, ndjson, csv, yaml"
            )),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Yaml => "application/yaml",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
            Format::Yaml => "yaml",
        }
    }
}

const CSV_COLUMNS: &[&str] = &[
    "event_id",
    "ts",
    "source",
    "source_event",
    "run_id",
    "session_id",
    "parent_session_id",
    "agent",
    "entity_type",
    "entity_id",
    "status",
    "severity",
    "title",
    "summary",
    "duration_ms",
    "metrics",
    "host",
    "pid",
    "thread_id",
    "correlation_id",
    "tags",
    "payload",
];

fn portable(e: &Event) -> Value {
    let mut v = serde_json::to_value(e).expect("events serialise");
    if let Value::Object(map) = &mut v {
        map.remove("seq");
    }
    v
}

/// Writes events in a format, in pieces: [`head`], [`page`] for each run of events in order,
/// [`tail`]. The pieces concatenated equal [`encode`] of all the events, so an export can be
/// streamed a page at a time and still be byte-identical.
pub fn head(format: Format) -> Result<String, String> {
    match format {
        Format::Json => Ok("[".into()),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(CSV_COLUMNS).map_err(|e| e.to_string())?;
            String::from_utf8(w.into_inner().map_err(|e| e.to_string())?).map_err(|e| e.to_string())
        }
        Format::Ndjson | Format::Yaml => Ok(String::new()),
    }
}

/// `events` in `format`; `first` when no event was written before them.
pub fn page(events: &[Event], format: Format, first: bool) -> Result<String, String> {
    match format {
        Format::Ndjson => Ok(events.iter().map(|e| e.to_portable_json() + "\n").collect()),
        Format::Json => {
            let mut out = String::new();
            for (i, e) in events.iter().enumerate() {
                out.push_str(if first && i == 0 { "\n" } else { ",\n" });
                out.push_str(&e.to_portable_json());
            }
            Ok(out)
        }
        Format::Yaml if events.is_empty() => Ok(String::new()),
        Format::Yaml => {
            let values: Vec<Value> = events.iter().map(portable).collect();
            yaml_serde::to_string(&values).map_err(|e| e.to_string())
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            for e in events {
                let v = portable(e);
                let record: Vec<String> = CSV_COLUMNS
                    .iter()
                    .map(|c| match v.get(*c) {
                        None | Some(Value::Null) => String::new(),
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                    })
                    .collect();
                w.write_record(&record).map_err(|e| e.to_string())?;
            }
            String::from_utf8(w.into_inner().map_err(|e| e.to_string())?).map_err(|e| e.to_string())
        }
    }
}

/// The end of an export; `empty` when no event was written.
pub fn tail(format: Format, empty: bool) -> String {
    match format {
        Format::Json => "\n]\n".into(),
        Format::Yaml if empty => "[]\n".into(),
        _ => String::new(),
    }
}

/// Writes events in a format, whole.
pub fn encode(events: &[Event], format: Format) -> Result<String, String> {
    let mut out = head(format)?;
    out.push_str(&page(events, format, true)?);
    out.push_str(&tail(format, events.is_empty()));
    Ok(out)
}

fn validate_value(line: usize, value: Value, now: Timestamp) -> Result<Event, LineError> {
    let raw: RawEvent = serde_json::from_value(value).map_err(|e| LineError {
        line,
        message: e.to_string(),
    })?;
    validate(raw, now).map_err(|e| LineError { line, message: e.0 })
}

/// Reads events written by [`encode`] (or any producer writing the canonical shape).
pub fn decode(body: &[u8], format: Format) -> Result<Vec<Event>, Vec<LineError>> {
    let now = Timestamp::now();
    let one = |message: String| vec![LineError { line: 1, message }];
    let values: Vec<(usize, Value)> = match format {
        Format::Json => {
            let v: Value =
                serde_json::from_slice(body).map_err(|e| one(describe_json_error(&e)))?;
            match v {
                Value::Array(items) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (i + 1, v))
                    .collect(),
                Value::Object(mut map) if map.contains_key("events") => {
                    match map.remove("events") {
                        Some(Value::Array(items)) => items
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (i + 1, v))
                            .collect(),
                        _ => return Err(one("`events` must be an array".into())),
                    }
                }
                other => vec![(1, other)],
            }
        }
        Format::Ndjson => {
            let mut out = Vec::new();
            let mut errors = Vec::new();
            for (i, line) in body.split(|b| *b == b'\n').enumerate() {
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                match serde_json::from_slice(line) {
                    Ok(v) => out.push((i + 1, v)),
                    Err(e) => errors.push(LineError {
                        line: i + 1,
                        message: describe_json_error(&e),
                    }),
                }
            }
            if !errors.is_empty() {
                return Err(errors);
            }
            out
        }
        Format::Yaml => {
            let text = std::str::from_utf8(body)
                .map_err(|e| one(format!("the YAML is not UTF-8: {e}")))?;
            let v: Value =
                yaml_serde::from_str(text).map_err(|e| one(format!("invalid YAML: {e}")))?;
            match v {
                Value::Array(items) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (i + 1, v))
                    .collect(),
                Value::Null => Vec::new(),
                other => vec![(1, other)],
            }
        }
        Format::Csv => {
            let mut reader = csv::Reader::from_reader(body);
            let headers = reader
                .headers()
                .map_err(|e| one(format!("invalid CSV header: {e}")))?
                .clone();
            let mut out = Vec::new();
            for (i, record) in reader.records().enumerate() {
                let record = record.map_err(|e| {
                    vec![LineError {
                        line: i + 2,
                        message: format!("invalid CSV: {e}"),
                    }]
                })?;
                out.push((
                    i + 2,
                    csv_record_to_value(&headers, &record).map_err(|m| {
                        vec![LineError {
                            line: i + 2,
                            message: m,
                        }]
                    })?,
                ));
            }
            out
        }
    };
    let mut events = Vec::with_capacity(values.len());
    let mut errors = Vec::new();
    for (line, value) in values {
        match validate_value(line, value, now) {
            Ok(e) => events.push(e),
            Err(e) if errors.len() < 100 => errors.push(e),
            Err(_) => {}
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(errors)
    }
}

fn csv_record_to_value(
    headers: &csv::StringRecord,
    record: &csv::StringRecord,
) -> Result<Value, String> {
    let mut map = Map::new();
    for (name, cell) in headers.iter().zip(record.iter()) {
        if cell.is_empty() {
            continue;
        }
        let value = match name {
            "metrics" | "tags" | "payload" | "duration_ms" | "pid" | "thread_id" => {
                serde_json::from_str(cell)
                    .map_err(|e| format!("{name}: `{cell}` is not JSON ({e})"))?
            }
            _ => Value::String(cell.to_string()),
        };
        map.insert(name.to_string(), value);
    }
    Ok(Value::Object(map))
}

/// Events read from SQLite per page of an export: what an export holds in memory at once.
const EXPORT_PAGE: usize = 5_000;

/// The filter of an export (`run_id` is the `runs` filter).
fn export_filter(params: &HashMap<String, String>) -> Result<sightline_schema::Filter, ApiError> {
    let mut params = params.clone();
    if let Some(run) = params.remove("run_id") {
        params.insert("runs".into(), run);
    }
    filter_from(&params)
}

async fn read_page(
    hub: &Hub,
    filter: &sightline_schema::Filter,
    after: u64,
) -> Result<(Vec<Event>, Option<u64>), ApiError> {
    let f = filter.clone();
    let page = hub
        .store()
        .read(move |c| query::search(c, &f, Order::Asc, Some(after), EXPORT_PAGE))
        .await?;
    Ok((page.items, page.next_cursor))
}

/// Reads every event a filter selects, in seq order (whole, in memory: for callers that need
/// them all at once; the export route streams instead).
pub async fn select(hub: &Hub, params: &HashMap<String, String>) -> Result<Vec<Event>, ApiError> {
    let filter = export_filter(params)?;
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let (items, next) = read_page(hub, &filter, after).await?;
        events.extend(items);
        match next {
            Some(c) => after = c,
            None => break,
        }
    }
    Ok(events)
}

/// `GET /api/v1/export`: every event of a run or a filter, streamed a page at a time (the hub
/// never holds more than one page, whatever the export's size).
pub async fn export(
    State(hub): State<Hub>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let format = Format::parse(params.get("format").map(String::as_str).unwrap_or("json"))
        .map_err(ApiError::BadRequest)?;
    let filter = export_filter(&params)?;
    let (first, next) = read_page(&hub, &filter, 0).await?;
    if first.is_empty() && params.contains_key("run_id") {
        return Err(ApiError::NotFound(format!(
            "no events for run `{}`",
            params["run_id"]
        )));
    }
    let empty = first.is_empty();
    let opening = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let mut out = head(format)?;
        out.push_str(&page(&first, format, true)?);
        Ok(out)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(ApiError::Internal)?;
    // The rest, page by page; an error after the first byte can only end the stream early
    // (the status is sent), so it is logged and the body is cut short.
    let rest = futures_util::stream::unfold(
        (hub, filter, next, false),
        move |(hub, filter, cursor, done)| async move {
            if done {
                return None;
            }
            let Some(after) = cursor else {
                return Some((
                    Ok::<_, std::io::Error>(Bytes::from(tail(format, empty))),
                    (hub, filter, None, true),
                ));
            };
            match read_page(&hub, &filter, after).await {
                Ok((items, next)) => {
                    let text = tokio::task::spawn_blocking(move || page(&items, format, false))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r);
                    match text {
                        Ok(t) => Some((Ok(Bytes::from(t)), (hub, filter, next, false))),
                        Err(e) => {
                            tracing::error!("export cut short: {e}");
                            Some((Err(std::io::Error::other(e)), (hub, filter, None, true)))
                        }
                    }
                }
                Err(e) => {
                    tracing::error!("export cut short: {e:?}");
                    Some((
                        Err(std::io::Error::other("export read failed")),
                        (hub, filter, None, true),
                    ))
                }
            }
        },
    );
    // Fused: a body may be polled again after its end (the gzip layer does), and `unfold`
    // panics when that happens.
    let stream =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(opening)) })
            .chain(rest)
            .fuse();
    let name = params
        .get("run_id")
        .map(|r| {
            r.replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                "_",
            )
        })
        .unwrap_or_else(|| "events".into());
    let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{name}.{}\"",
        format.extension()
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

fn format_from(params: &HashMap<String, String>, headers: &HeaderMap) -> Result<Format, ApiError> {
    if let Some(f) = params.get("format") {
        return Format::parse(f).map_err(ApiError::BadRequest);
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(if ct.contains("ndjson") {
        Format::Ndjson
    } else if ct.contains("yaml") {
        Format::Yaml
    } else if ct.contains("csv") {
        Format::Csv
    } else {
        Format::Json
    })
}

/// The health name of imports.
pub const PATH_NAME: &str = "import";

/// What an import stored.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Imported {
    /// Events newly stored.
    pub imported: usize,
    /// Events that were already there (same `event_id`).
    pub duplicates: usize,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

pub async fn import(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    body: Body,
) -> Result<(StatusCode, axum::Json<Imported>), ApiError> {
    let format = format_from(&params, &headers)?;
    let body = read_body(body, hub.settings().max_import_body).await?;
    let events = tokio::task::spawn_blocking(move || decode(&body, format))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::InvalidEvents)?;
    let total = events.len();
    let mut duplicates = 0;
    let mut first_seq = None;
    let mut last_seq = None;
    let mut events = events;
    while !events.is_empty() {
        let rest = events.split_off(events.len().min(IMPORT_CHUNK));
        let acks = hub
            .core()
            .submit(PATH_NAME, events, Backpressure::Refuse)
            .await?
            .acks;
        duplicates += acks.iter().filter(|a| a.duplicate).count();
        first_seq = first_seq.or(acks.iter().find(|a| !a.duplicate).map(|a| a.seq));
        last_seq = acks
            .iter()
            .rev()
            .find(|a| !a.duplicate)
            .map(|a| a.seq)
            .or(last_seq);
        events = rest;
    }
    Ok((
        StatusCode::OK,
        axum::Json(Imported {
            imported: total - duplicates,
            duplicates,
            first_seq,
            last_seq,
        }),
    ))
}
