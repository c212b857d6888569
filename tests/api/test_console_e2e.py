"""The console in a real headless browser against a running `lightctl demo`.

One demo process and one browser serve the whole module; each test opens the page it needs.
Steps that need endpoints other parts provide (overrides, alarms) skip until those endpoints exist;
to add a step, write a test that takes `console` and calls `need_endpoint` first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests import servers
from tests.api.browser import Browser, chromium, log_in
from tests.api.conftest import REPO

pytestmark = pytest.mark.slow

STARTUP = 60.0  # the demo starts an embedded broker and the simulated district


@dataclass
class Console:
    base: str
    browser: Browser
    api: httpx.Client  # as the operator, for looking behind the page

    def paths(self) -> dict[str, dict[str, object]]:
        paths: dict[str, dict[str, object]] = self.api.get("/openapi.json").json()["paths"]
        return paths

    def open(self, page: str) -> None:
        self.browser.page.goto(f"{self.base}/#/{page}")
        self.browser.page.wait_for_selector(f'#page[data-page="{page}"]')


def need_endpoint(console: Console, method: str, path: str) -> None:
    if method.lower() not in console.paths().get(path, {}):
        pytest.skip(f"{method.upper()} {path} is not in this build yet")


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    port = servers.free_port()
    command = [
        str(Path(sys.executable).with_name("lightctl")),
        "demo",
        "--port",
        str(port),
        "--duration",
        "600",
    ]
    log = REPO / "test-artifacts"
    log.mkdir(exist_ok=True)
    with open(log / "demo.log", "w") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + STARTUP
            while True:
                if process.poll() is not None:
                    pytest.fail(
                        f"lightctl demo exited with {process.returncode}: see test-artifacts/demo.log"
                    )
                try:
                    if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"lightctl demo did not answer within {STARTUP} s")
                time.sleep(0.2)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def console(demo: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with (
        chromium(tmp_path_factory.mktemp("chromium")) as browser,
        httpx.Client(base_url=demo, headers={"Authorization": "Bearer demo-operator"}, timeout=10) as api,
    ):
        log_in(browser, demo, "demo-operator")
        yield Console(demo, browser, api)
        assert not browser.blocked, f"the console asked for something off this machine: {browser.blocked}"


def test_login_gives_an_httponly_session_and_a_live_stream(console: Console) -> None:
    page = console.browser.page
    assert "demo-operator" in page.inner_text("#whoami")
    cookies = {c["name"]: c for c in console.browser.context.cookies()}
    session = cookies["lightctl_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert "lightctl_session" not in page.evaluate("document.cookie")  # out of reach of scripts
    assert "demo-operator" not in page.evaluate("JSON.stringify(localStorage)")  # the token is not kept
    page.wait_for_selector('#live-status[data-state="connected"]', timeout=5000)
    console.browser.screenshot("console-overview-zh")


def test_the_map_shows_every_device(console: Console) -> None:
    devices = console.api.get("/api/v1/devices", params={"limit": 10000}).json()
    assert devices["total"] == len(devices["items"]) > 900
    console.open("map")
    page = console.browser.page
    expect(page.locator("#map-svg [data-device-id]")).to_have_count(devices["total"], timeout=10000)
    markers = page.eval_on_selector_all(
        "#map-svg [data-device-id]",
        """els => els.map(e => {
            const b = e.getBBox();
            return {id: e.dataset.deviceId, state: e.dataset.state, x: b.x + b.width / 2, y: b.y + b.height / 2};
        })""",
    )
    assert sorted(m["id"] for m in markers) == sorted(d["id"] for d in devices["items"])
    assert {m["state"] for m in markers} <= {"on", "off", "offline", "alarm", "maintenance", "unknown"}
    # Placed by coordinates: inside the drawing, east to the right and north up.
    width, height = page.evaluate(
        "[document.getElementById('map-svg').clientWidth, document.getElementById('map-svg').clientHeight]"
    )
    assert all(0 <= m["x"] <= width and 0 <= m["y"] <= height for m in markers)
    where = {m["id"]: (m["x"], m["y"]) for m in markers}
    east = max(devices["items"], key=lambda d: d["lon"])
    west = min(devices["items"], key=lambda d: d["lon"])
    north = max(devices["items"], key=lambda d: d["lat"])
    south = min(devices["items"], key=lambda d: d["lat"])
    assert where[east["id"]][0] > where[west["id"]][0]
    assert where[north["id"]][1] < where[south["id"]][1]
    # The legend counts what is drawn.
    counts = page.eval_on_selector_all(
        "#map-legend [data-count]", "els => els.map(e => Number(e.textContent))"
    )
    assert sum(counts) == devices["total"]
    console.browser.screenshot("console-map-zh")


def test_switching_to_english_is_remembered(console: Console) -> None:
    page = console.browser.page
    console.open("devices")
    assert page.inner_text("#nav-map") == "地图"
    page.click("#lang-toggle")
    assert page.inner_text("#nav-map") == "Map"
    assert page.evaluate("document.documentElement.lang") == "en"
    page.reload()
    page.wait_for_selector("#devices-table tbody tr[data-device-id]")
    assert page.inner_text("#nav-devices") == "Devices"
    assert "of" in page.inner_text("#devices-range")
    console.browser.screenshot("console-devices-en")
    console.open("map")
    page.wait_for_selector("#map-svg [data-device-id]")
    console.browser.screenshot("console-map-en")
    if os.environ.get("LIGHTCTL_DOCS_SCREENSHOT"):
        page.click("#lang-toggle")  # the README shows the console as it opens: in Chinese
        page.screenshot(path=str(REPO / "docs" / "console.png"))
    page.click("#lang-toggle")
    assert page.inner_text("#nav-map") == "地图"


def test_every_page_renders_without_script_errors(console: Console) -> None:
    for name in ("overview", "map", "devices", "schedule", "alarms", "events"):
        console.open(name)
        console.browser.page.wait_for_timeout(300)  # let its requests settle
        text = console.browser.page.inner_text("#page")
        assert not any(word in text.split() for word in ("null", "undefined", "NaN")), name
    assert not console.browser.page_errors


def test_switch_longcheng_to_the_major_event_scene(console: Console) -> None:
    need_endpoint(console, "post", "/api/v1/overrides")
    page = console.browser.page
    console.open("events")
    page.select_option("#event-zone", "longcheng")
    page.fill("#event-name", "重大活动")
    page.select_option("#event-scene", "3")
    page.fill("#event-reason", "browser test")
    page.click("#event-submit")
    page.wait_for_selector("#event-result.ok", timeout=5000)
    page.wait_for_selector('[data-zone-id="longcheng"][data-scene="3"]', timeout=5000)
    console.browser.screenshot("console-event-scene")


def test_acknowledge_an_alarm(console: Console) -> None:
    need_endpoint(console, "get", "/api/v1/alarms")
    deadline = time.monotonic() + 30
    while True:
        open_alarms = console.api.get("/api/v1/alarms", params={"state": "open", "limit": 1}).json()["items"]
        if open_alarms or time.monotonic() > deadline:
            break
        time.sleep(1)
    if not open_alarms:
        pytest.skip("the demo raised no alarm within 30 s")
    alarm_id = open_alarms[0]["id"]
    page = console.browser.page
    console.open("alarms")
    page.select_option("#alarms-state", "")
    page.click(f'button[data-action="ack"][data-alarm-id="{alarm_id}"]')
    page.fill("#alarm-input", "crew on the way")
    page.click("#alarm-submit")
    page.wait_for_selector(f'tr[data-alarm-id="{alarm_id}"][data-alarm-state="acked"]', timeout=5000)
    console.browser.screenshot("console-alarm-acked")
