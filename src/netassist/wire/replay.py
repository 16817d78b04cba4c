"""Send the records of a ``--log`` again: the same bytes, to a new target.

Each recorded TCP connection becomes one new connection, opened when its first record is
due and shut down where the original was closed, so interleaved clients stay interleaved.
UDP records become datagrams. ``timing`` keeps the original gaps; otherwise everything goes
as fast as the sockets take it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from netassist.errors import NetassistError, UsageError, explain
from netassist.wire.record import Record
from netassist.wire.sockets import connect_tcp, explain_denied, format_address, resolve


@dataclass
class ReplayResult:
    """What was sent: counts of records and bytes, and the connections used."""

    records: int = 0
    bytes_sent: int = 0
    connections: int = 0
    replies: dict[int, bytes] = field(default_factory=dict)


def replay(
    records: Iterable[Record],
    host: str,
    port: int,
    *,
    direction: str = "out",
    timing: bool = False,
    speed: float = 1.0,
    wait: float = 2.0,
    connect_timeout: float | None = 10.0,
    on_reply: Callable[[int, bytes], None] | None = None,
) -> ReplayResult:
    """Send the ``direction`` data records of a log to ``host:port`` and return what was done.

    After sending, each TCP connection is half-closed and read until the peer closes or
    ``wait`` seconds pass (so what the peer had not yet read is not lost to a reset);
    anything it answers goes to ``on_reply(conn, data)``.
    """
    if direction not in ("in", "out"):
        raise UsageError("direction must be 'in' or 'out'")
    chosen = [
        r for r in records if (r.event == "data" and r.direction == direction) or r.event == "close"
    ]
    data_records = [r for r in chosen if r.event == "data"]
    if not data_records:
        raise NetassistError(f"the log has no {direction!r} data to replay")
    protos = {r.proto for r in data_records}
    if len(protos) > 1:
        raise UsageError("the log mixes tcp and udp records; replay one protocol at a time")
    proto = protos.pop()
    wanted_conns = {r.conn for r in data_records}
    result = ReplayResult()
    start_wall = time.monotonic()
    first_ts = data_records[0].ts
    if proto == "udp":
        return _replay_udp(data_records, host, port, timing, speed, start_wall, first_ts, result)

    connections: dict[int, socket.socket] = {}
    try:
        for record in chosen:
            if record.conn not in wanted_conns:
                continue
            if timing:
                _sleep_until(start_wall + (record.ts - first_ts) / speed)
            if record.event == "close":
                sock = connections.get(record.conn)
                if sock is not None:
                    _half_close(sock)
                continue
            sock = connections.get(record.conn)
            if sock is None:
                sock = connections[record.conn] = connect_tcp(host, port, connect_timeout)
                result.connections += 1
            try:
                sock.sendall(record.data)
            except OSError as exc:
                raise explain(exc, f"replaying to {format_address((host, port))}") from None
            result.records += 1
            result.bytes_sent += len(record.data)
        for conn, sock in connections.items():
            _half_close(sock)
            result.replies[conn] = _collect_replies(sock, wait, conn, on_reply)
    finally:
        for sock in connections.values():
            sock.close()
    return result


def _replay_udp(
    records: list[Record],
    host: str,
    port: int,
    timing: bool,
    speed: float,
    start_wall: float,
    first_ts: float,
    result: ReplayResult,
) -> ReplayResult:
    family, socktype, proto, _, sockaddr = resolve(host, port, socket.SOCK_DGRAM, proto="udp")[0]
    with socket.socket(family, socktype, proto) as sock:
        for record in records:
            if timing:
                _sleep_until(start_wall + (record.ts - first_ts) / speed)
            try:
                sock.sendto(record.data, sockaddr)
            except OSError as exc:
                raise explain_denied(
                    exc,
                    f"replaying to udp {format_address(sockaddr)}",
                    f"is {host} a broadcast address? replay sends to one host",
                ) from None
            result.records += 1
            result.bytes_sent += len(record.data)
    return result


def _sleep_until(moment: float) -> None:
    # In slices: a recorded gap divided by a small --speed can exceed what sleep() takes.
    while (delay := moment - time.monotonic()) > 0:
        time.sleep(min(delay, 3600.0))


def _half_close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _collect_replies(
    sock: socket.socket, wait: float, conn: int, on_reply: Callable[[int, bytes], None] | None
) -> bytes:
    """What the peer sends until it closes or ``wait`` seconds have passed."""
    received = bytearray()
    deadline = time.monotonic() + wait
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except (TimeoutError, OSError):
            break
        if not data:
            break
        received += data
        if on_reply:
            on_reply(conn, data)
    return bytes(received)
