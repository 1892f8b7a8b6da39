//! What a token may do. Routes, endpoint sources and WebSocket messages each declare the role
//! they need; the server's auth layer is the only place that checks it.
//!
//! This module must never know about paths: a role belongs to a route's description, not to a
//! pattern matched on the request's path.

use serde::{Deserialize, Serialize};

/// A role. `admin` includes the other two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Query, search, subscribe (REST reads, SSE, WS subscribe).
    Read,
    /// Post events (REST, telemetry, hooks, OTLP, workflow updates, WS publish).
    Ingest,
    /// Import, shutdown, settings, audit log.
    Admin,
}

impl Role {
    pub const ALL: &'static [Role] = &[Role::Read, Role::Ingest, Role::Admin];

    pub fn parse(text: &str) -> Option<Role> {
        match text.trim() {
            "read" => Some(Role::Read),
            "ingest" => Some(Role::Ingest),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Ingest => "ingest",
            Role::Admin => "admin",
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who passes the Host/Origin checks (health, the dashboard's files, the API
    /// description).
    Public,
    /// A token with this role (or admin).
    Role(Role),
    /// A token with either role (the Python agent polls its control with its ingest token).
    Either(Role, Role),
    /// `/ws`: a valid token if one is presented; otherwise the socket must send `auth` first,
    /// and each message then needs its own role.
    Socket,
}

impl Access {
    /// The roles that satisfy this access, for documentation ("read or ingest").
    pub fn describe(self) -> String {
        match self {
            Access::Public => "public".into(),
            Access::Role(r) => r.as_str().into(),
            Access::Either(a, b) => format!("{} or {}", a.as_str(), b.as_str()),
            Access::Socket => "per message (auth first)".into(),
        }
    }
}
