"""A throw-away PostgreSQL cluster: made in a temporary folder, on a free loopback port and
a unix socket in that folder, and removed when stopped. Standard library only, so that
.ci/run can start one before the project's .venv exists:

    python3 tests/examples/postgres.py start FOLDER   # an empty folder; prints the URL
    python3 tests/examples/postgres.py stop FOLDER    # stops it and removes the folder

The tests use the cluster named by $TICKETS_TEST_DATABASE_URL (what .ci/run starts), or
start their own with :class:`Cluster` where PostgreSQL's programs are installed. PostgreSQL
refuses to run as root: as root, the cluster is made and run as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path


def programs() -> Path | None:
    """The folder of initdb and pg_ctl (Debian keeps them per version), or None."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """One PostgreSQL server of our own; ``url`` reaches its ``postgres`` database over TCP
    on loopback as the superuser ``postgres`` (trust authentication: only this machine's
    loopback and the socket folder, which only its owner may enter, can reach it)."""

    def __init__(
        self, folder: str | None = None, port: int | None = None, durable: bool = False
    ) -> None:
        bin_dir = programs()
        if bin_dir is None:
            raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = bin_dir
        self.folder = Path(folder or tempfile.mkdtemp(prefix="netassist-pg-"))
        self.data = self.folder / "data"
        self.port = port or _free_port()
        self.as_user = "postgres" if os.geteuid() == 0 else None
        # Tests lose nothing they need if the machine crashes: skip the syncs. A benchmark
        # asks for the real thing (durable=True), as a deployment would run.
        self.durable = durable

    @property
    def url(self) -> str:
        """The maintenance database's URL."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}")

    def start(self) -> Cluster:
        """initdb, then start the server and wait until it accepts connections."""
        if self.as_user:
            entry = pwd.getpwnam(self.as_user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self.folder.chmod(0o700)
        self._run(
            "initdb",
            *("-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"),
            *("--locale", "C", "--no-sync"),
        )
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
            " -c max_connections=200 -c shared_buffers=64MB"
        )
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        log = self.folder / "server.log"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(log), "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        """Stop the server (fast: sessions are ended) and remove its folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    """``start FOLDER`` makes a cluster there and prints its URL; ``stop FOLDER`` stops it
    and removes the folder."""
    if len(argv) == 2 and argv[0] in ("start", "stop"):
        cluster = Cluster(argv[1])
        if argv[0] == "start":
            print(cluster.start().url)
        else:
            cluster.stop()
        return 0
    print("usage: postgres.py start FOLDER | stop FOLDER", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
