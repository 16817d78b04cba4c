"""Find a WSGI application from a ``MODULE:NAME`` string, as gunicorn and uvicorn do."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import sysconfig
from collections.abc import Callable

from netassist.errors import NetassistError, UsageError


def check_app(spec: str, *, directory: str | None = None) -> None:
    """Refuse, without importing anything, an application whose spec is malformed or whose
    top-level module is nowhere to be found: a master that lets its workers import the app
    says so before it binds or forks."""
    module_name = _module_of(spec)
    folder = os.path.abspath(directory or os.getcwd())
    if not sys.path or sys.path[0] != folder:
        sys.path.insert(0, folder)
    top = module_name.split(".", 1)[0]
    if top not in sys.modules and importlib.util.find_spec(top) is None:
        raise NetassistError(_not_found(module_name))


def _module_of(spec: str) -> str:
    module_name = spec.partition(":")[0]
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise UsageError(f"bad application {spec!r}: write MODULE:NAME, as in myapp:app")
    return module_name


def _not_found(module_name: str) -> str:
    return (
        f"cannot import {module_name!r}: no such module here "
        "(run from the folder that holds it, or give --chdir)"
    )


def load_app(spec: str, *, directory: str | None = None) -> Callable:
    """Import ``module.path:name`` and return the application.

    ``name`` may be a dotted attribute path, or a factory call such as ``create_app()``.
    ``directory`` (default: the current one) is put first on ``sys.path``.
    """
    module_name = _module_of(spec)
    attribute = spec.partition(":")[2] or "application"
    folder = os.path.abspath(directory or os.getcwd())
    if not sys.path or sys.path[0] != folder:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise NetassistError(_not_found(module_name)) from None
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


def app_modules(directory: str | None = None) -> dict[str, str]:
    """The application's own modules, name -> file: those loaded from files under
    ``directory`` (the app's folder; default the current one), but not the standard library,
    installed packages (even a virtual environment inside that folder) or netassist."""
    folder = os.path.abspath(directory or os.getcwd()) + os.sep
    installed = tuple(
        os.path.abspath(p) + os.sep
        for p in {sys.prefix, sys.base_prefix, *(sysconfig.get_paths().values())}
    )
    found = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        where = os.path.abspath(path) if isinstance(path, str) else ""
        if (
            where.startswith(folder)
            and not where.startswith(installed)
            and name.partition(".")[0] != "netassist"
        ):
            found[name] = where
    return found


def reload_app(spec: str, *, directory: str | None = None) -> Callable:
    """Import the application again with its own modules (:func:`app_modules`) afresh, for
    a master that imported it itself (``--preload``) and reloads on HUP."""
    for name in app_modules(directory):
        del sys.modules[name]
    importlib.invalidate_caches()
    return load_app(spec, directory=directory)


class ChangeWatcher:
    """``--reload``: notices when a file of the app's own modules changes (or goes)."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory
        self._seen: dict[str, float] = {}
        self.changed()

    def changed(self) -> str | None:
        """The first file that changed since the last call (None: none did). Modules
        imported since are watched from now on."""
        found = None
        seen = {}
        for path in app_modules(self.directory).values():
            try:
                stamp = os.stat(path).st_mtime_ns
            except OSError:
                stamp = -1
            seen[path] = stamp
            if found is None and path in self._seen and self._seen[path] != stamp:
                found = path
        self._seen = seen
        return found
