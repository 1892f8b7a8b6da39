"""The agent: wires the Rust tracer and transport to this process, announces the process,
reports exceptions (with a redacted snapshot of local variables), applies live control from
the hub, and reports the exit.

Nothing here may break the traced program: every hook catches its own errors, the transport
never blocks, and a hub that is down only means events wait, are spooled, or are dropped
(counted).
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import threading
import time
import uuid
from typing import Any

from . import _asyncio, _native
from ._config import Config
from ._filters import Filter
from ._snapshot import REDACTED, Limits, clip, describe, exception_stack, is_secret_name, is_secret_value

_BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")
_lock = threading.RLock()
_agent: "Agent | None" = None


def _new_run_id() -> str:
    return f"py-{uuid.uuid4().hex[:20]}"


def _liveness() -> dict:
    """What the hub's liveness sweep needs to tell this process from another with the same pid
    (docs/SOURCES-SETUP.md, "Liveness"): the machine's boot id and this process's start time in
    clock ticks after boot (field 22 of /proc/self/stat) and pid namespace. Empty where /proc has
    none of them."""
    out: dict = {}
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            out["boot_id"] = f.read().strip()
        with open("/proc/self/stat") as f:
            stat = f.read()
        # Fields after the command name, which may hold spaces and parentheses.
        out["start_ticks"] = int(stat[stat.rindex(")") + 2 :].split()[19])
        # A pid means this process only inside its pid namespace (a hub in a container shares
        # the host name and boot id, not the pids).
        out["pid_ns"] = os.readlink("/proc/self/ns/pid")
    except (OSError, ValueError, IndexError):
        pass
    return out


class Agent:
    """One per process. Use ``start()``/``stop()`` rather than this class directly."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.run_id = cfg.run_id or _new_run_id()
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.main_tid = threading.main_thread().native_id or threading.get_native_id()
        self.session_id = f"{self.run_id}:main"
        self.filter = Filter(cfg.include, cfg.exclude)
        self.tracing = False
        self.tool_id: int | None = None
        self.started_ns = time.monotonic_ns()
        self.exit_code: int | None = None
        self.unhandled = False
        self.stopped = False
        self.control_version = 0
        self._exc_tokens = cfg.max_exceptions_per_s
        self._exc_last = time.monotonic()
        self._exc_suppressed = 0
        self._prev_excepthook = None
        self._prev_threading_hook = None
        self._prev_exit = None

    # --- events built in Python (lifecycle, exceptions, control) -----------------------------

    def event(self, source_event: str, entity_type: str, title: str, **fields: Any) -> dict:
        tid = threading.get_native_id()
        ev = {
            # An idempotency key: a spool file delivered twice (in part) stores this once.
            "event_id": f"{self.run_id}.{uuid.uuid4().hex[:16]}",
            "ts": _native.now_rfc3339(),
            "source": "python",
            "source_event": source_event,
            "run_id": self.run_id,
            "session_id": self.session_id if tid == self.main_tid else f"{self.run_id}:t{tid}",
            "entity_type": entity_type,
            "title": clip(title, 500),
            "pid": self.pid,
            "thread_id": tid,
            "host": self.host,
        }
        if tid == self.main_tid:
            if self.cfg.parent_session_id:
                ev["parent_session_id"] = self.cfg.parent_session_id
        else:
            ev["parent_session_id"] = self.session_id
        if self.cfg.agent:
            ev["agent"] = self.cfg.agent
        ev.update({k: v for k, v in fields.items() if v is not None})
        return ev

    def send(self, ev: dict, droppable: bool = False) -> None:
        try:
            line = json.dumps(ev, default=str, ensure_ascii=False, allow_nan=False)
        except ValueError:
            line = json.dumps(ev, default=str, ensure_ascii=False)
        _native.emit(line, droppable)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.cfg
        disable = sys.monitoring.DISABLE if _native.MONITORING else None
        _native.install(
            self.run_id,
            self.host,
            self.pid,
            self.main_tid,
            cfg.parent_session_id,
            self.filter.classify,
            self._on_exception,
            disable,
        )
        self._configure_native(refilter=False)
        if cfg.output:
            _native.transport_configure(file=os.path.abspath(cfg.output), spool_dir=_spool_dir())
        else:
            # The sender thread also delivers spool files left by earlier processes (and
            # adopts those whose process died), batch by batch, without the program waiting.
            _native.transport_configure(
                url=cfg.url, token=cfg.token, via=cfg.transport, spool_dir=_spool_dir(), ca_file=cfg.ca_file
            )
        self._prepare_children()
        self.send(
            self.event(
                "process_start",
                "process",
                clip("python " + " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(_redact_argv(sys.argv))), 300),
                status="running",
                summary=f"Python {sys.version.split()[0]} pid {self.pid}",
                payload={
                    "argv": _redact_argv(sys.argv),
                    "executable": sys.executable,
                    "python_version": sys.version,
                    "cwd": os.getcwd(),
                    "ppid": os.getppid(),
                    "tracing": cfg.trace,
                    "include": cfg.include,
                    "exclude": cfg.exclude,
                    "min_duration_ms": cfg.min_duration_ms,
                    "max_detail_per_s": cfg.max_detail_per_s,
                    "agent_version": "0.1.0",
                    "tracer": "sys.monitoring" if _native.MONITORING else "PyEval_SetProfile",
                    "heartbeat_s": cfg.heartbeat_s,
                    **_liveness(),
                },
            )
        )
        self._install_hooks()
        if cfg.trace:
            self.set_tracing(True)
        _native.start_heartbeat(cfg.heartbeat_s)
        if cfg.control and not cfg.output:
            _native.start_control(cfg.url, cfg.token, self.run_id, self._apply_control, ca_file=cfg.ca_file)
        atexit.register(self.stop)
        _register_fork_hooks()

    def _after_fork_child(self) -> None:
        """In a forked child (multiprocessing, os.fork): a new run under the parent's session,
        with its own background threads."""
        parent_session = self.session_id
        self.run_id = _new_run_id()
        self.pid = os.getpid()
        self.main_tid = threading.get_native_id()
        self.session_id = f"{self.run_id}:main"
        self.cfg.parent_session_id = parent_session
        self.started_ns = time.monotonic_ns()
        self.exit_code = None
        self.unhandled = False
        _native.install(
            self.run_id, self.host, self.pid, self.main_tid, parent_session,
            self.filter.classify, self._on_exception,
        )
        os.environ["SIGHTLINE_PARENT_SESSION_ID"] = self.session_id
        self.send(
            self.event(
                "process_start",
                "process",
                f"python fork of {parent_session.split(':')[0]}",
                status="running",
                summary=f"forked child pid {self.pid}",
                payload={
                    "argv": _redact_argv(sys.argv),
                    "ppid": os.getppid(),
                    "forked": True,
                    "tracing": self.tracing,
                    "heartbeat_s": self.cfg.heartbeat_s,
                    **_liveness(),
                },
            )
        )
        _native.start_heartbeat(self.cfg.heartbeat_s)
        if self.cfg.control and not self.cfg.output:
            _native.start_control(
                self.cfg.url, self.cfg.token, self.run_id, self._apply_control, ca_file=self.cfg.ca_file
            )

    def _configure_native(self, refilter: bool) -> None:
        c = self.cfg
        _native.configure(c.min_duration_ms, c.max_detail_per_s, c.capture_args, c.capture_repr, refilter)

    def _prepare_children(self) -> None:
        env = os.environ
        # Children are their own runs, nested under this process's session.
        env.pop("SIGHTLINE_RUN_ID", None)
        env["SIGHTLINE_PARENT_SESSION_ID"] = self.session_id
        if not self.cfg.follow_children:
            env["SIGHTLINE_DISABLE"] = "1"
            return
        ca_file = os.path.abspath(self.cfg.ca_file) if self.cfg.ca_file else None
        for k, v in (("SIGHTLINE_URL", self.cfg.url), ("SIGHTLINE_OUTPUT", self.cfg.output), ("SIGHTLINE_CA_FILE", ca_file)):
            if v and k not in env:
                env[k] = v
        parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if _BOOTSTRAP_DIR not in parts:
            env["PYTHONPATH"] = os.pathsep.join([_BOOTSTRAP_DIR] + parts)

    def set_tracing(self, on: bool) -> None:
        """Switches function tracing on or off (exceptions hooks stay)."""
        with _lock:
            if on == self.tracing:
                return
            if _native.MONITORING:
                mon = sys.monitoring
                if on:
                    if self.tool_id is None:
                        self.tool_id = _claim_tool_id()
                        E = mon.events
                        for ev, cb in (
                            (E.PY_START, _native.py_start),
                            (E.PY_RESUME, _native.py_resume),
                            (E.PY_THROW, _native.py_throw),
                            (E.PY_RETURN, _native.py_return),
                            (E.PY_YIELD, _native.py_yield),
                            (E.PY_UNWIND, _native.py_unwind),
                        ):
                            mon.register_callback(self.tool_id, ev, cb)
                    _native.set_active(True)
                    E = mon.events
                    mon.set_events(
                        self.tool_id,
                        E.PY_START | E.PY_RESUME | E.PY_THROW | E.PY_RETURN | E.PY_YIELD | E.PY_UNWIND,
                    )
                else:
                    _native.set_active(False)
                    if self.tool_id is not None:
                        mon.set_events(self.tool_id, 0)
            else:
                if on:
                    _native.set_active(True)
                    _native.profile_all_threads(True)
                    threading.setprofile(_native.thread_bootstrap)
                else:
                    _native.set_active(False)
                    threading.setprofile(None)
                    _native.profile_all_threads(False)
            self.tracing = on

    def update_filters(self, include=None, exclude=None, min_duration_ms=None, max_detail_per_s=None) -> None:
        """Changes the filters of a running agent; code already seen is classified anew."""
        with _lock:
            if include is not None:
                self.cfg.include = list(include)
            if exclude is not None:
                self.cfg.exclude = list(exclude)
            if min_duration_ms is not None:
                self.cfg.min_duration_ms = float(min_duration_ms)
            if max_detail_per_s is not None:
                self.cfg.max_detail_per_s = float(max_detail_per_s)
            refilter = include is not None or exclude is not None
            if refilter:
                self.filter = Filter(self.cfg.include, self.cfg.exclude)
                _native.install(
                    self.run_id, self.host, self.pid, self.main_tid, self.cfg.parent_session_id,
                    self.filter.classify, self._on_exception,
                )
            self._configure_native(refilter=refilter)
            if refilter and _native.MONITORING:
                # Code whose events were disabled as untraced must be looked at again.
                sys.monitoring.restart_events()

    def stop(self, flush_timeout_s: float | None = None) -> None:
        """Stops tracing, sends the final statistics and the exit, and flushes (bounded)."""
        with _lock:
            if self.stopped:
                return
            self.stopped = True
        try:
            self.set_tracing(False)
        except Exception:
            pass
        _native.beat_now()
        code = self.exit_code
        if code is None:
            code = 1 if self.unhandled else 0
        dur = (time.monotonic_ns() - self.started_ns) / 1e6
        st = _native.stats()
        self.send(
            self.event(
                "process_exit",
                "process",
                f"exit {code}",
                status="success" if code == 0 else "failed",
                severity="info" if code == 0 else "error",
                duration_ms=dur,
                metrics={"exit_code": code, "calls": st.get("calls", 0), "dropped": st.get("dropped", 0)},
                payload={"exit_code": code, "unhandled_exception": self.unhandled, "stats": st},
            )
        )
        _native.stop_background()
        left = _native.flush(self.cfg.flush_timeout_s if flush_timeout_s is None else flush_timeout_s)
        self._spool(left)
        self._uninstall_hooks()

    def _spool(self, left: int) -> None:
        """Spools what the hub did not take (the events are the agent's own, already redacted:
        locals and arguments are summarised and redacted before they are queued), private
        (0600 in a 0700 directory) and within the spool's cap."""
        try:
            path, written, lost = _native.spool_at_exit(self.run_id)
        except OSError as e:
            sys.stderr.write(f"sightline: {left} events lost: hub not reachable and spooling failed: {e}\n")
            return
        if written:
            sys.stderr.write(
                f"sightline: hub not reachable ({_native.stats().get('last_error')}); "
                f"{written} events spooled to {path} (load with `sightline import {path}`)\n"
            )
        if lost:
            sys.stderr.write(f"sightline: {lost} events lost: the spool ({_spool_dir()}) is full\n")

    # --- exceptions ----------------------------------------------------------------------------

    def _allow_exception(self) -> bool:
        now = time.monotonic()
        rate = self.cfg.max_exceptions_per_s
        self._exc_tokens = min(rate, self._exc_tokens + (now - self._exc_last) * rate)
        self._exc_last = now
        if self._exc_tokens >= 1:
            self._exc_tokens -= 1
            return True
        self._exc_suppressed += 1
        return False

    def _on_exception(self, exc, tb=None) -> bool:
        """Called from Rust when an exception leaves a traced function (once per exception)."""
        if not self.cfg.exceptions or exc is None or not isinstance(exc, BaseException):
            return False
        if isinstance(exc, (StopIteration, StopAsyncIteration, GeneratorExit)):
            return False
        if not self._allow_exception():
            return False
        try:
            current = sys._getframe(1)
        except ValueError:
            current = None
        self._report(exc, current, "exception", handled=None, tb=tb)
        return False

    def _report(self, exc: BaseException, current, source_event: str, handled, tb=None) -> None:
        try:
            d = describe(exc)
            stack = exception_stack(exc, current, Limits(), wants_locals=self._wants_locals, tb=tb)
            where = stack[-1] if stack else {}
            if tb is not None and tb.tb_next is not None:
                # 3.11: reported from the frame the exception reached; it left the next one.
                leaving = tb.tb_next.tb_frame.f_code.co_qualname
            else:
                leaving = current.f_code.co_qualname if current is not None else None
            self.send(
                self.event(
                    source_event,
                    "exception",
                    clip(f"{d['type']}: {d['message']}", 300),
                    entity_id=d["type"],
                    status="failed",
                    severity="error",
                    summary=f"at {where.get('function', '?')} ({os.path.basename(str(where.get('file', '?')))}:{where.get('line', '?')})",
                    payload={
                        **d,
                        "handled": handled,
                        "leaving": leaving,
                        "stack": stack,
                        "suppressed_before": self._exc_suppressed,
                    },
                )
            )
            self._exc_suppressed = 0
        except Exception as e:  # never let reporting break the program
            try:
                sys.stderr.write(f"sightline: could not report {type(exc).__name__}: {e!r}\n")
            except Exception:
                pass

    def _wants_locals(self, frame) -> bool:
        g = frame.f_globals
        module = g.get("__name__", "") if isinstance(g, dict) else ""
        return self.filter.traced(module if isinstance(module, str) else "", frame.f_code.co_filename)

    def _install_hooks(self) -> None:
        _asyncio.install()
        self._prev_excepthook = sys.excepthook
        self._prev_threading_hook = threading.excepthook
        agent = self

        def excepthook(tp, value, tb):
            if value is not None and not isinstance(value, SystemExit):
                agent.unhandled = True
                if agent.cfg.exceptions:
                    agent._report(value, None, "unhandled_exception", handled=False)
            (agent._prev_excepthook or sys.__excepthook__)(tp, value, tb)

        def threading_hook(args):
            if args.exc_value is not None and not isinstance(args.exc_value, SystemExit) and agent.cfg.exceptions:
                agent._report(args.exc_value, None, "unhandled_exception", handled=False)
            (agent._prev_threading_hook or threading.__excepthook__)(args)

        sys.excepthook = excepthook
        threading.excepthook = threading_hook
        self._prev_exit = sys.exit

        def exit(code=None):
            agent.exit_code = _exit_status(code)
            agent._prev_exit(code)

        sys.exit = exit
        self._prev_os_exit = os._exit

        def os_exit(code):
            # Forked children (multiprocessing workers) leave through os._exit, skipping
            # atexit: report the exit and flush (bounded) first.
            try:
                if not agent.stopped and agent.pid == os.getpid():
                    agent.exit_code = code if isinstance(code, int) else 1
                    agent.stop(flush_timeout_s=min(agent.cfg.flush_timeout_s, 1.0))
            except BaseException:
                pass
            agent._prev_os_exit(code)

        os._exit = os_exit

    def _uninstall_hooks(self) -> None:
        if self._prev_exit is not None and sys.exit is not self._prev_exit:
            sys.exit = self._prev_exit
        prev = getattr(self, "_prev_os_exit", None)
        if prev is not None and os._exit is not prev:
            os._exit = prev

    # --- live control ------------------------------------------------------------------------

    def _apply_control(self, body: str, current: int) -> int:
        """Called from the Rust control thread (GIL taken just for this) with the hub's
        control document; returns its version."""
        try:
            doc = json.loads(body)
            version = int(doc.get("version", 0))
        except (ValueError, TypeError, AttributeError):
            return current
        if version == 0 or version == current:
            return version  # nothing set for this process, or nothing new
        changes = {}
        if "include" in doc or "exclude" in doc or "min_duration_ms" in doc or "max_detail_per_s" in doc:
            self.update_filters(
                include=doc.get("include"),
                exclude=doc.get("exclude"),
                min_duration_ms=doc.get("min_duration_ms"),
                max_detail_per_s=doc.get("max_detail_per_s"),
            )
            changes.update({k: doc[k] for k in ("include", "exclude", "min_duration_ms", "max_detail_per_s") if k in doc})
        if "enabled" in doc and doc["enabled"] is not None:
            self.set_tracing(bool(doc["enabled"]))
            changes["enabled"] = bool(doc["enabled"])
        self.control_version = version
        self.send(
            self.event(
                "control_applied",
                "process",
                f"control v{version}: tracing {'on' if self.tracing else 'off'}",
                status="running",
                payload={"version": version, "changes": changes, "tracing": self.tracing},
            )
        )
        return version


def _redact_argv(argv: list) -> list:
    """The command line without its secrets (`--password X`, `--api-key=X`, a token-shaped
    value): it travels in `process_start` and may wait in the spool."""
    out: list = []
    hide_next = False
    for a in map(str, argv):
        if hide_next:
            out.append(REDACTED)
            hide_next = False
        elif a.startswith("-") and "=" in a and is_secret_name(a.split("=", 1)[0]):
            out.append(a.split("=", 1)[0] + "=" + REDACTED)
        elif a.startswith("-") and is_secret_name(a):
            out.append(a)
            hide_next = True
        elif is_secret_value(a):
            out.append(REDACTED)
        else:
            out.append(a)
    return out


def _spool_dir() -> str:
    return os.environ.get("SIGHTLINE_SPOOL_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "sightline", "spool"
    )


_fork_hooks = False


def _register_fork_hooks() -> None:
    global _fork_hooks
    if _fork_hooks:
        return
    _fork_hooks = True

    def child() -> None:
        _native.after_fork_child()
        a = _agent
        if a is not None and not a.stopped:
            try:
                a._after_fork_child()
            except Exception as e:
                sys.stderr.write(f"sightline: not tracing the forked child: {e}\n")

    os.register_at_fork(before=_native.prepare_fork, after_in_parent=_native.after_fork_parent, after_in_child=child)


def _exit_status(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF if code >= 0 else code
    return 1


def _claim_tool_id() -> int:
    mon = sys.monitoring
    # 2 is cProfile's (PROFILER_ID), 0 the debugger's, 1 coverage's: prefer the others.
    for tid in (4, 3, 5, 1, 0, 2):
        if mon.get_tool(tid) is None:
            mon.use_tool_id(tid, "sightline")
            return tid
    raise RuntimeError("sightline: every sys.monitoring tool id (0-5) is taken")


# --- module-level API ------------------------------------------------------------------------


def start(**options: Any) -> Agent:
    """Starts the agent in this process (idempotent: a second call returns the running one).

    Options are the fields of ``Config`` (``url``, ``token``, ``ca_file``, ``output``, ``include``,
    ``exclude``, ``min_duration_ms``, ``max_detail_per_s``, ``trace``, ...); unset ones come
    from ``SIGHTLINE_*`` environment variables."""
    global _agent
    with _lock:
        if _agent is not None and not _agent.stopped:
            return _agent
        cfg = Config.from_env(**options)
        a = Agent(cfg)
        a.start()
        _agent = a
        return a


def stop() -> None:
    """Stops the agent, reports the exit and flushes (bounded by ``flush_timeout_s``)."""
    a = _agent
    if a is not None:
        a.stop()


def current() -> Agent | None:
    return _agent


def flush(timeout_s: float = 5.0) -> int:
    """Sends the statistics now and waits for delivery; returns the events still queued."""
    _native.beat_now()
    return _native.flush(timeout_s)


def status() -> dict:
    """Counters of the running agent (calls, queued, sent, dropped, ...)."""
    st = dict(_native.stats())
    a = _agent
    if a is not None:
        st.update(run_id=a.run_id, tracing=a.tracing, control_version=a.control_version)
    return st


def update_filters(**kw: Any) -> None:
    a = _agent
    if a is None:
        raise RuntimeError("sightline is not started")
    a.update_filters(**kw)
