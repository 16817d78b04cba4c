"""netassist.web uses only portable standard-library calls: the demo site still answers every
page with the POSIX-only names deleted (as on Windows), through the in-process client."""

from __future__ import annotations

import subprocess
import sys

from tests.web.conftest import EXAMPLES

PROBE = """
import os, select, signal, sys
for name in ("O_NOFOLLOW", "pread", "pwrite", "sendfile", "fork", "getuid", "geteuid",
             "setsid", "killpg", "getpgid", "mkfifo"):
    if hasattr(os, name):
        delattr(os, name)
for name in ("epoll", "poll", "kqueue"):
    if hasattr(select, name):
        delattr(select, name)
for name in ("SIGHUP", "SIGTTIN", "SIGTTOU", "SIGCHLD"):
    if hasattr(signal, name):
        delattr(signal, name)
sys.path.insert(0, sys.argv[1])
import seed_site
from netassist.web.testing import Client

client = Client(seed_site.app)
for path, status in [("/", 200), ("/index.html", 200), ("/test", 200), ("/demo", 200),
                     ("/hello", 200), ("/info", 200), ("/login", 200), ("/register", 200),
                     ("/nope", 404), ("/static/site.css", 200)]:
    answer = client.get(path)
    assert answer.status_code == status, (path, answer.status_code, answer.text[:300])
form = {"username": "zhao", "email": "z@example.org", "password": "secret1", "password2": "secret1"}
assert "注册成功" in client.post("/register", data=form).text
assert client.post("/login", data={"username": "zhao", "password": "secret1"}).status_code == 303
print("ok")
"""


def test_the_demo_site_without_posix_only_names(seed_env):
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(EXAMPLES)],
        capture_output=True,
        text=True,
        timeout=60,
        env=seed_env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
