"""sightline.client against the real hub binary: publish, filtered streams, the workflow
reporter, and a reconnect across a hub restart on the same database with no event lost or
repeated."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

try:
    from sightline import client as sl
except ImportError:  # the package's native agent is not built here: the client needs none of it
    spec = importlib.util.spec_from_file_location(
        "sightline_client", REPO / "python" / "sightline" / "client.py"
    )
    sl = importlib.util.module_from_spec(spec)
    sys.modules["sightline_client"] = sl
    spec.loader.exec_module(sl)


def hub_binary() -> Path:
    p = os.environ.get("SIGHTLINE_BIN")
    path = Path(p) if p else REPO / "target" / "debug" / "sightline"
    if not path.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "sightline"], cwd=REPO, check=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    def __init__(self, db: Path, port: int = 0, extra=()):
        self.proc = subprocess.Popen(
            [str(hub_binary()), "serve", "--port", str(port), "--source", "http", "--db", str(db), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "SIGHTLINE_TOKEN": "", "HOME": str(db.parent)},
        )
        line = self.proc.stdout.readline().decode()
        assert line.startswith("sightline listening on "), line
        self.url = line.split()[-1]

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=20)


@pytest.fixture
def hub(tmp_path):
    h = Hub(tmp_path / "db.sqlite")
    yield h
    h.stop()


def ev(run: str, i: int, **extra):
    return {"source": "custom", "source_event": "x", "entity_type": "log", "run_id": run,
            "title": f"event {i}", "event_id": f"{run}-{i}", **extra}


def collect(gen, n: int, timeout: float = 30.0):
    out = []
    deadline = time.monotonic() + timeout
    for e in gen:
        out.append(e)
        if len(out) >= n or time.monotonic() > deadline:
            break
    return out


def test_publish_and_filtered_stream(hub):
    c = sl.Client(hub.url)
    assert c.health()["status"] == "ok"
    seqs = c.publish([ev("a", i, severity="error" if i % 2 else "info") for i in range(10)])
    assert len(seqs) == 10 and seqs == sorted(seqs)
    # The same ids again: acknowledged, not stored twice.
    assert c.publish([ev("a", i) for i in range(10)]) == seqs
    got = collect(c.events(since=0, runs=["a"], severities=["error"]), 5)
    assert [e["seq"] for e in got] == seqs[1::2]
    with pytest.raises(ValueError):
        next(c.events(colour=["red"]))
    with pytest.raises(sl.HubError) as err:
        c.publish({"source": "nope"}, max_attempts=1)
    assert err.value.status == 400


def test_workflow_context_manager_reports_steps_progress_errors_completion(hub):
    c = sl.Client(hub.url)
    with c.workflow("wf-ok", name="nightly") as wf:
        wf.step("compile")
        wf.progress(50)
        wf.log("linking")
        wf.step("test")
        wf.progress(100)
    with pytest.raises(RuntimeError):
        with c.workflow("wf-bad") as wf:
            wf.step("deploy")
            raise RuntimeError("disk full")
    ok = c.request("GET", "/api/v1/runs/wf-ok")
    assert ok["run"]["status"] == "success", ok
    bad = c.request("GET", "/api/v1/runs/wf-bad")
    assert bad["run"]["status"] == "failed", bad
    timeline = c.request("GET", "/api/v1/runs/wf-bad/timeline")["events"]
    assert any(e["severity"] == "error" and "disk full" in e["title"] for e in timeline)
    progress = [e for e in c.search(runs=["wf-ok"]) if (e.get("metrics") or {}).get("progress") is not None]
    assert {e["metrics"]["progress"] for e in progress} == {50, 100}
    assert {e["entity_id"] for e in progress} == {"compile", "test"}


def test_a_step_retried_with_its_attempt_number_is_one_step_with_two_attempts(hub):
    c = sl.Client(hub.url)
    wf = c.workflow("wf-retry", name="deploy")
    wf.status("running")
    # Attempts 3 and 4 (earlier ones ran elsewhere): counted, the hub would have said 1 and 2.
    wf.step("push", "first try", attempt=3)
    wf.progress(40)
    wf.error(OSError("registry 503"))
    wf.step("push", "again", attempt=4)
    wf.log("pushed")
    wf.complete("success")
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError):
            wf.step("push", attempt=bad)
    got = c.request("GET", "/api/v1/workflows/wf-retry")
    assert [s["name"] for s in got["steps"]] == ["push"], got["steps"]
    push = got["steps"][0]
    assert push["attempt_count"] == 2
    assert [(a["attempt"], a["status"]) for a in push["attempts"]] == [(3, "failed"), (4, "success")]
    assert "registry 503" in push["attempts"][0]["error"]
    assert got["steps_retried"] == 1
    # The attempt travels with the step's later updates, not only with step().
    steps = [e for e in c.search(runs=["wf-retry"]) if e["entity_type"] == "step"]
    assert steps and all((e.get("metrics") or {}).get("attempt") in (3, 4) for e in steps), steps


def test_reconnect_across_a_hub_restart_loses_nothing(tmp_path):
    db = tmp_path / "db.sqlite"
    port = free_port()
    hub = Hub(db, port)
    c = sl.Client(hub.url, max_backoff=0.5)
    received = []
    done = threading.Event()

    def follow():
        for e in c.events(since=0, runs=["restart"]):
            received.append(e)
            if len(received) >= 300:
                break
        done.set()

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    first = c.publish([ev("restart", i) for i in range(150)])
    deadline = time.monotonic() + 20
    while len(received) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(received) == 150
    hub.stop(signal.SIGKILL)  # no goodbye: the stream just breaks
    # While the hub is down, a publisher's retries wait for it.
    later = []
    p = threading.Thread(target=lambda: later.extend(c.publish([ev("restart", i) for i in range(150, 300)], max_attempts=40)))
    p.start()
    time.sleep(1.0)
    hub = Hub(db, port)
    try:
        p.join(30)
        assert len(later) == 150
        assert done.wait(30), f"only {len(received)} events arrived"
        seqs = [e["seq"] for e in received]
        assert seqs == first + later, "every event once, in order, across the restart"
        assert len({e["event_id"] for e in received}) == 300
    finally:
        hub.stop()


def test_tokens_and_roles(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("reader-token-1 read viewer\nproducer-token-1 ingest producer\n")
    hub = Hub(tmp_path / "db.sqlite", extra=["--token-file", str(tokens)])
    try:
        producer = sl.Client(hub.url, token="producer-token-1")
        reader = sl.Client(hub.url, token="reader-token-1")
        seqs = producer.publish([ev("auth", i) for i in range(3)])
        assert [e["seq"] for e in collect(reader.events(since=0, runs=["auth"]), 3)] == seqs
        with pytest.raises(sl.HubError) as err:
            reader.publish(ev("auth", 9), max_attempts=1)
        assert err.value.status == 403
        with pytest.raises(sl.HubError) as err:
            next(sl.Client(hub.url, token="wrong-token-9").events(since=0))
        assert err.value.status == 401
    finally:
        hub.stop()
