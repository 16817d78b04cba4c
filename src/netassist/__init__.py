"""netassist: the Python networking toolkit people reach for first.

The debugging assistant lives in :mod:`netassist.wire`, file transfer in
:mod:`netassist.transfer`, static files in :mod:`netassist.static` and the WSGI server in
:mod:`netassist.server`; the names below are the curated public API (a test pins them).
"""

from typing import TYPE_CHECKING

from netassist.errors import ExitCode, NetassistError

if TYPE_CHECKING:
    from netassist.server import ServerConfig, serve

__version__ = "0.1.0"

__all__ = ["ExitCode", "NetassistError", "ServerConfig", "__version__", "serve"]
_LAZY = {"ServerConfig", "serve"}


def __getattr__(name: str) -> object:
    """``serve`` and ``ServerConfig`` load the server on first use (PEP 562): a command
    that never serves HTTP (``files get``, ``tcp connect``) starts without it."""
    if name in _LAZY:
        from netassist import server

        return getattr(server, name)
    raise AttributeError(f"module 'netassist' has no attribute {name!r}")
