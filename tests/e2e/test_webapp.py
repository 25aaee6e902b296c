"""The web app in a real browser: headless Chromium (Debian's, through chromedriver) against the twin's site,
which serves ``webapp/`` and forwards ``/v1/*`` to the API with the key added, as CloudFront does in AWS.

The player plays two tracks and the test checks, through the API, that their events landed; the dashboard
switches region and window and must show what the API answers; axe-core checks every view for accessibility.
Screenshots go to docs/images/ (the README shows them)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from encore.site import SECURITY_HEADERS
from encore_local.twin.apigateway import DEFAULT_API_KEY

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
IMAGES = ROOT / "docs" / "images"
# Chromium on a machine with no internet: no background connections, no first-run work.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update", "--window-size=1280,1100")  # fmt: skip


@pytest.fixture(scope="module")
def site(served_lake: dict[str, Any]) -> Iterator[dict[str, Any]]:
    api = served_lake["services"].api(served_lake["config"])
    api_url = api.start()
    front = served_lake["services"].site(api)
    url = front.start()
    try:
        yield {"url": url, "api": api_url, **served_lake}
    finally:
        front.stop()
        api.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "the browser tests need Debian's chromium and chromium-driver (.ci/run installs them)"
    options = Options()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def api_get(site: dict[str, Any], path: str, **params: Any) -> Any:
    resp = requests.get(site["api"] + path, params=params, headers={"x-api-key": DEFAULT_API_KEY}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait(browser: WebDriver, condition: Any, timeout: float = 30) -> Any:
    return WebDriverWait(browser, timeout, poll_frequency=0.2).until(lambda _: condition())


def tracks(browser: WebDriver, selector: str) -> list[str]:
    """The track ids of the elements ``selector`` finds, read in one script (the page re-renders lists whole)."""
    ids: list[str] = browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.dataset.track);", selector
    )
    return ids


def rows(browser: WebDriver, list_id: str) -> list[str]:
    return tracks(browser, f"#{list_id} li[data-track]")


def accessibility(browser: WebDriver) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it stands."""
    browser.execute_script(AXE.read_text())
    result = browser.execute_async_script("const done = arguments[0]; axe.run(document).then(done);")
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def test_the_page_ships_no_key_and_loads_nothing_from_elsewhere(site: dict[str, Any]) -> None:
    page = requests.get(site["url"] + "/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    api_answer = requests.get(site["url"] + "/v1/health", timeout=10)
    for answer in (page, api_answer):  # the distribution's response headers policy, on the API's answers too
        assert {k: answer.headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS
    shipped = "".join((ROOT / "webapp" / name).read_text() for name in ("index.html", "app.js", "style.css"))
    assert DEFAULT_API_KEY not in shipped and "http://" not in shipped.replace("http://www.w3.org/2000/svg", "")
    assert requests.get(site["api"] + "/v1/charts/GLOBAL", timeout=10).status_code == 403  # the API still wants it
    assert requests.get(site["url"] + "/v1/charts/GLOBAL", timeout=10).status_code == 200  # the site adds it
    for outside in ("/../README.md", "/nowhere.html"):  # a key the bucket lacks: S3 refuses CloudFront's OAC read
        assert requests.get(site["url"] + outside, timeout=10).status_code == 403


def test_the_player_plays_two_tracks_and_their_events_land(site: dict[str, Any], browser: WebDriver) -> None:
    events = pd.concat(pd.read_json(p, lines=True) for p in sorted((site["sim"] / "events").glob("*.jsonl")))
    listener = str(events["user_id"].value_counts().index[0])
    browser.get(site["url"] + "/#player")
    browser.find_element(By.ID, "listener").send_keys(listener)
    browser.find_element(By.CSS_SELECTOR, "#listener-form button[type=submit]").click()
    wait(browser, lambda: len(rows(browser, "home")) >= 5)
    home = api_get(site, f"/v1/users/{listener}/recommendations", limit=10)
    assert rows(browser, "home") == [i["track_id"] for i in home["items"]]  # the page shows what the API answers
    assert not accessibility(browser), accessibility(browser)

    played, queues = [], []
    for list_id in ("home", "queue"):
        item = browser.find_elements(By.CSS_SELECTOR, f"#{list_id} li[data-track]")[0]
        played.append(item.get_attribute("data-track"))
        item.find_element(By.XPATH, ".//button[text()='Play']").click()
        wait(browser, lambda: browser.find_element(By.ID, "complete").is_enabled())
        browser.find_element(By.ID, "complete").click()
        sent = len(played)
        wait(browser, lambda n=sent: len(browser.find_elements(By.CSS_SELECTOR, "#events li")) == n)
        wait(browser, lambda p=played[-1]: rows(browser, "queue") and p not in rows(browser, "queue"))
        queues.append(rows(browser, "queue"))
    logged = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#events li")]
    assert all(line.startswith("complete ") and "202" in line for line in logged), logged
    assert queues[0] != queues[1]  # the next-song queue follows what plays
    profile = api_get(site, f"/v1/users/{listener}")
    assert profile["recently_played"][:2] == played[::-1]  # both plays reached the listener's profile
    IMAGES.mkdir(exist_ok=True)
    browser.save_screenshot(str(IMAGES / "webapp-player.png"))


def test_the_dashboard_shows_what_the_api_answers_for_the_region_and_window(site: dict[str, Any],
                                                                             browser: WebDriver) -> None:  # fmt: skip
    events = pd.concat(pd.read_json(p, lines=True) for p in sorted((site["sim"] / "events").glob("*.jsonl")))
    region = str(events["region"].value_counts().index[0])
    browser.get(site["url"] + "/#charts")
    wait(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "#top tbody tr"))
    for window in ("day", "hour"):
        field = browser.find_element(By.ID, "chart-region")
        field.clear()
        field.send_keys(region)
        Select(browser.find_element(By.ID, "chart-window")).select_by_value(window)
        browser.find_element(By.CSS_SELECTOR, "#chart-form button[type=submit]").click()
        expected = api_get(site, f"/v1/charts/{region}", window=window, limit=10)
        assert expected["items"], (region, window)
        ids = [i["track_id"] for i in expected["items"]]
        wait(browser, lambda ids=ids: tracks(browser, "#top tbody tr") == ids)
        assert expected["period"] in browser.find_element(By.ID, "chart-period").text
    lines = lambda: browser.find_elements(By.CSS_SELECTOR, "#series svg polyline")  # noqa: E731
    wait(browser, lambda: len(lines()) == min(3, len(ids)))  # the top 3 to begin with
    if len(ids) > 3:
        fourth = browser.find_elements(By.CSS_SELECTOR, "#top tbody tr")[3]
        fourth.find_element(By.TAG_NAME, "input").click()
        wait(browser, lambda: len(lines()) == 4)
        assert expected["items"][3]["name"] in browser.find_element(By.ID, "series").text
    wait(browser, lambda: rows(browser, "trending"))
    assert not accessibility(browser), accessibility(browser)
    browser.save_screenshot(str(IMAGES / "webapp-charts.png"))


def test_the_operations_view_shows_the_gate_the_reports_and_the_pipelines(site: dict[str, Any],
                                                                          browser: WebDriver) -> None:  # fmt: skip
    models, runs = api_get(site, "/v1/ops/models"), api_get(site, "/v1/ops/executions")
    versions = [d["version"] for d in models["decisions"]]
    assert models["serving"]["version"] in versions and models["total"] == len(versions)
    assert "serving-test" in [e["name"] for e in runs["executions"]]  # the fixture's nightly execution
    browser.get(site["url"] + "/#operations")
    rows = lambda table, key: browser.execute_script(  # noqa: E731
        "return [...document.querySelectorAll(`#${arguments[0]} tbody tr`)].map((r) => r.dataset[arguments[1]]);",
        table, key,
    )  # fmt: skip
    wait(browser, lambda: rows("decisions", "version") == versions)
    assert [e["name"] for e in runs["executions"]] == rows("executions", "execution")
    assert models["serving"]["version"] in browser.find_element(By.ID, "serving-model").text
    wait(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, "#quality svg polyline")) >= 2)  # hybrid, pop.
    browser.find_elements(By.CSS_SELECTOR, "#decisions tbody tr button")[0].click()
    wait(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, "#reports table")) == 3)
    detail = api_get(site, f"/v1/ops/models/{versions[0]}")
    home = browser.find_element(By.CSS_SELECTOR, "#reports table").text
    assert f"{detail['candidate']['home']['hybrid']['ndcg@10']:.4f}" in home
    assert not accessibility(browser), accessibility(browser)
    size = browser.get_window_size()
    browser.set_window_size(size["width"], 1500)  # the reports below the decisions in the picture too
    try:
        browser.save_screenshot(str(IMAGES / "webapp-operations.png"))
    finally:
        browser.set_window_size(size["width"], size["height"])
