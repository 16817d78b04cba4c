"""``App``: routes, hooks, error handlers and mounts, as one WSGI application.

One request goes: mounts (a path below a mounted prefix goes to that WSGI app, untouched by
this one's hooks), ``before_request`` hooks (one that returns something answers instead of
the route), the route's handler (``handler(request, **params)``; its return value made a
:class:`Response`), or 404, 405 with ``Allow``, an automatic OPTIONS or HEAD answer, or the
trailing-slash redirect; errors to their handlers; ``after_request`` hooks; then the response
is sent, and when the server closes it, ``teardown`` hooks run and uploaded files go.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from netassist.web.errors import HTTPError, error_body, traceback_page
from netassist.web.forms import FormLimits
from netassist.web.request import Request
from netassist.web.response import Response, make_response, redirect
from netassist.web.routing import Converter, RouteConflict, Router, Rule, parse_rule

__all__ = ["App"]

log = logging.getLogger("netassist.web")
F = TypeVar("F", bound=Callable[..., Any])
_PATH_SAFE = "/!$&'()*+,;=:@-._~"

# The request being handled, for url_for in templates (handlers get it as an argument).
_current: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "netassist_web_request", default=None
)


class App:
    """A web application: ``app = App(__name__)``, then ``@app.get("/")`` and friends.

    ``import_name`` (pass ``__name__``) places the app: its ``templates`` folder is looked
    for next to that module. ``debug=True`` shows a traceback page for unhandled errors (never
    do that where others can reach it: it is off by default). The limits are those of
    :class:`FormLimits` plus ``max_content_length``, the largest body read (None: any the
    server lets through).
    """

    def __init__(
        self,
        import_name: str | None = None,
        *,
        templates: str | os.PathLike[str] | None = "templates",
        debug: bool = False,
        max_content_length: int | None = None,
        max_form_parts: int = 1000,
        max_form_field: int = 1 << 20,
        max_file_size: int | None = None,
        spill_size: int = 512 * 1024,
    ) -> None:
        self.import_name = import_name
        self.root = _root_of(import_name)
        self.debug = debug
        self.max_content_length = max_content_length
        self.form_limits = FormLimits(
            max_parts=max_form_parts,
            max_field=max_form_field,
            max_file=max_file_size,
            spill_size=spill_size,
        )
        self.router = Router()
        self.template_folder = None if templates is None else self.root / templates
        self._templates: Any = None
        self._before: list[Callable[[Request], Any]] = []
        self._after: list[Callable[[Request, Response], Any]] = []
        self._teardown: list[Callable[[Request, BaseException | None], Any]] = []
        self._error_handlers: dict[int | type[BaseException], Callable[..., Any]] = {}
        self._mounts: list[tuple[str, str, Callable]] = []  # (prefix, its WSGI form, app)

    def __repr__(self) -> str:
        return f"<App {self.import_name or ''} {len(self.router.rules)} routes>"

    # --- routes -------------------------------------------------------------------------------

    @property
    def converters(self) -> dict[str, type[Converter]]:
        """Converter kinds by name: ``app.converters["lang"] = LangConverter``, then
        ``/<lang:code>/``. Register before the routes that use them."""
        return self.router.converters

    def add_route(
        self,
        path: str,
        handler: Callable[..., Any],
        methods: Iterable[str] = ("GET",),
        endpoint: str | None = None,
    ) -> Rule:
        """Route ``path`` to ``handler`` (``handler(request, **params)``)."""
        self._check_mount_overlap(path)
        return self.router.add(path, handler, methods, endpoint)

    def route(
        self, path: str, methods: Iterable[str] = ("GET",), endpoint: str | None = None
    ) -> Callable[[F], F]:
        """``@app.route("/users/<int:id>", methods=["GET", "POST"])``: route a handler.
        Stack several to give it several paths."""

        def register(handler: F) -> F:
            self.add_route(path, handler, methods, endpoint)
            return handler

        return register

    def get(self, path: str, endpoint: str | None = None) -> Callable[[F], F]:
        """``@app.get(path)``: GET (and HEAD)."""
        return self.route(path, ["GET"], endpoint)

    def post(self, path: str, endpoint: str | None = None) -> Callable[[F], F]:
        """``@app.post(path)``."""
        return self.route(path, ["POST"], endpoint)

    def put(self, path: str, endpoint: str | None = None) -> Callable[[F], F]:
        """``@app.put(path)``."""
        return self.route(path, ["PUT"], endpoint)

    def delete(self, path: str, endpoint: str | None = None) -> Callable[[F], F]:
        """``@app.delete(path)``."""
        return self.route(path, ["DELETE"], endpoint)

    def patch(self, path: str, endpoint: str | None = None) -> Callable[[F], F]:
        """``@app.patch(path)``."""
        return self.route(path, ["PATCH"], endpoint)

    def url_for(self, endpoint: str, *, _external: bool = False, **values: Any) -> str:
        """The URL of the route named ``endpoint`` (its function's name, unless given another)
        with ``values`` for its parameters; the other values become the query string. Inside
        a request the mount point (``SCRIPT_NAME``) comes first; ``_external=True`` adds the
        scheme and host."""
        request = _current.get()
        if request is not None and request.app is self:
            return request.url_for(endpoint, _external=_external, **values)
        if _external:
            raise RuntimeError("url_for(..., _external=True) needs a request being handled")
        return self.router.build(endpoint, values)

    # --- hooks and error handlers -------------------------------------------------------------

    def before_request(self, hook: F) -> F:
        """``hook(request)`` runs before every route; a value it returns is the answer."""
        self._before.append(hook)
        return hook

    def after_request(self, hook: F) -> F:
        """``hook(request, response)`` runs on every answer (error pages too); it may return
        another response."""
        self._after.append(hook)
        return hook

    def teardown(self, hook: F) -> F:
        """``hook(request, error)`` runs once the answer is made, whatever happened (``error``
        is the unhandled exception, or None): for a streamed body when the server closes it,
        after the last piece. What it raises is logged."""
        self._teardown.append(hook)
        return hook

    def errorhandler(self, key: int | type[BaseException]) -> Callable[[F], F]:
        """``@app.errorhandler(404)`` or ``(SomeException)``: ``handler(request, error)``
        makes the answer. It keeps the error's status unless it sets one. An HTTP error looks
        for a handler of its status first, then of its class; another exception for its class
        or the nearest base class, and otherwise becomes a 500."""
        if isinstance(key, int):
            if not 400 <= key <= 599:
                raise ValueError(f"an error handler is for 4xx and 5xx statuses, not {key}")
        elif not (isinstance(key, type) and issubclass(key, BaseException)):
            raise TypeError(f"errorhandler takes a status or an exception class, not {key!r}")

        def register(handler: F) -> F:
            known = self._error_handlers.get(key)
            if known is not None and known is not handler:
                raise RouteConflict(f"errorhandler({key!r}) is already {known.__qualname__}")
            self._error_handlers[key] = handler
            return handler

        return register

    # --- mounts -------------------------------------------------------------------------------

    def mount(self, prefix: str, app: Callable) -> None:
        """Hand every path at or below ``prefix`` to the WSGI application ``app`` (another
        App, Flask, Django, ``StaticFiles``...), with ``SCRIPT_NAME`` and ``PATH_INFO`` set
        as WSGI says. This app's routes, hooks and error handlers do not see those paths."""
        if not prefix.startswith("/") or prefix.rstrip("/") == "":
            raise ValueError(f"a mount prefix starts with / and names something: {prefix!r}")
        prefix = prefix.rstrip("/")
        if not callable(app):
            raise TypeError(f"mount({prefix!r}, ...) needs a WSGI application")
        for known, _, other in self._mounts:
            if known == prefix:
                raise RouteConflict(f"{prefix} is already mounted ({other!r})")
        for rule in self.router.rules:
            if _under(rule, prefix):
                raise RouteConflict(
                    f"mount({prefix!r}) would hide {rule.path} ({rule.where()}); "
                    "mount elsewhere or move the route"
                )
        wire = prefix.encode("utf-8").decode("latin-1")
        self._mounts.append((prefix, wire, app))
        self._mounts.sort(key=lambda item: len(item[1]), reverse=True)

    def _check_mount_overlap(self, path: str) -> None:
        if not self._mounts:
            return
        probe = Rule(path, frozenset(), _no_handler, path)
        probe.pieces = parse_rule(path, self.router.converters)
        for prefix, _, app in self._mounts:
            if _under(probe, prefix):
                raise RouteConflict(f"{path} is below mount({prefix!r}, {app!r}): never reached")

    # --- templates ----------------------------------------------------------------------------

    @property
    def templates(self) -> Any:
        """The Jinja2 templates of this app (:class:`netassist.web.templates.Templates`)."""
        if self._templates is None:
            if self.template_folder is None:
                raise RuntimeError("this App was made with templates=None")
            from netassist.web.templates import Templates

            self._templates = Templates(self.template_folder, self, auto_reload=self.debug)
        return self._templates

    def render(
        self,
        template: str,
        status: int | None = None,
        headers: Iterable[tuple[str, str]] | None = None,
        **context: Any,
    ) -> Response:
        """The template named ``template`` (in the templates folder) filled with ``context``,
        as a response; HTML templates escape every value (``{{ name }}`` of ``<script>``
        shows the text, it does not run it)."""
        text = self.templates.render(template, **context)
        return Response(text, status, headers, content_type=self.templates.content_type(template))

    # --- serving ------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        """The WSGI entry point."""
        if self._mounts:
            path_info = environ.get("PATH_INFO", "")
            for _, wire, app in self._mounts:
                if path_info == wire or path_info.startswith(wire + "/"):
                    inner = dict(environ)
                    inner["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + wire
                    inner["PATH_INFO"] = path_info[len(wire) :]
                    return app(inner, start_response)
        request = Request(environ, self)
        token = _current.set(request)
        error: BaseException | None = None
        try:
            try:
                response = self._dispatch(request)
                if response.status_code is None:
                    response.status_code = 200
            except Exception as exc:  # the error handlers decide
                response, error = self._handle_exception(request, exc)
            if self._after:
                try:
                    response = self._after_request(request, response)
                except Exception as exc:
                    response, error = self._handle_exception(request, exc, in_after=True)
            try:
                body = response(environ, start_response)
            except Exception as exc:
                response, error = self._handle_exception(request, exc, in_after=True)
                body = response(environ, start_response)
        except BaseException as exc:
            self._finish(request, exc)
            raise
        finally:
            _current.reset(token)
        if type(body) is list or type(body) is environ.get("wsgi.file_wrapper"):
            # Made whole already, or a file the server sends with sendfile: both go out as
            # they are (the server has a fast path for each), so the request is done now.
            if self._teardown or request._files:
                self._finish(request, error)
            return body
        return _Closing(body, lambda: self._finish(request, error))

    def _dispatch(self, request: Request) -> Response:
        for hook in self._before:
            answer = hook(request)
            if answer is not None:
                return make_response(answer)
        environ = request.environ
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO") or "/"
        if not path.isascii():
            path = request.path  # decoded from UTF-8, or a 400
        match = self.router.match(method, path)
        if match is not None:
            rule, params = match
            request.params = params
            request.endpoint = rule.endpoint
            return make_response(rule.handler(request, **params))
        allowed = self.router.allowed(path)
        if allowed:
            allow = ", ".join(sorted(allowed | {"OPTIONS"}))
            if method == "OPTIONS":
                return Response(b"", 204, [("Allow", allow)], content_type=None)
            raise HTTPError(
                405,
                f"{path} takes {allow}, not {method}",
                [("Allow", allow)],
            )
        if not path.endswith("/") and self.router.allowed(path + "/"):
            # As Flask: /projects/ is the page, /projects leads there (308 keeps the method).
            location = quote((request.script_root + path + "/").encode("utf-8"), safe=_PATH_SAFE)
            if request.query_string:
                location += "?" + request.query_string
            return redirect(location, 308)
        raise HTTPError(404, f"nothing here at {path}")

    def _after_request(self, request: Request, response: Response) -> Response:
        for hook in self._after:
            answer = hook(request, response)
            if answer is not None:
                response = make_response(answer)
        return response

    def _handler_for(self, exc: BaseException) -> Callable[..., Any] | None:
        if isinstance(exc, HTTPError):
            handler = self._error_handlers.get(exc.status_code)
            if handler is not None:
                return handler
        for kind in type(exc).__mro__:
            handler = self._error_handlers.get(kind)
            if handler is not None:
                return handler
        return None

    def _handle_exception(
        self, request: Request, exc: Exception, in_after: bool = False
    ) -> tuple[Response, BaseException | None]:
        """The answer for ``exc``, and the error teardown hooks see (None once handled).
        Past the after_request hooks (``in_after``) only the default pages are used."""
        handler = None if in_after else self._handler_for(exc)
        unhandled: BaseException | None = None
        if handler is None and not isinstance(exc, HTTPError):
            unhandled = exc
            log.error(
                "%s %s failed", request.method, request.environ.get("PATH_INFO"), exc_info=exc
            )
            if self.debug:
                return self._traceback_response(request, exc), exc
            handler = None if in_after else self._error_handlers.get(500)
        if handler is None:
            error = exc if isinstance(exc, HTTPError) else HTTPError(500)
            return self._default_error(request, error), unhandled
        try:
            response = make_response(handler(request, exc))
        except Exception as failure:
            log.error("the error handler %r failed", handler, exc_info=failure)
            if self.debug:
                return self._traceback_response(request, failure), failure
            return self._default_error(request, HTTPError(500)), failure
        if response.status_code is None:
            response.status_code = exc.status_code if isinstance(exc, HTTPError) else 500
        if isinstance(exc, HTTPError):
            for name, value in exc.headers:
                response.headers.setdefault(name, value)
        return response, unhandled

    @staticmethod
    def _default_error(request: Request, error: HTTPError) -> Response:
        kind, body = error_body(
            error.status_code, error.description, request.environ.get("HTTP_ACCEPT", "")
        )
        response = Response(body, error.status_code, error.headers, content_type=kind)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @staticmethod
    def _traceback_response(request: Request, exc: BaseException) -> Response:
        page = traceback_page(exc, request.method, request.environ.get("PATH_INFO", ""))
        return Response(page, 500)

    def _finish(self, request: Request, error: BaseException | None) -> None:
        for hook in self._teardown:
            try:
                hook(request, error)
            except Exception:
                log.exception("the teardown hook %r failed", hook)
        request.close()

    def test_client(self) -> Any:
        """A :class:`netassist.web.testing.Client` for this app."""
        from netassist.web.testing import Client

        return Client(self)


class _Closing:
    """The body as the server iterates it; ``close`` closes it, then runs ``done``."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self.body = body
        self.done = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done()


def _no_handler() -> None:
    """The handler of a rule made only to be compared."""


def _root_of(import_name: str | None) -> Path:
    """The folder of the module ``import_name`` (the current folder without one)."""
    if import_name is None:
        return Path.cwd()
    module = sys.modules.get(import_name)
    file = getattr(module, "__file__", None)
    if file is None:
        return Path.cwd()
    return Path(file).resolve().parent


def _under(rule: Rule, prefix: str) -> bool:
    """Whether ``rule``'s literal start puts some of its paths at or below ``prefix``."""
    literal = (rule.pieces[0][0] or "") if rule.pieces else ""
    if rule.is_static:
        return literal == prefix or literal.startswith(prefix + "/")
    return literal.startswith(prefix + "/")  # no converter's value starts with "/"
