"""``netassist chat`` as people use it: on a real terminal (tmux), and with the tutorial's
own chat program, adapted only in its addresses, as a plain peer."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import NETASSIST, free_port, run_netassist

pytestmark = pytest.mark.integration


def records(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def prompt_line(screen: str) -> str:
    """The last line of the screen that holds something: where the prompt is."""
    return [line for line in screen.splitlines() if line.strip()][-1]


def test_a_message_arriving_mid_line_leaves_the_typed_line_intact(terminal, netassist, tmp_path):
    log = tmp_path / "ana.jsonl"
    terminal.run([*NETASSIST, "chat", "--name", "ana", "--log", str(log)])
    port = terminal.wait_for(r"you are ana on udp 127\.0\.0\.1:(\d+)").group(1)
    bo = netassist("chat", "listen", "--name", "bo", "--peer", f"127.0.0.1:{port}")
    bo.port()
    terminal.wait_for(r"\* bo joined from")
    terminal.keys("half typed 你好")
    terminal.wait_for(r"ana> half typed 你好")
    sent = run_netassist(
        "chat",
        "send",
        "--name",
        "cy",
        "--peer",
        f"127.0.0.1:{port}",
        "incoming \x1b[2J\x1b]0;pwned\x07!",
    )
    assert sent.returncode == 0, sent.stderr
    screen = terminal.wait_for(r"cy: incoming \\x1b\[2J\\x1b\]0;pwned\\x07!").string
    assert prompt_line(screen) == "ana> half typed 你好"  # still there, still last
    terminal.keys(" and the rest", "Enter")
    terminal.wait_for(r"✓ delivered: half typed 你好 and the rest")
    terminal.keys("/peers", "Enter")
    terminal.wait_for(r"\* bo at 127\.0\.0\.1:\d+ \(id [0-9a-f]{16}\)")
    terminal.keys("/msg bo psst", "Enter")
    terminal.wait_for(r"ana → bo \(private\): psst")
    terminal.keys("/name anna", "Enter")
    terminal.wait_for(r"you are now called anna")
    terminal.wait_for(r"\nanna>")
    terminal.keys("/history 4", "Enter")
    terminal.wait_for(
        r"ana: half typed 你好 and the rest  ✓ delivered(.|\n)*"
        r"ana → bo \(private\): psst  ✓ delivered"
    )
    terminal.keys("/quit", "Enter")
    terminal.wait_for(r"EXIT=0")
    bo.popen.send_signal(signal.SIGINT)
    code, out, err = bo.finish(30)
    assert code == 0, err
    assert [(r["sender"], r["text"], r["private"]) for r in records(out)] == [
        ("cy", "incoming \x1b[2J\x1b]0;pwned\x07!", False),
        ("ana", "half typed 你好 and the rest", False),
        ("ana", "psst", True),
    ]
    assert "ana is now called anna" in err and "anna left (quit)" in err
    states = {r["id"]: r["state"] for r in records(log.read_bytes()) if r["type"] == "delivery"}
    assert list(states.values()) == ["delivered", "delivered"]


def test_exit_as_in_the_tutorial_leaves_and_an_unknown_command_is_explained(terminal):
    terminal.run([*NETASSIST, "chat", "--name", "ana"])
    terminal.wait_for(r"you are ana")
    terminal.keys("/frobnicate", "Enter")
    terminal.wait_for(r"! unknown command /frobnicate \(/help lists them\)")
    terminal.keys("hello", "Enter")
    terminal.wait_for(r"! no one to send it to: nobody is in the room yet")
    terminal.keys("exit", "Enter")
    terminal.wait_for(r"EXIT=0")


# The tutorial's 多线程聊天 program, word for word but for its two addresses
# (172.16.180.230:8080 and :9090 there).
TUTORIAL_CHAT = """\
import socket, sys
import threading

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', {local}))


def send_msg():
    while True:
        msg = input('请输入您要发送的内容:')
        s.sendto(msg.encode('utf8'), ('127.0.0.1', {remote}))
        if msg == 'exit':
            break


def recv_msg():
    while True:
        # data的数据类型是一个元组
        # 元组里第0个元素是接收到的数据
        # 元组里第1个元素是发送方的ip地址和端口号
        data, addr = s.recvfrom(1024)
        print('接收到了{{}}地址{{}}端口的消息:{{}}'.format(addr[0], addr[1], data.decode('utf8')),
              file=open('消息记录.txt', 'a', encoding='utf8'))


t1 = threading.Thread(target=send_msg)
t2 = threading.Thread(target=recv_msg)

t1.start()
t2.start()
"""


def wait_for_output(proc, wanted: bytes, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while wanted not in proc.stdout_so_far():
        assert time.monotonic() < deadline, proc.stdout_so_far().decode()
        time.sleep(0.05)


def test_the_tutorials_chat_program_talks_with_netassist_chat(spawn, tmp_path):
    theirs = free_port(socket.SOCK_DGRAM)
    ours = spawn(
        [*NETASSIST, "chat", "--name", "ana", "--plain-peer", f"127.0.0.1:{theirs}"],
        stdin=subprocess.PIPE,
    )
    wait_for_output(ours, b"on udp 127.0.0.1:")
    port = int(ours.stdout_so_far().split(b"on udp 127.0.0.1:")[1].split(b";")[0])
    assert b"no delivery guarantee holds for it" in ours.stdout_so_far()
    program = tmp_path / "chat.py"
    program.write_text(TUTORIAL_CHAT.format(local=theirs, remote=port), encoding="utf-8")
    # Run in tmp_path, where it writes 消息记录.txt.
    in_tmp = f"import os, runpy; os.chdir({str(tmp_path)!r}); runpy.run_path('chat.py')"
    tutorial = spawn([sys.executable, "-c", in_tmp], stdin=subprocess.PIPE)
    tutorial.popen.stdin.write("你好，netassist\n".encode())
    tutorial.popen.stdin.flush()
    wait_for_output(ours, "你好，netassist".encode())
    ours.popen.stdin.write("下午好\n".encode())
    ours.popen.stdin.flush()
    record = tmp_path / "消息记录.txt"
    deadline = time.monotonic() + 20
    while not record.exists() or "下午好" not in record.read_text(encoding="utf8"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert record.read_text(encoding="utf8") == f"接收到了127.0.0.1地址{port}端口的消息:下午好\n"
    tutorial.popen.stdin.write(b"exit\n")
    tutorial.popen.stdin.flush()
    wait_for_output(ours, b"guarantee): exit")
    ours.popen.stdin.write(b"/quit\n")
    ours.popen.stdin.close()
    code, out, err = ours.finish(30)
    assert code == 0, err
    shown = out.decode()
    assert f"127.0.0.1:{theirs} (plain peer: no delivery guarantee): 你好，netassist" in shown
    assert "ana → plain peers (sent as bare text, not acknowledged): 下午好" in shown
    assert f"127.0.0.1:{theirs} (plain peer: no delivery guarantee): exit" in shown


def test_encoding_changes_the_terminal_side_only(netassist, spawn):
    bo = netassist("chat", "listen", "--name", "bo", "--timeout", "60")
    bo_at = f"127.0.0.1:{bo.port()}"
    ours = spawn(
        [*NETASSIST, "chat", "--name", "ana", "--peer", bo_at, "--encoding", "gbk"],
        stdin=subprocess.PIPE,
    )
    wait_for_output(ours, b"* bo joined")
    port = int(ours.stdout_so_far().split(b"on udp 127.0.0.1:")[1].split(b";")[0])
    ours.popen.stdin.write("你好\n".encode("gbk"))
    ours.popen.stdin.flush()
    sent = run_netassist("chat", "send", "--name", "cy", "--peer", f"127.0.0.1:{port}", "下午好")
    assert sent.returncode == 0, sent.stderr
    wait_for_output(ours, "cy: 下午好".encode("gbk"))
    ours.popen.stdin.write(b"/quit\n")
    ours.popen.stdin.close()
    code, out, err = ours.finish(30)
    assert code == 0, err
    assert "ana: 你好".encode("gbk") in out
    bo.popen.send_signal(signal.SIGINT)
    _, bo_out, _ = bo.finish(30)
    assert [(r["sender"], r["text"]) for r in records(bo_out)] == [
        ("ana", "你好"),
        ("cy", "下午好"),
    ]
