"""Pages in GBK served by ``netassist serve``: the page's own <meta charset> decides.

A charset in Content-Type overrides the page's declaration, so a GBK page labelled utf-8
shows mojibake; ``python -m http.server`` sends HTML unlabelled, and so do we unless
``--charset`` is given.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from netassist.errors import ExitCode
from tests.conftest import run_netassist

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
GREETING = "下午好，欢迎光临"
GBK_PAGE = (
    '<!DOCTYPE html><html><head><meta charset="gbk"><title>GBK 页面</title></head>'
    f'<body><p id="greeting">{GREETING}</p></body></html>'
).encode("gbk")


@pytest.fixture
def gbk_site(tmp_path):
    root = tmp_path / "gbk"
    root.mkdir()
    (root / "index.html").write_bytes(GBK_PAGE)
    (root / "readme.txt").write_bytes(GREETING.encode("gbk"))
    return root


@pytest.fixture
def serve_gbk(serve_folder, gbk_site):
    return lambda *args: serve_folder(gbk_site, *args)


def test_html_is_unlabelled_and_text_is_utf8_by_default(serve_gbk):
    base = serve_gbk()
    page = requests.get(base + "/index.html")
    assert page.headers["Content-Type"] == "text/html"
    assert page.content == GBK_PAGE
    assert requests.get(base + "/readme.txt").headers["Content-Type"] == (
        "text/plain; charset=utf-8"
    )


def test_charset_labels_every_text_file(serve_gbk):
    base = serve_gbk("--charset", "gbk")
    assert requests.get(base + "/").headers["Content-Type"] == "text/html; charset=gbk"
    text = requests.get(base + "/readme.txt")
    assert text.headers["Content-Type"] == "text/plain; charset=gbk"
    assert text.text == GREETING


@pytest.mark.parametrize(
    "args",
    [["--charset", "rot13"], ["--charset", "no-such-charset"], ["--max-age", "-5"]],
)
def test_bad_values_are_usage_errors(gbk_site, args):
    result = run_netassist("serve", str(gbk_site), "--bind", "127.0.0.1:0", *args)
    err = result.stderr.decode()
    assert result.returncode == ExitCode.USAGE, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_gbk_page_reads_right_in_chromium(serve_gbk, browser):
    from selenium.webdriver.common.by import By

    browser.get(serve_gbk() + "/")
    assert browser.find_element(By.ID, "greeting").text == GREETING
    assert browser.title == "GBK 页面"
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "gbk-page.png"))
