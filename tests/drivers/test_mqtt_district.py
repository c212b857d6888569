"""The repository's own district (config.yaml, devices/) through the simulator and the driver."""

from __future__ import annotations

from pathlib import Path

from lightctl.clock import ScaledClock
from lightctl.config.loader import load
from lightctl.drivers.mqtt import MqttDriver
from lightctl.drivers.sink import CollectingSink
from lightctl.model import DesiredState
from lightctl.sim.slc import SlcFleet
from tests import servers
from tests.drivers.test_mqtt_driver import eventually

CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


async def test_every_lamp_of_the_district_reports_and_obeys(mosquitto: servers.Mosquitto) -> None:
    district = load(CONFIG)
    lamps = [d for d in district.devices.values() if d.kind == "lamp"]
    concentrators = list(district.concentrators.values())
    behind = {lamp_id for c in concentrators for lamp_id in c.lamps}
    assert len(lamps) > 300  # the sample data: several hundred lamps,
    assert behind  # some behind a concentrator
    clock = ScaledClock(speed=120)  # a 60 s report interval passes in half a second
    settings = district.settings.mqtt.model_copy(
        update={"port": mosquitto.port, "client_id": "district-test"}
    )
    sink = CollectingSink()
    driver = MqttDriver(
        settings, district.settings.site.id, lamps, concentrators, district.profiles, sink, clock
    )
    fleet = SlcFleet(lamps, concentrators, district.profiles, mosquitto.host, mosquitto.port, clock, seed=11,
                     lamps_per_connection=50)  # fmt: skip
    await driver.start()
    assert await driver.wait_connected(10)
    await fleet.start()
    try:
        await eventually(lambda: {r.device for r in sink.items} == {d.id for d in lamps}, within=15)
        assert driver.drops.total() == 0
        online = {device for device, up, _, _ in sink.events if up}
        assert {c.id for c in concentrators} <= online

        targets = [lamps[0], next(d for d in lamps if d.id in behind)]
        for target in targets:
            result = await driver.send(target.id, DesiredState(on=True, level=35))
            assert result.ok, result.detail
            assert fleet.truth(target.id).level == 35
    finally:
        await fleet.stop()
        await driver.stop()
