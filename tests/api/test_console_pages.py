"""The console's pages in a real headless browser, against an API with live state fed in and
stand-ins for the endpoints other parts provide (tests/api/stubs.py)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

from lightctl.api.app import create_app
from lightctl.api.events import hub_of
from lightctl.config.loader import District
from lightctl.model import Reading
from lightctl.services import Services
from tests.api.browser import Browser, chromium, log_in
from tests.api.conftest import TOKENS, ThreadServer, make_services
from tests.api.stubs import Stubs

pytestmark = pytest.mark.slow

LIVE = 5000  # ms: a change must be on screen within this


@dataclass
class Site:
    server: ThreadServer
    svc: Services
    stubs: Stubs

    @property
    def base(self) -> str:
        return self.server.url

    def feed(self, *readings: Reading) -> None:
        self.server.call(self.svc.live.readings, list(readings))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with chromium(tmp_path_factory.mktemp("chromium")) as running:
        yield running
        assert not running.blocked, f"the console asked for something off this machine: {running.blocked}"


@pytest.fixture(scope="module")
def site(district: District) -> Iterator[Site]:
    svc = make_services(district)
    app = create_app(svc)
    hub_of(app).coalesce_s = 0.1
    stubs = Stubs(hub_of(app))
    app.include_router(stubs.router(), prefix="/api/v1")
    with ThreadServer(app) as server:
        yield Site(server, svc, stubs)


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Browser]:
    log_in(browser, site.base, TOKENS["operator"])
    yield browser
    assert not browser.page_errors, browser.page_errors
    browser.page_errors.clear()


def go(browser: Browser, site: Site, name: str) -> None:
    browser.page.goto(f"{site.base}/#/{name}")
    browser.page.wait_for_selector(f'#page[data-page="{name}"]')


def reading(device: str, **values: float) -> Reading:
    return Reading(device=device, ts=time.time(), values=dict(values))


def test_live_state_recolours_the_map(page: Browser, site: Site) -> None:
    go(page, site, "map")
    p = page.page
    p.wait_for_selector('#map-svg [data-device-id="ha-010"][data-state="unknown"]')
    assert p.inner_text('#map-legend [data-count="on"]') == "0"
    site.feed(reading("ha-010", on=1, level=80, power=120), reading("ha-011", on=0, level=0, power=0.5))
    p.wait_for_selector('#map-svg [data-device-id="ha-010"][data-state="on"]', timeout=LIVE)
    p.wait_for_selector('#map-svg [data-device-id="ha-011"][data-state="off"]', timeout=LIVE)
    expect(p.locator('#map-legend [data-count="on"]')).to_have_text("1", timeout=LIVE)
    site.server.call(site.svc.live.availability, "ha-010", False, time.time(), "silent")
    p.wait_for_selector('#map-svg [data-device-id="ha-010"][data-state="offline"]', timeout=LIVE)
    # Hover and click tell what a marker is.
    p.hover('#map-svg [data-device-id="ha-011"]')
    p.wait_for_selector("#map-tooltip:not([hidden])")
    assert "ha-011" in p.inner_text("#map-tooltip")
    p.click('#map-svg [data-device-id="longcheng"]')
    p.wait_for_selector('#device-panel[data-device-id="longcheng"] dl')
    assert "龙城国际" in p.inner_text("#device-panel")
    page.screenshot("pages-map-live")


def test_the_device_table_filters_through_the_api(page: Browser, site: Site) -> None:
    go(page, site, "devices")
    p = page.page
    p.wait_for_selector("#devices-table tbody tr[data-device-id]")
    assert p.locator("#devices-table tbody tr").count() == 50
    p.select_option("#filter-kind", "facade")
    expect(p.locator("#devices-table tbody tr")).to_have_count(4)
    ids = p.eval_on_selector_all("#devices-table tbody tr", "rows => rows.map(r => r.dataset.deviceId)")
    assert sorted(ids) == sorted(site.svc.district.zones)
    p.select_option("#filter-kind", "")
    p.select_option("#filter-road", "dezheng-lu")
    expected = len(site.svc.district.roads["dezheng-lu"].lamps)
    expect(p.locator("#devices-range")).to_have_attribute("data-total", str(expected))
    p.select_option("#filter-road", "")


def test_alarms_are_acknowledged_resolved_and_assigned(page: Browser, site: Site) -> None:
    go(page, site, "alarms")
    p = page.page
    p.wait_for_selector('tr[data-alarm-id="1"][data-alarm-state="open"]')
    assert p.locator("#alarms-table tbody tr").count() == 2  # open ones by default
    assert "灯具故障" in p.inner_text('tr[data-alarm-id="1"]')
    p.click('button[data-action="ack"][data-alarm-id="1"]')
    p.fill("#alarm-input", "已派人")
    p.click("#alarm-submit")
    p.wait_for_selector('tr[data-alarm-id="1"]', state="detached", timeout=LIVE)  # no longer open
    p.select_option("#alarms-state", "")
    p.wait_for_selector('tr[data-alarm-id="1"][data-alarm-state="acked"]')
    # Resolving needs a note: the dialog says so and sends nothing.
    p.click('button[data-action="resolve"][data-alarm-id="2"]')
    p.click("#alarm-submit")
    assert p.is_visible("#alarm-dialog .error")
    p.fill("#alarm-input", "更换漏电保护器")
    p.click("#alarm-submit")
    p.wait_for_selector('tr[data-alarm-id="2"][data-alarm-state="resolved"]', timeout=LIVE)
    p.click('button[data-action="assign"][data-alarm-id="3"]')
    p.fill("#alarm-input", "王师傅")
    p.click("#alarm-submit")
    expect(p.locator('tr[data-alarm-id="3"]')).to_contain_text("王师傅", timeout=LIVE)
    assert site.stubs.received[-3:] == [
        ("ack 1", {"note": "已派人"}),
        ("resolve 2", {"note": "更换漏电保护器"}),
        ("assign 3", {"assignee": "王师傅"}),
    ]
    page.screenshot("pages-alarms")


def test_an_event_scene_is_sent_as_the_api_expects(page: Browser, site: Site) -> None:
    go(page, site, "events")
    p = page.page
    p.select_option("#event-zone", "longcheng")
    p.fill("#event-name", "国庆灯光秀")
    p.select_option("#event-scene", "3")
    p.fill("#event-brightness", "90")
    # Tomorrow evening, site time: the override is still active when the list is drawn.
    day = (dt.datetime.now(dt.timezone(dt.timedelta(hours=8))) + dt.timedelta(days=1)).date()
    p.fill("#event-start", f"{day}T18:00")
    p.fill("#event-until", f"{day + dt.timedelta(days=1)}T00:30")
    p.fill("#event-reason", "国庆")
    p.click("#event-submit")
    p.wait_for_selector("#event-result.ok", timeout=LIVE)
    what, body = site.stubs.received[-1]
    assert what == "override"
    assert body == {
        "targets": ["zone:longcheng"], "kind": "event", "event": "国庆灯光秀", "scene": 3, "brightness": 90,
        "start": f"{day}T18:00:00+08:00", "until": f"{day + dt.timedelta(days=1)}T00:30:00+08:00", "reason": "国庆",
    }  # fmt: skip
    p.wait_for_selector('#override-table tr[data-override-id="1"]', timeout=LIVE)
    # The zone's card follows the controller's reported scene.
    site.feed(reading("longcheng", active_scene=3, brightness=90))
    p.wait_for_selector('[data-zone-id="longcheng"][data-scene="3"][data-state="on"]', timeout=LIVE)
    page.screenshot("pages-events")


def test_the_schedule_is_drawn_for_the_chosen_date(page: Browser, site: Site) -> None:
    go(page, site, "schedule")
    p = page.page
    p.wait_for_selector("#schedule-chart .lane")
    p.fill("#schedule-date", "2026-10-01")
    p.select_option("#schedule-target", "zone:longcheng")
    expect(p.locator(".night-facts")).to_contain_text("国庆节")
    assert {"date": "2026-10-01", "target": "zone:longcheng"} in site.stubs.plan_queries
    assert p.locator("#schedule-chart .lane").count() == 3
    assert p.locator("#schedule-steps tbody tr").count() == 10
    assert p.locator("#schedule-chart .seg.k2").count() == 1  # K2 on from sunset to 23:30 only
    assert "17:58" in p.inner_text(".night-facts")  # sunset, in site time though the browser runs in UTC
    page.screenshot("pages-schedule")


def test_the_overview_shows_kpis_tonight_and_open_alarms(page: Browser, site: Site) -> None:
    go(page, site, "overview")
    p = page.page
    p.wait_for_selector('#overview-kpi [data-kpi="lighting_rate"]')
    assert "98.5 %" in p.inner_text('#overview-kpi [data-kpi="lighting_rate"]')
    assert "96.2 %" in p.inner_text('#overview-kpi [data-kpi="intact_rate"]')
    p.wait_for_selector("#overview-night dl")
    assert "17:58" in p.inner_text("#overview-night")
    open_count = sum(1 for a in site.stubs.alarms if a["state"] == "open")
    expect(p.locator("#nav-alarm-count")).to_have_text(str(open_count))
    assert p.inner_text('#overview-counts [data-count="total"] .value') == str(len(site.svc.district.devices))


def test_a_viewer_sees_but_cannot_act(browser: Browser, site: Site) -> None:
    log_in(browser, site.base, TOKENS["viewer"])
    go(browser, site, "alarms")
    p = browser.page
    p.select_option("#alarms-state", "")
    p.wait_for_selector("tr[data-alarm-id] button[data-action]")
    assert all(
        p.eval_on_selector_all("tr[data-alarm-id] button[data-action]", "bs => bs.map(b => b.disabled)")
    )
    go(browser, site, "events")
    assert p.is_disabled("#event-submit")


def test_pages_without_their_endpoints_say_so(browser: Browser, district: District) -> None:
    with ThreadServer(create_app(make_services(district))) as bare:
        log_in(browser, bare.url, TOKENS["admin"])
        for name, where in (
            ("alarms", "#page"),
            ("schedule", "#schedule-out"),
            ("events", "#event-overrides"),
        ):
            browser.page.goto(f"{bare.url}/#/{name}")
            browser.page.wait_for_selector(f"{where} [data-unavailable]", timeout=LIVE)
        browser.page.goto(f"{bare.url}/#/overview")
        browser.page.wait_for_selector("#overview-kpi [data-unavailable]", timeout=LIVE)
        browser.page.wait_for_selector("#overview-night [data-unavailable]", timeout=LIVE)
    assert not browser.page_errors, browser.page_errors
