"""``make run``, as a new user types it: the demo site in the foreground, its URL printed."""

from __future__ import annotations

import pytest

from tests.conftest import MakeForeground, free_port

pytestmark = pytest.mark.integration


def test_make_run_serves_the_demo_site_and_prints_its_url(seed_env):
    port = free_port()
    make = MakeForeground("run", f"RUN_ADDRESS=127.0.0.1:{port}", env=seed_env)
    try:
        home = make.first_answer(f"http://127.0.0.1:{port}/")
        assert home.status_code == 200 and "欢迎来到我的首页" in home.text
    finally:
        output = make.stop()
    assert f"open http://127.0.0.1:{port}/ (Ctrl-C stops it)" in output
    assert f"listening on http://127.0.0.1:{port}" in output
