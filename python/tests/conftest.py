"""Shared fixtures: a real sightline hub (the Rust binary, real HTTP over loopback, real
SQLite) and helpers to run Python programs under the agent and read back what arrived."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def hub_binary() -> Path:
    p = os.environ.get("SIGHTLINE_BIN")
    path = Path(p) if p else REPO / "target" / "debug" / "sightline"
    if not path.exists():
        raise RuntimeError(
            f"the sightline hub binary is not at {path}: run `cargo build` at the repository root "
            "(or set SIGHTLINE_BIN)"
        )
    return path


class Hub:
    """A running hub on a free port, with a few API helpers."""

    def __init__(self, tmp: Path, *flags: str, port: int = 0):
        self.bin = hub_binary()
        self.db = tmp / "db.sqlite"
        self.proc = subprocess.Popen(
            [str(self.bin), "serve", "--port", str(port), "--db", str(self.db), *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 60
        self.url = None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("sightline listening on "):
                self.url = line.split()[-1].strip()
                break
        if not self.url:
            self.proc.kill()
            raise RuntimeError(f"hub did not start: {self.proc.stderr.read()[:2000]}")

    def get(self, path: str, *, token: str | None = None, **params) -> dict:
        """GET a JSON answer; `token` is sent as the bearer token (a hub started with tokens)."""
        q = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        req = urllib.request.Request(f"{self.url}{path}{'?' + q if q else ''}", headers=headers)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def request(self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json"):
        req = urllib.request.Request(f"{self.url}{path}", data=body, method=method, headers={"Content-Type": ctype})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()

    def events(self, run_id: str, *, token: str | None = None, **filters) -> list[dict]:
        """Every event of a run matching the filters, in seq order."""
        out: list[dict] = []
        after = None
        while True:
            page = self.get("/api/v1/search", token=token, runs=run_id, order="asc", limit=1000, after=after,
                            **filters)
            out.extend(page["events"])
            if not page.get("next_cursor") or not page["events"]:
                return out
            after = page["next_cursor"]

    def wait_events(self, run_id: str, pred, timeout: float = 20.0, *, token: str | None = None,
                    **filters) -> list[dict]:
        deadline = time.time() + timeout
        while True:
            evs = self.events(run_id, token=token, **filters)
            if pred(evs) or time.time() > deadline:
                return evs
            time.sleep(0.2)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    h = Hub(tmp_path_factory.mktemp("hub"))
    yield h
    h.close()


def new_run_id(tag: str) -> str:
    return f"test-{tag}-{uuid.uuid4().hex[:10]}"


def agent_env(hub: Hub | None, run_id: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")}
    if hub is not None:
        env["SIGHTLINE_URL"] = hub.url
    env["SIGHTLINE_RUN_ID"] = run_id
    env["SIGHTLINE_MAX_DETAIL_PER_S"] = "0"
    env["SIGHTLINE_HEARTBEAT_S"] = "0.5"
    # The exit flush's 3 s default is for users; on a loaded test machine (CI, or eight builds at
    # once) a program's last tens of thousands of events need longer, and what does not leave in
    # time goes to the spool, which the assertions here do not read. Tests of the timeout itself
    # pass their own value.
    env["SIGHTLINE_FLUSH_TIMEOUT_S"] = "30"
    env.update(extra)
    return env


def run_traced(hub: Hub | None, tmp_path: Path, source: str, tag: str, args=(), timeout=120, **extra):
    """Writes ``source`` to a script and runs it with ``python -m sightline``; returns
    (run_id, completed process)."""
    script = tmp_path / f"{tag}.py"
    script.write_text(source)
    run_id = new_run_id(tag)
    extra.setdefault("SIGHTLINE_SPOOL_DIR", str(tmp_path / "spool"))
    p = subprocess.run(
        [sys.executable, "-m", "sightline", str(script), *args],
        env=agent_env(hub, run_id, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )
    return run_id, p


# The end of a traced test program: flushes nothing more (``left`` is what its own
# ``sightline.flush(..)`` left) and prints the agent's view of its transport as the last line of
# stdout, for ``agent_report``. The program imports json and sightline and sets ``left``.
PRINT_STATUS = """st = sightline.status()
print(json.dumps({"left": left, **{k: st.get(k) for k in ("transport", "sent", "rejected", "retries", "last_error")}}))
"""


def agent_report(p: subprocess.CompletedProcess) -> dict:
    """What a program ending in ``PRINT_STATUS`` printed; asserts it exited 0."""
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def deliver_spool(hub: Hub, tmp_path: Path, spool: Path, tag: str, **extra):
    """Runs a traced program that does nothing, whose agent delivers what ``spool`` holds (an
    agent sends the spool it finds when it starts); asserts it exited 0. Returns (run_id,
    completed process)."""
    run_id, p = run_traced(hub, tmp_path, "print('next')\n", tag, SIGHTLINE_SPOOL_DIR=str(spool), **extra)
    assert p.returncode == 0, p.stderr
    return run_id, p


def by_call_id(events: list[dict]) -> dict[int, dict]:
    return {e["payload"]["call_id"]: e for e in events if e["source_event"] == "call"}


def short(e: dict) -> str:
    return e["entity_id"].rsplit(".", 1)[-1]
