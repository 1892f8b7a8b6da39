"""`sightline run` (Python and any other program) and `sightline attach`, through the real CLI
binary and a real hub; real programs from PyPI (pyperformance benchmarks) under the tracer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import hub_binary, new_run_id, short


def cli_env(hub, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")}
    env["SIGHTLINE_URL"] = hub.url
    env["SIGHTLINE_FLUSH_TIMEOUT_S"] = "30"  # as in conftest.agent_env: loaded machines
    env.update(extra)
    return env


def sightline(hub, *args, timeout=300, cwd=None, **extra):
    return subprocess.run(
        [str(hub_binary()), *args], env=cli_env(hub, **extra), capture_output=True, text=True,
        timeout=timeout, cwd=cwd,
    )


def test_run_python_program_chains_sitecustomize(hub, tmp_path):
    own = tmp_path / "own_site"
    own.mkdir()
    (own / "sitecustomize.py").write_text(
        "import os\nopen(os.environ['MARKER'], 'w').write('project sitecustomize ran')\n"
    )
    (tmp_path / "app.py").write_text(
        "import sys\n"
        "def greet(name):\n    return f'hello {name}'\n"
        "print(greet(sys.argv[1]))\n"
        "sys.exit(7)\n"
    )
    run_id = new_run_id("cli-py")
    marker = tmp_path / "marker"
    p = sightline(hub, "run", "--run-id", run_id, "--", sys.executable, "app.py", "world",
                  cwd=tmp_path, PYTHONPATH=str(own), MARKER=str(marker))
    assert p.returncode == 7, p.stderr
    assert p.stdout == "hello world\n"
    assert marker.read_text() == "project sitecustomize ran"
    evs = hub.events(run_id)
    (greet,) = [e for e in evs if e["source_event"] == "call" and short(e) == "greet"]
    assert greet["payload"]["args"] == {"name": "world"} and greet["payload"]["return"] == "hello world"
    ex = next(e for e in evs if e["source_event"] == "process_exit")
    assert ex["metrics"]["exit_code"] == 7 and ex["status"] == "failed"


def test_run_follows_child_python_processes(hub, tmp_path):
    (tmp_path / "parent.py").write_text(
        "import subprocess, sys\n"
        "def spawn():\n"
        "    return subprocess.run([sys.executable, 'child.py'], capture_output=True, text=True).stdout\n"
        "print(spawn(), end='')\n"
    )
    (tmp_path / "child.py").write_text("def child_work():\n    return 41 + 1\nprint(child_work())\n")
    run_id = new_run_id("cli-parent")
    p = sightline(hub, "run", "--run-id", run_id, "--", sys.executable, "parent.py", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout == "42\n", p.stderr
    page = hub.get("/api/v1/search", sources="python", source_events="process_start", limit=200)
    children = [e for e in page["events"] if e["parent_session_id"] == f"{run_id}:main"]
    assert len(children) == 1, "the child Python process was not traced"
    child_run = children[0]["run_id"]
    assert child_run != run_id
    calls = hub.events(child_run, source_events="call")
    assert [c["payload"]["return"] for c in calls if short(c) == "child_work"] == [42]


def test_run_any_program(hub, tmp_path):
    run_id = new_run_id("cli-sh")
    script = "echo hello; echo oops >&2; i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 1.2; exit 3"
    p = sightline(hub, "run", "--run-id", run_id, "--", "sh", "-c", script)
    assert p.returncode == 3
    assert p.stdout == "hello\n" and p.stderr == "oops\n"
    evs = hub.events(run_id)
    assert all(e["source"] == "process" for e in evs)
    logs = [e for e in evs if e["entity_type"] == "log"]
    assert {(e["payload"]["stream"], e["payload"]["text"], e["severity"]) for e in logs} == {
        ("stdout", "hello", "info"),
        ("stderr", "oops", "warn"),
    }
    res = [e for e in evs if e["source_event"] == "resources"]
    assert res and all(e["metrics"]["rss_bytes"] > 0 for e in res)
    assert max(e["metrics"]["cpu_seconds"] for e in res) > 0
    (end,) = [e for e in evs if e["source_event"] == "process_exit"]
    assert end["status"] == "failed" and end["metrics"]["exit_code"] == 3 and end["duration_ms"] >= 1200
    assert evs[0]["source_event"] == "process_start" and evs[0]["payload"]["argv"][:2] == ["sh", "-c"]


def test_run_unknown_command(hub):
    p = sightline(hub, "run", "--", "definitely-not-a-command-xyz")
    assert p.returncode == 2 and "command not found" in p.stderr


def _bench_dir() -> Path:
    import pyperformance

    return Path(pyperformance.__file__).parent / "data-files" / "benchmarks"


DRIVER = r'''
import runpy, sys
b = sys.argv[1]
nq = runpy.run_path(f"{b}/bm_nqueens/run_benchmark.py", run_name="nq")
fk = runpy.run_path(f"{b}/bm_fannkuch/run_benchmark.py", run_name="fk")
ri = runpy.run_path(f"{b}/bm_richards/run_benchmark.py", run_name="ri")
solutions = list(nq["n_queens"](6))
print("nqueens", len(solutions), solutions[:3])
print("fannkuch", fk["fannkuch"](7))
print("richards", ri["Richards"]().run(2))
'''


def test_real_programs_unchanged_results(hub, tmp_path):
    """pyperformance's benchmark code gives the same results traced as untraced."""
    (tmp_path / "driver.py").write_text(DRIVER)
    bench = str(_bench_dir())
    plain = subprocess.run([sys.executable, "driver.py", bench], cwd=tmp_path, capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")})
    assert plain.returncode == 0, plain.stderr
    run_id = new_run_id("pyperf-results")
    traced = sightline(hub, "run", "--run-id", run_id, "--include", "nq,fk,ri", "--",
                       sys.executable, "driver.py", bench, cwd=tmp_path)
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout == plain.stdout and "nqueens 4" in plain.stdout
    stats = hub.events(run_id, source_events="function_stats")
    names = {e["entity_id"] for e in stats}
    assert {"nq.n_queens", "fk.fannkuch", "ri.Richards.run"} <= names, names


@pytest.mark.parametrize("bench", ["bm_nqueens", "bm_richards", "bm_fannkuch"])
def test_pyperformance_benchmarks_run_traced(hub, tmp_path, bench):
    """The benchmark programs themselves (pyperf runner and its worker process) under `run`."""
    run_id = new_run_id(bench)
    path = _bench_dir() / bench / "run_benchmark.py"
    # pyperf starts its worker with a scrubbed environment unless told which variables to keep;
    # the benchmark lives in site-packages, which is not traced unless included.
    keep = "PYTHONPATH,SIGHTLINE_URL,SIGHTLINE_PARENT_SESSION_ID,SIGHTLINE_INCLUDE"
    p = sightline(hub, "run", "--run-id", run_id, "--include", "__main__", "--",
                  sys.executable, str(path), "--debug-single-value",
                  f"--inherit-environ={keep}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    name = bench.removeprefix("bm_")
    assert f"{name}:" in p.stdout
    page = hub.get("/api/v1/search", sources="python", source_events="process_start", limit=500)
    runs = {run_id} | {e["run_id"] for e in page["events"] if e["parent_session_id"] == f"{run_id}:main"}
    assert len(runs) >= 2, "pyperf's worker process was not traced"
    calls = [c for r in runs for c in hub.events(r, source_events="function_stats")]
    assert any(c["payload"]["file"] == str(path) for c in calls), "no benchmark function traced"
    exits = [e for r in runs for e in hub.events(r, source_events="process_exit")]
    assert len(exits) == len(runs) and all(e["metrics"]["exit_code"] == 0 for e in exits)


TARGET = r'''
import os, sys, time
def work(i):
    return i + 1
open("ready", "w").write(str(os.getpid()))
deadline = time.time() + 90
i = 0
while not os.path.exists("stop") and time.time() < deadline:
    i = work(i)
    time.sleep(0.005)
print("target finished", i > 0)
'''


def test_attach_to_running_process(hub, tmp_path):
    (tmp_path / "target.py").write_text(TARGET)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")}
    target = subprocess.Popen([sys.executable, "target.py"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):
            if (tmp_path / "ready").exists():
                break
            time.sleep(0.05)
        run_id = new_run_id("attach")
        p = sightline(hub, "attach", str(target.pid), "--run-id", run_id, timeout=120)
        assert p.returncode == 0, p.stderr + p.stdout
        # 3.14+ loads the agent with sys.remote_exec, older versions through gdb.
        method = "sys.remote_exec" if sys.version_info >= (3, 14) else "gdb"
        assert f"attached to {target.pid} (Python {sys.version_info[0]}.{sys.version_info[1]}, {method})" in p.stdout
        evs = hub.wait_events(run_id, lambda evs: sum(e["source_event"] == "call" for e in evs) >= 10)
        start = [e for e in evs if e["source_event"] == "process_start"]
        assert len(start) == 1 and start[0]["pid"] == target.pid
        works = [e for e in evs if e["source_event"] == "call" and short(e) == "work"]
        assert len(works) >= 10 and all(w["pid"] == target.pid for w in works)
    finally:
        (tmp_path / "stop").write_text("")
        out, err = target.communicate(timeout=60)
    assert target.returncode == 0, err
    assert out.strip() == "target finished True"
    ex = hub.wait_events(run_id, lambda evs: len(evs) > 0, source_events="process_exit")
    assert ex and ex[0]["metrics"]["exit_code"] == 0


def test_attach_refuses_a_non_python_process(hub):
    p = subprocess.Popen(["sleep", "30"])
    try:
        r = sightline(hub, "attach", str(p.pid))
        assert r.returncode == 2 and "does not look like a Python interpreter" in r.stderr
    finally:
        p.kill()
        p.wait()


def test_run_passes_sigterm_on_and_reports_the_exit(hub, tmp_path):
    run_id = new_run_id("cli-term")
    script = 'trap "echo got TERM; exit 5" TERM; echo ready; while :; do sleep 0.1; done'
    p = subprocess.Popen([str(hub_binary()), "run", "--run-id", run_id, "--", "sh", "-c", script],
                         env=cli_env(hub), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    # No pause before the signal: `run` sets up its handling before it starts the program, so a
    # Ctrl-C as soon as the program runs must not kill it (a thread that set it up after the start
    # left a window, wider on a loaded machine).
    p.send_signal(2)  # SIGINT to `run` alone: it must keep waiting for the program
    time.sleep(0.3)
    assert p.poll() is None
    p.terminate()  # SIGTERM: passed on to the program
    out, err = p.communicate(timeout=30)
    assert p.returncode == 5 and out == "got TERM\n", err
    (end,) = hub.events(run_id, source_events="process_exit")
    assert end["metrics"]["exit_code"] == 5


def test_run_passes_sigterm_on_to_a_traced_python_program(hub, tmp_path):
    # The Python path of `run` (the agent traces the program): the same signal handling as any
    # program's. Before, it had none: SIGINT ended `run`, and SIGTERM ended `run` and left the
    # program running on its own.
    run_id = new_run_id("cli-term-py")
    script = tmp_path / "term.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "def term(*_):\n"
        "    print('got TERM', flush=True)\n"
        "    sys.exit(5)\n"
        "signal.signal(signal.SIGTERM, term)\n"
        "print('ready', os.getpid(), flush=True)\n"
        "while True:\n"
        "    time.sleep(0.1)\n"
    )
    p = subprocess.Popen([str(hub_binary()), "run", "--run-id", run_id, "--", sys.executable, str(script)],
                         env=cli_env(hub), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = p.stdout.readline().split()
    assert ready[:1] == ["ready"], p.stderr.read() if p.poll() is not None else ready
    program = int(ready[1])
    try:
        p.send_signal(2)  # SIGINT to `run` alone: it must keep waiting for the program
        time.sleep(0.3)
        assert p.poll() is None
        p.terminate()  # SIGTERM: passed on to the program
        out, err = p.communicate(timeout=30)
    finally:
        # A `run` that died first leaves the program behind: end it, by its pid.
        try:
            os.kill(program, 9)
        except ProcessLookupError:
            pass
    assert p.returncode == 5 and out == "got TERM\n", err
    ends = hub.wait_events(run_id, lambda evs: len(evs) > 0, source_events="process_exit")
    assert [e["metrics"]["exit_code"] for e in ends] == [5], ends
