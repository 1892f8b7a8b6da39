"""Liveness with real processes: a traced Python program killed without its exit event (SIGKILL)
shows its run failed, with the reason, within the hub's sweep interval; one that exits normally
is left as it said. The hub is the real binary with a short sweep (`--liveness-every 0.5`).
The test ends only the process it started, by its pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Hub, agent_env, new_run_id


@pytest.fixture(scope="module")
def quick_hub(tmp_path_factory):
    h = Hub(tmp_path_factory.mktemp("liveness-hub"), "--liveness-every", "0.5")
    yield h
    h.close()


def wait_run(hub: Hub, run_id: str, pred, timeout: float) -> dict:
    deadline = time.time() + timeout
    run = {}
    while time.time() < deadline:
        try:
            run = hub.get(f"/api/v1/runs/{run_id}")
        except Exception:  # 404 until the first event is stored
            run = {}
        if run and pred(run):
            return run
        time.sleep(0.1)
    return run


PROGRAM = """
import time
def work():
    return sum(range(1000))
work()
print("ready", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL])
def test_a_killed_traced_process_is_shown_failed_with_the_reason(quick_hub, tmp_path: Path, sig):
    script = tmp_path / "sleeper.py"
    script.write_text(PROGRAM)
    run_id = new_run_id("killed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sightline", str(script)],
        env=agent_env(quick_hub, run_id, SIGHTLINE_SPOOL_DIR=str(tmp_path / "spool")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        # Running while alive: the sweep sees the pid and leaves it (several sweeps pass).
        run = wait_run(quick_hub, run_id, lambda r: r["run"]["status"] == "running", 20)
        assert run, "the run never arrived"
        time.sleep(2)
        run = quick_hub.get(f"/api/v1/runs/{run_id}")["run"]
        assert run["status"] == "running", run
        assert run["alive"] is True, run
        assert run["ended_by"] is None, run
        os.kill(proc.pid, sig)
        proc.wait(10)
        killed = time.time()
        # Budget: one sweep (0.5 s) plus a commit; 10 s leaves room for a loaded machine.
        run = wait_run(quick_hub, run_id, lambda r: r["run"]["status"] == "failed", 10)
        took = time.time() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    r = run["run"]
    print(f"shown failed {took:.2f} s after the kill")
    assert r["status"] == "failed", f"still {r['status']} {took:.1f} s after the kill: {r}"
    assert r["alive"] is False
    assert r["ended_by"] == "liveness"
    assert r["liveness_rule"] == "pid"
    assert r["liveness_reason"] == f"process {proc.pid} is gone (no exit event)", r
    assert r["ended_at"] is not None
    # Its sessions ended with it.
    for s in run["sessions"]:
        assert s["ended_at"] is not None and s["ended_by"] == "liveness", s
    # The synthetic end is an event in the run's timeline, marked as such.
    ends = quick_hub.events(run_id, source_events="liveness_failed")
    assert ends and ends[0]["payload"]["ended_by"] == "liveness", ends
    assert ends[0]["payload"]["reason"] == r["liveness_reason"]


def test_a_process_that_exits_keeps_its_own_end(quick_hub, tmp_path: Path):
    script = tmp_path / "quick.py"
    script.write_text("print('done')\n")
    run_id = new_run_id("exits")
    p = subprocess.run(
        [sys.executable, "-m", "sightline", str(script)],
        env=agent_env(quick_hub, run_id, SIGHTLINE_SPOOL_DIR=str(tmp_path / "spool")),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    run = wait_run(quick_hub, run_id, lambda r: r["run"]["status"] == "success", 20)
    time.sleep(1.5)  # three sweeps
    r = quick_hub.get(f"/api/v1/runs/{run_id}")["run"]
    assert r["status"] == "success", r
    assert r["ended_by"] is None and r["liveness_reason"] is None, r
    assert r["alive"] is False
