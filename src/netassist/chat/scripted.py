"""The chat for scripts: ``chat send`` (one message, an exit code that says whether it was
delivered) and ``chat listen`` (stay in the room, one JSON line per message on stdout)."""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Callable

from netassist.chat.history import to_json
from netassist.chat.protocol import MAX_TEXT, format_address
from netassist.chat.session import RoomOptions, Session
from netassist.errors import ExitCode, NetassistError, UsageError
from netassist.wire.stdin import StdinReader


def _unanswered(addresses: list) -> str:
    where = ", ".join(format_address(a) for a in addresses)
    return f"nothing answers at {where} (is netassist chat running there, with the same --key?)"


def send(
    options: RoomOptions,
    text: str,
    *,
    to: str | None = None,
    timeout: float = 30.0,
    say: Callable[[str], None],
) -> None:
    """Join the room, send ``text`` (privately to the member named ``to``), wait until every
    member acknowledged it, leave. Raises :class:`NetassistError` (exit 9) naming whoever did
    not acknowledge it within ``timeout`` seconds, or the peers that never answered."""
    deadline = time.monotonic() + timeout
    session = Session(options, say=say, show_own=False, show_events=False)
    try:
        session.start()
        session.wait_for_room(max(0.0, deadline - time.monotonic()))
        session.unanswered.extend(session.peer.joining()[0].addresses)
        recipients = None
        if to is not None:
            found = session.peer.find(to)
            if not found:
                raise UsageError(f"no member called {to!r} in the room")
            recipients = [peer.id for peer in found]
        if not session.peer.peers():
            if session.unanswered:
                raise NetassistError(_unanswered(session.unanswered), ExitCode.TIMEOUT)
            if session.discover_error:
                raise NetassistError(session.discover_error, ExitCode.NETWORK)
            raise NetassistError(
                "no one is in the room: nobody answered (give --peer HOST:PORT of a member)",
                ExitCode.TIMEOUT,
            )
        message_id = session.send(text, recipients)
        session.peer.wait_settled(max(0.0, deadline - time.monotonic()))
        delivery = session.deliveries.get(message_id)
        record = next((r for r in session.records if r.get("id") == message_id), {})
    finally:
        session.close()
    if options.plain_peers:
        say(
            f"sent to {len(options.plain_peers)} plain peer(s) as bare text: they do not "
            "acknowledge, so no delivery guarantee holds for them"
        )
    if delivery is None and record.get("state") == "unacknowledged":
        return  # only plain peers were there
    if delivery is None:
        raise NetassistError(
            f"message {message_id} not acknowledged by every member within {timeout:g} s "
            "(raise --timeout to wait longer)",
            ExitCode.TIMEOUT,
        )
    if delivery["state"] != "delivered":
        missing = "; ".join(f"{item['name']} ({item['why']})" for item in delivery["undelivered"])
        raise NetassistError(f"not delivered to {missing}", ExitCode.TIMEOUT)
    # A member the user named that never answered did not get it: that is a failure. One
    # that another member introduced may be gone without that member knowing yet: a warning.
    named = [a for a in session.unanswered if a in session.named]
    introduced = [a for a in session.unanswered if a not in session.named]
    if introduced:
        say(f"warning: {_unanswered(introduced)}; a member knew of it, it may have left")
    if named:
        raise NetassistError(
            f"delivered to {', '.join(delivery['delivered'])}; but " + _unanswered(named),
            ExitCode.TIMEOUT,
        )


def listen(
    options: RoomOptions,
    *,
    write: Callable[[str], None],
    say: Callable[[str], None],
    lines: Callable[[], str | None] | None = None,
    timeout: float | None = None,
) -> None:
    """Stay in the room, handing each message that arrives to ``write`` as one JSON line,
    until ``timeout`` seconds pass (or Ctrl-C); then leave the room.

    ``lines``, when given, is called on a thread of its own for text to send, one message per
    call, until it returns ``None`` (the end of input: listening goes on).
    """
    broken = threading.Event()

    def on_message(record: dict) -> None:
        if broken.is_set():
            return
        try:
            write(to_json(record))
        except OSError:  # the reader of stdout went away (| head): stop listening
            broken.set()

    session = Session(options, say=say, on_message=on_message)
    try:
        session.start()
        say(f"listening on udp {session.peer.address} as {session.peer.name}")
        if lines is not None:
            threading.Thread(
                target=_send_lines, args=(session, lines, say), daemon=True, name="chat-stdin"
            ).start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            if broken.is_set():
                raise BrokenPipeError("stdout closed")
            if session.peer.failure is not None:
                raise session.peer.failure
            left = 0.2 if deadline is None else deadline - time.monotonic()
            time.sleep(min(0.2, max(0.0, left)))
    except KeyboardInterrupt:
        pass  # Ctrl-C is how listening ends: leave the room, exit 0
    finally:
        session.close(grace=2.0)


def _send_lines(session: Session, lines: Callable[[], str | None], say: Callable[[str], None]):
    while (text := lines()) is not None:
        try:
            session.send(text)
        except NetassistError as exc:
            say(f"not sent: {exc}")


def stdin_lines(encoding: str = "utf-8") -> Callable[[], str | None]:
    """A reader of stdin's lines as text in ``encoding`` (line ends removed), for
    :func:`listen`; it returns ``None`` at the end of input. A line over 60 KiB is refused
    as it streams in (memory stays bounded) and reported, not sent."""
    reader = StdinReader()
    decoder = codecs.getincrementaldecoder(encoding)("replace")
    held = bytearray()
    ready: list[str] = []
    overlong = False

    def next_line() -> str | None:
        nonlocal overlong
        while not ready:
            chunk = reader.read()
            if not chunk:
                if held and not overlong:
                    ready.append(decoder.decode(bytes(held), True))
                held.clear()
                if not ready:
                    return None
                break
            held.extend(chunk)
            while (end := held.find(b"\n")) >= 0:
                line = bytes(held[:end]).rstrip(b"\r")
                del held[: end + 1]
                if overlong:
                    overlong = False
                    ready.append(_OVERLONG)
                else:
                    ready.append(decoder.decode(line, True))
            if len(held) > MAX_TEXT * 4:  # no line end in sight: drop it as it comes
                held.clear()
                overlong = True
        return ready.pop(0)

    return next_line


#: Stands for a line that was too long to hold: sending it fails with the usual message.
_OVERLONG = "x" * (MAX_TEXT + 1)
