"""A traced session (calls, exceptions, locals) survives the hub's YAML export and import,
and the agent's offline NDJSON file imports into a hub unchanged."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest

from conftest import Hub, run_traced

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


def test_offline_file_imports(second_hub, tmp_path):
    out = tmp_path / "offline.ndjson"
    run_id, p = run_traced(None, tmp_path, PROGRAM, "offline-import", SIGHTLINE_OUTPUT=str(out))
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    status, body = second_hub.request("POST", "/api/v1/import?format=ndjson", out.read_bytes(), "application/x-ndjson")
    assert status in (200, 202), body
    back = second_hub.events(run_id)
    assert len(back) == len(lines)
    assert {e["event_id"] for e in back if e["source_event"] == "call"} == {
        e["event_id"] for e in lines if e["source_event"] == "call"
    }
