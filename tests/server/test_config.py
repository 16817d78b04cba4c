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


def _parsed(*argv: str):
    from netassist.cli import build_parser

    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("command", [("run", "some.module:app"), ("serve", ".")])
def test_the_command_line_defaults_are_the_settings_defaults(command, monkeypatch):
    # One source of truth: with no flags, run and serve build exactly ServerConfig's defaults.
    from netassist.cli.server import config_from_args

    monkeypatch.delenv("SCRIPT_NAME", raising=False)
    assert config_from_args(_parsed(*command)) == ServerConfig.create()


def test_every_flag_reaches_its_setting():
    from netassist.cli.server import config_from_args

    config = config_from_args(
        _parsed(
            *("run", "m:app", "--keep-alive", "7", "--max-header-field", "100"),
            *("--max-body", "5", "--send-timeout", "3", "--script-name", "/app"),
        )
    )
    assert config.keep_alive == 7.0 and config.send_timeout == 3.0
    assert config.limits.max_header_field == 100 and config.limits.max_body == 5
    assert config.script_name == "/app"


def test_help_shows_the_defaults_of_the_settings():
    from tests.conftest import run_netassist

    defaults = ServerConfig()
    for command in (["run"], ["serve"]):
        text = " ".join(run_netassist(*command, "--help").stdout.decode().split())
        assert f"idle time allowed between requests (default {defaults.keep_alive})" in text
        assert f"one header field; more: 431 (default {defaults.limits.max_header_field})" in text
        assert f"(default {defaults.binds[0]})" in text


def test_options_without_an_effect_are_gone():
    # --timeout (a silent worker's deadline) and forwarded_allow (trusted proxies) did nothing;
    # they come back with the pre-fork master and the proxy rules.
    from tests.conftest import run_netassist

    result = run_netassist("run", "some.module:app", "--timeout", "5")
    assert result.returncode == 2
    assert "unrecognized arguments: --timeout 5" in result.stderr.decode()
    for setting in ("timeout", "forwarded_allow"):
        with pytest.raises(UsageError, match="unknown server setting"):
            ServerConfig.create(**{setting: 1})
