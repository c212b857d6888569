"""The wire format checked with clients nobody here wrote: mosquitto_pub and mosquitto_sub.

Payloads are the datasheet's (devices.md section 1), typed in by hand.
"""

# ruff: noqa: F811 - the fixtures come from test_mqtt_driver (a test may not define a conftest here)

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest

from lightctl.model import Concentrator, DesiredState
from tests.drivers.test_mqtt_driver import Start, eventually, lamp, leftovers, profiles, start_driver, tag  # noqa: F401
from tests.servers import BrokerAddress, require

WITHIN = 10.0
DATASHEET_REPORT = (
    '{"ts": 1764180000, "seq": 17, "on": true, "level": 60, "v": 221.3, "i": 0.42, "p": 90.6, '
    '"pf": 0.96, "e": 1234.5, "t": 38.2, "hours": 5120, "alarm": 0}'
)


async def mosquitto_pub(broker: BrokerAddress, topic: str, payload: str | None, *extra: str) -> None:
    binary = require("mosquitto_pub", "Mosquitto clients")
    message = ["-n"] if payload is None else ["-m", payload]
    proc = await asyncio.create_subprocess_exec(
        binary, "-h", broker.host, "-p", str(broker.port), "-V", "mqttv311", "-t", topic, *message, *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), WITHIN)
    assert proc.returncode == 0, err.decode()


@asynccontextmanager
async def mosquitto_sub(broker: BrokerAddress, topic: str, count: int = 1) -> AsyncIterator[list[str]]:
    """Lines `<qos> <retain> <topic> <payload>` of the first `count` messages, read after the block."""
    binary = require("mosquitto_sub", "Mosquitto clients")
    # Line-buffered, or its output (the SUBACK we wait for included) arrives only when it exits.
    unbuffered = [stdbuf, "-oL"] if (stdbuf := shutil.which("stdbuf")) else []
    proc = await asyncio.create_subprocess_exec(
        *unbuffered, binary, "-h", broker.host, "-p", str(broker.port), "-V", "mqttv311", "-q", "1", "-t", topic,
        "-C", str(count), "-d", "-F", "MSG %q %r %t %p",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        while b"SUBACK" not in await asyncio.wait_for(proc.stdout.readline(), WITHIN):
            pass  # -d prints the handshake: publish only once the subscription stands
        lines: list[str] = []
        yield lines
        while len(lines) < count:
            line = (await asyncio.wait_for(proc.stdout.readline(), WITHIN)).decode()
            assert line, "mosquitto_sub exited early"
            if line.startswith("MSG "):
                lines.append(line.removeprefix("MSG ").rstrip("\n"))
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_a_datasheet_report_sent_with_mosquitto_pub_is_read(
    start_driver: Start, mqtt_broker: BrokerAddress, tag: str
) -> None:
    _, sink = await start_driver([lamp(tag, 1)])
    await mosquitto_pub(mqtt_broker, f"slc/T{tag}-001/up/telemetry", DATASHEET_REPORT)
    await eventually(lambda: len(sink.items) == 1)
    reading = sink.items[0]
    assert (reading.device, reading.ts, reading.seq, reading.flags) == (
        f"t{tag.lower()}-001",
        1764180000,
        17,
        set(),
    )
    assert reading.values == {
        "on": 1, "level": 60, "voltage": 221.3, "current": 0.42, "power": 90.6, "pf": 0.96,
        "energy_kwh": 1234.5, "temperature": 38.2, "hours": 5120,
    }  # fmt: skip


async def test_a_concentrator_batch_sent_with_mosquitto_pub_is_read(
    start_driver: Start, mqtt_broker: BrokerAddress, tag: str
) -> None:
    ids = (f"t{tag.lower()}-001", f"t{tag.lower()}-002")
    conc = Concentrator(f"c{tag.lower()}", "gw", f"C{tag}", 60, 0, 0, ids)
    _, sink = await start_driver([lamp(tag, 1, conc.id), lamp(tag, 2, conc.id)], [conc])
    batch = (
        f'{{"ts": 1764180000, "lamps": [{{"dev": "T{tag}-001", "ts": 1764179990, "seq": 5, "on": false, "level": 0,'
        f' "v": 219.0, "i": 0, "p": 0, "pf": 0, "e": 10.0, "t": 20.5, "hours": 3, "alarm": 0}},'
        f' {{"dev": "T{tag}-002", "ts": 1764179995, "seq": 6, "on": true, "level": 100, "v": 220.0, "i": 0.47,'
        f' "p": 100.5, "pf": 0.97, "e": 11.0, "t": 30.0, "hours": 4, "alarm": 16}}]}}'
    )
    await mosquitto_pub(mqtt_broker, f"slc/gw/C{tag}/up/telemetry", batch)
    await mosquitto_pub(mqtt_broker, f"slc/gw/C{tag}/up/telemetry", '{"ts": 1764180060, "lamps": []}')
    await eventually(lambda: len(sink.items) == 2)
    first, second = sink.items
    assert (first.device, first.ts, first.values["power"]) == (ids[0], 1764179990, 0)
    assert (second.device, second.values["power"], second.flags) == (ids[1], 100.5, {"tilt"})


async def test_a_command_read_by_mosquitto_sub_matches_the_datasheet(
    start_driver: Start, mqtt_broker: BrokerAddress, tag: str
) -> None:
    driver, _ = await start_driver([lamp(tag, 1)], ack_timeout_s=1)
    device = f"t{tag.lower()}-001"
    async with mosquitto_sub(mqtt_broker, f"slc/T{tag}-001/down/cmd", count=3) as lines:
        await asyncio.gather(  # published in this order; nobody answers, so each times out after 1 s
            driver.send(device, DesiredState(on=True, level=60)),
            driver.send(device, DesiredState(on=False, level=60)),
            driver.request_report(device),
        )
    commands = []
    for line in lines:
        qos, retain, topic, payload = line.split(" ", 3)
        assert (qos, retain, topic) == ("1", "0", f"slc/T{tag}-001/down/cmd")
        commands.append(orjson.loads(payload))
    ids = [c.pop("id") for c in commands]
    assert all(isinstance(i, str) and 1 <= len(i) <= 64 for i in ids)
    assert len(set(ids)) == 3
    assert commands == [{"on": True, "level": 60}, {"on": False}, {"get": True}]


async def test_an_ack_from_mosquitto_pub_confirms_the_command(
    start_driver: Start, mqtt_broker: BrokerAddress, tag: str
) -> None:
    driver, _ = await start_driver([lamp(tag, 1)], ack_timeout_s=8)
    async with mosquitto_sub(mqtt_broker, f"slc/T{tag}-001/down/cmd") as lines:
        task = asyncio.create_task(driver.send(f"t{tag.lower()}-001", DesiredState(on=True, level=25)))
    command = orjson.loads(lines[0].split(" ", 3)[3])
    started = time.monotonic()
    await mosquitto_pub(
        mqtt_broker,
        f"slc/T{tag}-001/up/ack",
        f'{{"id": "{command["id"]}", "ok": true, "on": true, "level": 25}}',
        "-q",
        "1",
    )
    result = await task
    assert (result.ok, result.confirmed_by, result.command_id) == (True, "ack", command["id"])
    assert time.monotonic() - started < 5


async def test_northbound_state_read_by_mosquitto_sub_is_retained(
    start_driver: Start, mqtt_broker: BrokerAddress, tag: str
) -> None:
    site = f"site-{tag.lower()}"
    driver, _ = await start_driver([lamp(tag, 1)])
    driver.publish_state("zs-010", b'{"on":false,"power_w":0.0}')
    driver.publish_availability("zs-010", True)
    await asyncio.sleep(0.2)
    async with mosquitto_sub(mqtt_broker, f"lightctl/{site}/zs-010/+", count=2) as lines:
        pass
    try:
        got = {
            topic: (qos, retain, payload)
            for qos, retain, topic, payload in (ln.split(" ", 3) for ln in lines)
        }
        assert (
            got
            == {
                f"lightctl/{site}/zs-010/state": ("0", "1", '{"on":false,"power_w":0.0}'),  # retained, QoS 0
                f"lightctl/{site}/zs-010/availability": ("1", "1", '{"state":"online"}'),  # retained, QoS 1
            }
            or mqtt_broker.kind == "amqtt"
        )  # amqtt hands retained QoS 0 messages out at QoS 1
        assert {(retain, payload) for _, retain, payload in got.values()} == {
            ("1", '{"on":false,"power_w":0.0}'),
            ("1", '{"state":"online"}'),
        }
    finally:
        for leaf in ("state", "availability"):
            await mosquitto_pub(mqtt_broker, f"lightctl/{site}/zs-010/{leaf}", None, "-r")


@pytest.mark.parametrize("payload", ["offline", "online"])
async def test_state_payloads_from_mosquitto_pub(
    start_driver: Start, mqtt_broker: BrokerAddress, tag: str, payload: str
) -> None:
    _, sink = await start_driver([lamp(tag, 1)])
    await mosquitto_pub(mqtt_broker, f"slc/T{tag}-001/up/state", payload, "-q", "1")
    await eventually(lambda: len(sink.events) == 1)
    assert sink.events[0][:2] == (f"t{tag.lower()}-001", payload == "online")
