"""Tracing overhead, side by side in one run: untraced, cProfile, viztracer and sightline on a
recursive fib and on an ordinary workload, for each Python (3.11, 3.12, 3.13 venvs built by
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
    best = float("inf")
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best

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
else:
    raise SystemExit(f"unknown mode {MODE}")
print(json.dumps({"best_s": best}))
'''

MODES = ("untraced", "cprofile", "viztracer", "sightline")


def interpreters() -> list[tuple[str, str]]:
    out = []
    for v in ("3.11", "3.12", "3.13"):
        py = os.path.join(VENVS, v, "bin", "python")
        if os.path.exists(py):
            out.append((v, py))
    return out


def measure(py: str, mode: str, workload: str, repeat: int, fib_n: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")}
        env["BENCH_OUT"] = os.path.join(d, "events.ndjson")
        p = subprocess.run(
            [py, "-c", WORKER, mode, workload, str(repeat), str(fib_n)],
            env=env, capture_output=True, text=True, cwd=d, timeout=900,
        )
        if p.returncode != 0:
            raise RuntimeError(f"{py} {mode} {workload} failed:\n{p.stderr[-2000:]}")
        return json.loads(p.stdout.strip().splitlines()[-1])["best_s"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="runs per process (best is kept)")
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per mode, interleaved (best is kept)")
    ap.add_argument("--fib", type=int, default=25)
    ap.add_argument("--python", action="append", help="only these versions (3.11, 3.12, 3.13)")
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
        f"per mode, so that load from elsewhere hits every mode alike); fib({a.fib}).\n"
    )
    print("| Python | workload | untraced | cProfile | viztracer | sightline |")
    print("|---|---|---|---|---|---|")
    for v, py in pys:
        for workload in ("fib", "ordinary"):
            t = {m: float("inf") for m in MODES}
            for _ in range(a.rounds):
                for m in MODES:
                    t[m] = min(t[m], measure(py, m, workload, a.repeat, a.fib))
            base = t["untraced"]
            cells = [f"{base * 1000:.1f} ms"] + [f"{t[m] / base:.2f}× ({t[m] * 1000:.0f} ms)" for m in MODES[1:]]
            name = f"fib({a.fib})" if workload == "fib" else "ordinary"
            print(f"| {v} | {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
