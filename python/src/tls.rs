//! TLS for `https://` and `wss://` hub URLs: the rustls client configuration (ring provider,
//! no C toolchain beyond ring's) and the handshake over an already connected `TcpStream`.
//!
//! Trust comes from the operating system's certificate store (rustls-native-certs: the same
//! bundle curl and Python's `ssl` use, so a CA an administrator installed, or removed, counts
//! here too; `SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured), plus a private CA from
//! `SIGHTLINE_CA_FILE` / `ca_file=` for a hub whose certificate no public CA signed. The CA
//! file is read when the URL is configured (so a wrong path is an error at `start()`); the
//! system store (tens of milliseconds) is read once per process, on the first connection, by
//! the sender or control thread: neither `start()` nor the traced program's hot path waits for
//! it, and handshakes happen on those threads too.
//!
//! It must never turn off verification, never panic on what the peer sends, and every error
//! it gives says what the user can do about it.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How long a handshake may take before the hub is taken for unreachable (the socket's read
/// timeout is set back to the caller's afterwards).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS configuration that cannot be built: the message says what to fix.
#[derive(Debug)]
pub struct TlsConfigError(pub String);

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsConfigError {}

/// The system's trusted CAs, read once: (certificates, why none could be read).
fn system_roots() -> &'static (Vec<CertificateDer<'static>>, Option<String>) {
    static ROOTS: OnceLock<(Vec<CertificateDer<'static>>, Option<String>)> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let why = (found.certs.is_empty()).then(|| {
            if found.errors.is_empty() {
                "the system certificate store is empty".to_string()
            } else {
                let errs: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                format!(
                    "the system certificate store could not be read ({})",
                    errs.join("; ")
                )
            }
        });
        (found.certs, why)
    })
}

/// Reads every certificate of a PEM file (a CA bundle may hold several).
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let bytes = std::fs::read(path).map_err(|e| {
        TlsConfigError(format!(
            "CA file {}: {e}: give SIGHTLINE_CA_FILE (or ca_file=) the PEM file of the CA that signed the hub's certificate",
            path.display()
        ))
    })?;
    parse_pem_certs(&bytes).map_err(|why| {
        TlsConfigError(format!(
            "CA file {}: {why}: it must hold PEM certificates (-----BEGIN CERTIFICATE-----), such as the ca.pem the hub's certificate was signed with",
            path.display()
        ))
    })
}

/// The certificates of a PEM text; an error when it holds none or a broken one.
fn parse_pem_certs(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(bytes) {
        certs.push(c.map_err(|e| format!("not valid PEM ({e})"))?);
    }
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certs)
}

/// How to check a TLS hub's certificate: the private CA read from the CA file when the URL
/// was configured, and the full client configuration, built on first use.
#[derive(Debug)]
pub struct Trust {
    /// The CA file's path and certificates, if one was given.
    extra: Option<(PathBuf, Vec<CertificateDer<'static>>)>,
    config: OnceLock<Result<Arc<ClientConfig>, String>>,
}

impl Trust {
    /// Reads the CA file now, so a wrong one is reported where it was configured.
    pub fn new(ca_file: Option<&Path>) -> Result<Trust, TlsConfigError> {
        let extra = match ca_file {
            Some(p) => Some((p.to_path_buf(), read_ca_file(p)?)),
            None => None,
        };
        Ok(Trust {
            extra,
            config: OnceLock::new(),
        })
    }

    /// The client configuration (built once: this reads the system store).
    pub fn config(&self) -> Result<Arc<ClientConfig>, String> {
        self.config
            .get_or_init(|| {
                let extra = self
                    .extra
                    .as_ref()
                    .map(|(p, c)| (p.as_path(), c.as_slice()));
                client_config(extra).map_err(|e| e.0)
            })
            .clone()
    }
}

/// The client configuration for a hub URL: the system's CAs plus the private CA of the CA file
/// (added, not instead: a hub reached through a public name keeps working).
fn client_config(
    extra: Option<(&Path, &[CertificateDer<'static>])>,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    let (system, why_none) = system_roots();
    // A system certificate rustls cannot use (an odd legacy root) is skipped, as curl does.
    let _ = roots.add_parsable_certificates(system.iter().cloned());
    if let Some((path, certs)) = extra {
        for c in certs {
            roots.add(c.clone()).map_err(|e| {
                TlsConfigError(format!(
                    "CA file {}: a certificate in it is not usable as a CA ({e})",
                    path.display()
                ))
            })?;
        }
    }
    if roots.is_empty() {
        return Err(TlsConfigError(format!(
            "no CA to check the hub's certificate with: {}; install the system CA bundle (ca-certificates) or set SIGHTLINE_CA_FILE (or ca_file=) to the hub's CA certificate (PEM)",
            why_none.as_deref().unwrap_or("no usable certificate")
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A connection to the hub: plain TCP, or TLS over it.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    #[allow(
        clippy::disallowed_methods,
        reason = "a delegating `Write::write`: callers use write_all on `Conn`"
    )]
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

impl Conn {
    /// Ends a TLS session cleanly (close_notify), best effort; nothing for plain TCP.
    pub fn close_notify(&mut self) {
        if let Conn::Tls(s) = self {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    }
}

/// Runs the TLS handshake with `host` over `sock`, so that a certificate the agent does not
/// trust is reported here, with advice, rather than as a failed read later.
pub fn handshake(
    trust: &Trust,
    host: &str,
    port: u16,
    mut sock: TcpStream,
    read_timeout: Duration,
) -> Result<Conn, String> {
    let name = ServerName::try_from(host.to_string()).map_err(|_| {
        format!("hub host {host:?} is neither a DNS name nor an IP address usable with TLS")
    })?;
    let config = trust.config()?;
    let mut conn = ClientConnection::new(config, name).map_err(|e| explain(&e, host, port))?;
    sock.set_read_timeout(Some(HANDSHAKE_TIMEOUT.min(read_timeout)))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            let inner = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .cloned();
            return Err(match inner {
                Some(t) => explain(&t, host, port),
                None if e.kind() == std::io::ErrorKind::UnexpectedEof => format!(
                    "TLS handshake with {host}:{port}: the hub closed the connection: is it serving plain http://? (then use an http:// URL)"
                ),
                None => format!("TLS handshake with {host}:{port}: {e}"),
            });
        }
    }
    sock.set_read_timeout(Some(read_timeout))
        .map_err(|e| e.to_string())?;
    Ok(Conn::Tls(Box::new(StreamOwned::new(conn, sock))))
}

/// A handshake failure in words that say what to do.
fn explain(e: &rustls::Error, host: &str, port: u16) -> String {
    use rustls::{CertificateError, Error};
    let at = format!("TLS handshake with {host}:{port}");
    match e {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "{at}: the hub's certificate is not signed by a CA this agent trusts: if the hub uses a private CA or a self-signed certificate, set SIGHTLINE_CA_FILE (or ca_file=) to that CA's certificate (PEM)"
        ),
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "{at}: the hub's certificate is not valid for {host:?}: use the host name or IP address the certificate names in the hub URL (or reissue it with that name in subjectAltName)"
        ),
        Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => format!("{at}: the hub's certificate has expired: renew it"),
        Error::InvalidCertificate(c) => {
            format!("{at}: the hub's certificate was refused ({c:?})")
        }
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => format!(
            "{at}: the hub did not answer in TLS ({e}): is it serving plain http://? (then use an http:// URL)"
        ),
        _ => format!("{at}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_without_certificates_is_refused_with_a_reason() {
        assert!(parse_pem_certs(b"").is_err());
        assert!(parse_pem_certs(b"hello").is_err());
        let bad = b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        assert!(parse_pem_certs(bad).is_err());
        let key_only = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            parse_pem_certs(key_only).unwrap_err(),
            "no certificate in it"
        );
    }

    #[test]
    fn a_missing_ca_file_says_which_and_what_to_give() {
        let e = read_ca_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(e.0.contains("/nonexistent/ca.pem"), "{e}");
        assert!(e.0.contains("SIGHTLINE_CA_FILE"), "{e}");
    }

    #[test]
    fn an_unknown_issuer_points_at_the_ca_setting() {
        let m = explain(
            &rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            "127.0.0.1",
            4517,
        );
        assert!(m.contains("SIGHTLINE_CA_FILE"), "{m}");
        assert!(m.contains("127.0.0.1:4517"), "{m}");
    }

    proptest::proptest! {
        /// Whatever a CA file holds, it gives certificates or a reason, never a panic.
        #[test]
        fn any_pem_text_parses_or_is_refused(text in "(-----BEGIN CERTIFICATE-----\n)?[ -~\n]{0,200}(-----END CERTIFICATE-----\n)?") {
            let _ = parse_pem_certs(text.as_bytes());
        }
    }
}
