"""Loaded by Python at start-up when ``sightline run`` (or a traced parent) put this directory
first on PYTHONPATH: starts the sightline agent, then chains to any other ``sitecustomize``
further down ``sys.path`` (as opentelemetry-instrument does), so a project's own
sitecustomize still runs.
"""

import os
import sys


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    saved = list(sys.path)
    mine = sys.modules.pop("sitecustomize", None)
    try:
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
        import importlib

        try:
            importlib.import_module("sitecustomize")
        except ImportError as e:
            if getattr(e, "name", None) != "sitecustomize":
                raise
    finally:
        sys.path[:] = saved
        if mine is not None:
            sys.modules["sitecustomize"] = mine


def _start() -> None:
    if os.environ.get("SIGHTLINE_DISABLE", "").lower() in ("1", "true", "yes"):
        return
    try:
        import sightline
    except ImportError as e:
        if os.environ.get("SIGHTLINE_DEBUG"):
            sys.stderr.write(f"sightline: agent not importable in {sys.executable}: {e}\n")
        return
    try:
        sightline.start()
    except Exception as e:  # a broken configuration must not stop the program
        sys.stderr.write(f"sightline: not tracing: {e}\n")


_start()
_chain()
