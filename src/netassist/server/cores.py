"""Which core serves requests: the compiled one (``netassist._speedups``) or pure Python.

The compiled core is optional. It is built with the package where a C compiler exists
(``setup.py``); where it was not built, or with ``NETASSIST_PURE=1`` in the environment, the
pure-Python core serves, and it is the reference: both answer every request with the same
bytes (``tests/server/test_speedups.py``). The choice is made once per process, at import,
and given to the protocol (``protocol.compiled_parse``) and the worker.
"""

from __future__ import annotations

import os
from types import ModuleType

from netassist.server import protocol

__all__ = ["COMPILED", "NAME", "PURE", "built", "forced_pure", "load", "speedups"]

COMPILED, PURE = "compiled core", "pure-Python core"


def forced_pure() -> bool:
    """Whether ``NETASSIST_PURE`` asks for the pure-Python core."""
    return os.environ.get("NETASSIST_PURE", "") not in ("", "0")


def built() -> ModuleType | None:
    """The compiled core's module if it was built, whatever the environment says (tests run
    both cores in one process)."""
    try:
        from netassist import _speedups
    except ImportError:
        return None
    return _speedups


def load() -> ModuleType | None:
    """The compiled core's module, or None where the pure-Python core must serve."""
    return None if forced_pure() else built()


#: The compiled core's module for this process, or None.
speedups = load()
#: What the listening line says about the core.
NAME = COMPILED if speedups is not None else PURE
if speedups is not None:
    protocol.compiled_parse = speedups.parse_head
