"""Which code is traced: the user's code by default (not the standard library, not
site-packages, not sightline itself), then include/exclude module globs.

``classify`` runs once per code object (the Rust side caches the answer and, on 3.12+,
disables the events of untraced code so that it costs nothing afterwards).
"""

from __future__ import annotations

import dis
import fnmatch
import os
import site
import sys
import sysconfig

_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08
_SELF_DIR = os.path.dirname(os.path.abspath(__file__))


def _library_dirs() -> tuple[str, ...]:
    dirs = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            p = sysconfig.get_paths().get(key)
        except Exception:
            p = None
        if p:
            dirs.add(os.path.realpath(p))
    for base in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        dirs.add(os.path.realpath(os.path.join(base, "lib")))
    try:
        dirs.update(os.path.realpath(p) for p in site.getsitepackages())
    except Exception:
        pass
    try:
        dirs.add(os.path.realpath(site.getusersitepackages()))
    except Exception:
        pass
    return tuple(sorted(d.rstrip(os.sep) + os.sep for d in dirs if d))


class Filter:
    """A module filter: ``include``/``exclude`` are fnmatch globs over module names."""

    def __init__(self, include: list[str] | None = None, exclude: list[str] | None = None):
        self.include = list(include or [])
        self.exclude = list(exclude or []) + ["sightline", "sightline.*"]
        self._libs = _library_dirs()
        self._real: dict[str, str] = {}

    def _is_library(self, filename: str) -> bool:
        if filename.startswith("<"):
            # <frozen importlib._bootstrap> and friends are the standard library; code from
            # exec/compile ("<string>", "<stdin>") is the user's.
            return filename.startswith("<frozen")
        real = self._real.get(filename)
        if real is None:
            real = os.path.realpath(filename)
            self._real[filename] = real
        if real.startswith(_SELF_DIR + os.sep):
            return True
        return real.startswith(self._libs)

    def traced(self, module: str, filename: str) -> bool:
        if any(fnmatch.fnmatchcase(module, g) for g in self.exclude):
            return False
        if os.path.realpath(filename).startswith(_SELF_DIR + os.sep):
            return False
        if self.include:
            return any(fnmatch.fnmatchcase(module, g) for g in self.include)
        if filename.startswith("<") and not filename.startswith("<frozen"):
            # exec/compile code: the user's when run as the main program or from a user module
            # (libraries make such code too, e.g. namedtuple's generated methods).
            return module == "__main__" or module in ("", "<run_path>")
        return not self._is_library(filename)

    def classify(self, code, globals_):
        """Called from Rust on first sight of a code object. Returns
        (traced, module, qualname, file, first line, flags, argument names, yield offsets)."""
        module = ""
        if isinstance(globals_, dict):
            m = globals_.get("__name__")
            if isinstance(m, str):
                module = m
        filename = code.co_filename
        traced = self.traced(module, filename)
        nargs = code.co_argcount + code.co_kwonlyargcount
        if code.co_flags & _CO_VARARGS:
            nargs += 1
        if code.co_flags & _CO_VARKEYWORDS:
            nargs += 1
        argnames = code.co_varnames[:nargs]
        yields: list[int] = []
        if traced and sys.version_info < (3, 12) and code.co_flags & (0x20 | 0x80 | 0x100 | 0x200):
            yields = [i.offset for i in dis.get_instructions(code) if i.opname == "YIELD_VALUE"]
        return (traced, module, code.co_qualname, filename, code.co_firstlineno, code.co_flags, argnames, yields)
