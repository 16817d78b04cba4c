"""Run ``netassist ARGS...`` as on a system without the POSIX-only names the transfer code
could use (Windows has none of them): they are deleted from ``os`` before netassist loads."""

import os
import sys

GONE = ("O_NOFOLLOW", "O_CLOEXEC", "pread", "preadv", "pwrite", "pwritev", "sendfile")

for name in GONE:
    if hasattr(os, name):
        delattr(os, name)
os.supports_fd.discard(os.utime)  # no times set through a descriptor either

from netassist.cli import main  # noqa: E402  (after the names are gone, on purpose)

sys.exit(main(sys.argv[1:]))
