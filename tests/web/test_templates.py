"""Templates: Jinja2 with autoescape, render(), url_for() below the mount point."""

from __future__ import annotations

import pytest

from netassist.web import App
from netassist.web.templates import Templates
from netassist.web.testing import Client

ATTACK = '<script>alert("xss")</script>'


@pytest.fixture
def app(tmp_path) -> App:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "info.html").write_text(
        "<p>{{ username }},欢迎回来,你今年{{ age }}岁了</p>"
        "<a href=\"{{ url_for('user', id=7, tab=tab) }}\">me</a>",
        encoding="utf-8",
    )
    (tmp_path / "templates" / "note.txt").write_text("{{ text }}", encoding="utf-8")
    app = App(__name__, templates=tmp_path / "templates")

    @app.get("/info")
    def info(request):
        return app.render("info.html", username=request.args.get("name", "jack"), age=18, tab="a&b")

    @app.get("/users/<int:id>")
    def user(request, id):
        return str(id)

    @app.get("/note")
    def note(request):
        return app.render("note.txt", status=202, text=ATTACK)

    return app


def test_values_are_escaped_in_html_templates(app):
    answer = Client(app).get("/info", params={"name": ATTACK})
    assert answer.status_code == 200 and answer.content_type == "text/html; charset=utf-8"
    assert "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;" in answer.text
    assert "<script>" not in answer.text
    assert "欢迎回来,你今年18岁了" in answer.text


def test_str_format_would_have_run_the_script():
    # What the tutorial did, for contrast: the attack becomes part of the page.
    template = "<p>{username},欢迎回来</p>"
    page = template.format(username=ATTACK)
    assert "<script>" in page


def test_url_for_in_templates_knows_the_mount_point(app):
    assert 'href="/users/7?tab=a%26b"' in Client(app).get("/info").text
    outer = App(__name__)
    outer.mount("/site", app)
    assert 'href="/site/users/7?tab=a%26b"' in Client(outer).get("/site/info").text
    assert app.url_for("user", id=3) == "/users/3"  # outside a request: no mount point


def test_text_templates_are_not_escaped_and_keep_their_type_and_status(app):
    answer = Client(app).get("/note")
    assert (answer.status_code, answer.text) == (202, ATTACK)
    assert answer.content_type == "text/plain; charset=utf-8"


def test_a_missing_template_names_the_folder(app, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no template 'nope\.html' in"):
        app.render("nope.html")


def test_render_string_escapes_too(tmp_path):
    templates = Templates(tmp_path)
    assert templates.render_string("{{ x }}", x="<b>") == "&lt;b&gt;"
    assert templates.render_string("{{ x|safe }}", x="<b>") == "<b>"
