//! The embedded dashboard: serves `ui/dist` from the binary, `index.html` for `/`, and a
//! placeholder page when the binary was built without the UI.
//!
//! Static files only: nothing here may touch the store.

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

const PLACEHOLDER: &str = "<!doctype html><meta charset=utf-8><title>sightline</title>\
<body style=\"font-family:system-ui;margin:3rem\"><h1>sightline</h1><p>The hub is running. This build has no \
dashboard assets (build them with <code>npm --prefix ui run build</code> and rebuild).</p>\
<p>API: <a href=\"/api/v1/health\">/api/v1/health</a>, <a href=\"/openapi.json\">/openapi.json</a></p>";

fn find(path: &str) -> Option<&'static [u8]> {
    ASSETS
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, bytes)| *bytes)
}

pub async fn serve_asset(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    if let Some(bytes) = find(path) {
        let mut response = (StatusCode::OK, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        );
        // Hashed asset names never change content; index.html must always be fresh.
        let cache = if path.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        return response;
    }
    if path.starts_with("api/") || path.contains('.') {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    // Unknown page paths get the app (it routes by hash, but deep links should still load).
    match find("index.html") {
        Some(index) => Html(index).into_response(),
        None => Html(PLACEHOLDER).into_response(),
    }
}
