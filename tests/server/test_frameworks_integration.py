"""Real Flask, Django and Bottle applications run unmodified under ``netassist run``."""

from __future__ import annotations

import hashlib
import textwrap

import pytest
import requests

pytestmark = pytest.mark.integration

FLASK_APP = """
from flask import Flask, jsonify, request

app = Flask(__name__)

@app.get("/")
def index():
    return "flask says hi"

@app.post("/json")
def echo_json():
    data = request.get_json()
    return jsonify(received=data, length=request.content_length)

@app.get("/user/<name>")
def user(name):
    return f"user {name}"
"""

DJANGO_APP = """
import django
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="test-only",
    MIDDLEWARE=[],
)
django.setup()

def index(request):
    return HttpResponse("django says hi")

def echo(request):
    body = request.body.decode()
    return JsonResponse({"method": request.method, "body": body, "path": request.path})

urlpatterns = [path("", index), path("echo/", echo)]

from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
"""

BOTTLE_APP = """
import os
from bottle import Bottle, request, response, static_file

app = Bottle()
HERE = os.path.dirname(os.path.abspath(__file__))

@app.get("/hello/<name>")
def hello(name):
    return f"bottle greets {name}"

@app.post("/form")
def form():
    return {"who": request.forms.getunicode("who"), "n": int(request.forms.get("n"))}

@app.get("/stream")
def stream():
    response.content_type = "text/plain"
    for i in range(3):
        yield f"part {i}\\n"

@app.get("/files/<name>")
def files(name):
    return static_file(name, root=os.path.join(HERE, "files"))
"""


def start(netassist, tmp_path, module: str, source: str, spec: str) -> int:
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    proc = netassist("run", spec, "--bind", "127.0.0.1:0", "--chdir", str(tmp_path))
    return int(proc.expect_stderr(r"listening on http://127\.0\.0\.1:(\d+)", timeout=30).group(1))


def test_flask_app_unmodified(netassist, tmp_path):
    pytest.importorskip("flask")
    port = start(netassist, tmp_path, "flask_site", FLASK_APP, "flask_site:app")
    base = f"http://127.0.0.1:{port}"
    assert requests.get(base + "/", timeout=10).text == "flask says hi"
    assert requests.get(base + "/user/%E4%B8%AD", timeout=10).text == "user 中"
    reply = requests.post(base + "/json", json={"a": [1, 2, "三"]}, timeout=10).json()
    assert reply["received"] == {"a": [1, 2, "三"]}
    assert requests.get(base + "/missing", timeout=10).status_code == 404


def test_django_app_unmodified(netassist, tmp_path):
    pytest.importorskip("django")
    port = start(netassist, tmp_path, "django_site", DJANGO_APP, "django_site:application")
    base = f"http://127.0.0.1:{port}"
    assert requests.get(base + "/", timeout=10).text == "django says hi"
    reply = requests.post(base + "/echo/", data="payload 中文".encode(), timeout=10).json()
    assert reply == {"method": "POST", "body": "payload 中文", "path": "/echo/"}
    # chunked upload: Django reads CONTENT_LENGTH, which the server sets once the body is in
    reply = requests.post(base + "/echo/", data=iter([b"chunk", b"ed"]), timeout=10).json()
    assert reply["body"] == "chunked"


def test_bottle_app_unmodified(netassist, tmp_path):
    pytest.importorskip("bottle")
    (tmp_path / "files").mkdir()
    payload = bytes(range(256)) * 4096  # 1 MiB, sent through wsgi.file_wrapper
    (tmp_path / "files" / "data.bin").write_bytes(payload)
    port = start(netassist, tmp_path, "bottle_site", BOTTLE_APP, "bottle_site:app")
    base = f"http://127.0.0.1:{port}"
    assert requests.get(base + "/hello/%E4%B8%AD", timeout=10).text == "bottle greets 中"
    reply = requests.post(base + "/form", data={"who": "张三", "n": "7"}, timeout=10).json()
    assert reply == {"who": "张三", "n": 7}
    streamed = requests.get(base + "/stream", timeout=10)
    assert streamed.headers.get("Transfer-Encoding") == "chunked"
    assert streamed.text == "part 0\npart 1\npart 2\n"
    served = requests.get(base + "/files/data.bin", timeout=10)
    assert served.status_code == 200
    assert hashlib.sha256(served.content).hexdigest() == hashlib.sha256(payload).hexdigest()
    assert requests.get(base + "/files/../bottle_site.py", timeout=10).status_code in (403, 404)
