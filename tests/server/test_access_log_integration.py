"""``--access-log FILE`` on a disk that fills up: the server keeps answering, says so once
(and once more when the log takes lines again), and never prints logging's traceback."""

from __future__ import annotations

import http.client
import os
import signal

import pytest

from tests.transfer import tmpfs

pytestmark = pytest.mark.integration


def get_many(port: int, count: int, tag: str) -> list[int]:
    """``count`` GETs over one keep-alive connection; their status codes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    statuses = []
    try:
        for i in range(count):
            conn.request("GET", f"/a.txt?{tag}-{i}-" + "x" * 200)
            reply = conn.getresponse()
            reply.read()
            statuses.append(reply.status)
    finally:
        conn.close()
    return statuses


def test_a_full_disk_under_the_access_log_is_said_once(netassist, tmp_path):
    # It printed "--- Logging error ---" and a 30-line traceback for every request.
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "a.txt").write_text("hello\n")
    with tmpfs.small_disk(tmp_path / "disk", "256k") as disk:
        filler = disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass  # full: the access log cannot take a line
        finally:
            os.close(fd)
        log = disk / "access.log"
        server = netassist(
            "serve", str(tmp_path / "site"), "--bind", "127.0.0.1:0", "--access-log", str(log)
        )
        port = int(server.expect_stderr(r"listening on http://127\.0\.0\.1:(\d+)").group(1))
        assert get_many(port, 200, "full") == [200] * 200
        filler.unlink()
        assert get_many(port, 3, "after") == [200] * 3
        server.popen.send_signal(signal.SIGTERM)
        code, _, err = server.finish()
        assert "after-2-" in log.read_text()  # it takes lines again
    assert code == 0, err
    assert "Traceback" not in err and "Logging error" not in err, err
    lines = [line for line in err.splitlines() if "access log" in line]
    assert len(lines) == 2, err
    assert f"writing the access log {log}: no space left on device" in lines[0]
    assert "requests are not logged until it can be written" in lines[0]
    assert f"access log {log} is written again" in lines[1]
