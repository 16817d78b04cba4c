"""The top-level package: its public names, and what starting the command line loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

import netassist


def test_serve_and_server_config_load_the_server_on_first_use():
    from netassist import ServerConfig, serve
    from netassist.server import ServerConfig as config_class
    from netassist.server import serve as server_serve

    assert serve is server_serve
    assert ServerConfig is config_class
    assert set(netassist.__all__) >= {"serve", "ServerConfig", "ExitCode", "NetassistError"}


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        netassist.nothing_here  # noqa: B018


def test_the_command_line_starts_without_the_http_server():
    # Every command pays for what its parser loads: client commands must not load the
    # HTTP server, its parser (httptools) or the static-file app. (The server's settings,
    # config.py and limits.py, are loaded: run and serve take their defaults from them.)
    probe = (
        "import sys; from netassist.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('netassist.server.protocol', 'netassist.server.worker', "
        "'netassist.server.wsgi', 'httptools', 'netassist.static', "
        "'netassist.transfer.server') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
