//! Admin routes: `POST /api/v1/shutdown` and `GET /api/v1/audit`.
//!
//! The route table gives both the admin role; the guard audits every admin action. Nothing
//! here may return a token's value.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use crate::auth::AuditEntry;
use crate::error::ApiError;
use crate::hub::Hub;

pub async fn shutdown(State(hub): State<Hub>) -> impl IntoResponse {
    hub.request_shutdown();
    (StatusCode::ACCEPTED, Json(json!({"stopping": true})))
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    pub after: u64,
    pub kind: Option<String>,
    pub limit: Option<usize>,
}

#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
}

/// `GET /api/v1/audit?after=<id>&kind=&limit=` (admin, by the route table).
pub async fn audit_log(
    State(hub): State<Hub>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let entries = hub.security().audit.query(
        q.after,
        q.kind.as_deref(),
        q.limit.unwrap_or(500).min(10_000),
    );
    Ok(Json(AuditPage { entries }))
}
