"""A real browser (headless Chromium through selenium) uses a ``netassist serve`` listing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("chromium and chromium-driver are not installed (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1100,800",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


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
