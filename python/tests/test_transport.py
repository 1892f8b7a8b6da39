"""How events reach the hub: the WebSocket `publish` (the default), plain HTTP, the fallback
from one to the other, refusals, and a hub that goes away and comes back mid-run. Every test
talks to the real hub binary over loopback."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import PRINT_STATUS, Hub, agent_env, agent_report, new_run_id, run_traced, short

# Prints the agent's own view of the transport as the last line of stdout.
PROGRAM = r"""
import json, sightline

def work(i):
    return i * 2

for i in range(300):
    work(i)
left = sightline.flush(10)
""" + PRINT_STATUS


@pytest.mark.parametrize("transport, expected", [("auto", "ws"), ("ws", "ws"), ("http", "http")])
def test_each_transport_delivers_every_event(hub, tmp_path, transport, expected):
    run_id, p = run_traced(hub, tmp_path, PROGRAM, f"via-{transport}", SIGHTLINE_TRANSPORT=transport)
    report = agent_report(p)
    assert report["transport"] == expected
    assert report["left"] == 0 and report["rejected"] == 0, report
    calls = hub.wait_events(run_id, lambda evs: sum(short(e) == "work" for e in evs) >= 300, source_events="call")
    assert sum(short(e) == "work" for e in calls) == 300
    exits = hub.wait_events(run_id, lambda evs: len(evs) == 1, source_events="process_exit")
    assert len(exits) == 1


def test_unknown_transport_is_a_clear_error(tmp_path):
    run_id, p = run_traced(None, tmp_path, "print('x')\n", "bad-transport", SIGHTLINE_TRANSPORT="carrier-pigeon")
    assert p.returncode != 0
    assert "SIGHTLINE_TRANSPORT" in p.stderr and "auto, ws or http" in p.stderr


INVALID = r"""
import json, sightline
from sightline import _native

def work(i):
    return i

for i in range(50):
    work(i)
# An event the hub must refuse (an unknown field): only it may be lost, not its batch.
_native.emit(json.dumps({"source": "python", "source_event": "bogus", "entity_type": "log",
                         "run_id": sightline.current().run_id, "not_a_field": 1}))
for i in range(50, 100):
    work(i)
left = sightline.flush(10)
""" + PRINT_STATUS


@pytest.mark.parametrize("transport", ["ws", "http"])
def test_a_refused_event_loses_only_itself(hub, tmp_path, transport):
    run_id, p = run_traced(hub, tmp_path, INVALID, f"invalid-{transport}", SIGHTLINE_TRANSPORT=transport)
    report = agent_report(p)
    assert report["transport"] == transport
    assert report["rejected"] == 1, report
    assert "not_a_field" in (report["last_error"] or ""), report
    calls = hub.wait_events(run_id, lambda evs: sum(short(e) == "work" for e in evs) >= 100, source_events="call")
    assert sum(short(e) == "work" for e in calls) == 100
    # The refused event is set aside (not retried, not silently gone), and only it.
    aside = list((tmp_path / "spool" / "rejected").glob("python-*.ndjson"))
    lines = [line for f in aside for line in f.read_text().splitlines()]
    assert len(lines) == 1 and "not_a_field" in lines[0], lines


class _NoWebSocketProxy(http.server.ThreadingHTTPServer):
    """A reverse proxy in front of a real hub that, like many proxies, does not pass WebSocket
    upgrades: `GET /ws` gets 404, everything else is forwarded."""

    daemon_threads = True

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.upgrades_refused = 0
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _forward(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self.server.upgrades_refused += 1
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
        req = urllib.request.Request(self.server.upstream + self.path, data=body, method=self.command, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, data = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward


def test_auto_falls_back_to_http_when_the_upgrade_is_refused(hub, tmp_path):
    proxy = _NoWebSocketProxy(hub.url)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        run_id, p = run_traced(hub, tmp_path, PROGRAM, "fallback", SIGHTLINE_URL=url, SIGHTLINE_CONTROL="0")
        report = agent_report(p)
        assert proxy.upgrades_refused >= 1
        assert report["transport"] == "http" and report["left"] == 0, report
        calls = hub.wait_events(run_id, lambda evs: sum(short(e) == "work" for e in evs) >= 300, source_events="call")
        assert sum(short(e) == "work" for e in calls) == 300
    finally:
        proxy.shutdown()


def test_ws_only_keeps_events_queued_when_the_upgrade_is_refused(hub, tmp_path):
    """`ws` means WebSocket or nothing: events wait (then spool) rather than take HTTP."""
    proxy = _NoWebSocketProxy(hub.url)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        run_id, p = run_traced(hub, tmp_path, PROGRAM.replace("flush(10)", "flush(1)"), "ws-only",
                               SIGHTLINE_URL=url, SIGHTLINE_TRANSPORT="ws", SIGHTLINE_CONTROL="0",
                               SIGHTLINE_FLUSH_TIMEOUT_S="0.5")
        report = agent_report(p)
        assert report["left"] > 0 and report["sent"] == 0, report
        assert "404" in (report["last_error"] or ""), report
        assert "spooled to" in p.stderr
        assert hub.events(run_id) == []
    finally:
        proxy.shutdown()


def test_token_travels_with_the_upgrade(tmp_path):
    token = "s3cret-ingest-token"
    h = Hub(tmp_path, "--token", token)
    try:
        run_id, p = run_traced(h, tmp_path, PROGRAM, "with-token", SIGHTLINE_TOKEN=token, SIGHTLINE_TRANSPORT="ws")
        report = agent_report(p)
        assert report["transport"] == "ws" and report["left"] == 0 and report["rejected"] == 0, report
        calls = h.events(run_id, token=token, source_events="call")
        assert sum(short(e) == "work" for e in calls) == 300
        # A wrong token is refused at the upgrade and reported; nothing is stored.
        run2, p2 = run_traced(h, tmp_path, PROGRAM.replace("flush(10)", "flush(1)"), "wrong-token",
                              SIGHTLINE_TOKEN="wrong", SIGHTLINE_TRANSPORT="ws", SIGHTLINE_CONTROL="0",
                              SIGHTLINE_FLUSH_TIMEOUT_S="0.5")
        report2 = agent_report(p2)
        assert report2["sent"] == 0 and "401" in (report2["last_error"] or ""), report2
    finally:
        h.close()


LONG_RUNNING = r"""
import json, sys, time, sightline

def tick(i):
    return i

for i in range(60):
    tick(i)
    print("tick", i, flush=True)
    time.sleep(0.05)
left = sightline.flush(30)
""" + PRINT_STATUS


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_ws_survives_a_hub_restart_without_loss_or_duplicates(tmp_path):
    """The hub is killed (SIGKILL) while the program runs and comes back on the same port and
    database: every event arrives once, because a batch leaves the queue only when acked after
    commit and the hub is idempotent on event ids."""
    port = free_port()
    h = Hub(tmp_path, port=port)
    script = tmp_path / "long.py"
    script.write_text(LONG_RUNNING)
    run_id = new_run_id("restart")
    env = agent_env(h, run_id, SIGHTLINE_TRANSPORT="ws", SIGHTLINE_SPOOL_DIR=str(tmp_path / "spool"))
    proc = subprocess.Popen([sys.executable, "-m", "sightline", str(script)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("tick 15"):
                break
        h.proc.kill()
        h.proc.wait(10)
        time.sleep(1.0)  # about 20 ticks happen with no hub
        h = Hub(tmp_path, port=port)
        out, err = proc.communicate(timeout=90)
        report = json.loads(out.strip().splitlines()[-1])
        assert proc.returncode == 0, err
        assert report["left"] == 0 and report["transport"] == "ws", report
        assert report["retries"] >= 1, report
        ticks = h.wait_events(run_id, lambda evs: sum(short(e) == "tick" for e in evs) >= 60, source_events="call")
        ids = [e["event_id"] for e in ticks if short(e) == "tick"]
        assert len(ids) == 60 and len(set(ids)) == 60
        assert sorted(e["payload"]["args"]["i"] for e in ticks if short(e) == "tick") == list(range(60))
    finally:
        if proc.poll() is None:
            proc.kill()
        h.close()
