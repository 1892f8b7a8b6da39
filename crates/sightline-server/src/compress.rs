//! gzip for JSON answers and exports, when the client sends `Accept-Encoding: gzip`.
//!
//! Only the content types that compress well and are read whole are compressed: JSON, NDJSON,
//! CSV and YAML (exports stream, and are compressed as they stream, a page at a time). It must
//! never compress `text/event-stream` (a compressor holds bytes back, so a live event would
//! wait for the next ones), a WebSocket upgrade, or the dashboard's files, and never anything a
//! client did not ask to be compressed.

use axum::http::{Extensions, HeaderMap, StatusCode, Version, header};
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};

/// Below this an answer is sent as it is: gzip's header and trailer alone are 18 bytes, and
/// the hub's small answers (acks, `{}` to a hook) would gain nothing.
const MIN_BYTES: u64 = 1024;

/// The content types worth compressing: the hub's JSON and the export formats.
const COMPRESSIBLE: &[&str] = &[
    "application/json",
    "application/x-ndjson",
    "text/csv",
    "application/yaml",
];

fn compressible(status: StatusCode, _: Version, headers: &HeaderMap, _: &Extensions) -> bool {
    if status == StatusCode::SWITCHING_PROTOCOLS || headers.contains_key(header::CONTENT_ENCODING) {
        return false;
    }
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    COMPRESSIBLE.contains(&essence.as_str())
}

/// The layer the router wraps every route in. The fastest level: the hub is local-first, where
/// CPU is shared with the agents it watches and bandwidth is rarely short; JSON still shrinks
/// several times at level 1.
pub fn layer() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new()
        .gzip(true)
        .quality(CompressionLevel::Fastest)
        .compress_when(SizeAbove::new(MIN_BYTES).and(compressible))
}
