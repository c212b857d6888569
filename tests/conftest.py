"""Fixtures for real servers (tests/servers.py); sub-directory conftest files add their own."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests import servers

SHARED_MQTT = ("127.0.0.1", 1883)


@pytest.fixture(scope="session")
def mqtt_broker() -> Iterator[servers.BrokerAddress]:
    """An MQTT broker shared by the whole session: never stop or restart it (use `mosquitto`).

    The shared Mosquitto on 127.0.0.1:1883 if it answers, else the embedded amqtt broker (MQTT 3.1.1
    only: tests of MQTT 5 features should check `.kind`). LIGHTCTL_TEST_MQTT=amqtt forces amqtt.
    """
    forced = os.environ.get("LIGHTCTL_TEST_MQTT", "")
    if forced != "amqtt" and servers.mqtt_ping(*SHARED_MQTT):
        # Simulated lamps leave retained `online` states behind. Mosquitto queues at most 1,000
        # messages for a subscriber (max_queued_messages), retained ones included: with more left
        # over from earlier runs, a test's own retained state can be dropped before it arrives.
        _clear_retained(*SHARED_MQTT, "slc/#")
        yield servers.BrokerAddress(*SHARED_MQTT, kind="mosquitto")
        _clear_retained(*SHARED_MQTT, "slc/#")
        return
    if forced == "mosquitto":
        pytest.fail(f"LIGHTCTL_TEST_MQTT=mosquitto but no Mosquitto answers on {SHARED_MQTT}")
    with servers.EmbeddedBroker() as broker:
        yield servers.BrokerAddress(broker.host, broker.port, kind="amqtt")


def _clear_retained(host: str, port: int, topic: str, listen_s: float = 2.0) -> None:
    import time

    import paho.mqtt.client as mqtt

    found: set[str] = set()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, msg: found.add(msg.topic) if msg.retain else None
    client.connect(host, port)
    client.loop_start()
    try:
        client.subscribe(topic, qos=0)
        time.sleep(listen_s)
        client.unsubscribe(topic)
        for name in found:
            client.publish(name, b"", qos=1, retain=True).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.fixture
def mosquitto() -> Iterator[servers.Mosquitto]:
    """A private Mosquitto on a free port, which the test may stop, kill and restart."""
    with servers.Mosquitto() as server:
        yield server


@pytest.fixture
def victoria_metrics() -> Iterator[servers.VictoriaMetrics]:
    with servers.VictoriaMetrics() as server:
        yield server


@pytest.fixture
def influxdb() -> Iterator[servers.InfluxDB]:
    # Function scope: influxd 1.6 starts in ~0.2 s, cheap enough to give each test a clean server.
    with servers.InfluxDB() as server:
        yield server


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # A skip reused from a cached fixture (or reported by an xdist worker) never passes through
    # `require` here, so collect the tests from the reports too.
    skipped: dict[str, set[str]] = {message: set(ids) for message, ids in servers.MISSING.items()}
    for report in terminalreporter.stats.get("skipped", []):
        reason = _skip_reason(report)
        if servers.SKIP_MARKER in reason:
            message = reason.split(f"{servers.SKIP_MARKER} !!! ", 1)[-1]
            skipped.setdefault(message, set()).add(report.nodeid)
    if not skipped:
        return
    count = len(set().union(*skipped.values()) - {""})
    terminalreporter.write_sep(
        "!", f"SKIPPED BECAUSE A SERVER IS MISSING: {count} test(s)", red=True, bold=True
    )
    for message, ids in skipped.items():
        terminalreporter.write_line(f"!!! {message}", red=True, bold=True)
        for test_id in sorted(ids - {""}):
            terminalreporter.write_line(f"      {test_id}")
    terminalreporter.write_sep("!", "install them: sudo scripts/install-system-deps.sh", red=True, bold=True)
