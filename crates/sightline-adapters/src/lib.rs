//! The hub's sources beyond plain `POST /api/v1/events`: each adapter turns one outside format
//! into canonical events and hands them to the hub's writer through `sightline_server::ingest`.
//!
//! Adapters must never write to the store directly and never let one adapter's failure stop
//! another; their health is reported through the hub's adapter registry.

use axum::Router;
use sightline_server::Hub;

/// HTTP endpoints the adapters add to the hub (hooks, OTLP, ...).
pub fn routes() -> Router<Hub> {
    Router::new()
}
