//! gzip on the hub's answers (docs/API.md, compression): JSON answers and exports are gzipped
//! when asked and decode to the same bytes as the plain answer, an export of several pages is
//! one gzip stream; the SSE stream, small answers and clients that do not ask are never
//! compressed. Requests are written by hand on a TCP socket, so that no client library
//! un-gzips or adds headers behind the test's back.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

mod common;
use common::*;

/// A raw HTTP/1.1 GET: (status, lower-cased headers, body with chunked framing removed).
fn raw_get(url: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut req = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse(&raw)
}

fn parse(raw: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if header(&headers, "transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = String::from_utf8_lossy(&rest[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .expect("a valid gzip stream");
    out
}

fn seed(hub: &TestHub, run: &str, n: usize) {
    for start in (0..n).step_by(1000) {
        let batch: Vec<_> = (start..(start + 1000).min(n))
            .map(|i| event(run, i))
            .collect();
        let (status, answer) = post(
            &format!("{}/api/v1/events", hub.url),
            "application/x-ndjson",
            ndjson(&batch),
        );
        assert_eq!(status, 202, "{answer}");
    }
}

#[test]
fn json_answers_are_gzipped_when_asked_and_decode_to_the_same_bytes() {
    let hub = TestHub::start();
    seed(&hub, "gz", 200);
    let url = format!("{}/api/v1/runs/gz/timeline?limit=200", hub.url);
    let (status, plain_headers, plain) = raw_get(&url, &[]);
    assert_eq!(status, 200);
    assert_eq!(
        header(&plain_headers, "content-encoding"),
        None,
        "not asked, not compressed"
    );
    let (status, headers, body) = raw_get(&url, &[("Accept-Encoding", "gzip")]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    assert!(
        header(&headers, "vary")
            .is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding"))
    );
    let decoded = gunzip(&body);
    assert_eq!(decoded, plain, "the gzip answer decodes to the plain one");
    assert!(
        body.len() * 4 < plain.len(),
        "JSON of similar events shrinks several times: {} → {}",
        plain.len(),
        body.len()
    );
    // Something the client does not accept is not sent.
    let (_, headers, _) = raw_get(&url, &[("Accept-Encoding", "br")]);
    assert_eq!(header(&headers, "content-encoding"), None);
    // A small answer is not worth it.
    let (_, headers, _) = raw_get(
        &format!("{}/api/v1/search?runs=none", hub.url),
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(header(&headers, "content-encoding"), None);
}

#[test]
fn an_export_of_several_pages_streams_as_one_gzip_stream() {
    let hub = TestHub::start();
    // More than one export page (5,000 events), so the compressor sees several chunks.
    seed(&hub, "big", 6_200);
    for format in ["ndjson", "json", "csv", "yaml"] {
        let url = format!("{}/api/v1/export?run_id=big&format={format}", hub.url);
        let (_, _, plain) = raw_get(&url, &[]);
        let (status, headers, body) = raw_get(&url, &[("Accept-Encoding", "gzip, deflate")]);
        assert_eq!(status, 200, "{format}");
        assert_eq!(
            header(&headers, "content-encoding"),
            Some("gzip"),
            "{format}"
        );
        assert!(header(&headers, "content-disposition").is_some());
        assert_eq!(gunzip(&body), plain, "{format}: same bytes");
    }
    // The plain export is the same with or without a client that un-gzips (ureq asks for gzip).
    let (status, text) = get_text(&format!(
        "{}/api/v1/export?run_id=big&format=ndjson",
        hub.url
    ));
    assert_eq!(status, 200);
    assert_eq!(text.lines().count(), 6_200);
}

#[test]
fn the_event_stream_is_never_compressed_even_when_asked() {
    let hub = TestHub::start();
    seed(&hub, "live", 50);
    let rest = hub.url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(rest).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /api/v1/events/stream?last_event_id=0 HTTP/1.1\r\nHost: {rest}\r\nAccept: text/event-stream\r\nAccept-Encoding: gzip\r\n\r\n"
    )
    .unwrap();
    // Read until the replayed events have arrived; an SSE stream never ends by itself.
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    while !contains(&raw, "live-49") {
        let n = stream
            .read(&mut buf)
            .expect("the stream sends the stored events");
        assert!(n > 0, "the stream closed early");
        raw.extend_from_slice(&buf[..n]);
    }
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(
        !head.contains("content-encoding"),
        "SSE must never be compressed: {head}"
    );
    assert!(contains(&raw, "data: {"), "plain SSE frames");
}

/// Issue 11, item 11: an export is streamed a page (5,000 events) at a time, never built whole
/// in memory first. A body built whole would go out with a `content-length` in one piece; a
/// streamed one is chunked, and its first chunk (the first page) is much smaller than the body.
#[test]
fn an_export_is_sent_as_it_is_read_not_built_whole_first() {
    let hub = TestHub::start();
    seed(&hub, "streamed", 12_500);
    let url = format!("{}/api/v1/export?run_id=streamed&format=ndjson", hub.url);
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        !head.contains("content-length"),
        "a streamed export: {head}"
    );
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    // Walk the chunks: several, none holding the whole export.
    let mut body = &raw[end + 4..];
    let mut sizes = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = String::from_utf8_lossy(&body[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        body = &body[line_end + 2..];
        if size == 0 {
            break;
        }
        sizes.push(size);
        body = &body[size + 2..];
    }
    let total: usize = sizes.iter().sum();
    let largest = *sizes.iter().max().unwrap();
    assert!(sizes.len() >= 3, "three pages, several chunks: {sizes:?}");
    assert!(
        largest * 2 < total,
        "no chunk holds most of the export: largest {largest} of {total}"
    );
    let (_, _, plain) = raw_get(&url, &[]);
    assert_eq!(plain.len(), total);
    assert_eq!(String::from_utf8(plain).unwrap().lines().count(), 12_500);
}
