//! The port through which the server runs analyzer plugins, implemented by the forward crate.
//!
//! The server owns the HTTP shape (`GET /api/v1/plugins`, `POST /api/v1/plugins/{name}/invoke`)
//! and finds the events; the implementation owns how a plugin is started, bounded and answered.
//! Neither knows the other. A plugin must never be able to take the hub down: every failure is
//! a [`PluginFailure`].

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde_json::Value;

/// One declared plugin, as listed to read-role callers: no command line, no URL (they can
/// carry secrets and say more about the machine than a reader needs).
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct PluginInfo {
    pub name: String,
    /// `command` or `http`.
    pub kind: String,
    pub description: Option<String>,
    pub timeout_ms: u64,
}

/// The declared plugins, or the configuration error reported instead of them.
#[derive(Debug, Clone, Default, Serialize, PartialEq, schemars::JsonSchema)]
pub struct PluginList {
    pub plugins: Vec<PluginInfo>,
    pub config_error: Option<String>,
}

/// A plugin's answer.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct PluginAnswer {
    pub plugin: String,
    pub ok: bool,
    pub duration_ms: u64,
    pub events: usize,
    pub result: Value,
}

/// Why an invocation gave no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PluginFailure {
    #[error("no plugin named `{0}`; GET /api/v1/plugins lists them")]
    NotFound(String),
    #[error("{0} plugin invocations are already running; retry shortly")]
    Busy(usize),
    #[error("the plugin did not answer within {0} ms")]
    Timeout(u64),
    /// The plugin crashed, answered garbage or could not be reached.
    #[error("{0}")]
    Failed(String),
    /// The plugin answered with a JSON-RPC error.
    #[error("the plugin answered an error: {0}")]
    PluginError(Value),
}

pub type PluginFuture = Pin<Box<dyn Future<Output = Result<PluginAnswer, PluginFailure>> + Send>>;

/// Runs analyzer plugins.
pub trait Analyzers: Send + Sync + 'static {
    fn list(&self) -> PluginList;
    /// Sends `events` (already redacted, as stored) and `context` to the plugin `name`.
    fn invoke(&self, name: &str, events: Vec<Value>, context: Value) -> PluginFuture;
}

/// No plugins configured.
pub struct NoPlugins;

impl Analyzers for NoPlugins {
    fn list(&self) -> PluginList {
        PluginList::default()
    }

    fn invoke(&self, name: &str, _events: Vec<Value>, _context: Value) -> PluginFuture {
        let name = name.to_string();
        Box::pin(async move { Err(PluginFailure::NotFound(name)) })
    }
}
