"""Hypothesis-generated MQTT payloads published to a running `lightctl serve` over a real broker:
it stays healthy, every telemetry message is either a reading or a counted drop (GET
/api/v1/health `dropped_payloads`, /metrics `lightctl_readings_total`), and a good report after the
storm is still taken. (tests/drivers/test_mqtt_codec.py fuzzes the codec in-process; this is the
same garbage through the broker, the client, the driver's routing and the whole service.)"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import servers
from tests.reliability.conftest import MakeRig
from tests.reliability.harness import HOST, Inventory, Rig

FIELDS = [
    "ts",
    "seq",
    "on",
    "level",
    "v",
    "i",
    "p",
    "pf",
    "e",
    "t",
    "hours",
    "alarm",
    "dev",
    "lamps",
    "id",
    "ok",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=8,
)
objects = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), json_values, max_size=14)
near_valid = st.fixed_dictionaries(
    {"ts": st.integers(0, 2**32) | scalars},
    optional={
        "seq": st.integers(-1, 65536) | scalars,
        "on": st.booleans() | scalars,
        "level": st.integers(-1, 101) | scalars,
        "v": st.floats(-1, 501) | scalars,
        "p": st.floats(-1, 10001) | scalars,
        "pf": st.floats(-0.1, 1.1) | scalars,
        "e": st.floats(-1, 1e9) | scalars,
        "t": st.floats(-61, 201) | scalars,
        "alarm": st.integers(-1, 2**32) | scalars,
    },
)


def _dumps(value: Any) -> bytes:
    """JSON, or (for integers JSON libraries refuse, beyond 64 bits) Python's repr: garbage too."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return repr(value).encode()


payloads = st.one_of(
    near_valid.map(_dumps),
    objects.map(_dumps),
    json_values.map(_dumps),
    st.binary(max_size=200),
    st.text(max_size=60).map(str.encode),
    objects.map(_dumps).map(lambda b: b[: len(b) // 2]),
    st.just(b"9" * 5000),  # a huge number
    st.just(b"[" * 2000),  # deep nesting
)
batches = st.fixed_dictionaries(
    {
        "ts": scalars,
        "lamps": st.lists(objects | near_valid.map(lambda r: {"dev": "HCX-001", **r}), max_size=6),
    }
).map(_dumps)

DIRECT = [f"HA-{n:03d}" for n in range(1, 6)]
OTHER_TOPICS = st.sampled_from(
    [
        "slc/HA-001/up/ack",
        "slc/HA-002/up/state",
        "slc/gw/HCX-GW01/up/telemetry",
        "slc/gw/HCX-GW01/up/state",
        "slc/NOBODY/up/telemetry",
        "slc/HCX-003/up/telemetry",
        "slc/HA-001/up/unknown",
    ]
)
FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


@pytest.mark.slow
def test_fuzzed_payloads_through_the_broker_are_counted_and_survived(
    make_rig: MakeRig, mosquitto: servers.Mosquitto
) -> None:
    # No simulator: every reading lightctl counts comes from this test. Telemetry at QoS 1 so the
    # broker delivers every fuzzed message; what lightctl then does with it is what is tested.
    rig = make_rig(mosquitto.port, inventory=Inventory(gateways=1, units=2), mqtt={"telemetry_qos": 1})
    rig.start_serve()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="rel-fuzzer")
    client.connect(HOST, mosquitto.port, keepalive=30)
    client.loop_start()
    try:
        _fuzz(rig, client)
    finally:
        client.loop_stop()
        client.disconnect()


def _fuzz(rig: Rig, client: paho.Client) -> None:
    readings0, drops0 = _readings(rig), _drops(rig)
    telemetry_sent = [0]

    @FUZZ
    @given(batch=st.lists(st.tuples(st.sampled_from(DIRECT), payloads), min_size=10, max_size=10))
    def telemetry(batch: list[tuple[str, bytes]]) -> None:
        for dev, payload in batch:
            client.publish(f"slc/{dev}/up/telemetry", payload, qos=1).wait_for_publish(5)
            telemetry_sent[0] += 1

    telemetry()
    assert telemetry_sent[0] >= 200
    # One report in, one reading or one counted drop out: nothing silently lost, nothing doubled.
    accounted = rig.within(
        lambda: _readings(rig) - readings0 + _drops(rig) - drops0 == telemetry_sent[0], 20, every=0.5
    )
    got = (_readings(rig) - readings0, _drops(rig) - drops0)
    assert accounted is not None, (
        f"{telemetry_sent[0]} telemetry messages published; lightctl counted {got[0]} readings + {got[1]} drops"
        f"\n{rig.serve.tail(20)}"
    )
    assert got[0] > 0, "no fuzzed report was valid: the generator is too narrow"
    assert got[1] > 0, "no fuzzed report was dropped: the generator is too narrow"

    other_sent = [0]

    @FUZZ
    @given(batch=st.lists(st.tuples(OTHER_TOPICS, payloads | batches), min_size=10, max_size=10))
    def others(batch: list[tuple[str, bytes]]) -> None:
        for topic, payload in batch:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
            other_sent[0] += 1

    drops1 = _drops(rig)
    others()
    assert other_sent[0] >= 200
    rig.wait_for(
        lambda: _drops(rig) > drops1, timeout=10, what="drops of the fuzzed acks, states and batches"
    )
    health = rig.health()
    assert health["status"] == "ok"
    reasons = health["dropped_payloads"]["mqtt"]
    assert {"not_json", "bad_shape", "unknown_device"} <= set(reasons), reasons
    assert "internal_error" not in reasons, reasons
    assert rig.serve.running

    # Still listening: a good report after the storm updates the lamp.
    report = {"ts": int(time.time()), "seq": 4242, "on": True, "level": 42, "v": 221.0, "p": 63.5, "alarm": 0}
    client.publish("slc/HA-003/up/telemetry", orjson.dumps(report), qos=1).wait_for_publish(5)
    rig.wait_for(lambda: rig.get("/devices/ha-003")["level"] == 42, timeout=10, what="a valid report taken")
    log = rig.serve.log_path.read_text(errors="replace")
    for crash in (
        "mqtt: message on",
        "mqtt: sink",
        "ERROR lightctl.drivers",
        "Task exception was never retrieved",
    ):
        assert crash not in log, rig.serve.tail(60)


def _readings(rig: Rig) -> int:
    match = re.search(r"^lightctl_readings_total (\S+)$", rig.metrics(), re.MULTILINE)
    assert match, "lightctl_readings_total missing from /metrics"
    return int(float(match.group(1)))


def _drops(rig: Rig) -> int:
    return sum(rig.health()["dropped_payloads"].get("mqtt", {}).values())
