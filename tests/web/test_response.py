"""Responses: what handlers may return, the helpers, files through netassist.static, cookies."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest

from netassist.web import App, Response, abort, redirect, send_file, send_from_directory
from netassist.web import json as json_response
from netassist.web.cookies import BadSignature, sign, unsign
from netassist.web.testing import Client


def app_returning(value) -> Client:
    app = App(__name__)

    @app.get("/")
    def home(request):
        return value() if callable(value) else value

    return Client(app)


@pytest.mark.parametrize(
    ("value", "status", "kind", "body"),
    [
        ("<b>中文</b>", 200, "text/html; charset=utf-8", "<b>中文</b>".encode()),
        (b"\x00\x01", 200, "text/html; charset=utf-8", b"\x00\x01"),
        ({"name": "张三"}, 200, "application/json", '{"name": "张三"}'.encode()),
        ([1, 2], 200, "application/json", b"[1, 2]"),
        (("gone", 410), 410, "text/html; charset=utf-8", b"gone"),
        (("x", {"X-A": "1"}), 200, "text/html; charset=utf-8", b"x"),
        (lambda: Response("t", 201, content_type="text/plain"), 201, "text/plain", b"t"),
        (lambda: (f"{n}\n" for n in range(3)), 200, "text/html; charset=utf-8", b"0\n1\n2\n"),
    ],
    ids=["str", "bytes", "dict", "list", "tuple-status", "tuple-headers", "Response", "iterable"],
)
def test_what_a_handler_may_return(value, status, kind, body):
    answer = app_returning(value).get("/")
    assert (answer.status_code, answer.content_type, answer.data) == (status, kind, body)
    if isinstance(value, str | bytes):
        assert answer.headers["Content-Length"] == str(len(body))
    if callable(value) and not isinstance(value(), Response):
        assert "Content-Length" not in answer.headers  # streamed


def test_a_handler_returning_none_is_a_500_that_says_so_in_the_log(caplog):
    answer = app_returning(None).get("/")
    assert answer.status_code == 500
    assert "returned None" in caplog.text


def test_json_redirect_and_abort_helpers():
    app = App(__name__)

    @app.get("/j")
    def j(request):
        return json_response({"ok": True}, 201, [("X-Extra", "1")])

    @app.get("/r")
    def r(request):
        return redirect("/目标 page?q=1", 303)

    @app.get("/a")
    def a(request):
        abort(403, "not yours")

    client = Client(app)
    answer = client.get("/j")
    assert (answer.status_code, answer.json(), answer.headers["X-Extra"]) == (
        201,
        {"ok": True},
        "1",
    )
    answer = client.get("/r")
    assert answer.status_code == 303 and answer.location == "/%E7%9B%AE%E6%A0%87%20page?q=1"
    answer = client.get("/a", headers={"Accept": "application/json"})
    assert answer.status_code == 403
    assert answer.json() == {"error": {"status": 403, "message": "not yours"}}
    with pytest.raises(ValueError, match="a redirect is"):
        redirect("/", 200)


def test_headers_refuse_line_breaks():
    with pytest.raises(ValueError, match="holds CR, LF or NUL"):
        Response("x", headers={"X-Bad": "a\r\nSet-Cookie: evil=1"})


@pytest.fixture
def files(tmp_path):
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "a.txt").write_bytes(b"0123456789" * 10_000)
    (tmp_path / "public" / ".secret").write_text("hidden")
    (tmp_path / "public" / "中文 #1.txt").write_text("中文内容", encoding="utf-8")
    (tmp_path / "outside.txt").write_text("outside")
    os.symlink(tmp_path / "outside.txt", tmp_path / "public" / "link.txt")
    return tmp_path


def file_app(files) -> Client:
    app = App(__name__)

    @app.route("/file", methods=["GET", "POST"])
    def one(request):
        return send_file(files / "public" / "a.txt", as_attachment=request.args.get("dl") == "1")

    @app.get("/dl/<path:name>")
    def download(request, name):
        return send_from_directory(files / "public", name)

    @app.errorhandler(404)
    def missing(request, error):
        return "no such file"

    return Client(app)


def test_send_file_brings_ranges_etags_and_head_from_static(files):
    client = file_app(files)
    data = (files / "public" / "a.txt").read_bytes()
    whole = client.get("/file")
    assert whole.status_code == 200 and whole.data == data
    assert whole.content_type == "text/plain; charset=utf-8"
    assert whole.headers["Accept-Ranges"] == "bytes"
    part = client.get("/file", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.data == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    again = client.get("/file", headers={"If-None-Match": whole.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    head = client.head("/file")
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == str(len(data))
    posted = client.post("/file", headers={"Range": "bytes=0-1"})
    assert posted.status_code == 200 and posted.data == data  # a POST gets the whole file
    attached = client.get("/file?dl=1")
    assert attached.headers["Content-Disposition"] == 'attachment; filename="a.txt"'


def test_send_from_directory_judges_names_as_netassist_serve_does(files):
    client = file_app(files)
    answer = client.get("/dl/%E4%B8%AD%E6%96%87%20%231.txt")
    assert answer.status_code == 200 and answer.text == "中文内容"
    for refused in (
        "/dl/.secret",
        "/dl/../outside.txt",
        "/dl/link.txt",
        "/dl/nope.txt",
        "/dl/%2e%2e/outside.txt",
    ):
        answer = client.get(refused)
        assert (answer.status_code, answer.text) == (404, "no such file"), refused


def test_send_file_of_a_missing_file_is_an_error_of_the_code():
    with pytest.raises(FileNotFoundError, match="is not a file"):
        send_file("/no/such/file")


def test_cookies_have_safe_defaults_and_secure_follows_https():
    app = App(__name__)

    @app.get("/")
    def home(request):
        response = Response("ok")
        response.set_cookie("plain", "a b;c")
        response.set_cookie("open", "1", httponly=False, samesite="Strict", max_age=60)
        response.delete_cookie("old")
        return response

    http = Client(app).get("/").headers.getlist("Set-Cookie")
    assert http[0] == "plain=a%20b%3Bc; Path=/; HttpOnly; SameSite=Lax"
    assert http[1] == "open=1; Max-Age=60; Path=/; SameSite=Strict"
    assert http[2].startswith("old=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/")
    https = Client(app, base_url="https://localhost").get("/").headers.getlist("Set-Cookie")
    assert https[0] == "plain=a%20b%3Bc; Path=/; Secure; HttpOnly; SameSite=Lax"
    with pytest.raises(ValueError, match="cookie name"):
        Response().set_cookie("bad name", "x")
    with pytest.raises(ValueError, match="without secure=True"):
        Response().set_cookie("x", "y", samesite="None", secure=False)
    with pytest.raises(TypeError, match="pass secret="):
        Response().set_cookie("x", {"a": 1})


SECRET = "s" * 32


def test_signed_cookies_round_trip_and_refuse_tampering():
    app = App(__name__)

    @app.get("/set")
    def set_(request):
        response = Response("set")
        response.set_cookie("user", {"name": "张三", "admin": False}, secret=SECRET)
        return response

    @app.get("/get")
    def get(request):
        return {"user": request.get_cookie("user", "nobody", secret=SECRET)}

    client = Client(app)
    client.get("/set")
    assert client.get("/get").json() == {"user": {"name": "张三", "admin": False}}
    token = client.cookie("user")
    payload = token.split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert json.loads(decoded) == {"name": "张三", "admin": False}  # JSON, never pickle
    forged = base64.urlsafe_b64encode(b'{"name":"root","admin":true}').rstrip(b"=").decode()
    client.cookies["user"] = forged + token[len(payload) :]
    assert client.get("/get").json() == {"user": "nobody"}


def test_signatures_bind_the_name_the_secret_and_the_age():
    token = sign([1, 2], SECRET, "a", now=1000)
    assert unsign(token, SECRET, "a", now=1000) == [1, 2]
    for bad in (
        lambda: unsign(token, SECRET, "b"),
        lambda: unsign(token, "t" * 32, "a"),
        lambda: unsign(token, SECRET, "a", max_age=60, now=1061),
        lambda: unsign("garbage", SECRET, "a"),
        lambda: unsign(token[:-2], SECRET, "a"),
    ):
        with pytest.raises(BadSignature):
            bad()
    with pytest.raises(ValueError, match="at least 16 bytes"):
        sign(1, "short")
    assert hashlib.sha256(token.encode()).hexdigest()  # the token is plain ASCII
