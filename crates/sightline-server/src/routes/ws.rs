//! `GET /ws`: the WebSocket protocol (docs/PROTOCOL.md). Several subscriptions per connection,
//! each with its own filter and cursor, publishing with acks after commit, workflow updates,
//! ping/pong, auth by header, `access_token` or an `auth` message.
//!
//! Each subscription is a task pulling from its own [`Subscription`] (the same gap-free
//! replay-then-live logic as SSE) and pushing frames into the connection's bounded outbound
//! queue. A slow client fills that queue, its tasks wait, their bus receivers lag, and they
//! catch up from SQLite (the client is told with `lagged`): ingest and other clients never wait
//! for it, and it never silently misses an event. A client that stops reading altogether is
//! closed with 4009 once a frame has waited `HubSettings::ws_send_stall` ([`SEND_STALL`] by
//! default). This module must never acknowledge a publish before its commit.

use std::collections::HashMap;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sightline_core::client_message::{self, ClientMessage};
use sightline_core::ingest::parse_batch;
use sightline_core::{HttpRequest, IngestError, Subscription, Transport};
use sightline_schema::{Event, Filter, Timestamp};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::auth::{AuthRefusal, Caller, Limiter, RateLimit, Role};
use crate::hub::Hub;

/// The health name of events published over this socket.
pub const PATH_NAME: &str = "ws";

/// Frames queued per connection before subscription tasks wait (and then lag).
pub const OUT_BUFFER: usize = 128;
/// Per-connection socket read buffer.
const READ_BUFFER: usize = 8 * 1024;
/// Bytes buffered before tungstenite writes without a flush.
const WRITE_BUFFER: usize = 32 * 1024;
/// Frames written per flush at most.
const WRITE_BATCH: usize = 32;
/// A frame the socket has not taken for this long means the client stopped reading.
pub const SEND_STALL: Duration = Duration::from_secs(30);
/// The largest message a socket that authenticates with an `auth` message may send.
pub const PRE_AUTH_MESSAGE: usize = 1024 * 1024;
/// Time to send `auth` when the upgrade carried no token.
pub const AUTH_DEADLINE: Duration = Duration::from_secs(10);
/// How long a closing connection keeps reading so its last frames are not reset away.
pub const LINGER: Duration = Duration::from_secs(1);
/// Subscriptions one connection may hold.
pub const MAX_SUBSCRIPTIONS: usize = 64;
/// Messages per second a connection may send (bursts of twice that).
pub const MESSAGES_PER_SECOND: f64 = 500.0;
/// Rate-limit refusals before the connection is closed.
pub const ABUSE_LIMIT: u32 = 20;

/// Close codes (docs/PROTOCOL.md).
pub mod close {
    /// The hub is stopping.
    pub const GOING_AWAY: u16 = 1001;
    /// A message that is not JSON text, or too big.
    pub const UNSUPPORTED: u16 = 1003;
    /// No valid `auth` in time, or a wrong token.
    pub const UNAUTHORIZED: u16 = 4001;
    /// Too many messages after repeated `rate_limited` errors.
    pub const RATE_LIMITED: u16 = 4008;
    /// The client stopped reading: a frame waited longer than `SEND_STALL`.
    pub const SLOW_CONSUMER: u16 = 4009;
}

/// `GET /ws`.
pub async fn upgrade(
    State(hub): State<Hub>,
    caller: Option<Extension<Caller>>,
    ws: WebSocketUpgrade,
) -> Response {
    let caller = caller.map(|Extension(c)| c).unwrap_or(Caller {
        grant: None,
        addr: None,
        pending_auth: false,
    });
    // A socket that has not authenticated yet (no token in the upgrade: it must send `auth`)
    // may only send small messages, for its whole life: a message is buffered whole before it
    // can be read, so the limit is what bounds what strangers can make the hub hold. Such
    // sockets are also counted, per address and in all.
    let pending = if caller.pending_auth {
        match hub
            .security()
            .admit_unauthenticated(caller.addr.map(|a| a.ip()))
        {
            Some(slot) => Some(slot),
            None => {
                return crate::error::ApiError::Unavailable(
                    "too many WebSockets are waiting to authenticate; send the token in the upgrade or retry later".into(),
                )
                .into_response();
            }
        }
    } else {
        None
    };
    let max = if pending.is_some() {
        PRE_AUTH_MESSAGE.min(hub.settings().max_body)
    } else {
        hub.settings().max_body
    };
    // Small read buffers: clients send little, and a hub holds many connections (tungstenite's
    // default is 128 KiB each, allocated up front).
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            // The slot is held for as long as the connection lives.
            let _pending = pending;
            Connection::run(hub, caller, socket).await
        })
}

struct Connection {
    hub: Hub,
    caller: Caller,
    out: mpsc::Sender<Message>,
    subs: HashMap<String, JoinHandle<()>>,
    limiter: Limiter,
    abuse: u32,
}

/// A text frame.
fn text(v: Value) -> Message {
    Message::Text(Utf8Bytes::from(v.to_string()))
}

fn error_frame(code: &str, message: impl Into<String>, id: Option<&Value>) -> Message {
    let mut v = json!({"type": "error", "code": code, "message": message.into()});
    if let Some(id) = id {
        v["id"] = id.clone();
    }
    text(v)
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_string()),
    }))
}

impl Connection {
    async fn run(hub: Hub, caller: Caller, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        let (out, mut rx) = mpsc::channel::<Message>(OUT_BUFFER);
        let stall = hub.settings().ws_send_stall;
        // The writer: the only task touching the sink. A frame the socket will not take in
        // SEND_STALL means the client stopped reading: close, telling it why if it still can.
        let writer = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // Feed whatever is queued, then flush once: under load one write carries many
                // frames instead of one syscall per frame.
                let mut closing = matches!(first, Message::Close(_));
                let mut batch = vec![first];
                while !closing && batch.len() < WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(m) => {
                            closing = matches!(m, Message::Close(_));
                            batch.push(m);
                        }
                        Err(_) => break,
                    }
                }
                let write = async {
                    for m in batch {
                        sink.feed(m).await?;
                    }
                    sink.flush().await
                };
                match tokio::time::timeout(stall, write).await {
                    Ok(Ok(())) if !closing => {}
                    Ok(Ok(())) | Ok(Err(_)) => break,
                    Err(_) => {
                        let _ = tokio::time::timeout(
                            Duration::from_secs(1),
                            sink.send(close_frame(
                                close::SLOW_CONSUMER,
                                "slow consumer: the client stopped reading; reconnect and resume from your last seq",
                            )),
                        )
                        .await;
                        break;
                    }
                }
            }
            // Bounded like every other write: a client that stopped reading would otherwise
            // hold this task, its subscriptions and its socket forever.
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
        });
        let mut conn = Connection {
            hub: hub.clone(),
            caller,
            out,
            subs: HashMap::new(),
            limiter: Limiter::new(RateLimit::new(MESSAGES_PER_SECOND)),
            abuse: 0,
        };
        let welcome = json!({
            "type": "welcome",
            "epoch": hub.store().epoch(),
            "head_seq": hub.store().head_seq(),
            "auth_required": conn.caller.pending_auth,
        });
        let _ = conn.out.send(text(welcome)).await;
        let mut closing = hub.core().closing();
        let deadline = tokio::time::sleep(AUTH_DEADLINE);
        tokio::pin!(deadline);
        loop {
            let msg = tokio::select! {
                m = stream.next() => m,
                _ = crate::routes::ws::stopping(&mut closing) => {
                    let _ = conn.out.send(close_frame(close::GOING_AWAY, "the hub is stopping; reconnect and resume")).await;
                    break;
                }
                _ = &mut deadline, if conn.caller.pending_auth => {
                    let _ = conn.out.send(close_frame(close::UNAUTHORIZED, "no auth message in time")).await;
                    break;
                }
                _ = conn.out.closed() => break,
            };
            let Some(Ok(msg)) = msg else { break };
            let keep_going = match msg {
                Message::Text(t) => conn.handle(t.as_str()).await,
                Message::Binary(_) => {
                    let _ = conn
                        .out
                        .send(close_frame(close::UNSUPPORTED, "send JSON text frames"))
                        .await;
                    false
                }
                Message::Close(_) => false,
                // Pings are answered by the WebSocket layer itself.
                Message::Ping(_) | Message::Pong(_) => true,
            };
            if !keep_going {
                break;
            }
        }
        for (_, task) in conn.subs.drain() {
            task.abort();
        }
        drop(conn);
        let _ = writer.await;
        // Read what the client still sends until it answers our close (or a short linger
        // ends): dropping a socket with unread input makes the kernel send RST, and an RST
        // discards the frames the client has not read yet — including the close frame that
        // says why.
        let _ = tokio::time::timeout(LINGER, async {
            while let Some(Ok(_)) = stream.next().await {}
        })
        .await;
    }

    /// Answers `rate_limited`, echoing the message's `id` so that a client can tell which
    /// publish was refused (the rest of the message is skipped, not parsed into values).
    async fn refuse_rate_limited(&self, text_msg: &str, message: &str, retry: Duration) {
        let id = client_message::message_id(text_msg);
        let mut v = json!({"type": "error", "code": "rate_limited", "message": message,
            "retry_after_ms": retry.as_millis() as u64});
        if let Some(id) = id {
            v["id"] = id;
        }
        let _ = self.out.send(text(v)).await;
    }

    /// Handles one message; false closes the connection.
    async fn handle(&mut self, text_msg: &str) -> bool {
        if let Err(retry) = self.limiter.take("connection") {
            self.abuse += 1;
            if self.abuse >= ABUSE_LIMIT {
                let _ = self
                    .out
                    .send(close_frame(close::RATE_LIMITED, "too many messages"))
                    .await;
                return false;
            }
            self.refuse_rate_limited(text_msg, "too many messages; slow down", retry)
                .await;
            return true;
        }
        if let Some(g) = &self.caller.grant
            && let Err(retry) = self.hub.security().take_token(&g.name)
        {
            self.refuse_rate_limited(text_msg, "too many requests with this token", retry)
                .await;
            return true;
        }
        let msg = match client_message::parse(text_msg) {
            Ok(m) => m,
            Err(e) => {
                let _ = self.out.send(error_frame("bad_message", e, None)).await;
                return true;
            }
        };
        if self.caller.pending_auth
            && !matches!(msg, ClientMessage::Auth { .. } | ClientMessage::Ping { .. })
        {
            let _ = self
                .out
                .send(error_frame(
                    "unauthorized",
                    "send {\"type\":\"auth\",\"token\":...} first",
                    None,
                ))
                .await;
            return true;
        }
        match msg {
            ClientMessage::Auth { token } => self.auth(&token).await,
            ClientMessage::Ping { id } => {
                let mut v = json!({"type": "pong", "ts": Timestamp::now()});
                if let Some(id) = id {
                    v["id"] = id;
                }
                let _ = self.out.send(text(v)).await;
                true
            }
            ClientMessage::Subscribe {
                id,
                filter,
                since,
                epoch,
            } => {
                self.subscribe(id, filter.map(|f| *f).unwrap_or_default(), since, epoch)
                    .await;
                true
            }
            ClientMessage::Unsubscribe { id } => {
                let key = id.to_string();
                let found = self.subs.remove(&key).map(|t| t.abort()).is_some();
                let _ = self
                    .out
                    .send(text(
                        json!({"type": "unsubscribed", "id": id, "found": found}),
                    ))
                    .await;
                true
            }
            ClientMessage::Publish { id, events } => {
                if self.require(Role::Ingest, id.as_ref()).await {
                    let body = events.to_string();
                    match parse_batch(body.as_bytes(), None, Timestamp::now()) {
                        Ok(events) => self.commit(id, events),
                        Err(lines) => {
                            self.hub.core().count_invalid(PATH_NAME);
                            let mut v = json!({"type": "error", "code": "invalid_events",
                                "message": "some events are invalid; nothing was stored",
                                "details": lines});
                            if let Some(id) = id {
                                v["id"] = id;
                            }
                            let _ = self.out.send(text(v)).await;
                        }
                    }
                }
                true
            }
            ClientMessage::WorkflowUpdate {
                id,
                workflow_id,
                updates,
            } => {
                if self.require(Role::Ingest, id.as_ref()).await {
                    match self.workflow_events(workflow_id, &updates) {
                        Ok(events) => self.commit(id, events),
                        Err(e) => {
                            let _ = self
                                .out
                                .send(error_frame("invalid_update", e, id.as_ref()))
                                .await;
                        }
                    }
                }
                true
            }
            ClientMessage::Ack {} => true,
        }
    }

    async fn require(&self, role: Role, id: Option<&Value>) -> bool {
        if self.caller.allows(self.hub.security(), role) {
            return true;
        }
        let _ = self
            .out
            .send(error_frame(
                "forbidden",
                format!("this token lacks the `{}` role", role.as_str()),
                id,
            ))
            .await;
        false
    }

    async fn auth(&mut self, token: &str) -> bool {
        let ip = self.caller.addr.map(|a| a.ip());
        match self.hub.security().authenticate_from(ip, Some(token)) {
            Ok(grant) => {
                self.caller.pending_auth = false;
                let roles: Vec<&str> = grant
                    .as_ref()
                    .map(|g| g.roles.iter().map(|r| r.as_str()).collect())
                    .unwrap_or_else(|| vec!["read", "ingest", "admin"]);
                self.caller.grant = grant;
                let _ = self
                    .out
                    .send(text(json!({"type": "authenticated", "roles": roles})))
                    .await;
                true
            }
            Err(AuthRefusal::LockedOut(_)) => {
                let _ = self
                    .out
                    .send(error_frame(
                        "locked_out",
                        "too many failed authentications from this address; locked out, wait",
                        None,
                    ))
                    .await;
                let _ = self
                    .out
                    .send(close_frame(close::UNAUTHORIZED, "locked out"))
                    .await;
                false
            }
            Err(AuthRefusal::Unauthorized) => {
                self.hub.security().audit(
                    "auth_failed",
                    ip,
                    None,
                    "WS",
                    "/ws",
                    401,
                    Some("wrong token in auth message".into()),
                );
                let _ = self
                    .out
                    .send(error_frame("unauthorized", "wrong token", None))
                    .await;
                let _ = self
                    .out
                    .send(close_frame(close::UNAUTHORIZED, "wrong token"))
                    .await;
                false
            }
        }
    }

    /// Updates of a `workflow_update` message, decoded by the endpoint source whose spec names
    /// that message (the one serving `POST /api/v1/workflows/{id}/updates`: one mapping,
    /// whichever way the updates come).
    fn workflow_events(&self, workflow_id: String, updates: &Value) -> Result<Vec<Event>, String> {
        let source = self
            .hub
            .endpoints()
            .iter()
            .find(|e| e.spec().ws_message == Some("workflow_update"))
            .ok_or("this hub takes no workflow updates")?;
        let request = HttpRequest {
            headers: vec![("content-type".into(), "application/json".into())],
            params: vec![("id".into(), workflow_id)],
            body: updates.to_string().into(),
            now: Timestamp::now(),
        };
        let decoded =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.decode(&request)))
                .map_err(
                    |_| "the workflow source failed on this update (a bug); nothing was stored",
                )?;
        match decoded {
            Ok(d) => Ok(d.events),
            Err(e) => {
                self.hub.core().count_invalid(PATH_NAME);
                Err(e
                    .lines
                    .first()
                    .map(|l| l.message.clone())
                    .unwrap_or(e.message))
            }
        }
    }

    /// Queues in the reader (so commits keep the order of publishes), through the core's one
    /// ingest path, and acks from a task once committed (so reading goes on meanwhile).
    fn commit(&self, id: Option<Value>, events: Vec<Event>) {
        let out = self.out.clone();
        let core = self.hub.core().clone();
        let pending = core.enqueue(PATH_NAME, events);
        tokio::spawn(async move {
            let result = match pending {
                Ok(p) => p.committed().await,
                Err(e) => Err(e),
            };
            let mut v = match result {
                Ok(a) => json!({"type": "ack", "duplicates": a.duplicates, "seqs": a.seqs}),
                Err(IngestError::QueueFull { .. }) => json!({"type": "error", "code": "queue_full",
                    "message": "the write queue is full; nothing was stored, retry", "retry_after_ms": 1000}),
                Err(IngestError::Closed) => json!({"type": "error", "code": "unavailable",
                    "message": "the hub is shutting down; nothing was stored, retry", "retry_after_ms": 1000}),
                Err(e) => json!({"type": "error", "code": "store", "message": e.to_string()}),
            };
            if let Some(id) = id {
                v["id"] = id;
            }
            let _ = out.send(text(v)).await;
        });
    }

    async fn subscribe(
        &mut self,
        id: Value,
        filter: Filter,
        since: Option<u64>,
        epoch: Option<String>,
    ) {
        if !self.require(Role::Read, Some(&id)).await {
            return;
        }
        let key = id.to_string();
        if let Some(old) = self.subs.get(&key)
            && !old.is_finished()
        {
            let _ = self
                .out
                .send(error_frame(
                    "duplicate_id",
                    "a subscription with this id is active; unsubscribe first or use another id",
                    Some(&id),
                ))
                .await;
            return;
        }
        if self.subs.len() >= MAX_SUBSCRIPTIONS {
            self.subs.retain(|_, t| !t.is_finished());
            if self.subs.len() >= MAX_SUBSCRIPTIONS {
                let _ = self
                    .out
                    .send(error_frame(
                        "too_many_subscriptions",
                        format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection"),
                        Some(&id),
                    ))
                    .await;
                return;
            }
        }
        let (sub, gap) = self
            .hub
            .core()
            .subscribe(filter, since, epoch.as_deref())
            .await;
        let mut reply = json!({
            "type": "subscribed",
            "id": id,
            "from_seq": sub.cursor() + 1,
            "head_seq": self.hub.store().head_seq(),
            "epoch": self.hub.store().epoch(),
            "recovered": gap.is_none(),
        });
        if let Some(gap) = &gap {
            reply["reason"] = json!(gap.reason());
        }
        // Sent before the task starts, so `subscribed` always precedes the first event.
        let _ = self.out.send(text(reply)).await;
        let out = self.out.clone();
        // Moved into the task: an unsubscribe aborts it, a closed connection ends it, and
        // either drops the guard.
        let counted = self.hub.core().track_subscriber(Transport::Ws);
        let task = tokio::spawn(async move {
            let _counted = counted;
            pump(sub, id, out).await
        });
        self.subs.insert(key, task);
    }
}

/// Moves one subscription's events into the connection's queue.
async fn pump(mut sub: Subscription, id: Value, out: mpsc::Sender<Message>) {
    let id_json = id.to_string();
    let mut lagged = 0;
    while let Some(e) = sub.next().await {
        if sub.lagged != lagged {
            lagged = sub.lagged;
            let note = json!({"type": "lagged", "sub": id, "count": lagged,
                "message": "this subscription fell behind the live stream and is catching up from storage; no event is skipped"});
            if out.send(text(note)).await.is_err() {
                return;
            }
        }
        let frame = format!(
            r#"{{"type":"event","sub":{id_json},"seq":{},"event":{}}}"#,
            e.seq(),
            e.json()
        );
        if out
            .send(Message::Text(Utf8Bytes::from(frame)))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Resolves when the hub starts stopping (the guard `wait_for` returns is not `Send`, so it
/// must not live in a `select!` branch that awaits).
pub(crate) async fn stopping(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|c| *c).await;
}

/// Shared by the workflow stream: the frame sent when the hub stops.
pub(crate) fn going_away() -> Message {
    close_frame(
        close::GOING_AWAY,
        "the hub is stopping; reconnect and resume",
    )
}
