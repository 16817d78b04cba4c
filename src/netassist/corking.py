"""TCP_CORK around large sends: only full segments leave until the cork comes off.

nginx calls this ``tcp_nopush``. On loopback it moved a 1 GiB file to curl at 2.39 against
2.09 GB/s uncorked (bench/README.md). Both file servers use it for large files.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

# Below this a response is a few segments at most: the two setsockopt calls would cost more
# than they save.
CORK_MIN = 1 << 20


def set_cork(sock: socket.socket, on: bool) -> bool:
    """Put the cork on or take it off (taking it off sends the last partial segment);
    False where the socket has no such option (Unix sockets, other systems)."""
    cork = getattr(socket, "TCP_CORK", None)  # Linux only; Windows has no AF_UNIX either
    if cork is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, cork, on)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def corked(sock: socket.socket, length: int) -> Iterator[None]:
    """Corked for the length of the block when it sends ``length`` bytes or more (see
    :data:`CORK_MIN`); uncorked after it, however it ends."""
    was_set = length >= CORK_MIN and set_cork(sock, True)
    try:
        yield
    finally:
        if was_set:
            set_cork(sock, False)
