"""Connection handling against private brokers: restarts, MQTT 3.1.1 and 5, passwords, TLS, amqtt."""

# ruff: noqa: F811 - the fixtures come from test_mqtt_driver (a test may not define a conftest here)

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from lightctl.clock import Clock, ScaledClock, SystemClock
from lightctl.config.settings import Mqtt, Tls
from lightctl.drivers.mqtt import MqttDriver
from lightctl.drivers.sink import CollectingSink
from lightctl.embedded_broker import start_embedded_broker
from lightctl.model import DesiredState, Device
from lightctl.profiles import Profile
from lightctl.sim.slc import SlcFleet
from tests import servers
from tests.drivers.test_mqtt_driver import Probe, eventually, lamp, profiles, tag  # noqa: F401

Make = Callable[..., Awaitable[tuple[MqttDriver, CollectingSink]]]


@pytest.fixture
async def make_driver(profiles: dict[str, Profile], tag: str) -> AsyncIterator[Make]:
    """A driver on any broker; it is not required to connect (some tests expect it not to)."""
    drivers: list[MqttDriver] = []

    async def make(
        port: int, devices: list[Device], clock: Clock | None = None, **settings: Any
    ) -> tuple[MqttDriver, CollectingSink]:
        sink = CollectingSink()
        conf = Mqtt(port=port, client_id=f"lightctl-conn-{tag}-{len(drivers)}", ack_timeout_s=3, **settings)
        driver = MqttDriver(conf, "conn-test", devices, [], profiles, sink, clock or SystemClock())
        drivers.append(driver)
        await driver.start()
        return driver, sink

    yield make
    for driver in drivers:
        await driver.stop()


async def test_broker_restart_mid_run_reconnects_resubscribes_and_resumes(
    mosquitto: servers.Mosquitto, make_driver: Make, profiles: dict[str, Profile], tag: str
) -> None:
    clock = ScaledClock(speed=60)  # lamps report every 60 clock s = every second
    lamps = [lamp(tag, n, report_s=60) for n in range(3)]
    driver, sink = await make_driver(mosquitto.port, lamps, clock, version="5")
    assert await driver.wait_connected(10)
    fleet = SlcFleet(lamps, [], profiles, mosquitto.host, mosquitto.port, clock, seed=5)
    await fleet.start()
    try:
        await eventually(lambda: {r.device for r in sink.items} == {d.id for d in lamps}, within=15)

        await asyncio.to_thread(mosquitto.stop)
        await eventually(lambda: not driver.connected)
        restarted = clock.now()
        await asyncio.to_thread(mosquitto.start)

        assert await driver.wait_connected(15)
        fresh = lambda: {r.device for r in sink.items if r.received > restarted}  # noqa: E731
        await eventually(lambda: fresh() == {d.id for d in lamps}, within=20)
        stats = driver.stats()
        assert (stats.connects, stats.disconnects) == (2, 1)

        await fleet.wait_ready(15)
        result = await driver.send(lamps[0].id, DesiredState(on=True, level=45))  # acks subscribed again
        assert result.ok, result.detail
        assert fleet.truth(lamps[0].id).level == 45

        # The restarted broker had no persistence: the bridge state was published again, retained.
        probe = await Probe(mosquitto.host, mosquitto.port).start("lightctl/conn-test/bridge/state")
        (msg,) = await probe.expect(lambda m: m.retain)
        assert orjson.loads(msg.payload) == {"state": "online"}
        await probe.stop()
    finally:
        await fleet.stop()


async def test_a_broker_killed_and_restarted_is_reconnected(
    mosquitto: servers.Mosquitto, make_driver: Make, tag: str
) -> None:
    driver, sink = await make_driver(mosquitto.port, [lamp(tag, 1)], version="3.1.1")
    assert await driver.wait_connected(10)
    await asyncio.to_thread(mosquitto.kill)
    await eventually(lambda: not driver.connected)
    await asyncio.to_thread(mosquitto.start)
    assert await driver.wait_connected(15)
    probe = await Probe(mosquitto.host, mosquitto.port).start()
    probe.publish(f"slc/T{tag}-001/up/telemetry", b'{"ts": 1764180000, "p": 7.5}')
    await eventually(lambda: len(sink.items) == 1)
    await probe.stop()


async def test_a_broker_down_at_start_is_waited_for(make_driver: Make, tag: str) -> None:
    broker = servers.Mosquitto()  # configured, not yet running
    try:
        driver, _ = await make_driver(broker.port, [lamp(tag, 1)])
        assert not await driver.wait_connected(0.8)
        assert driver.stats().last_error is not None
        await asyncio.to_thread(broker.start)
        assert await driver.wait_connected(15)
    finally:
        broker.close()


@pytest.mark.parametrize("version", ["3.1.1", "5"])
async def test_both_protocol_versions(
    mosquitto: servers.Mosquitto, make_driver: Make, profiles: dict[str, Profile], tag: str, version: str
) -> None:
    lamps = [lamp(tag, 1, report_s=60)]
    driver, sink = await make_driver(mosquitto.port, lamps, version=version)
    assert await driver.wait_connected(10)
    assert driver.stats().protocol == version
    fleet = SlcFleet(lamps, [], profiles, mosquitto.host, mosquitto.port, SystemClock(), noise=False)
    await fleet.start()
    try:
        result = await driver.send(lamps[0].id, DesiredState(on=True, level=100))
        assert result.ok, result.detail
        await eventually(
            lambda: any(r.values.get("power") == 100.5 for r in sink.items)
        )  # the report after it
    finally:
        await fleet.stop()


@pytest.mark.parametrize("version", ["3.1.1", pytest.param("5", marks=pytest.mark.slow)])
async def test_the_embedded_amqtt_broker_speaks_3_1_1_and_the_driver_falls_back(
    make_driver: Make, profiles: dict[str, Profile], tag: str, version: str
) -> None:
    broker = await start_embedded_broker()
    lamps = [lamp(tag, 1)]
    fleet = SlcFleet(lamps, [], profiles, broker.host, broker.port, SystemClock())
    try:
        driver, _ = await make_driver(broker.port, lamps, version=version)
        assert await driver.wait_connected(15)  # MQTT 5: amqtt never answers; 3.1.1 after a timeout
        assert driver.stats().protocol == "3.1.1"
        await fleet.start()
        result = await driver.send(lamps[0].id, DesiredState(on=True, level=10))
        assert result.ok, result.detail
    finally:
        await fleet.stop()
        await broker.stop()


async def test_username_and_password(tmp_path: Path, make_driver: Make, tag: str) -> None:
    passwd = servers.require("mosquitto_passwd", "Mosquitto")
    passwords = tmp_path / "passwd"
    await asyncio.to_thread(
        subprocess.run, [passwd, "-b", "-c", str(passwords), "lightctl", "s3cret"], check=True, timeout=10
    )
    with servers.Mosquitto(f"password_file {passwords}\n") as broker:
        good, _ = await make_driver(broker.port, [lamp(tag, 1)], username="lightctl", password="s3cret")
        bad, _ = await make_driver(broker.port, [lamp(tag, 2)], username="lightctl", password="wrong")
        anonymous, _ = await make_driver(broker.port, [lamp(tag, 3)])
        assert await good.wait_connected(10)
        assert not await bad.wait_connected(1.5)
        assert not anonymous.connected
        assert re.search("not authori|password", bad.stats().last_error or "", re.IGNORECASE)
        assert bad.stats().connects == 0


def _openssl(*args: str) -> None:
    openssl = servers.require("openssl", "OpenSSL")
    subprocess.run([openssl, *args], check=True, capture_output=True, timeout=30)


def _pki(d: Path) -> dict[str, Path]:
    """A CA, and a server (127.0.0.1) and a client certificate it signed."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-days",
        "1",
        "-subj",
        "/CN=lightctl test CA",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.crt"),
    )
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=lightctl")):
        _openssl(
            "req", *ec, "-subj", subject, "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr")
        )
        ext = ["-extfile", str(d / "server.ext")] if name == "server" else []
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
                 "-CAcreateserial", "-days", "1", "-out", str(d / f"{name}.crt"), *ext)  # fmt: skip
    _openssl(
        "req",
        "-x509",
        *ec,
        "-days",
        "1",
        "-subj",
        "/CN=other CA",
        "-keyout",
        str(d / "other.key"),
        "-out",
        str(d / "other.crt"),
    )
    names = ("ca", "server", "client", "other")
    return {n: d / f"{n}.crt" for n in names} | {f"{n}_key": d / f"{n}.key" for n in names}


async def test_tls_with_a_ca_and_a_client_certificate(tmp_path: Path, make_driver: Make, tag: str) -> None:
    pki = _pki(tmp_path)
    conf = (
        f"listener {{tls_port}} 127.0.0.1\ncafile {pki['ca']}\ncertfile {pki['server']}\n"
        f"keyfile {pki['server_key']}\nrequire_certificate true\n"
    )
    with servers.Mosquitto(conf) as broker:
        port = broker.ports["tls_port"]
        tls = Tls(ca=str(pki["ca"]), cert=str(pki["client"]), key=str(pki["client_key"]))
        good, sink = await make_driver(port, [lamp(tag, 1)], tls=tls)
        no_client_cert, _ = await make_driver(port, [lamp(tag, 2)], tls=Tls(ca=str(pki["ca"])))
        wrong_ca, _ = await make_driver(
            port,
            [lamp(tag, 3)],
            tls=Tls(ca=str(pki["other"]), cert=str(pki["client"]), key=str(pki["client_key"])),
        )
        assert await good.wait_connected(10)
        probe = await Probe(broker.host, broker.port).start()  # the plain listener of the same broker
        probe.publish(f"slc/T{tag}-001/up/telemetry", b'{"ts": 1764180000, "p": 3.25}')
        await eventually(lambda: len(sink.items) == 1)
        await probe.stop()
        started = time.monotonic()
        await eventually(
            lambda: wrong_ca.stats().last_error is not None and no_client_cert.stats().last_error is not None
        )
        assert "CERTIFICATE_VERIFY_FAILED" in (wrong_ca.stats().last_error or "")
        assert not no_client_cert.connected
        assert not wrong_ca.connected
        assert time.monotonic() - started < 10


def test_tls_files_that_do_not_exist_are_a_clear_error(profiles: dict[str, Profile], tmp_path: Path) -> None:
    conf = Mqtt(tls=Tls(ca=str(tmp_path / "missing-ca.crt")))
    with pytest.raises(ValueError, match=r"mqtt\.tls\.ca: file not found"):
        MqttDriver(conf, "x", [], [], profiles, CollectingSink(), SystemClock())


async def test_what_was_queued_while_disconnected_goes_out_after_reconnecting(
    mosquitto: servers.Mosquitto, make_driver: Make, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hold the driver's first reconnect back, so that a probe is listening before it returns.
    monkeypatch.setattr("lightctl.drivers.mqtt_client.BACKOFF_INITIAL_S", 2.5)
    driver, _ = await make_driver(mosquitto.port, [lamp(tag, 1)], version="5")
    reconnects: list[bool] = []
    driver.add_connected_listener(lambda: reconnects.append(driver.connected))
    assert await driver.wait_connected(10)
    await asyncio.to_thread(mosquitto.stop)
    await eventually(lambda: not driver.connected)
    assert driver.publish_alarm(b'{"type": "pole_tilt", "device": "ha-001"}')  # queued
    assert driver.publish_availability("ha-001", False)  # queued
    assert not driver.publish_state("ha-001", b'{"on": true}')  # QoS 0: refused, not kept
    await asyncio.to_thread(mosquitto.start)
    probe = await Probe(mosquitto.host, mosquitto.port).start("lightctl/conn-test/#")
    assert not driver.connected
    assert await driver.wait_connected(15)
    await probe.expect(lambda m: True, count=3)  # bridge online, alarm, availability
    await asyncio.sleep(0.3)  # and nothing else
    topics = {m.topic: orjson.loads(m.payload) for m in probe.messages}
    assert topics == {
        "lightctl/conn-test/bridge/state": {"state": "online"},
        "lightctl/conn-test/alarms": {"type": "pole_tilt", "device": "ha-001"},
        "lightctl/conn-test/ha-001/availability": {"state": "offline"},
    }
    # The listeners (northbound) hear of both connects, so they can publish retained topics again.
    assert reconnects == [True, True]
    await probe.stop()


async def test_packets_made_in_one_turn_leave_in_one_write_and_in_order(
    mosquitto: servers.Mosquitto, make_driver: Make, tag: str
) -> None:
    from tests.reliability.wire import MqttRecorder

    driver, _ = await make_driver(mosquitto.port, [lamp(tag, 0)])
    assert await driver.wait_connected(10)
    corked = driver._conn._client._connection._protocol._transport  # type: ignore[union-attr]
    assert corked is driver._conn._client._connection._transport  # type: ignore[union-attr]
    writes: list[int] = []
    real_write = corked._transport.write
    corked._transport.write = lambda data: (writes.append(len(data)), real_write(data))
    topic = f"cork-{tag}/seq"
    recorder = MqttRecorder(mosquitto.port, topics=(f"cork-{tag}/#",))
    try:
        for n in range(300):  # one turn: no await in between
            driver._conn.publish(topic, str(n).encode(), qos=0)  # QoS 1 would wait for the receive window
        await asyncio.sleep(0.2)
        assert len(writes) == 1, writes
        await eventually(lambda: len(recorder.messages) >= 300, 10)
        assert [int(p) for _, _, p in recorder.messages] == list(range(300))
    finally:
        recorder.close()
