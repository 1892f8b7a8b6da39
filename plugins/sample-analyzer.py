#!/usr/bin/env python3
"""Sample sightline plugin: JSON-RPC 2.0 over stdio, one request per line.

The hub starts the command, writes one request line such as
  {"jsonrpc": "2.0", "id": 1, "method": "analyze", "params": {"events": [...], "context": {...}}}
and reads one response line. It returns a short analysis of the selected events: the slowest
calls, an error summary and per-session token/cost totals. Standard library only.
"""
import json
import sys
from collections import Counter, defaultdict


def analyze(params):
    events = params.get("events") or []
    timed = [e for e in events if isinstance(e.get("duration_ms"), (int, float))]
    timed.sort(key=lambda e: e["duration_ms"], reverse=True)
    errors = [e for e in events if e.get("severity") == "error" or e.get("status") == "failed"]
    by_title = Counter(e.get("title", "?") for e in errors)
    cost = defaultdict(float)
    tokens = defaultdict(int)
    for e in events:
        m = e.get("metrics") or {}
        who = e.get("agent") or e.get("session_id") or "?"
        cost[who] += float(m.get("cost_usd") or 0)
        tokens[who] += int(m.get("input_tokens") or 0) + int(m.get("output_tokens") or 0)

    def label(e):
        # Python calls are named by their function; tools and steps by title and summary.
        if e.get("entity_type") == "call" and e.get("entity_id"):
            return e["entity_id"]
        title = e.get("title") or "?"
        summary = (e.get("summary") or "")[:60]
        return f"{title}: {summary}" if summary else title

    sections = []
    if timed:
        sections.append({
            "title": "Slowest",
            "items": [f"{e['duration_ms']:.1f} ms  {label(e)}  (#{e.get('seq')})" for e in timed[:5]],
        })
    if errors:
        sections.append({
            "title": "Errors",
            "items": [f"{n}×  {t}" for t, n in by_title.most_common(5)],
        })
    if any(cost.values()) or any(tokens.values()):
        sections.append({
            "title": "Tokens and cost by agent",
            "items": [f"{a}: {tokens[a]} tokens, ${cost[a]:.4f}" for a in sorted(tokens, key=lambda a: -cost[a])],
        })
    parts = [f"{len(events)} events"]
    if timed:
        parts.append(f"slowest: {label(timed[0])} at {timed[0]['duration_ms']:.1f} ms")
    parts.append(f"{len(errors)} error{'s' if len(errors) != 1 else ''}" + (f", most frequent: {by_title.most_common(1)[0][0]}" if errors else ""))
    return {
        "summary": "; ".join(parts) + ".",
        "slowest": [{"seq": e.get("seq"), "name": label(e), "duration_ms": e["duration_ms"]} for e in timed[:5]],
        "error_count": len(errors),
        "sections": sections,
    }


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
        except json.JSONDecodeError as exc:
            resp = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": f"parse error: {exc}"}}
        else:
            rid = req.get("id")
            method = req.get("method")
            if method == "analyze":
                resp = {"jsonrpc": "2.0", "id": rid, "result": analyze(req.get("params") or {})}
            elif method == "describe":
                resp = {"jsonrpc": "2.0", "id": rid, "result": {"name": "sample-analyzer", "description": "slowest calls, error summary, cost by agent"}}
            else:
                resp = {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"unknown method {method!r}"}}
        sys.stdout.write(json.dumps(resp) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
