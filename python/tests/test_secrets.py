"""The secret corpus through the Python agent: every value of the hub's secret corpus
(crates/sightline-schema/tests/secrets/corpus.rs) in each place the agent reports — the locals
an exception snapshot captures (under a harmless name and under the corpus label's own name),
the arguments and return value of traced calls, an exception's message, ``sys.argv``, a
nested dict/list local, next to non-ASCII text, an unhandled exception, and the spool the agent
writes when the hub is down — then looked for in everything a real hub stored: every event as
the API and ``sightline export`` return it, search, and the raw bytes of the database files.
Not one value may survive.

The corpus is not copied here: ``python/run-tests.sh`` writes it from the Rust source at test
time (``cargo run -p sightline-schema --example secret_corpus``) to python/target/, and this
module FAILS when that file is missing. It runs on one interpreter only (the first of
run-tests.sh's versions, named by SIGHTLINE_SECRETS_PY: 3.11 by default) to keep CI time small:
the agent's redaction is the same Python and Rust code on every version. Run without
run-tests.sh (SIGHTLINE_SECRETS_PY unset), it runs on whatever interpreter runs pytest."""

from __future__ import annotations

import json
import keyword
import os
import re
import socket
import stat
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, Hub, run_traced

CORPUS = Path(os.environ.get("SIGHTLINE_SECRET_CORPUS") or REPO / "python" / "target" / "secret-corpus.json")
ONLY_ON = os.environ.get("SIGHTLINE_SECRETS_PY")
HERE_PY = f"{sys.version_info[0]}.{sys.version_info[1]}"

pytestmark = pytest.mark.skipif(
    bool(ONLY_ON) and ONLY_ON != HERE_PY,
    reason=f"the secret corpus runs on Python {ONLY_ON} only (run-tests.sh), to keep CI time small",
)


def load_corpus() -> dict:
    if not CORPUS.is_file():
        pytest.fail(
            f"the secret corpus is not at {CORPUS}: python/run-tests.sh writes it with "
            f"`cargo run -q -p sightline-schema --example secret_corpus -- {CORPUS}` "
            "(or set SIGHTLINE_SECRET_CORPUS to such a file)",
            pytrace=False,
        )
    doc = json.loads(CORPUS.read_text(encoding="utf-8"))
    assert len(doc["secrets"]) >= 100 and doc["scripts"], "the corpus file is incomplete"
    return doc


def identifier(secret: dict, i: int) -> str:
    """The corpus label as a Python local's name (`stripe sk_live` -> `stripe_sk_live`); ASCII,
    so that the name itself never holds a needle (`token: résumé`'s `résumé`)."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", secret["label"]).strip("_")
    if not name.isidentifier() or keyword.iskeyword(name):
        name = f"v_{name}"
    if not name.isidentifier() or any(nd in name for nd in secret["needles"]):
        name = f"v_{i}"
    return name


def program(doc: dict) -> str:
    """A program that gets every corpus text in ``sys.argv`` and puts each into a traced call's
    arguments and return value, an exception's message and a raising frame's locals (plain,
    under the label's name, nested in a dict and a list, beside non-ASCII text)."""
    n = len(doc["secrets"])
    scripts = [(s["before"], s["after"]) for s in doc["scripts"]]
    out = [
        "import sys",
        f"SCRIPTS = {scripts!r}",
        "TEXTS = sys.argv[1:]",
        f"assert len(TEXTS) == {n}, len(TEXTS)",
        "WRAPPED = [f'{SCRIPTS[i % len(SCRIPTS)][0]} {t} {SCRIPTS[i % len(SCRIPTS)][1]}' for i, t in enumerate(TEXTS)]",
        "",
        "def echo(x):",
        "    return x",
        "",
    ]
    for i, s in enumerate(doc["secrets"]):
        out += [
            f"def case_{i}(x, wrapped):",
            f"    {identifier(s, i)} = x",
            "    nested = {'outer': [x, {'deeper': x, 'also': wrapped}], 'note': 'Grüße, 数据库 🔐'}",
            "    pair = ('Пароль', x)",
            "    echo(x)",
            "    echo(wrapped)",
            "    raise ValueError('could not use ' + wrapped)",
            "",
        ]
    out += [
        "CASES = [" + ", ".join(f"case_{i}" for i in range(n)) + "]",
        "",
        "def run_all():",
        "    # Each exception is kept: the agent reports an exception once per object, by its",
        "    # address, and a freed one's address is soon reused (see the report of issue 11).",
        "    caught = []",
        "    for i, case in enumerate(CASES):",
        "        try:",
        "            case(TEXTS[i], WRAPPED[i])",
        "        except ValueError as e:",
        "            caught.append(e)",
        "    return len(caught)",
        "",
        "def finale(x):",
        "    everything = {'texts': list(TEXTS), 'wrapped': list(WRAPPED)}",
        "    raise RuntimeError('gave up on ' + x)",
        "",
        "print('caught', run_all())",
        "finale(WRAPPED[-1])",
    ]
    return "\n".join(out) + "\n"


def needles(doc: dict) -> list[tuple[str, str]]:
    """(label, text) pairs that must appear nowhere: each needle, and for long ones its head
    (what a cut at some length would keep) and its tail (the tell-tale random part)."""
    out = []
    for s in doc["secrets"]:
        for nd in s["needles"]:
            out.append((s["label"], nd))
            if len(nd) >= 24:
                out.append((s["label"] + " (head)", nd[:16]))
                out.append((s["label"] + " (tail)", nd[-12:]))
    return out


def leaks_in(text: str, where: str, doc: dict) -> list[str]:
    return [f"{label}: `{nd}` in {where}" for label, nd in needles(doc) if nd in text]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Runs the program live and with the hub down (spooled, then delivered by the next
    process), on a hub of its own; returns what the hub stored and what the spool held."""
    doc = load_corpus()
    texts = [s["text"] for s in doc["secrets"]]
    tmp = tmp_path_factory.mktemp("secrets")
    (tmp / "prog").mkdir()
    src = program(doc)
    hub = Hub(tmp)
    try:
        # Every case's exception is reported (the default is 50 a second).
        many = {"SIGHTLINE_MAX_EXCEPTIONS_PER_S": "100000"}
        run_live, p = run_traced(hub, tmp / "prog", src, "secrets", args=texts, **many)
        assert p.returncode == 1 and "RuntimeError: gave up on" in p.stderr, p.stderr[-3000:]
        assert f"caught {len(texts)}" in p.stdout, p.stdout

        # The hub is down: the agent spools. Its files are looked at, then delivered.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
        s.close()
        spool = tmp / "spool"
        run_spooled, p = run_traced(None, tmp / "prog", src, "secrets-spool", args=texts, SIGHTLINE_URL=dead,
                                    SIGHTLINE_SPOOL_DIR=str(spool), SIGHTLINE_FLUSH_TIMEOUT_S="0.5", **many)
        assert p.returncode == 1 and "spooled to" in p.stderr, p.stderr[-3000:]
        files = sorted(spool.glob("python-*.ndjson"))
        assert files, list(spool.iterdir())
        spool_info = {
            "dir_mode": stat.S_IMODE(spool.stat().st_mode),
            "modes": {f.name: stat.S_IMODE(f.stat().st_mode) for f in files},
            "text": "".join(f.read_text(encoding="utf-8") for f in files),
        }
        spooled_lines = spool_info["text"].count("\n")
        _, p = run_traced(hub, tmp / "prog", "print('next')\n", "secrets-deliver", SIGHTLINE_SPOOL_DIR=str(spool))
        assert p.returncode == 0, p.stderr
        hub.wait_events(run_spooled, lambda evs: len(evs) >= spooled_lines, timeout=60)

        events = {r: hub.events(r) for r in (run_live, run_spooled)}
        cli = {
            r: subprocess.run(
                [str(hub.bin), "export", r, "--format", "ndjson", "--url", hub.url],
                capture_output=True, text=True, timeout=60,
            )
            for r in (run_live, run_spooled)
        }
        with urllib.request.urlopen(f"{hub.url}/api/v1/export?format=ndjson", timeout=60) as r:
            export_all = r.read().decode("utf-8")
        # The search answers for a word that is there (the exceptions' titles), so an
        # empty answer below means something.
        assert hub.get("/api/v1/search", q="could", runs=run_live, limit=10)["events"]
        search = {}
        for label, nd in needles(doc):
            if len(nd) < 8:
                continue
            # Whole words the full-text index could hold (it splits on punctuation).
            words = [w for w in re.split(r"[^\w]+", nd) if len(w) >= 6]
            for w in words:
                page = hub.get("/api/v1/search", q=w, limit=10)
                if page["events"]:
                    search.setdefault(f"{label}: `{w}`", json.dumps(page["events"], ensure_ascii=False))
    finally:
        hub.close()
    db = b""
    for suffix in ("", "-wal", "-shm", "-fts", "-fts-wal"):
        f = Path(str(hub.db) + suffix)
        if f.exists():
            db += f.read_bytes()
    return {
        "doc": doc, "runs": (run_live, run_spooled), "events": events, "cli": cli,
        "export_all": export_all, "search": search, "db": db, "spool": spool_info,
        "spooled_lines": spooled_lines,
    }


def test_every_place_was_reported(stored):
    """The assertions below would pass on nothing: first, that the hub got every case from
    both runs (live and spooled)."""
    n = len(stored["doc"]["secrets"])
    for run_id in stored["runs"]:
        evs = stored["events"][run_id]
        start = [e for e in evs if e["source_event"] == "process_start"]
        assert len(start) == 1 and len(start[0]["payload"]["argv"]) == n + 1
        cases = [e for e in evs if e["source_event"] == "call" and re.search(r"\.case_\d+$", e["entity_id"])]
        assert len(cases) == n, (run_id, len(cases))
        assert all(set(c["payload"]["args"]) == {"x", "wrapped"} for c in cases)
        assert sum(e["source_event"] == "call" and e["entity_id"].endswith(".echo") for e in evs) == 2 * n
        excs = [e for e in evs if e["source_event"] == "exception" and e["payload"].get("leaving", "").startswith("case_")]
        assert len(excs) == n, (run_id, len(excs))
        # The raising frame's locals were captured (redacted or not): x, the label's name, nested.
        top = excs[0]["payload"]["stack"][-1]
        assert {"x", "wrapped", "nested", "pair"} <= set(top["locals"]), top
        assert any("Grüße" in json.dumps(e, ensure_ascii=False) for e in excs)
        assert sum(e["source_event"] == "unhandled_exception" for e in evs) == 1


def test_no_value_in_the_events_the_api_returns(stored):
    leaks = []
    for run_id, evs in stored["events"].items():
        leaks += leaks_in(json.dumps(evs, ensure_ascii=False), f"run {run_id}'s events", stored["doc"])
    leaks += leaks_in(stored["export_all"], "GET /api/v1/export", stored["doc"])
    assert not leaks, f"{len(leaks)} leaks:\n" + "\n".join(leaks)


def test_no_value_in_sightline_export(stored):
    leaks = []
    for run_id, p in stored["cli"].items():
        assert p.returncode == 0, p.stderr
        assert p.stdout.count("\n") == len(stored["events"][run_id]), run_id
        leaks += leaks_in(p.stdout, f"`sightline export {run_id}`", stored["doc"])
    assert not leaks, f"{len(leaks)} leaks:\n" + "\n".join(leaks)


def test_search_finds_no_value(stored):
    assert not stored["search"], "search found secrets:\n" + "\n".join(
        f"{k}: {v[:300]}" for k, v in stored["search"].items()
    )


def test_no_value_in_the_database_files(stored):
    db = stored["db"]
    assert len(db) > 100_000, len(db)
    leaks = [
        f"{label}: `{nd}` in the database files"
        for label, nd in needles(stored["doc"])
        if len(nd.encode()) >= 8 and nd.encode() in db
    ]
    assert not leaks, f"{len(leaks)} leaks:\n" + "\n".join(leaks)


def test_spool_files_are_private(stored):
    """The spool is the agent's events before the hub redacts them: it must be readable by its
    owner only. What raw values it holds is printed (it may hold some: it is local and
    private, and the hub redacts on delivery, which the tests above check)."""
    sp = stored["spool"]
    assert sp["dir_mode"] == 0o700, oct(sp["dir_mode"])
    assert sp["modes"] and all(m == 0o600 for m in sp["modes"].values()), {k: oct(v) for k, v in sp["modes"].items()}
    raw = leaks_in(sp["text"], "the spool", stored["doc"])
    print(f"spool: {len(sp['modes'])} file(s), {stored['spooled_lines']} events, {len(raw)} raw corpus values")
    for line in raw:
        print("  " + line)
