"""The server's one settings object: defaults, parsing of bind addresses, validation."""

from __future__ import annotations

import pytest

from netassist.errors import BadPortError, UsageError
from netassist.server.config import Bind, ServerConfig


def test_defaults_need_no_arguments():
    config = ServerConfig.create()
    assert config.binds == (Bind("127.0.0.1", 8000),)
    assert config.threads == 1 and config.workers == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8000", Bind("127.0.0.1", 8000)),
        ("0.0.0.0:80", Bind("0.0.0.0", 80)),
        (":9000", Bind("127.0.0.1", 9000)),
        ("0.0.0.0", Bind("0.0.0.0", 8000)),
        ("[::]:9000", Bind("::", 9000)),
        ("9000", Bind("127.0.0.1", 9000)),
        ("[::1]:8080", Bind("::1", 8080)),
        ("localhost:0", Bind("localhost", 0)),
        ("unix:/tmp/app.sock", Bind(path="/tmp/app.sock")),
    ],
)
def test_bind_parsing(text, expected):
    assert Bind.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("host:http", BadPortError),
        ("h:70000", BadPortError),
        ("unix:", UsageError),
        ("[::1]8000", UsageError),
    ],
)
def test_bad_binds_say_what_to_write(text, error):
    with pytest.raises(error):
        Bind.parse(text)


def test_limits_pass_through_and_validation():
    config = ServerConfig.create(binds=["127.0.0.1:0"], max_body=10, threads=4)
    assert config.limits.max_body == 10
    for bad in (
        {"threads": 0},
        {"keep_alive": 0},
        {"script_name": "app/"},
        {"nonsense": 1},
        {"max_request_line": 0},
        {"busy_poll": -1},
        {"busy_poll": 10_001},
        {"busy_poll": 0.5},
        {"busy_poll": 50, "threads": 2},
    ):
        with pytest.raises(UsageError):
            ServerConfig.create(**bad)


def test_busy_poll_is_off_by_default_and_takes_microseconds():
    assert ServerConfig.create().busy_poll == 0
    assert ServerConfig.create(busy_poll=50).busy_poll == 50
