"""The boundaries of the design notes, pinned: they hold because a test says so."""

from __future__ import annotations

import ast
from pathlib import Path

import netassist

PACKAGE = Path(netassist.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_protocol_modules_touch_no_sockets_threads_or_files():
    forbidden = {"socket", "selectors", "threading", "asyncio", "os", "pathlib", "shutil", "io"}
    protocols = sorted(PACKAGE.glob("*/protocol.py"))
    assert protocols, "no protocol modules found"
    for path in protocols:
        used = {name.split(".")[0] for name in imported_modules(path)}
        assert not used & forbidden, (path, used & forbidden)


def test_web_and_static_never_import_the_server_and_nothing_imports_the_cli():
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).parts
        used = imported_modules(path)
        if relative[0] in ("web", "static"):
            assert not any(m.startswith("netassist.server") for m in used), path
        if relative[0] != "cli" and path.name != "__main__.py":
            assert not any(m.startswith("netassist.cli") for m in used), path


def test_only_the_arbiter_forks_or_handles_signals():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name == "arbiter.py":
            continue
        assert "os.fork(" not in text and "signal.signal(" not in text, path


def test_public_names_are_pinned():
    assert sorted(netassist.__all__) == [
        "ExitCode",
        "NetassistError",
        "ServerConfig",
        "__version__",
        "serve",
    ]
