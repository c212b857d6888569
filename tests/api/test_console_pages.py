"""The console's pages in a real headless browser, against the API with its real parts behind it: a
SQLite state database, the operations over the resolver, the alarm manager and the KPIs. Readings
are fed into the live state as a driver would; alarms are raised through the alarm manager as the
fault engine would. What a page did is checked through the API, not through the page."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import expect

from lightctl.api.app import create_app
from lightctl.api.events import EventHub, EventKind, hub_of
from lightctl.config.loader import District
from lightctl.faults import messages
from lightctl.faults.engine import FaultEngine
from lightctl.faults.kpi import KpiService, faulty_devices
from lightctl.faults.lifecycle import AlarmManager
from lightctl.faults.notify import Notifier
from lightctl.model import Reading
from lightctl.operations import Operations
from lightctl.runtime import ResolverFeed
from lightctl.schedule.resolve import Resolver
from lightctl.services import Services
from lightctl.store.state_sqlite import SqliteStateDB
from tests.api.browser import Browser, chromium, log_in
from tests.api.conftest import TOKENS, ThreadServer, bearer, make_services

pytestmark = pytest.mark.slow

LIVE = 5000  # ms: a change must be on screen within this


@dataclass
class Parts:
    state: SqliteStateDB
    ops: Operations
    alarms: AlarmManager
    writer: asyncio.Task[None]


async def start_parts(svc: Services, hub: EventHub, db: Path) -> Parts:
    """What runtime.Runtime wires for the API, minus drivers and detectors (run on the server's loop)."""
    d = svc.district
    tz = ZoneInfo(d.settings.site.timezone)
    state = await SqliteStateDB.open(db, d.settings.storage.audit_retention_days)
    resolver = Resolver.for_district(d)
    ops = Operations(
        state, resolver, svc.clock, announce=lambda kind, what: hub.publish(cast(EventKind, kind), what)
    )
    await ops.load()
    managers: list[AlarmManager] = []
    ctx = messages.Context(
        d.settings.site.id, tz, messages.names_of(d), lambda a, now: managers[0].is_overdue(a, now)
    )
    alarms = AlarmManager(state, svc.clock, events=Notifier(ctx, stream=hub))
    managers.append(alarms)
    # The engine is here for the KPIs' device contexts and desired states; it hears no readings, so
    # the readings the tests feed raise nothing by themselves.
    engine = FaultEngine(d, alarms, svc.clock)
    await engine.start()
    ResolverFeed(resolver, engine).desired_at(svc.clock.now())
    kpi = KpiService(
        engine.contexts,
        svc.live.status,
        engine.desired_states,
        faulty_devices(alarms.faulty_devices),
        svc.clock,
        tz,
    )
    svc.extras.update(
        operations=ops,
        maintenance=ops,
        resolver=resolver,
        alarms=alarms,
        kpi=kpi,
        audit=state,
        state_db=state,
    )
    return Parts(state, ops, alarms, asyncio.ensure_future(alarms.run()))


async def stop_parts(parts: Parts) -> None:
    parts.writer.cancel()
    await asyncio.gather(parts.writer, return_exceptions=True)
    await parts.state.close()


@dataclass
class Site:
    server: ThreadServer
    svc: Services
    parts: Parts
    api: httpx.Client  # as the admin, for looking behind the page

    @property
    def base(self) -> str:
        return self.server.url

    def feed(self, *readings: Reading) -> None:
        self.server.call(self.svc.live.readings, list(readings))

    def raise_alarm(self, alarm_type: str, device: str) -> int:
        """Raised as the fault engine raises it; its id once stored."""
        self.server.call(self.parts.alarms.raise_alarm, alarm_type, device, time.time(), "raised by the test")
        self.server.run(self.parts.alarms.flush())
        found = self.api.get("/api/v1/alarms", params={"device": device, "type": alarm_type, "state": "open"})
        alarm_id: int = found.json()["items"][0]["id"]
        return alarm_id

    def alarm(self, alarm_id: int) -> dict[str, Any]:
        got: dict[str, Any] = self.api.get(f"/api/v1/alarms/{alarm_id}").raise_for_status().json()
        return got


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with chromium(tmp_path_factory.mktemp("chromium")) as running:
        yield running
        assert not running.blocked, f"the console asked for something off this machine: {running.blocked}"


@pytest.fixture(scope="module")
def site(district: District, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    svc = make_services(district)
    app = create_app(svc)
    hub = hub_of(app)
    hub.coalesce_s = 0.1
    db = tmp_path_factory.mktemp("state") / "state.db"
    with ThreadServer(app) as server:
        parts = server.run(start_parts(svc, hub, db))
        try:
            with httpx.Client(base_url=server.url, headers=bearer("admin"), timeout=10) as api:
                yield Site(server, svc, parts, api)
        finally:
            server.run(stop_parts(parts))


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


def site_time(iso: str, tz: str = "Asia/Shanghai") -> str:
    return dt.datetime.fromisoformat(iso).astimezone(ZoneInfo(tz)).strftime("%H:%M")


def pct(value: float) -> str:
    return f"{value * 100:.1f} %"


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
    lamp = site.raise_alarm("lamp_failure", "ha-007")
    leak = site.raise_alarm("leakage", "zhg-01-u05")
    volts = site.raise_alarm("voltage_high", "ha-020")
    go(page, site, "alarms")
    p = page.page
    p.wait_for_selector(f'tr[data-alarm-id="{lamp}"][data-alarm-state="open"]')
    row = p.inner_text(f'tr[data-alarm-id="{lamp}"]')
    assert "灯具故障" in row
    assert site.svc.district.devices["ha-007"].name in row
    open_now = site.api.get("/api/v1/alarms", params={"state": "open"}).json()["total"]
    assert p.locator("#alarms-table tbody tr").count() == open_now  # the open ones, by default
    expect(p.locator("#nav-alarm-count")).to_have_text(str(open_now), timeout=LIVE)

    p.click(f'button[data-action="ack"][data-alarm-id="{lamp}"]')
    p.fill("#alarm-input", "已派人")
    p.click("#alarm-submit")
    p.wait_for_selector(f'tr[data-alarm-id="{lamp}"]', state="detached", timeout=LIVE)  # no longer open
    assert (site.alarm(lamp)["state"], site.alarm(lamp)["note"]) == ("acked", "已派人")
    expect(p.locator("#nav-alarm-count")).to_have_text(str(open_now - 1), timeout=LIVE)
    p.select_option("#alarms-state", "")
    p.wait_for_selector(f'tr[data-alarm-id="{lamp}"][data-alarm-state="acked"]')

    # Resolving needs a note: the dialog says so and sends nothing.
    p.click(f'button[data-action="resolve"][data-alarm-id="{leak}"]')
    p.click("#alarm-submit")
    assert p.is_visible("#alarm-dialog .error")
    assert site.alarm(leak)["state"] == "open"
    p.fill("#alarm-input", "更换漏电保护器")
    p.click("#alarm-submit")
    p.wait_for_selector(f'tr[data-alarm-id="{leak}"][data-alarm-state="resolved"]', timeout=LIVE)
    assert (site.alarm(leak)["state"], site.alarm(leak)["note"]) == ("resolved", "更换漏电保护器")

    p.click(f'button[data-action="assign"][data-alarm-id="{volts}"]')
    p.fill("#alarm-input", "王师傅")
    p.click("#alarm-submit")
    expect(p.locator(f'tr[data-alarm-id="{volts}"]')).to_contain_text("王师傅", timeout=LIVE)
    assert site.alarm(volts)["assignee"] == "王师傅"
    # A resolved alarm takes no further action: its buttons are off.
    assert p.is_disabled(f'button[data-action="ack"][data-alarm-id="{leak}"]')
    # Each action is in the audit log under the operator's name.
    audit = site.api.get("/api/v1/audit", params={"limit": 20}).json()["items"]
    done = {(a["who"], a["action"]) for a in audit}
    for alarm_id, action in ((lamp, "ack"), (leak, "resolve"), (volts, "assign")):
        assert ("operator-user", f"POST /api/v1/alarms/{alarm_id}/{action}") in done
    page.screenshot("pages-alarms")


def test_an_event_scene_is_scheduled_as_typed(page: Browser, site: Site) -> None:
    go(page, site, "events")
    p = page.page
    p.select_option("#event-zone", "longcheng")
    p.fill("#event-name", "国庆灯光秀")
    p.select_option("#event-scene", "3")
    p.fill("#event-brightness", "90")
    # Tomorrow evening, site time (the browser runs in UTC): not yet in force, so listed as coming.
    day = (dt.datetime.now(ZoneInfo("Asia/Shanghai")) + dt.timedelta(days=1)).date()
    p.fill("#event-start", f"{day}T18:00")
    p.select_option("#event-duration", "custom")
    p.fill("#event-until", f"{day + dt.timedelta(days=1)}T00:30")
    p.fill("#event-reason", "国庆")
    p.click("#event-submit")
    p.wait_for_selector("#event-result.ok", timeout=LIVE)
    created = int(p.get_attribute("#event-result", "data-override-id") or 0)
    saved = next(o for o in site.api.get("/api/v1/overrides").json()["items"] if o["id"] == created)
    assert {k: saved[k] for k in ("targets", "kind", "event", "start", "until", "reason", "created_by")} == {
        "targets": ["longcheng"], "kind": "event", "event": "国庆灯光秀",
        "start": f"{day}T18:00:00+08:00", "until": f"{day + dt.timedelta(days=1)}T00:30:00+08:00",
        "reason": "国庆", "created_by": "operator-user",
    }  # fmt: skip
    assert (saved["state"]["scene"], saved["state"]["brightness"], saved["active"]) == (3, 90, False)
    p.wait_for_selector(f'#override-table tr[data-override-id="{created}"]', timeout=LIVE)
    # Tomorrow's plan for the zone shows the event taking over.
    plan = site.api.get("/api/v1/plan", params={"date": str(day), "target": "zone:longcheng"}).json()
    assert f"event:{created}" in plan["groups"][0]["overrides"]


def test_an_event_scene_now_runs_for_its_duration_and_ends_early(page: Browser, site: Site) -> None:
    go(page, site, "events")
    p = page.page
    p.select_option("#event-zone", "longcheng")
    p.fill("#event-name", "重大活动")
    p.select_option("#event-scene", "3")
    p.select_option("#event-duration", "10")
    p.fill("#event-reason", "现场保障")
    p.click("#event-submit")
    p.wait_for_selector("#event-result.ok", timeout=LIVE)
    created = int(p.get_attribute("#event-result", "data-override-id") or 0)
    saved = next(o for o in site.api.get("/api/v1/overrides").json()["items"] if o["id"] == created)
    lasts = dt.datetime.fromisoformat(saved["until"]) - dt.datetime.fromisoformat(saved["start"])
    assert abs(lasts.total_seconds() - 600) <= 3  # whole seconds on both ends
    assert saved["targets"] == ["longcheng"]
    assert saved["active"] is True
    # The zone's card follows what the controller reports (fed here as the driver would).
    site.feed(reading("longcheng", active_scene=3, brightness=100, power=5000))
    p.wait_for_selector('[data-zone-id="longcheng"][data-scene="3"][data-state="on"]', timeout=LIVE)
    page.screenshot("pages-events")
    p.click(f'button[data-action="end"][data-override-id="{created}"]')
    p.wait_for_selector(f'#override-table tr[data-override-id="{created}"]', state="detached", timeout=LIVE)
    ended = next(o for o in site.api.get("/api/v1/overrides").json()["items"] if o["id"] == created)
    assert ended["ended_at"] is not None
    assert ended["active"] is False


def test_the_schedule_is_drawn_for_the_chosen_date(page: Browser, site: Site) -> None:
    go(page, site, "schedule")
    p = page.page
    p.wait_for_selector("#schedule-chart .lane")
    tonight = site.api.get("/api/v1/plan").json()
    assert p.input_value("#schedule-date") == tonight["date"]  # the server's night, not the browser's
    p.fill("#schedule-date", "2026-10-01")
    p.select_option("#schedule-target", "zone:longcheng")
    expect(p.locator(".night-facts")).to_contain_text("国庆节")
    plan = site.api.get("/api/v1/plan", params={"date": "2026-10-01", "target": "zone:longcheng"}).json()
    expect(p.locator("#schedule-chart .lane")).to_have_count(len(plan["groups"]))
    assert p.locator("#schedule-steps tbody tr").count() == sum(len(g["steps"]) for g in plan["groups"])
    # National Day: the major-event scene from sunset to midnight (design.md section 3).
    assert p.locator('#schedule-chart .seg[data-scene="3"]').count() == 1
    assert site_time(plan["sun"]["sunset"]) in p.inner_text(".night-facts")  # site time, browser in UTC
    page.screenshot("pages-schedule")
    p.select_option("#schedule-target", "kind:group")
    expect(p.locator("#schedule-chart .lane")).to_have_count(1)
    expect(p.locator("#schedule-chart .seg.k2")).to_have_count(1)  # K2 from sunset to its half-night end
    groups = site.api.get("/api/v1/plan", params={"date": "2026-10-01", "target": "kind:group"}).json()
    k2_off = next(st for st in groups["groups"][0]["steps"] if st["state"]["k1"] and not st["state"]["k2"])
    assert site_time(k2_off["at"]) in p.inner_text("#schedule-steps")


def test_the_overview_shows_kpis_tonight_and_open_alarms(page: Browser, site: Site) -> None:
    site.raise_alarm("door_open", "zhg-02-u01")
    go(page, site, "overview")
    p = page.page
    kpi = site.api.get("/api/v1/kpi").json()
    intact, online = kpi["intact_rate"]["overall"], kpi["online_rate"]["overall"]
    assert intact["ok"] < intact["total"]  # the open alarms count against it
    expect(p.locator('#overview-kpi [data-kpi="intact_rate"]')).to_contain_text(
        pct(intact["value"]), timeout=LIVE
    )
    expect(p.locator('#overview-kpi [data-kpi="online_rate"]')).to_contain_text(
        pct(online["value"]), timeout=LIVE
    )
    assert pct(kpi["lighting_rate"]["overall"]["target"]) in p.inner_text(
        '#overview-kpi [data-kpi="lighting_rate"]'
    )
    roads = p.eval_on_selector_all("#overview-kpi-roads tbody tr", "rows => rows.map(r => r.dataset.road)")
    assert sorted(roads) == sorted(kpi["lighting_rate"]["by_road"])
    plan = site.api.get("/api/v1/plan").json()
    p.wait_for_selector("#overview-night dl")
    night = p.inner_text("#overview-night")
    assert plan["date"] in night
    assert site_time(plan["sun"]["sunset"]) in night
    day_type = {"workday": "工作日", "weekend": "周末", "holiday": "法定节假日"}.get(plan["day_type"], "")
    assert day_type in night
    open_alarms = site.api.get("/api/v1/alarms", params={"state": "open"}).json()["total"]
    expect(p.locator("#nav-alarm-count")).to_have_text(str(open_alarms), timeout=LIVE)
    expect(p.locator("#overview-alarm-table tbody tr")).to_have_count(min(open_alarms, 8))
    assert p.inner_text('#overview-counts [data-count="total"] .value') == str(len(site.svc.district.devices))
    page.screenshot("pages-overview")


def test_a_viewer_sees_but_cannot_act(browser: Browser, site: Site) -> None:
    site.raise_alarm("pole_tilt", "ha-030")
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
    assert not browser.page_errors, browser.page_errors


def test_pages_without_their_parts_say_so(browser: Browser, district: District) -> None:
    """No state database and no fault detection: those pages say so; the plan needs neither."""
    with ThreadServer(create_app(make_services(district))) as bare:
        log_in(browser, bare.url, TOKENS["admin"])
        for name, where in (("alarms", "#page"), ("events", "#event-overrides")):
            browser.page.goto(f"{bare.url}/#/{name}")
            browser.page.wait_for_selector(f"{where} [data-unavailable]", timeout=LIVE)
        browser.page.goto(f"{bare.url}/#/overview")
        browser.page.wait_for_selector("#overview-kpi [data-unavailable]", timeout=LIVE)
        browser.page.wait_for_selector("#overview-alarms [data-unavailable]", timeout=LIVE)
        browser.page.wait_for_selector("#overview-night dl", timeout=LIVE)
        browser.page.goto(f"{bare.url}/#/schedule")
        browser.page.wait_for_selector("#schedule-chart .lane", timeout=LIVE)
    assert not browser.page_errors, browser.page_errors
