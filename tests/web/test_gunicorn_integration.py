"""The framework is plain WSGI: the demo site served by gunicorn answers as under netassist."""

from __future__ import annotations

import sys

import pytest
import requests

from tests.web.conftest import EXAMPLES

pytestmark = pytest.mark.integration


def test_the_demo_site_under_gunicorn(spawn, seed_env):
    pytest.importorskip("gunicorn")
    # No secret given: each worker imports the site itself, and must find the same one.
    seed_env = {k: v for k, v in seed_env.items() if k != "SEED_SITE_SECRET"}
    proc = spawn(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--chdir",
            str(EXAMPLES),
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "2",
            "seed_site:app",
        ],
        env=seed_env,
    )
    port = proc.expect_stderr(r"Listening at: http://127\.0\.0\.1:(\d+)", timeout=30).group(1)
    base = f"http://127.0.0.1:{port}"
    assert requests.get(base + "/test", timeout=10).json() == {"name": "zhangsan", "age": 18}
    home = requests.get(base + "/", timeout=10)
    assert home.status_code == 200 and "欢迎来到我的首页" in home.text
    missing = requests.get(base + "/nope", timeout=10)
    assert missing.status_code == 404 and "页面走丢了" in missing.text
    assert requests.put(base + "/info", timeout=10).headers["Allow"] == "GET, HEAD, OPTIONS"
    part = requests.get(base + "/demo", headers={"Range": "bytes=0-8"}, timeout=10)
    assert part.status_code == 206 and part.content == "欢迎来".encode()
    session = requests.Session()
    form = {
        "username": "wangwu",
        "email": "w@example.org",
        "password": "secret1",
        "password2": "secret1",
    }
    assert "注册成功" in session.post(base + "/register", data=form, timeout=10).text
    # Two worker processes share the accounts file and the signing secret: the sign-in
    # (POST, then the redirect to /info) works whichever worker answers each request.
    for _ in range(6):
        login = session.post(
            base + "/login", data={"username": "wangwu", "password": "secret1"}, timeout=10
        )
        assert login.status_code == 200 and "wangwu,欢迎回来" in login.text
