"""Run ``netassist ARGS...`` as on a system without the POSIX-only names (Windows has none
of them): they are deleted before netassist is imported, so every fallback is the one that
runs. selectors' plain select() instead of epoll and poll, a socket pair instead of
os.pipe, socket methods instead of os.read on sockets, reads instead of os.sendfile and
os.pread, opening without O_NOFOLLOW or O_CLOEXEC, no Unix sockets, no TCP_CORK, no fork,
no resource module. With NETASSIST_SAY_SELECTOR set, the selector chosen is said on stderr.
"""

import functools
import importlib
import os
import sys

# os first: socket decides at its import whether socket.sendfile may use os.sendfile.
for name in (
    "O_NOFOLLOW",
    "O_CLOEXEC",
    "pipe",
    "pipe2",
    "sendfile",
    "pread",
    "preadv",
    "pwrite",
    "pwritev",
    "fork",
    "forkpty",
    "mkfifo",
):
    if hasattr(os, name):
        delattr(os, name)
import select  # noqa: E402
import socket  # noqa: E402

for module, names in (
    (select, ("epoll", "poll", "devpoll", "kqueue")),
    (socket, ("TCP_CORK", "TCP_DEFER_ACCEPT", "SO_REUSEPORT")),
):
    for name in names:
        if hasattr(module, name):
            delattr(module, name)
os.supports_fd.discard(os.utime)  # no times set through a descriptor either
# Windows has socket.socketpair (emulated over TCP) but no AF_UNIX.
socket.socketpair = functools.partial(socket.socketpair, socket.AF_UNIX)
del socket.AF_UNIX
for name in ("fcntl", "resource", "termios", "pwd", "grp"):
    sys.modules[name] = None
import selectors  # noqa: E402

importlib.reload(selectors)  # socket imported it, and chose epoll, before the deletions
if os.environ.get("NETASSIST_SAY_SELECTOR"):
    print("selector:", selectors.DefaultSelector.__name__, file=sys.stderr, flush=True)

from netassist.cli import main  # noqa: E402  (after the names are gone, on purpose)

sys.argv[0] = "netassist"
sys.exit(main(sys.argv[1:]))
