"""The hex dump matches xxd, byte for byte."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from netassist.wire.hexdump import hexdump


def test_hexdump_layout():
    assert hexdump(b"Hello world\n") == (
        "00000000: 4865 6c6c 6f20 776f 726c 640a            Hello world.\n"
    )
    assert hexdump(b"") == ""


def test_hexdump_continues_offsets():
    assert hexdump(b"\x00", offset=0x20).startswith("00000020: 00")


@pytest.mark.parametrize("size", [1, 15, 16, 17, 33, 256])
def test_hexdump_equals_xxd(size):
    xxd = shutil.which("xxd")
    if xxd is None:
        pytest.skip("xxd is not installed")
    data = bytes((i * 37 + 11) % 256 for i in range(size))
    assert (
        hexdump(data)
        == subprocess.run([xxd], input=data, capture_output=True, check=True).stdout.decode()
    )
