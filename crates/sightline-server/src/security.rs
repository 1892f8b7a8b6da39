//! Who may do what (DESIGN.md §5): token roles, `Host`/`Origin` checks, rate limits, the audit
//! log, and TLS.
//!
//! Every request passes [`guard`] before any handler: Host (DNS rebinding) → Origin (foreign
//! browser pages) → per-address rate limit → token and role → per-token rate limit. Health and
//! the dashboard's static files stay reachable without a token. This module must never log a
//! token's value (only its name), and must never let an unauthenticated request reach a handler
//! that is not public.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sightline_schema::Timestamp;

use crate::error::ApiError;
use crate::hub::Hub;

/// What a token may do. `admin` includes the other two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Query, search, subscribe (REST reads, SSE, WS subscribe).
    Read,
    /// Post events (REST, telemetry, hooks, OTLP, workflow updates, WS publish).
    Ingest,
    /// Import, shutdown, settings, audit log.
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text.trim() {
            "read" => Some(Role::Read),
            "ingest" => Some(Role::Ingest),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Ingest => "ingest",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("token file {path}, line {line}: {message}")]
    TokenFile {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("a valid token is required")]
    Unauthorized,
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// What a presented token is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// A name for logs and the audit trail (never the token itself).
    pub name: String,
    pub roles: BTreeSet<Role>,
}

impl Grant {
    pub fn allows(&self, role: Role) -> bool {
        self.roles.contains(&Role::Admin) || self.roles.contains(&role)
    }
}

/// One token as the config file writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    pub token: String,
    pub roles: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// Every token the hub accepts.
#[derive(Debug, Clone, Default)]
pub struct TokenTable {
    entries: Vec<(String, Grant)>,
}

impl TokenTable {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds a token (files and config refuse ones shorter than 8 characters; see
    /// [`TokenTable::add_checked`]).
    pub fn add(&mut self, token: &str, roles: &[Role], name: &str) -> Result<(), SecurityError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(SecurityError::Invalid(format!("token `{name}` is empty")));
        }
        if roles.is_empty() {
            return Err(SecurityError::Invalid(format!(
                "token `{name}` has no role; give it read, ingest and/or admin"
            )));
        }
        self.entries.retain(|(t, _)| t != token);
        self.entries.push((
            token.to_string(),
            Grant {
                name: name.to_string(),
                roles: roles.iter().copied().collect(),
            },
        ));
        Ok(())
    }

    /// Like [`TokenTable::add`], refusing tokens shorter than 8 characters (too easy to guess).
    pub fn add_checked(
        &mut self,
        token: &str,
        roles: &[Role],
        name: &str,
    ) -> Result<(), SecurityError> {
        if token.trim().len() < 8 {
            return Err(SecurityError::Invalid(format!(
                "token `{name}` is shorter than 8 characters; use a long random string"
            )));
        }
        self.add(token, roles, name)
    }

    /// Adds tokens from the config file's `[[tokens]]` tables.
    pub fn add_specs(&mut self, specs: &[TokenSpec]) -> Result<(), SecurityError> {
        for (i, spec) in specs.iter().enumerate() {
            let name = spec
                .name
                .clone()
                .unwrap_or_else(|| format!("config#{}", i + 1));
            let roles = parse_roles(&spec.roles.join(","))
                .map_err(|m| SecurityError::Invalid(format!("token `{name}`: {m}")))?;
            self.add_checked(&spec.token, &roles, &name)?;
        }
        Ok(())
    }

    /// Reads a token file: one token per line, `TOKEN ROLES [NAME]`, roles comma-separated,
    /// `#` starts a comment.
    pub fn load_file(&mut self, path: &Path) -> Result<(), SecurityError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecurityError::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.parse_file(&text, &path.display().to_string())
    }

    pub fn parse_file(&mut self, text: &str, path: &str) -> Result<(), SecurityError> {
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |message: String| SecurityError::TokenFile {
                path: path.to_string(),
                line: i + 1,
                message,
            };
            let mut parts = line.split_whitespace();
            let (Some(token), Some(roles)) = (parts.next(), parts.next()) else {
                return Err(err(
                    "expected `TOKEN ROLES [NAME]`, e.g. `s3cr3t-t0ken read,ingest laptop`".into(),
                ));
            };
            let name = parts
                .next()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{path}:{}", i + 1));
            let roles = parse_roles(roles).map_err(err)?;
            self.add_checked(token, &roles, &name)
                .map_err(|e| SecurityError::TokenFile {
                    path: path.to_string(),
                    line: i + 1,
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// The grant of a presented token. Compares against every entry in constant time per
    /// entry, so timing does not tell which prefix matched.
    pub fn check(&self, presented: &str) -> Option<&Grant> {
        let mut found = None;
        for (token, grant) in &self.entries {
            if same_token(token, presented) {
                found = Some(grant);
            }
        }
        found
    }
}

fn parse_roles(text: &str) -> Result<Vec<Role>, String> {
    text.split(',')
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            Role::parse(r).ok_or_else(|| format!("role `{r}` is not one of read, ingest, admin"))
        })
        .collect()
}

/// Constant-time comparison, so a token cannot be guessed byte by byte from timings.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A rate: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl RateLimit {
    pub fn new(per_second: f64) -> Self {
        RateLimit {
            per_second,
            burst: (per_second * 2.0).max(1.0),
        }
    }
}

/// Security settings, part of `HubSettings`.
#[derive(Debug, Clone)]
pub struct SecuritySettings {
    pub tokens: TokenTable,
    /// Host names besides IP literals, `localhost` and this machine's name.
    pub allowed_hosts: Vec<String>,
    /// Browser origins besides the hub's own (e.g. `https://dash.example:8443`).
    pub allowed_origins: Vec<String>,
    /// Requests per token.
    pub rate_per_token: Option<RateLimit>,
    /// Requests per client address.
    pub rate_per_addr: Option<RateLimit>,
    /// Whether the per-address limit applies to loopback clients too (off by default: the
    /// local benchmark and local producers are the machine's owner).
    pub limit_loopback: bool,
    /// Authentication failures per address per minute before 429.
    pub auth_failures_per_minute: u32,
    /// Where the audit log is appended (JSON lines); `None` keeps it in memory only.
    pub audit_path: Option<PathBuf>,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            tokens: TokenTable::default(),
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            rate_per_token: Some(RateLimit::new(20_000.0)),
            rate_per_addr: Some(RateLimit::new(2_000.0)),
            limit_loopback: false,
            auth_failures_per_minute: 30,
            audit_path: None,
        }
    }
}

/// Token buckets keyed by token name or address.
pub struct Limiter {
    rate: RateLimit,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    pub fn new(rate: RateLimit) -> Self {
        Limiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one unit; on refusal, how long until one is available.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("limiter lock");
        if buckets.len() > 50_000 {
            // Full buckets carry no state worth keeping; dropping them bounds memory.
            let rate = self.rate;
            buckets.retain(|_, (level, at)| {
                (*level + now.duration_since(*at).as_secs_f64() * rate.per_second) < rate.burst
            });
        }
        let (level, at) = buckets
            .entry(key.to_string())
            .or_insert((self.rate.burst, now));
        *level = (*level + now.duration_since(*at).as_secs_f64() * self.rate.per_second)
            .min(self.rate.burst);
        *at = now;
        if *level >= 1.0 {
            *level -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((1.0 - *level) / self.rate.per_second).max(0.001),
            ))
        }
    }
}

/// One audit entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: u64,
    pub ts: Timestamp,
    /// `auth_failed`, `forbidden`, `rate_limited`, `host_refused`, `origin_refused`,
    /// `admin_action`.
    pub kind: String,
    pub addr: Option<String>,
    pub token: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub detail: Option<String>,
}

/// Kept in memory (the last [`AUDIT_RING`] entries) and appended to a file when configured.
pub struct AuditLog {
    ring: Mutex<VecDeque<AuditEntry>>,
    file: Option<Mutex<std::fs::File>>,
    next: std::sync::atomic::AtomicU64,
}

const AUDIT_RING: usize = 10_000;

impl AuditLog {
    /// Opens the log; earlier entries in the file are loaded so queries span restarts.
    pub fn open(path: Option<&Path>) -> Self {
        let mut ring = VecDeque::new();
        let mut file = None;
        if let Some(path) = path {
            if let Ok(text) = std::fs::read_to_string(path) {
                for line in text.lines() {
                    if let Ok(e) = serde_json::from_str::<AuditEntry>(line) {
                        if ring.len() == AUDIT_RING {
                            ring.pop_front();
                        }
                        ring.push_back(e);
                    }
                }
            }
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(f) => file = Some(Mutex::new(f)),
                Err(e) => tracing::warn!("audit log {}: {e}; keeping it in memory", path.display()),
            }
        }
        let next = ring.back().map_or(1, |e: &AuditEntry| e.id + 1);
        AuditLog {
            ring: Mutex::new(ring),
            file,
            next: std::sync::atomic::AtomicU64::new(next),
        }
    }

    pub fn record(&self, mut entry: AuditEntry) {
        entry.id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(file) = &self.file
            && let Ok(line) = serde_json::to_string(&entry)
        {
            let mut f = file.lock().expect("audit file lock");
            let _ = writeln!(f, "{line}");
        }
        let mut ring = self.ring.lock().expect("audit lock");
        if ring.len() == AUDIT_RING {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    /// Entries after `after` (an id), optionally of one kind, oldest first, at most `limit`.
    pub fn query(&self, after: u64, kind: Option<&str>, limit: usize) -> Vec<AuditEntry> {
        let ring = self.ring.lock().expect("audit lock");
        let mut out: Vec<AuditEntry> = ring
            .iter()
            .rev()
            .filter(|e| e.id > after && kind.is_none_or(|k| e.kind == k))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

/// The hub's security state: settings plus limiter buckets and the audit log.
pub struct Security {
    pub settings: SecuritySettings,
    per_token: Option<Limiter>,
    per_addr: Option<Limiter>,
    auth_failures: Limiter,
    pub audit: AuditLog,
    machine_names: Vec<String>,
}

impl Security {
    pub fn new(settings: SecuritySettings) -> Self {
        let mut machine_names = vec!["localhost".to_string()];
        for p in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
            if let Ok(n) = std::fs::read_to_string(p) {
                let n = n.trim().to_ascii_lowercase();
                if !n.is_empty() && !machine_names.contains(&n) {
                    machine_names.push(n);
                }
            }
        }
        let failures = settings.auth_failures_per_minute.max(1) as f64;
        Security {
            per_token: settings.rate_per_token.map(Limiter::new),
            per_addr: settings.rate_per_addr.map(Limiter::new),
            auth_failures: Limiter::new(RateLimit {
                per_second: failures / 60.0,
                burst: failures,
            }),
            audit: AuditLog::open(settings.audit_path.as_deref()),
            settings,
            machine_names,
        }
    }

    /// Whether auth is on at all (no tokens: a loopback hub, open to this machine).
    pub fn auth_required(&self) -> bool {
        !self.settings.tokens.is_empty()
    }

    /// Is `host` (a Host header's value, with or without port) one of this hub's names?
    /// IP literals are always fine: DNS rebinding needs a name.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = strip_port(host).to_ascii_lowercase();
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>().is_ok()
            || name.ends_with(".localhost")
            || self.machine_names.contains(&name)
            || self
                .settings
                .allowed_hosts
                .iter()
                .any(|h| h == "*" || h.eq_ignore_ascii_case(&name))
    }

    /// Is a browser `Origin` allowed for a request with this `Host`? Same origin (authority
    /// equals Host) or listed.
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim().trim_end_matches('/');
        if self
            .settings
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin))
        {
            return true;
        }
        let Some(authority) = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
        else {
            return false; // `null`, file://, extensions: no way to tell who they are
        };
        host.is_some_and(|h| {
            h.eq_ignore_ascii_case(authority) || same_default_port(origin, authority, h)
        })
    }

    pub fn take_token(&self, name: &str) -> Result<(), Duration> {
        self.per_token.as_ref().map_or(Ok(()), |l| l.take(name))
    }

    pub fn take_addr(&self, addr: Option<IpAddr>) -> Result<(), Duration> {
        match (&self.per_addr, addr) {
            (Some(l), Some(ip)) if self.settings.limit_loopback || !ip.is_loopback() => {
                l.take(&ip.to_string())
            }
            _ => Ok(()),
        }
    }

    fn auth_failure(&self, addr: Option<IpAddr>) -> Result<(), Duration> {
        let key = addr.map_or_else(|| "unknown".to_string(), |a| a.to_string());
        self.auth_failures.take(&key)
    }

    /// Resolves the token of a request (or a WS `auth` message): `Ok(None)` when auth is off.
    pub fn authenticate(&self, presented: Option<&str>) -> Result<Option<Grant>, SecurityError> {
        if !self.auth_required() {
            return Ok(None);
        }
        match presented.and_then(|t| self.settings.tokens.check(t)) {
            Some(g) => Ok(Some(g.clone())),
            None => Err(SecurityError::Unauthorized),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn audit(
        &self,
        kind: &str,
        addr: Option<IpAddr>,
        token: Option<&str>,
        method: &str,
        path: &str,
        status: u16,
        detail: Option<String>,
    ) {
        self.audit.record(AuditEntry {
            id: 0,
            ts: Timestamp::now(),
            kind: kind.to_string(),
            addr: addr.map(|a| a.to_string()),
            token: token.map(str::to_string),
            method: method.to_string(),
            path: path.to_string(),
            status,
            detail,
        });
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map_or(host, |h| &host[..h.len() + 1]);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// `http://x` and Host `x:80` are the same origin.
fn same_default_port(origin: &str, authority: &str, host: &str) -> bool {
    let default = if origin.starts_with("https://") {
        ":443"
    } else {
        ":80"
    };
    host.eq_ignore_ascii_case(&format!("{authority}{default}"))
}

/// What an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone (health, the dashboard's files).
    Public,
    /// A token with this role.
    Role(Role),
    /// A token with either role.
    Either(Role, Role),
    /// `/ws`: a valid token if one is presented; otherwise the socket must send `auth` first.
    Socket,
}

/// The policy table: which role each endpoint needs.
pub fn need(method: &Method, path: &str) -> Need {
    let get = method == Method::GET || method == Method::HEAD;
    if path == "/ws" {
        return Need::Socket;
    }
    if path.starts_with("/ws/") {
        return Need::Role(Role::Read);
    }
    if get
        && (path == "/api/v1/health"
            || path == "/openapi.json"
            || !(path.starts_with("/api/") || path.starts_with("/v1/")))
    {
        return Need::Public;
    }
    let is_post = method == Method::POST;
    if is_post
        && (path == "/api/v1/events"
            || path == "/telemetry"
            || path.starts_with("/api/v1/hooks/")
            || path.starts_with("/v1/")
            || (path.starts_with("/api/v1/workflows/") && path.ends_with("/updates")))
    {
        return Need::Role(Role::Ingest);
    }
    if path.starts_with("/api/v1/processes/") && path.ends_with("/control") {
        // The Python agent polls its control with its ingest token; changing it is a setting.
        return if get {
            Need::Either(Role::Read, Role::Ingest)
        } else {
            Need::Role(Role::Admin)
        };
    }
    if get && path == "/api/v1/audit" {
        return Need::Role(Role::Admin);
    }
    if get || (is_post && path.starts_with("/api/v1/plugins/")) {
        return Need::Role(Role::Read);
    }
    // Import, shutdown, and anything else that changes the hub.
    Need::Role(Role::Admin)
}

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

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
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
                hub.security.origin_allowed(o, host)
                    && host.is_none_or(|h| hub.security.host_allowed(h))
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
    let sec = &hub.security;
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
    let need = need(&method, &path);
    let presented = presented_token(req.headers(), req.uri().query());
    let mut caller = Caller {
        grant: None,
        addr,
        pending_auth: false,
    };
    if sec.auth_required() && need != Need::Public {
        match (presented.as_deref(), need) {
            (None, Need::Socket) => caller.pending_auth = true,
            (presented, _) => match sec.authenticate(presented) {
                Ok(grant) => caller.grant = grant,
                Err(_) => {
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
                    if let Err(retry) = sec.auth_failure(ip) {
                        return too_many(retry, "too many failed authentications; wait");
                    }
                    return ApiError::Unauthorized.into_response();
                }
            },
        }
        let grant = caller.grant.clone();
        let ok = match need {
            Need::Public | Need::Socket => true,
            Need::Role(r) => grant.as_ref().is_some_and(|g| g.allows(r)),
            Need::Either(a, b) => grant.as_ref().is_some_and(|g| g.allows(a) || g.allows(b)),
        };
        let name = grant.as_ref().map(|g| g.name.clone());
        if !ok {
            let wanted = match need {
                Need::Role(r) => r.as_str().to_string(),
                Need::Either(a, b) => format!("{} or {}", a.as_str(), b.as_str()),
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
    let admin_action = need == Need::Role(Role::Admin);
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

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    pub after: u64,
    pub kind: Option<String>,
    pub limit: Option<usize>,
}

/// `GET /api/v1/audit?after=<id>&kind=&limit=` (admin).
pub async fn audit_log(
    State(hub): State<Hub>,
    caller: Option<Extension<Caller>>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if let Some(Extension(c)) = caller
        && !c.allows(&hub.security, Role::Admin)
    {
        return Err(ApiError::Forbidden(
            "the audit log needs the admin role".into(),
        ));
    }
    let entries = hub.security.audit.query(
        q.after,
        q.kind.as_deref(),
        q.limit.unwrap_or(500).min(10_000),
    );
    Ok(Json(json!({"entries": entries})))
}

/// rustls' server settings, re-exported so callers need not depend on rustls.
pub type TlsServerConfig = rustls::ServerConfig;

/// TLS settings read from PEM files.
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, SecurityError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| SecurityError::Tls(format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| SecurityError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(SecurityError::Tls(format!(
            "{} holds no certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| SecurityError::Tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SecurityError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| SecurityError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener that terminates TLS. Handshakes run in their own tasks so one slow client
/// cannot hold up `accept` for the others.
pub struct TlsListener {
    local: SocketAddr,
    rx: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
}

impl TlsListener {
    pub fn new(listener: tokio::net::TcpListener, config: Arc<rustls::ServerConfig>) -> Self {
        let local = listener.local_addr().expect("bound listener");
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let handed = tx.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await;
                    if let Ok(Ok(tls)) = handshake {
                        let _ = handed.send((tls, peer)).await;
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        TlsListener { local, rx }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_roles_and_errors() {
        let mut t = TokenTable::default();
        t.parse_file(
            "# comment\nreader-token-1 read laptop\ningester-token ingest,read ci\nadmin-token-xx admin\n",
            "tokens",
        )
        .unwrap();
        assert_eq!(t.len(), 3);
        let g = t.check("ingester-token").unwrap();
        assert!(g.allows(Role::Ingest) && g.allows(Role::Read) && !g.allows(Role::Admin));
        assert!(t.check("admin-token-xx").unwrap().allows(Role::Read));
        assert!(t.check("nope").is_none());
        let e = TokenTable::default()
            .parse_file("abcdefghij superuser\n", "f")
            .unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(
            TokenTable::default()
                .parse_file("short read\n", "f")
                .is_err()
        );
    }

    #[test]
    fn hosts_and_origins() {
        let s = Security::new(SecuritySettings::default());
        assert!(s.host_allowed("127.0.0.1:4517"));
        assert!(s.host_allowed("localhost:4517"));
        assert!(s.host_allowed("[::1]:4517"));
        assert!(s.host_allowed("10.1.2.3"));
        assert!(!s.host_allowed("evil.example"));
        assert!(!s.host_allowed("evil.example:4517"));
        assert!(s.origin_allowed("http://127.0.0.1:4517", Some("127.0.0.1:4517")));
        assert!(!s.origin_allowed("http://evil.example", Some("127.0.0.1:4517")));
        assert!(!s.origin_allowed("null", Some("127.0.0.1:4517")));
        assert!(!s.origin_allowed("http://127.0.0.1:3000", Some("127.0.0.1:4517")));
    }

    #[test]
    fn limiter_refuses_then_recovers() {
        let l = Limiter::new(RateLimit {
            per_second: 10.0,
            burst: 2.0,
        });
        assert!(l.take("a").is_ok());
        assert!(l.take("a").is_ok());
        let wait = l.take("a").unwrap_err();
        assert!(wait <= Duration::from_millis(100));
        assert!(l.take("b").is_ok(), "keys are independent");
    }

    #[test]
    fn policy_table() {
        assert_eq!(need(&Method::GET, "/api/v1/health"), Need::Public);
        assert_eq!(need(&Method::GET, "/"), Need::Public);
        assert_eq!(need(&Method::GET, "/api/v1/runs"), Need::Role(Role::Read));
        assert_eq!(
            need(&Method::POST, "/api/v1/events"),
            Need::Role(Role::Ingest)
        );
        assert_eq!(need(&Method::POST, "/v1/traces"), Need::Role(Role::Ingest));
        assert_eq!(
            need(&Method::POST, "/api/v1/import"),
            Need::Role(Role::Admin)
        );
        assert_eq!(need(&Method::GET, "/api/v1/audit"), Need::Role(Role::Admin));
        assert_eq!(need(&Method::GET, "/ws"), Need::Socket);
        assert_eq!(need(&Method::GET, "/ws/workflow/x"), Need::Role(Role::Read));
        assert_eq!(
            need(&Method::POST, "/api/v1/workflows/w1/updates"),
            Need::Role(Role::Ingest)
        );
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
