"""The call tree, durations, arguments, exceptions and aggregates that reach a real hub for
nested, recursive, generator, async, threaded and raising code."""

from __future__ import annotations

import sys

import pytest

from conftest import by_call_id, deliver_spool, run_traced, short

PROGRAM = r'''
import asyncio, threading, time

def leaf(ms):
    time.sleep(ms / 1000)
    return ms

def middle():
    return leaf(20) + leaf(10)

def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

def countdown(n):
    while n:
        yield n
        n -= 1

def consume():
    return list(countdown(3))

async def fetch(i):
    await asyncio.sleep(0.03)
    return i

async def gather_all():
    a = await fetch(1)
    return a + await fetch(2)

async def spawn_tasks():
    # Coroutines run as tasks start from the event loop's frames, not from their creator.
    t = asyncio.create_task(fetch(3))
    g = await asyncio.gather(fetch(4), fetch(5))
    async with asyncio.TaskGroup() as tg:
        tg.create_task(fetch(6))  # result unused
    return await t + sum(g)

class BrokenRepr:
    def __repr__(self):
        raise RuntimeError("broken repr")

def fail(password, level):
    db_password = "hunter2"
    config = {"api_key": "k", "nested": {"user_token": "t", "port": 5432}}
    loop = [1]
    loop.append(loop)
    broken = BrokenRepr()
    raise KeyError(f"missing {level}")

def catcher():
    try:
        fail("pw", 1)
    except KeyError:
        return "caught"

def in_thread():
    leaf(5)

def main():
    middle()
    fib(6)
    consume()
    asyncio.run(gather_all())
    asyncio.run(spawn_tasks())
    catcher()
    t = threading.Thread(target=in_thread, name="worker-1")
    t.start(); t.join()

main()
print("done")
'''


@pytest.fixture(scope="module")
def traced(hub, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tree")
    run_id, p = run_traced(hub, tmp, PROGRAM, "tree")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "done"
    evs = hub.events(run_id)
    calls = [e for e in evs if e["source_event"] == "call"]
    return run_id, evs, calls, by_call_id(calls)


def named(calls, name):
    return [c for c in calls if short(c) == name]


def parent(ids, c):
    return ids.get(c["payload"]["parent_call_id"])


def interval(c):
    return c["payload"]["start_ns"], c["payload"]["end_ns"]


def test_process_lifecycle(hub, traced):
    run_id, evs, calls, _ = traced
    kinds = [e["source_event"] for e in evs]
    assert kinds.count("process_start") == 1 and kinds.count("process_exit") == 1
    start = next(e for e in evs if e["source_event"] == "process_start")
    assert start["payload"]["python_version"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    exit_ = next(e for e in evs if e["source_event"] == "process_exit")
    assert exit_["status"] == "success" and exit_["metrics"]["exit_code"] == 0
    assert all(e["source"] == "python" and e["run_id"] == run_id for e in evs)
    # Events reach the hub in the order the process made them, call events included: the exit
    # comes last, so the run is over (ended) rather than looking active again.
    assert evs[-1]["source_event"] == "process_exit", [e["source_event"] for e in evs[-5:]]
    run = hub.get(f"/api/v1/runs/{run_id}")["run"]
    assert run["status"] == "success" and run["ended_at"] is not None, run
    # Only the user's code is traced: no stdlib (asyncio, threading) functions.
    assert {c["payload"]["module"] for c in calls} == {"__main__"}


def test_nested_calls_and_durations(traced):
    _, _, calls, ids = traced
    (middle,) = named(calls, "middle")
    leaves = sorted((c for c in named(calls, "leaf") if parent(ids, c) is middle), key=lambda c: c["payload"]["start_ns"])
    assert [c["payload"]["args"] for c in leaves] == [{"ms": 20}, {"ms": 10}]
    assert [c["payload"]["return"] for c in leaves] == [20, 10]
    assert leaves[0]["duration_ms"] >= 20 and leaves[1]["duration_ms"] >= 10
    assert middle["duration_ms"] >= leaves[0]["duration_ms"] + leaves[1]["duration_ms"]
    assert middle["payload"]["return"] == 30
    m0, m1 = interval(middle)
    for leaf in leaves:
        s, e = interval(leaf)
        assert m0 <= s <= e <= m1
    assert short(parent(ids, middle)) == "main"
    assert leaves[0]["payload"]["depth"] == middle["payload"]["depth"] + 1


def test_recursive_tree(traced):
    run_id, evs, calls, ids = traced
    fibs = named(calls, "fib")
    assert len(fibs) == 25  # calls made by fib(6)
    roots = [c for c in fibs if short(parent(ids, c)) != "fib"]
    assert len(roots) == 1 and roots[0]["payload"]["args"] == {"n": 6} and roots[0]["payload"]["return"] == 8
    children: dict[int, list] = {}
    for c in fibs:
        children.setdefault(c["payload"]["parent_call_id"], []).append(c)
    for c in fibs:
        n = c["payload"]["args"]["n"]
        kids = sorted(k["payload"]["args"]["n"] for k in children.get(c["payload"]["call_id"], []))
        assert kids == ([] if n < 2 else [n - 2, n - 1]), (n, kids)
        s, e = interval(c)
        for k in children.get(c["payload"]["call_id"], []):
            ks, ke = interval(k)
            assert s <= ks <= ke <= e
    # The aggregates count every call.
    stats = [e for e in evs if e["source_event"] == "function_stats" and e["entity_id"] == "__main__.fib"]
    assert stats and stats[-1]["metrics"]["count"] == 25


def test_generator(traced):
    _, _, calls, ids = traced
    (gen,) = named(calls, "countdown")
    assert gen["payload"]["kind"] == "generator"
    assert gen["payload"]["resumes"] == 3  # started, then resumed three times until it returned
    assert gen["payload"]["args"] == {"n": 3}
    assert short(parent(ids, gen)) == "consume"
    assert gen["status"] == "success"


def test_async(traced):
    _, _, calls, ids = traced
    fetches = named(calls, "fetch")
    (ga,) = named(calls, "gather_all")
    awaited = [f for f in fetches if f["payload"]["args"]["i"] in (1, 2)]
    assert len(awaited) == 2
    for f in awaited:
        assert f["payload"]["kind"] == "coroutine"
        assert parent(ids, f) is ga
        assert f["duration_ms"] >= 30  # wall time includes the awaited sleep
        assert f["metrics"]["active_ms"] < f["duration_ms"]  # ...active time does not
        assert f["payload"]["resumes"] >= 1
    assert ga["duration_ms"] >= 60 and ga["payload"]["return"] == 3
    assert short(parent(ids, ga)) == "main"


def test_async_tasks_are_children_of_their_creator(traced):
    """create_task, gather and TaskGroup: each task's coroutine is a child of the coroutine that
    created it, although the event loop is what starts it."""
    _, _, calls, ids = traced
    (spawner,) = named(calls, "spawn_tasks")
    tasks = sorted((f for f in named(calls, "fetch") if f["payload"]["args"]["i"] >= 3),
                   key=lambda f: f["payload"]["args"]["i"])
    assert [f["payload"]["args"]["i"] for f in tasks] == [3, 4, 5, 6]
    for f in tasks:
        assert parent(ids, f) is spawner, (f["payload"]["args"], parent(ids, f))
        assert f["payload"]["depth"] == spawner["payload"]["depth"] + 1
        assert f["duration_ms"] >= 30
    assert spawner["payload"]["return"] == 12  # 3 + (4 + 5); the TaskGroup task returns nothing
    assert short(parent(ids, spawner)) == "main"


def test_threads(traced):
    run_id, _, calls, ids = traced
    (t,) = named(calls, "in_thread")
    main_session = f"{run_id}:main"
    assert t["session_id"] != main_session and t["parent_session_id"] == main_session
    assert t["payload"]["parent_call_id"] is None  # the root of its thread
    (leaf,) = [c for c in named(calls, "leaf") if parent(ids, c) is t]
    assert leaf["session_id"] == t["session_id"] and leaf["thread_id"] == t["thread_id"]
    (m,) = named(calls, "main")
    assert m["session_id"] == main_session and m["thread_id"] != t["thread_id"]


def test_raising_code_and_locals(traced):
    _, evs, calls, ids = traced
    (fail,) = named(calls, "fail")
    (catcher,) = named(calls, "catcher")
    assert fail["status"] == "failed" and parent(ids, fail) is catcher
    assert fail["payload"]["args"] == {"password": "[REDACTED]", "level": 1}
    assert fail["payload"]["exception"] == "KeyError"
    assert catcher["status"] == "success" and catcher["payload"]["return"] == "caught"
    exc = [e for e in evs if e["entity_type"] == "exception"]
    assert len(exc) == 1, exc
    e = exc[0]
    assert e["source_event"] == "exception" and e["entity_id"] == "KeyError" and e["severity"] == "error"
    assert e["payload"]["leaving"] == "fail"
    assert "missing 1" in e["payload"]["message"]
    top = e["payload"]["stack"][-1]
    assert top["function"] == "fail" and top["line"] > 0
    loc = top["locals"]
    assert loc["password"] == "[REDACTED]" and loc["db_password"] == "[REDACTED]"
    assert loc["level"] == 1
    assert loc["config"] == {"api_key": "[REDACTED]", "nested": {"user_token": "[REDACTED]", "port": 5432}}
    assert loc["loop"] == [1, "<cycle: list>"]
    assert "repr failed: RuntimeError" in loc["broken"]
    assert "hunter2" not in str(e)
    assert [f["function"] for f in e["payload"]["stack"][-3:]] == ["main", "catcher", "fail"]


SAMPLED = r'''
def tiny(i):
    return i + 1

def slow():
    import time
    time.sleep(0.02)

for i in range(5000):
    tiny(i)
slow()
'''


def test_aggregates_complete_when_details_are_capped(hub, tmp_path):
    run_id, p = run_traced(hub, tmp_path, SAMPLED, "sampled", SIGHTLINE_MAX_DETAIL_PER_S="50")
    assert p.returncode == 0, p.stderr
    evs = hub.events(run_id)
    tiny = [e for e in evs if e["source_event"] == "call" and short(e) == "tiny"]
    assert 1 <= len(tiny) < 200, len(tiny)  # capped (about a second's worth of burst)
    stats = [e for e in evs if e["source_event"] == "function_stats" and e["entity_id"] == "__main__.tiny"]
    m = stats[-1]["metrics"]
    assert m["count"] == 5000 and m["min_ms"] <= m["mean_ms"] <= m["max_ms"]
    assert sum(stats[-1]["payload"]["histogram"].values()) == 5000


def test_min_duration_filter(hub, tmp_path):
    run_id, p = run_traced(hub, tmp_path, SAMPLED, "mindur", SIGHTLINE_MIN_DURATION_MS="10")
    assert p.returncode == 0, p.stderr
    calls = hub.events(run_id, source_events="call")
    names = [short(c) for c in calls]
    # A 0.0x ms call passes the 10 ms filter only when the scheduler stalls it; on a loaded
    # machine a few of the 5,000 are. Without the filter all 5,000 would be here.
    assert "slow" in names and names.count("tiny") < 50, names.count("tiny")


UNHANDLED = r'''
def explode(token):
    api_key = "abc"
    raise RuntimeError("kaboom")
explode("t0k")
'''


def test_unhandled_exception_and_exit_status(hub, tmp_path):
    run_id, p = run_traced(hub, tmp_path, UNHANDLED, "unhandled")
    assert p.returncode == 1 and "RuntimeError: kaboom" in p.stderr
    evs = hub.events(run_id)
    un = [e for e in evs if e["source_event"] == "unhandled_exception"]
    assert len(un) == 1
    top = un[0]["payload"]["stack"][-1]
    assert top["function"] == "explode" and top["locals"] == {"token": "[REDACTED]", "api_key": "[REDACTED]"}
    ex = next(e for e in evs if e["source_event"] == "process_exit")
    assert ex["status"] == "failed" and ex["metrics"]["exit_code"] == 1


def test_offline_file(tmp_path):
    """Offline mode writes NDJSON that the hub's import reads (checked in test_yaml)."""
    out = tmp_path / "events.ndjson"
    run_id, p = run_traced(None, tmp_path, SAMPLED, "offline", SIGHTLINE_OUTPUT=str(out), SIGHTLINE_MAX_DETAIL_PER_S="0")
    assert p.returncode == 0, p.stderr
    import json

    evs = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(1 for e in evs if e["source_event"] == "call" and short(e) == "tiny") == 5000
    assert evs[0]["source_event"] == "process_start" and evs[0]["run_id"] == run_id


FORKING = r'''
import multiprocessing as mp, os, threading, time

def square(x):
    return x * x

def busy():
    # Background threads keep the agent's locks busy while the parent forks.
    end = time.time() + 1.5
    while time.time() < end:
        square(3)

def main():
    threads = [threading.Thread(target=busy) for _ in range(2)]
    for t in threads:
        t.start()
    ctx = mp.get_context("fork")
    pool = ctx.Pool(3)
    print(sum(pool.map(square, range(100))))
    # close/join lets workers leave normally (os._exit, which the agent flushes); the context
    # manager would SIGTERM them, and a killed process reports nothing.
    pool.close()
    pool.join()
    pid = os.fork()
    if pid == 0:
        square(7)
        os._exit(0)
    os.waitpid(pid, 0)
    for t in threads:
        t.join()

if __name__ == "__main__":
    main()
'''


def test_fork_is_safe_and_children_report(hub, tmp_path):
    # The busy threads record calls for 1.5 s: the exit flush is long (conftest gives 30 s).
    run_id, p = run_traced(hub, tmp_path, FORKING, "fork", timeout=90)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "328350"
    page = hub.get("/api/v1/search", sources="python", source_events="process_start", limit=500)
    children = [e for e in page["events"] if e["parent_session_id"] == f"{run_id}:main"]
    assert len(children) == 4, children  # three pool workers and one os.fork child
    exits = [e for c in children for e in hub.events(c["run_id"], source_events="process_exit")]
    assert len(exits) == 4 and all(e["metrics"]["exit_code"] == 0 for e in exits)
    assert all(c["payload"].get("forked") for c in children)
    # Pool workers exit through atexit-less paths, so their calls show in heartbeats/stats only
    # if they lived long enough; the parent's own calls are all there.
    stats = [e for e in hub.events(run_id, source_events="function_stats") if e["entity_id"] == "__main__.square"]
    assert stats and stats[-1]["metrics"]["count"] > 0


def test_hub_down_spools_then_delivers_later(hub, tmp_path):
    """With no hub the agent never blocks the program; at exit it spools what it could not
    send, and the next traced process delivers the spool."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()  # nothing listens there now
    spool = tmp_path / "spool"
    run_id, p = run_traced(None, tmp_path, SAMPLED, "spool", SIGHTLINE_URL=dead, SIGHTLINE_SPOOL_DIR=str(spool),
                           SIGHTLINE_FLUSH_TIMEOUT_S="0.5", SIGHTLINE_MAX_DETAIL_PER_S="0")
    assert p.returncode == 0, p.stderr
    assert "spooled to" in p.stderr
    files = list(spool.glob("python-*.ndjson"))
    assert len(files) == 1
    spooled = files[0].read_text().splitlines()
    assert sum('"source_event":"call"' in line for line in spooled) == 5002  # 5000 tiny, slow, <module>
    # The next process, with the hub up, delivers them.
    deliver_spool(hub, tmp_path, spool, "spool-next")
    evs = hub.wait_events(run_id, lambda evs: len(evs) >= len(spooled), timeout=60)
    assert len(evs) == len(spooled)
    assert not list(spool.iterdir())



REPR = r"""
def helper():
    return "from helper"

class Reentrant:
    def __repr__(self):
        return "Reentrant(" + helper() + ")"   # traced code called from inside the tracer

class Broken:
    def __repr__(self):
        raise ValueError("nope")

def takes(a, b, api_key):
    return [a, b]

takes(Reentrant(), Broken(), "sk-secret")
"""


def test_full_repr_mode_is_safe(hub, tmp_path):
    run_id, p = run_traced(hub, tmp_path, REPR, "repr", SIGHTLINE_REPR="1")
    assert p.returncode == 0, p.stderr
    calls = hub.events(run_id, source_events="call")
    (t,) = [c for c in calls if short(c) == "takes"]
    args = t["payload"]["args"]
    assert args["a"] == "Reentrant(from helper)"
    assert args["b"].startswith("<repr failed")
    assert args["api_key"] == "[REDACTED]"
    assert t["payload"]["return"] == "<repr failed: ValueError>"  # the list repr hits Broken
    # helper ran inside the tracer (for repr) and is not reported as a call of the program;
    # only __repr__'s own call from the program would be.
    assert [short(c) for c in calls if short(c) == "helper"] == []


CHAIN = r'''
def c():
    raise ValueError("deep")

def b():
    c()

def a():
    b()

def top():
    try:
        a()
    except ValueError:
        return "handled"

def swallowed():
    # The exception ends in C code (hasattr) without reaching another Python frame.
    class Weird:
        def __getattr__(self, name):
            raise AttributeError(name)
    return hasattr(Weird(), "x")

top()
swallowed()
'''


def test_exception_through_several_frames(hub, tmp_path):
    run_id, p = run_traced(hub, tmp_path, CHAIN, "chain")
    assert p.returncode == 0, p.stderr
    calls = {short(c): c for c in hub.events(run_id, source_events="call")}
    for name in ("a", "b", "c"):
        assert calls[name]["status"] == "failed"
        assert calls[name]["payload"]["exception"] == "ValueError", name
    assert calls["top"]["status"] == "success" and calls["top"]["payload"]["return"] == "handled"
    assert calls["swallowed"]["payload"]["return"] is False
    getattr_call = calls["__getattr__"]
    assert getattr_call["status"] == "failed"
    excs = hub.events(run_id, entity_types="exception")
    if sys.version_info >= (3, 12):
        assert getattr_call["payload"]["exception"] == "AttributeError"
        assert sorted(e["entity_id"] for e in excs) == ["AttributeError", "ValueError"]
    else:
        # 3.11's profile hook never sees an exception that no Python frame receives (docs/PYTHON.md).
        assert getattr_call["payload"]["exception"] is None
        assert [e["entity_id"] for e in excs] == ["ValueError"]
    (v,) = [e for e in excs if e["entity_id"] == "ValueError"]
    assert [f["function"] for f in v["payload"]["stack"][-4:]] == ["top", "a", "b", "c"]


def test_agent_does_not_import_asyncio_for_programs_without_it(hub, tmp_path):
    """The task-parenting hook waits for asyncio to be imported; it never imports it."""
    _, p = run_traced(hub, tmp_path, "import sys\nprint('asyncio' in sys.modules)\n", "no-asyncio")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "False"
