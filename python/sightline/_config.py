"""Agent configuration: defaults, ``SIGHTLINE_*`` environment variables, keyword overrides."""

from __future__ import annotations

import dataclasses
import os
from typing import Any


def _split(v: str | None) -> list[str]:
    return [p.strip() for p in (v or "").split(",") if p.strip()]


def _bool(v: str | None, default: bool) -> bool:
    if v is None or v == "":
        return default
    return v.strip().lower() not in ("0", "false", "no", "off")


def _float(name: str, v: str | None, default: float) -> float:
    if v is None or v == "":
        return default
    try:
        return float(v)
    except ValueError:
        raise ValueError(f"{name}={v!r} is not a number") from None


@dataclasses.dataclass
class Config:
    """Everything the agent can be told. ``from_env`` reads the ``SIGHTLINE_*`` variables."""

    url: str = "http://127.0.0.1:4517"
    token: str | None = None
    #: For an ``https://`` hub whose certificate a private CA signed: that CA's certificate (a
    #: PEM file), trusted on top of the system's CAs.
    ca_file: str | None = None
    #: How events reach the hub: ``auto`` (the WebSocket ``publish``, falling back to HTTP when
    #: the hub refuses the upgrade), ``ws`` or ``http`` (``POST /api/v1/events``).
    transport: str = "auto"
    #: Offline mode: write NDJSON events here instead of posting (``sightline import`` reads it).
    output: str | None = None
    run_id: str | None = None
    parent_session_id: str | None = None
    agent: str | None = None
    #: Module globs to trace; empty means "the user's code" (not stdlib, not site-packages).
    include: list[str] = dataclasses.field(default_factory=list)
    exclude: list[str] = dataclasses.field(default_factory=list)
    min_duration_ms: float = 0.0
    #: Detailed call events per second, process-wide; 0 means no cap.
    max_detail_per_s: float = 1000.0
    capture_args: bool = True
    capture_repr: bool = False
    #: Trace calls from the start (False: only announce the process; switch on live).
    trace: bool = True
    exceptions: bool = True
    max_exceptions_per_s: float = 50.0
    heartbeat_s: float = 2.0
    control: bool = True
    #: Child Python processes started with the same environment trace themselves too.
    follow_children: bool = True
    flush_timeout_s: float = 3.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> "Config":
        e = os.environ if env is None else env
        c = cls(
            url=e.get("SIGHTLINE_URL") or cls.url,
            token=e.get("SIGHTLINE_TOKEN") or None,
            ca_file=e.get("SIGHTLINE_CA_FILE") or None,
            transport=(e.get("SIGHTLINE_TRANSPORT") or "auto").strip().lower(),
            output=e.get("SIGHTLINE_OUTPUT") or None,
            run_id=e.get("SIGHTLINE_RUN_ID") or None,
            parent_session_id=e.get("SIGHTLINE_PARENT_SESSION_ID") or None,
            agent=e.get("SIGHTLINE_AGENT") or None,
            include=_split(e.get("SIGHTLINE_INCLUDE")),
            exclude=_split(e.get("SIGHTLINE_EXCLUDE")),
            min_duration_ms=_float("SIGHTLINE_MIN_DURATION_MS", e.get("SIGHTLINE_MIN_DURATION_MS"), 0.0),
            max_detail_per_s=_float("SIGHTLINE_MAX_DETAIL_PER_S", e.get("SIGHTLINE_MAX_DETAIL_PER_S"), 1000.0),
            capture_args=_bool(e.get("SIGHTLINE_CAPTURE_ARGS"), True),
            capture_repr=_bool(e.get("SIGHTLINE_REPR"), False),
            trace=_bool(e.get("SIGHTLINE_TRACE"), True),
            exceptions=_bool(e.get("SIGHTLINE_EXCEPTIONS"), True),
            max_exceptions_per_s=_float("SIGHTLINE_MAX_EXCEPTIONS_PER_S", e.get("SIGHTLINE_MAX_EXCEPTIONS_PER_S"), 50.0),
            heartbeat_s=_float("SIGHTLINE_HEARTBEAT_S", e.get("SIGHTLINE_HEARTBEAT_S"), 2.0),
            control=_bool(e.get("SIGHTLINE_CONTROL"), True),
            follow_children=_bool(e.get("SIGHTLINE_FOLLOW_CHILDREN"), True),
            flush_timeout_s=_float("SIGHTLINE_FLUSH_TIMEOUT_S", e.get("SIGHTLINE_FLUSH_TIMEOUT_S"), 3.0),
        )
        for k, v in overrides.items():
            if v is None:
                continue
            if not hasattr(c, k):
                raise TypeError(f"unknown sightline option {k!r}")
            if k in ("include", "exclude") and isinstance(v, str):
                v = _split(v)
            setattr(c, k, v)
        if c.transport not in ("auto", "ws", "http"):
            raise ValueError(f"SIGHTLINE_TRANSPORT={c.transport!r}: use auto, ws or http")
        if c.min_duration_ms < 0 or c.max_detail_per_s < 0:
            raise ValueError("min_duration_ms and max_detail_per_s must be >= 0")
        return c
