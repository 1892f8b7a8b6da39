//! sightline's way out: committed events forwarded to an OpenTelemetry collector
//! ([`otlp_export`]), waits, failures and cost over a budget told to the user as desktop
//! notifications and webhook posts ([`notify`]), analyzer plugins run on request ([`plugins`]),
//! and the one HTTP client stack (with TLS) that these and the CLI's commands share ([`http`]).
//!
//! Built on the core only: it subscribes like any client and reports its health like any
//! source. It must never slow ingest: a slow collector or plugin costs only itself.

mod background;
pub mod http;
pub mod notify;
pub mod otlp_export;
pub mod plugins;

pub use plugins::Plugins;
