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
    # No SEED_SITE_SECRET: as for a user, the workers share the secret kept in the file.
    env = {k: v for k, v in seed_env.items() if not k.startswith(("MAKE", "SEED_SITE_SECRET"))}
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
        # Signed up and in through one worker, known to both: each request below is a new
        # connection, which either worker may take.
        base = f"http://127.0.0.1:{port}"
        form = {"username": "李四", "email": "ls@example.org", "password": "secret2"}
        welcome = requests.post(
            base + "/register", data={**form, "password2": "secret2"}, timeout=10
        )
        assert welcome.status_code == 200, welcome.text
        login = requests.post(base + "/login", data=form, allow_redirects=False, timeout=10)
        assert login.status_code == 303, login.text
        for _ in range(10):
            info = requests.get(base + "/info", cookies=login.cookies, timeout=10)
            assert "李四,欢迎回来" in info.text
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        try:
            output = make.communicate(timeout=15)[0].decode()
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            output = make.communicate()[0].decode()
    assert f"open http://127.0.0.1:{port}/ (Ctrl-C stops it)" in output
    assert f"listening on http://127.0.0.1:{port} (2 workers, " in output
