//! A minimal HTTP/1.1 client for talking to a loopback or LAN hub: one keep-alive connection,
//! `Content-Length` and chunked bodies, timeouts; plain TCP for `http://` URLs, TLS
//! (`tls.rs`) for `https://`.
//!
//! It must never be called with the GIL held (it blocks on the network) and never panic on
//! a malformed response: every failure is an `HttpError`.

use crate::tls::{self, Conn};
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The largest response body accepted: the hub's answers are small, and a length header
/// from something else must not make the agent allocate without bound.
const MAX_BODY: usize = 64 << 20;

#[derive(Debug)]
pub enum HttpError {
    /// The URL is not `http(s)://host[:port][/prefix]`.
    BadUrl(String),
    /// TLS could not be set up (no usable CA) or its handshake failed; the message says why
    /// and what to do.
    Tls(String),
    Io(std::io::Error),
    /// The server answered something that is not HTTP/1.x.
    Protocol(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadUrl(u) => write!(
                f,
                "unsupported hub URL {u:?}: give http://host:port or https://host:port (optionally with a path prefix)"
            ),
            HttpError::Tls(m) => f.write_str(m),
            HttpError::Io(e) => write!(f, "hub connection failed: {e}"),
            HttpError::Protocol(m) => write!(f, "hub answered malformed HTTP: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<std::io::Error> for HttpError {
    fn from(e: std::io::Error) -> Self {
        HttpError::Io(e)
    }
}

#[derive(Clone, Debug)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub prefix: String,
    pub token: Option<String>,
    /// Set for `https://` (and `wss://`) URLs: how to check the hub's certificate.
    pub tls: Option<Arc<tls::Trust>>,
}

impl Endpoint {
    /// Parses a hub URL: `http://` or `ws://` for plain TCP, `https://` or `wss://` for TLS,
    /// checked against the system's CAs plus the PEM CA file `ca_file` (for a private CA).
    /// The CA file is read now (with a plain URL too, so a wrong path shows at once); the
    /// system's CAs only on the first TLS connection.
    pub fn parse(
        url: &str,
        token: Option<String>,
        ca_file: Option<&Path>,
    ) -> Result<Endpoint, HttpError> {
        let (secure, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("wss://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("ws://") {
            (false, r)
        } else {
            return Err(HttpError::BadUrl(url.to_string()));
        };
        let (hostport, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/').to_string()),
            None => (rest, String::new()),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']').to_string(),
                p.parse::<u16>()
                    .map_err(|_| HttpError::BadUrl(url.to_string()))?,
            ),
            _ => (hostport.to_string(), if secure { 443 } else { 80 }),
        };
        if host.is_empty() || host.contains(['@', ' ', '?', '#']) {
            return Err(HttpError::BadUrl(url.to_string()));
        }
        let trust = tls::Trust::new(ca_file).map_err(|e| HttpError::Tls(e.to_string()))?;
        let tls = secure.then(|| Arc::new(trust));
        Ok(Endpoint {
            host,
            port,
            prefix,
            token: token.filter(|t| !t.is_empty()),
            tls,
        })
    }
}

pub struct Response {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: Vec<u8>,
}

/// One keep-alive connection, re-opened on demand.
pub struct Client {
    ep: Endpoint,
    conn: Option<BufReader<Conn>>,
    read_timeout: Duration,
}

impl Client {
    pub fn new(ep: Endpoint, read_timeout: Duration) -> Client {
        Client {
            ep,
            conn: None,
            read_timeout,
        }
    }

    fn connect(&mut self) -> Result<&mut BufReader<Conn>, HttpError> {
        if self.conn.is_none() {
            self.conn = Some(BufReader::new(dial(&self.ep, self.read_timeout)?));
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// Sends one request; retries once on a fresh connection when a kept-alive one turns out
    /// to be closed by the server.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let reused = self.conn.is_some();
        match self.request_once(method, path, content_type, body) {
            Ok(r) => Ok(r),
            Err(HttpError::Io(_)) if reused => {
                self.conn = None;
                self.request_once(method, path, content_type, body)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    fn request_once(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: sightline-python/0.1\r\nAccept: application/json\r\nContent-Length: {}\r\n",
            self.ep.prefix,
            self.ep.host,
            self.ep.port,
            body.len()
        );
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        if let Some(t) = &self.ep.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        head.push_str("\r\n");
        let conn = self.connect()?;
        {
            let s = conn.get_mut();
            s.write_all(head.as_bytes())?;
            s.write_all(body)?;
            s.flush()?;
        }
        let resp = read_response(conn);
        if resp.is_err() {
            self.conn = None;
        }
        let (resp, close) = resp?;
        if close {
            self.conn = None;
        }
        Ok(resp)
    }
}

/// Opens a connection to the hub (every resolved address in turn), with `TCP_NODELAY` and the
/// given read timeout; for a TLS endpoint the handshake is done before this returns.
pub fn dial(ep: &Endpoint, read_timeout: Duration) -> Result<Conn, HttpError> {
    let s = dial_tcp(ep, read_timeout)?;
    match &ep.tls {
        None => Ok(Conn::Plain(s)),
        Some(trust) => {
            tls::handshake(trust, &ep.host, ep.port, s, read_timeout).map_err(HttpError::Tls)
        }
    }
}

fn dial_tcp(ep: &Endpoint, read_timeout: Duration) -> Result<TcpStream, HttpError> {
    let mut last = None;
    for a in (ep.host.as_str(), ep.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
            Ok(s) => {
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(read_timeout))?;
                s.set_write_timeout(Some(Duration::from_secs(10)))?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(HttpError::Io(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
    })))
}

/// The status line and headers of a response (names lower-cased).
pub struct Head {
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a response's status line and headers, leaving the body in `r`.
pub fn read_head(r: &mut impl BufRead) -> Result<Head, HttpError> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(HttpError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before the status line",
        )));
    }
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or("").to_string();
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Protocol(format!("status line {line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HttpError::Protocol(format!("status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(HttpError::Protocol("headers cut short".into()));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok(Head {
        version,
        status,
        headers,
    })
}

fn read_response(r: &mut impl BufRead) -> Result<(Response, bool), HttpError> {
    let head = read_head(r)?;
    let status = head.status;
    let content_length: Option<usize> = head.header("content-length").and_then(|v| v.parse().ok());
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut close = match head.header("connection") {
        Some(v) => v.eq_ignore_ascii_case("close"),
        None => head.version == "HTTP/1.0",
    };
    let retry_after = head.header("retry-after").and_then(|v| v.parse().ok());
    let mut line = String::new();
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| HttpError::Protocol(format!("chunk size {line:?}")))?;
            if size == 0 {
                // Trailers end with an empty line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            if start + size > MAX_BODY {
                return Err(HttpError::Protocol(format!("a body over {MAX_BODY} bytes")));
            }
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = content_length {
        if n > MAX_BODY {
            return Err(HttpError::Protocol(format!("a {n}-byte body")));
        }
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.take(MAX_BODY as u64).read_to_end(&mut body)?;
        close = true;
    }
    Ok((
        Response {
            status,
            retry_after,
            body,
        },
        close,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let e = Endpoint::parse("http://127.0.0.1:4517", None, None).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.prefix.as_str()),
            ("127.0.0.1", 4517, "")
        );
        let e = Endpoint::parse("http://hub.local/x/", Some("t".into()), None).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.prefix.as_str()),
            ("hub.local", 80, "/x")
        );
        let e = Endpoint::parse("https://hub.example", None, None).unwrap();
        assert_eq!((e.port, e.tls.is_some()), (443, true));
        let e = Endpoint::parse("wss://[::1]:9/p", None, None).unwrap();
        assert_eq!((e.host.as_str(), e.port, e.tls.is_some()), ("::1", 9, true));
        assert!(Endpoint::parse("ws://h:1", None, None)
            .unwrap()
            .tls
            .is_none());
        assert!(Endpoint::parse("ftp://x", None, None).is_err());
        assert!(Endpoint::parse("http://user@x", None, None).is_err());
        let e = Endpoint::parse("http://x", None, Some(Path::new("/nonexistent/ca.pem")));
        assert!(matches!(e, Err(HttpError::Tls(m)) if m.contains("SIGHTLINE_CA_FILE")));
    }

    #[test]
    fn talks_to_a_tiny_server() {
        use std::net::TcpListener;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s);
            for _ in 0..2 {
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut b = vec![0; len];
                r.read_exact(&mut b).unwrap();
                r.get_mut()
                    .write_all(b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
                    .unwrap();
            }
        });
        let mut c = Client::new(
            Endpoint::parse(&format!("http://127.0.0.1:{port}"), None, None).unwrap(),
            Duration::from_secs(5),
        );
        for _ in 0..2 {
            let r = c
                .request("POST", "/x", Some("text/plain"), b"hello")
                .unwrap();
            assert_eq!(r.status, 202);
            assert_eq!(r.body, b"ok");
        }
        t.join().unwrap();
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever a peer sends, reading a response ends in a value or an error.
            #[test]
            fn any_bytes_read_as_a_response_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = read_response(&mut bytes.as_slice());
            }

            /// Well-formed heads keep their status and headers, whatever the values.
            #[test]
            fn heads_round_trip(status in 100u16..600, name in "X-[A-Za-z]{1,20}", value in "[ -~]{0,40}") {
                let text = format!("HTTP/1.1 {status} X\r\n{name}: {value}\r\nContent-Length: 0\r\n\r\n");
                let (resp, _) = read_response(&mut text.as_bytes()).unwrap();
                prop_assert_eq!(resp.status, status);
                let head = read_head(&mut text.as_bytes()).unwrap();
                prop_assert_eq!(head.header(&name.to_ascii_lowercase()), Some(value.trim()));
            }

            /// Any text given as a URL parses or is refused, never panics.
            #[test]
            fn any_url_parses_or_is_refused(url in "(http|ws)://[ -~]{0,40}") {
                let _ = Endpoint::parse(&url, None, None);
            }

            /// A URL built from parts gives those parts back.
            #[test]
            fn urls_round_trip(host in "[a-z][a-z0-9.-]{0,30}", port in 1u16.., prefix in "(/[a-z0-9]{1,8}){0,3}") {
                let e = Endpoint::parse(&format!("http://{host}:{port}{prefix}/"), Some("t".into()), None).unwrap();
                prop_assert_eq!((e.host.as_str(), e.port, e.prefix.as_str()), (host.as_str(), port, prefix.as_str()));
                prop_assert!(e.tls.is_none());
            }
        }
    }
}
