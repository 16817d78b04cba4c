"""Multipart uploads to a real ``netassist run``: a large file spills to disk whole, and
hostile bodies (10,000 parts, a part that never ends) get their 413 without the server
reading everything."""

from __future__ import annotations

import hashlib
import os
import select
import socket
import time

import pytest
import requests

from tests.web.conftest import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
def upload_server(netassist):
    proc = netassist(
        "run", "--chdir", str(ROOT), "tests.web.upload_app:app", "--bind", "127.0.0.1:0"
    )
    port = proc.expect_stderr(r"listening on http://127\.0\.0\.1:(\d+)", timeout=30).group(1)
    return int(port)


def test_a_large_file_and_fields_arrive_whole(upload_server):
    data = os.urandom(6 << 20)
    reply = requests.post(
        f"http://127.0.0.1:{upload_server}/upload",
        data={"note": "中文", "tag": ["a", "b"]},
        files={"doc": ("笔记 10:30.bin", data, "application/octet-stream")},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert result["fields"] == {"note": ["中文"], "tag": ["a", "b"]}
    (doc,) = result["files"]
    assert doc == {
        "name": "笔记 10:30.bin",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "on_disk": True,
    }


def test_ten_thousand_parts_are_413(upload_server):
    boundary = "b0undary"
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\nv\r\n'.encode()
            for n in range(10_000)
        )
        + f"--{boundary}--\r\n".encode()
    )
    reply = requests.post(
        f"http://127.0.0.1:{upload_server}/upload",
        data=body,
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Accept": "application/json",
        },
        timeout=30,
    )
    assert reply.status_code == 413
    assert reply.json()["error"]["message"] == "the form has more than 1000 parts"


def test_an_endless_part_is_cut_off_at_the_file_limit(upload_server):
    # A chunked body whose one file part never ends: the app stops at max_file_size (8 MiB)
    # and answers 413 while the client is still sending. (With Expect: 100-continue the
    # server hands the app the body as it arrives, as it does for curl's large uploads.)
    head = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Expect: 100-continue\r\n"
        b"Content-Type: multipart/form-data; boundary=zz\r\n\r\n"
    )
    first = b'--zz\r\nContent-Disposition: form-data; name="f"; filename="x"\r\n\r\n'
    chunk = b"%x\r\n%s\r\n" % (65536, b"\0" * 65536)
    pending = head + b"%x\r\n%s\r\n" % (len(first), first)
    sent = 0
    answer = b""
    deadline = time.monotonic() + 20
    with socket.create_connection(("127.0.0.1", upload_server), timeout=10) as sock:
        sock.setblocking(False)
        while time.monotonic() < deadline and b"\r\n\r\n" not in answer.removeprefix(
            b"HTTP/1.1 100 Continue\r\n\r\n"
        ):
            writable = [sock] if sent < (64 << 20) else []
            readable, ready, _ = select.select([sock], writable, [], 1)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                answer += data
            if ready:
                if not pending:
                    pending = chunk
                try:
                    done = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += done
                pending = pending[done:]
    answer = answer.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 32 << 20  # answered long before the client gave up
