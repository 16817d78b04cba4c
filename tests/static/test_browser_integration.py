"""A real browser (headless Chromium through selenium) uses a ``netassist serve`` listing."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_listing_folder_and_chinese_file_in_chromium(serve, browser):
    from selenium.webdriver.common.by import By

    base = serve()
    browser.get(base + "/")
    assert "Index of" in browser.title
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "tbody td a")]
    assert "sub/" in names and "中文 #1?%.txt" in names
    assert names.index("docs/") < names.index("a.txt")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "listing.png"))
    assert (ARTIFACTS / "listing.png").stat().st_size > 1000

    browser.find_element(By.LINK_TEXT, "sub/").click()
    assert browser.current_url == base + "/sub/"
    assert "b.txt" in [a.text for a in browser.find_elements(By.CSS_SELECTOR, "tbody td a")]
    browser.find_element(By.LINK_TEXT, "/").click()

    browser.find_element(By.LINK_TEXT, "中文 #1?%.txt").click()
    assert browser.find_element(By.TAG_NAME, "body").text.strip() == "中文内容"
