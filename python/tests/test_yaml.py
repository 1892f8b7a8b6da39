"""A traced session (calls, exceptions, locals) survives the hub's YAML export and import,
and the agent's offline NDJSON file imports into a hub unchanged."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request

import pytest

from conftest import Hub, hub_binary, run_traced

PROGRAM = r'''
def inner(secret_token, n):
    data = {"password": "x", "items": [1, 2, 3], "note": "multi\nline: yes # not a comment"}
    raise ValueError("bad: value")

def outer():
    try:
        inner("s", 2)
    except ValueError:
        return "ok"

for _ in range(3):
    outer()
'''

FIELDS = (
    "event_id", "ts", "source", "source_event", "run_id", "session_id", "parent_session_id", "agent",
    "entity_type", "entity_id", "status", "severity", "title", "summary", "duration_ms", "metrics",
    "host", "pid", "thread_id", "correlation_id", "tags", "payload",
)


def comparable(e: dict) -> dict:
    return {k: e.get(k) for k in FIELDS}


@pytest.fixture(scope="module")
def second_hub(tmp_path_factory):
    h = Hub(tmp_path_factory.mktemp("hub2"))
    yield h
    h.close()


def export(hub: Hub, run_id: str, fmt: str) -> bytes:
    q = urllib.parse.urlencode({"run_id": run_id, "format": fmt})
    with urllib.request.urlopen(f"{hub.url}/api/v1/export?{q}", timeout=30) as r:
        return r.read()


def test_yaml_round_trip(hub, second_hub, tmp_path):
    run_id, p = run_traced(hub, tmp_path, PROGRAM, "yaml")
    assert p.returncode == 0, p.stderr
    original = hub.events(run_id)
    kinds = {e["source_event"] for e in original}
    assert {"call", "exception", "function_stats", "process_start", "process_exit"} <= kinds
    yaml_doc = export(hub, run_id, "yaml")
    import yaml  # the document is real YAML, readable by other tools

    parsed = yaml.safe_load(yaml_doc)
    assert parsed, "empty YAML export"
    status, body = second_hub.request("POST", "/api/v1/import?format=yaml", yaml_doc, "application/yaml")
    assert status in (200, 202), body
    back = second_hub.events(run_id)
    assert len(back) == len(original)
    a = sorted((comparable(e) for e in original), key=lambda e: e["event_id"])
    b = sorted((comparable(e) for e in back), key=lambda e: e["event_id"])
    assert a == b
    # The locals snapshot is intact (and still redacted).
    exc = next(e for e in back if e["entity_type"] == "exception")
    loc = exc["payload"]["stack"][-1]["locals"]
    assert loc["secret_token"] == "[REDACTED]" and loc["data"]["password"] == "[REDACTED]"
    assert loc["data"]["note"] == "multi\nline: yes # not a comment" and loc["data"]["items"] == [1, 2, 3]


def cli(*args):
    return subprocess.run([str(hub_binary()), *args], capture_output=True, text=True, timeout=120)


def test_yaml_round_trip_through_the_cli(hub, second_hub, tmp_path):
    """The same with `sightline export --format yaml` and `sightline import`."""
    run_id, p = run_traced(hub, tmp_path, PROGRAM, "yaml-cli")
    assert p.returncode == 0, p.stderr
    f = tmp_path / "session.yaml"
    r = cli("export", run_id, "--format", "yaml", "-o", str(f), "--url", hub.url)
    assert r.returncode == 0, r.stderr
    r = cli("import", str(f), "--url", second_hub.url)
    assert r.returncode == 0, r.stderr
    a = sorted((comparable(e) for e in hub.events(run_id)), key=lambda e: e["event_id"])
    b = sorted((comparable(e) for e in second_hub.events(run_id)), key=lambda e: e["event_id"])
    assert a == b and any(e["entity_type"] == "exception" for e in b)


def test_offline_file_imports(second_hub, tmp_path):
    """Offline mode's NDJSON file is what `sightline import` reads."""
    out = tmp_path / "offline.ndjson"
    run_id, p = run_traced(None, tmp_path, PROGRAM, "offline-import", SIGHTLINE_OUTPUT=str(out))
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    r = cli("import", str(out), "--url", second_hub.url)
    assert r.returncode == 0, r.stderr
    back = second_hub.events(run_id)
    assert len(back) == len(lines)
    assert {e["event_id"] for e in back if e["source_event"] == "call"} == {
        e["event_id"] for e in lines if e["source_event"] == "call"
    }
