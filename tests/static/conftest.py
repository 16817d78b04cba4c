"""Fixtures of the static-file tests: a folder to serve, and ``netassist serve`` on it."""

from __future__ import annotations

import gzip
import os

import pytest

CANARY = "CANARY-7f3a-must-never-be-served"


@pytest.fixture
def site(tmp_path):
    """A folder to serve, and a canary file right next to it."""
    root = tmp_path / "site"
    (root / "sub" / "深层").mkdir(parents=True)
    (root / "a.txt").write_text("hello\n")
    (root / "data.bin").write_bytes(bytes(range(256)) * 40)  # 10,240 bytes
    (root / "中文 #1?%.txt").write_text("中文内容\n")
    (root / "sub" / "b.txt").write_text("b\n")
    (root / "sub" / "深层" / "c.txt").write_text("c\n")
    (root / "app.js").write_text("console.log('plain');\n" * 50)
    (root / "app.js.gz").write_bytes(gzip.compress(b"console.log('plain');\n" * 50))
    (root / "style.css").write_text("body { color: red; }\n" * 100)
    (root / "module.wasm").write_bytes(b"\x00asm\x01\x00\x00\x00")
    (root / "empty.txt").write_bytes(b"")
    (root / ".secret").write_text(CANARY)
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_text("<!DOCTYPE html><title>docs</title>")
    (tmp_path / "canary.txt").write_text(CANARY)
    os.symlink(tmp_path / "canary.txt", root / "link-out")
    os.symlink(tmp_path, root / "dir-out")
    os.mkfifo(root / "fifo")
    return root


@pytest.fixture
def serve_folder(netassist):
    """Start ``netassist serve FOLDER ARGS...`` on a free port; returns its base URL."""

    def start(folder, *args: str) -> str:
        proc = netassist("serve", str(folder), "--bind", "127.0.0.1:0", *args)
        port = proc.expect_stderr(r"listening on http://127\.0\.0\.1:(\d+)").group(1)
        return f"http://127.0.0.1:{port}"

    return start


@pytest.fixture
def serve(serve_folder, site):
    """Start ``netassist serve`` on :func:`site` with ARGS; returns its base URL."""
    return lambda *args: serve_folder(site, *args)
