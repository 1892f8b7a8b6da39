//! Who may do what: tokens and roles, `Host`/`Origin` checks, rate limits, the audit log and
//! TLS, one concern per file. [`guard::guard`] is the middleware every request passes.
//!
//! Health and the dashboard's static files stay reachable without a token. Nothing here may log
//! a token's value (only its name), or let an unauthenticated request reach a handler that is
//! not public.

pub mod audit;
pub mod guard;
pub mod limits;
pub mod tls;
pub mod tokens;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use sightline_schema::Timestamp;

pub use audit::{AuditEntry, AuditLog};
pub use guard::{Caller, guard, presented_token};
pub use limits::{Limiter, RateLimit};
pub use sightline_core::Role;
pub use tls::{TlsListener, TlsServerConfig, load_tls};
pub use tokens::{Grant, SecurityError, TokenSpec, TokenTable};

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

/// How long an address that used up its authentication failures is locked out: every attempt
/// from it, with the right token or not, is refused until then.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Addresses remembered as locked out at once (the oldest lock is forgotten first).
const MAX_LOCKOUTS: usize = 10_000;

/// WebSockets waiting to authenticate, per address and in all.
const MAX_UNAUTHENTICATED_PER_ADDR: usize = 16;
const MAX_UNAUTHENTICATED: usize = 128;

/// A counted unauthenticated WebSocket; the count drops with it.
pub struct UnauthenticatedSlot {
    security: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Option<IpAddr>, usize>>>,
    addr: Option<IpAddr>,
}

impl Drop for UnauthenticatedSlot {
    fn drop(&mut self) {
        let mut map = self
            .security
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.addr);
            }
        }
    }
}

/// Why an authentication was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AuthRefusal {
    /// No token, or a wrong one.
    Unauthorized,
    /// Too many failures from this address: locked out for this long, whatever is presented.
    LockedOut(Duration),
}

/// The hub's security state: settings plus limiter buckets and the audit log.
pub struct Security {
    pub settings: SecuritySettings,
    per_token: Option<Limiter>,
    per_addr: Option<Limiter>,
    auth_failures: Limiter,
    lockouts: std::sync::Mutex<std::collections::HashMap<IpAddr, std::time::Instant>>,
    unauthenticated:
        std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Option<IpAddr>, usize>>>,
    pub audit: AuditLog,
    machine_names: Vec<String>,
    /// Tokens changed while the hub runs (`routes::settings`): created ones, and the names of
    /// configured ones revoked. Consulted with the configured table on every request.
    runtime: std::sync::RwLock<RuntimeTokens>,
}

/// The token changes made through the settings API since the hub started.
#[derive(Debug, Default)]
pub struct RuntimeTokens {
    pub created: TokenTable,
    pub revoked: std::collections::BTreeSet<String>,
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
            lockouts: std::sync::Mutex::new(std::collections::HashMap::new()),
            unauthenticated: Default::default(),
            runtime: Default::default(),
        }
    }

    /// The token changes made at run time (read).
    pub fn runtime_tokens(&self) -> std::sync::RwLockReadGuard<'_, RuntimeTokens> {
        self.runtime
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The token changes made at run time (write; never held across an await).
    pub fn runtime_tokens_mut(&self) -> std::sync::RwLockWriteGuard<'_, RuntimeTokens> {
        self.runtime
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether auth is on at all (no tokens: a loopback hub, open to this machine).
    pub fn auth_required(&self) -> bool {
        // Revoking every configured token leaves auth on: a hub that was protected stays so.
        !self.settings.tokens.is_empty() || !self.runtime_tokens().created.is_empty()
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

    pub(crate) fn auth_failure(&self, addr: Option<IpAddr>) -> Result<(), Duration> {
        let key = addr.map_or_else(|| "unknown".to_string(), |a| a.to_string());
        self.auth_failures.take(&key)
    }

    /// Counts a WebSocket that must still authenticate; `None` when its address (or the hub)
    /// already has as many as it may.
    pub fn admit_unauthenticated(&self, addr: Option<IpAddr>) -> Option<UnauthenticatedSlot> {
        let mut map = self
            .unauthenticated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let total: usize = map.values().sum();
        let mine = map.get(&addr).copied().unwrap_or(0);
        if total >= MAX_UNAUTHENTICATED || mine >= MAX_UNAUTHENTICATED_PER_ADDR {
            return None;
        }
        *map.entry(addr).or_insert(0) += 1;
        Some(UnauthenticatedSlot {
            security: self.unauthenticated.clone(),
            addr,
        })
    }

    /// How long `addr` stays locked out, if it is.
    pub fn locked_out(&self, addr: Option<IpAddr>) -> Option<Duration> {
        let ip = addr?;
        let mut locks = self
            .lockouts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let until = *locks.get(&ip)?;
        let now = std::time::Instant::now();
        if until <= now {
            locks.remove(&ip);
            return None;
        }
        Some(until - now)
    }

    fn lock_out(&self, addr: Option<IpAddr>) {
        let Some(ip) = addr else { return };
        let mut locks = self
            .lockouts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if locks.len() >= MAX_LOCKOUTS {
            locks.retain(|_, until| *until > now);
            if locks.len() >= MAX_LOCKOUTS
                && let Some(oldest) = locks.iter().min_by_key(|(_, u)| **u).map(|(ip, _)| *ip)
            {
                locks.remove(&oldest);
            }
        }
        locks.insert(ip, now + LOCKOUT);
    }

    /// Authenticates a request or a WebSocket `auth` message from `addr`: the one place that
    /// counts failures per address, on HTTP and WebSocket alike, loopback included. Once an
    /// address has used up its failures it is locked out for [`LOCKOUT`]: every attempt is
    /// refused, the right token too, so guessing cannot go on at the limiter's pace.
    pub fn authenticate_from(
        &self,
        addr: Option<IpAddr>,
        presented: Option<&str>,
    ) -> Result<Option<Grant>, AuthRefusal> {
        if !self.auth_required() {
            return Ok(None);
        }
        if let Some(left) = self.locked_out(addr) {
            return Err(AuthRefusal::LockedOut(left));
        }
        match self.authenticate(presented) {
            Ok(grant) => Ok(grant),
            Err(_) => {
                if self.auth_failure(addr).is_err() {
                    self.lock_out(addr);
                    return Err(AuthRefusal::LockedOut(LOCKOUT));
                }
                Err(AuthRefusal::Unauthorized)
            }
        }
    }

    /// Resolves the token of a request (or a WS `auth` message): `Ok(None)` when auth is off.
    pub fn authenticate(&self, presented: Option<&str>) -> Result<Option<Grant>, SecurityError> {
        if !self.auth_required() {
            return Ok(None);
        }
        let Some(presented) = presented else {
            return Err(SecurityError::Unauthorized);
        };
        let runtime = self.runtime_tokens();
        let configured = self
            .settings
            .tokens
            .check(presented)
            .filter(|g| !runtime.revoked.contains(&g.name));
        match runtime.created.check(presented).or(configured) {
            Some(g) => Ok(Some(g.clone())),
            None => Err(SecurityError::Unauthorized),
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one flat call per audit site reads better than a struct built at each of them"
    )]
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
}
