"""Tracing overhead, side by side in one run: untraced, cProfile, viztracer and sightline on a
recursive fib and on an ordinary workload, for each Python (3.11 to 3.14 venvs built by
run-tests.sh). Every mode runs in fresh processes, interleaved over rounds; each figure is the best run.

    python/bench/overhead.py            # all interpreters found under python/target/venvs
    python/bench/overhead.py --repeat 7 --fib 27

Prints a Markdown table (the one in docs/BENCHMARKS.md, "Python tracing overhead").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
VENVS = os.path.join(os.path.dirname(HERE), "target", "venvs")

WORKER = r'''
import json, os, re, sys, time

MODE, WORKLOAD, REPEAT, FIB_N = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

WORD = re.compile(r"[a-z]+")

class Record:
    def __init__(self, i):
        self.id = i
        self.text = " ".join(("alpha beta gamma delta epsilon zeta eta theta iota kappa " * 3).split()[i % 7:])
        self.tags = {"k%d" % j: j * i for j in range(8)}

    def words(self):
        return WORD.findall(self.text)

    def to_json(self):
        return json.dumps({"id": self.id, "text": self.text, "tags": self.tags}, sort_keys=True)

def count_words(records):
    counts = {}
    for r in records:
        for w in r.words():
            counts[w] = counts.get(w, 0) + 1
    return counts

def encode_all(records):
    return [r.to_json() for r in records]

def decode_all(blobs):
    return sum(len(json.loads(b)["tags"]) for b in blobs)

def top(counts, n):
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

def ordinary():
    records = [Record(i) for i in range(2000)]
    counts = count_words(records)
    blobs = encode_all(records)
    total = decode_all(blobs)
    return top(counts, 5), total

def run():
    if WORKLOAD == "fib":
        return fib(FIB_N)
    return ordinary()

def timed():
    # Wall time, and the CPU time of this (the program's) thread: the second is what the
    # tracer costs the program itself, without the time other processes took the core away.
    best, best_cpu = float("inf"), float("inf")
    for _ in range(REPEAT):
        t0, c0 = time.perf_counter(), time.thread_time()
        run()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.thread_time() - c0)
    return best, best_cpu

if MODE == "untraced":
    best = timed()
elif MODE == "cprofile":
    import cProfile
    p = cProfile.Profile()
    p.enable()
    best = timed()
    p.disable()
elif MODE == "viztracer":
    from viztracer import VizTracer
    t = VizTracer(tracer_entries=5_000_000, verbose=0)
    t.start()
    best = timed()
    t.stop()
    t.clear()
elif MODE == "sightline":
    import sightline
    # Every call timed (per-function aggregates), detailed call events at the default cap,
    # events written by the Rust sender thread to a file.
    sightline.start(output=os.environ["BENCH_OUT"], control=False)
    best = timed()
    st = sightline.status()
    sightline.stop()
    assert st["calls"] > 0, st
elif MODE == "paired":
    # Tracing switched off and on in one process, alternating run by run: a pair of adjacent
    # runs sees the same machine, so its ratio is free of what shifts between processes and
    # moments (a busy sibling vCPU slows a thread by a third, even in its own CPU time). Off
    # means no sys.monitoring events at all (3.12+) or no profile function (3.11).
    import sightline
    agent = sightline.start(output=os.environ["BENCH_OUT"], control=False)
    ratios = []
    for i in range(REPEAT + 1):
        times = []
        for on in (False, True):
            agent.set_tracing(on)
            c0 = time.thread_time()
            run()
            times.append(time.thread_time() - c0)
        if i > 0:  # the first pair classifies every code object: warm-up
            ratios.append(times[1] / times[0])
    sightline.stop()
    print(json.dumps({"ratios": ratios}))
    raise SystemExit(0)
else:
    raise SystemExit(f"unknown mode {MODE}")
print(json.dumps({"best_s": best[0], "best_cpu_s": best[1]}))
'''

MODES = ("untraced", "cprofile", "viztracer", "sightline")


def interpreters() -> list[tuple[str, str]]:
    out = []
    for v in ("3.11", "3.12", "3.13", "3.14"):
        py = os.path.join(VENVS, v, "bin", "python")
        if os.path.exists(py):
            out.append((v, py))
    return out


def measure(py: str, mode: str, workload: str, repeat: int, fib_n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")}
        env["BENCH_OUT"] = os.path.join(d, "events.ndjson")
        p = subprocess.run(
            [py, "-c", WORKER, mode, workload, str(repeat), str(fib_n)],
            env=env, capture_output=True, text=True, cwd=d, timeout=900,
        )
        if p.returncode != 0:
            raise RuntimeError(f"{py} {mode} {workload} failed:\n{p.stderr[-2000:]}")
        r = json.loads(p.stdout.strip().splitlines()[-1])
        return r["best_s"], r["best_cpu_s"]


def paired_ratios(py: str, workload: str, repeat: int, fib_n: int) -> list[float]:
    with tempfile.TemporaryDirectory() as d:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")}
        env["BENCH_OUT"] = os.path.join(d, "events.ndjson")
        p = subprocess.run(
            [py, "-c", WORKER, "paired", workload, str(repeat), str(fib_n)],
            env=env, capture_output=True, text=True, cwd=d, timeout=900,
        )
        if p.returncode != 0:
            raise RuntimeError(f"{py} paired {workload} failed:\n{p.stderr[-2000:]}")
        return json.loads(p.stdout.strip().splitlines()[-1])["ratios"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="runs per process (best is kept)")
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per mode, interleaved (best is kept)")
    ap.add_argument("--fib", type=int, default=25)
    ap.add_argument("--python", action="append", help="only these versions (3.11 to 3.14)")
    a = ap.parse_args()
    pys = [(v, p) for v, p in interpreters() if not a.python or v in a.python]
    if not pys:
        print("no interpreters under python/target/venvs: run python/run-tests.sh first", file=sys.stderr)
        return 2
    for v, py in pys:
        chk = subprocess.run([py, "-c", "import viztracer, sightline"], capture_output=True, text=True)
        if chk.returncode != 0:
            subprocess.run([py, "-m", "pip", "install", "-q", "viztracer"], check=True)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(
        f"Best of {a.rounds} interleaved rounds x {a.repeat} runs per figure (each round a fresh process "
        f"per mode, so that load from elsewhere hits every mode alike); fib({a.fib}). Ratios and times are "
        "CPU time of the program's thread (time.thread_time); the last column is sightline's ratio in "
        "wall time, which includes waiting for the core when the machine is loaded. \"sightline, paired\" "
        "is the median ratio of adjacent runs with tracing off and on in one process (the robust figure; "
        "its spread is the 10th-90th percentile).\n"
    )
    print("| Python | workload | untraced | cProfile | viztracer | sightline | sightline, wall | sightline, paired |")
    print("|---|---|---|---|---|---|---|---|")
    for v, py in pys:
        for workload in ("fib", "ordinary"):
            wall = {m: float("inf") for m in MODES}
            cpu = {m: float("inf") for m in MODES}
            for _ in range(a.rounds):
                for m in MODES:
                    w, c = measure(py, m, workload, a.repeat, a.fib)
                    wall[m], cpu[m] = min(wall[m], w), min(cpu[m], c)
            base = cpu["untraced"]
            cells = [f"{base * 1000:.1f} ms"] + [f"{cpu[m] / base:.2f}× ({cpu[m] * 1000:.0f} ms)" for m in MODES[1:]]
            cells.append(f"{wall['sightline'] / wall['untraced']:.2f}×")
            ratios = sorted(r for _ in range(a.rounds) for r in paired_ratios(py, workload, a.repeat, a.fib))
            q = lambda f: ratios[min(len(ratios) - 1, int(f * len(ratios)))]
            cells.append(f"{statistics.median(ratios):.2f}× ({q(0.1):.2f}–{q(0.9):.2f})")
            name = f"fib({a.fib})" if workload == "fib" else "ordinary"
            print(f"| {v} | {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
