"""Parents asyncio tasks to the call that created them.

An event loop starts a task's coroutine from its own frames, so without help the coroutine's
parent call would be whatever traced frame runs the loop. ``BaseEventLoop.create_task`` (used by
``asyncio.create_task``, ``gather``, ``ensure_future`` and ``TaskGroup``) is wrapped to tell the
tracer which traced call created the coroutine; the tracer uses it when the coroutine starts.

It must never change what ``create_task`` does or returns, and must not import asyncio into a
program that does not use it: when asyncio is not loaded yet, a one-shot import hook patches it
as it loads.
"""

from __future__ import annotations

import sys
from typing import Any

from . import _native

_MODULE = "asyncio.base_events"


def install() -> None:
    module = sys.modules.get(_MODULE)
    if module is not None:
        _patch(module)
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


def _patch(module: Any) -> None:
    loop_class = getattr(module, "BaseEventLoop", None)
    original = getattr(loop_class, "create_task", None)
    if original is None or getattr(original, "__sightline__", False):
        return

    def create_task(self, coro, *args, **kwargs):
        frame = getattr(coro, "cr_frame", None)
        if frame is not None:
            try:
                _native.adopt(frame)
            except Exception:
                pass
        return original(self, coro, *args, **kwargs)

    create_task.__sightline__ = True
    create_task.__wrapped__ = original
    create_task.__name__ = original.__name__
    create_task.__qualname__ = original.__qualname__
    create_task.__doc__ = original.__doc__
    loop_class.create_task = create_task


class _PatchOnImport:
    """A meta-path finder that only watches for ``asyncio.base_events``: it lets the normal
    finders locate it, patches the module after it executes, and removes itself."""

    def find_spec(self, name, path=None, target=None):
        if name != _MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec

        def exec_and_patch(module):
            exec_module(module)
            try:
                sys.meta_path.remove(self)
            except ValueError:
                pass
            _patch(module)

        loader.exec_module = exec_and_patch
        return spec
