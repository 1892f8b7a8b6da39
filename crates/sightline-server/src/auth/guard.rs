//! The middleware every request passes before any handler: Host (DNS rebinding) → Origin
//! (foreign browser pages, with CORS for allowed ones) → per-address rate limit → token and the
//! role the route table says the route needs → per-token rate limit → audit of admin actions.
//!
//! The role comes from the route table (`crate::routes::table`) through the matched route; this
//! module never decides access by looking at the path. It must never log a token's value and
//! never let an unauthenticated request reach a handler that is not public.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sightline_core::{Access, Role};

use super::{AuthRefusal, Grant, Security};
use crate::error::ApiError;
use crate::hub::Hub;

/// The bearer token of a request: the header, or `access_token` for clients that cannot set
/// headers (a browser's EventSource and WebSocket).
pub fn presented_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(|t| t.trim().to_string());
    }
    query.and_then(|q| {
        q.split('&').find_map(|kv| {
            kv.strip_prefix("access_token=")
                .map(|t| percent_decode(t).trim().to_string())
        })
    })
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `%XX` and `+` decoded, byte by byte (so a `%` before a multi-byte character can never split
/// it); invalid UTF-8 in the result becomes U+FFFD.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex_digit),
                bytes.get(i + 2).copied().and_then(hex_digit),
            )
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The authenticated caller of a request, put in its extensions by [`guard`].
#[derive(Debug, Clone)]
pub struct Caller {
    /// `None` when auth is off (loopback hub without tokens), or on `/ws` before `auth`.
    pub grant: Option<Grant>,
    pub addr: Option<SocketAddr>,
    /// Whether the connection still has to authenticate (`/ws` without a token).
    pub pending_auth: bool,
}

impl Caller {
    /// Auth off or the grant has the role.
    pub fn allows(&self, security: &Security, role: Role) -> bool {
        if self.pending_auth {
            return false;
        }
        !security.auth_required() || self.grant.as_ref().is_some_and(|g| g.allows(role))
    }
}

fn too_many(retry: Duration, message: &str) -> Response {
    let secs = retry.as_secs_f64().ceil().max(1.0) as u64;
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({"error": {"code": "rate_limited", "message": message, "details": null}})),
    )
        .into_response();
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&secs.to_string()).expect("digits"),
    );
    r
}

/// Methods and request headers a page on an allowed origin may use (CORS preflight answer).
const CORS_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS";
const CORS_HEADERS: &str = "authorization, content-type, last-event-id, accept";
/// Response headers such a page may read besides the CORS-safelisted ones.
const CORS_EXPOSE: &str = "retry-after, location";

/// The middleware: CORS for pages on allowed origins around [`admit`].
///
/// A browser page on another origin that `--allow-origin` names can call the REST API and open
/// SSE: its preflight (`OPTIONS` with `Access-Control-Request-Method`, which carries no
/// credentials) is answered here, and every answer to it, errors included, says which origin
/// may read it. Origins that are not allowed get nothing of this: [`admit`] refuses them.
pub async fn guard(State(hub): State<Hub>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    let cors_origin = req
        .headers()
        .get(header::ORIGIN)
        .filter(|o| {
            o.to_str().is_ok_and(|o| {
                hub.security().origin_allowed(o, host)
                    && host.is_none_or(|h| hub.security().host_allowed(h))
            })
        })
        .cloned();
    let Some(origin) = cors_origin else {
        return admit(State(hub), req, next).await;
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(CORS_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(CORS_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        r
    } else {
        admit(State(hub), req, next).await
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.append(header::VARY, HeaderValue::from_static("origin"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(CORS_EXPOSE),
    );
    resp
}

/// Host, Origin, rate limits, token and role, audit.
async fn admit(State(hub): State<Hub>, mut req: Request, next: Next) -> Response {
    let sec = hub.security();
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = addr.map(|a| a.ip());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(h) = &host
        && !sec.host_allowed(h)
    {
        sec.audit(
            "host_refused",
            ip,
            None,
            method.as_str(),
            &path,
            403,
            Some(h.clone()),
        );
        return ApiError::Forbidden(format!(
            "Host `{h}` is not this hub's name (DNS rebinding protection); add it with --allow-host"
        ))
        .into_response();
    }
    if let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        && !sec.origin_allowed(origin, host.as_deref())
    {
        sec.audit(
            "origin_refused",
            ip,
            None,
            method.as_str(),
            &path,
            403,
            Some(origin.to_string()),
        );
        return ApiError::Forbidden(format!(
            "requests from the page at `{origin}` are refused; allow it with --allow-origin"
        ))
        .into_response();
    }
    if let Err(retry) = sec.take_addr(ip) {
        return too_many(retry, "too many requests from this address; slow down");
    }
    // The route table says what this route needs; a request no route matched is served by
    // the dashboard's files (public) or answered 404 by the fallback.
    let need = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| hub.access(&method, m.as_str()))
        .unwrap_or(Access::Public);
    let presented = presented_token(req.headers(), req.uri().query());
    let mut caller = Caller {
        grant: None,
        addr,
        pending_auth: false,
    };
    if sec.auth_required() && need != Access::Public {
        match (presented.as_deref(), need) {
            (None, Access::Socket) => caller.pending_auth = true,
            (presented, _) => match sec.authenticate_from(ip, presented) {
                Ok(grant) => caller.grant = grant,
                Err(AuthRefusal::LockedOut(retry)) => {
                    sec.audit("locked_out", ip, None, method.as_str(), &path, 429, None);
                    return too_many(
                        retry,
                        "too many failed authentications from this address; locked out, wait",
                    );
                }
                Err(AuthRefusal::Unauthorized) => {
                    let detail = if presented.is_some() {
                        "wrong token"
                    } else {
                        "no token"
                    };
                    sec.audit(
                        "auth_failed",
                        ip,
                        None,
                        method.as_str(),
                        &path,
                        401,
                        Some(detail.into()),
                    );
                    return ApiError::Unauthorized.into_response();
                }
            },
        }
        let grant = caller.grant.clone();
        let ok = match need {
            Access::Public | Access::Socket => true,
            Access::Role(r) => grant.as_ref().is_some_and(|g| g.allows(r)),
            Access::Either(a, b) => grant.as_ref().is_some_and(|g| g.allows(a) || g.allows(b)),
        };
        let name = grant.as_ref().map(|g| g.name.clone());
        if !ok {
            let wanted = match need {
                Access::Role(r) => r.as_str().to_string(),
                Access::Either(a, b) => format!("{} or {}", a.as_str(), b.as_str()),
                _ => String::new(),
            };
            sec.audit(
                "forbidden",
                ip,
                name.as_deref(),
                method.as_str(),
                &path,
                403,
                Some(format!("needs {wanted}")),
            );
            return ApiError::Forbidden(format!(
                "this token may not do that: it needs the `{wanted}` role"
            ))
            .into_response();
        }
        if let Some(name) = &name
            && let Err(retry) = sec.take_token(name)
        {
            return too_many(retry, "too many requests with this token; slow down");
        }
    }
    let admin_action = need == Access::Role(Role::Admin);
    let token_name = caller.grant.as_ref().map(|g| g.name.clone());
    req.extensions_mut().insert(caller);
    let response = next.run(req).await;
    if admin_action {
        sec.audit(
            "admin_action",
            ip,
            token_name.as_deref(),
            method.as_str(),
            &path,
            response.status().as_u16(),
            None,
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_never_splits_a_character() {
        for q in [
            "access_token=%a\u{e9}",
            "access_token=%\u{e9}",
            "access_token=%",
            "access_token=%4",
            "access_token=%zz\u{1f511}",
        ] {
            let _ = presented_token(&HeaderMap::new(), Some(q));
        }
        assert_eq!(percent_decode("%41%e2%82%ac+x"), "A€ x");
        assert_eq!(percent_decode("%a\u{e9}"), "%a\u{e9}");
    }

    proptest::proptest! {
        /// Issue 11, item 13: the query string arrives before authentication, so decoding it
        /// must take any text without panicking, and undo what a client's encoding did.
        #[test]
        fn any_query_text_decodes_without_panic_and_encoding_round_trips(
            raw in "(%|[0-9a-fA-F]|\\PC|\\+){0,40}",
            token in "\\PC{0,30}",
        ) {
            let _ = percent_decode(&raw);
            let _ = presented_token(&HeaderMap::new(), Some(&format!("access_token={raw}")));
            let encoded: String = token
                .bytes()
                .map(|b| format!("%{b:02X}"))
                .collect();
            proptest::prop_assert_eq!(percent_decode(&encoded), token);
        }
    }

    #[test]
    fn query_token_is_decoded() {
        let h = HeaderMap::new();
        assert_eq!(
            presented_token(&h, Some("a=1&access_token=ab%2Bc")).as_deref(),
            Some("ab+c")
        );
    }
}
