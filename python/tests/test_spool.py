"""The spool and what the hub refuses: spool files of dead processes adopted and delivered, an
oversized spool file set aside without stopping the others, a refused token keeping events
(spooled for a later process), 413 splitting a batch, a 400 setting aside only its bad lines,
and spool files private whatever the umask. Every test talks to the real hub binary."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import uuid

import pytest

from conftest import PRINT_STATUS, Hub, agent_env, deliver_spool, new_run_id, run_traced, short


def events_for(run_id: str, n: int, pad: int = 0) -> str:
    """NDJSON of `n` valid events of run `run_id` (each with its own event_id)."""
    return "".join(
        json.dumps({"event_id": f"{run_id}-{i}", "source": "python", "source_event": "log",
                    "entity_type": "log", "title": f"spooled {i}", "run_id": run_id,
                    "payload": {"pad": "p" * pad}}) + "\n"
        for i in range(n)
    )


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def wait_gone(path, timeout=20.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not path.exists():
            return True
        time.sleep(0.1)
    return not path.exists()


def test_claims_of_dead_or_reused_pids_are_adopted_and_delivered(hub, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    # The process that claimed this file died mid-delivery.
    dead_run = new_run_id("dead-claim")
    dead = spool / f"python-{dead_run}.ndjson.sending-{dead_pid()}"
    dead.write_text(events_for(dead_run, 40))
    # This pid belongs to a live process that started after the claim was last touched: the
    # pid was reused, the claimer is gone.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    reused_run = new_run_id("reused-claim")
    reused = spool / f"python-{reused_run}.ndjson.sending-{sleeper.pid}"
    try:
        reused.write_text(events_for(reused_run, 30))
        old = time.time() - 120
        os.utime(reused, (old, old))
        # A live claimer (this test process, started before its claim): left alone.
        live_run = new_run_id("live-claim")
        live = spool / f"python-{live_run}.ndjson.sending-{os.getpid()}"
        live.write_text(events_for(live_run, 5))

        deliver_spool(hub, tmp_path, spool, "adopter")
        got = hub.wait_events(dead_run, lambda evs: len(evs) >= 40)
        assert sorted(e["event_id"] for e in got) == sorted(f"{dead_run}-{i}" for i in range(40))
        got = hub.wait_events(reused_run, lambda evs: len(evs) >= 30)
        assert len(got) == 30
        assert not dead.exists() and not reused.exists()
        assert live.exists() and hub.events(live_run) == []
        assert sorted(x.name for x in spool.iterdir() if x.is_file()) == [live.name]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_oversized_spool_file_is_set_aside_and_the_others_delivered(hub, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    big_run = new_run_id("big")
    big = spool / f"python-0000-{big_run}.ndjson"  # sorts first
    with open(big, "w") as f:
        chunk = events_for(big_run, 64, pad=16_000)  # ~1 MiB
        while f.tell() <= (64 << 20):
            f.write(chunk)
    size = big.stat().st_size
    small_run = new_run_id("small")
    small = spool / f"python-zzzz-{small_run}.ndjson"
    small.write_text(events_for(small_run, 25))

    deliver_spool(hub, tmp_path, spool, "after-big")
    got = hub.wait_events(small_run, lambda evs: len(evs) >= 25)
    assert len(got) == 25
    assert hub.events(big_run) == []
    assert not big.exists() and not small.exists()
    aside = list((spool / "rejected").iterdir())
    assert [x.stat().st_size for x in aside] == [size]
    assert stat.S_IMODE((spool / "rejected").stat().st_mode) == 0o700


WORK = r"""
import json, sightline

def work(i):
    return i * 2

for i in range(300):
    work(i)
left = sightline.flush(FLUSH)
""" + PRINT_STATUS


@pytest.mark.parametrize("transport", ["auto", "http", "ws"])
def test_a_refused_token_keeps_the_events_for_when_it_is_fixed(tmp_path, transport):
    token = "the-right-token-0123456789"
    h = Hub(tmp_path, "--token", token)
    spool = tmp_path / "spool"
    try:
        run_id, p = run_traced(h, tmp_path, WORK.replace("FLUSH", "1"), f"bad-token-{transport}",
                               SIGHTLINE_TOKEN="wrong-token-0123456789", SIGHTLINE_TRANSPORT=transport,
                               SIGHTLINE_CONTROL="0", SIGHTLINE_FLUSH_TIMEOUT_S="0.5",
                               SIGHTLINE_SPOOL_DIR=str(spool))
        assert p.returncode == 0, p.stderr
        report = json.loads(p.stdout.strip().splitlines()[-1])
        assert report["sent"] == 0 and report["rejected"] == 0, report
        assert report["left"] > 0 and "token" in (report["last_error"] or ""), report
        assert "spooled to" in p.stderr
        files = list(spool.glob("python-*.ndjson"))
        assert len(files) == 1
        spooled = [json.loads(line) for line in files[0].read_text().splitlines()]
        assert sum(e["source_event"] == "call" and short(e) == "work" for e in spooled) == 300
        # The token fixed: the next process delivers them.
        deliver_spool(h, tmp_path, spool, f"good-token-{transport}",
                      SIGHTLINE_TOKEN=token, SIGHTLINE_TRANSPORT=transport, SIGHTLINE_CONTROL="0")
        req_evs = h.wait_events(run_id, lambda evs: sum(short(e) == "work" for e in evs) >= 300,
                                token=token, source_events="call")
        assert sum(short(e) == "work" for e in req_evs) == 300
        assert not list(spool.glob("python-*"))
    finally:
        h.close()


HUGE = r"""
import json, sightline
from sightline import _native

def work(i):
    return i * 2

for i in range(150):
    work(i)
# One event far over the hub's body limit: it alone is set aside.
_native.emit(json.dumps({"source": "python", "source_event": "huge", "entity_type": "log", "title": "huge",
                         "run_id": sightline.current().run_id, "payload": {"blob": "h" * 200_000}}))
for i in range(150, 300):
    work(i)
left = sightline.flush(20)
""" + PRINT_STATUS


@pytest.mark.parametrize("transport", ["http", "ws"])
def test_413_splits_the_batch_and_sets_aside_only_the_event_too_big(tmp_path, transport):
    h = Hub(tmp_path, "--max-body", "60000")
    spool = tmp_path / "spool"
    try:
        run_id, p = run_traced(h, tmp_path, HUGE, f"too-large-{transport}", SIGHTLINE_TRANSPORT=transport,
                               SIGHTLINE_CONTROL="0", SIGHTLINE_SPOOL_DIR=str(spool))
        assert p.returncode == 0, p.stderr
        report = json.loads(p.stdout.strip().splitlines()[-1])
        assert report["left"] == 0 and report["rejected"] == 1, report
        calls = h.wait_events(run_id, lambda evs: sum(short(e) == "work" for e in evs) >= 300, source_events="call")
        assert sorted(e["payload"]["args"]["i"] for e in calls if short(e) == "work") == list(range(300))
        aside = list((spool / "rejected").glob("*too-large*"))
        assert len(aside) == 1
        lines = aside[0].read_text().splitlines()
        assert len(lines) == 1 and json.loads(lines[0])["source_event"] == "huge"
        assert stat.S_IMODE(aside[0].stat().st_mode) == 0o600
    finally:
        h.close()


SECRETS = r"""
import os, sightline

def connect(user):
    password = "hunter2-very-secret"
    api_key = "AKIAABCDEFGHIJKLMNOP"
    raise ConnectionError("cannot reach the database")

for i in range(20):
    try:
        connect("alice")
    except ConnectionError:
        pass
"""


def test_spool_files_are_private_and_hold_redacted_events(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()
    spool = tmp_path / "deep" / "spool"
    script = tmp_path / "secrets.py"
    script.write_text(SECRETS)
    run_id = new_run_id("private")
    env = agent_env(None, run_id, SIGHTLINE_URL=dead, SIGHTLINE_SPOOL_DIR=str(spool),
                    SIGHTLINE_FLUSH_TIMEOUT_S="0.3", SIGHTLINE_CONTROL="0")
    # umask 0: without explicit modes the files would be 0666 and the directories 0777.
    argv = [str(script), "--password", "pw-on-the-command-line", "--api-key=argv-key-0123", "plain"]
    p = subprocess.run([sys.executable, "-m", "sightline", *argv], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=60, preexec_fn=lambda: os.umask(0))
    assert p.returncode == 0, p.stderr
    files = list(spool.glob("python-*.ndjson"))
    assert len(files) == 1, p.stderr
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "deep").stat().st_mode) == 0o700
    text = files[0].read_text()
    assert '"source_event":"exception"' in text.replace(" ", "")
    assert "hunter2" not in text and "AKIAABCDEFGHIJKLMNOP" not in text
    # The command line travels in process_start: its secrets are redacted too.
    start = next(json.loads(line) for line in text.splitlines() if '"process_start"' in line)
    assert start["payload"]["argv"][1:] == ["--password", "[REDACTED]", "--api-key=[REDACTED]", "plain"]
    assert "pw-on-the-command-line" not in text and "argv-key-0123" not in text


def test_a_token_without_the_ingest_role_keeps_the_events_for_when_it_is_fixed(tmp_path):
    """Issue 11, item 10: a 403 (a valid token that may only read) is an auth answer like 401:
    the batch is kept and spooled, never dropped, and a later process with a token that may
    ingest delivers every event."""
    reader, producer = "reader-token-0123456789", "producer-token-0123456789"
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{reader} read reader\n{producer} ingest producer\n")
    h = Hub(tmp_path, "--token-file", str(tokens))
    spool = tmp_path / "spool"
    try:
        run_id, p = run_traced(h, tmp_path, WORK.replace("FLUSH", "1"), "read-only-token",
                               SIGHTLINE_TOKEN=reader, SIGHTLINE_TRANSPORT="http",
                               SIGHTLINE_CONTROL="0", SIGHTLINE_FLUSH_TIMEOUT_S="0.5",
                               SIGHTLINE_SPOOL_DIR=str(spool))
        assert p.returncode == 0, p.stderr
        report = json.loads(p.stdout.strip().splitlines()[-1])
        assert report["sent"] == 0 and report["rejected"] == 0, report
        assert report["left"] > 0 and "403" in (report["last_error"] or ""), report
        files = list(spool.glob("python-*.ndjson"))
        assert len(files) == 1, p.stderr
        spooled = [json.loads(line) for line in files[0].read_text().splitlines()]
        assert sum(e["source_event"] == "call" and short(e) == "work" for e in spooled) == 300

        deliver_spool(h, tmp_path, spool, "ingest-token",
                      SIGHTLINE_TOKEN=producer, SIGHTLINE_TRANSPORT="http", SIGHTLINE_CONTROL="0")
        got = h.wait_events(run_id, lambda evs: sum(short(e) == "work" for e in evs) >= 300,
                            token=reader, source_events="call")
        assert sum(short(e) == "work" for e in got) == 300
        assert not list(spool.glob("python-*"))
    finally:
        h.close()
