"""SLC-M1 payloads as the datasheet writes them, validated by the profile-driven codec (no broker).

Expected values are written out from devices.md, not read from the profile, so a wrong profile
fails here too.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightctl.clock import ManualClock
from lightctl.config.settings import Mqtt
from lightctl.drivers.mqtt import MqttDriver
from lightctl.drivers.mqtt_codec import Invalid, MqttCodec, parse_json
from lightctl.drivers.sink import CollectingSink
from lightctl.model import Concentrator, Device
from lightctl.profiles import Profile

PROFILES = Path(__file__).resolve().parents[2] / "devices" / "profiles"

# A report as devices.md section 1 describes it, every status bit set.
DATASHEET_REPORT = (
    b'{"ts": 1764180000, "seq": 4711, "on": true, "level": 60, "v": 221.3, "i": 0.42, "p": 90.6,'
    b' "pf": 0.96, "e": 1234.567, "t": 31.5, "hours": 5120, "alarm": 31}'
)


@pytest.fixture(scope="module")
def profile() -> Profile:
    import yaml

    return Profile.model_validate(yaml.safe_load((PROFILES / "slc-m1.yaml").read_text()))


@pytest.fixture(scope="module")
def codec(profile: Profile) -> MqttCodec:
    assert profile.mqtt is not None
    return MqttCodec(profile.mqtt)


def decode(codec: MqttCodec, payload: bytes) -> object:
    return codec.reading("ha-001", parse_json(payload, codec.max_bytes), 5.0)


def reason(codec: MqttCodec, payload: bytes) -> str:
    with pytest.raises(Invalid) as caught:
        decode(codec, payload)
    return caught.value.reason


def test_datasheet_report_becomes_canonical_quantities_and_flags(codec: MqttCodec) -> None:
    reading = codec.reading("ha-001", parse_json(DATASHEET_REPORT, 65536), 1764180002.5)
    assert reading.device == "ha-001"
    assert reading.ts == 1764180000
    assert reading.seq == 4711
    assert reading.received == 1764180002.5
    assert reading.values == {
        "on": 1.0, "level": 60.0, "voltage": 221.3, "current": 0.42, "power": 90.6, "pf": 0.96,
        "energy_kwh": 1234.567, "temperature": 31.5, "hours": 5120.0,
    }  # fmt: skip
    assert reading.flags == {"lamp_fault", "relay_stuck", "driver_fault", "over_temperature", "tilt"}


@pytest.mark.parametrize(
    ("alarm", "flags"),
    [(0, set()), (1, {"lamp_fault"}), (2, {"relay_stuck"}), (4, {"driver_fault"}), (8, {"over_temperature"}),
     (16, {"tilt"}), (32, set()), (1 << 31, set())],
)  # fmt: skip
def test_each_status_bit_is_its_own_flag(codec: MqttCodec, alarm: int, flags: set[str]) -> None:
    payload = orjson.dumps({"ts": 1, "alarm": alarm})
    assert decode(codec, payload).flags == flags  # type: ignore[attr-defined]


def test_partial_report_is_kept_and_unknown_fields_ignored(codec: MqttCodec) -> None:
    reading = decode(codec, b'{"ts": 1764180000, "p": 12.5, "firmware_build": "x", "extra": [1]}')
    assert reading.values == {"power": 12.5}  # type: ignore[attr-defined]
    assert reading.seq is None  # type: ignore[attr-defined]


def test_integral_floats_are_integers_but_fractions_are_not(codec: MqttCodec) -> None:
    assert decode(codec, b'{"ts": 1764180000.0, "level": 60.0}').values["level"] == 60  # type: ignore[attr-defined]
    assert reason(codec, b'{"ts": 1, "level": 60.5}') == "bad_type"


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b'{"ts": 1, "level": "60"}', "bad_type"),
        (b'{"ts": 1, "level": true}', "bad_type"),
        (b'{"ts": 1, "on": 1}', "bad_type"),
        (b'{"ts": 1, "p": "90"}', "bad_type"),
        (b'{"ts": 1, "p": null}', "bad_type"),
        (b'{"ts": "now"}', "bad_type"),
        (b'{"ts": 1, "alarm": 1.5}', "bad_type"),
        (b'{"ts": 1, "level": 101}', "out_of_range"),
        (b'{"ts": 1, "level": -1}', "out_of_range"),
        (b'{"ts": 1, "pf": 1.2}', "out_of_range"),
        (b'{"ts": 1, "seq": 65536}', "out_of_range"),
        (b'{"ts": 1, "p": -3}', "out_of_range"),
        (b'{"ts": 1, "v": 1e9}', "out_of_range"),
        (b'{"ts": 1, "alarm": -1}', "out_of_range"),
        (b'{"ts": -5}', "out_of_range"),
        (b'{"seq": 1, "p": 3}', "missing_field"),
        (b"[1, 2]", "bad_shape"),
        (b'"online"', "bad_shape"),
        (b"{not json", "not_json"),
        (b"", "not_json"),
        (b'{"ts": 1, "p": NaN}', "not_json"),
        (b'{"ts": 1, "p": 1e400}', "not_json"),
        (b'\xff\xfe{"ts": 1}', "not_json"),
    ],
)
def test_bad_reports_are_refused_with_a_reason(codec: MqttCodec, payload: bytes, why: str) -> None:
    assert reason(codec, payload) == why


def test_payload_over_the_profile_limit(codec: MqttCodec) -> None:
    assert codec.max_bytes == 65536
    padding = b" " * (65536 - len(DATASHEET_REPORT))
    assert decode(codec, DATASHEET_REPORT + padding) is not None
    assert reason(codec, DATASHEET_REPORT + padding + b" ") == "payload_too_large"


def test_batch_of_200_lamps_and_one_too_many(codec: MqttCodec) -> None:
    lamps = [{"dev": f"HCX-{n:03d}", "ts": 1764179990, "p": float(n)} for n in range(200)]
    ts, entries = codec.batch(orjson.loads(orjson.dumps({"ts": 1764180000, "lamps": lamps})))
    assert ts == 1764180000
    assert [codec.batch_device(e) for e in entries] == [f"HCX-{n:03d}" for n in range(200)]
    with pytest.raises(Invalid, match="batch_too_large"):
        codec.batch({"ts": 1764180000, "lamps": [*lamps, lamps[0]]})
    assert codec.batch({"ts": 1764180000, "lamps": []}) == (1764180000, [])  # a heartbeat
    for bad in ({"ts": 1}, {"lamps": {}}, [], {"lamps": [], "ts": "x"}):
        with pytest.raises(Invalid):
            codec.batch(bad)
    for entry in ({"ts": 1}, {"dev": 7}, "HCX-001"):
        with pytest.raises(Invalid):
            codec.batch_device(entry)


def test_acks_as_the_datasheet_writes_them(codec: MqttCodec) -> None:
    ok = codec.ack(orjson.loads(b'{"id": "c-17", "ok": true, "on": true, "level": 60}'))
    assert (ok.command_id, ok.ok, ok.on, ok.level) == ("c-17", True, True, 60)
    refused = codec.ack(orjson.loads(b'{"id": "c-18", "ok": false, "err": "level out of range"}'))
    assert (refused.command_id, refused.ok, refused.err) == ("c-18", False, "level out of range")
    unreadable = codec.ack(orjson.loads(b'{"id": null, "ok": false, "err": "payload is not JSON"}'))
    assert unreadable.command_id is None
    for bad in (
        b'{"id": "x"}',
        b'{"id": 5, "ok": true}',
        b'{"id": "x", "ok": "yes"}',
        b'{"id": "x", "ok": true, "level": 300}',
    ):
        with pytest.raises(Invalid):
            codec.ack(orjson.loads(bad))


def test_commands_as_the_datasheet_writes_them(codec: MqttCodec) -> None:
    assert orjson.loads(codec.command("c-1", True, 60)) == {"id": "c-1", "on": True, "level": 60}
    assert orjson.loads(codec.command("c-2", False, None)) == {"id": "c-2", "on": False}
    assert orjson.loads(codec.get_command("c-3")) == {"id": "c-3", "get": True}


def test_state_payloads(codec: MqttCodec) -> None:
    assert codec.state(b"online") is True
    assert codec.state(b"offline") is False
    with pytest.raises(Invalid, match="bad_state"):
        codec.state(b'{"state": "online"}')


# --- fuzzing: nothing a device sends escapes as an exception, and every message is accounted for --

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
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=6,
)
objects = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), scalars | json_values, max_size=14)
# Reports close to valid, each field sometimes replaced by anything: the boundaries get exercised.
near_valid = st.fixed_dictionaries(
    {"ts": st.integers(0, 2**32) | scalars},
    optional={
        "seq": st.integers(-1, 65536) | scalars, "on": st.booleans() | scalars, "level": st.integers(-1, 101) | scalars,
        "v": st.floats(-1, 501) | scalars, "p": st.floats(-1, 10001) | scalars, "pf": st.floats(-0.1, 1.1) | scalars,
        "t": st.floats(-61, 201) | scalars, "alarm": st.integers(-1, 2**32) | scalars,
    },
)  # fmt: skip
payloads = st.one_of(
    near_valid.map(orjson.dumps),
    objects.map(orjson.dumps),
    json_values.map(orjson.dumps),
    st.binary(max_size=64),
    objects.map(orjson.dumps).map(lambda b: b[: len(b) // 2]),
)


# Eight payloads per example: 3,200 cases at a fraction of hypothesis' per-example cost.
FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(batch=st.lists(payloads, min_size=8, max_size=8))
def test_fuzzed_telemetry_is_a_reading_or_a_counted_reason(codec: MqttCodec, batch: list[bytes]) -> None:
    for payload in batch:
        try:
            reading = decode(codec, payload)
        except Invalid as exc:
            why = exc.reason
        else:
            why = "ok"
            assert reading.ts >= 0  # type: ignore[attr-defined]
        assert why in {"ok", "not_json", "bad_shape", "bad_type", "out_of_range", "missing_field"}


@pytest.fixture(scope="module")
def fuzz_driver(profile: Profile) -> tuple[MqttDriver, CollectingSink]:
    lamps = [
        Device(id=f"fz-{n}", kind="lamp", name="fz", profile="slc-m1", lat=0, lon=0, rated_w=100,
               dimmable=True, mqtt_id=f"FZ-{n}", concentrator="fz-gw" if n >= 2 else None)
        for n in range(4)
    ]  # fmt: skip
    conc = Concentrator("fz-gw", "fz", "FZ-GW", 60, 0, 0, ("fz-2", "fz-3"))
    sink = CollectingSink()
    clock = ManualClock(1764180000)
    return MqttDriver(Mqtt(), "fuzz", lamps, [conc], {"slc-m1": profile}, sink, clock), sink


TOPICS = [
    "slc/FZ-0/up/telemetry", "slc/FZ-1/up/ack", "slc/FZ-0/up/state", "slc/gw/FZ-GW/up/telemetry",
    "slc/gw/FZ-GW/up/state", "slc/NOBODY/up/telemetry", "slc/FZ-2/up/telemetry",
]  # fmt: skip
devs = st.sampled_from(["FZ-2", "FZ-3", "FZ-9"]) | scalars
batch_entries = st.lists(objects | st.builds(lambda d, r: {"dev": d, **r}, devs, near_valid), max_size=5)
batches = st.fixed_dictionaries({"ts": scalars, "lamps": batch_entries}).map(orjson.dumps)


@FUZZ
@given(messages=st.lists(st.tuples(st.sampled_from(TOPICS), payloads | batches), min_size=8, max_size=8))
def test_fuzzed_messages_never_escape_the_driver(
    fuzz_driver: tuple[MqttDriver, CollectingSink], messages: list[tuple[str, bytes]]
) -> None:
    driver, sink = fuzz_driver
    for topic, payload in messages:
        before_drops, before_readings = driver.drops.total(), driver.readings
        driver.ingest(topic, payload)  # must not raise
        assert "internal_error" not in driver.drops.by_reason
        new_drops, new_readings = driver.drops.total() - before_drops, driver.readings - before_readings
        if topic.endswith("/up/telemetry") and "/gw/" not in topic:
            assert new_drops + new_readings == 1  # one report: kept or counted, never both, never lost
    assert len(sink.items) == driver.readings


def test_fuzzing_reached_both_readings_and_every_kind_of_drop(
    fuzz_driver: tuple[MqttDriver, CollectingSink],
) -> None:
    # Runs after the fuzz test (same module-scoped driver): the generator must not be so narrow that
    # it only ever produced garbage, or only ever valid reports.
    driver, _ = fuzz_driver
    if driver.messages < 1000:
        pytest.skip("run together with test_fuzzed_messages_never_escape_the_driver")
    assert driver.readings > 50
    assert {"not_json", "bad_shape", "bad_type", "out_of_range", "unknown_device", "bad_state"} <= set(
        driver.drops.by_reason
    )
