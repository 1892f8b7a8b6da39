//! The hub's logs: structured lines on stderr, filtered by `SIGHTLINE_LOG` (or `RUST_LOG`),
//! `info` by default, as text or as JSON (`--log-format json`).
//!
//! Set up once, at the binary's edge. Logs must never carry a token or a query string (they can
//! hold `access_token`): the server logs request paths only.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the subscriber. A filter that does not parse falls back to `info` and says so.
pub fn init(format: LogFormat) {
    let spec = std::env::var("SIGHTLINE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let (filter, bad) = match EnvFilter::try_new(&spec) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(format!("{spec:?}: {e}"))),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if installed.is_ok()
        && let Some(bad) = bad
    {
        tracing::warn!(
            "SIGHTLINE_LOG {bad}; logging at info (example: SIGHTLINE_LOG=debug or sightline=debug,warn)"
        );
    }
}
