"""An ``xxd``-style dump: offset, sixteen bytes in pairs, and the printable ASCII."""

from __future__ import annotations

_PRINTABLE = bytes(range(0x20, 0x7F))
_ASCII = bytes(b if b in _PRINTABLE else ord(".") for b in range(256))


def hexdump(data: bytes, offset: int = 0, *, width: int = 16) -> str:
    """Return ``data`` as xxd shows it, one line per ``width`` bytes, ending in a newline.

    ``offset`` is where ``data`` starts in its stream, so consecutive chunks of one TCP
    connection number on from each other. Empty data gives an empty string.
    """
    lines = []
    hex_width = width * 2 + width // 2 - 1
    for start in range(0, len(data), width):
        row = data[start : start + width]
        pairs = " ".join(row[i : i + 2].hex() for i in range(0, len(row), 2))
        lines.append(
            f"{offset + start:08x}: {pairs:<{hex_width}}  {row.translate(_ASCII).decode('ascii')}\n"
        )
    return "".join(lines)
