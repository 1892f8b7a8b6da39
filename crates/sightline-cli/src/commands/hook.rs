//! `sightline hook`: the Claude Code hook command. Reads the hook payload on stdin, posts it to
//! the hub's `/api/v1/hooks/claude`, and exits 0 — always, whatever happens, and fast (no async
//! runtime, one blocking request over loopback, a 1 s ceiling, then at most a bounded slice of
//! the spool).
//!
//! The event id and time are fixed here, once, and travel with the payload (headers, or the
//! spool line), so the hub's `event_id` dedup makes every delivery count once. When the hub
//! cannot be reached (or answers 5xx/401/403/408/429) the payload goes to the spool
//! ([`spool`]); each later run that finds the hub answering delivers a bounded part of it. A
//! payload the hub refuses for good is set aside in the spool's `rejected/` directory, never
//! retried and never silently lost.
//!
//! An `https://` hub is verified against the system's roots and `--cacert` /
//! `SIGHTLINE_CA_FILE`; a TLS failure spools the payload like a down hub, but is also said on
//! stderr, since waiting will not fix it.
//!
//! Each payload also names the Claude Code process that ran the hook ([`producer`]: pid, start
//! time, boot id, pid namespace, host; header `x-sightline-producer`, or the spool line's
//! `producer`), so the hub can end the session when that process is gone.
//!
//! This command must never print to stdout (Claude Code reads a hook's stdout as instructions)
//! and never exit non-zero (that could block or annotate the agent's turn).

mod producer;
mod spool;

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sightline_forward::http::{self, FailureKind};

use crate::cli::HookArgs;

/// Largest payload read from stdin; a bigger one is cut by the hub's caps anyway.
const MAX_STDIN: u64 = 8 * 1024 * 1024;
/// Default spool bound (`SIGHTLINE_SPOOL_MAX` bytes overrides).
const DEFAULT_SPOOL_MAX: u64 = 16 * 1024 * 1024;

pub fn run(args: &HookArgs) -> anyhow::Result<i32> {
    // Whatever fails inside, the agent sees a quiet success.
    let _ = deliver(args);
    Ok(0)
}

fn spool_dir() -> PathBuf {
    std::env::var_os("SIGHTLINE_SPOOL_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::config::data_dir().join("spool"))
}

fn spool_max() -> u64 {
    std::env::var("SIGHTLINE_SPOOL_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SPOOL_MAX)
}

/// The shared client stack's agent (`https://` verified against the system's roots and
/// `--cacert` / `SIGHTLINE_CA_FILE`). An unusable CA file is said on stderr and the system's
/// roots are tried anyway: the payload is still delivered or spooled, never dropped.
fn agent(url: &str, timeout: Duration) -> ureq::Agent {
    let timeouts = http::Timeouts {
        connect: None,
        global: Some(timeout),
    };
    match http::agent(url, &timeouts) {
        Ok(agent) => agent,
        Err(e) => {
            tracing::warn!("sightline hook: {e}");
            if http::is_https(url) {
                http::Trust::system()
                    .agent(&timeouts)
                    .unwrap_or_else(|_| http::plain_agent(&timeouts))
            } else {
                http::plain_agent(&timeouts)
            }
        }
    }
}

/// What the hub's answer means for the payload or batch it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Stored (2xx); the body is the hub's reply.
    Delivered,
    /// Worth keeping for later: the hub is down, slow (408), overloaded (429, 502–504), or
    /// refusing our token (401/403: the token will be fixed, the events are still good).
    Retry,
    /// The hub failed inside (500) on it: worth retrying, but if it fails again and again while
    /// the hub answers other requests, this content is what breaks it.
    Failed,
    /// Too large for the hub's body limit (413): a smaller part may pass.
    TooLarge,
    /// Refused for good (any other 4xx): keeping it would only clog the spool.
    Refused(u16),
}

fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        401 | 403 | 408 | 429 => Outcome::Retry,
        413 => Outcome::TooLarge,
        400..=499 => Outcome::Refused(status),
        500 => Outcome::Failed,
        _ => Outcome::Retry,
    }
}

/// Posts to the hook endpoint; returns the outcome and, when delivered, the reply's body.
pub(crate) fn post(
    agent: &ureq::Agent,
    args: &HookArgs,
    body: &[u8],
    content_type: &str,
    id_ts: Option<(&str, i64)>,
    producer: Option<&str>,
) -> (Outcome, String) {
    let url = format!("{}/api/v1/hooks/claude", args.hub.url.trim_end_matches('/'));
    let mut req = agent.post(&url).header("content-type", content_type);
    if let Some(token) = args.hub.token.as_deref().filter(|t| !t.is_empty()) {
        req = req.header("authorization", &format!("Bearer {token}"));
    }
    if let Some((id, ts)) = id_ts {
        req = req
            .header("x-sightline-event-id", id)
            .header("x-sightline-ts", &ts.to_string());
    }
    if let Some(p) = producer {
        req = req.header("x-sightline-producer", p);
    }
    match req.send(body) {
        Ok(mut resp) => {
            let outcome = classify(resp.status().as_u16());
            let text = if outcome == Outcome::Delivered {
                // The spool's reply lists the lines it refused; it is small.
                resp.body_mut()
                    .with_config()
                    .limit(4 * 1024 * 1024)
                    .read_to_string()
                    .unwrap_or_default()
            } else {
                String::new()
            };
            (outcome, text)
        }
        Err(e) => {
            // A hub that is down is waited for in silence; a TLS problem will not fix itself,
            // so it is said (stderr, which Claude Code shows in its verbose mode) every time.
            let (kind, what) = http::explain(&e, &url, "the hub");
            if kind == FailureKind::Tls {
                tracing::warn!("sightline hook: {what}; the event is spooled until this is fixed");
            }
            (Outcome::Retry, String::new())
        }
    }
}

fn deliver(args: &HookArgs) -> anyhow::Result<()> {
    let mut input = Vec::new();
    std::io::stdin().take(MAX_STDIN).read_to_end(&mut input)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    // Compact JSON: it must fit on one spool line. Not JSON at all: nothing to send.
    let payload: serde_json::Value = serde_json::from_slice(&input)?;
    let compact = serde_json::to_vec(&payload)?;
    let id = format!(
        "claude-hook:{}",
        sightline_sources::util::stable_hash(&[
            &compact,
            now.to_string().as_bytes(),
            std::process::id().to_string().as_bytes(),
        ])
    );
    let agent = agent(&args.hub.url, Duration::from_millis(args.timeout_ms));
    let spool = spool::Spool::new(spool_dir(), spool_max());
    // The Claude Code process that ran this hook, for the hub's liveness sweep: it travels
    // beside the payload (a header, or the spool line), never inside Claude Code's own keys.
    let producer = producer::current().map(|p| p.to_string());
    let line = spool::line(&id, now, &compact, producer.as_deref());
    match post(
        &agent,
        args,
        &compact,
        "application/json",
        Some((&id, now)),
        producer.as_deref(),
    )
    .0
    {
        Outcome::Delivered => {}
        Outcome::Retry | Outcome::Failed => {
            // The hub is not taking events now: nothing more to try this time.
            spool.append(&line)?;
            return Ok(());
        }
        Outcome::TooLarge => spool.set_aside("http413", &line),
        Outcome::Refused(status) => spool.set_aside(&format!("http{status}"), &line),
    }
    // The hub answers: deliver a bounded part of what waited for it.
    spool.flush(&agent, args);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_for_good_or_for_later() {
        assert_eq!(classify(202), Outcome::Delivered);
        for s in [401, 403, 408, 429, 502, 503, 504] {
            assert_eq!(classify(s), Outcome::Retry, "{s}");
        }
        for s in [400, 404, 405, 415, 422] {
            assert_eq!(classify(s), Outcome::Refused(s), "{s}");
        }
        assert_eq!(classify(413), Outcome::TooLarge);
        assert_eq!(classify(500), Outcome::Failed);
    }
}
