"""The server's one settings object: defaults, parsing of bind addresses, validation."""

from __future__ import annotations

import re

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


def test_the_master_s_options_reach_their_settings():
    # --timeout and forwarded_allow_ips did nothing before the pre-fork master (issue 14
    # took them out); now each has its meaning (issue 16).
    from netassist.cli.server import config_from_args

    config = config_from_args(
        _parsed(
            *("run", "m:app", "--timeout", "5", "--graceful-timeout", "7", "-w", "3"),
            *("--max-requests", "100", "--max-requests-jitter", "20", "--umask", "007"),
            *("--forwarded-allow-ips", "10.0.0.0/8, unix", "--access-log", "-"),
            *("--access-log-format", "%h %D", "--pid", "x.pid", "--preload", "--reload"),
        )
    )
    assert (config.timeout, config.graceful_timeout, config.workers) == (5.0, 7.0, 3)
    assert (config.max_requests, config.max_requests_jitter) == (100, 20)
    assert config.umask == 0o007 and config.pid == "x.pid"
    assert config.forwarded_allow_ips == ("10.0.0.0/8", "unix")
    assert config.access_log == "-" and config.access_log_format == "%h %D"
    assert config.preload and config.reload


# --- the master's settings, and where settings come from (issue 16) -----------------------------


def test_workers_auto_is_the_usable_cores():
    import os

    assert ServerConfig.create(workers="auto").workers == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"timeout": 1}, "timeout must be 0 (never) or at least 2"),
        ({"graceful_timeout": 0}, "graceful-timeout must be"),
        ({"max_requests": -1}, "max-requests must be"),
        ({"umask": 0o1000}, "umask must be an octal mode"),
        ({"log_level": "loud"}, "log-level must be one of"),
        ({"keyfile": "k.pem"}, "--keyfile needs --certfile"),
        ({"access_log_format": "%Z"}, "access-log-format: %Z is not a known field"),
        ({"forwarded_allow_ips": "10.0.0.1,proxy"}, "forwarded-allow-ips: 'proxy'"),
        ({"binds": ["fd://x"]}, "write fd://N"),
    ],
)
def test_the_master_s_settings_are_checked(settings, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        ServerConfig.create(**settings)


def test_timeout_0_means_never():
    assert ServerConfig.create(timeout=0).timeout == 0


def test_an_inherited_socket_is_a_bind():
    assert ServerConfig.create(binds=["fd://3"]).binds == (Bind(host="", port=0, fd=3),)
    assert str(Bind.parse("fd://3")) == "fd://3"


TOML = """
bind = ["unix:/run/app.sock", "127.0.0.1:9000"]
workers = 4
graceful-timeout = 10
max_requests = 1000
umask = "007"
access-log = "-"
forwarded-allow-ips = ["unix", "10.0.0.0/8"]
preload = true
max-body = 5
"""


def test_a_config_file_maps_onto_the_settings(tmp_path):
    path = tmp_path / "netassist.toml"
    path.write_text(TOML)
    config = ServerConfig.load(file=str(path))
    assert config.binds == (Bind(path="/run/app.sock"), Bind("127.0.0.1", 9000))
    assert (config.workers, config.graceful_timeout, config.max_requests) == (4, 10, 1000)
    assert config.umask == 0o007 and config.access_log == "-" and config.preload
    assert config.forwarded_allow_ips == ("unix", "10.0.0.0/8")
    assert config.limits.max_body == 5


def test_environment_over_the_file_and_flags_over_both(tmp_path):
    path = tmp_path / "netassist.toml"
    path.write_text("workers = 4\nthreads = 2\ntimeout = 10\n")
    env = {"NETASSIST_WORKERS": "3", "NETASSIST_TIMEOUT": "20", "NETASSIST_DEBUG": "1"}
    config = ServerConfig.load(file=str(path), environ=env, timeout=30.0)
    assert (config.workers, config.threads, config.timeout) == (3, 2, 30.0)
    env = {"NETASSIST_BIND": "127.0.0.1:9001 unix:/tmp/x.sock", "SCRIPT_NAME": "/app"}
    config = ServerConfig.load(environ=env)
    assert config.binds == (Bind("127.0.0.1", 9001), Bind(path="/tmp/x.sock"))
    assert config.script_name == "/app"


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("workers = 0\n", {}, "netassist.toml: workers must be a whole number of at least 1"),
        ('workers = "many"\n', {}, "netassist.toml: workers: 'many' is not a whole number"),
        ("workers = 2.5\n", {}, "netassist.toml: workers: 2.5 is not a whole number"),
        ("wrokers = 2\n", {}, "netassist.toml: 'wrokers' is not a server setting"),
        ("preload = 1\n", {}, "netassist.toml: preload: give true or false"),
        ("workers = \n", {}, "netassist.toml: not valid TOML"),
        ("", {"NETASSIST_WORKERS": "two"}, "NETASSIST_WORKERS: 'two' is not a whole number"),
        ("", {"NETASSIST_PRELOAD": "maybe"}, "NETASSIST_PRELOAD: 'maybe' is not true or false"),
        ("", {"NETASSIST_TIMEOUT": "1"}, "environment (NETASSIST_TIMEOUT): timeout must be 0"),
    ],
)
def test_a_bad_value_is_one_error_naming_its_source(tmp_path, toml, env, message):
    path = tmp_path / "netassist.toml"
    path.write_text(toml)
    with pytest.raises(UsageError) as caught:
        ServerConfig.load(file=str(path), environ=env)
    assert str(caught.value).replace(str(tmp_path) + "/", "").startswith(message), caught.value


def test_a_missing_config_file_is_one_line():
    with pytest.raises(UsageError, match=r"cannot read the config file /nonexistent\.toml"):
        ServerConfig.load(file="/nonexistent.toml")


def test_the_command_line_reads_config_and_environment(tmp_path, monkeypatch):
    from tests.conftest import run_netassist

    path = tmp_path / "netassist.toml"
    path.write_text("workers = 0\n")
    result = run_netassist("run", "m:app", "--config", str(path))
    assert result.returncode == 2
    assert (
        result.stderr.decode()
        == f"netassist: {path}: workers must be a whole number of at least 1\n"
    )
    result = run_netassist("run", "m:app", "--workers", "many")
    assert result.returncode == 2
    assert "argument -w/--workers: 'many' is not a whole number" in result.stderr.decode()
    monkeypatch.setenv("NETASSIST_MAX_REQUESTS", "-5")
    result = run_netassist("run", "m:app")
    assert result.returncode == 2
    assert (
        result.stderr.decode() == "netassist: NETASSIST_MAX_REQUESTS: '-5' is not a whole number\n"
    )
