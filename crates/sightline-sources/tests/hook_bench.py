"""Times `sightline hook` round trips against a running hub: hook_bench.py BINARY RUNS (SIGHTLINE_URL, default port 47123)."""
import json, subprocess, sys, time, statistics, os
b, n = sys.argv[1], int(sys.argv[2])
env = dict(os.environ, SIGHTLINE_URL=os.environ.get("SIGHTLINE_URL", "http://127.0.0.1:47123"), SIGHTLINE_SPOOL_DIR=os.environ.get("SIGHTLINE_SPOOL_DIR", "/tmp/hb/spool"))
times = []
for i in range(n):
    p = json.dumps({"session_id": "bench", "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "ls"}, "tool_use_id": f"toolu_{i}", "cwd": "/tmp"}).encode()
    t = time.perf_counter()
    subprocess.run([b, "hook"], input=p, env=env, stdout=subprocess.DEVNULL)
    times.append((time.perf_counter() - t) * 1000)
times.sort()
print(f"runs {n}: median {statistics.median(times):.2f} ms, p90 {times[int(n*0.9)]:.2f} ms, p99 {times[int(n*0.99)]:.2f} ms, min {times[0]:.2f} ms")
