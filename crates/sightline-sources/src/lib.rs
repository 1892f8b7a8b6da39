//! Every source of the hub beyond plain `POST /api/v1/events`: each turns one outside format
//! into canonical events and hands them to the hub's one ingest path (`sightline_core`).
//!
//! Two kinds, and the room each goes in:
//! - **endpoint sources** ([`endpoints`]): an implementation of `sightline_core::HttpSource` —
//!   a route description (method, path, role, shapes) and a decode function. The server mounts
//!   them; this crate never sees HTTP. Claude Code hooks, the OpenCode plugin, OTLP, Docker
//!   telemetry, workflow updates.
//! - **background sources** ([`REGISTRY`]): an implementation of [`framework::Adapter`] run by
//!   [`framework::Adapters`], selected by `serve --source`. Transcript tailer, Codex rollouts,
//!   Gemini session logs, OpenCode stream, JSONL replay, log parser, tmux.
//!
//! To add one: a file here, and one line in [`endpoints`] or [`REGISTRY`] (a registration
//! carries its own settings kind, so the Settings page needs nothing more). Sources must never
//! write to the store directly, never depend on the server, and never let one source's failure
//! stop another; their health is reported through the core's health registry.

mod agent_cli;
pub mod claude;
pub mod codex;
pub mod docker;
pub mod framework;
pub mod gemini;
pub mod logparse;
pub mod opencode;
pub mod otlp;
pub mod pricing;
pub mod schemas;
pub mod session_files;
pub mod tail;
#[cfg(test)]
mod testing;
pub mod tmux;
pub mod util;
pub mod workflow;

use std::sync::Arc;

use sightline_core::{Core, HttpSource};

pub use framework::{
    Adapter, AdapterConfig, AdapterContext, AdapterError, Adapters, Registration, Settings,
};
use sightline_core::supervisor::SettingKind;

/// Background adapters this build can run, by `--source` name, each with what Settings may
/// change about it.
pub const REGISTRY: &[Registration] = &[
    Registration {
        name: claude::transcript::NAME,
        default_on: true,
        build: claude::transcript::TranscriptAdapter::build,
        settings: Some(Settings {
            kind: SettingKind::Directory,
            description: "Claude Code transcripts: its config directory (CLAUDE_CONFIG_DIR, ~/.claude); files under projects/",
        }),
    },
    Registration {
        name: codex::NAME,
        default_on: true,
        build: codex::CodexAdapter::build,
        settings: Some(Settings {
            kind: SettingKind::Directory,
            description: "Codex CLI session rollouts: its home (CODEX_HOME, ~/.codex); files under sessions/",
        }),
    },
    Registration {
        name: gemini::NAME,
        default_on: true,
        build: gemini::GeminiAdapter::build,
        settings: Some(Settings {
            kind: SettingKind::Directory,
            description: "Gemini CLI session logs: its directory (~/.gemini); files under tmp/*/chats/",
        }),
    },
    Registration {
        name: opencode::NAME,
        default_on: true,
        build: opencode::OpenCodeAdapter::build,
        settings: Some(Settings {
            kind: SettingKind::Url,
            description: "OpenCode's event stream: the URL of `opencode serve` (SIGHTLINE_OPENCODE_URL)",
        }),
    },
    Registration {
        name: opencode::JSONL_NAME,
        default_on: true,
        build: opencode::JsonlAdapter::build,
        settings: Some(Settings {
            kind: SettingKind::Paths,
            description: "OpenCode JSONL files or directories to replay and follow (SIGHTLINE_OPENCODE_JSONL; the plugin's spool is always read)",
        }),
    },
    Registration {
        name: logparse::NAME,
        default_on: false,
        build: logparse::LogAdapter::build,
        settings: Some(Settings {
            kind: SettingKind::Paths,
            description: "Agent CLI log files (or directories of *.log): failure patterns become failed tool events (SIGHTLINE_LOG_FILES)",
        }),
    },
    Registration {
        name: tmux::NAME,
        default_on: true,
        build: tmux::TmuxAdapter::build,
        settings: Some(Settings {
            kind: SettingKind::None,
            description: "tmux sessions, windows and panes, with a busy, idle or waiting status per pane",
        }),
    },
];

/// Every endpoint source, for the server to mount.
pub fn endpoints() -> Vec<Arc<dyn HttpSource>> {
    let [logs, traces, metrics] = otlp::Otlp::all();
    vec![
        Arc::new(claude::hooks::ClaudeHooks::default()),
        Arc::new(opencode::OpenCodePlugin::default()),
        Arc::new(logs),
        Arc::new(traces),
        Arc::new(metrics),
        Arc::new(docker::DockerTelemetry::default()),
        Arc::new(workflow::WorkflowUpdates::default()),
    ]
}

/// Every source name this crate knows (background and endpoint), for `--source`.
pub fn source_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = REGISTRY.iter().map(|r| r.name).collect();
    for e in endpoints() {
        if !names.contains(&e.spec().source) {
            names.push(e.spec().source);
        }
    }
    names
}

/// Starts the selected background adapters (`None`: the default set) with settings from the
/// environment. Endpoint sources are shown in health from the start.
pub fn start(
    core: Core,
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
    for e in endpoints() {
        core.health().ensure(e.spec().source);
    }
    Adapters::start(core, REGISTRY, config, selected.as_deref())
}
