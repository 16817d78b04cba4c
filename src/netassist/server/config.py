"""One validated settings object for the WSGI server, shared by ``netassist run`` and
:func:`netassist.serve`. Every value is checked here, once, with a message that names it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from netassist import addresses
from netassist.errors import UsageError
from netassist.server.limits import Limits

MAX_BUSY_POLL = 10_000  # microseconds; longer is a spinning worker, not a latency setting


@dataclass(frozen=True, slots=True)
class Bind:
    """Where to listen: a TCP ``host:port`` or a Unix socket ``path``."""

    host: str = "127.0.0.1"
    port: int = 8000
    path: str | None = None

    @classmethod
    def parse(cls, text: str) -> Bind:
        """Any form :mod:`netassist.addresses` reads, ``unix:PATH`` too; port 8000 by default."""
        address = addresses.parse(text, default_port=8000, listening=True, unix=True)
        if address.path is not None:
            return cls(path=address.path)
        return cls(host=address.host, port=address.port)

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings of the WSGI server. Build it with :meth:`create`, which validates."""

    binds: tuple[Bind, ...] = (Bind(),)
    workers: int = 1
    threads: int = 1
    keep_alive: float = 5.0  # idle time allowed between requests on one connection
    header_timeout: float = 10.0  # time to read one whole request head (slowloris)
    body_timeout: float = 30.0  # time allowed without progress while a body arrives
    send_timeout: float = 30.0  # time allowed without progress while a response goes out
    max_connections: int = 10_000  # per worker; beyond it new connections wait in the backlog
    backlog: int = 2048
    limits: Limits = field(default_factory=Limits)
    body_memory: int = 1 << 20  # request bodies above this are spooled to a temporary file
    script_name: str = ""
    server_name: str = "netassist"
    access_log: str | None = None  # a path, "-" for stderr, or None for no access log
    # Microseconds a one-thread worker keeps polling after its last event before it sleeps in
    # epoll: saves the wake-up of an idle core on each request of a lone client, for CPU.
    busy_poll: int = 0

    @classmethod
    def create(cls, **settings: object) -> ServerConfig:
        """Build and validate a configuration; unknown or bad settings raise UsageError."""
        known = set(cls.__dataclass_fields__)
        limit_names = set(Limits.__dataclass_fields__)
        limits = {k: settings.pop(k) for k in list(settings) if k in limit_names}
        unknown = set(settings) - known
        if unknown:
            raise UsageError(f"unknown server setting(s): {', '.join(sorted(unknown))}")
        binds = settings.get("binds") or (Bind(),)
        if isinstance(binds, str | Bind):
            binds = (binds,)
        settings["binds"] = tuple(b if isinstance(b, Bind) else Bind.parse(str(b)) for b in binds)  # type: ignore[union-attr]
        if limits:
            settings["limits"] = replace(settings.get("limits", Limits()), **limits)  # type: ignore[arg-type]
        config = cls(**settings)  # type: ignore[arg-type]
        config.validate()
        return config

    def validate(self) -> None:
        """Raise UsageError naming the first setting that cannot work."""
        if not self.binds:
            raise UsageError("give at least one --bind address")
        for name in ("workers", "threads", "max_connections", "backlog", "body_memory"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"{name.replace('_', '-')} must be a whole number of at least 1")
        if self.workers > 1 and not hasattr(os, "fork"):
            raise UsageError("--workers above 1 needs fork, which this system lacks; use --threads")
        for name in ("keep_alive", "header_timeout", "body_timeout", "send_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise UsageError(f"{name.replace('_', '-')} must be a number of seconds above 0")
        if not isinstance(self.busy_poll, int) or not 0 <= self.busy_poll <= MAX_BUSY_POLL:
            raise UsageError(
                f"busy-poll must be a whole number of microseconds, 0 to {MAX_BUSY_POLL}"
            )
        if self.busy_poll and self.threads > 1:
            raise UsageError(
                "busy-poll needs --threads 1: polling threads would take turns on the GIL"
            )
        if self.script_name and (
            not self.script_name.startswith("/") or self.script_name.endswith("/")
        ):
            raise UsageError("script-name must start with / and not end with one, as in /app")
        limits = self.limits
        for name in (
            "max_request_line",
            "max_header_bytes",
            "max_header_field",
            "max_header_count",
        ):
            if getattr(limits, name) < 1:
                raise UsageError(f"{name.replace('_', '-')} must be at least 1")
        if limits.max_body is not None and limits.max_body < 0:
            raise UsageError("max-body must not be negative")
