"""The App: 404, 405 with Allow, HEAD and OPTIONS, the trailing-slash redirect, error handlers,
hooks, mounts and debug mode."""

from __future__ import annotations

import pytest
from flask import Flask

from netassist.static import StaticFiles
from netassist.web import App, HTTPError, Response, RouteConflict, abort
from netassist.web.testing import Client


@pytest.fixture
def app() -> App:
    app = App(__name__)

    @app.get("/users/<int:id>")
    def user(request, id):
        return {"id": id}

    @app.post("/users/<int:id>")
    def update(request, id):
        return {"updated": id}

    @app.get("/projects/")
    def projects(request):
        return "projects"

    @app.get("/about")
    def about(request):
        return "about"

    return app


def test_unknown_path_404_and_wrong_method_405_with_allow(app):
    client = Client(app)
    assert client.get("/nope").status_code == 404
    answer = client.delete("/users/1")
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    assert client.put("/about").headers["Allow"] == "GET, HEAD, OPTIONS"


def test_head_is_get_without_a_body_and_options_lists_the_methods(app):
    client = Client(app)
    get, head = client.get("/users/7"), client.head("/users/7")
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"] == str(len(get.data))
    options = client.options("/users/7")
    assert options.status_code == 204 and options.headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    assert client.options("/nope").status_code == 404


def test_trailing_slash_redirects_like_flask(app):
    client = Client(app)
    answer = client.get("/projects?page=2")
    assert answer.status_code == 308 and answer.location == "/projects/?page=2"
    assert client.get("/projects", follow_redirects=True).text == "projects"
    assert client.get("/about/").status_code == 404  # no slash in the rule: no redirect


def test_a_styled_404_handler_keeps_the_404_status(app):
    @app.errorhandler(404)
    def not_found(request, error):
        return f"<h1>页面走丢了</h1><p>{error.description}</p>"

    answer = Client(app).get("/missing")
    assert answer.status_code == 404 and "页面走丢了" in answer.text

    @app.errorhandler(405)
    def wrong_method(request, error):
        return Response("teapot", 418)

    answer = Client(app).delete("/about")
    assert answer.status_code == 418 and answer.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_exception_handlers_by_class_and_the_500_fallback(app, caplog):
    class Missing(LookupError):
        pass

    @app.get("/missing-thing")
    def missing_thing(request):
        raise Missing("gone")

    @app.get("/boom")
    def boom(request):
        raise RuntimeError("secret detail")

    @app.errorhandler(LookupError)
    def lookup(request, error):
        return {"lookup": str(error)}

    client = Client(app)
    answer = client.get("/missing-thing")
    assert answer.status_code == 500 and answer.json() == {"lookup": "gone"}
    answer = client.get("/boom")
    assert answer.status_code == 500
    assert "secret detail" not in answer.text and "Traceback" not in answer.text
    assert "RuntimeError: secret detail" in caplog.text  # the log has it

    @app.errorhandler(500)
    def server_error(request, error):
        return f"sorry ({type(error).__name__})"

    answer = client.get("/boom")
    assert (answer.status_code, answer.text) == (500, "sorry (RuntimeError)")


def test_debug_mode_shows_an_escaped_traceback_only_when_asked(app):
    @app.get("/boom")
    def boom(request):
        raise ValueError("<script>x</script>")

    assert "Traceback" not in Client(app).get("/boom").text
    app.debug = True
    answer = Client(app).get("/boom")
    assert answer.status_code == 500 and "Traceback (most recent call last)" in answer.text
    assert "&lt;script&gt;x&lt;/script&gt;" in answer.text and "<script>x" not in answer.text


def test_hooks_run_in_order_and_teardown_after_the_body_is_sent():
    app = App(__name__)
    seen = []

    @app.before_request
    def first(request):
        seen.append(("before", request.path))
        if request.path == "/blocked":
            return Response("blocked", 403)
        return None

    @app.after_request
    def stamp(request, response):
        seen.append(("after", response.status_code))
        response.headers["X-Stamp"] = "1"

    @app.teardown
    def done(request, error):
        seen.append(("teardown", type(error).__name__ if error else None))

    @app.get("/stream")
    def stream(request):
        def body():
            seen.append(("body", 1))
            yield "a"

        return body()

    @app.get("/boom")
    def boom(request):
        raise KeyError("k")

    client = Client(app)
    answer = client.get("/stream")
    assert answer.text == "a" and answer.headers["X-Stamp"] == "1"
    assert seen == [("before", "/stream"), ("after", 200), ("body", 1), ("teardown", None)]
    seen.clear()
    answer = client.get("/blocked")
    assert answer.status_code == 403 and answer.headers["X-Stamp"] == "1"
    assert seen == [("before", "/blocked"), ("after", 403), ("teardown", None)]
    seen.clear()
    assert client.get("/boom").status_code == 500
    assert seen == [("before", "/boom"), ("after", 500), ("teardown", "KeyError")]


def test_mount_any_wsgi_app_with_script_name_set(tmp_path):
    (tmp_path / "site.css").write_text("body{}")
    flask = Flask("mounted")

    @flask.get("/hello")
    def flask_hello():
        from flask import request

        return f"{request.script_root}|{request.path}"

    inner = App(__name__)

    @inner.get("/users/<int:id>")
    def inner_user(request, id):
        return {"self": inner.url_for("inner_user", id=id), "root": request.script_root}

    app = App(__name__)
    app.mount("/flask", flask)
    app.mount("/api/v1", inner)
    app.mount("/static", StaticFiles(tmp_path))

    @app.before_request
    def never(request):
        raise AssertionError("a mounted app's request reached the outer hooks")

    client = Client(app)
    assert client.get("/flask/hello").text == "/flask|/hello"
    assert client.get("/api/v1/users/3").json() == {"self": "/api/v1/users/3", "root": "/api/v1"}
    assert client.get("/static/site.css").text == "body{}"
    with pytest.raises(RouteConflict, match="already mounted"):
        app.mount("/static", StaticFiles(tmp_path))
    with pytest.raises(RouteConflict, match="below mount"):
        app.add_route("/static/<path:p>", lambda request, p: p)
    with pytest.raises(ValueError, match="mount prefix"):
        app.mount("/", flask)


def test_a_mount_that_would_hide_a_route_is_refused(app):
    with pytest.raises(RouteConflict, match="would hide /users/<int:id>"):
        app.mount("/users", lambda environ, start_response: [])


def test_handlers_get_the_request_and_converted_params_as_keywords():
    app = App(__name__)

    @app.route("/a/<int:x>/<name>", methods=["GET", "PUT"])
    def both(request, x, name):
        return {"method": request.method, "x": x, "name": name, "endpoint": request.endpoint}

    client = Client(app)
    assert client.put("/a/5/bob").json() == {
        "method": "PUT",
        "x": 5,
        "name": "bob",
        "endpoint": "both",
    }


def test_http_error_must_be_an_error_status_and_errorhandler_checks_its_key():
    with pytest.raises(ValueError):
        HTTPError(302)
    app = App(__name__)
    with pytest.raises(ValueError):
        app.errorhandler(200)
    with pytest.raises(TypeError):
        app.errorhandler("404")  # type: ignore[arg-type]
    with pytest.raises(HTTPError):
        abort(404)


def test_every_kind_of_answer_passes_wsgiref_validation(app, tmp_path):
    from wsgiref.validate import validator

    (tmp_path / "f.txt").write_text("file")

    @app.get("/stream")
    def stream(request):
        return (str(n) for n in range(3))

    @app.get("/file")
    def file(request):
        from netassist.web import send_file

        return send_file(tmp_path / "f.txt")

    client = Client(validator(app))
    for method, path, status in [
        ("GET", "/users/1", 200),
        ("HEAD", "/users/1", 200),
        ("GET", "/stream", 200),
        ("GET", "/file", 200),
        ("GET", "/nope", 404),
        ("DELETE", "/users/1", 405),
        ("OPTIONS", "/users/1", 204),
        ("GET", "/projects", 308),
    ]:
        assert client.request(method, path).status_code == status, (method, path)
