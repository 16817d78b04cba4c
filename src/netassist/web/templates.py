"""Jinja2 templates with escaping on: what the tutorial's ``str.format`` pages lacked.

``'<p>{username}</p>'.format(username=name)`` puts whatever ``name`` holds into the page as
HTML: a name of ``<script>...</script>`` runs in every visitor's browser (stored XSS). Jinja2
with autoescape writes ``{{ username }}`` as ``&lt;script&gt;...``: the text is shown, not
run. Autoescape is on for ``.html``, ``.htm``, ``.xml`` and ``.xhtml`` templates and for
templates rendered from a string; ``{{ value|safe }}`` is the visible way to opt out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netassist.web.app import App

__all__ = ["Templates"]

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".xhtml": "application/xhtml+xml; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
ESCAPED = ("html", "htm", "xml", "xhtml")


class Templates:
    """The templates in ``folder``, rendered with Jinja2. ``url_for`` is available in
    every template (the app's, below the mount point of the request being handled)."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        app: App | None = None,
        *,
        auto_reload: bool = False,
    ) -> None:
        import jinja2

        self.folder = Path(folder)
        self.environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.folder), encoding="utf-8"),
            autoescape=jinja2.select_autoescape(ESCAPED, default_for_string=True, default=False),
            auto_reload=auto_reload,
            keep_trailing_newline=True,
        )
        if app is not None:
            self.environment.globals["url_for"] = app.url_for

    def render(self, name: str, **context: Any) -> str:
        """The template ``name`` filled with ``context``."""
        import jinja2

        try:
            template = self.environment.get_template(name)
        except jinja2.TemplateNotFound:
            raise FileNotFoundError(
                f"no template {name!r} in {self.folder} (templates are looked for there)"
            ) from None
        return template.render(**context)

    def render_string(self, source: str, **context: Any) -> str:
        """``source`` as a template (escaped, as HTML is), filled with ``context``."""
        return self.environment.from_string(source).render(**context)

    @staticmethod
    def content_type(name: str) -> str:
        """The Content-Type of what the template ``name`` makes (HTML unless its extension
        says otherwise)."""
        return _TYPES.get(os.path.splitext(name)[1].lower(), "text/html; charset=utf-8")
