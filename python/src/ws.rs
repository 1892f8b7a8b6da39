//! A minimal WebSocket client (RFC 6455) for the hub's `/ws` protocol, used by the sender
//! thread to `publish` batches and wait for their `ack` (sent by the hub after commit).
//!
//! `ws://` over plain TCP or `wss://` over TLS (whichever `http::dial` opens for the hub URL),
//! one connection, client frames masked, pings
//! answered, fragmented messages reassembled. Like `http.rs` it must never be called with the
//! GIL held and never panic on what the peer sends: every failure is a `WsError`.

use crate::http::{dial, read_head, Endpoint, HttpError};
use crate::tls::Conn;
use serde_json::Value;
use std::fmt;
use std::io::{BufReader, Read, Write};
use std::time::{Duration, Instant};

/// The largest message accepted from the hub (its answers are small; this only bounds memory
/// if something else answers).
const MAX_MESSAGE: usize = 16 << 20;
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

#[derive(Debug)]
pub enum WsError {
    /// The hub answered the upgrade with an HTTP status instead of `101` (an older hub, a
    /// proxy, or auth): the caller may fall back to HTTP.
    Refused(u16),
    Http(HttpError),
    /// The hub closed the connection (code and reason, when it gave them).
    Closed(Option<u16>, String),
    Protocol(String),
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::Refused(s) => write!(f, "hub refused the WebSocket upgrade ({s})"),
            WsError::Http(e) => e.fmt(f),
            WsError::Closed(Some(c), r) => write!(f, "hub closed the WebSocket ({c}: {r})"),
            WsError::Closed(None, _) => write!(f, "hub closed the WebSocket"),
            WsError::Protocol(m) => write!(f, "hub broke the WebSocket protocol: {m}"),
        }
    }
}

impl From<std::io::Error> for WsError {
    fn from(e: std::io::Error) -> Self {
        WsError::Http(HttpError::Io(e))
    }
}

impl From<HttpError> for WsError {
    fn from(e: HttpError) -> Self {
        WsError::Http(e)
    }
}

/// What the hub said to one `publish`.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// Committed: one seq per event (duplicates included).
    Ack { seqs: usize, duplicates: usize },
    /// `invalid_events`: nothing was stored; the `details` name the bad lines.
    Invalid(Value, String),
    /// `unauthorized` / `forbidden`: the token is wrong or lacks the role; retry once fixed.
    Auth(String),
    /// `too_large` / `payload_too_large`: the message is over the hub's limit.
    TooLarge(String),
    /// `queue_full` / `unavailable` / `rate_limited`: nothing was stored, retry later.
    Busy(Option<Duration>, String),
    /// Any other refusal: retrying will not help.
    Refused(String),
}

pub struct WsClient {
    conn: BufReader<Conn>,
    next_id: u64,
}

impl WsClient {
    /// Opens `ws(s)://host:port{prefix}/ws`, authenticating with the bearer token in the upgrade.
    pub fn connect(ep: &Endpoint, read_timeout: Duration) -> Result<WsClient, WsError> {
        let stream = dial(ep, read_timeout)?;
        let key = base64(&random_bytes::<16>());
        let mut req = format!(
            "GET {}/ws HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: sightline-python/0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
            ep.prefix, ep.host, ep.port
        );
        if let Some(t) = &ep.token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        req.push_str("\r\n");
        let mut conn = BufReader::new(stream);
        conn.get_mut().write_all(req.as_bytes())?;
        let head = read_head(&mut conn)?;
        if head.status != 101 {
            return Err(WsError::Refused(head.status));
        }
        let expected = base64(&sha1(format!("{key}{GUID}").as_bytes()));
        if head.header("sec-websocket-accept") != Some(expected.as_str()) {
            return Err(WsError::Protocol("wrong Sec-WebSocket-Accept".into()));
        }
        Ok(WsClient { conn, next_id: 1 })
    }

    /// Publishes serialized events as one message and waits (up to `timeout`) for the answer
    /// to it. Frames for other purposes (`welcome`, pings) are handled on the way.
    pub fn publish(&mut self, events: &[String], timeout: Duration) -> Result<Answer, WsError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = String::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + 48);
        msg.push_str(r#"{"type":"publish","id":"#);
        msg.push_str(&id.to_string());
        msg.push_str(r#","events":["#);
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                msg.push(',');
            }
            msg.push_str(e);
        }
        msg.push_str("]}");
        self.send(0x1, msg.as_bytes())?;
        let deadline = Instant::now() + timeout;
        loop {
            if Instant::now() >= deadline {
                return Err(WsError::Protocol(format!(
                    "no answer to publish {id} in time"
                )));
            }
            let text = self.read_message()?;
            let v: Value = serde_json::from_slice(&text)
                .map_err(|e| WsError::Protocol(format!("a frame that is not JSON: {e}")))?;
            if v.get("id").and_then(Value::as_u64) != Some(id) {
                // `welcome`, or an error not about this message (e.g. rate limiting).
                if v["type"] == "error" && v.get("id").is_none() {
                    return Ok(answer_from_error(&v));
                }
                continue;
            }
            return Ok(match v["type"].as_str() {
                Some("ack") => Answer::Ack {
                    seqs: v["seqs"].as_array().map_or(0, Vec::len),
                    duplicates: v["duplicates"].as_u64().unwrap_or(0) as usize,
                },
                Some("error") => answer_from_error(&v),
                other => return Err(WsError::Protocol(format!("unexpected answer {other:?}"))),
            });
        }
    }

    /// Sends a close frame (best effort) so the hub ends the connection cleanly.
    pub fn close(mut self) {
        let _ = self.send(0x8, &1000u16.to_be_bytes());
        self.conn.get_mut().close_notify();
    }

    fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<(), WsError> {
        let frame = encode_frame(opcode, payload, random_bytes::<4>());
        let s = self.conn.get_mut();
        s.write_all(&frame)?;
        s.flush()?;
        Ok(())
    }

    /// Reads frames until one whole text message is assembled; answers pings, reports closes.
    fn read_message(&mut self) -> Result<Vec<u8>, WsError> {
        let mut message: Vec<u8> = Vec::new();
        loop {
            let (fin, opcode, payload) = read_frame(&mut self.conn)?;
            match opcode {
                0x9 => self.send(0xA, &payload)?,
                0xA => {}
                0x8 => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    let reason =
                        String::from_utf8_lossy(payload.get(2..).unwrap_or(&[])).into_owned();
                    return Err(WsError::Closed(code, reason));
                }
                0x0..=0x2 => {
                    if message.len() + payload.len() > MAX_MESSAGE {
                        return Err(WsError::Protocol("message too large".into()));
                    }
                    message.extend_from_slice(&payload);
                    if fin {
                        return Ok(message);
                    }
                }
                op => return Err(WsError::Protocol(format!("unknown opcode {op:#x}"))),
            }
        }
    }
}

fn answer_from_error(v: &Value) -> Answer {
    let code = v["code"].as_str().unwrap_or("error");
    let message = v["message"].as_str().unwrap_or("");
    match code {
        "invalid_events" => {
            Answer::Invalid(v["details"].clone(), format!("{message}: {}", v["details"]))
        }
        "unauthorized" | "forbidden" => {
            Answer::Auth(format!("hub refused the token ({code}): {message}"))
        }
        "too_large" | "payload_too_large" | "message_too_big" => Answer::TooLarge(format!(
            "hub refused a message as too large ({code}): {message}"
        )),
        "queue_full" | "unavailable" | "rate_limited" | "store" => Answer::Busy(
            v["retry_after_ms"].as_u64().map(Duration::from_millis),
            format!("hub answered {code}: {message}"),
        ),
        _ => Answer::Refused(format!("hub refused events ({code}): {message}")),
    }
}

/// One client frame: FIN set, masked with `mask` as RFC 6455 §5.3 requires of clients.
fn encode_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 14);
    f.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads one frame: (FIN, opcode, unmasked payload).
fn read_frame(r: &mut impl Read) -> Result<(bool, u8, Vec<u8>), WsError> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h)?;
    let fin = h[0] & 0x80 != 0;
    let opcode = h[0] & 0x0f;
    let masked = h[1] & 0x80 != 0;
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)?;
            u16::from_be_bytes(b) as u64
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b)?;
            u64::from_be_bytes(b)
        }
        n => n as u64,
    };
    if len > MAX_MESSAGE as u64 {
        return Err(WsError::Protocol(format!("a {len}-byte frame")));
    }
    let mut mask = [0u8; 4];
    if masked {
        r.read_exact(&mut mask)?;
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok((fin, opcode, payload))
}

/// Random bytes from the kernel; a time-based fallback only if `getrandom(2)` fails (the key
/// and masks need to be unpredictable to intermediaries, not secret).
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // SAFETY: the buffer is valid for N bytes.
    let got = unsafe { libc::getrandom(b.as_mut_ptr().cast(), N, 0) };
    if got != N as isize {
        let mut x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        for v in b.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *v = x as u8;
        }
    }
    b
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= c.len() {
                T[(n >> shift) as usize & 63] as char
            } else {
                '='
            });
        }
    }
    out
}

/// SHA-1 (FIPS 180-4), only for checking `Sec-WebSocket-Accept`.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        // RFC 6455 §1.3: this key must give this accept value.
        let accept = base64(&sha1(format!("dGhlIHNhbXBsZSBub25jZQ=={GUID}").as_bytes()));
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn frames_round_trip_at_every_length_encoding() {
        for n in [0usize, 5, 125, 126, 65_535, 65_536, 200_000] {
            let payload: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            let frame = encode_frame(0x1, &payload, [1, 2, 3, 4]);
            let (fin, op, back) = read_frame(&mut frame.as_slice()).unwrap();
            assert!(fin);
            assert_eq!(op, 0x1);
            assert_eq!(back, payload, "length {n}");
        }
    }

    #[test]
    fn oversized_and_truncated_frames_are_errors() {
        let mut huge = vec![0x81, 127];
        huge.extend_from_slice(&(u64::MAX).to_be_bytes());
        assert!(matches!(
            read_frame(&mut huge.as_slice()),
            Err(WsError::Protocol(_))
        ));
        let cut = [0x81u8, 10, b'a'];
        assert!(read_frame(&mut cut.as_slice()).is_err());
    }

    #[test]
    fn errors_map_to_answers() {
        let v: Value = serde_json::from_str(
            r#"{"type":"error","code":"queue_full","message":"full","retry_after_ms":1500}"#,
        )
        .unwrap();
        assert_eq!(
            answer_from_error(&v),
            Answer::Busy(
                Some(Duration::from_millis(1500)),
                "hub answered queue_full: full".into()
            )
        );
        let v: Value =
            serde_json::from_str(r#"{"type":"error","code":"forbidden","message":"no"}"#).unwrap();
        assert!(matches!(answer_from_error(&v), Answer::Auth(_)));
        let v: Value =
            serde_json::from_str(r#"{"type":"error","code":"weird","message":"no"}"#).unwrap();
        assert!(matches!(answer_from_error(&v), Answer::Refused(_)));
    }
}
