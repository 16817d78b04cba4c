"""The demo site in headless Chromium: open /, follow a link, submit the register form, see
the answer page; screenshots go to test-artifacts/."""

from __future__ import annotations

import pytest

from tests.web.conftest import ARTIFACTS

pytestmark = pytest.mark.integration


def test_home_link_register_form_and_answer_in_chromium(seed_site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    base = seed_site()
    browser.get(base + "/")
    assert browser.title == "首页 · netassist demo"
    assert browser.execute_script("return document.characterSet") == "UTF-8"
    assert browser.find_element(By.TAG_NAME, "h1").text == "欢迎来到我的首页"
    cards = browser.find_elements(By.CSS_SELECTOR, "a.card code.path")
    assert [c.text for c in cards][:8] == [
        "/",
        "/index.html",
        "/test",
        "/demo",
        "/hello",
        "/info",
        "/login",
        "/register",
    ]
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "seed-site-home.png"))
    assert (ARTIFACTS / "seed-site-home.png").stat().st_size > 10_000

    browser.find_element(By.CSS_SELECTOR, 'a.card[href="/register"]').click()
    assert browser.current_url == base + "/register"
    assert browser.find_element(By.TAG_NAME, "h1").text == "欢迎来到注册页面"
    form = browser.find_element(By.ID, "register-form")
    form.find_element(By.NAME, "username").send_keys("李四")
    form.find_element(By.NAME, "email").send_keys("lisi@example.org")
    form.find_element(By.NAME, "password").send_keys("secret1")
    form.find_element(By.NAME, "password2").send_keys("secret1")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 10).until(
        expected_conditions.presence_of_element_located((By.ID, "welcome"))
    )
    assert browser.find_element(By.ID, "welcome").text == "注册成功,欢迎 李四!"
    browser.save_screenshot(str(ARTIFACTS / "seed-site-registered.png"))
    assert (ARTIFACTS / "seed-site-registered.png").stat().st_size > 10_000

    # Sign in with the new account: the signed cookie brings the name to /info.
    browser.find_element(By.LINK_TEXT, "去登录 sign in").click()
    login = browser.find_element(By.ID, "login-form")
    login.find_element(By.NAME, "username").send_keys("李四")
    login.find_element(By.NAME, "password").send_keys("secret1")
    login.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 10).until(expected_conditions.url_to_be(base + "/info"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "李四,欢迎回来"

    browser.get(base + "/no-such-page")
    assert browser.find_element(By.TAG_NAME, "h1").text == "页面走丢了"
    browser.save_screenshot(str(ARTIFACTS / "seed-site-404.png"))
