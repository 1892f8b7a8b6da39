"""Live control through the hub: tracing switched on and off, and filters changed, in a
running process without restarting it."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from conftest import agent_env, new_run_id, short

LOOP = r'''
import os, time
def work(i):
    return i * 2
i = 0
deadline = time.time() + 60
while not os.path.exists("stop") and time.time() < deadline:
    work(i)
    i += 1
    time.sleep(0.01)
'''


def put(hub, run_id, doc):
    status, body = hub.request("PUT", f"/api/v1/processes/{run_id}/control", json.dumps(doc).encode())
    assert status == 200, body
    return json.loads(body)


def count_work(hub, run_id):
    return sum(1 for e in hub.events(run_id, source_events="call") if short(e) == "work")


def settled_count(hub, run_id):
    """The number of detailed `work` calls once it stops changing (events in flight landed)."""
    last = -1
    for _ in range(50):
        n = count_work(hub, run_id)
        if n == last:
            return n
        last = n
        time.sleep(0.5)
    return last


def applied(hub, run_id, version):
    return hub.wait_events(
        run_id,
        lambda evs: any(e["payload"].get("version") == version for e in evs),
        source_events="control_applied",
    )


def test_live_on_off_and_filters(hub, tmp_path):
    (tmp_path / "loop.py").write_text(LOOP)
    run_id = new_run_id("control")
    env = agent_env(hub, run_id, SIGHTLINE_TRACE="0")
    p = subprocess.Popen([sys.executable, "-m", "sightline", "loop.py"], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        evs = hub.wait_events(run_id, lambda evs: any(e["source_event"] == "process_start" for e in evs))
        start = next(e for e in evs if e["source_event"] == "process_start")
        assert start["payload"]["tracing"] is False
        time.sleep(1.0)
        assert count_work(hub, run_id) == 0  # off: nothing traced

        v = put(hub, run_id, {"enabled": True})["version"]
        applied(hub, run_id, v)
        evs = hub.wait_events(run_id, lambda evs: sum(short(e) == "work" for e in evs) >= 20, source_events="call")
        assert sum(short(e) == "work" for e in evs) >= 20, "tracing did not come on"

        v = put(hub, run_id, {"enabled": False})["version"]
        ctl = applied(hub, run_id, v)
        assert any(e["payload"]["tracing"] is False for e in ctl)
        n_off = settled_count(hub, run_id)
        time.sleep(1.5)
        assert count_work(hub, run_id) == n_off, "calls still traced after switching off"

        # Back on, with a minimum duration no `work` call reaches: details stop, aggregates go on.
        v = put(hub, run_id, {"enabled": True, "min_duration_ms": 1000})["version"]
        applied(hub, run_id, v)
        stats0 = hub.wait_events(run_id, lambda evs: len(evs) > 0, source_events="function_stats")
        c0 = max(e["metrics"]["count"] for e in stats0 if e["entity_id"] == "__main__.work")
        time.sleep(1.5)
        stats1 = hub.events(run_id, source_events="function_stats")
        c1 = max(e["metrics"]["count"] for e in stats1 if e["entity_id"] == "__main__.work")
        assert c1 > c0, "aggregates stopped"
        assert count_work(hub, run_id) == n_off, "details sent despite min_duration_ms"

        # A filter change: excluding the program's module stops even the aggregates (its code
        # is classified anew, and on 3.12+ its events are disabled again).
        v = put(hub, run_id, {"min_duration_ms": 0, "exclude": ["__main__"]})["version"]
        applied(hub, run_id, v)
        time.sleep(1.2)  # let the last aggregates from before the change land
        e0 = max(e["metrics"]["count"] for e in hub.events(run_id, source_events="function_stats")
                 if e["entity_id"] == "__main__.work")
        time.sleep(1.5)
        e1 = max(e["metrics"]["count"] for e in hub.events(run_id, source_events="function_stats")
                 if e["entity_id"] == "__main__.work")
        assert e1 == e0, "excluded code still traced"
        # ...and including it again brings detailed calls back.
        v = put(hub, run_id, {"exclude": []})["version"]
        applied(hub, run_id, v)
        evs = hub.wait_events(run_id, lambda evs: sum(short(e) == "work" for e in evs) > n_off + 10,
                              source_events="call")
        assert sum(short(e) == "work" for e in evs) > n_off + 10, "re-included code not traced"
    finally:
        (tmp_path / "stop").write_text("")
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
