//! The one HTTP client stack of sightline's Rust code: every client that talks to a hub (the
//! CLI's commands, `sightline hook`), the OTLP exporter, the notifier, the HTTP plugin caller and
//! the test kit get their `ureq::Agent` from here ([`agent`], [`Trust::agent`],
//! [`plain_agent`]), so `https://` works, or fails with a message, the same everywhere.
//!
//! Trust is the system's roots (the platform's store, read by `rustls-native-certs`; on Linux
//! the distribution's bundle, or `SSL_CERT_FILE` / `SSL_CERT_DIR`) plus, for a private CA, the
//! PEM certificates of `--cacert FILE` / `SIGHTLINE_CA_FILE`. The crypto is rustls with `ring`,
//! the provider the hub itself serves TLS with.
//!
//! This module must never turn verification off, never trust a certificate the user did not
//! name or the system does not trust, and never hide a TLS failure behind "the hub is down":
//! [`explain`] says which of the two it was and what to do.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The environment variable that names a private CA's PEM file for every client.
pub const CA_FILE_ENV: &str = "SIGHTLINE_CA_FILE";

/// A CA file bigger than this is not a CA file (the whole Mozilla bundle is about 220 KiB).
const MAX_CA_FILE: u64 = 4 * 1024 * 1024;

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot read the CA file {path}: {source}; pass --cacert (or SIGHTLINE_CA_FILE) a readable PEM file"
    )]
    CaUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the CA file {path} holds no certificate (no `-----BEGIN CERTIFICATE-----` block); pass --cacert (or SIGHTLINE_CA_FILE) the CA's certificate in PEM"
    )]
    CaEmpty { path: PathBuf },
    #[error(
        "the CA file {path} is not a usable certificate ({detail}); pass --cacert (or SIGHTLINE_CA_FILE) the CA's certificate in PEM"
    )]
    CaInvalid { path: PathBuf, detail: String },
    #[error(
        "no trusted root certificates: the system has none (set SSL_CERT_FILE to a bundle) and no CA file was given (--cacert or SIGHTLINE_CA_FILE)"
    )]
    NoRoots,
}

/// The CA file chosen for this process (the CLI's `--cacert`, which already falls back to
/// `SIGHTLINE_CA_FILE`); set once at start-up.
static PROCESS_CA_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Sets the private CA every client of this process trusts besides the system's roots. The
/// CLI calls it once with `--cacert` (or `SIGHTLINE_CA_FILE`); a second call changes nothing.
/// Without a call, [`ca_file`] reads `SIGHTLINE_CA_FILE`.
pub fn set_ca_file(path: Option<PathBuf>) {
    let _ = PROCESS_CA_FILE.set(path.filter(|p| !p.as_os_str().is_empty()));
}

/// The private CA file in force: the one set with [`set_ca_file`], else `SIGHTLINE_CA_FILE`
/// (an empty value means none).
pub fn ca_file() -> Option<PathBuf> {
    match PROCESS_CA_FILE.get() {
        Some(p) => p.clone(),
        None => std::env::var_os(CA_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
    }
}

/// Reads the PEM certificates of a CA file and checks each can anchor a chain.
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    use std::io::Read;
    let unreadable = |source| ClientError::CaUnreadable {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CA_FILE + 1).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_CA_FILE {
        return Err(ClientError::CaInvalid {
            path: path.to_path_buf(),
            detail: format!("over {MAX_CA_FILE} bytes"),
        });
    }
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::CaInvalid {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(ClientError::CaEmpty {
            path: path.to_path_buf(),
        });
    }
    // The same check rustls makes when it builds its root store, done here so a bad file is
    // an error now rather than a certificate silently left out.
    let mut store = rustls::RootCertStore::empty();
    for cert in &certs {
        store
            .add(cert.clone())
            .map_err(|e| ClientError::CaInvalid {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
    }
    Ok(certs)
}

/// The system's roots, read once per process (a few milliseconds: a file of ~150 PEM blocks on
/// Linux) and only by a client that speaks TLS. Unreadable entries are skipped: one bad file
/// in a certificate directory must not take the others with it.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("system root certificates: {e}");
        }
        found.certs
    })
}

/// How long a client waits, and for what.
#[derive(Debug, Clone, Default)]
pub struct Timeouts {
    /// Connecting (TCP and the TLS handshake's first round trip).
    pub connect: Option<Duration>,
    /// The whole request, answer included.
    pub global: Option<Duration>,
}

/// What a client trusts: the system's roots and the private CA, if any.
#[derive(Debug, Clone)]
pub struct Trust {
    extra: Vec<CertificateDer<'static>>,
}

impl Trust {
    /// The system's roots plus the CA file in force ([`ca_file`]).
    pub fn from_process() -> Result<Trust, ClientError> {
        Trust::with_ca_file(ca_file().as_deref())
    }

    /// The system's roots plus the certificates of `ca_file`, if given.
    pub fn with_ca_file(ca_file: Option<&Path>) -> Result<Trust, ClientError> {
        let extra = match ca_file {
            Some(path) => load_ca_file(path)?,
            None => Vec::new(),
        };
        Ok(Trust { extra })
    }

    /// The system's roots only (what a client falls back to when the CA file is unusable and
    /// it must still try to deliver).
    pub fn system() -> Trust {
        Trust { extra: Vec::new() }
    }

    /// The agent every Rust client uses: HTTP status codes are answers, not errors (callers
    /// read the hub's JSON error), and `https://` is verified against this trust.
    pub fn agent(&self, timeouts: &Timeouts) -> Result<ureq::Agent, ClientError> {
        Ok(ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(timeouts.connect)
            .timeout_global(timeouts.global)
            .tls_config(self.tls_config()?)
            .build()
            .new_agent())
    }

    fn tls_config(&self) -> Result<ureq::tls::TlsConfig, ClientError> {
        let system = system_roots();
        if system.is_empty() && self.extra.is_empty() {
            return Err(ClientError::NoRoots);
        }
        let roots: Vec<ureq::tls::Certificate<'static>> = system
            .iter()
            .chain(&self.extra)
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        Ok(ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(crypto_provider())
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
            .build())
    }
}

fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// An agent for `url`: with the process's trust when `url` is `https://` (the system's roots
/// are read only then), plain otherwise. The CA file in force is read and checked either way,
/// so a mistyped `--cacert` is reported even before the first TLS hub.
pub fn agent(url: &str, timeouts: &Timeouts) -> Result<ureq::Agent, ClientError> {
    let trust = Trust::from_process()?;
    if is_https(url) {
        trust.agent(timeouts)
    } else {
        Ok(plain_agent(timeouts))
    }
}

/// An agent for plain `http://`, which trusts no certificate at all: an `https://` request
/// through it fails with an untrusted-certificate error ([`explain`] says what to do), never
/// with the panic a ureq agent without roots or provider would give.
pub fn plain_agent(timeouts: &Timeouts) -> ureq::Agent {
    let no_roots = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(crypto_provider())
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(Vec::new())))
        .build();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(timeouts.connect)
        .timeout_global(timeouts.global)
        .tls_config(no_roots)
        .build()
        .new_agent()
}

/// Whether a URL asks for TLS.
pub fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// What kind of failure a request met, for the caller to decide what to say or do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// Nothing answers there (refused, unknown host, timed out connecting): the peer is down.
    Unreachable,
    /// Something answered but TLS did not work out: the message says what to change. A
    /// producer keeps its events but must say this out loud: waiting will not fix it.
    Tls,
    /// Anything else (a timeout mid-answer, a broken connection, a malformed answer).
    Other,
}

/// A request's failure in words a user can act on, with its kind. `url` is the URL the request
/// went to; `peer` names the other side in the message ("the hub", "the collector").
pub fn explain(error: &ureq::Error, url: &str, peer: &str) -> (FailureKind, String) {
    let authority = authority(url);
    if let Some(tls) = rustls_error(error) {
        return (FailureKind::Tls, tls_message(tls, authority, peer, url));
    }
    match error {
        ureq::Error::TlsRequired | ureq::Error::Tls(_) => (
            FailureKind::Tls,
            format!("TLS to {peer} at {authority} failed ({error})"),
        ),
        ureq::Error::HostNotFound => (
            FailureKind::Unreachable,
            format!("cannot resolve the host of {url}"),
        ),
        ureq::Error::ConnectionFailed => (
            FailureKind::Unreachable,
            format!("nothing answers at {authority}"),
        ),
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => (
            FailureKind::Unreachable,
            format!("connecting to {authority} timed out"),
        ),
        ureq::Error::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            ) =>
        {
            (
                FailureKind::Unreachable,
                format!("nothing answers at {authority} ({e})"),
            )
        }
        // Plain HTTP to a TLS port: the server reads our request as a broken TLS record and
        // answers with an alert, bytes that are no HTTP status line.
        ureq::Error::Protocol(_) if !is_https(url) => (
            FailureKind::Tls,
            format!(
                "{peer} at {authority} did not answer plain HTTP ({error}); if it serves TLS, use https://{}",
                url.split_once("://").map_or(url, |(_, rest)| rest)
            ),
        ),
        _ => (
            FailureKind::Other,
            format!("{peer} at {authority}: {error}"),
        ),
    }
}

fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// The rustls error inside a ureq error: ureq reports handshake failures either directly or as
/// the I/O error rustls' stream gave.
fn rustls_error(error: &ureq::Error) -> Option<&rustls::Error> {
    match error {
        ureq::Error::Rustls(e) => Some(e),
        ureq::Error::Io(e) => e.get_ref().and_then(|inner| inner.downcast_ref()),
        _ => None,
    }
}

fn tls_message(error: &rustls::Error, authority: &str, peer: &str, url: &str) -> String {
    use rustls::CertificateError as C;
    let fix_trust = "pass --cacert FILE or set SIGHTLINE_CA_FILE to the PEM certificate of the CA that signed it";
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => format!(
                "the certificate of {peer} at {authority} is not trusted (signed by a CA this machine does not trust): {fix_trust}"
            ),
            C::BadSignature | C::UnhandledCriticalExtension => format!(
                "the certificate of {peer} at {authority} is not trusted ({cert:?}): {fix_trust}"
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                "the certificate of {peer} at {authority} is not issued for `{}`: connect by a name or address the certificate lists, or reissue it with this one",
                host(authority)
            ),
            C::Expired | C::ExpiredContext { .. } => format!(
                "the certificate of {peer} at {authority} has expired: renew it (--tls-cert on the hub)"
            ),
            C::NotValidYet | C::NotValidYetContext { .. } => format!(
                "the certificate of {peer} at {authority} is not valid yet: check this machine's clock"
            ),
            C::Revoked => format!("the certificate of {peer} at {authority} is revoked"),
            other => format!(
                "the certificate of {peer} at {authority} was refused ({other:?}): {fix_trust}"
            ),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => format!(
            "{peer} at {authority} does not speak TLS; if it serves plain HTTP, use http://{}",
            url.split_once("://").map_or(url, |(_, rest)| rest)
        ),
        other => format!("TLS with {peer} at {authority} failed: {other}"),
    }
}

fn host(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_apart() {
        assert!(is_https("https://127.0.0.1:4517"));
        assert!(is_https("HTTPS://hub"));
        assert!(!is_https("http://127.0.0.1:4517"));
        assert!(!is_https("https:/"));
        assert_eq!(authority("https://hub:4517/api/v1?x=1"), "hub:4517");
        assert_eq!(authority("hub:1"), "hub:1");
        assert_eq!(host("hub:4517"), "hub");
        assert_eq!(host("[::1]:4517"), "::1");
    }

    #[test]
    fn a_missing_empty_or_bad_ca_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = load_ca_file(&missing).unwrap_err();
        assert!(matches!(e, ClientError::CaUnreadable { .. }), "{e}");
        assert!(e.to_string().contains("missing.pem") && e.to_string().contains("--cacert"));

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "just words\n").unwrap();
        let e = load_ca_file(&empty).unwrap_err();
        assert!(matches!(e, ClientError::CaEmpty { .. }), "{e}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = load_ca_file(&garbage).unwrap_err();
        assert!(matches!(e, ClientError::CaInvalid { .. }), "{e}");
    }

    #[test]
    fn the_plain_agent_refuses_https_with_an_error_not_a_panic() {
        // A listener that completes TCP (the kernel's backlog) but never speaks: the client
        // builds its TLS settings and sends its hello, then times out waiting.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}/", listener.local_addr().unwrap());
        let timeouts = Timeouts {
            connect: Some(Duration::from_secs(2)),
            global: Some(Duration::from_millis(500)),
        };
        let error = plain_agent(&timeouts).get(&url).call().unwrap_err();
        let (kind, _) = explain(&error, &url, "the hub");
        assert_ne!(kind, FailureKind::Unreachable, "{error}");
    }

    /// Standard base64 with padding, enough to put arbitrary bytes inside a PEM block.
    fn base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    proptest::proptest! {
        /// A CA file is whatever the user points at: any bytes, raw or inside a PEM block, give
        /// certificates that all anchor a chain, or an error naming the file; never a panic.
        #[test]
        fn any_ca_file_gives_anchors_or_an_error_that_names_it(
            bytes in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..2048),
            wrap in proptest::arbitrary::any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ca.pem");
            let content = if wrap {
                format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", base64(&bytes))
                    .into_bytes()
            } else {
                bytes
            };
            std::fs::write(&path, &content).unwrap();
            match load_ca_file(&path) {
                Ok(certs) => proptest::prop_assert!(!certs.is_empty()),
                Err(e) => proptest::prop_assert!(e.to_string().contains("ca.pem"), "{}", e),
            }
        }

        /// URLs come from flags and the environment: the authority and host are always slices
        /// of what was given, whatever it is.
        #[test]
        fn any_url_splits_without_panicking(url in ".{0,80}") {
            let a = authority(&url);
            proptest::prop_assert!(url.contains(a));
            proptest::prop_assert!(a.contains(host(a)));
        }
    }
}
