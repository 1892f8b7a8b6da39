//! The agent's outbox: a bounded queue of serialized events and the background thread that
//! delivers them to the hub (a WebSocket `publish`, or `POST /api/v1/events` as NDJSON) or to
//! an offline NDJSON file. A batch leaves the queue for good only once the hub acknowledged
//! it, which it does after commit.
//!
//! The traced program only ever appends to the queue (a short critical section, no I/O). The
//! sender thread is pure Rust: it must never touch Python or hold the GIL, and it must never
//! block the program. When the hub is slow or down the queue keeps the newest detailed call
//! events and drops the oldest, counting the drops; lifecycle, exception and statistics events
//! ("critical") have their own, larger bound. Batches take events from both queues in the order
//! the program queued them, so the hub receives them in the order they happened (a process's
//! exit last), whatever was dropped.

use crate::http::{Client, Endpoint};
use crate::ws::{Answer, WsClient, WsError};
use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

const MAX_BATCH: usize = 1000;
const MAX_BATCH_BYTES: usize = 4 << 20;

#[derive(Clone, Debug)]
pub enum Sink {
    /// Nothing configured yet: events wait in the queue.
    None,
    Hub(Endpoint, Via),
    File(PathBuf),
}

/// How batches reach the hub.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Via {
    /// The WebSocket, falling back to HTTP if the hub refuses the upgrade.
    Auto,
    WebSocket,
    Http,
}

impl Via {
    pub fn parse(s: &str) -> Option<Via> {
        match s {
            "auto" | "" => Some(Via::Auto),
            "ws" | "websocket" => Some(Via::WebSocket),
            "http" => Some(Via::Http),
            _ => None,
        }
    }
}

#[derive(Default, Clone, Debug)]
pub struct Stats {
    pub queued: usize,
    pub sent: u64,
    pub dropped: u64,
    pub rejected: u64,
    pub retries: u64,
    pub last_error: Option<String>,
    /// What the last delivery went through: "ws", "http" or "file".
    pub transport: Option<&'static str>,
}

pub struct Q {
    /// (queue order, serialized event) for lifecycle, exception and statistics events.
    critical: VecDeque<(u64, String)>,
    /// The same for detailed call events, which give way first.
    detail: VecDeque<(u64, String)>,
    /// The queue order of the next event.
    next_order: u64,
    cap_critical: usize,
    cap_detail: usize,
    in_flight: usize,
    sink: Sink,
    sink_gen: u64,
    stop: bool,
    /// Set by `flush`: send what is queued now without waiting to fill a batch.
    urgent: bool,
    stats: Stats,
}

impl Q {
    /// An empty queue with these bounds and no sink yet (events wait until one is configured).
    fn new(cap_detail: usize, cap_critical: usize) -> Q {
        Q {
            critical: VecDeque::new(),
            detail: VecDeque::new(),
            next_order: 0,
            cap_critical,
            cap_detail,
            in_flight: 0,
            sink: Sink::None,
            sink_gen: 0,
            stop: false,
            urgent: false,
            stats: Stats::default(),
        }
    }

    /// Appends an event to its queue; a full queue drops its oldest event (counted).
    fn push(&mut self, line: String, droppable: bool) {
        let order = self.next_order;
        self.next_order += 1;
        let (queue, cap) = if droppable {
            (&mut self.detail, self.cap_detail)
        } else {
            (&mut self.critical, self.cap_critical)
        };
        if queue.len() >= cap {
            queue.pop_front();
            self.stats.dropped += 1;
        }
        queue.push_back((order, line));
    }

    /// The event queued earliest of both queues: (queue order, line, droppable).
    fn pop_oldest(&mut self) -> Option<(u64, String, bool)> {
        let take_detail = match (self.critical.front(), self.detail.front()) {
            (Some(c), Some(d)) => d.0 < c.0,
            (None, Some(_)) => true,
            _ => false,
        };
        let queue = if take_detail {
            &mut self.detail
        } else {
            &mut self.critical
        };
        queue
            .pop_front()
            .map(|(order, line)| (order, line, take_detail))
    }
}

pub struct Transport {
    q: Mutex<Q>,
    wake: Condvar,
    idle: Condvar,
}

static TRANSPORT: OnceLock<Arc<Transport>> = OnceLock::new();

/// The process's transport, with its sender thread started on first use.
pub fn global() -> &'static Arc<Transport> {
    TRANSPORT.get_or_init(|| {
        let t = Arc::new(Transport {
            q: Mutex::new(Q::new(50_000, 100_000)),
            wake: Condvar::new(),
            idle: Condvar::new(),
        });
        let t2 = Arc::clone(&t);
        std::thread::Builder::new()
            .name("sightline-sender".into())
            .spawn(move || t2.run())
            .expect("spawning the sightline sender thread");
        t
    })
}

fn lock(m: &Mutex<Q>) -> std::sync::MutexGuard<'_, Q> {
    // A panic elsewhere must not silence the agent: keep using the data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Transport {
    pub fn configure(&self, sink: Sink, cap_detail: usize, cap_critical: usize) {
        let mut q = lock(&self.q);
        q.sink = sink;
        q.sink_gen += 1;
        q.cap_detail = cap_detail.max(1);
        q.cap_critical = cap_critical.max(1);
        q.stop = false;
        drop(q);
        self.wake.notify_all();
    }

    /// Queues one serialized event. `droppable` events (detailed calls) give way first.
    pub fn push(&self, line: String, droppable: bool) {
        let mut q = lock(&self.q);
        q.push(line, droppable);
        let wake = q.critical.len() + q.detail.len() >= MAX_BATCH / 2;
        drop(q);
        if wake {
            self.wake.notify_one();
        }
    }

    pub fn stats(&self) -> Stats {
        let q = lock(&self.q);
        let mut s = q.stats.clone();
        s.queued = q.critical.len() + q.detail.len() + q.in_flight;
        s
    }

    /// Waits until everything queued so far was delivered or `timeout` passed; returns how
    /// many events are still undelivered. Must be called without the GIL.
    pub fn flush(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut q = lock(&self.q);
        q.urgent = true;
        self.wake.notify_all();
        loop {
            let left = q.critical.len() + q.detail.len() + q.in_flight;
            if left == 0 {
                q.urgent = false;
                return 0;
            }
            let now = Instant::now();
            if now >= deadline {
                q.urgent = false;
                return left;
            }
            q = self
                .idle
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Takes every queued event out (for spooling to a file at exit).
    pub fn drain(&self) -> Vec<String> {
        let mut q = lock(&self.q);
        let mut v = Vec::with_capacity(q.critical.len() + q.detail.len());
        while let Some((_, line, _)) = q.pop_oldest() {
            v.push(line);
        }
        v
    }

    /// Holds the queue lock across a fork (see `fork.rs`).
    pub fn lock_for_fork(&'static self) -> std::sync::MutexGuard<'static, Q> {
        lock(&self.q)
    }

    /// In a forked child: the parent delivers what it queued; start this process's sender.
    pub fn after_fork_child(self: &Arc<Self>) {
        {
            let mut q = lock(&self.q);
            q.critical.clear();
            q.detail.clear();
            q.in_flight = 0;
            q.stats = Stats::default();
        }
        let t2 = Arc::clone(self);
        let _ = std::thread::Builder::new()
            .name("sightline-sender".into())
            .spawn(move || t2.run());
    }

    fn run(&self) {
        let mut link: Option<(u64, HubLink)> = None;
        let mut backoff = Duration::from_millis(200);
        loop {
            let (batch, order, sink, gen) = {
                let mut q = lock(&self.q);
                loop {
                    let n = q.critical.len() + q.detail.len();
                    let ready = !matches!(q.sink, Sink::None);
                    if ready && n > 0 {
                        break;
                    }
                    q = self
                        .wake
                        .wait_timeout(q, Duration::from_millis(200))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                // Let a batch fill for a moment unless flushing: fewer, larger commits.
                if !q.urgent && q.critical.len() + q.detail.len() < MAX_BATCH / 2 {
                    q = self
                        .wake
                        .wait_timeout(q, Duration::from_millis(50))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                let mut batch = Vec::new();
                let mut order = Vec::new();
                let mut bytes = 0;
                while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                    let Some((o, line, droppable)) = q.pop_oldest() else {
                        break;
                    };
                    bytes += line.len() + 1;
                    batch.push(line);
                    order.push((o, droppable));
                }
                q.in_flight = batch.len();
                (batch, order, q.sink.clone(), q.sink_gen)
            };
            let outcome = match &sink {
                Sink::None => Outcome::Retry(None, "no sink".into()),
                Sink::File(p) => write_file(p, &batch),
                Sink::Hub(ep, via) => {
                    if link.as_ref().map(|l| l.0) != Some(gen) {
                        if let Some((_, old)) = link.take() {
                            old.close();
                        }
                        link = Some((gen, HubLink::new(ep.clone(), *via)));
                    }
                    link.as_mut().expect("set above").1.deliver(&batch)
                }
            };
            let mut q = lock(&self.q);
            q.in_flight = 0;
            q.stats.transport = match &sink {
                Sink::None => None,
                Sink::File(_) => Some("file"),
                Sink::Hub(..) => link.as_ref().map(|l| l.1.name()),
            };
            match outcome {
                Outcome::Done { rejected, error } => {
                    q.stats.sent += (batch.len() - rejected) as u64;
                    q.stats.rejected += rejected as u64;
                    if error.is_some() {
                        q.stats.last_error = error;
                    }
                    backoff = Duration::from_millis(200);
                    if q.critical.is_empty() && q.detail.is_empty() {
                        self.idle.notify_all();
                    }
                }
                Outcome::Retry(after, err) => {
                    q.stats.retries += 1;
                    q.stats.last_error = Some(err);
                    // Put the batch back in front, keeping the bounds (oldest detail goes).
                    let qs = &mut *q;
                    for (line, (o, droppable)) in batch.into_iter().zip(order).rev() {
                        let (queue, cap) = if droppable {
                            (&mut qs.detail, qs.cap_detail)
                        } else {
                            (&mut qs.critical, qs.cap_critical)
                        };
                        if queue.len() >= cap {
                            qs.stats.dropped += 1;
                        } else {
                            queue.push_front((o, line));
                        }
                    }
                    self.idle.notify_all();
                    let wait = after.unwrap_or(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    let _ = self.wake.wait_timeout(q, wait);
                }
            }
        }
    }
}

enum Outcome {
    Done {
        rejected: usize,
        error: Option<String>,
    },
    Retry(Option<Duration>, String),
}

fn write_file(path: &PathBuf, batch: &[String]) -> Outcome {
    let r = (|| -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)?;
            }
        }
        let mut f = OpenOptions::new().create(true).append(true).open(path)?;
        let mut buf = String::with_capacity(batch.iter().map(|l| l.len() + 1).sum());
        for l in batch {
            buf.push_str(l);
            buf.push('\n');
        }
        f.write_all(buf.as_bytes())
    })();
    match r {
        Ok(()) => Outcome::Done {
            rejected: 0,
            error: None,
        },
        Err(e) => Outcome::Retry(None, format!("writing {}: {e}", path.display())),
    }
}

/// The sender's connection to the hub: a WebSocket, or HTTP when so configured or when the
/// hub refused the upgrade (`Via::Auto`).
struct HubLink {
    ep: Endpoint,
    via: Via,
    ws: Option<WsClient>,
    http: Option<Client>,
}

/// How long the hub may take to commit and answer one batch.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

impl HubLink {
    fn new(ep: Endpoint, via: Via) -> HubLink {
        HubLink {
            ep,
            via,
            ws: None,
            http: None,
        }
    }

    fn name(&self) -> &'static str {
        if self.via == Via::Http {
            "http"
        } else {
            "ws"
        }
    }

    fn close(self) {
        if let Some(ws) = self.ws {
            ws.close();
        }
    }

    fn deliver(&mut self, batch: &[String]) -> Outcome {
        if self.via == Via::Http {
            let ep = &self.ep;
            let client = self
                .http
                .get_or_insert_with(|| Client::new(ep.clone(), ANSWER_TIMEOUT));
            return post(client, batch);
        }
        if self.ws.is_none() {
            match WsClient::connect(&self.ep, ANSWER_TIMEOUT) {
                Ok(ws) => self.ws = Some(ws),
                Err(WsError::Refused(_)) if self.via == Via::Auto => {
                    // An older hub or a proxy without WebSocket: HTTP carries the same events.
                    self.via = Via::Http;
                    return self.deliver(batch);
                }
                Err(e) => return Outcome::Retry(None, e.to_string()),
            }
        }
        let ws = self.ws.as_mut().expect("connected above");
        match ws.publish(batch, ANSWER_TIMEOUT) {
            Ok(Answer::Ack { .. }) => Outcome::Done {
                rejected: 0,
                error: None,
            },
            Ok(Answer::Invalid(_)) if batch.len() > 1 => one_by_one(batch, |one| self.deliver(one)),
            Ok(Answer::Invalid(why)) | Ok(Answer::Refused(why)) => Outcome::Done {
                rejected: batch.len(),
                error: Some(why),
            },
            Ok(Answer::Busy(after, why)) => Outcome::Retry(
                Some(
                    after
                        .unwrap_or(Duration::from_secs(1))
                        .clamp(Duration::from_millis(100), Duration::from_secs(30)),
                ),
                why,
            ),
            Err(e) => {
                // The connection is in an unknown state: the next attempt opens a new one.
                self.ws = None;
                Outcome::Retry(None, e.to_string())
            }
        }
    }
}

/// A batch is all-or-nothing at the hub: after a refusal naming bad events, send the events
/// one by one so the good ones are kept and only the bad ones are counted as rejected.
fn one_by_one(batch: &[String], mut send: impl FnMut(&[String]) -> Outcome) -> Outcome {
    let mut rejected = 0;
    let mut error = None;
    for l in batch {
        match send(std::slice::from_ref(l)) {
            Outcome::Done { rejected: 0, .. } => {}
            Outcome::Done { error: e, .. } => {
                rejected += 1;
                error = e;
            }
            retry => return retry,
        }
    }
    Outcome::Done { rejected, error }
}

fn post(client: &mut Client, batch: &[String]) -> Outcome {
    let mut body = String::with_capacity(batch.iter().map(|l| l.len() + 1).sum());
    for l in batch {
        body.push_str(l);
        body.push('\n');
    }
    match client.request(
        "POST",
        "/api/v1/events",
        Some("application/x-ndjson"),
        body.as_bytes(),
    ) {
        Ok(r) if (200..300).contains(&r.status) => Outcome::Done {
            rejected: 0,
            error: None,
        },
        Ok(r) if r.status == 503 || r.status == 429 || r.status >= 500 => Outcome::Retry(
            Some(Duration::from_secs(r.retry_after.unwrap_or(1).clamp(1, 30))),
            format!("hub answered {}", r.status),
        ),
        Ok(r) if r.status == 400 && batch.len() > 1 => one_by_one(batch, |one| post(client, one)),
        Ok(r) => Outcome::Done {
            rejected: batch.len(),
            error: Some(format!(
                "hub refused events ({}): {}",
                r.status,
                String::from_utf8_lossy(&r.body[..r.body.len().min(500)])
            )),
        },
        Err(e) => Outcome::Retry(None, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Q {
        Q::new(2, 10)
    }

    #[test]
    fn batches_keep_the_order_events_were_queued_in() {
        let mut q = queue();
        q.push("start".into(), false);
        q.push("call a".into(), true);
        q.push("stats".into(), false);
        q.push("call b".into(), true);
        q.push("exit".into(), false);
        let got: Vec<String> = std::iter::from_fn(|| q.pop_oldest().map(|e| e.1)).collect();
        assert_eq!(got, ["start", "call a", "stats", "call b", "exit"]);
    }

    #[test]
    fn dropped_detail_leaves_the_rest_in_order() {
        let mut q = queue();
        q.push("start".into(), false);
        for i in 0..4 {
            q.push(format!("call {i}"), true); // cap 2: calls 0 and 1 give way
        }
        q.push("exit".into(), false);
        let got: Vec<String> = std::iter::from_fn(|| q.pop_oldest().map(|e| e.1)).collect();
        assert_eq!(got, ["start", "call 2", "call 3", "exit"]);
        assert_eq!(q.stats.dropped, 2);
    }
}
