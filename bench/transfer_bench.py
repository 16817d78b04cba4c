"""File transfer: netassist files against nc, a bare socket loop and http.server + curl.

    python bench/transfer_bench.py [--repeats 3] [--size-mib 1024]

One file over loopback into a file on disk, time from the client's start to its exit:
- netassist files get: verified end to end (SHA-256), first with a cold digest cache (the
  server hashes before it sends), then warm (a second download hashes nothing on the server);
- nc -l > file fed by nc -N < file: no verification at all;
- the same with the check nc users add by hand: SHA-256 (openssl dgst) of the file on the
  sending side, and of the stream through tee on the receiving side, compared at the end;
- a bare Python socket loop (sendfile into recv_into + write): no verification;
- curl -o file from python -m http.server: no verification;
- scp from an sshd this bench starts on a loopback port with keys it makes (where sshd and
  scp are installed): SSH's own per-packet integrity, no file digest.
Every tool gets the whole machine, as its users run it (netassist hashes on a second thread
while the first moves data; nc and the others are single-threaded); --pin puts every sender
on core 0 and every receiver on core 1 instead. Files in tmpfs (/dev/shm) when it has room,
so the disk is not what is measured; medians of --repeats interleaved rounds.
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

PY = str(HERE.parent / ".venv" / "bin" / "python")
# Timed runs include start-up: let Python cache its bytecode as it does on a normal install,
# rather than compile every module on every run where the environment says not to.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

BARE_SENDER = """
import os, socket, sys
listener = socket.socket(); listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1]))); listener.listen(1)
print("ready", flush=True)
conn, _ = listener.accept()
with open(sys.argv[2], "rb") as f:
    conn.sendfile(f)
conn.close()
"""
BARE_RECEIVER = """
import socket, sys
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
buffer = bytearray(1 << 20); view = memoryview(buffer)
with open(sys.argv[2], "wb") as out:
    while n := sock.recv_into(buffer):
        out.write(view[:n])
"""


PINNED = False  # set by --pin
SHA256 = "openssl dgst -sha256 -r"


def on(core: int) -> list[str]:
    """The command prefix that pins to ``core`` under --pin, else nothing."""
    return ["taskset", "-c", str(core)] if PINNED else []


def wait_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([*on(1), *command], check=True, stdout=subprocess.DEVNULL, timeout=600)
    return time.perf_counter() - started


@contextlib.contextmanager
def files_server(root: Path) -> Iterator[int]:
    """``netassist files serve root`` pinned to core 0; yields its port, stops it after."""
    port = free_port()
    command = [PY, "-m", "netassist", "files", "serve", str(root), "--bind", f"127.0.0.1:{port}"]
    server = subprocess.Popen([*on(0), *command], stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port
    finally:
        server.terminate()
        server.wait(10)


def run_netassist(src: Path, out: Path, warm: bool) -> float:
    with files_server(src.parent) as port:
        fetch = [PY, "-m", "netassist", "files", "get", f"127.0.0.1:{port}", src.name]
        if warm:
            # Fill the server's digest cache first, into another folder: the timed run then
            # writes a new file, as every other tool here does.
            warmup = out.parent / "warmup"
            timed([*fetch, "-o", str(warmup), "--quiet"])
            shutil.rmtree(warmup)
        return timed([*fetch, "-o", str(out), "--quiet"])


def run_nc(src: Path, out: Path) -> float:
    port = free_port()
    with open(out / "nc.bin", "wb") as sink:
        receiver = subprocess.Popen([*on(1), "nc", "-l", "127.0.0.1", str(port)], stdout=sink)
        time.sleep(0.3)
        started = time.perf_counter()
        with open(src, "rb") as source:
            subprocess.run([*on(0), "nc", "-N", "127.0.0.1", str(port)], stdin=source, check=True)
        receiver.wait(600)
        return time.perf_counter() - started


def run_nc_verified(src: Path, out: Path) -> float:
    """nc with the check its users add by hand: SHA-256 of the file on the sending side
    while it goes, and of the stream on the receiving side (tee), compared at the end. The
    hasher is ``openssl dgst``, which uses the CPU's SHA instructions (coreutils' sha256sum
    here does not, and takes 5.8 s per GiB against openssl's 1.1)."""
    port = free_port()
    target = out / "nc-verified.bin"
    receiver = subprocess.Popen(
        [*on(1), "sh", "-c", f"nc -l 127.0.0.1 {port} | tee {target} | {SHA256}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.3)
    started = time.perf_counter()
    local = subprocess.Popen(
        [*on(0), "sh", "-c", f"{SHA256} < {src}"], stdout=subprocess.PIPE, text=True
    )
    with open(src, "rb") as source:
        subprocess.run([*on(0), "nc", "-N", "127.0.0.1", str(port)], stdin=source, check=True)
    received, _ = receiver.communicate(timeout=600)
    sent, _ = local.communicate(timeout=600)
    elapsed = time.perf_counter() - started
    if received.split()[0] != sent.split()[0]:
        raise RuntimeError("nc + SHA-256: the digests differ")
    return elapsed


def run_bare(src: Path, out: Path) -> float:
    port = free_port()
    sender = subprocess.Popen(
        [*on(0), sys.executable, "-c", BARE_SENDER, str(port), str(src)],
        stdout=subprocess.PIPE,
        text=True,
    )
    sender.stdout.readline()
    elapsed = timed([sys.executable, "-c", BARE_RECEIVER, str(port), str(out / "bare.bin")])
    sender.wait(60)
    return elapsed


def run_http(src: Path, out: Path) -> float:
    port = free_port()
    server = subprocess.Popen(
        [
            *on(0),
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(src.parent),
        ],
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        return timed(
            ["curl", "-s", "-o", str(out / "curl.bin"), f"http://127.0.0.1:{port}/{src.name}"]
        )
    finally:
        server.terminate()
        server.wait(10)


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
def ssh_server(tmp: Path) -> Iterator[list[str] | None]:
    """An sshd of this bench's own on a free loopback port, with a key made for it; yields
    the scp command prefix that reaches it, or None where sshd or scp is missing."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not (os.path.exists(sshd) and shutil.which("scp") and shutil.which("ssh-keygen")):
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
    server = subprocess.Popen(
        [*on(0), sshd, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port)
        yield [
            "scp",
            "-q",
            "-P",
            str(port),
            "-i",
            str(home / "client_key"),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            f"UserKnownHostsFile={home / 'known_hosts'}",
        ]
    finally:
        server.terminate()
        server.wait(10)


def run_scp(scp: list[str] | None, remote: Path, out: Path, *, recursive: bool = False) -> float:
    """Seconds for scp (over this bench's own sshd) to fetch ``remote`` into ``out``."""
    assert scp is not None
    user = os.environ.get("USER") or "root"
    return timed([*scp, *(["-r"] if recursive else []), f"{user}@127.0.0.1:{remote}", str(out)])


def many_files(tmp: Path, count: int, scp: list[str] | None = None) -> dict[str, float]:
    """Files per second for ``count`` files of 4 KiB: netassist files get against tar | nc."""
    tree = tmp / "many" / "tree"
    tree.mkdir(parents=True)
    block = os.urandom(4096)
    for i in range(count):
        folder = tree / f"d{i // 500}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{i}.bin").write_bytes(block)
    rates = {}
    with files_server(tree.parent) as port:
        out = tmp / "many-out"
        rates["netassist files get"] = count / timed(
            [
                PY,
                "-m",
                "netassist",
                "files",
                "get",
                f"127.0.0.1:{port}",
                "tree",
                "-o",
                str(out),
                "--quiet",
            ]
        )
    if shutil.which("nc") and shutil.which("tar"):
        port = free_port()
        out = tmp / "many-tar"
        out.mkdir()
        receiver = subprocess.Popen(
            [*on(1), "sh", "-c", f"nc -l 127.0.0.1 {port} | tar -x -C {out}"]
        )
        time.sleep(0.3)
        started = time.perf_counter()
        subprocess.run(
            [
                *on(0),
                "sh",
                "-c",
                f"tar -c -C {tree.parent} tree | nc -N 127.0.0.1 {port}",
            ],
            check=True,
        )
        receiver.wait(120)
        rates["tar | nc (no verification)"] = count / (time.perf_counter() - started)
    if scp is not None:
        out = tmp / "many-scp"
        out.mkdir()
        rates["scp -r (ssh's own integrity)"] = count / run_scp(scp, tree, out, recursive=True)
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument(
        "--files", type=int, default=10_000, help="how many 4 KiB files (0 to skip)"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="sender on core 0 and receiver on core 1 (default: every tool gets the machine)",
    )
    args = parser.parse_args()
    global PINNED
    PINNED = args.pin
    size = args.size_mib << 20
    tools = {
        "netassist (cold digest)": lambda s, o: run_netassist(s, o, warm=False),
        "netassist (warm digest)": lambda s, o: run_netassist(s, o, warm=True),
        "bare socket loop": run_bare,
        "python -m http.server + curl": run_http,
    }
    if shutil.which("nc"):
        tools["nc (no verification)"] = run_nc
        if shutil.which("openssl") and shutil.which("tee"):
            tools["nc + openssl sha256, 2 ends"] = run_nc_verified
    # Everything lives in tmpfs when there is one: the figures are about moving and checking
    # bytes, not about how fast this machine's disk flushes dirty pages.
    scratch = (
        "/dev/shm"
        if os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 3 * size
        else None
    )
    with (
        tempfile.TemporaryDirectory(dir=scratch) as tmp,
        ssh_server(Path(tmp)) as scp,
    ):
        if scp is not None:
            tools["scp (ssh's own integrity)"] = lambda s, o: run_scp(scp, s, o)
        results: dict[str, list[float]] = {name: [] for name in tools}
        src = Path(tmp) / "src" / "payload.bin"
        src.parent.mkdir()
        with open(src, "wb") as handle:
            block = os.urandom(1 << 20)
            for _ in range(args.size_mib):
                handle.write(block)
        many: dict[str, list[float]] = {}
        for _ in range(args.repeats if args.files else 0):
            with tempfile.TemporaryDirectory(dir=tmp) as round_tmp:
                for name, rate in many_files(Path(round_tmp), args.files, scp).items():
                    many.setdefault(name, []).append(rate)
        for _ in range(args.repeats):
            for name, run in tools.items():
                out = Path(tmp) / "out"
                out.mkdir(exist_ok=True)
                results[name].append(size / run(src, out) / 1e9)
                shutil.rmtree(out)
    base = (
        statistics.median(results["nc (no verification)"])
        if "nc (no verification)" in results
        else None
    )
    print(f"\n{args.size_mib} MiB over loopback, medians of {args.repeats} (GB/s, ratio to nc)")
    for name, values in results.items():
        value = statistics.median(values)
        print(f"  {name:<30} {value:6.2f} GB/s" + (f"   {value / base:5.2f} x nc" if base else ""))
    if many:
        print(f"\n{args.files} files of 4 KiB, medians of {args.repeats} (files/s)")
        for name, values in many.items():
            print(f"  {name:<30} {statistics.median(values):10,.0f} files/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
