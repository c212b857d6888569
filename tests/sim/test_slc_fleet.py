"""The simulated SLC-M1 fleet on a real broker, watched by a bare MQTT client (not lightctl's driver).

Checked against devices.md section 1: topics, payload fields, report interval, acknowledgements,
concentrator batches and heartbeats, retained `online` and the last will `offline`.
"""

# ruff: noqa: F811 - the fixtures come from tests/drivers/test_mqtt_driver

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest

from lightctl.clock import Clock, ScaledClock, SystemClock
from lightctl.model import Concentrator, Device
from lightctl.profiles import Profile
from lightctl.sim.slc import SlcFleet
from tests import servers
from tests.drivers.test_mqtt_driver import (  # noqa: F401
    Msg,
    Probe,
    eventually,
    lamp,
    leftovers,
    probe,
    profiles,
    state_topics,
    tag,
)
from tests.servers import BrokerAddress

TELEMETRY_FIELDS = {"ts", "seq", "on", "level", "v", "i", "p", "pf", "e", "t", "hours", "alarm"}
MakeProbe = Callable[..., Awaitable[Probe]]
Fleet = Callable[..., Awaitable[SlcFleet]]


@pytest.fixture
async def fleet(
    mqtt_broker: BrokerAddress, profiles: dict[str, Profile], leftovers: set[str]
) -> AsyncIterator[Fleet]:
    fleets: list[SlcFleet] = []

    async def start(
        lamps: list[Device],
        concentrators: list[Concentrator] = (),
        clock: Clock | None = None,
        **options: Any,  # type: ignore[assignment]
    ) -> SlcFleet:
        f = SlcFleet(
            lamps,
            concentrators,
            profiles,
            mqtt_broker.host,
            mqtt_broker.port,
            clock or SystemClock(),
            seed=7,
            **options,
        )
        fleets.append(f)
        leftovers.update(state_topics(lamps, concentrators))
        await f.start()
        assert await f.wait_ready(10)
        return f

    yield start
    for f in fleets:
        await f.stop()


def of(msgs: list[Msg]) -> list[dict[str, Any]]:
    return [orjson.loads(m.payload) for m in msgs]


async def test_reports_every_interval_with_the_datasheet_fields(
    fleet: Fleet, probe: MakeProbe, tag: str
) -> None:
    clock = ScaledClock(speed=60)  # report_s 60 clock s = 1 s
    watch = await probe(f"slc/T{tag}-001/up/telemetry")
    await fleet([lamp(tag, 1, report_s=60), lamp(tag, 2, report_s=60)], clock=clock, lamps_per_connection=2)
    reports = of(await watch.expect(lambda m: m.topic.endswith("/telemetry"), count=3, within=6))[:3]
    assert all(set(r) == TELEMETRY_FIELDS for r in reports)
    gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(reports)]
    assert all(57 <= gap <= 63 for gap in gaps), (
        gaps
    )  # stamped when sent; the scheduler wakes every 1.2 clock s
    assert [(b["seq"] - a["seq"]) % 65536 for a, b in itertools.pairwise(reports)] == [1, 1]
    assert all(
        isinstance(r["ts"], int) and isinstance(r["alarm"], int) and isinstance(r["on"], bool)
        for r in reports
    )
    late = await probe(f"slc/T{tag}-002/up/state")  # subscribes afterwards: the retained state
    (state,) = await late.expect(lambda m: m.retain)
    assert state.payload == b"online"


REFUSED = [
    (b"{oops", None),
    (b'{"on": true}', None),
    (b'{"id": "r1", "level": 40}', "r1"),
    (b'{"id": "r2", "on": true, "level": 101}', "r2"),
    (b'{"id": "r3", "on": true, "level": 12.5}', "r3"),
    (b'{"id": "r4", "on": true, "dim": 40}', "r4"),
]


async def test_refused_commands_are_answered_ok_false_within_a_second(
    fleet: Fleet, probe: MakeProbe, tag: str
) -> None:
    device = f"T{tag}-001"
    f = await fleet([lamp(tag, 1, report_s=900)])
    acks = await probe(f"slc/{device}/up/ack")
    for n, (payload, echo) in enumerate(REFUSED):
        sent = time.monotonic()
        acks.publish(f"slc/{device}/down/cmd", payload)
        ack = of(await acks.expect(lambda m: m.topic.endswith("/up/ack"), count=n + 1))[n]
        assert time.monotonic() - sent < 1.0
        assert (ack["id"], ack["ok"]) == (echo, False)
        assert ack["err"]
    truth = f.truth(f"t{tag.lower()}-001")
    assert (truth.on, truth.level, truth.relay_closed) == (False, 0, False)


async def test_a_command_is_acknowledged_and_reported_at_once(
    fleet: Fleet, probe: MakeProbe, tag: str
) -> None:
    device = f"T{tag}-001"
    await fleet([lamp(tag, 1, report_s=900, rated_w=100)])
    watch = await probe(f"slc/{device}/up/ack", f"slc/{device}/up/telemetry")
    sent = time.monotonic()
    watch.publish(f"slc/{device}/down/cmd", b'{"id": "c-1", "on": true, "level": 50}')
    (ack,) = of(await watch.expect(lambda m: m.topic.endswith("/ack")))
    (report,) = of(await watch.expect(lambda m: m.topic.endswith("/telemetry")))
    assert time.monotonic() - sent < 1.0
    assert ack == {"id": "c-1", "ok": True, "on": True, "level": 50}
    assert (report["on"], report["level"]) == (True, 50)
    assert 50.5 * 0.95 <= report["p"] <= 50.5 * 1.05
    watch.publish(f"slc/{device}/down/cmd", b'{"id": "g-1", "get": true}')
    (get_ack,) = of(await watch.expect(lambda m: m.topic.endswith("/ack") and b"g-1" in m.payload))
    assert get_ack == {"id": "g-1", "ok": True, "on": True, "level": 50}
    await watch.expect(lambda m: m.topic.endswith("/telemetry"), count=2)


async def test_a_stuck_relay_shows_in_bit1_and_the_power(fleet: Fleet, probe: MakeProbe, tag: str) -> None:
    device = f"T{tag}-001"
    f = await fleet([lamp(tag, 1, report_s=900, rated_w=120)], initially_on=True)
    f.inject(f"t{tag.lower()}-001", "relay_stuck_on")
    watch = await probe(f"slc/{device}/up/telemetry")
    watch.publish(f"slc/{device}/down/cmd", b'{"id": "off-1", "on": false}')
    (report,) = of(await watch.expect(lambda m: m.topic.endswith("/telemetry")))
    assert (report["on"], report["level"], report["alarm"] & 2) == (False, 0, 2)
    assert report["p"] >= 120 * 0.95


async def test_concentrator_batches_hold_at_most_max_batch_lamps(
    fleet: Fleet, probe: MakeProbe, tag: str
) -> None:
    conc_id, gw = f"c{tag.lower()}", f"C{tag}"
    lamps = [lamp(tag, n, concentrator=conc_id, report_s=60) for n in range(450)]
    conc = Concentrator(conc_id, "gw", gw, 60, 0, 0, tuple(d.id for d in lamps))
    watch = await probe(f"slc/gw/{gw}/up/#", f"slc/T{tag}-000/up/state")
    await fleet(lamps, [conc], clock=ScaledClock(speed=60))
    batches = of(await watch.expect(lambda m: m.topic.endswith("/telemetry"), count=3, within=6))[:3]
    assert sorted(len(b["lamps"]) for b in batches) == [50, 200, 200]
    entries = [e for b in batches for e in b["lamps"]]
    assert sorted(e["dev"] for e in entries) == sorted(d.mqtt_id for d in lamps)  # each lamp once
    assert all(set(e) == TELEMETRY_FIELDS | {"dev"} for e in entries)
    assert all(e["ts"] <= b["ts"] for b in batches for e in b["lamps"])
    assert [m.payload for m in watch.messages if m.topic.endswith("/up/state")] == [
        b"online"
    ]  # the concentrator's


async def test_a_concentrator_sends_heartbeats_and_a_batch_soon_after_a_command(
    fleet: Fleet, probe: MakeProbe, tag: str
) -> None:
    conc_id, gw = f"c{tag.lower()}", f"C{tag}"
    lamps = [lamp(tag, n, concentrator=conc_id) for n in range(2)]
    conc = Concentrator(conc_id, "gw", gw, 10, 0, 0, tuple(d.id for d in lamps))
    clock = ScaledClock(speed=10)  # a batch every 10 clock s = 1 s
    watch = await probe(f"slc/gw/{gw}/up/telemetry", f"slc/T{tag}-001/up/ack")
    f = await fleet(lamps, [conc], clock=clock)
    for d in lamps:
        f.inject(d.id, "silence")
    heartbeats = await watch.expect(
        lambda m: m.topic.endswith("/telemetry") and orjson.loads(m.payload)["lamps"] == [], count=2, within=5
    )
    assert all(set(orjson.loads(m.payload)) == {"ts", "lamps"} for m in heartbeats)

    f.clear(lamps[1].id)
    watch.publish(f"slc/T{tag}-001/down/cmd", b'{"id": "k1", "on": true, "level": 30}')
    await watch.expect(lambda m: m.topic.endswith("/ack"))
    acked = clock.now()
    (batch,) = await watch.expect(lambda m: m.topic.endswith("/telemetry") and b'"level":30' in m.payload)
    assert clock.now() - acked < 5.0
    (entry,) = orjson.loads(batch.payload)["lamps"]
    assert (entry["dev"], entry["on"], entry["level"]) == (f"T{tag}-001", True, 30)


async def test_wills_announce_offline_when_the_field_crashes(
    fleet: Fleet, probe: MakeProbe, tag: str
) -> None:
    conc_id, gw = f"c{tag.lower()}", f"C{tag}"
    lamps = [lamp(tag, 1), lamp(tag, 2), lamp(tag, 3, concentrator=conc_id)]
    conc = Concentrator(conc_id, "gw", gw, 60, 0, 0, (lamps[2].id,))
    watch = await probe("slc/+/up/state", "slc/gw/+/up/state")
    f = await fleet(lamps, [conc], lamps_per_connection=1)
    await f.kill()  # no DISCONNECT: only the broker can tell
    offline = await watch.expect(lambda m: tag in m.topic and m.payload == b"offline", count=3)
    assert {m.topic for m in offline} == {
        f"slc/T{tag}-001/up/state",
        f"slc/T{tag}-002/up/state",
        f"slc/gw/{gw}/up/state",
    }
    assert not [m for m in watch.messages if m.topic == f"slc/T{tag}-003/up/state"]  # behind a concentrator


async def test_offline_and_silence_faults(fleet: Fleet, probe: MakeProbe, tag: str) -> None:
    clock = ScaledClock(speed=60)
    lamps = [lamp(tag, n, report_s=60) for n in (1, 2, 3)]
    watch = await probe("slc/+/up/state", f"slc/T{tag}-002/up/telemetry", f"slc/T{tag}-003/up/ack")
    f = await fleet(lamps, clock=clock, lamps_per_connection=3)  # one shared connection
    f.inject(lamps[1].id, "offline")
    await watch.expect(lambda m: m.topic == f"slc/T{tag}-002/up/state" and m.payload == b"offline")
    assert not f.truth(lamps[1].id).reachable
    assert [m.payload for m in watch.messages if m.topic == f"slc/T{tag}-001/up/state"] == [b"online"]
    seen = len(watch.messages)
    await asyncio.sleep(1.5)
    assert not [m for m in watch.messages[seen:] if m.topic.endswith("/telemetry")]
    f.clear(lamps[1].id)
    await watch.expect(lambda m: m.topic == f"slc/T{tag}-002/up/state" and m.payload == b"online")
    await watch.expect(lambda m: m.topic.endswith("/telemetry"), within=4)

    f.inject(lamps[2].id, "silence")  # hung: stays `online`, answers nothing
    watch.publish(f"slc/T{tag}-003/down/cmd", b'{"id": "s1", "on": true}')
    await asyncio.sleep(1.0)
    assert not [m for m in watch.messages if m.topic.endswith("/ack")]
    assert f.truth(lamps[2].id).on is False
    assert [m.payload for m in watch.messages if m.topic == f"slc/T{tag}-003/up/state"] == [b"online"]


async def test_an_offline_fault_on_its_own_connection_fires_the_real_will(
    fleet: Fleet, probe: MakeProbe, tag: str
) -> None:
    watch = await probe(f"slc/T{tag}-001/up/state")
    f = await fleet([lamp(tag, 1)], lamps_per_connection=1)
    f.inject(f"t{tag.lower()}-001", "offline", start=f.clock.now() + 0.3, until=f.clock.now() + 1.0)
    await watch.expect(lambda m: m.payload == b"offline")
    await watch.expect(lambda m: m.payload == b"online", count=2, within=8)  # connected again after `until`
    assert f.links[0].connected


async def test_faults_from_a_spec_and_the_fault_log(fleet: Fleet, probe: MakeProbe, tag: str) -> None:
    clock = ScaledClock(speed=60)
    lamps = [lamp(tag, 1, report_s=60), lamp(tag, 2, report_s=60)]
    watch = await probe(f"slc/T{tag}-001/up/telemetry", f"slc/T{tag}-002/up/telemetry")
    f = await fleet(
        lamps, clock=clock, faults=f"tilt:T{tag}-001,over_temperature:t{tag.lower()}-002@+120~10m"
    )
    await watch.expect(
        lambda m: m.topic.startswith(f"slc/T{tag}-001") and orjson.loads(m.payload)["alarm"] == 16, within=4
    )
    hot = await watch.expect(
        lambda m: m.topic.startswith(f"slc/T{tag}-002") and orjson.loads(m.payload)["alarm"] == 8, within=8
    )
    assert orjson.loads(hot[0].payload)["t"] >= 84
    log = f.fault_log()
    assert [(r.device, r.fault.value) for r in log] == [
        (lamps[0].id, "tilt"),
        (lamps[1].id, "over_temperature"),
    ]
    assert log[1].end is not None
    assert log[1].end - log[1].start == 600
    f.inject(lamps[0].id, "voltage_low", start=clock.now() + 3600)
    f.clear(lamps[0].id)
    assert [r.fault.value for r in f.fault_log()] == ["tilt", "over_temperature"]  # the future one withdrawn
    assert f.fault_log()[0].end is not None
    with pytest.raises(ValueError, match="no parameter"):
        f.inject(lamps[0].id, "low_pf", volts=3)
    with pytest.raises(KeyError):
        f.inject("nobody", "tilt")


@pytest.mark.slow
async def test_twenty_thousand_lamps_on_shared_connections(
    mosquitto: servers.Mosquitto, profiles: dict[str, Profile], tag: str
) -> None:
    clock = ScaledClock(speed=60)  # every lamp reports once per second: 20,000 messages/s
    lamps = [lamp(tag, n, report_s=60) for n in range(20_000)]
    seen: set[str] = set()
    watch = await Probe(mosquitto.host, mosquitto.port).start("slc/+/up/telemetry")
    watch._on_message = lambda _c, topic, _p, _q, _props: seen.add(topic) or 0  # type: ignore[method-assign]
    watch.client.on_message = watch._on_message
    fleet = SlcFleet(lamps, [], profiles, mosquitto.host, mosquitto.port, clock, lamps_per_connection=500)
    started = time.monotonic()
    await fleet.start(within_s=60)
    try:
        connect_s = time.monotonic() - started
        assert fleet.connected == 40
        await eventually(lambda: len(seen) >= 19_800, within=20)  # a broker may drop a few under load
        print(
            f"20,000 lamps: connected in {connect_s:.1f} s, {len(seen)} reporting after {time.monotonic() - started:.1f} s"
        )
    finally:
        await fleet.stop()
        await watch.stop()


async def test_a_deaf_lamp_keeps_reporting_but_ignores_commands(
    fleet: Fleet, probe: MakeProbe, tag: str
) -> None:
    clock = ScaledClock(speed=60)
    device = f"T{tag}-001"
    watch = await probe(f"slc/{device}/up/telemetry", f"slc/{device}/up/ack")
    f = await fleet([lamp(tag, 1, report_s=60)], clock=clock, lamps_per_connection=1)
    f.inject(f"t{tag.lower()}-001", "deaf", until=clock.now() + 240)
    watch.publish(f"slc/{device}/down/cmd", b'{"id": "d1", "on": true}')
    reports = of(await watch.expect(lambda m: m.topic.endswith("/telemetry"), count=2, within=5))
    assert [r["on"] for r in reports] == [False, False]  # periodic reports, the command not applied
    assert not [m for m in watch.messages if m.topic.endswith("/ack")]
    assert f.truth(f"t{tag.lower()}-001").reachable
    await asyncio.sleep(4.5)  # past the fault's end (4 real s at x60)
    watch.publish(f"slc/{device}/down/cmd", b'{"id": "d2", "on": true}')
    (ack,) = of(await watch.expect(lambda m: m.topic.endswith("/ack")))
    assert ack == {"id": "d2", "ok": True, "on": True, "level": 100}
