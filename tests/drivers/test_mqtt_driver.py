"""The MQTT driver against a real broker (the shared Mosquitto, or amqtt where none runs).

Devices are played by a bare gmqtt client (`Probe`) that publishes exactly what a test writes, or by
the SLC-M1 simulator (which shares no code with the driver). The topic prefix is fixed (`slc`), so
every test uses device ids with a random suffix.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gmqtt
import orjson
import pytest
import yaml
from gmqtt.mqtt.constants import MQTTv311

from lightctl.clock import Clock, ScaledClock, SystemClock
from lightctl.config.settings import Mqtt
from lightctl.drivers.mqtt import MqttDriver, bridge_topic
from lightctl.drivers.sink import CollectingSink
from lightctl.model import Concentrator, DesiredState, Device
from lightctl.profiles import Profile
from lightctl.sim.slc import SlcFleet
from tests.servers import BrokerAddress

PROFILES = Path(__file__).resolve().parents[2] / "devices" / "profiles"
WITHIN = 10.0  # functional deadline for anything that should take milliseconds


def load_profiles() -> dict[str, Profile]:
    out = {}
    for path in PROFILES.glob("*.yaml"):
        profile = Profile.model_validate(yaml.safe_load(path.read_text()))
        out[profile.id] = profile
    return out


@dataclass
class Msg:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass
class Probe:
    """A bare gmqtt client that records everything it receives (independent of the code under test)."""

    host: str
    port: int
    will: tuple[str, bytes] | None = None
    messages: list[Msg] = field(default_factory=list)
    client: Any = None

    async def start(self, *topics: str) -> Probe:
        will = None if self.will is None else gmqtt.Message(self.will[0], self.will[1], qos=1, retain=True)
        self.client = gmqtt.Client(f"probe-{secrets.token_hex(4)}", will_message=will)
        self.client.on_message = self._on_message
        acked = asyncio.Event()
        self.client.on_subscribe = lambda *_: acked.set()
        await asyncio.wait_for(self.client.connect(self.host, self.port, version=MQTTv311), WITHIN)
        for topic in topics:
            acked.clear()
            self.client.subscribe(topic, qos=1)
            await asyncio.wait_for(acked.wait(), WITHIN)
        return self

    def _on_message(self, _client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        self.messages.append(Msg(topic, payload, qos, bool(properties.get("retain"))))
        return 0

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain)

    async def expect(self, match: Callable[[Msg], bool], count: int = 1, within: float = WITHIN) -> list[Msg]:
        deadline = time.monotonic() + within
        while True:
            found = [m for m in self.messages if match(m)]
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, f"expected {count} messages, got {len(found)}: {found[:3]}"
                return found
            await asyncio.sleep(0.01)

    def abort(self) -> None:
        """Drop the connection without DISCONNECT (the broker publishes the will)."""
        self.client._connection._transport.abort()

    async def stop(self) -> None:
        if self.client is not None and self.client.is_connected:
            # Closing with unread input resets the connection and the broker drops what it has not
            # read yet: wait for the acknowledgements of what was published first.
            await asyncio.wait_for(self.client._persistent_storage.wait_empty(), WITHIN)
            await self.client.disconnect()


async def eventually(check: Callable[[], bool], within: float = WITHIN) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def lamp(
    tag: str, n: int, concentrator: str | None = None, report_s: int | None = None, rated_w: float = 100
) -> Device:
    return Device(
        id=f"t{tag.lower()}-{n:03d}", kind="lamp", name=f"test {n}", profile="slc-m1", lat=28.68, lon=115.89,
        rated_w=rated_w, dimmable=True, mqtt_id=f"T{tag}-{n:03d}", concentrator=concentrator, report_s=report_s,
    )  # fmt: skip


@pytest.fixture
def tag() -> str:
    return secrets.token_hex(3).upper()


@pytest.fixture
def profiles() -> dict[str, Profile]:
    return load_profiles()


Start = Callable[..., Awaitable[tuple[MqttDriver, CollectingSink]]]


@pytest.fixture
async def leftovers(mqtt_broker: BrokerAddress, tag: str) -> AsyncIterator[set[str]]:
    """Retained messages of this test (topics listed here or carrying its tag) are cleared after it:
    the shared broker persists them. One check by subscribing again catches any that were missed."""
    topics: set[str] = set()
    yield topics
    filters = ("slc/+/up/state", "slc/gw/+/up/state", f"lightctl/site-{tag.lower()}/#")
    cleaner = await Probe(mqtt_broker.host, mqtt_broker.port).start(*filters)
    for topic in topics:
        cleaner.publish(topic, b"", qos=1, retain=True)
    await asyncio.sleep(0.15)
    for m in list(cleaner.messages):
        if m.retain and m.payload and (tag in m.topic or tag.lower() in m.topic) and m.topic not in topics:
            cleaner.publish(m.topic, b"", qos=1, retain=True)
    await cleaner.stop()


def state_topics(devices: Iterable[Device], concentrators: Iterable[Concentrator] = ()) -> set[str]:
    return {f"slc/{d.mqtt_id}/up/state" for d in devices} | {
        f"slc/gw/{c.mqtt_id}/up/state" for c in concentrators
    }


@pytest.fixture
async def start_driver(
    mqtt_broker: BrokerAddress, profiles: dict[str, Profile], tag: str, leftovers: set[str]
) -> AsyncIterator[Start]:
    started: list[MqttDriver] = []

    async def start(
        devices: list[Device],
        concentrators: list[Concentrator] = (),  # type: ignore[assignment]
        clock: Clock | None = None,
        per_device_topics: bool = False,
        instance: str | None = None,
        **settings: Any,
    ) -> tuple[MqttDriver, CollectingSink]:
        conf = Mqtt(
            host=mqtt_broker.host, port=mqtt_broker.port, client_id=f"lightctl-test-{tag}-{len(started)}",
            version="5" if mqtt_broker.kind == "mosquitto" else "3.1.1", **settings,
        )  # fmt: skip
        sink = CollectingSink()
        site = f"site-{tag.lower()}"
        driver = MqttDriver(
            conf, site, devices, list(concentrators), profiles, sink, clock or SystemClock(),
            per_device_topics=per_device_topics, instance=instance,
        )  # fmt: skip
        started.append(driver)
        leftovers.update(state_topics(devices, concentrators) | {bridge_topic(site, instance)})
        await driver.start()
        assert await driver.wait_connected(WITHIN)
        return driver, sink

    yield start
    for driver in started:
        await driver.stop()


@pytest.fixture
async def probe(
    mqtt_broker: BrokerAddress, tag: str, leftovers: set[str]
) -> AsyncIterator[Callable[..., Awaitable[Probe]]]:
    probes: list[Probe] = []

    async def make(*topics: str, will: tuple[str, bytes] | None = None) -> Probe:
        p = await Probe(mqtt_broker.host, mqtt_broker.port, will).start(*topics)
        probes.append(p)
        if will is not None:
            leftovers.add(will[0])
        return p

    yield make
    for p in probes:
        leftovers.update(m.topic for m in p.messages if tag in m.topic or tag.lower() in m.topic)
        await p.stop()


# --- commands ------------------------------------------------------------------------------------


async def test_command_and_ack_round_trip_with_the_simulated_lamp(
    start_driver: Start, mqtt_broker: BrokerAddress, profiles: dict[str, Profile], tag: str, probe: Any
) -> None:
    lamps = [lamp(tag, 1), lamp(tag, 2)]
    watcher = await probe("slc/+/up/state")
    driver, _ = await start_driver(lamps)
    fleet = SlcFleet(
        lamps, [], profiles, mqtt_broker.host, mqtt_broker.port, SystemClock(), seed=3, noise=False
    )
    await fleet.start()
    try:
        result = await driver.send(lamps[0].id, DesiredState(on=True, level=40))
        assert result.ok, result.detail
        assert result.confirmed_by == "ack"
        assert result.command_id
        truth = fleet.truth(lamps[0].id)
        assert (truth.on, truth.level, truth.relay_closed, truth.power_w) == (True, 40, True, 40.5)
        assert fleet.truth(lamps[1].id).on is False  # the other lamp was not touched

        off = await driver.send(lamps[0].id, DesiredState(on=False, level=70))
        assert off.ok, off.detail
        assert off.command_id != result.command_id
        assert fleet.truth(lamps[0].id).relay_closed is False
    finally:
        await fleet.stop()
    await watcher.expect(lambda m: tag in m.topic and m.payload == b"offline", count=2)


async def test_a_refusal_by_the_device_is_a_failed_result_with_its_reason(
    start_driver: Start, tag: str, probe: Any
) -> None:
    device = await probe(f"slc/T{tag}-001/down/cmd")
    driver, _ = await start_driver([lamp(tag, 1)])
    task = asyncio.create_task(driver.send(f"t{tag.lower()}-001", DesiredState(on=True, level=60)))
    (cmd,) = await device.expect(lambda m: m.topic.endswith("/down/cmd"))
    command_id = orjson.loads(cmd.payload)["id"]
    device.publish(
        f"slc/T{tag}-001/up/ack", orjson.dumps({"id": command_id, "ok": False, "err": "relay coil open"})
    )
    result = await task
    assert (result.ok, result.confirmed_by) == (False, "ack")
    assert "relay coil open" in result.detail


async def test_a_report_showing_the_commanded_state_confirms_without_an_ack(
    start_driver: Start, tag: str, probe: Any
) -> None:
    device = await probe(f"slc/T{tag}-001/down/cmd")
    driver, sink = await start_driver([lamp(tag, 1)], ack_timeout_s=5)
    task = asyncio.create_task(driver.send(f"t{tag.lower()}-001", DesiredState(on=True, level=55)))
    (cmd,) = await device.expect(lambda m: m.topic.endswith("/down/cmd"))
    report = {"ts": int(time.time()), "seq": 9, "on": True, "level": 55, "v": 220.1, "p": 55.6, "pf": 0.93}
    device.publish(f"slc/T{tag}-001/up/telemetry", orjson.dumps(report), qos=0)
    result = await asyncio.wait_for(task, 4)  # well before the 5 s ack timeout
    assert (result.ok, result.confirmed_by) == (True, "telemetry")
    await eventually(lambda: len(sink.items) == 1)
    assert sink.items[0].values["level"] == 55
    # Its ack, arriving after the report, is expected: not a drop.
    ack = {"id": orjson.loads(cmd.payload)["id"], "ok": True, "on": True, "level": 55}
    device.publish(f"slc/T{tag}-001/up/ack", orjson.dumps(ack))
    device.publish(f"slc/T{tag}-001/up/telemetry", orjson.dumps(report), qos=1)  # a marker behind it
    await eventually(lambda: len(sink.items) == 2)
    assert driver.drops.total() - driver.drops.by_reason["unknown_device"] == 0


async def test_a_report_of_another_state_does_not_confirm(start_driver: Start, tag: str, probe: Any) -> None:
    device = await probe(f"slc/T{tag}-001/down/cmd")
    driver, _ = await start_driver([lamp(tag, 1)], ack_timeout_s=1)
    task = asyncio.create_task(driver.send(f"t{tag.lower()}-001", DesiredState(on=True, level=55)))
    await device.expect(lambda m: m.topic.endswith("/down/cmd"))
    for report in (
        {"ts": 1, "on": True, "level": 100},
        {"ts": 2, "on": False, "level": 0},
        {"ts": 3, "p": 55.5},
    ):
        device.publish(f"slc/T{tag}-001/up/telemetry", orjson.dumps(report), qos=0)
    result = await task
    assert not result.ok
    assert result.confirmed_by is None


async def test_a_command_to_a_silent_lamp_times_out(start_driver: Start, tag: str) -> None:
    driver, _ = await start_driver([lamp(tag, 1)], ack_timeout_s=1)
    started = time.monotonic()
    result = await driver.send(f"t{tag.lower()}-001", DesiredState(on=True, level=80))
    elapsed = time.monotonic() - started
    assert not result.ok
    assert "no acknowledgement" in result.detail
    assert 0.9 <= elapsed < 5
    assert driver.stats().timed_out == 1


async def test_a_command_given_before_the_lamp_reconnected_is_sent_again_on_its_online(
    start_driver: Start, tag: str, probe: Any
) -> None:
    # After a broker restart lightctl is often connected first: the lamp (clean session) misses
    # the command, and only its `online` says it can hear now.
    driver, _ = await start_driver([lamp(tag, 1)], ack_timeout_s=20)
    task = asyncio.create_task(driver.send(f"t{tag.lower()}-001", DesiredState(on=True, level=45)))
    await eventually(lambda: driver.stats().commands == 1)
    await asyncio.sleep(0.3)  # published, with nobody subscribed
    device = await probe(f"slc/T{tag}-001/down/cmd")
    started = time.monotonic()
    device.publish(f"slc/T{tag}-001/up/state", b"online", retain=True)
    (cmd,) = await device.expect(lambda m: m.topic.endswith("/down/cmd"))
    sent = orjson.loads(cmd.payload)
    assert (sent["on"], sent["level"]) == (True, 45)
    device.publish(
        f"slc/T{tag}-001/up/ack", orjson.dumps({"id": sent["id"], "ok": True, "on": True, "level": 45})
    )
    result = await task
    assert result.ok, result.detail
    assert time.monotonic() - started < 10  # not the 20 s timeout
    assert driver.stats().resent == 1


async def test_an_ack_with_an_unknown_id_is_counted_and_does_not_confirm(
    start_driver: Start, tag: str, probe: Any
) -> None:
    device = await probe(f"slc/T{tag}-001/down/cmd")
    driver, _ = await start_driver([lamp(tag, 1)], ack_timeout_s=1)
    task = asyncio.create_task(driver.send(f"t{tag.lower()}-001", DesiredState(on=True)))
    await device.expect(lambda m: m.topic.endswith("/down/cmd"))
    device.publish(f"slc/T{tag}-001/up/ack", b'{"id": "not-yours", "ok": true, "on": true, "level": 100}')
    result = await task
    assert not result.ok
    assert driver.drops.by_reason["ack_unknown_id"] == 1
    late = {"id": result.command_id, "ok": True, "on": True, "level": 100}
    device.publish(f"slc/T{tag}-001/up/ack", orjson.dumps(late))  # after the command gave up
    await eventually(lambda: driver.drops.by_reason["ack_late"] == 1)


async def test_invalid_desired_states_are_refused_without_sending(
    start_driver: Start, tag: str, probe: Any
) -> None:
    device = await probe(f"slc/T{tag}-001/down/cmd")
    driver, _ = await start_driver([lamp(tag, 1)])
    assert not (await driver.send(f"t{tag.lower()}-001", DesiredState(level=50))).ok
    assert not (await driver.send(f"t{tag.lower()}-001", DesiredState(on=True, level=101))).ok
    assert not (await driver.send("no-such-lamp", DesiredState(on=True))).ok
    await asyncio.sleep(0.2)
    assert [m for m in device.messages if m.topic.endswith("/down/cmd")] == []
    assert driver.stats().commands == 0


async def test_many_commands_at_once_are_all_confirmed(
    start_driver: Start, mqtt_broker: BrokerAddress, profiles: dict[str, Profile], tag: str, probe: Any
) -> None:
    # MQTT 5 against Mosquitto allows 20 unacknowledged QoS 1 publishes; gmqtt raises past that.
    lamps = [lamp(tag, n) for n in range(150)]
    driver, _ = await start_driver(lamps)
    fleet = SlcFleet(
        lamps, [], profiles, mqtt_broker.host, mqtt_broker.port, SystemClock(), lamps_per_connection=50
    )
    await fleet.start()
    try:
        results = await asyncio.gather(*(driver.send(d.id, DesiredState(on=True, level=30)) for d in lamps))
        assert [r.detail for r in results if not r.ok] == []
        assert all(fleet.truth(d.id).level == 30 for d in lamps)
    finally:
        await fleet.stop()


# --- telemetry and availability ------------------------------------------------------------------


async def test_concentrator_batch_of_200_lamps(start_driver: Start, tag: str, probe: Any) -> None:
    conc = Concentrator(
        f"c{tag.lower()}", "test", f"C{tag}", 60, 0, 0, tuple(f"t{tag.lower()}-{n:03d}" for n in range(200))
    )
    lamps = [lamp(tag, n, concentrator=conc.id) for n in range(200)]
    driver, sink = await start_driver(lamps, [conc])
    gw = await probe()
    entries = [{"dev": f"T{tag}-{n:03d}", "ts": 1764179990 + n % 7, "seq": n, "on": True, "level": 50, "p": 50.0 + n / 10}
               for n in range(200)]  # fmt: skip
    gw.publish(f"slc/gw/C{tag}/up/telemetry", orjson.dumps({"ts": 1764180000, "lamps": entries}), qos=0)
    await eventually(lambda: len(sink.items) == 200)
    by_device = {r.device: r for r in sink.items}
    assert set(by_device) == {d.id for d in lamps}
    assert by_device[f"t{tag.lower()}-123"].values["power"] == 62.3
    assert by_device[f"t{tag.lower()}-123"].ts == 1764179990 + 123 % 7
    assert (conc.id, True) in [(e[0], e[1]) for e in sink.events]

    gw.publish(
        f"slc/gw/C{tag}/up/telemetry",
        orjson.dumps({"ts": 1764180060, "lamps": [*entries, entries[0]]}),
        qos=0,
    )
    gw.publish(
        f"slc/gw/C{tag}/up/telemetry",
        orjson.dumps({"ts": 1764180060, "lamps": [{"dev": "T-ELSEWHERE", "ts": 1}]}),
        qos=0,
    )
    await eventually(lambda: "T-ELSEWHERE" in driver.drop_examples.get("unknown_device", ""))
    assert driver.drops.by_reason["batch_too_large"] == 1
    assert len(sink.items) == 200


async def test_availability_from_the_state_topic_and_the_last_will(
    start_driver: Start, tag: str, probe: Any
) -> None:
    state = f"slc/T{tag}-001/up/state"
    device = await probe(will=(state, b"offline"))
    device.publish(state, b"online", retain=True)
    await asyncio.sleep(0.1)
    _, sink = await start_driver([lamp(tag, 1)])  # learns `online` from the retained message
    await eventually(lambda: (f"t{tag.lower()}-001", True) in [(e[0], e[1]) for e in sink.events])
    device.abort()
    await eventually(lambda: sink.events[-1][:2] == (f"t{tag.lower()}-001", False))
    assert "will" in sink.events[-1][3]


async def test_a_concentrator_going_offline_takes_its_lamps_with_it(
    start_driver: Start, tag: str, probe: Any
) -> None:
    conc = Concentrator(
        f"c{tag.lower()}", "test", f"C{tag}", 60, 0, 0, (f"t{tag.lower()}-001", f"t{tag.lower()}-002")
    )
    lamps = [lamp(tag, 1, conc.id), lamp(tag, 2, conc.id)]
    _, sink = await start_driver(lamps, [conc])
    gw = await probe(will=(f"slc/gw/C{tag}/up/state", b"offline"))
    gw.publish(f"slc/gw/C{tag}/up/state", b"online", retain=True)
    gw.publish(
        f"slc/gw/C{tag}/up/telemetry", orjson.dumps({"ts": 1, "lamps": [{"dev": f"T{tag}-001", "ts": 1}]})
    )
    await eventually(lambda: len(sink.items) == 1)
    gw.abort()
    await eventually(lambda: {e[0] for e in sink.events if not e[1]} == {conc.id, *(d.id for d in lamps)})


async def test_a_silent_concentrator_goes_offline_with_its_lamps(
    start_driver: Start, tag: str, probe: Any
) -> None:
    clock = ScaledClock(speed=20)  # batches every 10 clock s: silent after 30 clock s = 1.5 s
    conc = Concentrator(
        f"c{tag.lower()}", "test", f"C{tag}", 10, 0, 0, (f"t{tag.lower()}-001", f"t{tag.lower()}-002")
    )
    lamps = [lamp(tag, 1, conc.id, report_s=10), lamp(tag, 2, conc.id, report_s=10)]
    _, sink = await start_driver(lamps, [conc], clock=clock)
    gw = await probe()
    entries = [{"dev": f"T{tag}-001", "ts": 1}, {"dev": f"T{tag}-002", "ts": 1}]
    gw.publish(f"slc/gw/C{tag}/up/telemetry", orjson.dumps({"ts": 1, "lamps": entries}), qos=0)
    await eventually(lambda: len(sink.items) == 2)
    await eventually(lambda: {e[0] for e in sink.events if not e[1]} == {conc.id, lamps[0].id, lamps[1].id})
    reasons = {e[0]: e[3] for e in sink.events if not e[1]}
    assert reasons[conc.id].startswith("no report for 30 s")
    assert reasons[lamps[0].id] in (f"concentrator {conc.id} silent", "no report for 30 s")


async def test_silence_takes_a_lamp_offline_and_its_next_report_brings_it_back(
    start_driver: Start, tag: str, probe: Any
) -> None:
    clock = ScaledClock(speed=20)  # report every 10 clock s: silent after 30 clock s = 1.5 s
    _, sink = await start_driver([lamp(tag, 1, report_s=10)], clock=clock)
    device = await probe()
    device.publish(f"slc/T{tag}-001/up/telemetry", orjson.dumps({"ts": int(clock.now()), "p": 1.0}), qos=0)
    await eventually(lambda: len(sink.items) == 1)
    reported = time.monotonic()
    await eventually(lambda: sink.events[-1][1] is False)
    assert 1.2 < time.monotonic() - reported < 5
    assert "no report" in sink.events[-1][3]
    device.publish(f"slc/T{tag}-001/up/telemetry", orjson.dumps({"ts": int(clock.now()), "p": 1.0}), qos=0)
    await eventually(lambda: sink.events[-1][1] is True)


async def test_malformed_messages_over_the_broker_are_counted_and_the_loop_goes_on(
    start_driver: Start, tag: str, probe: Any
) -> None:
    driver, sink = await start_driver([lamp(tag, 1)])
    device = await probe()
    topic = f"slc/T{tag}-001/up/telemetry"
    bad = {
        "not_json": [b"", b"{", b"\xff\xfe", b"NaN", b"online"],
        "bad_shape": [b"[]", b"3", b'"x"', b"null"],
        "bad_type": [b'{"ts": 1, "p": "1"}', b'{"ts": 1, "on": 1}', b'{"ts": 1, "level": 5.5}'],
        "out_of_range": [b'{"ts": 1, "level": 101}', b'{"ts": 1, "pf": 2}', b'{"ts": 1, "seq": 65536}'],
        "missing_field": [b'{"p": 3}', b"{}"],
        "payload_too_large": [b'{"ts": 1, "pad": "' + b"x" * 70_000 + b'"}'],
    }
    for payloads in bad.values():
        for payload in payloads * 20:
            device.publish(topic, payload, qos=1)
    device.publish(f"slc/T{tag}-001/up/state", b"maybe", qos=1)
    device.publish(topic, b'{"ts": 1764180000, "p": 42.0}', qos=1)
    await eventually(lambda: len(sink.items) == 1)
    assert sink.items[0].values == {"power": 42.0}
    expected = {reason: 20 * len(payloads) for reason, payloads in bad.items()} | {"bad_state": 1}
    assert {k: driver.drops.by_reason[k] for k in expected} == expected
    assert driver.stats().dropped["not_json"] == 100


async def test_per_device_subscriptions_see_only_this_instances_devices(
    start_driver: Start, tag: str, probe: Any
) -> None:
    driver, sink = await start_driver([lamp(tag, 1)], per_device_topics=True)
    device = await probe()
    await asyncio.sleep(0.2)
    # amqtt sends a connecting client every retained message matching anyone's subscription: count
    # only what arrives from now on.
    before = driver.messages
    device.publish(f"slc/T{tag}-999/up/telemetry", b'{"ts": 1}', qos=1)
    device.publish(f"slc/T{tag}-001/up/telemetry", b'{"ts": 2}', qos=1)
    await eventually(lambda: len(sink.items) == 1)
    await asyncio.sleep(0.1)
    assert driver.messages - before == 1


# --- northbound ----------------------------------------------------------------------------------


async def test_northbound_state_availability_alarms_and_bridge_state(
    start_driver: Start, tag: str, probe: Any
) -> None:
    site = f"site-{tag.lower()}"
    early = await probe(f"lightctl/{site}/#")
    driver, _ = await start_driver([lamp(tag, 1)])
    driver.publish_state("ha-001", b'{"on": true, "level": 70}')
    driver.publish_availability("ha-001", False)
    driver.publish_alarm(b'{"type": "lamp_failure", "device": "ha-001"}')
    with pytest.raises(ValueError, match="topic"):
        driver.publish_state("a/b", b"{}")
    await early.expect(lambda m: m.topic.startswith(f"lightctl/{site}/"), count=4)  # the broker has them all
    late = await probe(f"lightctl/{site}/#")  # subscribes afterwards: sees only what is retained
    found = await late.expect(lambda m: m.topic.startswith(f"lightctl/{site}/"), count=3)
    retained = {m.topic: orjson.loads(m.payload) for m in found if m.retain}
    assert retained == {
        f"lightctl/{site}/ha-001/state": {"on": True, "level": 70},
        f"lightctl/{site}/ha-001/availability": {"state": "offline"},
        f"lightctl/{site}/bridge/state": {"state": "online"},
    }
    driver.publish_alarm(b'{"type": "pole_tilt"}')
    (alarm,) = await late.expect(lambda m: m.topic == f"lightctl/{site}/alarms")
    assert (orjson.loads(alarm.payload), alarm.retain) == ({"type": "pole_tilt"}, False)
    await driver.stop()
    await late.expect(lambda m: m.topic.endswith("/bridge/state") and m.payload == b'{"state":"offline"}')


async def test_the_bridge_last_will_fires_when_the_service_vanishes(
    start_driver: Start, tag: str, probe: Any
) -> None:
    site = f"site-{tag.lower()}"
    watcher = await probe(f"lightctl/{site}/bridge/state")
    driver, _ = await start_driver([lamp(tag, 1)])
    bridge = f"lightctl/{site}/bridge/state"
    await watcher.expect(lambda m: m.topic == bridge and orjson.loads(m.payload) == {"state": "online"})
    driver._conn._client._connection._transport.abort()  # the process dies: no DISCONNECT is sent
    await watcher.expect(lambda m: m.topic == bridge and orjson.loads(m.payload) == {"state": "offline"})
    await watcher.expect(
        lambda m: m.topic == bridge and orjson.loads(m.payload) == {"state": "online"}, count=2
    )
    assert driver.stats().connects == 2


async def test_instances_of_one_site_each_have_their_own_bridge_state(
    start_driver: Start, tag: str, probe: Any
) -> None:
    site = f"site-{tag.lower()}"
    watcher = await probe(f"lightctl/{site}/bridge/#")
    a, _ = await start_driver([lamp(tag, 1)], instance="lightctl-a")
    await start_driver([lamp(tag, 2)], instance="lightctl/b")  # a topic separator is not a level
    mine = {f"lightctl/{site}/bridge/lightctl-a/state", f"lightctl/{site}/bridge/lightctl_b/state"}
    await watcher.expect(lambda m: m.topic in mine and m.payload == b'{"state":"online"}', count=2)
    await a.stop()
    await watcher.expect(
        lambda m: m.topic.endswith("/lightctl-a/state") and m.payload == b'{"state":"offline"}'
    )
    late = await probe(f"lightctl/{site}/bridge/#")
    found = await late.expect(lambda m: m.retain, count=2)
    assert {m.topic: orjson.loads(m.payload) for m in found} == {
        f"lightctl/{site}/bridge/lightctl-a/state": {"state": "offline"},
        f"lightctl/{site}/bridge/lightctl_b/state": {"state": "online"},  # b runs on
    }
