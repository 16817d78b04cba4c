"""``make run``, as a new user types it: the demo site in the foreground, its URL printed."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import requests

from tests.conftest import free_port, need
from tests.web.conftest import ROOT

pytestmark = pytest.mark.integration


def test_make_run_serves_the_demo_site_and_prints_its_url(seed_env):
    need("make")
    if not (ROOT / ".venv" / "bin" / "netassist").exists():
        pytest.skip("make run needs the project's .venv (make test makes it)")
    port = free_port()
    env = {k: v for k, v in seed_env.items() if not k.startswith("MAKE")}
    # Its own process group: make and the server it starts are stopped together, by group id.
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"RUN_ADDRESS=127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                home = requests.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except requests.ConnectionError:
                assert make.poll() is None, make.stdout.read().decode()
                assert time.monotonic() < deadline, "make run did not start the site in 60 s"
                time.sleep(0.2)
        assert home.status_code == 200 and "欢迎来到我的首页" in home.text
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        try:
            output = make.communicate(timeout=15)[0].decode()
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            output = make.communicate()[0].decode()
    assert f"open http://127.0.0.1:{port}/ (Ctrl-C stops it)" in output
    assert f"listening on http://127.0.0.1:{port}" in output
