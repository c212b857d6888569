"""Northbound state and availability from live state, through the MQTT driver to real brokers."""

# ruff: noqa: F811 - the fixtures come from test_mqtt_driver (a test may not define a conftest here)

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from lightctl.clock import ManualClock
from lightctl.config.district import District
from lightctl.config.settings import Mqtt, Settings, Site
from lightctl.drivers.mqtt import MqttDriver
from lightctl.drivers.sink import CollectingSink
from lightctl.model import Device, Reading
from lightctl.northbound import Northbound, _key
from lightctl.profiles import Profile
from lightctl.state import DeviceStatus, LiveState
from tests import servers
from tests.drivers.test_mqtt_driver import (  # noqa: F401
    Msg,
    Probe,
    Start,
    eventually,
    lamp,
    leftovers,
    probe,
    profiles,
    start_driver,
    tag,
)

T0 = 1_750_000_000.0


def district(devices: list[Device], profiles: dict[str, Profile], tmp: Path) -> District:
    site = Site(id="nb", lat=28.68, lon=115.89, timezone="Asia/Shanghai")
    return District(
        base_dir=tmp, settings=Settings(site=site), profiles=profiles, devices={d.id: d for d in devices},
        roads={}, gateways={}, concentrators={}, zones={}, programs={}, plans=[], events=[],
    )  # fmt: skip


def reading(dev: Device, ts: float, on: bool, level: int, power: float) -> Reading:
    return Reading(dev.id, ts, None, {"on": float(on), "level": float(level), "power": power}, received=ts)


def states(found: list[Msg]) -> list[dict[str, Any]]:
    return [orjson.loads(m.payload) for m in found if m.topic.endswith("/state")]


async def test_state_changes_go_out_at_once_and_measurements_at_most_every_interval(
    start_driver: Start, profiles: dict[str, Profile], tag: str, probe: Any, tmp_path: Path
) -> None:
    site = f"site-{tag.lower()}"
    dev = lamp(tag, 1)
    driver, _ = await start_driver([dev])
    live = LiveState(district([dev], profiles, tmp_path))
    clock = ManualClock(T0)
    north = Northbound(live, driver, site, clock, measured_every_s=60)
    watch = await probe(f"lightctl/{site}/#")
    state_topic = f"lightctl/{site}/{dev.id}/state"

    live.readings([reading(dev, T0, True, 80, 81.0)])
    assert north.flush() == 1  # the first state goes out at once, with its availability
    found = await watch.expect(lambda m: m.topic.startswith(f"lightctl/{site}/{dev.id}/"), count=2)
    assert {m.topic: orjson.loads(m.payload) for m in found}[f"lightctl/{site}/{dev.id}/availability"] == {
        "state": "online"
    }
    assert states(found)[0] | {"id": dev.id} == {
        "id": dev.id, "online": True, "on": True, "level": 80, "k1": None, "k2": None, "scene": None,
        "brightness": None, "power_w": 81.0, "ts": T0,
    }  # fmt: skip

    for k in range(1, 5):  # new power each time, same state: held back
        clock.advance(10)
        live.readings([reading(dev, T0 + 10 * k, True, 80, 81.0 + k)])
        assert north.flush() == 0
    clock.advance(30)  # 60 s after the first held-back reading
    assert north.flush() == 1
    (late,) = states(await watch.expect(lambda m: m.topic == state_topic, count=2))[1:]
    assert (late["power_w"], late["ts"]) == (85.0, T0 + 40)

    clock.advance(1)
    live.readings([reading(dev, T0 + 71, True, 30, 30.5)])  # dimmed: at once
    assert north.flush() == 1
    dimmed = states(await watch.expect(lambda m: m.topic == state_topic, count=3))[2]
    assert (dimmed["level"], dimmed["power_w"]) == (30, 30.5)

    live.availability(dev.id, False, T0 + 72, "test")  # offline: availability and state at once
    assert north.flush() == 1
    found = await watch.expect(lambda m: m.topic.endswith("/availability"), count=2)
    assert orjson.loads(found[-1].payload) == {"state": "offline"}
    assert north.flush() == 0  # nothing new


async def test_after_a_broker_restart_everything_is_published_again_from_live_state(
    mosquitto: servers.Mosquitto, profiles: dict[str, Profile], tag: str, tmp_path: Path
) -> None:
    devs = [lamp(tag, n) for n in range(1, 4)]
    conf = Mqtt(port=mosquitto.port, client_id=f"lightctl-nb-{tag}", version="5")
    driver = MqttDriver(conf, "nb", devs, [], profiles, CollectingSink(), ManualClock(T0))
    live = LiveState(district(devs, profiles, tmp_path))
    north = Northbound(live, driver, "nb", ManualClock(T0))
    await driver.start()
    try:
        assert await driver.wait_connected(10)
        live.readings([reading(d, T0, True, 50 + n, 60.0) for n, d in enumerate(devs)])
        live.availability(devs[2].id, False, T0 + 1, "test")
        assert north.flush() == 3

        await asyncio.to_thread(mosquitto.stop)  # no persistence: it forgets every retained topic
        await eventually(lambda: not driver.connected)
        await asyncio.to_thread(mosquitto.start)
        assert await driver.wait_connected(15)
        assert north.flush() == 3
        late = await Probe(mosquitto.host, mosquitto.port).start("lightctl/nb/#")  # sees retained ones only
        found = await late.expect(lambda m: m.retain and m.topic != "lightctl/nb/bridge/state", count=6)
        got = {m.topic: orjson.loads(m.payload) for m in found}
        assert {t: got[t]["level"] for t in got if t.endswith("/state")} == {
            f"lightctl/nb/{d.id}/state": 50 + n for n, d in enumerate(devs)
        }
        assert {t: got[t] for t in got if t.endswith("/availability")} == {
            f"lightctl/nb/{devs[0].id}/availability": {"state": "online"},
            f"lightctl/nb/{devs[1].id}/availability": {"state": "online"},
            f"lightctl/nb/{devs[2].id}/availability": {"state": "offline"},
        }
        await late.stop()
    finally:
        await driver.stop()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (DeviceStatus(online=True, on=True, level=80), DeviceStatus(online=True, on=True, level=81)),
        (DeviceStatus(online=True), DeviceStatus(online=False)),
        (DeviceStatus(online=None), DeviceStatus(online=False)),
        (DeviceStatus(k1=True, k2=False), DeviceStatus(k1=False, k2=True)),
        (DeviceStatus(scene=0), DeviceStatus(scene=None)),
        (DeviceStatus(scene=65535, brightness=100), DeviceStatus(scene=65535, brightness=99)),
        (DeviceStatus(level=0, scene=1), DeviceStatus(level=1, scene=0)),
        (DeviceStatus(level=10**6), DeviceStatus(level=10**6 + 1)),  # no device says so; still told apart
    ],
)
def test_the_state_key_tells_apart_what_a_device_is_doing(a: DeviceStatus, b: DeviceStatus) -> None:
    assert _key(a) != _key(b)
    assert _key(a) == _key(DeviceStatus(a.online, a.on, a.level, a.k1, a.k2, a.scene, a.brightness, 1.0))


class Recorder:
    """A publisher that only counts (the chunking is about the loop, not the broker)."""

    def __init__(self) -> None:
        self.states: list[str] = []
        self.availability: list[str] = []

    def publish_state(self, device_id: str, payload: bytes) -> bool:
        self.states.append(device_id)
        return True

    def publish_availability(self, device_id: str, online: bool) -> bool:
        self.availability.append(device_id)
        return True

    def add_connected_listener(self, callback: Any) -> None:
        pass


def test_a_limited_flush_looks_at_no_more_devices_and_the_rest_follow(
    profiles: dict[str, Profile], tmp_path: Path
) -> None:
    devs = [lamp("CHUNK", n) for n in range(25)]
    live = LiveState(district(devs, profiles, tmp_path))
    clock = ManualClock(T0)
    out = Recorder()
    north = Northbound(live, out, "nb", clock, measured_every_s=60)
    live.readings([reading(d, T0, True, 80, 81.0) for d in devs])
    assert [north.flush(10), north.flush(10), north.flush(10)] == [10, 10, 5]
    assert not north.behind()
    assert sorted(out.states) == sorted(out.availability) == sorted(d.id for d in devs)

    live.readings([reading(d, T0 + 5, True, 80, 82.0) for d in devs])  # measurements only: held back
    assert [north.flush(10), north.flush(10), north.flush(10)] == [0, 0, 0]
    clock.advance(60)
    assert north.behind()
    assert [north.flush(10), north.flush(10), north.flush(10), north.flush(10)] == [10, 10, 5, 0]
    assert not north.behind()
    assert sorted(out.states) == sorted([d.id for d in devs] * 2)
