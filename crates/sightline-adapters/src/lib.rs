//! The hub's sources beyond plain `POST /api/v1/events`: each adapter turns one outside format
//! into canonical events and hands them to the hub's writer (through `sightline_server::ingest`
//! or [`framework::AdapterContext::emit`]).
//!
//! Two kinds: endpoints mounted by [`routes`] (Claude Code hooks, the OpenCode plugin, OTLP),
//! always on; and background adapters listed in [`REGISTRY`] (transcript tailer, OpenCode
//! stream, JSONL replay, log parser), selected by `serve --source` and run by
//! [`framework::Adapters`]. To add one: a file implementing [`framework::Adapter`] and one
//! line in [`REGISTRY`].
//!
//! Adapters must never write to the store directly and never let one adapter's failure stop
//! another; their health is reported through the hub's adapter registry.

pub mod claude;
pub mod framework;
pub mod logparse;
pub mod opencode;
pub mod otlp;
pub mod tail;
pub mod tmux;
pub mod util;

use axum::Router;
use axum::routing::post;
use sightline_server::Hub;

pub use framework::{Adapter, AdapterConfig, AdapterContext, AdapterError, Adapters, Registration};

/// Background adapters this build can run, by `--source` name.
pub const REGISTRY: &[Registration] = &[
    Registration {
        name: claude::transcript::NAME,
        default_on: true,
        build: claude::transcript::TranscriptAdapter::build,
    },
    Registration {
        name: opencode::NAME,
        default_on: true,
        build: opencode::OpenCodeAdapter::build,
    },
    Registration {
        name: opencode::JSONL_NAME,
        default_on: true,
        build: opencode::JsonlAdapter::build,
    },
    Registration {
        name: logparse::NAME,
        default_on: false,
        build: logparse::LogAdapter::build,
    },
    Registration {
        name: tmux::NAME,
        default_on: true,
        build: tmux::TmuxAdapter::build,
    },
];

/// Names `--source` accepts for the endpoint adapters (always mounted; listed so that naming
/// them is not an error).
pub const ENDPOINT_SOURCES: &[&str] = &[claude::hooks::NAME, opencode::HOOK_NAME, otlp::NAME];

/// Every source name this crate knows.
pub fn source_names() -> Vec<&'static str> {
    REGISTRY
        .iter()
        .map(|r| r.name)
        .chain(ENDPOINT_SOURCES.iter().copied())
        .collect()
}

/// HTTP endpoints the adapters add to the hub (hooks, OTLP, ...).
pub fn routes() -> Router<Hub> {
    Router::new()
        .route(
            "/api/v1/hooks/claude",
            post(claude::hooks::post_claude_hook),
        )
        .route("/api/v1/hooks/opencode", post(opencode::post_plugin))
        .merge(otlp::routes())
}

/// Starts the selected background adapters (`None`: the default set) with settings from the
/// environment.
pub fn start(
    hub: Hub,
    config: &AdapterConfig,
    selected: Option<&[String]>,
) -> Result<Adapters, AdapterError> {
    let selected: Option<Vec<String>> = selected.map(|names| {
        names
            .iter()
            .filter(|n| REGISTRY.iter().any(|r| r.name == n.as_str()))
            .cloned()
            .collect()
    });
    // The endpoints are always mounted: show them in health from the start.
    for name in ENDPOINT_SOURCES {
        framework::ensure_health(&hub, name);
    }
    Adapters::start(hub, REGISTRY, config, selected.as_deref())
}
