//! Mounts the endpoint sources (`sightline_core::HttpSource`): reads and bounds the body, undoes
//! gzip within the same bound, lets the source decode it (on a blocking thread when big),
//! submits the events through the core's one ingest path and writes the source's reply.
//!
//! Every endpoint source is served by this one handler, so each gets the same limits, the same
//! answer to a full queue, the same health accounting, and the same containment of a panic: a
//! source that panics on an input answers 500 with a message, stores nothing, and keeps
//! serving. This module must never reply before the commit.

use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sightline_core::{Backpressure, Decoded, HttpError, HttpRequest, HttpSource};
use sightline_schema::Timestamp;

use crate::error::ApiError;
use crate::hub::Hub;
use crate::routes::events::read_body;

/// Bodies above this are decoded on the blocking pool.
const DECODE_INLINE_MAX: usize = 64 * 1024;

/// Inflates a gzip body, refusing (413) one that inflates past `limit`.
fn gunzip(body: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::new();
    // Read one byte past the limit to tell "exactly at the limit" from "over it".
    let mut decoder = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("bad gzip body: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    Ok(out.into())
}

fn decode_contained(source: &dyn HttpSource, request: &HttpRequest) -> Result<Decoded, ApiError> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| source.decode(request))) {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError::Internal(format!(
            "the {} source failed on this input (a bug); nothing was stored, and the hub goes on",
            source.spec().source
        ))),
    }
}

/// Serves one request to `source`.
pub async fn handle(
    hub: Hub,
    source: Arc<dyn HttpSource>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let name = source.spec().source;
    let limit = hub.settings().max_body;
    let mut bytes = read_body(body, limit).await?;
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if gzip {
        bytes = gunzip(&bytes, limit)?;
    }
    let request = HttpRequest {
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        params: params
            .map(|p| {
                p.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        body: bytes,
        now: Timestamp::now(),
    };
    let (request, decoded) = if request.body.len() <= DECODE_INLINE_MAX {
        let decoded = decode_contained(&*source, &request);
        (request, decoded)
    } else {
        let source = source.clone();
        tokio::task::spawn_blocking(move || {
            let decoded = decode_contained(&*source, &request);
            (request, decoded)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("decoding failed: {e}")))?
    };
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => {
            hub.core().count_invalid(name);
            hub.core().health().failed(name, refusal_text(&e));
            return Err(e);
        }
    };
    if !decoded.refused.is_empty() {
        let first = &decoded.refused[0];
        hub.core().health().failed(
            name,
            format!(
                "{} items refused (first: line {}: {})",
                decoded.refused.len(),
                first.line,
                first.message
            ),
        );
    }
    let accepted = hub
        .core()
        .submit(name, decoded.events, Backpressure::Refuse)
        .await?;
    let reply = source.reply(&request, &accepted, &decoded.refused);
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::ACCEPTED),
        reply.body,
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    Ok(response)
}

fn refusal_text(e: &ApiError) -> String {
    match e {
        ApiError::Source(HttpError { message, .. }) => message.clone(),
        ApiError::BadRequest(m) | ApiError::Internal(m) => m.clone(),
        other => format!("{other:?}"),
    }
}

/// The axum route of one endpoint source.
pub fn method_router(source: Arc<dyn HttpSource>) -> axum::routing::MethodRouter<Hub> {
    use sightline_core::Method;
    let method = source.spec().method;
    let handler = move |State(hub): State<Hub>,
                        params: Result<RawPathParams, RawPathParamsRejection>,
                        headers: HeaderMap,
                        body: Body| {
        let source = source.clone();
        async move { handle(hub, source, params, headers, body).await }
    };
    match method {
        Method::Get => axum::routing::get(handler),
        Method::Post => axum::routing::post(handler),
        Method::Put => axum::routing::put(handler),
        Method::Delete => axum::routing::delete(handler),
    }
}
