"""`make sanitize` runs the protocol tests against a build of the compiled core with
AddressSanitizer and UBSan: this checks that it is that build which they load."""

from __future__ import annotations

import os

import pytest

from netassist.server import cores

sanitized = "LD_PRELOAD" in os.environ and "build/sanitize" in os.environ.get("PYTHONPATH", "")


@pytest.mark.skipif(not sanitized, reason="runs under `make sanitize` only")
def test_the_sanitized_build_is_the_one_loaded():
    speedups = cores.built()
    assert speedups is not None
    assert "/build/sanitize/netassist/" in speedups.__file__
    with open("/proc/self/maps") as maps:
        assert "libasan" in maps.read()
