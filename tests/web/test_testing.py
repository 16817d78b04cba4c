"""The in-process test client: cookies kept, forms and files encoded, redirects followed."""

from __future__ import annotations

from netassist.web import App, Response, redirect
from netassist.web.testing import Client


def test_a_login_flow_keeps_the_cookie_across_requests():
    app = App(__name__)

    @app.post("/login")
    def login(request):
        response = redirect("/me", 303)
        response.set_cookie("user", request.form["name"])
        return response

    @app.get("/me")
    def me(request):
        return request.cookies.get("user", "nobody")

    @app.post("/logout")
    def logout(request):
        response = Response("bye")
        response.delete_cookie("user")
        return response

    client = Client(app)
    answer = client.post("/login", data={"name": "张三"}, follow_redirects=True)
    assert answer.text == "张三" and [r.status_code for r in answer.history] == [303]
    assert client.get("/me").text == "张三"
    client.post("/logout")
    assert client.get("/me").text == "nobody"


def test_files_json_params_and_headers():
    app = App(__name__)

    @app.post("/up")
    def up(request):
        upload = request.files["f"]
        return {
            "name": upload.filename,
            "data": upload.read().decode(),
            "field": request.form["note"],
            "q": request.args.getlist("q"),
            "agent": request.headers["user-agent"],
        }

    answer = Client(app).post(
        "/up?q=1",
        params={"q": "2"},
        data={"note": "n"},
        files={"f": ("a.txt", b"hello", "text/plain")},
        headers={"User-Agent": "test"},
    )
    assert answer.json() == {
        "name": "a.txt",
        "data": "hello",
        "field": "n",
        "q": ["1", "2"],
        "agent": "test",
    }


def test_the_client_drives_any_wsgi_app_and_app_test_client_is_the_same():
    def plain(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode("latin-1")]

    assert Client(plain).get("/a%20b").data == b"/a b"
    assert isinstance(App(__name__).test_client(), Client)
