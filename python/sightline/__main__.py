"""``python -m sightline [options] script.py [args]`` or ``python -m sightline [options] -m
module [args]``: runs a program with the agent started first, and reports its exit status."""

from __future__ import annotations

import argparse
import os
import runpy
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sightline",
        description="Run a Python program traced by sightline (events go to SIGHTLINE_URL).",
    )
    p.add_argument("--url", help="hub URL (default $SIGHTLINE_URL or http://127.0.0.1:4517)")
    p.add_argument("--token", help="hub token (default $SIGHTLINE_TOKEN)")
    p.add_argument(
        "--ca-file", help="PEM CA certificate for an https:// hub with a private CA (default $SIGHTLINE_CA_FILE)"
    )
    p.add_argument("--output", help="offline mode: write NDJSON events to this file")
    p.add_argument("--include", action="append", help="module glob to trace (repeatable)")
    p.add_argument("--exclude", action="append", help="module glob not to trace (repeatable)")
    p.add_argument("--min-duration-ms", type=float)
    p.add_argument("--max-detail-per-s", type=float, help="0 = no cap")
    p.add_argument("--no-trace", action="store_true", help="start with tracing off (switch on live)")
    p.add_argument("-m", dest="module", help="run a library module as a script")
    p.add_argument("args", nargs=argparse.REMAINDER)
    ns = p.parse_args(argv)
    if not ns.module and not ns.args:
        p.error("a script (or -m module) to run is required")

    import sightline

    if ns.module:
        sys.argv = [ns.module] + ns.args
    else:
        sys.argv = list(ns.args)
        sys.path.insert(0, os.path.dirname(os.path.abspath(ns.args[0])))
    agent = sightline.start(
        url=ns.url,
        token=ns.token,
        ca_file=ns.ca_file,
        output=ns.output,
        include=ns.include,
        exclude=ns.exclude,
        min_duration_ms=ns.min_duration_ms,
        max_detail_per_s=ns.max_detail_per_s,
        trace=False if ns.no_trace else None,
    )
    code = 0
    try:
        if ns.module:
            runpy.run_module(ns.module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(ns.args[0], run_name="__main__")
    except SystemExit as e:
        code = _status(e.code)
        agent.exit_code = code
        raise
    except BaseException:
        agent.unhandled = True
        raise
    agent.exit_code = code
    return code


def _status(c) -> int:
    if c is None:
        return 0
    if isinstance(c, int):
        return c
    return 1


if __name__ == "__main__":
    sys.exit(main())
