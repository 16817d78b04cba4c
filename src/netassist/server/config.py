"""One validated settings object for the WSGI server, shared by ``netassist run``,
``netassist serve`` and :func:`netassist.serve`. Every value is checked here, once, with a
message that names it.

Settings come from four places, each overriding the one before: the defaults below, a TOML
file (``--config netassist.toml``), ``NETASSIST_*`` environment variables, and the command
line. :meth:`ServerConfig.load` reads the file and the environment onto the same
:meth:`ServerConfig.create` the flags and the Python API go through, so a bad value is one
clear error at start-up whichever way it came, and the error says where it came from.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from netassist import addresses
from netassist.errors import UsageError
from netassist.server.limits import Limits

MAX_BUSY_POLL = 10_000  # microseconds; longer is a spinning worker, not a latency setting
#: The Apache/nginx "combined" format, which log tools read (``--access-log-format``).
COMBINED_FORMAT = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
#: A worker beats once a second; a shorter timeout would kill healthy ones.
MIN_TIMEOUT = 2.0
ENV_PREFIX = "NETASSIST_"


@dataclass(frozen=True, slots=True)
class Bind:
    """Where to listen: a TCP ``host:port``, a Unix socket ``path``, or an inherited
    listening descriptor ``fd`` (``fd://3``, as systemd's socket activation passes them)."""

    host: str = "127.0.0.1"
    port: int = 8000
    path: str | None = None
    fd: int | None = None

    @classmethod
    def parse(cls, text: str) -> Bind:
        """Any form :mod:`netassist.addresses` reads, ``unix:PATH`` too, or ``fd://N``;
        port 8000 by default."""
        if text.startswith("fd://"):
            number = text[len("fd://") :]
            if not (number.isascii() and number.isdigit()):
                raise UsageError(f"bad bind {text!r}: write fd://N with N a descriptor number")
            return cls(host="", port=0, fd=int(number))
        address = addresses.parse(text, default_port=8000, listening=True, unix=True)
        if address.path is not None:
            return cls(path=address.path)
        return cls(host=address.host, port=address.port)

    def __str__(self) -> str:
        if self.fd is not None:
            return f"fd://{self.fd}"
        if self.path is not None:
            return f"unix:{self.path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings of the WSGI server. Build it with :meth:`create` (or :meth:`load`), which
    validates."""

    binds: tuple[Bind, ...] = (Bind(),)
    workers: int = 1  # processes; "auto" in create() is the number of usable cores
    threads: int = 1
    preload: bool = False  # import the app once in the master, before forking
    keep_alive: float = 5.0  # idle time allowed between requests on one connection
    header_timeout: float = 10.0  # time to read one whole request head (slowloris)
    body_timeout: float = 30.0  # time allowed without progress while a body arrives
    send_timeout: float = 30.0  # time allowed without progress while a response goes out
    timeout: float = 30.0  # a worker silent this long is killed and replaced; 0: never
    graceful_timeout: float = 30.0  # how long a stopping worker may finish its requests
    max_requests: int = 0  # a worker retires after about this many requests; 0: never
    max_requests_jitter: int = 0  # ... after a random count in [N, N + jitter]
    max_connections: int = 10_000  # per worker; beyond it new connections wait in the backlog
    backlog: int = 2048
    limits: Limits = field(default_factory=Limits)
    body_memory: int = 1 << 20  # request bodies above this are spooled to a temporary file
    script_name: str = ""
    server_name: str = "netassist"
    umask: int | None = None  # for unix: sockets; None keeps the process's umask
    pid: str | None = None  # a pid file, refused while it names a live master
    access_log: str | None = None  # a path, "-" for stderr, or None for no access log
    access_log_format: str = COMBINED_FORMAT
    error_log: str = "-"  # a path, or "-" for stderr
    log_level: str = "info"
    # Peers whose X-Forwarded-For, X-Forwarded-Proto and Forwarded are believed: addresses,
    # networks, "unix" (peers on a Unix socket) or "*"; from any other peer they are removed.
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1",)
    certfile: str | None = None  # TLS on every bind when set
    keyfile: str | None = None
    reload: bool = False  # development: new workers when a Python file of the app changes
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
        if settings.get("workers") == "auto":
            settings["workers"] = usable_cores()
        allowed = settings.get("forwarded_allow_ips")
        if isinstance(allowed, str):
            settings["forwarded_allow_ips"] = _split_list(allowed)
        elif allowed is not None:
            settings["forwarded_allow_ips"] = tuple(allowed)  # type: ignore[call-overload]
        if limits:
            settings["limits"] = replace(settings.get("limits", Limits()), **limits)  # type: ignore[arg-type]
        config = cls(**settings)  # type: ignore[arg-type]
        config.validate()
        return config

    @classmethod
    def load(
        cls,
        *,
        file: str | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: object,
    ) -> ServerConfig:
        """Settings from a TOML ``file``, then ``NETASSIST_*`` variables of ``environ``,
        then ``overrides`` (the command line), each layer over the one before. A bad value
        raises one UsageError that names its source."""
        settings: dict[str, object] = {}
        if file is not None:
            settings.update(read_file(file))
            _validated(settings, f"{file}: ")
        if environ is not None:
            from_env = settings_from_environ(environ)
            if from_env:
                settings.update(from_env)
                names = ", ".join(sorted(ENV_PREFIX + n.upper() for n in from_env))
                _validated(settings, f"environment ({names}): ")
        settings.update(overrides)
        return cls.create(**settings)

    def validate(self) -> None:
        """Raise UsageError naming the first setting that cannot work."""
        if not self.binds:
            raise UsageError("give at least one --bind address")
        for name in ("workers", "threads", "max_connections", "backlog", "body_memory"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise UsageError(f"{_flag(name)} must be a whole number of at least 1")
        if self.workers > 1 and not hasattr(os, "fork"):
            raise UsageError("--workers above 1 needs fork, which this system lacks; use --threads")
        for name in ("keep_alive", "header_timeout", "body_timeout", "send_timeout"):
            value = getattr(self, name)
            if not _is_number(value) or value <= 0:
                raise UsageError(f"{_flag(name)} must be a number of seconds above 0")
        if not _is_number(self.graceful_timeout) or self.graceful_timeout <= 0:
            raise UsageError("graceful-timeout must be a number of seconds above 0")
        if not _is_number(self.timeout) or not (self.timeout == 0 or self.timeout >= MIN_TIMEOUT):
            raise UsageError(
                f"timeout must be 0 (never) or at least {MIN_TIMEOUT:g} seconds: a worker's "
                "heartbeat comes once a second"
            )
        for name in ("max_requests", "max_requests_jitter"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise UsageError(f"{_flag(name)} must be a whole number, 0 or more")
        for name in ("preload", "reload"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"{name} must be true or false")
        if not _is_int(self.busy_poll) or not 0 <= self.busy_poll <= MAX_BUSY_POLL:
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
        if self.umask is not None and (not _is_int(self.umask) or not 0 <= self.umask <= 0o777):
            raise UsageError("umask must be an octal mode from 000 to 777, as in 007")
        if self.log_level not in LOG_LEVELS:
            raise UsageError(f"log-level must be one of {', '.join(LOG_LEVELS)}")
        for name in ("pid", "access_log", "certfile", "keyfile"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise UsageError(f"{_flag(name)} must be a file name")
        if not isinstance(self.error_log, str) or not self.error_log:
            raise UsageError("error-log must be a file name, or - for stderr")
        if self.keyfile and not self.certfile:
            raise UsageError("--keyfile needs --certfile (the certificate it belongs to)")
        from netassist.server import forwarded, logs  # pure modules, loaded only to check

        try:
            logs.compile_format(self.access_log_format)
        except ValueError as exc:
            raise UsageError(f"access-log-format: {exc}") from None
        try:
            forwarded.TrustedPeers(self.forwarded_allow_ips)
        except ValueError as exc:
            raise UsageError(f"forwarded-allow-ips: {exc}") from None
        limits = self.limits
        for name in (
            "max_request_line",
            "max_header_bytes",
            "max_header_field",
            "max_header_count",
        ):
            if getattr(limits, name) < 1:
                raise UsageError(f"{_flag(name)} must be at least 1")
        if limits.max_body is not None and limits.max_body < 0:
            raise UsageError("max-body must not be negative")


def usable_cores() -> int:
    """``--workers auto``: the cores this process may run on (1 where it cannot fork)."""
    if not hasattr(os, "fork"):
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _validated(settings: dict[str, object], source: str) -> None:
    try:
        ServerConfig.create(**dict(settings))
    except UsageError as exc:
        raise UsageError(f"{source}{exc}") from None


# --- settings as text (environment, TOML strings) and as TOML values ---------------------------


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.replace(",", " ").split() if part)


def _whole(text: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{text!r} is not a whole number")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text!r} is not a number of seconds")
    return value


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not true or false (1/0, yes/no, on/off)")


def _workers(text: str) -> int | str:
    return "auto" if text.strip() == "auto" else _whole(text)


def _octal(text: str) -> int:
    cleaned = text.strip().removeprefix("0o")
    if not cleaned or any(c not in "01234567" for c in cleaned):
        raise ValueError(f"{text!r} is not an octal mode, as in 007")
    return int(cleaned, 8)


def _optional_bytes(text: str) -> int | None:
    return None if text.strip().lower() == "none" else _whole(text)


def _text(text: str) -> str:
    return text


#: How each setting is read from text (an environment variable, a flag's word, a TOML string).
FROM_TEXT: dict[str, Callable[[str], Any]] = {
    "binds": _split_list,
    "workers": _workers,
    "threads": _whole,
    "preload": _boolean,
    "keep_alive": _seconds,
    "header_timeout": _seconds,
    "body_timeout": _seconds,
    "send_timeout": _seconds,
    "timeout": _seconds,
    "graceful_timeout": _seconds,
    "max_requests": _whole,
    "max_requests_jitter": _whole,
    "max_connections": _whole,
    "backlog": _whole,
    "body_memory": _whole,
    "script_name": _text,
    "server_name": _text,
    "umask": _octal,
    "pid": _text,
    "access_log": _text,
    "access_log_format": _text,
    "error_log": _text,
    "log_level": lambda text: text.strip().lower(),
    "forwarded_allow_ips": _split_list,
    "certfile": _text,
    "keyfile": _text,
    "reload": _boolean,
    "busy_poll": _whole,
    "max_request_line": _whole,
    "max_header_bytes": _whole,
    "max_header_field": _whole,
    "max_header_count": _whole,
    "max_body": _optional_bytes,
    "max_chunk_line": _whole,
    "max_trailer_bytes": _whole,
}
_ALIASES = {"bind": "binds"}


def setting_name(key: str) -> str | None:
    """The setting a file key or variable suffix names (``max-requests``, ``MAX_REQUESTS``,
    ``bind``), or None."""
    name = key.strip().lower().replace("-", "_")
    name = _ALIASES.get(name, name)
    return name if name in FROM_TEXT else None


def settings_from_environ(environ: Mapping[str, str]) -> dict[str, object]:
    """The settings that ``NETASSIST_<SETTING>`` variables give (``NETASSIST_WORKERS=4``,
    ``NETASSIST_BIND="unix:/run/app.sock 127.0.0.1:8000"``). Other ``NETASSIST_*`` names are
    not settings (``NETASSIST_DEBUG``) and are left alone. ``SCRIPT_NAME`` is read too, as
    CGI and gunicorn do."""
    settings: dict[str, object] = {}
    if "SCRIPT_NAME" in environ:
        settings["script_name"] = environ["SCRIPT_NAME"]
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = setting_name(key[len(ENV_PREFIX) :])
        if name is None:
            continue
        try:
            settings[name] = FROM_TEXT[name](value)
        except ValueError as exc:
            raise UsageError(f"{key}: {exc}") from None
    return settings


def read_file(path: str) -> dict[str, object]:
    """The settings of a TOML file: top-level keys named as the flags (``workers = 4``,
    ``bind = ["unix:/run/app.sock"]``, ``access-log = "-"``)."""
    import tomllib

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise UsageError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    settings: dict[str, object] = {}
    for key, value in data.items():
        name = setting_name(key)
        if name is None:
            raise UsageError(f"{path}: {key!r} is not a server setting (see netassist run --help)")
        try:
            settings[name] = _from_toml(name, value)
        except ValueError as exc:
            raise UsageError(f"{path}: {key}: {exc}") from None
    return settings


_LISTS = frozenset({"binds", "forwarded_allow_ips"})
_BOOLEANS = frozenset({"preload", "reload"})
_FLOATS = frozenset(
    f.name
    for f in fields(ServerConfig)
    if f.type in ("float", float)  # type: ignore[comparison-overlap]
)


def _from_toml(name: str, value: object) -> object:
    if isinstance(value, str):
        return FROM_TEXT[name](value)
    if name in _LISTS:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ValueError("give a list of strings, or one string")
    if name in _BOOLEANS:
        if isinstance(value, bool):
            return value
        raise ValueError("give true or false")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a value this setting takes")
    if isinstance(value, float) and name not in _FLOATS:
        raise ValueError(f"{value!r} is not a whole number")
    return value
