"""netassist: the Python networking toolkit people reach for first.

The debugging assistant lives in :mod:`netassist.wire`; later parts (chat, file transfer,
static files, the WSGI server and the web framework) join the curated ``__all__`` below as
they land.
"""

from netassist.errors import ExitCode, NetassistError
from netassist.server import ServerConfig, serve

__version__ = "0.1.0"

__all__ = ["ExitCode", "NetassistError", "ServerConfig", "__version__", "serve"]
