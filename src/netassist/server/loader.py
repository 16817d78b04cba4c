"""Find a WSGI application from a ``MODULE:NAME`` string, as gunicorn and uvicorn do."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

from netassist.errors import NetassistError, UsageError


def load_app(spec: str, *, directory: str | None = None) -> Callable:
    """Import ``module.path:name`` and return the application.

    ``name`` may be a dotted attribute path, or a factory call such as ``create_app()``.
    ``directory`` (default: the current one) is put first on ``sys.path``.
    """
    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "application"
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise UsageError(f"bad application {spec!r}: write MODULE:NAME, as in myapp:app")
    sys.path.insert(0, os.path.abspath(directory or os.getcwd()))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise NetassistError(
                f"cannot import {module_name!r}: no such module here "
                "(run from the folder that holds it, or give --chdir)"
            ) from None
        raise NetassistError(f"importing {module_name!r} failed: {exc}") from None
    except SyntaxError as exc:
        raise NetassistError(f"importing {module_name!r} failed: {exc}") from None
    call = attribute.endswith("()")
    target: object = module
    for part in attribute.removesuffix("()").split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise NetassistError(
                f"module {module_name!r} has no {attribute.removesuffix('()')!r}"
            ) from None
    if call:
        target = target()  # type: ignore[operator]
    if not callable(target):
        raise NetassistError(f"{spec!r} is not a WSGI application (it is not callable)")
    return target  # type: ignore[return-value]
