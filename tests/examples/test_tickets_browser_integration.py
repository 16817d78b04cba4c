"""A person buys tickets in headless Chromium: make an event on the home page, buy one on the
event's page, be refused a second, see 票卖完了 when none is left; screenshots go to
test-artifacts/."""

from __future__ import annotations

import pytest
import requests

from tests.examples.conftest import ARTIFACTS

pytestmark = pytest.mark.integration


def test_a_person_buys_a_ticket_through_the_page(tickets, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    proc, port = tickets(f"sqlite:///{tmp_path / 'tickets.sqlite3'}")
    base = f"http://127.0.0.1:{port}"
    wait = WebDriverWait(browser, 10)
    browser.get(base + "/")
    assert browser.title == "抢票 · netassist tickets"
    assert browser.execute_script("return document.characterSet") == "UTF-8"
    form = browser.find_element(By.ID, "new-event")
    form.find_element(By.NAME, "name").send_keys("周杰伦演唱会")
    count = form.find_element(By.NAME, "count")
    count.clear()
    count.send_keys("2")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "buy-form")))
    event = int(browser.current_url.rstrip("/").split("/")[-2])
    assert browser.current_url == f"{base}/events/{event}/buy"
    assert browser.find_element(By.ID, "event-name").text == "周杰伦演唱会"
    assert browser.find_element(By.ID, "remaining").text.startswith("还剩 2 张")

    def buy(name: str) -> None:
        field = browser.find_element(By.ID, "buy-form").find_element(By.NAME, "buyer")
        field.clear()
        field.send_keys(name)
        browser.find_element(By.CSS_SELECTOR, "#buy-form button[type=submit]").click()

    buy("李四")
    wait.until(expected_conditions.presence_of_element_located((By.ID, "bought")))
    assert browser.find_element(By.ID, "bought").text == "李四 买到第 1 张票,还剩 1 张"
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "tickets-bought.png"))
    assert (ARTIFACTS / "tickets-bought.png").stat().st_size > 10_000

    browser.find_element(By.PARTIAL_LINK_TEXT, "back to the event").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "sales")))
    assert "李四 买到第 1 张票,还剩 1 张" in browser.find_element(By.ID, "sales").text
    buy("李四")  # one ticket per buyer
    wait.until(expected_conditions.presence_of_element_located((By.ID, "problem")))
    assert browser.find_element(By.ID, "problem").text.startswith("李四 已经买过了: 第 1 张票")
    buy("王五")
    wait.until(expected_conditions.presence_of_element_located((By.ID, "bought")))
    assert browser.find_element(By.ID, "ticket-number").text == "2"
    browser.get(f"{base}/events/{event}/buy")
    assert browser.find_element(By.ID, "sold-out").text == "票卖完了 · sold out"
    assert browser.find_elements(By.ID, "buy-form") == []
    browser.save_screenshot(str(ARTIFACTS / "tickets-sold-out.png"))
    # What the person saw is what the API says.
    assert requests.get(f"{base}/events/{event}", timeout=10).json()["sold"] == 2
    holders = requests.get(f"{base}/events/{event}/tickets", timeout=10).json()["tickets"]
    assert [(t["ticket"], t["buyer"]) for t in holders] == [(1, "李四"), (2, "王五")]
    proc.popen.terminate()
    assert proc.finish()[0] == 0
