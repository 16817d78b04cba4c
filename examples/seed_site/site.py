"""The pages of the tutorial's demo site, each on one route.

The tutorial built these pages by hand three times (an if-chain, a dict of paths, a
``@route`` decorator), filled ``info.html`` with ``str.format`` (so a name holding
``<script>`` ran in the browser), sent JSON labelled as HTML, and answered 200 to a method a
page does not take. Here the framework does the routing, Jinja2 escapes, ``/test`` is
``application/json``, a wrong method is 405, and a missing page is a styled 404 that keeps its
404 status.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from netassist.static import StaticFiles
from netassist.web import App, redirect, send_file
from seed_site import users

HERE = Path(__file__).resolve().parent
PAGES = HERE / "pages"
# Signs the "user" cookie: $SEED_SITE_SECRET, or one kept in the accounts file, so that
# every worker process (gunicorn's too) and the next start sign alike.
SECRET = os.environ.get("SEED_SITE_SECRET") or users.secret()
NAME = re.compile(r"[\w\u4e00-\u9fff]{2,20}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

app = App(__name__)
app.mount("/static", StaticFiles(HERE / "static", listing=False, max_age=3600))

# What the home page lists: path, what it shows, the tutorial program it replaces.
PAGE_LIST = [
    (
        "/",
        "home",
        "this page: every page of the site, and a netassist command for the rest",
        "手动搭建HTTP服务器: WSGIServer read pages/index.html for / (and any file a ../"
        " path named)",
    ),
    (
        "/index.html",
        "home",
        "the same page under the tutorial's other name",
        "使用装饰器管理请求路径: @route('/index.html') stacked on @route('/')",
    ),
    (
        "/test",
        "show_test",
        'JSON: {"name": "zhangsan", "age": 18}, as application/json',
        "返回不同的类型: json.dumps(...) sent as text/html",
    ),
    (
        "/demo",
        "show_demo",
        "a text file, with ranges, ETag and 304s",
        "返回不同的类型: open('pages/xxxx.txt').read() per request",
    ),
    (
        "/hello",
        "show_hello",
        "a static HTML page",
        "返回不同的类型: open('pages/hello.html').read()",
    ),
    (
        "/info",
        "show_info",
        "a template filled with username, age and gender, escaped",
        "HTTP服务器函数封装: file.read().format(username=...), an XSS hole",
    ),
    (
        "/login",
        "login",
        "a form that signs you in (a signed cookie)",
        "根据不同的请求返回不同的内容: '欢迎来到登录页面', a line of text",
    ),
    (
        "/register",
        "register",
        "a form that creates an account",
        "面向对象的封装: '欢迎来到注册页面', a line of text",
    ),
    (
        "/no-such-page",
        None,
        "a styled 404 page, status 404",
        "根据请求路径返回不同内容: '页面走丢了' (and '400 NOT FOUND' in 使用if管理请求路径)",
    ),
]

# The rest of the tutorial: a netassist command for each program.
COMMANDS = [
    ("netassist udp send 127.0.0.1 9090 下午好", "udp网络程序-发送数据, and NetAssist.exe"),
    ("netassist udp listen 9090 --echo", "udp网络程序-接收数据"),
    ("netassist tcp connect 127.0.0.1 9090", "TCP 客户端建立"),
    ("netassist tcp listen 9090 --broadcast", "TCP 服务端建立 and 多线程聊天"),
    ("netassist files serve ./share", "文件下载服务器"),
    ("netassist files get 127.0.0.1 notes.txt -o .", "文件下载客户端"),
    ("netassist serve ./pages", "手动搭建HTTP服务器 (a folder of pages)"),
    ("netassist run myapp:app", "wsgiref's make_server(...).serve_forever()"),
]


def current_user(request) -> str | None:
    """The signed-in name, from the signed cookie (None if absent or altered)."""
    return request.get_cookie("user", secret=SECRET, max_age=7 * 24 * 3600)


@app.route("/index.html")
@app.route("/")
def home(request):
    """The home page: every page, and the command for the rest of the tutorial."""
    return app.render(
        "index.html",
        pages=PAGE_LIST,
        commands=COMMANDS,
        user=current_user(request),
    )


@app.get("/test")
def show_test(request):
    """The tutorial's JSON, now labelled as JSON."""
    return {"name": "zhangsan", "age": 18}


@app.get("/demo")
def show_demo(request):
    """A text file (netassist.static answers ranges and conditional requests)."""
    return send_file(PAGES / "demo.txt")


@app.get("/hello")
def show_hello(request):
    """A static HTML page."""
    return send_file(PAGES / "hello.html")


@app.get("/info")
def show_info(request):
    """The template page: a name from ?username=, the signed-in user, or the tutorial's
    jack; every value escaped."""
    username = request.args.get("username") or current_user(request) or "jack"
    return app.render("info.html", username=username, age=18, gender="男")


@app.route("/login", methods=["GET", "POST"])
def login(request):
    """Sign in: check the form, then a signed cookie and off to /info."""
    if request.method == "GET":
        return app.render("login.html", errors=[], username="")
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    errors = []
    if not username:
        errors.append("请输入用户名 (a user name is needed)")
    if not password:
        errors.append("请输入密码 (a password is needed)")
    if not errors and not users.check(username, password):
        errors.append("用户名或密码错误 (unknown name or wrong password)")
    if errors:
        return app.render("login.html", status=400, errors=errors, username=username)
    response = redirect(app.url_for("show_info"), 303)
    response.set_cookie("user", username, secret=SECRET, max_age=7 * 24 * 3600)
    return response


@app.post("/logout")
def logout(request):
    """Sign out: the cookie goes."""
    response = redirect(app.url_for("home"), 303)
    response.delete_cookie("user")
    return response


@app.route("/register", methods=["GET", "POST"])
def register(request):
    """Create an account: validate every field, say what is wrong, or welcome."""
    if request.method == "GET":
        return app.render("register.html", errors=[], username="", email="")
    form = request.form
    username = form.get("username", "").strip()
    email = form.get("email", "").strip()
    password, again = form.get("password", ""), form.get("password2", "")
    errors = []
    if not NAME.fullmatch(username):
        errors.append("用户名需 2-20 个字母、数字、汉字或下划线 (2-20 letters, digits or _)")
    if not EMAIL.fullmatch(email):
        errors.append("邮箱格式不正确 (the e-mail address does not look right)")
    if len(password) < 6:
        errors.append("密码至少 6 位 (at least 6 characters)")
    elif password != again:
        errors.append("两次输入的密码不一致 (the passwords differ)")
    if not errors and not users.add(username, email, password):
        errors.append(f"用户名 {username} 已被注册 (that name is taken)")
    if errors:
        return app.render(
            "register.html", status=400, errors=errors, username=username, email=email
        )
    return app.render("welcome.html", username=username, email=email)


@app.errorhandler(404)
def not_found(request, error):
    """The tutorial's 页面走丢了, styled; the status stays 404."""
    return app.render("404.html", path=request.path)
