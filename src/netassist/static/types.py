"""Content types: the standard library's table plus what the modern web serves."""

from __future__ import annotations

import codecs
import functools
import mimetypes

_MODERN = {
    ".wasm": "application/wasm",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".py": "text/x-python",
    ".txt": "text/plain",
}
# Textual types that are not text/*: they get a charset as well.
_TEXTUAL = frozenset(
    {
        "application/json",
        "application/manifest+json",
        "application/javascript",
        "application/xml",
        "application/yaml",
        "application/toml",
        "image/svg+xml",
    }
)
# Documents that name their own encoding inside (<meta charset>, <?xml encoding?>). A charset
# in Content-Type overrides what the page says, so a GBK page labelled utf-8 shows mojibake:
# these get one only when the user names it, as python -m http.server does.
_SELF_DECLARING = frozenset(
    {"text/html", "application/xhtml+xml", "application/xml", "text/xml", "image/svg+xml"}
)
_mimetypes = mimetypes.MimeTypes()


@functools.lru_cache(maxsize=1024)
def content_type(name: str, charset: str | None = None) -> str:
    """The Content-Type for a file name.

    Text is labelled ``charset=utf-8``, or ``charset`` when one is named; HTML and XML carry
    their own declaration and are labelled only when ``charset`` is named.
    """
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    kind = (
        _MODERN.get(suffix)
        or _mimetypes.guess_type(name, strict=False)[0]
        or "application/octet-stream"
    )
    if charset is None and kind in _SELF_DECLARING:
        return kind
    if is_textual(kind):
        return f"{kind}; charset={charset or 'utf-8'}"
    return kind


def is_textual(kind: str) -> bool:
    """Whether a type (without parameters) is text worth compressing and labelling."""
    kind = kind.split(";", 1)[0].strip()
    return kind.startswith("text/") or kind in _TEXTUAL


def check_charset(name: str) -> str:
    """``name`` if it is a text encoding a page could be in; ``ValueError`` otherwise."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown charset {name!r} (utf-8, gbk, gb18030, big5, ...)") from None
    if not info._is_text_encoding:  # rot13, base64: codecs, not charsets
        raise ValueError(f"{name!r} is not a text encoding (utf-8, gbk, gb18030, big5, ...)")
    return name
