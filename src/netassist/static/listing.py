"""A folder's listing as a small, clean HTML page or as JSON.

Names are HTML-escaped for display and percent-quoted (UTF-8) for links, so spaces, ``#``,
``?``, ``%``, ``\\`` and Chinese names work; the listing holds exactly the names a request
can open (one resolver decides both).
"""

from __future__ import annotations

import html
import json
import os
import stat
import time
from dataclasses import dataclass
from urllib.parse import quote

from netassist.paths import PathRefused, resolve_child

STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI","PingFang SC","Noto Sans CJK SC",sans-serif;
margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1f2328;background:#fff}
h1{font-size:1.25rem;font-weight:600;margin:0 0 1rem}
nav a{color:#0969da;text-decoration:none}nav a:hover{text-decoration:underline}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #d0d7de}
th{font-weight:600;color:#57606a;font-size:.85rem}
td.size,td.time,th.size,th.time{text-align:right;white-space:nowrap;color:#57606a}
td a{color:#0969da;text-decoration:none}td a:hover{text-decoration:underline}
tr:hover td{background:#f6f8fa}.dir a{font-weight:600}
footer{margin-top:1rem;color:#8c959f;font-size:.8rem}
"""


@dataclass(frozen=True)
class Entry:
    """One listed name."""

    name: str
    is_dir: bool
    size: int
    mtime: float


def human_size(size: int) -> str:
    """Bytes in human units: ``512 B``, ``1.5 KiB``, ``3.2 GiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def entries(
    folder: str, real_root: str, *, show_hidden: bool, follow_symlinks: bool
) -> list[Entry]:
    """What may be listed in ``folder`` (a real folder inside the real ``real_root``): each
    name a request for it would be answered for, folders first, then files, each sorted."""
    listed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        try:
            _, st = resolve_child(
                real_root, folder, name, show_hidden=show_hidden, follow_symlinks=follow_symlinks
            )
        except PathRefused:
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        listed.append(Entry(name, is_dir, 0 if is_dir else st.st_size, st.st_mtime))
    listed.sort(key=lambda e: (not e.is_dir, e.name.casefold(), e.name))
    return listed


def as_json(url_path: str, items: list[Entry]) -> bytes:
    """The listing as JSON: the path, then one object per entry."""
    return json.dumps(
        {
            "path": url_path,
            "entries": [
                {
                    "name": e.name,
                    "type": "directory" if e.is_dir else "file",
                    "size": e.size,
                    "modified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.mtime)),
                    "href": quote(e.name) + ("/" if e.is_dir else ""),
                }
                for e in items
            ],
        },
        ensure_ascii=False,
    ).encode("utf-8")


def as_html(url_path: str, items: list[Entry]) -> bytes:
    """The listing as an HTML page with breadcrumbs."""
    parts = [p for p in url_path.split("/") if p]
    crumbs = ['<a href="/">/</a>']
    for depth, part in enumerate(parts):
        href = "/" + "/".join(quote(p) for p in parts[: depth + 1]) + "/"
        crumbs.append(f'<a href="{html.escape(href)}">{html.escape(part)}</a>/')
    rows = []
    if parts:
        rows.append(
            '<tr class="dir"><td><a href="../">../</a></td>'
            '<td class="size"></td><td class="time"></td></tr>'
        )
    for e in items:
        href = quote(e.name) + ("/" if e.is_dir else "")
        label = html.escape(e.name) + ("/" if e.is_dir else "")
        size = "" if e.is_dir else human_size(e.size)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.mtime))
        css = ' class="dir"' if e.is_dir else ""
        rows.append(
            f'<tr{css}><td><a href="{html.escape(href)}">{label}</a></td>'
            f'<td class="size">{size}</td><td class="time">{when}</td></tr>'
        )
    title = html.escape(url_path)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Index of {title}</title><style>{STYLE}</style></head><body>"
        f'<h1>Index of <nav style="display:inline">{"".join(crumbs)}</nav></h1>'
        '<table><thead><tr><th>Name</th><th class="size">Size</th>'
        '<th class="time">Modified</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
        f"<footer>{len(items)} entries · netassist</footer></body></html>\n"
    )
    return page.encode("utf-8")
