"""``netassist.web``: a small WSGI web framework in the spirit of Bottle and Flask.

    from netassist.web import App

    app = App(__name__)

    @app.get("/users/<int:id>")
    def user(request, id):
        return {"id": id, "agent": request.headers.get("user-agent")}

Serve it with ``netassist run myapp:app`` (or any WSGI server); test it with
``netassist.web.testing.Client(app)``. The guide is ``docs/web.md``.
"""

from netassist.web.app import App
from netassist.web.errors import HTTPError, abort
from netassist.web.forms import UploadFile
from netassist.web.request import Request
from netassist.web.response import (
    FileResponse,
    Response,
    json,
    redirect,
    send_file,
    send_from_directory,
)
from netassist.web.routing import BuildError, Converter, RouteConflict
from netassist.web.structures import Headers, MultiDict

__all__ = [
    "App",
    "BuildError",
    "Converter",
    "FileResponse",
    "HTTPError",
    "Headers",
    "MultiDict",
    "Request",
    "Response",
    "RouteConflict",
    "UploadFile",
    "abort",
    "json",
    "redirect",
    "send_file",
    "send_from_directory",
]
