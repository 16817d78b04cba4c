"""The applications of ``bench/web_bench.py``: one route with a path parameter answering JSON,
as a bare WSGI function and on each framework. Each is made by a factory, so serving one
imports only its own framework: ``netassist run 'bench.web_apps:netassist_web()'``."""

from __future__ import annotations

import json

ROUTES = 200  # for the many-routes app: /r0/<int:id> ... /r199/<int:id>


def bare():
    """The floor: the route matched by hand, the JSON made by hand."""
    not_found = [("Content-Type", "text/plain"), ("Content-Length", "9")]

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path.startswith("/users/") and path[7:].isdigit():
            body = json.dumps({"id": int(path[7:])}).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        start_response("404 Not Found", not_found)
        return [b"not found"]

    return app


def netassist_web(routes: int = 0):
    """netassist.web; with ``routes``, that many other routes registered first."""
    from netassist.web import App

    app = App(__name__)
    for number in range(routes):
        app.add_route(f"/r{number}/<int:id>", _numbered(number), endpoint=f"r{number}")

    @app.get("/users/<int:id>")
    def user(request, id):
        return {"id": id}

    return app


def netassist_web_many():
    """netassist.web with 200 routes (and /users/<int:id> as the 201st)."""
    return netassist_web(ROUTES)


def _numbered(number: int):
    def handler(request, id):
        return {"id": id, "route": number}

    return handler


def bottle_app(routes: int = 0):
    """Bottle 0.13."""
    import bottle

    app = bottle.Bottle()
    for number in range(routes):
        app.route(f"/r{number}/<id:int>", callback=_bottle_numbered(number))

    @app.get("/users/<id:int>")
    def user(id):
        return {"id": id}

    return app


def bottle_many():
    """Bottle with 200 routes."""
    return bottle_app(ROUTES)


def _bottle_numbered(number: int):
    def handler(id):
        return {"id": id, "route": number}

    return handler


def flask_app(routes: int = 0):
    """Flask 3."""
    import flask

    app = flask.Flask(__name__)
    for number in range(routes):
        app.add_url_rule(f"/r{number}/<int:id>", f"r{number}", _flask_numbered(number))

    @app.get("/users/<int:id>")
    def user(id):
        return {"id": id}

    return app


def flask_many():
    """Flask with 200 routes."""
    return flask_app(ROUTES)


def _flask_numbered(number: int):
    def handler(id):
        return {"id": id, "route": number}

    return handler
