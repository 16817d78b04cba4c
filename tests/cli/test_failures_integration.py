"""Every expected failure: one line on stderr, no traceback, and its own exit code."""

from __future__ import annotations

import os
import socket

import pytest

from netassist.errors import ExitCode
from tests.conftest import NETASSIST, need, run_netassist

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_one_line_failure(result, code: int, *needles: str) -> str:
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err
    return err


def test_connection_refused():
    port = closed_port()
    result = run_netassist("tcp", "connect", "127.0.0.1", str(port))
    assert_one_line_failure(
        result,
        ExitCode.CONNECTION_REFUSED,
        f"connecting to 127.0.0.1:{port}: connection refused",
        "is anything listening",
    )


def test_udp_port_unreachable_is_refused_when_waiting_for_a_reply():
    result = run_netassist(
        "udp", "send", "127.0.0.1", str(closed_port()), "hi", "--wait-reply", "2"
    )
    assert_one_line_failure(result, ExitCode.CONNECTION_REFUSED, "connection refused")


@pytest.mark.parametrize(
    "command",
    [
        ["tcp", "connect", "no-such-host.invalid", "80", "--send", "x"],
        ["udp", "send", "no-such-host.invalid", "80", "x"],
    ],
)
def test_host_not_found(command):
    result = run_netassist(*command)
    assert_one_line_failure(
        result, ExitCode.HOST_NOT_FOUND, "host not found", "no-such-host.invalid"
    )


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_address_in_use(proto):
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as holder:
        holder.bind(("127.0.0.1", 0))
        if proto == "tcp":
            holder.listen()
        port = holder.getsockname()[1]
        result = run_netassist(proto, "listen", str(port), "--timeout", "1")
    assert_one_line_failure(result, ExitCode.ADDRESS_IN_USE, "address already in use", str(port))


def test_permission_denied_on_a_privileged_port():
    import os
    import subprocess

    args = [*NETASSIST, "tcp", "listen", "80", "--timeout", "1"]
    if os.geteuid() == 0:
        # root may bind port 80: drop to nobody for this one run.
        setpriv = need("setpriv")
        drop = [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups"]
        probe = subprocess.run([*drop, *NETASSIST, "--version"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip("nobody cannot run this checkout's Python")
        args = [*drop, *args]
    result = subprocess.run(args, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert_one_line_failure(
        result, ExitCode.PERMISSION_DENIED, "binding tcp 127.0.0.1:80: permission denied"
    )


def test_log_in_a_missing_folder_is_a_file_error(tmp_path):
    result = run_netassist(
        "udp", "listen", "0", "--timeout", "0.1", "--log", str(tmp_path / "x" / "log")
    )
    assert_one_line_failure(result, ExitCode.FILE, "opening log", "no such file or directory")


@pytest.mark.parametrize("port", ["0", "65536", "http", "-1", "99999"])
def test_bad_port(port):
    result = run_netassist("tcp", "connect", "127.0.0.1", port)
    assert_one_line_failure(result, ExitCode.BAD_PORT, "bad port", "65535")


def test_bad_listen_port():
    result = run_netassist("udp", "listen", "70000")
    assert_one_line_failure(result, ExitCode.BAD_PORT, "bad port 70000")


@pytest.mark.parametrize("payload", ["zz", "abc", "0xg1"])
def test_bad_hex_fails_before_sending(payload):
    result = run_netassist("udp", "send", "127.0.0.1", "9", "--hex", payload)
    assert_one_line_failure(result, ExitCode.BAD_DATA, "bad hex")


def test_bad_hex_from_stdin_ends_the_tcp_session(netassist):
    listener = netassist("tcp", "listen", "0", "--show", "raw")
    port = listener.port()
    result = run_netassist(
        "tcp", "connect", "127.0.0.1", str(port), "--hex", input=b"41 42\nnot hex\n"
    )
    assert_one_line_failure(result, ExitCode.BAD_DATA, "bad hex")
    assert listener.finish()[1] == b"AB"


def test_connect_timeout():
    # A listening socket with a full backlog never completes the handshake: a timeout with
    # nothing but loopback involved.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            result = run_netassist(
                "tcp", "connect", "127.0.0.1", str(port), "--connect-timeout", "0.5"
            )
        finally:
            for filler in fillers:
                filler.close()
    assert_one_line_failure(result, ExitCode.TIMEOUT, "timed out")


def test_wait_reply_timeout():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        result = run_netassist("udp", "send", "127.0.0.1", str(port), "hi", "--wait-reply", "0.3")
    assert_one_line_failure(result, ExitCode.TIMEOUT, "no reply from udp", "within 0.3 s")


def test_missing_file_fails_before_connecting():
    result = run_netassist("tcp", "connect", "127.0.0.1", "9", "--file", "/no/such/file")
    assert_one_line_failure(
        result, ExitCode.FILE, "opening /no/such/file: no such file or directory"
    )


@pytest.mark.parametrize(
    ("name", "kind"), [("fifo", "a FIFO"), ("/dev/zero", "a character device")]
)
def test_file_that_is_not_a_regular_file_is_named_for_what_it_is(tmp_path, name, kind):
    # Both said "opening ...: no such file or directory" (exit 11) of a file that exists.
    path = tmp_path / name if name == "fifo" else name
    if name == "fifo":
        os.mkfifo(path)
    result = run_netassist("tcp", "connect", "127.0.0.1", "9", "--file", str(path))
    assert_one_line_failure(
        result, ExitCode.USAGE, f"--file {path} is {kind}: only regular files", f"< {path}"
    )
    folder = run_netassist("tcp", "connect", "127.0.0.1", "9", "--file", str(tmp_path))
    assert_one_line_failure(folder, ExitCode.FILE, f"opening {tmp_path}: is a directory")


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("nan", "'nan' is not a number of seconds"),  # it said "'nan' must not be negative"
        ("NaN", "'NaN' is not a number of seconds"),
        ("soon", "'soon' is not a number of seconds"),
        ("-1", "'-1' must not be negative"),
    ],
)
@pytest.mark.parametrize("command", [["udp", "listen", "0"], ["files", "ls", "127.0.0.1:9"]])
def test_a_timeout_that_is_not_a_number_of_seconds(command, value, said):
    result = run_netassist(*command, "--timeout", value)
    assert_one_line_failure(result, ExitCode.USAGE, said, "--help")


def test_unknown_encoding_and_bad_option_are_usage_errors():
    result = run_netassist("udp", "send", "127.0.0.1", "9", "x", "--encoding", "klingon")
    assert_one_line_failure(result, ExitCode.USAGE, "unknown encoding 'klingon'")
    result = run_netassist("tcp", "listen", "0", "--max-clients", "none")
    assert_one_line_failure(result, ExitCode.USAGE, "--max-clients", "--help")


def test_replay_of_a_file_that_is_not_a_log(tmp_path):
    bogus = tmp_path / "bogus.jsonl"
    bogus.write_text("hello\n")
    result = run_netassist("replay", str(bogus), "--to", "127.0.0.1", "9")
    assert_one_line_failure(result, ExitCode.BAD_DATA, "bogus.jsonl:1: not a netassist log record")


def test_interrupted_listener_exits_130(netassist):
    import signal

    listener = netassist("udp", "listen", "0")
    listener.port()
    listener.popen.send_signal(signal.SIGINT)
    code, _, err = listener.finish()
    assert code == ExitCode.INTERRUPTED
    assert "Traceback" not in err


def test_python_m_and_version():
    result = run_netassist("--version")
    assert result.returncode == 0
    assert result.stdout.decode().startswith("netassist ")
