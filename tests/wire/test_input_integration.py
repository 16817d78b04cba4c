"""What ``netassist tcp``/``udp`` read from stdin: one endless line must not fill memory.

Each case pipes one huge line into a real process and reads its peak memory from the kernel
(``wait4``'s rusage of that very child), while a real peer hashes what arrives.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading

import pytest

from tests.conftest import NETASSIST

pytestmark = pytest.mark.integration

#: netassist itself takes about 25 MB; before the fix a 48 MB line took 150 MB to 1.3 GB.
PEAK_LIMIT_MB = 64


# The peak RSS of a child counts the image it was forked from (the test process, which grows
# over a whole run) until it execs; a small parent of its own keeps that out of the number.
_MEASURE = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def _run_measured(args: list[str], chunks, size: int) -> tuple[int, int, bytes]:
    """Run ``netassist ARGS``, piping ``size`` bytes made of ``chunks()`` into it.

    Returns (exit code, peak RSS in MB, stderr).
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", _MEASURE, *NETASSIST, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def feed() -> None:
        sent = 0
        try:
            for chunk in chunks():
                if sent >= size:
                    break
                proc.stdin.write(chunk)
                sent += len(chunk)
            proc.stdin.close()
        except BrokenPipeError:  # the process stopped reading (udp: the line is too long)
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    err, _, peak = proc.stderr.read().rstrip(b"\n").rpartition(b"\n")
    code = proc.wait(30)
    feeder.join(30)
    return code, int(peak) // 1024, err + b"\n" if err else b""


class HashingPeer:
    """A TCP server that hashes everything one client sends."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.digest = hashlib.sha256()
        self.count = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while data := conn.recv(1 << 20):
                self.digest.update(data)
                self.count += len(data)

    def finish(self) -> tuple[int, str]:
        self.thread.join(60)
        self.sock.close()
        return self.count, self.digest.hexdigest()


def _endless(unit: bytes):
    def chunks():
        while True:
            yield unit

    return chunks


# (option, a piece of the line as typed, the piece on the wire, its line end there, MB typed)
CASES = [
    (["--crlf"], b"abc\rdefg" * 8192, b"abc\rdefg" * 8192, b"\r\n", 128),
    (
        ["--encoding", "gbk"],
        "中文测试".encode() * 5461,
        "中文测试".encode("gbk") * 5461,
        b"\n",
        128,
    ),
    (["--hex"], b"0x48 65:6c-6c " * 4681, b"Hell" * 4681, b"", 48),
]


@pytest.mark.parametrize(
    ("option", "typed", "wire", "wire_end", "megabytes"), CASES, ids=["crlf", "gbk", "hex"]
)
def test_one_endless_line_into_tcp_connect_keeps_memory_bounded(
    option, typed, wire, wire_end, megabytes
):
    peer = HashingPeer()
    repeats = megabytes * 1024 * 1024 // len(typed) + 1
    expected = hashlib.sha256()
    for _ in range(repeats):
        expected.update(wire)
    expected.update(wire_end)

    def chunks():
        for _ in range(repeats):
            yield typed
        yield b"\n"

    code, peak, err = _run_measured(
        ["tcp", "connect", "127.0.0.1", str(peer.port), *option], chunks, size=1 << 62
    )
    count, digest = peer.finish()
    assert code == 0, err
    assert count == repeats * len(wire) + len(wire_end)
    assert digest == expected.hexdigest()
    assert peak < PEAK_LIMIT_MB, f"peak RSS {peak} MB for a {megabytes} MB line"


@pytest.mark.parametrize("whole", [False, True])
def test_one_endless_line_into_udp_send_fails_early_and_small(whole):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        port = sink.getsockname()[1]
        args = ["udp", "send", "127.0.0.1", str(port), *(["--whole"] if whole else [])]
        code, peak, err = _run_measured(args, _endless(b"x" * 65536), size=200 * 1024 * 1024)
        sink.setblocking(False)
        with pytest.raises(BlockingIOError):
            sink.recv(65536)  # nothing was sent
    assert code == 4, err
    assert err.count(b"\n") == 1 and b"more than one datagram can carry" in err, err
    assert peak < PEAK_LIMIT_MB
