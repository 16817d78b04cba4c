"""The boundaries of the design notes (shared/DESIGN.md), pinned: they hold because a test says so.

Each rule reads the package's source as syntax trees: absolute and relative imports (resolved
to full module names, so ``from ..server import config`` is ``netassist.server.config``),
names bound by ``import x as y``, and calls. The second half of this file feeds every rule a
violation written out, so a rule that stops catching what it is for fails a test too.

Two boundaries are behaviours and are tested where they run: "one settings object, used by
the CLI and the API" in tests/server/test_config.py (run and serve with no flags build
exactly ServerConfig's defaults), and "the portable commands run where POSIX-only names are
missing" in tests/server/test_portability_integration.py (serve and run with those names
deleted; the wire and transfer commands in their own tests).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import netassist

PACKAGE = Path(netassist.__file__).parent

# protocol.py: "never imports socket, selectors, threading, asyncio or the file system".
IO_MODULES = frozenset(
    {
        "_thread",
        "asyncio",
        "concurrent",
        "fcntl",
        "glob",
        "io",
        "mmap",
        "multiprocessing",
        "os",
        "pathlib",
        "select",
        "selectors",
        "shutil",
        "signal",
        "socket",
        "socketserver",
        "ssl",
        "subprocess",
        "tempfile",
        "threading",
    }
)
IO_CALLS = frozenset({"open", "input", "print", "__import__", "exec", "eval"})
# cli/: "holds no logic that a library user would also need": no networking or threads there.
NETWORKING = frozenset({"socket", "select", "selectors", "ssl", "threading", "asyncio"})
# Only server/arbiter.py may fork or handle POSIX signals.
FORKING = {"os": {"fork", "forkpty"}, "multiprocessing": None}
SIGNAL_HANDLING = {
    "signal": {
        "signal",
        "setitimer",
        "alarm",
        "siginterrupt",
        "set_wakeup_fd",
        "pthread_sigmask",
        "sigwait",
        "sigwaitinfo",
        "sigtimedwait",
    }
}
# Portable packages read no POSIX-only name at import time (they may inside functions, with a
# fallback): "os.O_NOFOLLOW, os.pread, select.epoll" and their kin.
PORTABLE = ("wire", "chat", "transfer", "static", "web")
POSIX_ONLY = {
    "os": {
        "O_NOFOLLOW",
        "O_CLOEXEC",
        "pread",
        "preadv",
        "pwrite",
        "pwritev",
        "sendfile",
        "fork",
        "mkfifo",
        "getuid",
        "geteuid",
        "sched_getaffinity",
        "posix_fadvise",
    },
    "select": {"epoll", "poll", "kqueue", "devpoll"},
    "socket": {"AF_UNIX", "TCP_CORK", "TCP_DEFER_ACCEPT", "SO_REUSEPORT", "MSG_NOSIGNAL"},
}
POSIX_ONLY_MODULES = frozenset({"fcntl", "resource", "termios", "pwd", "grp", "tty", "pty"})

# Known to break a rule, each with the issue item that removes it. Empty, and to stay so.
KNOWN: set[tuple[str, str]] = set()


def _module_name(relative: Path) -> str:
    parts = ["netassist", *relative.with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(relative: Path, tree: ast.AST) -> set[str]:
    """Every module ``tree`` imports, relative imports resolved; ``from a import b`` counts
    as ``a`` and ``a.b`` (b may be a module)."""
    package = _module_name(relative).split(".")
    if relative.name != "__init__.py":
        package.pop()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _top_level_nodes(tree: ast.Module):
    """The nodes that run at import time: all but function bodies (a function's decorators
    and default values do run)."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            arguments = node.args
            stack += [*arguments.defaults, *(d for d in arguments.kw_defaults if d)]
            stack += getattr(node, "decorator_list", [])
            continue
        yield node
        stack += ast.iter_child_nodes(node)


def _uses(tree: ast.AST, names: dict, *, import_time: bool = False) -> list[str]:
    """Uses of ``module.attribute`` for ``names`` ({module: {attributes} or None for the
    whole module}), through ``import module [as x]`` or ``from module import attribute``."""
    aliases: dict[str, str] = {}
    hits = []
    nodes = list(_top_level_nodes(tree) if import_time else ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                aliases[alias.asname or top] = top
                if top in names and names[top] is None:
                    hits.append(top)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            top = node.module.split(".")[0]
            if top in names:
                for alias in node.names:
                    if names[top] is None or alias.name in names[top]:
                        hits.append(f"{top}.{alias.name}")
    for node in nodes:
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            module = aliases[node.value.id]
            wanted = names.get(module, ())
            if wanted is not None and node.attr in wanted:
                hits.append(f"{module}.{node.attr}")
    return hits


def violations(relative: Path, source: str, modules: dict[str, set[str]] | None = None) -> set:
    """Every boundary ``source`` (the module at ``relative`` inside the package) breaks."""
    tree = ast.parse(source)
    imports = imported_modules(relative, tree)
    area = relative.parts[0] if len(relative.parts) > 1 else ""
    found = set()

    if relative.name == "protocol.py":
        reached = set(imports)
        pending = [m for m in imports if m.startswith("netassist.")]
        while pending and modules is not None:  # what its own netassist imports import
            for module in modules.get(pending.pop(), ()):
                if module not in reached:
                    reached.add(module)
                    if module.startswith("netassist."):
                        pending.append(module)
        for module in sorted(reached):
            if module.split(".")[0] in IO_MODULES:
                found.add((str(relative), f"protocol imports {module}"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in IO_CALLS
            ):
                found.add((str(relative), f"protocol calls {node.func.id}()"))

    if area in ("web", "static") and any(m.startswith("netassist.server") for m in imports):
        found.add((str(relative), f"{area}/ imports the server"))
    if area == "server" and any(m.startswith("netassist.web") for m in imports):
        found.add((str(relative), "server/ imports web/"))
    outside_cli = area != "cli" and relative.name != "__main__.py"
    if outside_cli and any(m == "netassist.cli" or m.startswith("netassist.cli.") for m in imports):
        found.add((str(relative), "imports cli/"))
    if area == "cli":
        for module in imports:
            if module.split(".")[0] in NETWORKING:
                found.add((str(relative), f"cli/ does networking itself ({module})"))

    if str(relative) != "server/arbiter.py":
        for hit in _uses(tree, FORKING) + _uses(tree, SIGNAL_HANDLING):
            found.add((str(relative), f"forks or handles signals ({hit})"))

    if area in PORTABLE:
        for hit in _uses(tree, POSIX_ONLY, import_time=True):
            found.add((str(relative), f"reads {hit} at import time"))
        for node in _top_level_nodes(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in POSIX_ONLY_MODULES:
                    found.add((str(relative), f"imports {name} at import time"))
    return found


def package_sources() -> dict[Path, str]:
    return {
        path.relative_to(PACKAGE): path.read_text(encoding="utf-8")
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def package_imports(sources: dict[Path, str]) -> dict[str, set[str]]:
    return {
        _module_name(relative): imported_modules(relative, ast.parse(source))
        for relative, source in sources.items()
    }


def test_the_package_keeps_every_boundary():
    sources = package_sources()
    assert any(r.name == "protocol.py" for r in sources), "no protocol modules found"
    modules = package_imports(sources)
    found = set()
    for relative, source in sources.items():
        found |= violations(relative, source, modules)
    assert found <= KNOWN, sorted(found - KNOWN)


# --- each rule, shown a violation ------------------------------------------------------------

BROKEN = [
    ("server/protocol.py", "import select", "protocol imports select"),
    ("server/protocol.py", "import os as system", "protocol imports os"),
    ("server/protocol.py", "from io import BytesIO", "protocol imports io"),
    ("transfer/protocol.py", "import threading", "protocol imports threading"),
    ("server/protocol.py", "def read(p):\n    return open(p).read()", "protocol calls open()"),
    ("static/app.py", "from ..server import config", "static/ imports the server"),
    ("static/app.py", "from netassist.server.wsgi import FileWrapper", "static/ imports the"),
    ("web/app.py", "from .. import server", "web/ imports the server"),
    ("server/worker.py", "from ..web import app", "server/ imports web/"),
    ("server/worker.py", "import netassist.web.routing", "server/ imports web/"),
    ("wire/tcp.py", "from .. import cli", "imports cli/"),
    ("transfer/client.py", "from ..cli.progress import shown", "imports cli/"),
    ("server/worker.py", "from netassist.cli import main", "imports cli/"),
    ("cli/wire.py", "import socket", "cli/ does networking itself"),
    ("transfer/client.py", "from os import fork", "forks or handles signals (os.fork)"),
    ("server/worker.py", "import os\npid = os.fork()", "forks or handles signals (os.fork)"),
    ("wire/tcp.py", "import os as o\ndef f():\n    o.forkpty()", "os.forkpty"),
    ("server/worker.py", "import multiprocessing", "multiprocessing"),
    ("server/worker.py", "import signal\nsignal.signal(signal.SIGTERM, print)", "signal.signal"),
    ("chat/peer.py", "from signal import signal", "signal.signal"),
    ("static/app.py", "import os\nFLAGS = os.O_RDONLY | os.O_NOFOLLOW", "os.O_NOFOLLOW at"),
    ("transfer/server.py", "import os\nPREAD = os.pread", "reads os.pread at import time"),
    ("wire/udp.py", "import select\nclass P:\n    make = select.epoll", "select.epoll at"),
    ("web/app.py", "from os import O_NOFOLLOW", "os.O_NOFOLLOW at import time"),
    ("wire/tcp.py", "import socket\ndef f(family=socket.AF_UNIX): ...", "socket.AF_UNIX at"),
    ("static/app.py", "import fcntl", "imports fcntl at import time"),
]


@pytest.mark.parametrize(("where", "source", "expected"), BROKEN)
def test_each_rule_catches_its_violation(where, source, expected):
    found = violations(Path(where), source, package_imports(package_sources()))
    assert any(expected in what for _, what in found), found


def test_a_protocol_module_importing_one_that_does_io_is_caught():
    # Through its own imports: a protocol module may import netassist modules only as pure
    # as itself.
    modules = package_imports(package_sources())
    found = violations(Path("server/protocol.py"), "from . import worker", modules)
    assert ("server/protocol.py", "protocol imports socket") in found


ALLOWED = [
    ("static/app.py", "import os\ndef f():\n    return os.O_NOFOLLOW"),  # read when called
    ("transfer/client.py", "def f():\n    from os import O_NOFOLLOW"),
    ("wire/udp.py", "import select\nclass P:\n    def f(self):\n        return select.poll()"),
    ("server/arbiter.py", "import os, signal\nos.fork()\nsignal.signal(15, print)"),
    ("server/worker.py", "import select\nEPOLL = select.epoll"),  # server/ is Linux first
    ("cli/server.py", "from netassist.cli import progress"),
    ("server/protocol.py", "import re\nfrom dataclasses import dataclass"),
]


@pytest.mark.parametrize(("where", "source"), ALLOWED)
def test_what_the_rules_allow_passes(where, source):
    assert violations(Path(where), source, package_imports(package_sources())) == set()


def test_public_names_are_pinned():
    assert sorted(netassist.__all__) == [
        "ExitCode",
        "NetassistError",
        "ServerConfig",
        "__version__",
        "serve",
    ]
