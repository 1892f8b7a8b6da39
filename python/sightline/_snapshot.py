"""Safe snapshots of Python values and stacks for exception events.

A snapshot is plain JSON data (dicts, lists, strings, numbers). Making one never raises and
never loops: containers are walked with depth, breadth and length caps, cycles are cut, a
broken ``__repr__`` becomes a marker, and secrets are redacted by name (``password``,
``db_password``, ``user_token``, ``api_key``, ``authorization``, ``cookie``, private keys, ...)
and by value pattern (bearer tokens, private-key blocks, well-known key prefixes), at every
nesting level.
"""

from __future__ import annotations

import re

import types

REDACTED = "[REDACTED]"

_SECRET_NAME = re.compile(
    r"passw(or)?d|passwd|secret|token|api[_-]?key|authorization|cookie|private[_-]?key|credential|session[_-]?key|access[_-]?key",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----|^\s*(Bearer|Basic)\s+\S|^\s*(sk-|ghp_|gho_|github_pat_|xox[bp]-)\S|^\s*AKIA[0-9A-Z]{16}\s*$|^\s*eyJ[\w-]+\.[\w-]+\.[\w-]+",
)


def is_secret_name(name: object) -> bool:
    return isinstance(name, str) and bool(_SECRET_NAME.search(name))


def is_secret_value(value: object) -> bool:
    return isinstance(value, str) and bool(_SECRET_VALUE.search(value))


class Limits:
    """Caps for one snapshot."""

    def __init__(self, depth: int = 3, breadth: int = 20, length: int = 200, total: int = 32_000):
        self.depth = depth
        self.breadth = breadth
        self.length = length
        #: Rough budget of characters for the whole snapshot.
        self.budget = total


_TOKEN_CHAR = re.compile(r"[A-Za-z0-9+/=_.~%-]")
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9+/=_.~%-]+\Z")


def clip(s: str, n: int) -> str:
    """The first ``n`` characters of ``s``, without a token cut in two: when the cut falls
    inside a run of token characters that looks like a token's head, the head goes too. The hub redacts tokens by their
    whole shape (prefix, alphabet, length); the head of a cut token no longer has it and would
    be stored as it is (summary.rs's ``clip`` does the same on the hot path)."""
    if len(s) <= n:
        return s
    head = s[:n]
    if _TOKEN_CHAR.match(s, n):
        m = _TOKEN_TAIL.search(head)
        if m and _looks_like_token_head(m.group()):
            head = head[: m.start()]
    return head


def _looks_like_token_head(run: str) -> bool:
    """8 characters or more mixing digits and letters, or both cases (a random token's
    alphabet), unlike a long word, path or run of one letter, which are kept."""
    digit = any(c.isdigit() for c in run)
    alpha = any(c.isalpha() for c in run)
    return len(run) >= 8 and ((digit and alpha) or (run.lower() != run and run.upper() != run))


def _cut(s: str, n: int) -> str:
    return s if len(s) <= n else clip(s, n) + f"…[{len(s)} chars]"


def _type_name(v: object) -> str:
    t = type(v)
    mod = getattr(t, "__module__", "")
    return t.__qualname__ if mod in ("builtins", None, "") else f"{mod}.{t.__qualname__}"


def safe_repr(v: object, limit: int = 200) -> str:
    """``repr(v)``, truncated; a marker instead of an exception."""
    try:
        r = repr(v)
        if not isinstance(r, str):
            return f"<{_type_name(v)}: __repr__ returned {type(r).__name__}>"
    except BaseException as e:  # a broken __repr__ may raise anything
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        return f"<{_type_name(v)}: repr failed: {type(e).__name__}>"
    if is_secret_value(r) or is_secret_value(r.strip("'\"")):
        return REDACTED
    return _cut(r, limit)


def snapshot(v: object, lim: Limits | None = None, _depth: int = 0, _seen: set | None = None) -> object:
    """JSON-ready snapshot of ``v``."""
    lim = lim or Limits()
    seen = _seen if _seen is not None else set()
    if lim.budget <= 0:
        return "…[snapshot budget exhausted]"
    if v is None or isinstance(v, bool):
        return v
    if type(v) is int:
        lim.budget -= 8
        return v if -(2**53) < v < 2**53 else str(v)
    if type(v) is float:
        lim.budget -= 8
        return v if v == v and v not in (float("inf"), float("-inf")) else repr(v)
    if type(v) is str:
        if is_secret_value(v):
            return REDACTED
        s = _cut(v, lim.length)
        lim.budget -= len(s)
        return s
    if type(v) in (bytes, bytearray):
        s = _cut(repr(bytes(v[: lim.length])), lim.length)
        lim.budget -= len(s)
        return s if len(v) <= lim.length else f"{s}…[{len(v)} bytes]"
    container = type(v) in (dict, list, tuple, set, frozenset) or isinstance(v, (dict, list, tuple))
    if container:
        if id(v) in seen:
            return f"<cycle: {_type_name(v)}>"
        if _depth >= lim.depth:
            try:
                return f"<{_type_name(v)} len={len(v)}>"
            except Exception:
                return f"<{_type_name(v)}>"
        seen.add(id(v))
        try:
            if isinstance(v, dict):
                out: dict = {}
                try:
                    items = list(v.items())
                except Exception as e:
                    return f"<{_type_name(v)}: items() failed: {type(e).__name__}>"
                for i, (k, item) in enumerate(items):
                    if i >= lim.breadth:
                        out["…"] = f"{len(items) - lim.breadth} more"
                        break
                    key = k if isinstance(k, str) else safe_repr(k, 60)
                    out[key] = REDACTED if is_secret_name(key) else snapshot(item, lim, _depth + 1, seen)
                    lim.budget -= len(key) + 2
                return out
            items = list(v) if not isinstance(v, (set, frozenset)) else sorted(v, key=repr)[: lim.breadth + 1]
            res = [snapshot(x, lim, _depth + 1, seen) for x in items[: lim.breadth]]
            if len(v) > lim.breadth:
                res.append(f"…[{len(v) - lim.breadth} more]")
            return res
        except Exception as e:
            return f"<{_type_name(v)}: snapshot failed: {type(e).__name__}>"
        finally:
            seen.discard(id(v))
    if isinstance(v, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)):
        return f"<{_type_name(v)} {getattr(v, '__qualname__', getattr(v, '__name__', '?'))}>"
    s = safe_repr(v, lim.length)
    lim.budget -= len(s)
    return s


def snapshot_locals(frame: types.FrameType, lim: Limits, max_vars: int = 50) -> dict:
    """The frame's local variables, redacted and capped."""
    out: dict = {}
    try:
        items = list(frame.f_locals.items())
    except Exception as e:
        return {"<error>": f"f_locals failed: {type(e).__name__}"}
    for i, (name, value) in enumerate(items):
        if i >= max_vars:
            out["…"] = f"{len(items) - max_vars} more"
            break
        if name.startswith("__") and name.endswith("__"):
            continue
        out[name] = REDACTED if is_secret_name(name) else snapshot(value, lim)
    return out


def frame_info(frame: types.FrameType, lineno: int | None, lim: Limits | None, with_locals: bool) -> dict:
    code = frame.f_code
    d = {
        "function": getattr(code, "co_qualname", code.co_name),
        "module": frame.f_globals.get("__name__", "") if isinstance(frame.f_globals, dict) else "",
        "file": code.co_filename,
        "line": lineno if lineno is not None else frame.f_lineno,
    }
    if with_locals and lim is not None:
        d["locals"] = snapshot_locals(frame, lim)
    return d


def exception_stack(
    exc: BaseException,
    current: types.FrameType | None,
    lim: Limits | None = None,
    max_frames: int = 40,
    locals_frames: int = 12,
    wants_locals=None,
    tb=None,
) -> list[dict]:
    """The stack of an exception, outermost first: the live frames above ``current`` (when
    the exception is still unwinding) then the traceback's frames down to the raise point.
    Local variables are captured for the innermost ``locals_frames`` frames that
    ``wants_locals(frame)`` accepts (by default all); frames of sightline itself are left out."""
    lim = lim or Limits()
    tb_entries: list[tuple[types.FrameType, int]] = []
    if tb is None:
        tb = exc.__traceback__
    while tb is not None and len(tb_entries) < 1000:
        tb_entries.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    outer: list[tuple[types.FrameType, int | None]] = []
    if current is not None:
        f = current.f_back if tb_entries and tb_entries[0][0] is current else current
        while f is not None and len(outer) < 200:
            outer.append((f, None))
            f = f.f_back
        outer.reverse()
    entries = [(f, ln) for f, ln in outer + tb_entries if not _is_own(f)]
    if len(entries) > max_frames:
        entries = entries[:5] + entries[-(max_frames - 5):]
    out = []
    n = len(entries)
    for i, (f, line) in enumerate(entries):
        want = i >= n - locals_frames
        if want and wants_locals is not None:
            try:
                want = bool(wants_locals(f))
            except Exception:
                want = False
        out.append(frame_info(f, line, lim, with_locals=want))
    return out


_OWN_PREFIX = __file__.rsplit("/", 1)[0] + "/"


def _is_own(frame: types.FrameType) -> bool:
    return frame.f_code.co_filename.startswith(_OWN_PREFIX)


def describe(exc: BaseException) -> dict:
    """Type, message and cause chain of an exception, safely."""
    try:
        msg = str(exc)
    except BaseException as e:
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        msg = f"<str failed: {type(e).__name__}>"
    if is_secret_value(msg):
        msg = REDACTED
    chain = []
    c = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    seen = {id(exc)}
    while c is not None and id(c) not in seen and len(chain) < 10:
        seen.add(id(c))
        chain.append({"type": _type_name(c), "message": _cut(safe_repr(c, 300), 300)})
        c = c.__cause__ or (None if c.__suppress_context__ else c.__context__)
    return {"type": _type_name(exc), "message": _cut(msg, 2000), "chain": chain}


__all__ = [
    "REDACTED",
    "Limits",
    "clip",
    "describe",
    "exception_stack",
    "frame_info",
    "is_secret_name",
    "is_secret_value",
    "safe_repr",
    "snapshot",
    "snapshot_locals",
]
