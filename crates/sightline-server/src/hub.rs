//! The server's shared state: the core (store, bus, ingest, health, control), the security
//! state, the HTTP settings, the mounted endpoint sources and the route table's access map.
//!
//! Cloned into every handler (one `Arc`). Its fields are private: handlers use its methods,
//! and nothing outside this crate can reach past them. It must never own a database connection:
//! reads go through the store's pool, writes through the core's ingest path.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::Method as HttpMethod;
use sightline_core::{Access, Core, HttpSource, Method};

use crate::auth::{Role, Security, SecuritySettings};
use sightline_core::plugins::Analyzers;

/// Settings the HTTP layer needs.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// When set, every endpoint but health and the dashboard's static files needs
    /// `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Largest ingest body, in bytes.
    pub max_body: usize,
    /// Largest import body, in bytes.
    pub max_import_body: usize,
    /// Retention in days, for health and settings.
    pub retention_days: Option<f64>,
    /// Tokens and roles, Host/Origin allow-lists, rate limits, audit log (`auth/`).
    pub security: SecuritySettings,
    /// How long a WebSocket frame may wait for a client that stopped reading before the
    /// connection is closed with 4009 (`ws.rs`).
    pub ws_send_stall: std::time::Duration,
    /// The config file the settings API writes its changes to, so they survive a restart
    /// (`None`: changes last until the hub stops).
    pub config_file: Option<std::path::PathBuf>,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            token: None,
            max_body: 8 * 1024 * 1024,
            max_import_body: 512 * 1024 * 1024,
            retention_days: Some(14.0),
            security: SecuritySettings::default(),
            ws_send_stall: crate::routes::ws::SEND_STALL,
            config_file: None,
        }
    }
}

struct Inner {
    core: Core,
    settings: HubSettings,
    security: Security,
    endpoints: Vec<Arc<dyn HttpSource>>,
    plugins: Arc<dyn Analyzers>,
    /// route path → who may call it, per method; filled from the route table. Keyed by the
    /// path alone so that the per-request lookup borrows the matched path, allocating nothing.
    access: HashMap<&'static str, Vec<(Method, Access)>>,
}

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
    /// The server's state over `core`, with the endpoint sources to mount and the analyzers
    /// plugins run by.
    pub fn new(
        core: Core,
        settings: HubSettings,
        endpoints: Vec<Arc<dyn HttpSource>>,
        plugins: Arc<dyn Analyzers>,
    ) -> Hub {
        let mut security = settings.security.clone();
        if let Some(token) = &settings.token {
            // The single `--token` is the owner's: it may do everything. A token that cannot be
            // used (blank) fails closed: auth stays on and nothing passes, rather than a hub
            // meant to be protected serving everyone. (The CLI refuses blank and short tokens
            // with exit code 2 before they get here.)
            if let Err(e) = security.tokens.add(token, &[Role::Admin], "token") {
                tracing::error!("{e}; every request that needs a token will be refused");
                let unguessable = {
                    use std::hash::{BuildHasher, Hasher};
                    let mut parts = String::new();
                    for _ in 0..4 {
                        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                        h.write_u8(0);
                        parts.push_str(&format!("{:016x}", h.finish()));
                    }
                    parts
                };
                let _ = security.tokens.add(&unguessable, &[Role::Read], "unusable");
            }
        }
        for e in &endpoints {
            core.health().ensure(e.spec().source);
        }
        let access = crate::routes::table::access_map(&endpoints);
        Hub {
            inner: Arc::new(Inner {
                core,
                security: Security::new(security),
                settings,
                endpoints,
                plugins,
                access,
            }),
        }
    }

    pub fn core(&self) -> &Core {
        &self.inner.core
    }

    pub fn store(&self) -> &sightline_store::Store {
        self.inner.core.store()
    }

    pub fn settings(&self) -> &HubSettings {
        &self.inner.settings
    }

    pub fn security(&self) -> &Security {
        &self.inner.security
    }

    pub fn endpoints(&self) -> &[Arc<dyn HttpSource>] {
        &self.inner.endpoints
    }

    pub fn plugins(&self) -> &dyn Analyzers {
        &*self.inner.plugins
    }

    /// Who may call `method` on the route `path` (as the router matched it). A method the route
    /// does not have is answered 405 by the router before any handler runs.
    pub fn access(&self, method: &HttpMethod, path: &str) -> Access {
        let method = match *method {
            HttpMethod::GET | HttpMethod::HEAD => Method::Get,
            HttpMethod::POST => Method::Post,
            HttpMethod::PUT => Method::Put,
            HttpMethod::DELETE => Method::Delete,
            _ => return Access::Public,
        };
        self.inner
            .access
            .get(path)
            .and_then(|by_method| by_method.iter().find(|(m, _)| *m == method))
            .map_or(Access::Public, |(_, a)| *a)
    }

    /// Asks the hub to stop.
    pub fn request_shutdown(&self) {
        self.inner.core.request_shutdown();
    }
}
