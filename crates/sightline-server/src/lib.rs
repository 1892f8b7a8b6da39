//! The sightline hub's HTTP server: the route table, the auth layer, the WebSocket and SSE
//! streams, and start/stop. HTTP only: the shared state and the ingest path are the core's, the
//! sources are mounted from their own descriptions (`sightline_core::HttpSource`), so this
//! crate and the sources never depend on each other.
//!
//! [`start`] serves on a listener the caller bound (so the CLI decides about ports and exit
//! codes, and tests bind port 0). The server must never acknowledge an event before its commit
//! and never let one slow client hold up another.

pub mod assets;
pub mod auth;
mod compress;
pub mod config_file;
pub mod error;
pub mod hub;
pub mod routes;

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use sightline_core::plugins::{Analyzers, NoPlugins};
use sightline_core::{Core, HttpSource};
use sightline_store::{StoreConfig, StoreError};
use tokio::net::TcpListener;

pub use crate::error::ApiError;
pub use crate::hub::{Hub, HubSettings};

/// What a server is built from besides the core: its settings, the endpoint sources to mount
/// and the plugin runner.
pub struct Parts {
    pub settings: HubSettings,
    pub endpoints: Vec<Arc<dyn HttpSource>>,
    pub plugins: Arc<dyn Analyzers>,
}

impl Default for Parts {
    fn default() -> Self {
        Parts {
            settings: HubSettings::default(),
            endpoints: Vec::new(),
            plugins: Arc::new(NoPlugins),
        }
    }
}

/// Every route of the table, behind the auth layer, with the dashboard's files as fallback.
pub fn router(hub: Hub) -> Router {
    let mut app = Router::new();
    for route in routes::table::all(hub.endpoints()) {
        app = app.route(route.path, route.handler());
    }
    app.fallback(assets::serve_asset)
        .layer(middleware::from_fn_with_state(hub.clone(), auth::guard))
        .layer(middleware::from_fn(contain_panics))
        .layer(middleware::from_fn(log_request))
        .layer(compress::layer())
        .with_state(hub)
}

/// One debug line per request: method, path (never the query string: it can carry
/// `access_token`), status and time. Free when debug is off.
async fn log_request(req: Request, next: Next) -> Response {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    tracing::debug!(
        %method,
        %path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// A panic inside a handler becomes a 500 with a message and a log line, never a dropped
/// connection; the hub keeps serving.
async fn contain_panics(req: Request, next: Next) -> Response {
    // A `Uri` clone shares its bytes: no allocation on the path every request takes.
    let uri = req.uri().clone();
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let message = sightline_core::panic_message(&*panic);
            tracing::error!(path = uri.path(), "a request handler panicked: {message}");
            ApiError::Internal(
                "the hub failed on this request (a bug, logged); nothing of it was stored, and the hub goes on"
                    .into(),
            )
            .into_response()
        }
    }
}

/// Opens the core (store with its commits wired to a new bus) and builds the server's state.
pub fn open_hub(store: StoreConfig, parts: Parts) -> Result<Hub, StoreError> {
    let core = Core::open(store)?;
    Ok(Hub::new(
        core,
        parts.settings,
        parts.endpoints,
        parts.plugins,
    ))
}

/// A hub being served; stop it with [`Running::stop`] or by `POST /api/v1/shutdown`.
pub struct Running {
    pub hub: Hub,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Asks the hub to stop and waits until every queued event is committed.
    pub async fn stop(self) -> std::io::Result<()> {
        self.hub.request_shutdown();
        self.wait().await
    }

    /// Waits until the hub stops by itself (shutdown request or signal).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = self
            .task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        let store = self.hub.store().clone();
        tokio::task::spawn_blocking(move || store.close())
            .await
            .map_err(std::io::Error::other)?;
        result
    }
}

/// Serves the hub on `listener` until a shutdown request. Live streams are closed at shutdown
/// so that the graceful drain can finish.
pub fn start(hub: Hub, listener: TcpListener) -> std::io::Result<Running> {
    use axum::serve::ListenerExt;
    // Live streams write many small frames: without TCP_NODELAY, Nagle's algorithm holds a
    // frame back until the previous one is acknowledged, and delayed ACKs turn that into
    // tens of milliseconds of latency.
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    Ok(serve(hub, addr, listener))
}

/// Like [`start`], over TLS (see [`auth::load_tls`]).
pub fn start_tls(
    hub: Hub,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
) -> std::io::Result<Running> {
    use axum::serve::ListenerExt;
    let addr = listener.local_addr()?;
    // `tap_io` makes axum hand the peer's SocketAddr to `ConnectInfo`, as for plain TCP.
    let listener = auth::TlsListener::new(listener, tls).tap_io(|_| {});
    Ok(serve(hub, addr, listener))
}

/// The one serving loop, over plain TCP or TLS.
fn serve<L, F>(hub: Hub, addr: SocketAddr, listener: axum::serve::TapIo<L, F>) -> Running
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    F: FnMut(&mut L::Io) + Send + 'static,
{
    let app = router(hub.clone());
    let stopper = hub.core().clone();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            stopper.shutdown_requested().await;
            stopper.begin_closing();
        })
        .await
    });
    Running { hub, addr, task }
}
