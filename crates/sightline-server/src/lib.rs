//! The sightline hub's HTTP server: routes, the auth layer, and start/stop.
//!
//! [`start`] opens the store, wires the writer's commits to the bus, and serves on a listener
//! the caller bound (so the CLI decides about ports and exit codes, and tests bind port 0).
//! The server must never acknowledge an event before its commit and never let one slow client
//! hold up another: both rules live in `ingest` and `subscription`.

pub mod api;
pub mod assets;
pub mod bus;
pub mod control;
pub mod error;
pub mod export;
pub mod hub;
pub mod ingest;
pub mod openapi;
pub mod otlp_export;
pub mod plugins;
pub mod security;
pub mod stream;
pub mod subscription;
pub mod telemetry;
pub mod workflow;
pub mod ws;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use sightline_store::{Store, StoreConfig, StoreError};
use tokio::net::TcpListener;

pub use crate::bus::Bus;
pub use crate::error::ApiError;
pub use crate::hub::{AdapterHealth, Hub, HubSettings};

/// Every route of the hub, plus `extra` routes (the adapters crate's endpoints).
pub fn router_with(hub: Hub, extra: Router<Hub>) -> Router {
    build_router(hub, extra)
}

/// Every route of the hub's core.
pub fn router(hub: Hub) -> Router {
    build_router(hub, Router::new())
}

fn build_router(hub: Hub, extra: Router<Hub>) -> Router {
    let api = Router::new()
        .route("/api/v1/events", post(ingest::post_events))
        .route("/api/v1/events/stream", get(stream::sse))
        .route("/api/v1/events/{seq}", get(api::event))
        .route("/telemetry", post(telemetry::post_telemetry))
        .route("/api/v1/health", get(api::health))
        .route("/api/v1/runs", get(api::runs))
        .route("/api/v1/runs/{run_id}", get(api::run))
        .route("/api/v1/runs/{run_id}/timeline", get(api::timeline))
        .route("/api/v1/sessions/{session_id}/tree", get(api::session_tree))
        .route("/api/v1/search", get(api::search))
        .route("/api/v1/stats", get(api::stats))
        .route("/api/v1/incidents", get(api::incidents))
        .route("/api/v1/export", get(export::export))
        .route("/api/v1/import", post(export::import))
        .route(
            "/api/v1/processes/{run_id}/control",
            get(control::get_control).put(control::put_control),
        )
        .route("/api/v1/shutdown", post(shutdown))
        .route("/api/v1/plugins", get(plugins::list))
        .route("/api/v1/plugins/{name}/invoke", post(plugins::invoke))
        .route("/openapi.json", get(openapi::openapi))
        .route("/ws", get(ws::upgrade))
        .route("/ws/workflow/{id}", get(workflow::stream))
        .route(
            "/api/v1/workflows/{id}/updates",
            post(workflow::post_updates),
        )
        .route("/api/v1/audit", get(security::audit_log));
    api.merge(extra)
        .fallback(assets::serve_asset)
        .layer(middleware::from_fn_with_state(hub.clone(), security::guard))
        .with_state(hub)
}

async fn shutdown(State(hub): State<Hub>) -> impl IntoResponse {
    hub.shutdown.notify_one();
    (
        axum::http::StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"stopping": true})),
    )
}

/// Opens the store with its commits wired to a new bus.
pub fn open_hub(store: StoreConfig, settings: HubSettings) -> Result<Hub, StoreError> {
    let bus = Bus::default();
    let publisher = bus.clone();
    let store = Store::open(store, Box::new(move |events| publisher.publish(events)))?;
    Ok(Hub::new(store, bus, settings))
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
        self.hub.shutdown.notify_one();
        self.wait().await
    }

    /// Waits until the hub stops by itself (shutdown request or signal).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = self
            .task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        let store = self.hub.store.clone();
        tokio::task::spawn_blocking(move || store.close())
            .await
            .map_err(std::io::Error::other)?;
        result
    }
}

/// Serves the hub on `listener` until a shutdown request. Live streams are closed at shutdown
/// so that the graceful drain can finish.
pub fn start(hub: Hub, listener: TcpListener) -> std::io::Result<Running> {
    start_with(hub, listener, Router::new())
}

/// Like [`start`], with extra routes merged in.
pub fn start_with(hub: Hub, listener: TcpListener, extra: Router<Hub>) -> std::io::Result<Running> {
    use axum::serve::ListenerExt;
    let addr = listener.local_addr()?;
    let app = router_with(hub.clone(), extra);
    let stopper = hub.clone();
    // Live streams write many small frames: without TCP_NODELAY, Nagle's algorithm holds a
    // frame back until the previous one is acknowledged, and delayed ACKs turn that into
    // tens of milliseconds of latency.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            stopper.shutdown.notified().await;
            stopper.begin_closing();
        })
        .await
    });
    Ok(Running { hub, addr, task })
}

/// Like [`start_with`], over TLS (see [`security::load_tls`]).
pub fn start_tls(
    hub: Hub,
    listener: TcpListener,
    extra: Router<Hub>,
    tls: std::sync::Arc<rustls::ServerConfig>,
) -> std::io::Result<Running> {
    use axum::serve::ListenerExt;
    let addr = listener.local_addr()?;
    let app = router_with(hub.clone(), extra);
    let stopper = hub.clone();
    // `tap_io` makes axum hand the peer's SocketAddr to `ConnectInfo`, as for plain TCP.
    let listener = security::TlsListener::new(listener, tls).tap_io(|_| {});
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            stopper.shutdown.notified().await;
            stopper.begin_closing();
        })
        .await
    });
    Ok(Running { hub, addr, task })
}
