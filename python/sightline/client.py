"""A client for a sightline hub: follow the live event stream with filters and resume, publish
events, and report a workflow execution's progress.

Pure Python, standard library only (``http.client`` and a small Server-Sent Events reader), so
it works wherever Python does, without the tracing agent's native module.

    from sightline.client import Client

    hub = Client()                                   # SIGHTLINE_URL / SIGHTLINE_TOKEN
    hub.publish({"source": "custom", "source_event": "deploy", "entity_type": "log",
                 "title": "deployed"})
    for event in hub.events(sources=["claude"], severities=["error"]):
        print(event["seq"], event["title"])

    with hub.workflow("nightly-build") as wf:
        wf.step("compile")
        wf.progress(40, step="compile")
        wf.log("linking")
    # leaving the block reports `complete`; an exception reports `error` and a failed completion

Reconnection: the stream reconnects by itself with exponential backoff and jitter and resumes
after the last seq it yielded (``Last-Event-ID``), so a hub restart loses nothing and repeats
nothing. ``publish`` retries on 429/503 and connection errors with the same backoff, and each
event gets an ``event_id`` first so a retried batch is not stored twice.

This module must never block or fail the program that uses it beyond what the caller asked:
every wait is bounded by the caller's ``timeout`` / ``max_attempts``.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import ssl
import time
import urllib.parse
import uuid
from contextlib import contextmanager
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

__all__ = ["Client", "HubError", "Workflow", "backoff_delays"]

DEFAULT_URL = "http://127.0.0.1:4517"
FILTER_FIELDS = (
    "sources",
    "source_events",
    "runs",
    "sessions",
    "agents",
    "entity_types",
    "statuses",
    "severities",
    "since",
    "until",
    "q",
)


def _untrusted(url: str, e: ssl.SSLCertVerificationError) -> "HubError":
    """A certificate problem is not retried: it stays until someone configures the CA."""
    return HubError(
        f"the TLS certificate of the hub at {url} was refused ({e.verify_message or e}): if a "
        "private CA signed it, pass ca_file= (or set SIGHTLINE_CA_FILE) to that CA's PEM file"
    )


class HubError(Exception):
    """The hub refused a request (4xx other than 429) or could not be reached in time."""

    def __init__(self, message: str, status: Optional[int] = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


def backoff_delays(
    initial: float = 0.2, maximum: float = 10.0, factor: float = 2.0
) -> Iterator[float]:
    """Exponential backoff with full jitter: each delay is random in [d/2, d], d doubling."""
    d = initial
    while True:
        yield random.uniform(d / 2, d)
        d = min(d * factor, maximum)


def _filter_params(filters: Mapping[str, Any]) -> Dict[str, str]:
    params = {}
    for key, value in filters.items():
        if value is None:
            continue
        if key not in FILTER_FIELDS:
            raise ValueError(f"unknown filter field {key!r}; use one of {', '.join(FILTER_FIELDS)}")
        if isinstance(value, (list, tuple, set)):
            if value:
                params[key] = ",".join(str(v) for v in value)
        else:
            params[key] = str(value)
    return params


class Client:
    """One hub. Thread-safe: every call opens its own connection."""

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: float = 30.0,
        ssl_context: Optional[ssl.SSLContext] = None,
        ca_file: Optional[str] = None,
        max_backoff: float = 10.0,
    ):
        self.url = (url or os.environ.get("SIGHTLINE_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("SIGHTLINE_TOKEN") or None
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in ("http", "https"):
            raise ValueError(f"{self.url!r} is not an http(s) URL")
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or (443 if self._https else 80)
        self._prefix = parsed.path.rstrip("/")
        self.timeout = timeout
        # A private CA (``ca_file=`` or SIGHTLINE_CA_FILE) is trusted on top of the system's
        # CAs, as the tracing agent does; an explicit ``ssl_context`` wins over both.
        ca_file = ca_file or os.environ.get("SIGHTLINE_CA_FILE") or None
        if ssl_context is None and self._https and ca_file:
            ssl_context = ssl.create_default_context()
            try:
                ssl_context.load_verify_locations(cafile=ca_file)
            except (OSError, ssl.SSLError) as e:
                raise ValueError(
                    f"CA file {ca_file}: {e}: give ca_file= (or SIGHTLINE_CA_FILE) the PEM file of "
                    "the CA that signed the hub's certificate"
                ) from None
        self.ssl_context = ssl_context
        self.max_backoff = max_backoff
        #: The epoch of the hub's database, learnt from the stream's hello.
        self.epoch: Optional[str] = None

    # -- plumbing -----------------------------------------------------------------------------

    def _connection(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self.ssl_context
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _headers(self, extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if extra:
            h.update(extra)
        return h

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Optional[Mapping[str, str]] = None,
        max_attempts: int = 6,
        content_type: str = "application/json",
    ) -> Any:
        """One API call with retries on 429/503 and connection errors; returns parsed JSON."""
        if params:
            path = f"{path}?{urllib.parse.urlencode(params)}"
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        delays = backoff_delays(maximum=self.max_backoff)
        last_error: Optional[BaseException] = None
        for attempt in range(1, max_attempts + 1):
            conn = self._connection(self.timeout)
            try:
                conn.request(
                    method,
                    self._prefix + path,
                    body=data,
                    headers=self._headers({"Content-Type": content_type} if data else None),
                )
                resp = conn.getresponse()
                raw = resp.read()
                try:
                    parsed = json.loads(raw) if raw else None
                except ValueError:
                    parsed = raw.decode(errors="replace")
                if resp.status in (429, 503) and attempt < max_attempts:
                    retry_after = resp.getheader("Retry-After")
                    wait = next(delays)
                    if retry_after and retry_after.isdigit():
                        wait = max(wait, float(retry_after))
                    time.sleep(wait)
                    continue
                if resp.status >= 400:
                    message = parsed
                    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                        message = parsed["error"].get("message", parsed)
                    raise HubError(
                        f"{method} {path}: HTTP {resp.status}: {message}", resp.status, parsed
                    )
                return parsed
            except ssl.SSLCertVerificationError as e:
                raise _untrusted(self.url, e) from None
            except (OSError, http.client.HTTPException) as e:
                last_error = e
                if attempt < max_attempts:
                    time.sleep(next(delays))
            finally:
                conn.close()
        raise HubError(f"{method} {path}: the hub at {self.url} is unreachable: {last_error}")

    # -- API ----------------------------------------------------------------------------------

    def health(self) -> Dict[str, Any]:
        return self.request("GET", "/api/v1/health", max_attempts=1)

    def publish(
        self, events: Union[Mapping[str, Any], Sequence[Mapping[str, Any]]], *, max_attempts: int = 8
    ) -> List[int]:
        """Stores events (one or a list) and returns their seqs, after the hub committed them.

        Events without an ``event_id`` get one here, so a retry after a lost answer is
        recognised by the hub and not stored twice."""
        batch = [dict(events)] if isinstance(events, Mapping) else [dict(e) for e in events]
        for e in batch:
            e.setdefault("event_id", str(uuid.uuid4()))
        answer = self.request("POST", "/api/v1/events", batch, max_attempts=max_attempts)
        return list(answer["seqs"])

    def search(self, limit: int = 100, **filters: Any) -> List[Dict[str, Any]]:
        params = _filter_params(filters)
        params["limit"] = str(limit)
        return self.request("GET", "/api/v1/search", params=params)["events"]

    def events(
        self,
        *,
        since: Optional[int] = None,
        reconnect: bool = True,
        timeout: Optional[float] = None,
        read_timeout: float = 45.0,
        on_reset=None,
        **filters: Any,
    ) -> Iterator[Dict[str, Any]]:
        """Yields events matching the filter, live, forever (or until ``timeout`` seconds pass
        without one). ``since`` replays stored events after that seq first (0 = everything).

        On a dropped connection it reconnects with backoff and resumes after the last seq it
        yielded. ``on_reset(reason)`` is called when the hub says the resume could not be
        complete (another database, or events removed by retention)."""
        params = _filter_params(filters)
        cursor = since
        delays = backoff_delays(maximum=self.max_backoff)
        deadline_gap = timeout
        last_progress = time.monotonic()
        while True:
            conn = self._connection(read_timeout)
            try:
                query = dict(params)
                if cursor is not None:
                    query["last_event_id"] = str(cursor)
                    if self.epoch:
                        query["epoch"] = self.epoch
                path = f"{self._prefix}/api/v1/events/stream"
                if query:
                    path += "?" + urllib.parse.urlencode(query)
                conn.request("GET", path, headers=self._headers({"Accept": "text/event-stream"}))
                resp = conn.getresponse()
                if resp.status in (401, 403, 400, 404):
                    raise HubError(
                        f"stream: HTTP {resp.status}: {resp.read().decode(errors='replace')}",
                        resp.status,
                    )
                if resp.status != 200:
                    raise OSError(f"stream: HTTP {resp.status}")
                delays = backoff_delays(maximum=self.max_backoff)
                hello_cursor = cursor
                for name, data in _sse_frames(resp):
                    if name == "sightline.hello":
                        hello = json.loads(data)
                        self.epoch = hello.get("epoch")
                        hello_cursor = hello.get("cursor", hello.get("head_seq"))
                        if cursor is None:
                            # Live from here: a reconnect resumes after this point.
                            cursor = hello.get("cursor", hello.get("head_seq"))
                    elif name == "sightline.reset":
                        # The old cursor means nothing here: continue from where the hub starts.
                        cursor = hello_cursor
                        if on_reset:
                            on_reset(json.loads(data).get("reason"))
                    elif name == "sightline.event":
                        event = json.loads(data)
                        seq = event.get("seq")
                        if cursor is not None and seq is not None and seq <= cursor:
                            continue  # already yielded before a reconnect
                        cursor = seq
                        last_progress = time.monotonic()
                        yield event
                    if deadline_gap is not None and time.monotonic() - last_progress > deadline_gap:
                        return
                raise OSError("the stream ended")
            except HubError:
                raise
            except ssl.SSLCertVerificationError as e:
                raise _untrusted(self.url, e) from None
            except (OSError, http.client.HTTPException, ValueError) as e:
                if not reconnect:
                    raise HubError(f"stream interrupted: {e}") from e
                if deadline_gap is not None and time.monotonic() - last_progress > deadline_gap:
                    return
                time.sleep(next(delays))
            finally:
                conn.close()

    def workflow(self, workflow_id: Optional[str] = None, name: Optional[str] = None) -> "Workflow":
        """A workflow execution reporter; use it as a context manager."""
        return Workflow(self, workflow_id or f"wf-{uuid.uuid4().hex[:12]}", name)


def _sse_frames(resp) -> Iterator[tuple]:
    """(event name, data) for each frame of a text/event-stream response."""
    name, data = "message", []
    while True:
        line = resp.readline()
        if not line:
            return
        line = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
            continue
        if line.startswith(":"):
            # A heartbeat: lets a generator with a timeout notice time passing.
            yield "comment", ""
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)


class Workflow:
    """Reports a workflow execution: ``status``, ``log``, ``progress``, ``error``, ``complete``
    (docs/CONTRACT.md §3.5). As a context manager it reports ``running`` on entry, ``complete`` on a
    normal exit, and ``error`` plus a failed ``complete`` when the block raises."""

    def __init__(self, client: Client, workflow_id: str, name: Optional[str] = None):
        self.client = client
        self.id = workflow_id
        self.name = name
        self.current_step: Optional[str] = None
        # The attempt given to the current step's step(), sent with its later updates too.
        self.current_attempt: Optional[int] = None
        self._started = time.monotonic()

    def update(self, kind: str, **data: Any) -> int:
        """Sends one update; returns its seq."""
        data = {k: v for k, v in data.items() if v is not None}
        if self.name and "workflow" not in data:
            data["workflow"] = self.name
        body = {"type": kind, "id": uuid.uuid4().hex, "data": data}
        answer = self.client.request(
            "POST", f"/api/v1/workflows/{urllib.parse.quote(self.id, safe='')}/updates", body
        )
        return answer["seqs"][0]

    def status(self, status: str, message: Optional[str] = None, step: Optional[str] = None) -> int:
        return self.update("status", status=status, message=message, step=step)

    def step(self, step: str, message: Optional[str] = None, *, attempt: Optional[int] = None) -> int:
        """Starts a step (ending the previous one with success).

        ``attempt`` names which attempt of a step the caller retries itself this is (a whole
        number from 1); it is sent with the step's later progress, logs, errors and end too.
        Without it the hub counts: a step that ended and starts again is the next attempt.
        Raises ValueError, sending nothing, for anything but a whole number from 1."""
        if attempt is not None and (
            isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1
        ):
            raise ValueError(f"attempt must be a whole number from 1, got {attempt!r}")
        if self.current_step and self.current_step != step:
            self.update("status", status="success", step=self.current_step, attempt=self.current_attempt)
        self.current_step = step
        self.current_attempt = attempt
        return self.update("status", status="running", step=step, message=message, attempt=attempt)

    def _attempt_of(self, step: Optional[str]) -> Optional[int]:
        """The attempt to send with an update of ``step``: the current step's, else none."""
        return self.current_attempt if step is not None and step == self.current_step else None

    def progress(self, percent: float, step: Optional[str] = None, message: Optional[str] = None) -> int:
        step = step or self.current_step
        return self.update("progress", progress=percent, step=step, message=message, attempt=self._attempt_of(step))

    def log(self, message: str, level: str = "info") -> int:
        step = self.current_step
        return self.update("log", message=message, level=level, step=step, attempt=self._attempt_of(step))

    def error(self, error: Union[str, BaseException], step: Optional[str] = None) -> int:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        step = step or self.current_step
        return self.update("error", error=text, step=step, attempt=self._attempt_of(step))

    def complete(self, status: str = "success", message: Optional[str] = None) -> int:
        if self.current_step:
            self.update("status", status=status, step=self.current_step, attempt=self.current_attempt)
            self.current_step = None
            self.current_attempt = None
        duration_ms = round((time.monotonic() - self._started) * 1000, 1)
        return self.update("complete", status=status, message=message, duration_ms=duration_ms)

    def __enter__(self) -> "Workflow":
        self._started = time.monotonic()
        self.status("running", message=f"{self.name or self.id} started")
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None:
            self.error(exc)
            self.complete("failed", message=f"{type(exc).__name__}: {exc}")
        else:
            self.complete("success")
        return False
