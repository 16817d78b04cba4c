"""The demo site (what ``make run`` serves) through a real ``netassist run`` and requests:
every page, its status and content type, the forms, the 404 and the 405."""

from __future__ import annotations

import re

import pytest
import requests

pytestmark = pytest.mark.integration

PAGES = [
    ("/", 200, "text/html; charset=utf-8", "欢迎来到我的首页"),
    ("/index.html", 200, "text/html; charset=utf-8", "欢迎来到我的首页"),
    ("/test", 200, "application/json", '{"name": "zhangsan", "age": 18}'),
    ("/demo", 200, "text/plain; charset=utf-8", "欢迎来到demo页面"),
    ("/hello", 200, "text/html", "hello world"),
    ("/info", 200, "text/html; charset=utf-8", "jack,欢迎回来"),
    ("/login", 200, "text/html; charset=utf-8", "欢迎来到登录页面"),
    ("/register", 200, "text/html; charset=utf-8", "欢迎来到注册页面"),
    ("/no-such-page", 404, "text/html; charset=utf-8", "页面走丢了"),
    ("/static/site.css", 200, "text/css; charset=utf-8", "--accent"),
]


def test_every_page_status_content_type_and_charset(seed_site):
    base = seed_site()
    for path, status, kind, text in PAGES:
        reply = requests.get(base + path, timeout=10)
        assert (reply.status_code, reply.headers["Content-Type"]) == (status, kind), path
        body = reply.content.decode("utf-8")
        assert text in body, path
        if kind.startswith("text/html"):
            assert '<meta charset="utf-8">' in body, path
    assert requests.get(base + "/test", timeout=10).json() == {"name": "zhangsan", "age": 18}


def test_the_home_page_links_every_page_and_names_the_commands(seed_site):
    base = seed_site()
    home = requests.get(base + "/", timeout=10).text
    links = set(re.findall(r'href="([^"]+)"', home))
    for path, *_ in PAGES[:-1]:
        if path != "/static/site.css":
            assert path in links, path
    for command in (
        "netassist udp",
        "netassist tcp",
        "netassist files",
        "netassist serve",
        "netassist run",
    ):
        assert command in home
    for program in (
        "返回不同的类型",
        "使用装饰器管理请求路径",
        "HTTP服务器函数封装",
        "文件下载服务器",
    ):
        assert program in home


def test_info_escapes_what_str_format_would_have_run(seed_site):
    base = seed_site()
    reply = requests.get(
        base + "/info", params={"username": "<script>alert(1)</script>"}, timeout=10
    )
    assert "&lt;script&gt;alert(1)&lt;/script&gt;,欢迎回来" in reply.text
    assert "<script>alert(1)" not in reply.text


def test_wrong_method_is_405_with_allow_and_head_options_work(seed_site):
    base = seed_site()
    reply = requests.delete(base + "/test", timeout=10)
    assert reply.status_code == 405 and reply.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert requests.post(base + "/hello", timeout=10).status_code == 405
    head = requests.head(base + "/", timeout=10)
    assert head.status_code == 200 and head.content == b""
    options = requests.options(base + "/login", timeout=10)
    assert options.status_code == 204 and options.headers["Allow"] == "GET, HEAD, OPTIONS, POST"


def test_demo_file_ranges_and_conditional_requests(seed_site):
    base = seed_site()
    whole = requests.get(base + "/demo", timeout=10)
    part = requests.get(base + "/demo", headers={"Range": "bytes=0-14"}, timeout=10)
    assert part.status_code == 206 and part.content == whole.content[:15]
    again = requests.get(
        base + "/demo", headers={"If-None-Match": whole.headers["ETag"]}, timeout=10
    )
    assert again.status_code == 304


def test_register_validates_then_login_sets_a_signed_cookie(seed_site):
    base = seed_site()
    session = requests.Session()
    bad = session.post(
        base + "/register",
        data={"username": "x", "email": "nope", "password": "123", "password2": "123"},
        timeout=10,
    )
    assert bad.status_code == 400
    for message in ("用户名需", "邮箱格式不正确", "密码至少 6 位"):
        assert message in bad.text
    form = {
        "username": "张三",
        "email": "zs@example.org",
        "password": "secret1",
        "password2": "secret1",
    }
    good = session.post(base + "/register", data=form, timeout=10)
    assert good.status_code == 200 and "注册成功,欢迎 张三" in good.text
    taken = session.post(base + "/register", data=form, timeout=10)
    assert taken.status_code == 400 and "已被注册" in taken.text

    wrong = session.post(
        base + "/login", data={"username": "张三", "password": "nope!!"}, timeout=10
    )
    assert wrong.status_code == 400 and "用户名或密码错误" in wrong.text
    login = session.post(
        base + "/login",
        data={"username": "张三", "password": "secret1"},
        allow_redirects=False,
        timeout=10,
    )
    assert login.status_code == 303 and login.headers["Location"] == "/info"
    cookie = login.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert "张三,欢迎回来" in session.get(base + "/info", timeout=10).text
    tampered = session.cookies["user"][:-3] + "AAA"
    session.cookies.clear()
    session.cookies.set("user", tampered)
    assert "jack,欢迎回来" in session.get(base + "/info", timeout=10).text
