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
//!
//! What the hub says decides a batch's fate, and nothing is retried forever: a busy or absent
//! hub, or a refused token (401/403, fixed by restarting the hub or the program), means the
//! batch waits and is tried again (then spooled at exit, within the spool's cap); a batch over
//! the hub's size limit (413) is split in halves until the pieces fit, and a single event that
//! is still too big is set aside; a batch refused as invalid (400 naming its bad lines) is sent
//! again without them, and only those are set aside (`spool.rs`, `rejected/`). When the queue
//! is idle the sender also delivers spool files left by earlier processes, batch by batch.

use crate::http::{Client, Endpoint};
use crate::spool::Resender;
use crate::ws::{Answer, WsClient, WsError};
use serde_json::Value;
use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

const MAX_BATCH: usize = 1000;
/// Half the hub's default body limit (8 MiB), so that a full batch fits with room to spare.
const MAX_BATCH_BYTES: usize = 4 << 20;
/// How often a batch refused for its token is tried again: the token is fixed by a person
/// (restarting the hub or the program), so there is no point in trying sooner.
const AUTH_RETRY: Duration = Duration::from_secs(5);
/// A publish lost this many times in a row, each on a connection freshly opened for it, is
/// taken for a message over the hub's limit (the hub closes the socket rather than answering):
/// the batch is split like a 413. A hub that is down refuses the connection instead, which
/// does not count; a hub restarted twice mid-publish only costs a split, never an event.
const WS_DROPS_AS_TOO_LARGE: u32 = 2;

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
    /// Where refused events are set aside (`DIR/rejected`) and spool files come from.
    spool_dir: Option<PathBuf>,
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
            spool_dir: None,
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
    /// Spool files of earlier processes this one delivers (when the sink is a hub). Its own
    /// lock, never taken with `q`'s: reading a file must not hold up the program's `push`.
    resend: Mutex<Resender>,
    /// `resend` has work left (read by `flush` and the sender without taking `resend`).
    spool_pending: AtomicBool,
}

static TRANSPORT: OnceLock<Arc<Transport>> = OnceLock::new();

/// The process's transport, with its sender thread started on first use.
pub fn global() -> &'static Arc<Transport> {
    TRANSPORT.get_or_init(|| {
        let t = Arc::new(Transport {
            q: Mutex::new(Q::new(50_000, 100_000)),
            wake: Condvar::new(),
            idle: Condvar::new(),
            resend: Mutex::new(Resender::default()),
            spool_pending: AtomicBool::new(false),
        });
        let t2 = Arc::clone(&t);
        std::thread::Builder::new()
            .name("sightline-sender".into())
            .spawn(move || t2.run())
            .expect("spawning the sightline sender thread");
        t
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not silence the agent: keep using the data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Transport {
    /// Sets where events go. With a hub and a spool directory, the spool files found there
    /// now (waiting ones, and claims whose process is gone) are delivered in the background.
    pub fn configure(
        &self,
        sink: Sink,
        cap_detail: usize,
        cap_critical: usize,
        spool_dir: Option<PathBuf>,
    ) {
        let resend = match (&sink, &spool_dir) {
            (Sink::Hub(..), Some(d)) => Resender::scan(d.clone()),
            _ => Resender::default(),
        };
        self.spool_pending.store(resend.pending(), Ordering::SeqCst);
        *lock(&self.resend) = resend;
        let mut q = lock(&self.q);
        q.spool_dir = spool_dir;
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
            let spool = self.spool_pending.load(Ordering::SeqCst);
            if left == 0 && !spool {
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

    /// Takes every queued event out, with whether it is a droppable detailed call (for
    /// spooling to a file at exit).
    pub fn drain(&self) -> Vec<(String, bool)> {
        let mut q = lock(&self.q);
        let mut v = Vec::with_capacity(q.critical.len() + q.detail.len());
        while let Some((_, line, droppable)) = q.pop_oldest() {
            v.push((line, droppable));
        }
        v
    }

    /// At exit: stop delivering spool files and give back the one in progress (what is left
    /// of it) for the next process.
    pub fn release_spool(&self) {
        let mut r = lock(&self.resend);
        r.release();
        self.spool_pending.store(false, Ordering::SeqCst);
    }

    /// The spool directory configured, if any.
    pub fn spool_dir(&self) -> Option<PathBuf> {
        lock(&self.q).spool_dir.clone()
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
        // The parent holds its spool claims; the child delivers none of them.
        *lock(&self.resend) = Resender::default();
        self.spool_pending.store(false, Ordering::SeqCst);
        let t2 = Arc::clone(self);
        let _ = std::thread::Builder::new()
            .name("sightline-sender".into())
            .spawn(move || t2.run());
    }

    fn run(&self) {
        let mut link: Option<(u64, HubLink)> = None;
        let mut backoff = Duration::from_millis(200);
        // Alternates queue and spool batches while both have work, so neither starves.
        let mut spool_turn = false;
        loop {
            let (mut batch, mut order, sink, gen, spool_dir) = {
                let mut q = lock(&self.q);
                loop {
                    let n = q.critical.len() + q.detail.len();
                    let ready = !matches!(q.sink, Sink::None);
                    let spool = matches!(q.sink, Sink::Hub(..))
                        && self.spool_pending.load(Ordering::SeqCst);
                    if (ready && n > 0) || spool {
                        break;
                    }
                    q = self
                        .wake
                        .wait_timeout(q, Duration::from_millis(200))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                // Let a batch fill for a moment unless flushing: fewer, larger commits.
                let n = q.critical.len() + q.detail.len();
                if n > 0 && !q.urgent && n < MAX_BATCH / 2 {
                    q = self
                        .wake
                        .wait_timeout(q, Duration::from_millis(50))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                let mut batch = Vec::new();
                let mut order = Vec::new();
                let spool = matches!(q.sink, Sink::Hub(..))
                    && self.spool_pending.load(Ordering::SeqCst)
                    && (q.critical.is_empty() && q.detail.is_empty() || spool_turn);
                spool_turn = !spool_turn;
                if !spool {
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
                }
                (
                    batch,
                    order,
                    q.sink.clone(),
                    q.sink_gen,
                    q.spool_dir.clone(),
                )
            };
            // A batch of an earlier process's spool file (read without the queue's lock).
            let mut spool_chunk = None;
            if batch.is_empty() {
                let mut r = lock(&self.resend);
                match r.next_chunk(MAX_BATCH, MAX_BATCH_BYTES) {
                    Some(c) => {
                        if c.skipped > 0 {
                            let mut q = lock(&self.q);
                            q.stats.rejected += c.skipped as u64;
                            q.stats.last_error = Some(format!(
                                "{} spooled lines over {} bytes dropped",
                                c.skipped,
                                crate::spool::MAX_LINE_BYTES
                            ));
                        }
                        spool_chunk = Some(Resender::chunk_end(&c));
                        batch = c.lines;
                    }
                    None => {
                        self.spool_pending.store(r.pending(), Ordering::SeqCst);
                        if let Some(e) = r.last_error.take() {
                            lock(&self.q).stats.last_error = Some(e);
                        }
                        drop(r);
                        self.idle.notify_all();
                        continue;
                    }
                }
                if batch.is_empty() {
                    // Only skipped lines in this stretch: move past them.
                    r.advance(spool_chunk.unwrap_or(0));
                    continue;
                }
            }
            let outcome = match &sink {
                Sink::None => Outcome::retry(&[], None, "no sink".into()),
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
            // Events refused for good: kept aside in `rejected/`, never retried.
            let mut aside_error = None;
            if !outcome.set_aside.is_empty() {
                let lines: Vec<String> = outcome
                    .set_aside
                    .iter()
                    .map(|(i, _)| batch[*i].clone())
                    .collect();
                let kind = if outcome.set_aside.iter().any(|(_, k)| *k == Aside::TooLarge) {
                    "too-large"
                } else {
                    "refused"
                };
                aside_error = Some(match &spool_dir {
                    Some(d) => match crate::spool::set_aside(d, kind, &lines) {
                        Ok(p) => format!("{} events set aside in {}", lines.len(), p.display()),
                        Err(e) => format!("{} refused events lost: {e}", lines.len()),
                    },
                    None => format!(
                        "{} refused events dropped (no spool directory)",
                        lines.len()
                    ),
                });
            }
            if let Some(end) = spool_chunk {
                let mut r = lock(&self.resend);
                if outcome.retry.is_some() {
                    // A spool file is resent from where it stands; delivered pieces repeat
                    // harmlessly (the hub stores an `event_id` once).
                    r.retry_later();
                } else {
                    r.advance(end);
                }
                self.spool_pending.store(r.pending(), Ordering::SeqCst);
            }
            let mut q = lock(&self.q);
            q.in_flight = 0;
            q.stats.transport = match &sink {
                Sink::None => None,
                Sink::File(_) => Some("file"),
                Sink::Hub(..) => link.as_ref().map(|l| l.1.name()),
            };
            q.stats.sent += outcome.delivered as u64;
            q.stats.rejected += outcome.set_aside.len() as u64;
            if let Some(e) = outcome.error.clone() {
                q.stats.last_error = Some(match aside_error {
                    Some(a) => format!("{e}; {a}"),
                    None => e,
                });
            }
            match outcome.retry {
                None => {
                    backoff = Duration::from_millis(200);
                    self.idle.notify_all();
                }
                Some((after, err)) => {
                    q.stats.retries += 1;
                    q.stats.last_error = Some(err);
                    if spool_chunk.is_none() {
                        // Put the undelivered events back in front, keeping the bounds (oldest
                        // detail goes).
                        let qs = &mut *q;
                        for &i in outcome.left.iter().rev() {
                            let (o, droppable) = order[i];
                            let line = std::mem::take(&mut batch[i]);
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
                    }
                    order.clear();
                    self.idle.notify_all();
                    let wait = after.unwrap_or(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    let _ = self.wake.wait_timeout(q, wait);
                }
            }
        }
    }
}

/// Why an event was set aside.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Aside {
    /// The hub refused it for good (invalid, or a status that retrying cannot change).
    Refused,
    /// Alone, it is over the hub's size limit.
    TooLarge,
}

/// What became of one batch: how many events the hub took, which were set aside (indices in
/// the batch), and, when the rest must wait, which are left (indices, in order) and when to
/// try again.
#[derive(Debug, Default)]
struct Outcome {
    delivered: usize,
    set_aside: Vec<(usize, Aside)>,
    left: Vec<usize>,
    retry: Option<(Option<Duration>, String)>,
    error: Option<String>,
}

impl Outcome {
    fn done(n: usize) -> Outcome {
        Outcome {
            delivered: n,
            ..Outcome::default()
        }
    }

    fn retry(batch: &[String], after: Option<Duration>, why: String) -> Outcome {
        Outcome {
            left: (0..batch.len()).collect(),
            retry: Some((after, why)),
            ..Outcome::default()
        }
    }
}

/// What the hub said to one send, whatever the path.
#[derive(Debug, PartialEq)]
enum Reply {
    Ok,
    /// Invalid events (HTTP 400, WebSocket `invalid_events`): nothing stored. `lines` are the
    /// 1-based positions the hub named, when it named them.
    Invalid {
        lines: Vec<usize>,
        why: String,
    },
    /// Over the hub's size limit (413): nothing stored.
    TooLarge(String),
    /// The token is missing, wrong or lacks the role (401/403): kept, tried again.
    Auth(String),
    /// Busy, overloaded or unreachable: tried again after `Retry-After` or the backoff.
    Busy(Option<Duration>, String),
    /// Refused for a reason retrying cannot change (another 4xx): set aside.
    Refused(String),
}

/// Sends `batch` through `send` and settles every event: delivered, set aside, or left for a
/// retry. A 413 splits a piece in halves (a single event still too big is set aside); a 400
/// naming lines sets those aside and sends the rest again (without names: one by one). Every
/// step either settles events or makes the piece smaller, so this ends.
fn settle(batch: &[String], mut send: impl FnMut(&[String]) -> Reply) -> Outcome {
    let mut out = Outcome::default();
    // Pieces still to send, in order (the front piece last).
    let mut pieces: Vec<Vec<usize>> = vec![(0..batch.len()).collect()];
    while let Some(piece) = pieces.pop() {
        if piece.is_empty() {
            continue;
        }
        let lines: Vec<String> = if piece.len() == batch.len() {
            batch.to_vec()
        } else {
            piece.iter().map(|&i| batch[i].clone()).collect()
        };
        match send(&lines) {
            Reply::Ok => out.delivered += piece.len(),
            Reply::Auth(why) => {
                out.left = piece
                    .into_iter()
                    .chain(pieces.into_iter().rev().flatten())
                    .collect();
                out.retry = Some((Some(AUTH_RETRY), why));
                return out;
            }
            Reply::Busy(after, why) => {
                out.left = piece
                    .into_iter()
                    .chain(pieces.into_iter().rev().flatten())
                    .collect();
                out.retry = Some((after, why));
                return out;
            }
            Reply::TooLarge(why) => {
                if piece.len() == 1 {
                    out.set_aside.push((piece[0], Aside::TooLarge));
                    out.error = Some(why);
                } else {
                    let (a, b) = piece.split_at(piece.len() / 2);
                    pieces.push(b.to_vec());
                    pieces.push(a.to_vec());
                }
            }
            Reply::Invalid { lines: bad, why } => {
                out.error = Some(why);
                if piece.len() == 1 {
                    out.set_aside.push((piece[0], Aside::Refused));
                    continue;
                }
                let named: Vec<usize> = bad
                    .iter()
                    .filter_map(|l| l.checked_sub(1))
                    .filter(|&i| i < piece.len())
                    .collect();
                if named.is_empty() {
                    // No usable line numbers: one by one, so only the bad ones stay out.
                    pieces.extend(piece.iter().rev().map(|&i| vec![i]));
                } else {
                    let good = piece
                        .iter()
                        .enumerate()
                        .filter(|(k, _)| !named.contains(k))
                        .map(|(_, &i)| i)
                        .collect();
                    for k in named {
                        out.set_aside.push((piece[k], Aside::Refused));
                    }
                    pieces.push(good);
                }
            }
            Reply::Refused(why) => {
                out.error = Some(why);
                out.set_aside
                    .extend(piece.iter().map(|&i| (i, Aside::Refused)));
            }
        }
    }
    out.set_aside.sort_by_key(|a| a.0);
    out
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
        Ok(()) => Outcome::done(batch.len()),
        Err(e) => Outcome::retry(batch, None, format!("writing {}: {e}", path.display())),
    }
}

/// The sender's connection to the hub: a WebSocket, or HTTP when so configured or when the
/// hub refused the upgrade (`Via::Auto`).
struct HubLink {
    ep: Endpoint,
    via: Via,
    ws: Option<WsClient>,
    http: Option<Client>,
    /// Consecutive publishes lost right after a fresh connection was opened for them.
    ws_drops: u32,
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
            ws_drops: 0,
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
        settle(batch, |piece| self.send(piece))
    }

    /// One attempt at one piece.
    fn send(&mut self, batch: &[String]) -> Reply {
        if self.via == Via::Http {
            let ep = &self.ep;
            let client = self
                .http
                .get_or_insert_with(|| Client::new(ep.clone(), ANSWER_TIMEOUT));
            return post(client, batch);
        }
        let fresh = self.ws.is_none();
        if fresh {
            match WsClient::connect(&self.ep, ANSWER_TIMEOUT) {
                Ok(ws) => self.ws = Some(ws),
                Err(WsError::Refused(s @ (401 | 403))) => {
                    return Reply::Auth(format!("hub refused the token ({s}) at the WebSocket upgrade: check SIGHTLINE_TOKEN"));
                }
                Err(WsError::Refused(_)) if self.via == Via::Auto => {
                    // An older hub or a proxy without WebSocket: HTTP carries the same events.
                    self.via = Via::Http;
                    return self.send(batch);
                }
                Err(e) => {
                    self.ws_drops = 0; // unreachable: not a sign of size
                    return Reply::Busy(None, e.to_string());
                }
            }
        }
        let ws = self.ws.as_mut().expect("connected above");
        let bytes: usize = batch.iter().map(|l| l.len() + 1).sum();
        match ws.publish(batch, ANSWER_TIMEOUT) {
            Ok(a) => {
                self.ws_drops = 0;
                reply_from_answer(a)
            }
            Err(e) => {
                // The connection is in an unknown state: the next attempt opens a new one.
                self.ws = None;
                let too_big = || {
                    Reply::TooLarge(format!(
                        "hub dropped the WebSocket on a {bytes}-byte publish ({e}): over its message limit"
                    ))
                };
                if matches!(e, WsError::Closed(Some(1009), _)) {
                    return too_big();
                }
                if !fresh {
                    // A kept connection may have died of anything: try a new one at once (a
                    // hub that is down refuses it, and that is a plain retry).
                    return self.send(batch);
                }
                // Not reset here: while the pieces of a split are still dropped, each is split
                // again at once; an answer from the hub ends the suspicion.
                self.ws_drops += 1;
                if self.ws_drops >= WS_DROPS_AS_TOO_LARGE {
                    return too_big();
                }
                // Once more on a new connection, at once: a second drop means size.
                self.send(batch)
            }
        }
    }
}

fn reply_from_answer(a: Answer) -> Reply {
    match a {
        Answer::Ack { .. } => Reply::Ok,
        Answer::Invalid(details, why) => Reply::Invalid {
            lines: bad_lines(&details),
            why,
        },
        Answer::Busy(after, why) => Reply::Busy(
            Some(
                after
                    .unwrap_or(Duration::from_secs(1))
                    .clamp(Duration::from_millis(100), Duration::from_secs(30)),
            ),
            why,
        ),
        Answer::Auth(why) => Reply::Auth(why),
        Answer::TooLarge(why) => Reply::TooLarge(why),
        Answer::Refused(why) => Reply::Refused(why),
    }
}

/// The 1-based line numbers named in the `details` of an `invalid_events` refusal
/// (`[{"line": 3, "message": "..."}]`); empty when it names none.
fn bad_lines(details: &Value) -> Vec<usize> {
    details
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.get("line").and_then(Value::as_u64))
                .map(|l| l as usize)
                .collect()
        })
        .unwrap_or_default()
}

fn post(client: &mut Client, batch: &[String]) -> Reply {
    let mut body = String::with_capacity(batch.iter().map(|l| l.len() + 1).sum());
    for l in batch {
        body.push_str(l);
        body.push('\n');
    }
    let r = match client.request(
        "POST",
        "/api/v1/events",
        Some("application/x-ndjson"),
        body.as_bytes(),
    ) {
        Ok(r) => r,
        Err(e) => return Reply::Busy(None, e.to_string()),
    };
    let text = || String::from_utf8_lossy(&r.body[..r.body.len().min(500)]).into_owned();
    match r.status {
        200..=299 => Reply::Ok,
        401 | 403 => Reply::Auth(format!(
            "hub refused the token ({}): check SIGHTLINE_TOKEN: {}",
            r.status,
            text()
        )),
        413 => Reply::TooLarge(format!("hub refused a {}-byte batch (413)", body.len())),
        400 => {
            let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            Reply::Invalid {
                lines: bad_lines(&v["error"]["details"]),
                why: format!("hub refused events (400): {}", text()),
            }
        }
        408 | 429 | 500..=599 => Reply::Busy(
            Some(Duration::from_secs(r.retry_after.unwrap_or(1).clamp(1, 30))),
            format!("hub answered {}", r.status),
        ),
        s => Reply::Refused(format!("hub refused events ({s}): {}", text())),
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

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn too_large_splits_and_sets_aside_only_the_event_that_never_fits() {
        let batch = lines(&["a", "b", "c", "HUGE", "d", "e", "f", "g"]);
        let mut sent = Vec::new();
        let out = settle(&batch, |piece| {
            if piece.len() > 3 || piece.iter().any(|l| l == "HUGE") {
                return Reply::TooLarge("413".into());
            }
            sent.extend(piece.iter().cloned());
            Reply::Ok
        });
        assert_eq!(out.delivered, 7);
        assert_eq!(out.set_aside, [(3, Aside::TooLarge)]);
        assert!(out.retry.is_none());
        assert_eq!(
            sent,
            lines(&["a", "b", "c", "d", "e", "f", "g"]),
            "order kept"
        );
    }

    #[test]
    fn invalid_lines_are_set_aside_and_the_rest_sent_as_one_batch() {
        let batch = lines(&["ok1", "bad", "ok2", "bad", "ok3"]);
        let mut calls = 0;
        let out = settle(&batch, |piece| {
            calls += 1;
            let bad: Vec<usize> = piece
                .iter()
                .enumerate()
                .filter(|(_, l)| *l == "bad")
                .map(|(i, _)| i + 1)
                .collect();
            if bad.is_empty() {
                Reply::Ok
            } else {
                Reply::Invalid {
                    lines: bad,
                    why: "400".into(),
                }
            }
        });
        assert_eq!(out.delivered, 3);
        assert_eq!(out.set_aside, [(1, Aside::Refused), (3, Aside::Refused)]);
        assert_eq!(calls, 2, "the good lines go again in one request");
    }

    #[test]
    fn a_refused_token_keeps_every_event_for_a_retry() {
        let batch = lines(&["a", "b"]);
        let out = settle(&batch, |_| Reply::Auth("401".into()));
        assert_eq!(out.delivered, 0);
        assert!(out.set_aside.is_empty());
        assert_eq!(out.left, [0, 1]);
        assert_eq!(out.retry.map(|r| r.0), Some(Some(AUTH_RETRY)));
    }

    #[test]
    fn a_retry_after_a_split_leaves_only_what_was_not_delivered() {
        let batch = lines(&["a", "b", "c", "d"]);
        let mut n = 0;
        let out = settle(&batch, |piece| {
            n += 1;
            match n {
                1 => Reply::TooLarge("413".into()),
                2 => Reply::Ok,
                _ => Reply::Busy(None, format!("busy on {piece:?}")),
            }
        });
        assert_eq!(out.delivered, 2);
        assert_eq!(out.left, [2, 3]);
        assert!(out.retry.is_some());
    }

    #[test]
    fn bad_lines_are_read_from_the_hub_details() {
        let v: Value = serde_json::from_str(
            r#"{"error":{"code":"invalid_events","details":[{"line":2,"message":"x"},{"line":5}]}}"#,
        )
        .unwrap();
        assert_eq!(bad_lines(&v["error"]["details"]), [2, 5]);
        assert!(bad_lines(&Value::Null).is_empty());
    }
}
