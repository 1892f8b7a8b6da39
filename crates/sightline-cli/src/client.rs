//! A small blocking HTTP client for the commands that talk to a running hub.
//!
//! It turns the hub's JSON errors into one readable line, a dead hub into a message that says
//! how to start one, and a TLS failure into one that says what to change (`--cacert`,
//! `https://`). Its agent comes from the shared client stack (`sightline_forward::http`), so
//! `https://` hubs are verified against the system's roots and `--cacert` / `SIGHTLINE_CA_FILE`.
//! It must never retry a request that may have been committed, and never call a TLS problem
//! "no hub".

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde_json::Value;
use sightline_forward::http::{self, FailureKind};

use crate::cli::HubArgs;

pub struct HubClient {
    pub base: String,
    token: Option<String>,
    /// The agent, or why none could be made (an unusable CA file): reported by the first
    /// request, so that building a client never fails on its own.
    agent: Result<ureq::Agent, String>,
}

impl HubClient {
    pub fn new(args: &HubArgs) -> Self {
        let base = args.url.trim_end_matches('/').to_string();
        let timeouts = http::Timeouts {
            connect: Some(Duration::from_secs(3)),
            global: None,
        };
        HubClient {
            agent: http::agent(&base, &timeouts).map_err(|e| e.to_string()),
            base,
            token: args.token.clone().filter(|t| !t.is_empty()),
        }
    }

    fn agent(&self) -> anyhow::Result<&ureq::Agent> {
        self.agent.as_ref().map_err(|e| anyhow!("{e}"))
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    /// A request that got no answer, in words that say what to do.
    fn unreachable(&self, e: ureq::Error) -> anyhow::Error {
        match http::explain(&e, &self.base, "the hub") {
            (FailureKind::Unreachable, _) => anyhow!(
                "no hub answers at {} ({e}); start one with `sightline serve` or set SIGHTLINE_URL",
                self.base
            ),
            (_, what) => anyhow!("{what}"),
        }
    }

    /// The answer to a request, or an error that says what to do: no answer at all (no hub,
    /// TLS), or a non-2xx status with the hub's own message.
    fn answered(
        &self,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let res = sent.map_err(|e| self.unreachable(e))?;
        let status = res.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(res);
        }
        let body = res.into_body().read_to_string().unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or(body);
        Err(anyhow!("the hub answered {status}: {message}"))
    }

    /// The whole answer to a request as text.
    fn text(
        &self,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<String> {
        self.answered(sent)?
            .into_body()
            .into_with_config()
            .limit(u64::MAX)
            .read_to_string()
            .context("reading the answer")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> anyhow::Result<String> {
        self.text(self.auth(self.agent()?.get(self.url(path))).call())
    }

    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> anyhow::Result<String> {
        let req = self.auth(self.agent()?.post(self.url(path)));
        self.text(req.header("Content-Type", content_type).send(body))
    }

    /// A POST whose body is read as it is sent, so `import` can show its progress.
    pub fn post_reader(
        &self,
        path: &str,
        content_type: &str,
        body: &mut dyn Read,
    ) -> anyhow::Result<String> {
        let req = self.auth(self.agent()?.post(self.url(path)));
        self.text(
            req.header("Content-Type", content_type)
                .send(ureq::SendBody::from_reader(body)),
        )
    }

    /// A GET whose answer is read as it arrives (un-gzipped), so `export` writes it out as it
    /// comes instead of holding it whole.
    pub fn get_reader(&self, path: &str) -> anyhow::Result<impl Read + use<>> {
        let res = self.answered(self.auth(self.agent()?.get(self.url(path))).call())?;
        Ok(res.into_body().into_with_config().limit(u64::MAX).reader())
    }

    /// Opens a streaming GET (SSE) and returns a reader over its body.
    pub fn stream(
        &self,
        path: &str,
        last_event_id: Option<u64>,
    ) -> anyhow::Result<impl Read + use<>> {
        let mut req = self
            .auth(self.agent()?.get(self.url(path)))
            .header("Accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", &id.to_string());
        }
        let res = self.answered(req.call())?;
        let status = res.status().as_u16();
        if status != 200 {
            anyhow::bail!("the hub answered {status} to a stream request");
        }
        Ok(res.into_body().into_reader())
    }
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b',') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
