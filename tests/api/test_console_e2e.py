"""The console in a real headless browser against a running `lightctl demo`: the simulated district
behind the real service, its clock starting at 17:10 site time on a workday and running 60 times
faster, so the lamps light at sunset (17:19) within seconds and the injected faults raise alarms.

One demo process and one browser serve the whole module; the tests run in file order (the map after
sunset, the scene switch, the alarm, the language). Screenshots go to test-artifacts/; with
LIGHTCTL_DOCS_SCREENSHOT=1 the map is also saved as docs/console.png.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from lightctl.demo import DEMO_FAULTS
from tests import servers
from tests.api.browser import Browser, chromium, log_in
from tests.api.conftest import REPO

pytestmark = pytest.mark.slow

STARTUP = 60.0  # s: the demo starts an embedded broker and the simulated district
SPEED = 60
START = "2026-11-26T17:10"  # a Thursday; sunset 17:19
TZ = ZoneInfo("Asia/Shanghai")
FAULTY = {spec.split(":", 1)[1].split(";")[0] for spec in DEMO_FAULTS.split(",")}  # devices with a fault
# What those faults raise and keep raising (a command_failed or comm_loss of theirs may clear).
FAULT_TYPES = {"lamp_failure", "relay_failure", "voltage_high", "door_open", "leakage"}


@dataclass
class Console:
    base: str
    browser: Browser
    api: httpx.Client  # as the operator, for looking behind the page

    def open(self, page: str) -> None:
        self.browser.page.goto(f"{self.base}/#/{page}")
        self.browser.page.wait_for_selector(f'#page[data-page="{page}"]')

    def get(self, path: str, **params: Any) -> Any:
        return self.api.get(f"/api/v1{path}", params=params).raise_for_status().json()

    def server_now(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.get("/kpi")["at"])


def wait_for(check: Any, timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(every)


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    port = servers.free_port()
    command = [
        str(Path(sys.executable).with_name("lightctl")),
        "demo",
        "--port", str(port),
        "--speed", str(SPEED),
        "--start", START,
        "--duration", "600",  # a safety net: the process is ended below
    ]  # fmt: skip
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
        assert not browser.page_errors, browser.page_errors


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


def test_the_header_clock_is_the_servers(console: Console) -> None:
    """The demo's clock is 60x and starts at 17:10: the header shows it, not the browser's clock."""
    page = console.browser.page

    def shown_minus_server() -> float:
        shown = dt.datetime.strptime(page.inner_text("#clock"), "%Y-%m-%d %H:%M").replace(tzinfo=TZ)
        return (shown - console.server_now()).total_seconds()

    # The console learns the clock's rate from two readings a few seconds apart.
    wait_for(lambda: abs(shown_minus_server()) <= 180, 20, "header clock within 3 minutes of the server's")


def test_the_map_shows_every_device_lit_after_sunset(console: Console) -> None:
    devices = console.get("/devices", limit=10000)
    assert devices["total"] == len(devices["items"]) > 900
    sunset = dt.datetime.fromisoformat(console.get("/plan")["sun"]["sunset"])
    wait_for(lambda: console.server_now() > sunset + dt.timedelta(minutes=5), 30, "sunset on the demo clock")
    switched = sum(1 for d in devices["items"] if d["kind"] in ("lamp", "group"))  # facades wait for 19:00
    wait_for(
        lambda: console.get("/devices", status="on", limit=1)["total"] >= 0.9 * switched,
        60,
        f"the district lit (90 % of {switched} lamps and groups on)",
    )
    console.open("map")
    page = console.browser.page
    expect(page.locator("#map-svg [data-device-id]")).to_have_count(devices["total"], timeout=10000)

    def markers() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = page.eval_on_selector_all(
            "#map-svg [data-device-id]",
            """els => els.map(e => {
                const b = e.getBBox();
                return {id: e.dataset.deviceId, state: e.dataset.state, x: b.x + b.width / 2, y: b.y + b.height / 2};
            })""",
        )
        return found

    # What the page draws lit follows what the API says is on (a lit unit with an alarm is red).
    def drawn_as_lit() -> bool:
        lit = console.get("/devices", status="on", limit=1)["total"]
        return sum(m["state"] in ("on", "alarm") for m in markers()) >= lit - 20

    wait_for(drawn_as_lit, 15, "the map drawing the lit district")
    drawn = markers()
    assert sorted(m["id"] for m in drawn) == sorted(d["id"] for d in devices["items"])
    assert {m["state"] for m in drawn} <= {"on", "off", "offline", "alarm", "maintenance", "unknown"}
    # Placed by coordinates: inside the drawing, east to the right and north up.
    width, height = page.evaluate(
        "[document.getElementById('map-svg').clientWidth, document.getElementById('map-svg').clientHeight]"
    )
    assert all(0 <= m["x"] <= width and 0 <= m["y"] <= height for m in drawn)
    where = {m["id"]: (m["x"], m["y"]) for m in drawn}
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
    if os.environ.get("LIGHTCTL_DOCS_SCREENSHOT"):  # the README's picture: every road lit
        wait_for(lambda: sum(m["state"] == "on" for m in markers()) >= switched - 10, 60, "every road lit")
        page.mouse.move(5, 795)  # no tooltip in the picture
        page.screenshot(path=str(REPO / "docs" / "console.png"))


def test_switch_longcheng_to_the_major_event_scene_for_ten_minutes(console: Console) -> None:
    page = console.browser.page
    console.open("events")
    before = console.get("/devices/longcheng")["scene"]
    assert before != 3  # a weekday evening: the plan has it dark until 19:00
    page.select_option("#event-zone", "longcheng")
    page.fill("#event-name", "重大活动")
    page.select_option("#event-scene", "3")
    page.fill("#event-brightness", "100")
    page.select_option("#event-duration", "10")
    page.fill("#event-reason", "browser test")
    page.click("#event-submit")
    page.wait_for_selector("#event-result.ok, #event-result.error", timeout=15000)
    assert page.get_attribute("#event-result", "class") == "ok", page.inner_text("#event-result")
    confirmed = time.monotonic()
    created = int(page.get_attribute("#event-result", "data-override-id") or 0)
    saved = next(o for o in console.get("/overrides")["items"] if o["id"] == created)
    assert (saved["targets"], saved["kind"]) == (["longcheng"], "event")
    assert (saved["state"]["scene"], saved["state"]["brightness"]) == (3, 100)
    lasts = dt.datetime.fromisoformat(saved["until"]) - dt.datetime.fromisoformat(saved["start"])
    assert abs(lasts.total_seconds() - 600) <= 2 * SPEED  # ten minutes of the demo's clock, give or take 2 s
    # The controller applies the scene and reports it; the zone's card shows what it reports.
    page.wait_for_selector('[data-zone-id="longcheng"][data-scene="3"][data-state="on"]', timeout=5000)
    assert time.monotonic() - confirmed < 5
    assert console.get("/devices/longcheng")["scene"] == 3
    console.browser.screenshot("console-event-scene")
    # Ten demo minutes are ten seconds here: then the plan takes the zone back without anyone acting.
    page.wait_for_selector('[data-zone-id="longcheng"]:not([data-scene="3"])', timeout=30000)
    assert not next(o for o in console.get("/overrides")["items"] if o["id"] == created)["active"]


def test_acknowledge_an_alarm(console: Console) -> None:
    # The demo's injected faults raise alarms within about 30 s of its start, and those persist.
    def injected() -> list[dict[str, Any]]:
        items = console.get("/alarms", state="open", limit=200)["items"]
        return [a for a in items if a["device"] in FAULTY and a["type"] in FAULT_TYPES]

    alarm = wait_for(injected, 45, "open alarm of an injected fault")[0]
    alarm_id = alarm["id"]
    page = console.browser.page
    console.open("alarms")
    page.select_option("#alarms-state", "open")
    page.select_option("#alarms-type", alarm["type"])
    try:
        page.wait_for_selector(f'tr[data-alarm-id="{alarm_id}"]', timeout=20000)
    except PlaywrightTimeout:
        console.browser.screenshot("console-alarm-missing")
        now = console.get(f"/alarms/{alarm_id}")
        raise AssertionError(f"alarm {alarm_id} is not listed; the API has {now}") from None
    page.click(f'button[data-action="ack"][data-alarm-id="{alarm_id}"]')
    page.fill("#alarm-input", "crew on the way")
    page.click("#alarm-submit")
    # No longer open, so no longer listed.
    page.wait_for_selector(f'tr[data-alarm-id="{alarm_id}"]', state="detached", timeout=5000)
    page.select_option("#alarms-state", "acked")
    page.wait_for_selector(f'tr[data-alarm-id="{alarm_id}"][data-alarm-state="acked"]', timeout=5000)
    acked = console.get(f"/alarms/{alarm_id}")
    assert (acked["state"], acked["note"]) == ("acked", "crew on the way")
    console.browser.screenshot("console-alarm-acked")
    console.open("overview")
    page.wait_for_selector('#overview-kpi [data-kpi="lighting_rate"] .value')
    page.wait_for_selector("#overview-night dl")
    assert "工作日" in page.inner_text("#overview-night")  # 2026-11-26 is a Thursday
    console.browser.screenshot("console-overview-zh")


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
    page.click("#lang-toggle")
    assert page.inner_text("#nav-map") == "地图"


def test_every_page_renders_without_script_errors(console: Console) -> None:
    for name in ("overview", "map", "devices", "schedule", "alarms", "events"):
        console.open(name)
        console.browser.page.wait_for_timeout(300)  # let its requests settle
        text = console.browser.page.inner_text("#page")
        assert not any(word in text.split() for word in ("null", "undefined", "NaN")), name
    assert not console.browser.page_errors
