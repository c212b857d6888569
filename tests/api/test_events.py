"""The event stream: LiveState changes, published alarms, heartbeats, coalescing, slow clients."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from lightctl.api.app import create_app
from lightctl.api.events import EventHub, hub_of
from lightctl.config.loader import District
from lightctl.model import Reading
from lightctl.services import Services
from tests import servers
from tests.api.conftest import bearer, make_services

WAIT = 5.0  # generous: nothing here should take more than a fraction of it


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """uvicorn on this test's own loop, as in production where drivers and the API share one loop."""
    port = servers.free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started, "uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        hub_of(app).close()
        server.should_exit = True
        await asyncio.wait_for(task, WAIT)


class Stream:
    """One client of /events, reading events (and comments) as they arrive."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def line(self) -> str:
        return await asyncio.wait_for(anext(self.lines), WAIT)

    async def event(self) -> dict[str, Any]:
        while True:
            line = await self.line()
            if line.startswith("data: "):
                event: dict[str, Any] = json.loads(line[len("data: ") :])
                return event

    async def state_of(self, device: str) -> dict[str, Any]:
        """The next state event's entry for `device`, skipping events that do not mention it."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            event = await self.event()
            if event["type"] == "state":
                for entry in event["data"]["devices"]:
                    if entry["id"] == device:
                        return entry
        raise AssertionError(f"no state event for {device}")


@asynccontextmanager
async def client_stream(base: str, role: str = "viewer") -> AsyncIterator[Stream]:
    async with (
        httpx.AsyncClient(timeout=WAIT) as client,
        client.stream("GET", f"{base}/api/v1/events", headers=bearer(role)) as response,
    ):
        assert response.status_code == 200
        stream = Stream(response)
        assert (await stream.line()).startswith("retry:")  # subscribed from here on
        assert await stream.line() == ": connected"
        yield stream


@pytest.fixture
def fast_app(district: District) -> tuple[FastAPI, Services]:
    svc = make_services(district)
    app = create_app(svc)
    hub_of(app).coalesce_s = 0.05
    return app, svc


def lamp_reading(device: str, **values: float) -> Reading:
    return Reading(device=device, ts=time.time(), values=dict(values))


async def test_a_state_change_in_live_state_reaches_the_stream(fast_app: tuple[FastAPI, Services]) -> None:
    app, svc = fast_app
    async with serving(app) as base, client_stream(base) as stream:
        svc.live.readings([lamp_reading("ha-001", on=1, level=70, power=105.5)])
        entry = await stream.state_of("ha-001")
        assert entry == {
            "id": "ha-001",
            "online": True,
            "on": True,
            "level": 70,
            "k1": None,
            "k2": None,
            "scene": None,
        }

        group = next(d.id for d in svc.district.devices.values() if d.kind == "group")
        svc.live.readings([lamp_reading(group, k1=1, k2=0)])
        assert await stream.state_of(group) == {
            "id": group, "online": True, "on": True, "level": None, "k1": True, "k2": False, "scene": None,
        }  # fmt: skip

        svc.live.readings([lamp_reading("longcheng", active_scene=3, brightness=80)])
        facade = await stream.state_of("longcheng")
        assert (facade["scene"], facade["level"], facade["on"]) == (3, 80, True)


async def test_only_changes_are_sent(fast_app: tuple[FastAPI, Services]) -> None:
    app, svc = fast_app
    hub = hub_of(app)
    async with serving(app) as base, client_stream(base) as stream:
        svc.live.readings([lamp_reading("ha-002", on=1, level=100, power=150)])
        await stream.state_of("ha-002")
        # Same switching state, new power: not a change the stream reports.
        svc.live.readings([lamp_reading("ha-002", on=1, level=100, power=149)])
        await asyncio.sleep(hub.coalesce_s * 4)
        hub.publish("health", {"id": "marker"})
        assert (await stream.event())["type"] == "health"
        svc.live.readings([lamp_reading("ha-002", on=1, level=50, power=75)])
        assert (await stream.state_of("ha-002"))["level"] == 50


async def test_a_burst_is_coalesced_into_few_events_with_the_latest_values(
    fast_app: tuple[FastAPI, Services],
) -> None:
    app, svc = fast_app
    hub = hub_of(app)
    hub.coalesce_s = 0.3
    lamps = [d.id for d in svc.district.devices.values() if d.kind == "lamp"][:50]
    async with serving(app) as base, client_stream(base) as stream:
        for level in range(10, 101, 10):  # ten readings per lamp, 500 in all, within one window
            svc.live.readings([lamp_reading(lamp, on=1, level=level) for lamp in lamps])
        hub.publish("health", {"id": "end-of-burst"})
        seen: dict[str, int] = {}
        state_events = 0
        while len(seen) < len(lamps) or any(v != 100 for v in seen.values()):
            event = await stream.event()
            if event["type"] == "state":
                state_events += 1
                seen.update({entry["id"]: entry["level"] for entry in event["data"]["devices"]})
    assert set(seen) == set(lamps)
    assert state_events <= 2  # one window, at most split across a flush boundary


async def test_published_events_reach_every_client(fast_app: tuple[FastAPI, Services]) -> None:
    app, _ = fast_app
    alarm = {"id": 7, "type": "lamp_failure", "severity": "major", "device": "ha-003", "state": "open"}
    async with serving(app) as base, client_stream(base) as first, client_stream(base, "admin") as second:
        hub_of(app).publish("alarm", alarm)
        for stream in (first, second):
            event = await stream.event()
            assert (event["type"], event["data"]) == ("alarm", alarm)
            assert event["ts"].endswith("+08:00")


async def test_json_text_is_published_as_json(fast_app: tuple[FastAPI, Services]) -> None:
    # faults.notify hands alarms over already serialised.
    app, _ = fast_app
    async with serving(app) as base, client_stream(base) as stream:
        hub_of(app).publish("alarm", '{"event": "raised", "alarm": {"id": 9, "device": "ha-009"}}')
        event = await stream.event()
        assert event["data"] == {"event": "raised", "alarm": {"id": 9, "device": "ha-009"}}


async def test_publishing_from_another_thread(fast_app: tuple[FastAPI, Services]) -> None:
    app, _ = fast_app
    async with serving(app) as base, client_stream(base) as stream:
        worker = threading.Thread(target=hub_of(app).publish, args=("override", {"id": 3, "event": "国庆"}))
        worker.start()
        event = await stream.event()
        worker.join()
        assert (event["type"], event["data"]["event"]) == ("override", "国庆")


async def test_gateway_availability_is_a_health_event_and_device_availability_a_state(
    fast_app: tuple[FastAPI, Services],
) -> None:
    app, svc = fast_app
    async with serving(app) as base, client_stream(base) as stream:
        svc.live.availability("zhg-01", False, time.time(), "3 polls failed")
        event = await stream.event()
        assert (event["type"], event["data"]) == (
            "health",
            {"id": "zhg-01", "online": False, "reason": "3 polls failed"},
        )
        svc.live.availability("ha-004", False, time.time(), "silent")
        assert (await stream.state_of("ha-004"))["online"] is False


async def test_heartbeat_comments_keep_an_idle_stream_open(fast_app: tuple[FastAPI, Services]) -> None:
    app, _ = fast_app
    hub_of(app).heartbeat_s = 0.1
    async with serving(app) as base, client_stream(base) as stream:
        lines = [await stream.line() for _ in range(2)]
        assert lines == ["", ": keep-alive"]


async def test_a_client_that_leaves_is_unsubscribed(fast_app: tuple[FastAPI, Services]) -> None:
    app, _ = fast_app
    hub = hub_of(app)
    async with serving(app) as base:
        async with client_stream(base):
            assert hub.clients == 1
        await until(lambda: hub.clients == 0, "the stream to be unsubscribed")


async def test_a_slow_client_loses_its_queue_and_is_told_to_resync(district: District) -> None:
    svc = make_services(district)
    hub = EventHub(svc.live, ZoneInfo("Asia/Shanghai"), time.time, queue_frames=5)
    stream = hub.stream(lambda: True)
    assert (await anext(stream)).startswith(b"retry:")  # subscribed; now it stops reading
    for i in range(12):
        hub.publish("alarm", {"n": i})
    frame = await asyncio.wait_for(anext(stream), WAIT)
    resync = json.loads(frame.removeprefix(b"data: "))
    assert resync["type"] == "resync"
    assert resync["data"]["dropped"] >= 5
    rest = await asyncio.wait_for(anext(stream), WAIT)
    numbers = [json.loads(line.removeprefix(b"data: "))["data"]["n"] for line in rest.split(b"\n\n") if line]
    assert numbers == list(range(12 - len(numbers), 12))  # only the newest, in order
    assert len(numbers) <= 5
    assert hub.dropped_frames >= 5
    await stream.aclose()
    assert hub.clients == 0


async def test_closing_the_hub_ends_streams(fast_app: tuple[FastAPI, Services]) -> None:
    app, _ = fast_app
    async with serving(app) as base, client_stream(base) as stream:
        hub_of(app).close()
        lines = []
        with pytest.raises(StopAsyncIteration):  # noqa: PT012 - the stream ends after what was queued
            while True:
                lines.append(await stream.line())
        assert all(not line.startswith("data:") for line in lines)
