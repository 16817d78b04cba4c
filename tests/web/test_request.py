"""Request: the environ read lazily, headers in any case, multi-dict args, JSON, cookies."""

from __future__ import annotations

import io

import pytest

from netassist.web import App, HTTPError, MultiDict, Request
from netassist.web.testing import Client


def environ(**extra) -> dict:
    base = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "example.org",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
    }
    base.update(extra)
    return base


class Untouchable(io.RawIOBase):
    """A wsgi.input that fails the test if anything reads it."""

    def read(self, size=-1):
        raise AssertionError("the body was read")


def test_headers_in_any_case_and_their_names():
    request = Request(
        environ(HTTP_X_TOKEN="abc", CONTENT_TYPE="text/plain", HTTP_USER_AGENT="curl/8")
    )
    assert request.headers["x-token"] == request.headers["X-TOKEN"] == "abc"
    assert request.headers.get("Content-Type") == "text/plain"
    assert request.headers.get("content-length") is None
    assert "user-agent" in request.headers and "nope" not in request.headers
    assert set(request.headers) == {"X-Token", "Content-Type", "User-Agent"}


def test_args_are_a_multidict_with_types():
    request = Request(environ(QUERY_STRING="tag=a&tag=b&page=2&bad=x&name=%E5%BC%A0&empty="))
    assert request.args["tag"] == "a" and request.args.getlist("tag") == ["a", "b"]
    assert request.args.get("page", type=int) == 2
    assert request.args.get("bad", 1, type=int) == 1
    assert request.args["name"] == "张" and request.args["empty"] == ""
    assert request.args.getlist("missing") == []
    many = Request(environ(QUERY_STRING="&".join(f"k{n}=1" for n in range(1001))))
    with pytest.raises(HTTPError) as caught:
        many.args  # noqa: B018
    assert caught.value.status_code == 413


def test_multidict_basics():
    d = MultiDict([("a", 1), ("a", 2), ("b", 3)])
    assert d["a"] == 1 and len(d) == 2 and list(d) == ["a", "b"]
    d.add("b", 4)
    assert d.items(multi=True) == [("a", 1), ("a", 2), ("b", 3), ("b", 4)]
    d["a"] = 9
    assert d.getlist("a") == [9] and d.to_dict(flat=False) == {"a": [9], "b": [3, 4]}


def test_path_url_remote_addr_and_a_path_that_is_not_utf8():
    wire = "/用户/1".encode().decode("latin-1")
    request = Request(
        environ(
            PATH_INFO=wire,
            SCRIPT_NAME="/app",
            QUERY_STRING="q=1",
            HTTP_HOST="example.org:8080",
            REMOTE_ADDR="192.0.2.7",
        )
    )
    assert request.path == "/用户/1" and request.script_root == "/app"
    assert request.url == "http://example.org:8080/app/%E7%94%A8%E6%88%B7/1?q=1"
    assert request.remote_addr == "192.0.2.7"
    assert Request(environ()).url == "http://example.org/"
    with pytest.raises(HTTPError) as caught:
        Request(environ(PATH_INFO="/\xff")).path  # noqa: B018
    assert caught.value.status_code == 400


def test_the_body_is_not_read_unless_asked_for():
    app = App(__name__)

    @app.post("/ignore")
    def ignore(request):
        return request.args.get("x", "none")

    answer = Client(app).post(
        "/ignore?x=1", environ={"wsgi.input": Untouchable(), "CONTENT_LENGTH": "5"}
    )
    assert answer.status_code == 200 and answer.text == "1"


def test_json_bodies_bad_json_and_the_wrong_type():
    app = App(__name__)

    @app.post("/echo")
    def echo(request):
        return {"got": request.json}

    client = Client(app)
    assert client.post("/echo", json={"名字": "张三"}).json() == {"got": {"名字": "张三"}}
    bad = client.post(
        "/echo",
        data=b'{"a": ',
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("the body is not valid JSON: Expecting value")
    wrong = client.post("/echo", data={"a": "1"}, headers={"Accept": "application/json"})
    assert wrong.status_code == 415
    assert "application/x-www-form-urlencoded" in wrong.json()["error"]["message"]
    vendor = client.post("/echo", data=b"[1]", headers={"Content-Type": "application/vnd.api+json"})
    assert vendor.json() == {"got": [1]}


def test_a_body_shorter_than_its_content_length_is_400_and_a_large_one_413():
    app = App(__name__, max_content_length=10)

    @app.post("/body")
    def body(request):
        return str(len(request.body))

    client = Client(app)
    short = client.post("/body", environ={"wsgi.input": io.BytesIO(b"abc"), "CONTENT_LENGTH": "8"})
    assert short.status_code == 400
    assert client.post("/body", data=b"0123456789").text == "10"
    assert client.post("/body", data=b"0123456789X").status_code == 413
    chunked = client.post(
        "/body",
        environ={
            "wsgi.input": io.BytesIO(b"x" * 50),
            "wsgi.input_terminated": True,
            "CONTENT_LENGTH": "",
        },
    )
    assert chunked.status_code == 413  # no Content-Length: counted while read


def test_cookies_first_wins_and_values_are_decoded():
    request = Request(environ(HTTP_COOKIE='a=1; b="two"; a=3; junk; c=%E4%B8%AD; d=x=y'))
    assert request.cookies == {"a": "1", "b": "two", "c": "中", "d": "x=y"}
    assert request.get_cookie("a") == "1" and request.get_cookie("zz", "dflt") == "dflt"
