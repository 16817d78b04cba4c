"""The terminal interface of ``netassist chat``.

On a terminal it uses prompt_toolkit: messages that arrive are printed above the line being
typed, which stays as it was (the tutorial wrote what it received to a file instead, because
``print`` from the receiving thread garbled the prompt). prompt_toolkit, not curses: curses
is not on Windows, where many of the tutorial's readers are, and prompt_toolkit works the
same in tmux, in a Linux console and in Windows' console. It is imported only here, only
when a terminal is there. Without a terminal (stdin or stdout a pipe) lines are read and
written plainly, with the same commands.

Every string a peer chose (names, text) is shown escaped (see
:func:`netassist.wire.codecs.escape_text`): a peer cannot send escape sequences to the
terminal, and a newline in a message cannot fake a line of the conversation.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from netassist.chat.scripted import stdin_lines
from netassist.chat.session import RoomOptions, Session
from netassist.errors import ExitCode, NetassistError
from netassist.wire.codecs import escape_text

HELP = (
    "type a line to send it to the room; commands: /peers, /name NEW, /msg NAME TEXT "
    "(private), /history N, /quit (or exit); //text sends a line that starts with /"
)
#: How long the line interface waits for the room to answer before it reads its input.
ROOM_WAIT = 10.0
#: How long /quit waits for the last messages to be acknowledged before leaving.
QUIT_GRACE = 3.0


class Commands:
    """What a typed line does; shared by the terminal and the plain-lines interface."""

    def __init__(self, session: Session, say: Callable[[str], None]) -> None:
        self.session = session
        self.say = say

    def handle(self, line: str) -> bool:
        """Act on one typed line; ``False`` when it asks to leave."""
        line = line.rstrip("\r\n")
        if line in ("/quit", "exit", "/exit"):
            return False
        if not line.strip():
            return True
        try:
            if line.startswith("//"):
                self.session.send(line[1:])
            elif line.startswith("/"):
                self._command(line)
            else:
                self.session.send(line)
        except NetassistError as exc:
            self.say(f"! {exc}")
        return True

    def _command(self, line: str) -> None:
        name, _, rest = line.partition(" ")
        if name == "/peers":
            self._peers()
        elif name == "/name":
            self.session.rename(rest.strip())
            self.say(f"* you are now called {escape_text(rest.strip())}")
        elif name == "/msg":
            who, _, text = rest.strip().partition(" ")
            found = self.session.peer.find(who)
            if not who or not text:
                self.say("! write /msg NAME TEXT")
            elif not found:
                self.say(f"! no member called {escape_text(who)} (see /peers)")
            else:
                self.session.send(text, [peer.id for peer in found])
        elif name == "/history":
            count = rest.strip() or "20"
            if not (count.isascii() and count.isdigit()):
                self.say("! write /history N, N a number")
                return
            for shown in self.session.history(int(count)):
                self.say(shown)
        elif name == "/help":
            self.say(HELP)
        else:
            self.say(f"! unknown command {escape_text(name)} (/help lists them)")

    def _peers(self) -> None:
        peers = self.session.peer.peers()
        if not peers:
            self.say("* no one else is in the room")
        for peer in peers:
            if peer.id:
                self.say(f"* {escape_text(peer.name)} at {peer.where} (id {peer.id})")
            else:
                self.say(f"* {peer.where}: a plain peer, no delivery guarantee")


def _banner(session: Session) -> list[str]:
    lines = [
        f"netassist chat: you are {escape_text(session.peer.name)} on udp "
        f"{session.peer.address}; /help lists the commands, /quit leaves"
    ]
    for host, port in session.options.plain_peers:
        lines.append(
            f"* plain peer {host}:{port}: it speaks no protocol, so nothing sent to it is "
            "acknowledged and no delivery guarantee holds for it"
        )
    return lines


def run(options: RoomOptions, *, encoding: str = "utf-8") -> int:
    """Chat until /quit (or the end of input): on a terminal with prompt_toolkit, else by
    plain lines. ``encoding`` is the terminal's; the wire is always UTF-8."""
    for stream in (sys.stdin, sys.stdout):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding=encoding, errors="replace")
    if sys.stdin.isatty() and sys.stdout.isatty():
        try:
            import prompt_toolkit  # noqa: F401
        except ImportError:
            pass
        else:
            return _run_terminal(options)
    return _run_lines(options, encoding)


def _run_terminal(options: RoomOptions) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.patch_stdout import patch_stdout

    def say(line: str) -> None:
        print(line, flush=True)

    with patch_stdout():
        session = Session(options, say=say).start()
        for line in _banner(session):
            say(line)
        commands = Commands(session, say)
        # The typed line goes once it is sent: the conversation shows it, with its mark.
        prompt: PromptSession[str] = PromptSession(erase_when_done=True)
        try:
            while True:
                try:
                    line = prompt.prompt(lambda: f"{session.peer.name}> ")
                except (EOFError, KeyboardInterrupt):
                    break
                if not commands.handle(line):
                    break
        finally:
            session.close(grace=QUIT_GRACE)
    return ExitCode.OK


def _run_lines(options: RoomOptions, encoding: str) -> int:
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            print(line, flush=True)

    session = Session(options, say=say).start()
    for line in _banner(session):
        say(line)
    # Lines piped in come at once: meet the room first, or the first would go to no one.
    session.wait_for_room(ROOM_WAIT)
    commands = Commands(session, say)
    read = stdin_lines(encoding)
    try:
        while (line := read()) is not None:
            if not commands.handle(line):
                break
    except KeyboardInterrupt:
        pass
    finally:
        session.close(grace=QUIT_GRACE)
    return ExitCode.OK
