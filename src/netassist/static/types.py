"""Content types: the standard library's table plus what the modern web serves."""

from __future__ import annotations

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
_mimetypes = mimetypes.MimeTypes()


@functools.lru_cache(maxsize=1024)
def content_type(name: str) -> str:
    """The Content-Type for a file name, with ``charset=utf-8`` for text."""
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    kind = (
        _MODERN.get(suffix)
        or _mimetypes.guess_type(name, strict=False)[0]
        or "application/octet-stream"
    )
    if is_textual(kind):
        return f"{kind}; charset=utf-8"
    return kind


def is_textual(kind: str) -> bool:
    """Whether a type (without parameters) is text worth compressing and labelling."""
    kind = kind.split(";", 1)[0].strip()
    return kind.startswith("text/") or kind in _TEXTUAL
