"""File transfer: netassist files against nc, tar | nc and scp, side by side in one run.

    python bench/transfer_bench.py [--repeats 5] [--size-mib 1024] [--files 5000,10000]
                                   [--disk DIR] [--no-scp]

Rounds alternate the tools (round 1: every tool once, round 2: every tool again...), and the
figures are medians over the rounds, with the spread (lowest-highest) beside them: this
machine is shared and noisy. Time runs from the fetching command's start to its exit, so
process start-up counts for everyone.

1. One file of --size-mib, source and output in tmpfs (/dev/shm, so the disk is not what is
   measured): `netassist files get` from a server that has never hashed the file (a fresh
   server each round, and a new mtime), verified with BLAKE3 and with SHA-256 (--digest
   sha256); the same with the server's digest warm (fetched once before, into another
   folder); `nc -l > file` fed by `nc -N < file`, which verifies nothing; once per round, nc
   with the check its users add (openssl dgst -sha256 at both ends) and scp. CPU-seconds per
   GiB of the fetching client and of the server (from /proc/PID/stat around the fetch) are
   reported for netassist, and of both nc processes.
2. With --disk DIR: the same file fetched into DIR (a real disk: writeback counts), and a
   source in DIR whose pages are dropped before each round (posix_fadvise DONTNEED, this
   file alone), so the server reads it from the disk while it sends it: the server's
   read_bytes (/proc/PID/io) says how often the file was read from the disk.
3. Folders of --files 4 KiB files in 50 folders, a new tree each round (nothing hashed
   before): `netassist files get` (streamed, verified) against `tar c | nc` into
   `nc -l | tar x` (no verification) and `scp -r`, all in tmpfs; and each round a folder of
   one file, by netassist and by tar | nc: the fixed cost (start-up, connection, handshake)
   that a folder's time includes.
The load average is printed at the start and after each section.
scp runs against an sshd this bench starts on a free loopback port with keys it makes
(apt-get install openssh-server; --no-scp skips it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from bench.common import free_port  # noqa: E402

VENV = HERE.parent / ".venv" / "bin"
NETASSIST = [str(VENV / "netassist")]  # the command as users run it
# Timed runs include start-up: let Python cache its bytecode as it does on a normal install.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
TICK = os.sysconf("SC_CLK_TCK")
SHA256 = "openssl dgst -sha256 -r"
GIB = 1 << 30


def wait_port(port: int) -> None:
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.025)
    raise RuntimeError("server did not start")


def run(command: list[str], **kwargs) -> tuple[float, float]:
    """Run ``command`` to its end: (wall seconds, CPU seconds of it and its children)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, **kwargs)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{command[:4]} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def cpu_of(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` (all its threads)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def disk_reads(pid: int) -> int:
    """Bytes process ``pid`` has caused to be read from storage."""
    with open(f"/proc/{pid}/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("read_bytes"))


@contextlib.contextmanager
def files_server(root: Path) -> Iterator[tuple[int, int]]:
    """A fresh ``netassist files serve root`` (nothing hashed yet); yields (port, pid)."""
    port = free_port()
    command = [*NETASSIST, "files", "serve", str(root), "--bind", f"127.0.0.1:{port}", "--quiet"]
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port, server.pid
    finally:
        server.terminate()
        server.wait(10)


def fetch(port: int, remote: str, out: Path) -> list[str]:
    return [*NETASSIST, "files", "get", f"127.0.0.1:{port}", remote, "-o", str(out), "--quiet"]


def netassist_file(src: Path, out: Path, *, digest: str, warm: bool) -> dict[str, float]:
    """One verified fetch of ``src``; wall time and CPU of each side."""
    os.utime(src)  # a new mtime: nothing cached anywhere under the old one matters
    with files_server(src.parent) as (port, pid):
        command = [*fetch(port, src.name, out), "--digest", digest]
        if warm:
            run([*fetch(port, src.name, out / "warmup"), "--digest", digest])
            shutil.rmtree(out / "warmup")
        before, reads = cpu_of(pid), disk_reads(pid)
        wall, client = run(command)
        return {
            "wall": wall,
            "client": client,
            "server": cpu_of(pid) - before,
            "server_disk": disk_reads(pid) - reads,
        }


def nc_file(src: Path, out: Path) -> dict[str, float]:
    port = free_port()
    with open(out / "nc.bin", "wb") as sink:
        receiver = subprocess.Popen(["nc", "-l", "127.0.0.1", str(port)], stdout=sink)
        time.sleep(0.2)
        with open(src, "rb") as source:
            wall, sender = run(["nc", "-N", "127.0.0.1", str(port)], stdin=source)
        _, _, usage = os.wait4(receiver.pid, 0)
        receiver.returncode = 0
    return {"wall": wall, "client": usage.ru_utime + usage.ru_stime, "server": sender}


def nc_verified(src: Path, out: Path) -> dict[str, float]:
    """nc with the check its users add by hand: openssl's SHA-256 at both ends."""
    port = free_port()
    target = out / "nc-verified.bin"
    receiver = subprocess.Popen(
        ["sh", "-c", f"nc -l 127.0.0.1 {port} | tee {target} | {SHA256}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.2)
    started = time.perf_counter()
    local = subprocess.Popen(["sh", "-c", f"{SHA256} < {src}"], stdout=subprocess.PIPE, text=True)
    with open(src, "rb") as source:
        subprocess.run(["nc", "-N", "127.0.0.1", str(port)], stdin=source, check=True)
    received, _ = receiver.communicate(timeout=600)
    sent, _ = local.communicate(timeout=600)
    if received.split()[0] != sent.split()[0]:
        raise RuntimeError("nc + SHA-256: the digests differ")
    return {"wall": time.perf_counter() - started}


SSHD_CONFIG = """Port {port}
ListenAddress 127.0.0.1
HostKey {tmp}/host_key
PidFile {tmp}/sshd.pid
AuthorizedKeysFile {tmp}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
"""


@contextlib.contextmanager
def ssh_server(tmp: Path, wanted: bool) -> Iterator[list[str] | None]:
    """An sshd of this bench's own on a free loopback port, with a key made for it; yields
    the scp command prefix that reaches it, or None where sshd or scp is missing."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not (wanted and os.path.exists(sshd) and shutil.which("scp")):
        yield None
        return
    home = tmp / "ssh"
    home.mkdir()
    for name in ("host_key", "client_key"):
        keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / name)]
        subprocess.run(keygen, check=True)
    shutil.copy(home / "client_key.pub", home / "authorized_keys")
    port = free_port()
    config = home / "sshd_config"
    config.write_text(SSHD_CONFIG.format(port=port, tmp=home))
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation folder
    server = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        user = os.environ.get("USER") or "root"
        yield [
            *("scp", "-q", "-P", str(port), "-i", str(home / "client_key")),
            *("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"),
            *("-o", f"UserKnownHostsFile={home / 'known_hosts'}", f"{user}@127.0.0.1:"),
        ]
    finally:
        server.terminate()
        server.wait(10)


def scp(prefix: list[str], remote: Path, out: Path, recursive: bool = False) -> dict[str, float]:
    *command, host = prefix
    wall, _ = run([*command, *(["-r"] if recursive else []), f"{host}{remote}", str(out)])
    return {"wall": wall}


def make_tree(root: Path, count: int) -> Path:
    """``count`` files of 4 KiB in 50 folders below ``root/tree``."""
    tree = root / "tree"
    block = os.urandom(4096)
    per_folder = max(1, count // 50)
    for i in range(count):
        folder = tree / f"d{i // per_folder:02}"
        if i % per_folder == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i}.bin").write_bytes(block)
    return tree


def netassist_tree(tree: Path, out: Path) -> dict[str, float]:
    with files_server(tree.parent) as (port, pid):
        before = cpu_of(pid)
        wall, client = run(fetch(port, tree.name, out))
        return {"wall": wall, "client": client, "server": cpu_of(pid) - before}


def tar_nc_tree(tree: Path, out: Path) -> dict[str, float]:
    port = free_port()
    out.mkdir()
    receiver = subprocess.Popen(["sh", "-c", f"nc -l 127.0.0.1 {port} | tar -x -C {out}"])
    time.sleep(0.2)
    command = f"tar -c -C {tree.parent} {tree.name} | nc -N 127.0.0.1 {port}"
    started = time.perf_counter()
    _, sender = run(["sh", "-c", command])  # its CPU: tar c and nc, which sh waits for
    _, _, usage = os.wait4(receiver.pid, 0)
    receiver.returncode = 0
    wall = time.perf_counter() - started
    return {"wall": wall, "client": usage.ru_utime + usage.ru_stime, "server": sender}


class Table:
    """Figures per tool over the rounds."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, list[float]]] = {}

    def add(self, name: str, figures: dict[str, float]) -> None:
        row = self.rows.setdefault(name, {})
        for key, value in figures.items():
            row.setdefault(key, []).append(value)

    def median(self, name: str, key: str = "wall") -> float:
        return statistics.median(self.rows[name][key])

    def spread(self, name: str, key: str = "wall") -> tuple[float, float]:
        return min(self.rows[name][key]), max(self.rows[name][key])


def say_file(title: str, table: Table, size: int, base: str) -> None:
    print(f"\n{title}: medians (lowest-highest) of {len(table.rows[base]['wall'])} rounds")
    gib = size / GIB
    reference = table.median(base)
    for name, row in table.rows.items():
        wall = table.median(name)
        low, high = table.spread(name)
        line = (
            f"  {name:<34} {size / wall / 1e9:5.2f} GB/s ({size / high / 1e9:.2f}-"
            f"{size / low / 1e9:.2f})  {reference / wall:5.2f}x {base.split(' ')[0]}"
        )
        if "client" in row:
            line += (
                f"  CPU s/GiB client {table.median(name, 'client') / gib:.2f}"
                f" server {table.median(name, 'server') / gib:.2f}"
            )
        if "server_disk" in row and table.median(name, "server_disk"):
            line += f"  server read {table.median(name, 'server_disk') / size:.2f}x the file"
        print(line)


def one_file(args, tmp: Path, out_root: Path, scp_prefix, title: str, src: Path) -> None:
    size = src.stat().st_size
    table = Table()
    tools = {
        "netassist, digest cold, BLAKE3": lambda o: netassist_file(
            src, o, digest="blake3", warm=False
        ),
        "netassist, digest cold, SHA-256": lambda o: netassist_file(
            src, o, digest="sha256", warm=False
        ),
        "netassist, digest warm, BLAKE3": lambda o: netassist_file(
            src, o, digest="blake3", warm=True
        ),
        "nc (no verification)": lambda o: nc_file(src, o),
    }
    if not args.quick:
        tools["nc + openssl sha256, 2 ends"] = lambda o: nc_verified(src, o)
        if scp_prefix is not None:
            tools["scp (ssh's own integrity)"] = lambda o: scp(scp_prefix, src, o)
    for _ in range(args.repeats):
        for name, tool in tools.items():
            if args.drop_cache:
                drop_pages(src)
            out = Path(tempfile.mkdtemp(dir=out_root))
            try:
                table.add(name, tool(out))
            finally:
                shutil.rmtree(out)
    say_file(title, table, size, "nc (no verification)")
    say_load()


def drop_pages(path: Path) -> None:
    """Evict ``path``'s pages from the page cache (this file alone), so it is read from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def many_files(args, tmp: Path, count: int, scp_prefix) -> None:
    table, fixed = Table(), Table()
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(dir=tmp) as round_tmp:
            root = Path(round_tmp)
            tree = make_tree(root / "src", count)
            table.add("netassist files get (verified)", netassist_tree(tree, root / "na"))
            table.add("tar c | nc -> nc -l | tar x", tar_nc_tree(tree, root / "tar"))
            # The fixed cost of each (start-up, connection, handshake): one file alone.
            one = make_tree(root / "one", 1)
            fixed.add("netassist", netassist_tree(one, root / "na1"))
            fixed.add("tar | nc", tar_nc_tree(one, root / "tar1"))
            if scp_prefix is not None and not args.quick:
                (root / "scp").mkdir()
                table.add("scp -r (ssh's own integrity)", scp(scp_prefix, tree, root / "scp", True))
    base = "tar c | nc -> nc -l | tar x"
    print(f"\n{count:,} files of 4 KiB in 50 folders, tmpfs: medians (lowest-highest)")
    for name in table.rows:
        wall = table.median(name)
        low, high = table.spread(name)
        line = (
            f"  {name:<34} {count / wall:9,.0f} files/s ({count / high:,.0f}-{count / low:,.0f})"
            f"  {table.median(base) / wall:5.2f}x tar | nc"
        )
        if "client" in table.rows[name]:
            line += (
                f"  CPU s client {table.median(name, 'client'):.2f}"
                f" server {table.median(name, 'server'):.2f}"
            )
        print(line)
    print(
        f"  fixed cost (a folder of one 4 KiB file): netassist {fixed.median('netassist'):.3f} s"
        f" (CPU client {fixed.median('netassist', 'client'):.3f}), tar | nc"
        f" {fixed.median('tar | nc'):.3f} s"
    )
    say_load()


def say_load() -> None:
    """The load average now: the machine is shared, and a ratio means more beside it."""
    print("  load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", default="5000,10000", help="folder sizes (0 to skip)")
    parser.add_argument("--disk", metavar="DIR", help="also fetch into DIR and from DIR, cold")
    parser.add_argument("--no-scp", action="store_true", help="leave scp out")
    parser.add_argument(
        "--quick", action="store_true", help="netassist and nc (tar | nc) only, no scp"
    )
    args = parser.parse_args()
    args.drop_cache = False
    print("start:")
    say_load()
    with (
        tempfile.TemporaryDirectory(dir="/dev/shm") as tmp_name,
        ssh_server(Path(tmp_name), not (args.no_scp or args.quick)) as scp_prefix,
    ):
        tmp = Path(tmp_name)
        src = tmp / "src" / "payload.bin"
        if args.size_mib:
            src.parent.mkdir()
            with open(src, "wb") as handle:
                block = os.urandom(1 << 20)
                for _ in range(args.size_mib):
                    handle.write(block)
            title = f"{args.size_mib} MiB, source and output in tmpfs, page cache hot"
            one_file(args, tmp, tmp, scp_prefix, title, src)
        if args.disk and args.size_mib:
            with tempfile.TemporaryDirectory(dir=args.disk) as disk:
                title = f"{args.size_mib} MiB from tmpfs into {args.disk} (disk, writeback)"
                one_file(args, tmp, Path(disk), None, title, src)
                cold = Path(disk) / "src" / "payload.bin"
                cold.parent.mkdir()
                shutil.copy(src, cold)
                args.drop_cache = True
                title = f"{args.size_mib} MiB from {args.disk}, page cache cold, into tmpfs"
                one_file(args, tmp, tmp, None, title, cold)
                args.drop_cache = False
        for count in (int(n) for n in args.files.split(",") if int(n)):
            many_files(args, tmp, count, scp_prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
