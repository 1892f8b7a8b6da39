//! A minimal HTTP/1.1 client over `std::net::TcpStream` for talking to a loopback or LAN hub:
//! one keep-alive connection, `Content-Length` and chunked bodies, timeouts.
//!
//! It must never be called with the GIL held (it blocks on the network) and never panic on
//! a malformed response: every failure is an `HttpError`.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug)]
pub enum HttpError {
    /// The URL is not `http://host[:port][/prefix]`.
    BadUrl(String),
    Io(std::io::Error),
    /// The server answered something that is not HTTP/1.x.
    Protocol(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadUrl(u) => write!(
                f,
                "unsupported hub URL {u:?}: the Python agent speaks plain http://host:port"
            ),
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
}

impl Endpoint {
    pub fn parse(url: &str, token: Option<String>) -> Result<Endpoint, HttpError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| HttpError::BadUrl(url.to_string()))?;
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
            _ => (hostport.to_string(), 80),
        };
        if host.is_empty() {
            return Err(HttpError::BadUrl(url.to_string()));
        }
        Ok(Endpoint {
            host,
            port,
            prefix,
            token: token.filter(|t| !t.is_empty()),
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
    conn: Option<BufReader<TcpStream>>,
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

    fn connect(&mut self) -> Result<&mut BufReader<TcpStream>, HttpError> {
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

/// Opens a TCP connection to the hub (every resolved address in turn), with `TCP_NODELAY`
/// and the given read timeout.
pub fn dial(ep: &Endpoint, read_timeout: Duration) -> Result<TcpStream, HttpError> {
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
pub fn read_head(r: &mut BufReader<TcpStream>) -> Result<Head, HttpError> {
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

fn read_response(r: &mut BufReader<TcpStream>) -> Result<(Response, bool), HttpError> {
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
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = content_length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
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
        let e = Endpoint::parse("http://127.0.0.1:4517", None).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.prefix.as_str()),
            ("127.0.0.1", 4517, "")
        );
        let e = Endpoint::parse("http://hub.local/x/", Some("t".into())).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.prefix.as_str()),
            ("hub.local", 80, "/x")
        );
        assert!(Endpoint::parse("https://x", None).is_err());
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
            Endpoint::parse(&format!("http://127.0.0.1:{port}"), None).unwrap(),
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
}
