"""A real terminal for tests: a tmux server of the test's own, read with capture-pane."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
import tempfile
import time
from pathlib import Path


class Terminal:
    """One tmux session on a private tmux server (unique socket and session name).

    :meth:`run` starts a shell command in it; the shell prints ``EXIT=<code>`` when the
    command ends, and survives a Ctrl-C meant for the command. :meth:`close` kills this
    server only.
    """

    def __init__(self, tmux: str, workdir: Path) -> None:
        self.tmux = tmux
        self.workdir = workdir
        self.name = f"netassist-test-{os.getpid()}-{secrets.token_hex(4)}"
        # A short path of its own (sockets allow about 100 characters), removed by close().
        self.socket = Path(tempfile.gettempdir()) / f"{self.name}.sock"

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.tmux, "-S", str(self.socket), *args], capture_output=True, text=True, check=check
        )

    def run(self, argv: list[str]) -> None:
        """Start ``argv`` in the terminal."""
        script = self.workdir / f"{self.name}.sh"
        script.write_text(
            # A trapped (not ignored) INT is reset for the command, which gets Ctrl-C itself.
            f"trap 'true' INT\n{shlex.join(argv)}\necho \"EXIT=$?\"\nsleep 600\n"
        )
        self._tmux("new-session", "-d", "-s", self.name, "-x", "160", "-y", "40", f"bash {script}")

    def screen(self) -> str:
        """What the terminal shows, its scrollback included, lines joined where wrapped."""
        return self._tmux("capture-pane", "-p", "-J", "-S", "-500", "-t", self.name).stdout

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait until the screen matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if match := re.search(pattern, screen):
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} on the screen:\n{screen}")
            time.sleep(0.1)

    def keys(self, *keys: str) -> None:
        """Type ``keys`` (tmux key names such as ``C-c`` or ``Enter``)."""
        self._tmux("send-keys", "-t", self.name, *keys)

    def close(self) -> None:
        """Kill this test's tmux server and everything in it, and remove its socket."""
        self._tmux("kill-server", check=False)
        self.socket.unlink(missing_ok=True)
