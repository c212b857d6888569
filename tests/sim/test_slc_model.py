"""The simulated SLC-M1 against its datasheet (devices.md section 1), without a broker.

Expected figures are the datasheet's, written out here (not read from the profile the simulator
uses), so a wrong profile or a wrong model both fail.
"""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest
import yaml

from lightctl.profiles import Profile
from lightctl.sim.slc_faults import ActiveFault, Fault, FaultOrder, parse_duration, parse_faults
from lightctl.sim.slc_model import SimLamp, WireNames

PROFILE = Path(__file__).resolve().parents[2] / "devices" / "profiles" / "slc-m1.yaml"
T0 = 1_764_180_000.0
BITS = {"lamp_fault": 1, "relay_stuck": 2, "driver_fault": 4, "over_temperature": 8, "tilt": 16}


@pytest.fixture(scope="module")
def profile() -> Profile:
    return Profile.model_validate(yaml.safe_load(PROFILE.read_text()))


def make(
    profile: Profile, rated_w: float = 100, noise: bool = False, on: bool = False, seed: int = 1
) -> SimLamp:
    assert profile.mqtt is not None
    return SimLamp(
        "ha-001", "HA-001", rated_w, 60, T0, profile.electrical, WireNames.of(profile.mqtt),
        random.Random(seed), noise, T0, on=on,
    )  # fmt: skip


def command(lamp: SimLamp, body: object, at: float = T0) -> dict[str, object]:
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    ack, _ = lamp.command(payload, at)
    return ack


def pf_expected(level: float) -> float:
    """The datasheet's curve: 0.97 at 100 %, linear down to 0.90 at 30 % and to 0.87 at 0 %."""
    return 0.90 + 0.07 * (level - 30) / 70 if level >= 30 else 0.87 + 0.03 * level / 30


@pytest.mark.parametrize("level", [0, 1, 10, 29, 30, 31, 50, 65, 99, 100])
def test_power_pf_current_follow_the_datasheet(profile: Profile, level: int) -> None:
    lamp = make(profile, rated_w=150)
    assert command(lamp, {"id": "c1", "on": True, "level": level}) == {
        "id": "c1",
        "ok": True,
        "on": True,
        "level": level,
    }
    report = lamp.telemetry(T0 + 1)
    assert report["on"] is True
    assert report["level"] == level
    assert report["v"] == 220.0
    assert report["p"] == round(150 * level / 100 + 0.5, 1)
    assert report["pf"] == pytest.approx(pf_expected(level), abs=0.0005)
    i = 150 * level / 100 + 0.5
    assert report["i"] == pytest.approx(i / (220.0 * pf_expected(level)), rel=2e-3, abs=5e-4)  # 3 decimals
    assert report["alarm"] == 0


def test_relay_open_reads_zero_but_voltage(profile: Profile) -> None:
    lamp = make(profile, on=True)
    command(lamp, {"id": "c1", "on": False})
    report = lamp.telemetry(T0 + 1)
    assert (report["on"], report["level"], report["p"], report["i"], report["pf"]) == (False, 0, 0, 0, 0)
    assert report["v"] == 220.0


def test_noise_stays_within_the_datasheet_bounds_and_uses_them(profile: Profile) -> None:
    lamp = make(profile, rated_w=100, noise=True, on=True)
    reports = [lamp.telemetry(T0 + n) for n in range(3000)]
    p = [r["p"] for r in reports]
    v = [r["v"] for r in reports]
    pf = [r["pf"] for r in reports]
    t = [r["t"] for r in reports]
    nominal = 100.5
    assert nominal * 0.95 - 0.05 <= min(p) < nominal * 0.96  # type: ignore[type-var,operator]
    assert nominal * 1.04 < max(p) <= nominal * 1.05 + 0.05  # type: ignore[type-var,operator]
    assert 217.0 <= min(v) < 217.5  # type: ignore[type-var,operator]
    assert 222.5 < max(v) <= 223.0  # type: ignore[type-var,operator]
    assert 0.96 <= min(pf) < 0.962  # type: ignore[type-var,operator]
    assert 0.978 < max(pf) <= 0.98  # type: ignore[type-var,operator]
    assert max(t) - min(t) <= 2.0 + 0.1  # type: ignore[operator]
    assert len(set(p)) > 50


def test_energy_and_burning_hours_accumulate(profile: Profile) -> None:
    lamp = make(profile, rated_w=100, on=True)
    first = lamp.telemetry(T0)
    second = lamp.telemetry(T0 + 3600)
    assert second["e"] == pytest.approx(first["e"] + 0.1005, abs=0.0011)  # type: ignore[operator]
    assert second["hours"] - first["hours"] in (0, 1)  # type: ignore[operator]
    command(lamp, {"id": "c", "on": False}, at=T0 + 3600)
    third = lamp.telemetry(T0 + 7200)
    assert third["e"] == second["e"]


def test_seq_increments_by_one_and_wraps_at_65536(profile: Profile) -> None:
    lamp = make(profile)
    lamp.seq = 65533
    assert [lamp.telemetry(T0 + n)["seq"] for n in range(4)] == [65534, 65535, 0, 1]


REFUSED = [
    (b"not json", None),
    (b"[1, 2]", None),
    (b"", None),
    ({"on": True}, None),  # no id
    ({"id": 42, "on": True}, None),  # an id that is not a string cannot be echoed
    ({"id": "c9", "level": 50}, "c9"),  # on missing
    ({"id": "c9", "on": True, "level": 101}, "c9"),
    ({"id": "c9", "on": True, "level": -1}, "c9"),
    ({"id": "c9", "on": True, "level": 50.5}, "c9"),
    ({"id": "c9", "on": True, "level": "50"}, "c9"),
    ({"id": "c9", "on": True, "level": True}, "c9"),
    ({"id": "c9", "on": "yes"}, "c9"),
    ({"id": "c9", "on": 1}, "c9"),
    ({"id": "c9", "on": True, "colour": "red"}, "c9"),  # unknown field
    ({"id": "c9", "on": False, "level": 500}, "c9"),
    ({"id": "", "on": True}, ""),
    ({"id": "x" * 65, "on": True}, "x" * 65),
    ({"id": "c9", "get": False}, "c9"),
    ({"id": "c9", "get": True, "on": True}, "c9"),
]


@pytest.mark.parametrize(("body", "echo"), REFUSED)
def test_refused_commands_answer_ok_false_and_change_nothing(
    profile: Profile, body: object, echo: str | None
) -> None:
    lamp = make(profile, on=True)
    command(lamp, {"id": "c0", "on": True, "level": 40})
    before = (lamp.on, lamp.level, lamp.driver_level)
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    ack, report = lamp.command(payload, T0 + 1)
    assert set(ack) == {"id", "ok", "err"}
    assert (ack["id"], ack["ok"]) == (echo, False)
    assert isinstance(ack["err"], str)
    assert ack["err"]
    assert report is False
    assert (lamp.on, lamp.level, lamp.driver_level) == before


def test_off_with_a_level_is_valid_and_a_later_on_without_level_applies_100(profile: Profile) -> None:
    lamp = make(profile, on=True)
    command(lamp, {"id": "a", "on": True, "level": 30})
    assert command(lamp, {"id": "b", "on": False, "level": 50}) == {
        "id": "b",
        "ok": True,
        "on": False,
        "level": 0,
    }
    assert command(lamp, {"id": "c", "on": True}) == {"id": "c", "ok": True, "on": True, "level": 100}
    assert lamp.telemetry(T0 + 1)["p"] == 100.5


def test_on_at_level_zero_keeps_the_relay_closed_with_standby_power(profile: Profile) -> None:
    lamp = make(profile)
    command(lamp, {"id": "a", "on": True, "level": 0})
    report = lamp.telemetry(T0 + 1)
    assert (report["on"], report["level"], report["p"], report["pf"]) == (True, 0, 0.5, 0.87)


def test_get_acknowledges_with_the_current_state_and_asks_for_a_report(profile: Profile) -> None:
    lamp = make(profile)
    command(lamp, {"id": "a", "on": True, "level": 70})
    ack, report = lamp.command(b'{"id": "g1", "get": true}', T0 + 1)
    assert ack == {"id": "g1", "ok": True, "on": True, "level": 70}
    assert report is True


def inject(
    lamp: SimLamp, kind: Fault, start: float = T0, until: float | None = None, **params: float
) -> None:
    lamp.faults.append(ActiveFault(kind, start, until, params))


def test_a_relay_stuck_on_shows_in_bit1_and_the_power_not_in_on_or_level(profile: Profile) -> None:
    lamp = make(profile, rated_w=120)
    command(lamp, {"id": "a", "on": True, "level": 80})
    inject(lamp, Fault.RELAY_STUCK_ON)
    assert lamp.telemetry(T0 + 1)["alarm"] == 0  # nothing to notice while it is meant to be on
    assert command(lamp, {"id": "b", "on": False}, T0 + 2) == {"id": "b", "ok": True, "on": False, "level": 0}
    report = lamp.telemetry(T0 + 3)
    assert (report["on"], report["level"], report["alarm"]) == (False, 0, BITS["relay_stuck"])
    assert report["p"] == 120 * 0.8 + 0.5
    command(lamp, {"id": "c", "on": True, "level": 80}, T0 + 4)
    assert lamp.telemetry(T0 + 5)["alarm"] == BITS["relay_stuck"]  # latched once seen
    lamp.faults.clear()
    assert lamp.telemetry(T0 + 6)["alarm"] == 0


def test_a_relay_stuck_off_leaves_the_lamp_dark_while_commanded_on(profile: Profile) -> None:
    lamp = make(profile)
    inject(lamp, Fault.RELAY_STUCK_OFF)
    command(lamp, {"id": "a", "on": True, "level": 100})
    report = lamp.telemetry(T0 + 1)
    assert (report["on"], report["level"], report["alarm"]) == (True, 100, BITS["relay_stuck"])
    assert (report["p"], report["i"], report["pf"]) == (0, 0, 0)


@pytest.mark.parametrize(
    ("fault", "params", "check"),
    [
        (Fault.LAMP_FAILURE, {}, lambda r: r["alarm"] == 1 and r["p"] == 0.5),
        (Fault.LAMP_FAILURE, {"bit": 0}, lambda r: r["alarm"] == 0 and r["p"] == 0.5),
        (Fault.DRIVER_FAULT, {}, lambda r: r["alarm"] == 4 and r["p"] == 60.5),
        (Fault.OVER_TEMPERATURE, {}, lambda r: r["alarm"] == 8 and r["t"] == 85.0),
        (Fault.OVER_TEMPERATURE, {"t": 92}, lambda r: r["t"] == 92.0),
        (Fault.TILT, {}, lambda r: r["alarm"] == 16 and r["p"] == 60.5),
        (
            Fault.LOW_PF,
            {},
            lambda r: r["pf"] == 0.78 and r["i"] == pytest.approx(60.5 / (220 * 0.78), rel=2e-3),
        ),
        (Fault.VOLTAGE_HIGH, {}, lambda r: r["v"] == 252.0 and r["p"] == 60.5),
        (Fault.VOLTAGE_LOW, {"v": 185}, lambda r: r["v"] == 185.0),
    ],
)
def test_faults_appear_as_the_device_would_show_them(
    profile: Profile, fault: Fault, params: dict[str, float], check: object
) -> None:
    lamp = make(profile)
    command(lamp, {"id": "a", "on": True, "level": 60})
    healthy = lamp.telemetry(T0 + 1)
    assert healthy["alarm"] == 0
    inject(lamp, fault, start=T0 + 10, until=T0 + 20, **params)
    keys = ("alarm", "p", "pf", "v", "t")
    before = lamp.telemetry(T0 + 9)
    assert {k: before[k] for k in keys} == {k: healthy[k] for k in keys}  # not active yet
    if fault is Fault.DRIVER_FAULT:
        command(lamp, {"id": "b", "on": True, "level": 20}, T0 + 11)  # the driver no longer follows
    report = lamp.telemetry(T0 + 12)
    assert check(report), report  # type: ignore[operator]
    after = lamp.telemetry(T0 + 21)  # ended
    assert (after["alarm"], after["v"]) == (0, 220.0)
    if fault is Fault.DRIVER_FAULT:
        assert after["p"] == 20.5  # the driver answers again and takes the level commanded meanwhile
    else:
        assert after["t"] == healthy["t"]


def test_cycling_darkens_one_report_interval_in_four_without_a_command(profile: Profile) -> None:
    lamp = make(profile)
    command(lamp, {"id": "a", "on": True, "level": 100})
    inject(lamp, Fault.CYCLING)
    powers = [lamp.telemetry(T0 + 60 * n)["p"] for n in range(12)]
    assert powers == [100.5, 100.5, 100.5, 0.5] * 3
    assert {lamp.telemetry(T0 + 60 * 3 + 1)["on"]} == {True}


def test_the_truth_says_what_the_lamp_really_does(profile: Profile) -> None:
    lamp = make(profile, rated_w=90)
    command(lamp, {"id": "a", "on": False})
    inject(lamp, Fault.RELAY_STUCK_ON)
    truth = lamp.truth(T0 + 1, reachable=True)
    assert (truth.on, truth.relay_closed, truth.lit, truth.power_w) == (False, True, True, 90.5)
    assert truth.faults == (Fault.RELAY_STUCK_ON,)
    assert truth.flags == {"relay_stuck"}


def test_fault_spec_syntax() -> None:
    orders = parse_faults(
        "lamp_failure:ha-003, relay_stuck_off:ZS-010@+600,voltage_high:dz-004@+5m~30m;v=251,"
        "silence:hcx-plc-1@1764180000~1h,tilt:ha-009@2025-11-27T01:00:00+08:00"
    )
    assert orders == [
        FaultOrder("ha-003", Fault.LAMP_FAILURE),
        FaultOrder("ZS-010", Fault.RELAY_STUCK_OFF, after_s=600),
        FaultOrder("dz-004", Fault.VOLTAGE_HIGH, after_s=300, duration_s=1800, params=(("v", 251.0),)),
        FaultOrder("hcx-plc-1", Fault.SILENCE, at=1764180000, duration_s=3600),
        FaultOrder("ha-009", Fault.TILT, at=1764176400),
    ]
    assert parse_duration("2h") == 7200


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("lamp_fire:ha-001", "unknown fault 'lamp_fire'"),
        ("lamp_failure", "expected FAULT:TARGET"),
        ("tilt:ha-001@soon", "bad time 'soon'"),
        ("tilt:ha-001~forever", "bad duration"),
        ("voltage_high:ha-001;volts=250", "parameters of voltage_high: v"),
        ("voltage_high:ha-001;v=high", "needs a number"),
    ],
)
def test_bad_fault_specs_name_the_item_and_the_problem(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_faults(spec)
    assert spec.split(";")[0] in str(caught.value)


def test_a_relay_stuck_on_without_its_bit_burns_by_day_with_nothing_but_the_power(profile: Profile) -> None:
    lamp = make(profile, rated_w=120)
    command(lamp, {"id": "a", "on": True, "level": 80})
    inject(lamp, Fault.RELAY_STUCK_ON, bit=0)
    command(lamp, {"id": "b", "on": False}, T0 + 2)
    report = lamp.telemetry(T0 + 3)
    assert (report["on"], report["level"], report["alarm"]) == (False, 0, 0)  # a controller blind to it
    assert report["p"] == 120 * 0.8 + 0.5
    lamp.faults.clear()
    assert lamp.telemetry(T0 + 4)["p"] == 0


@pytest.mark.parametrize(("share", "level", "power"), [(0.5, 100, 50.5), (1.4, 100, 140.5), (0.5, 40, 20.5)])
def test_a_power_share_fault_draws_that_share_of_the_lamp_power(
    profile: Profile, share: float, level: int, power: float
) -> None:
    lamp = make(profile, rated_w=100)
    command(lamp, {"id": "a", "on": True, "level": level})
    inject(lamp, Fault.POWER_SHARE, start=T0 + 10, until=T0 + 20, share=share)
    assert lamp.telemetry(T0 + 9)["p"] == level + 0.5
    report = lamp.telemetry(T0 + 12)
    assert (report["on"], report["level"], report["alarm"], report["p"]) == (True, level, 0, power)
    assert lamp.telemetry(T0 + 21)["p"] == level + 0.5


def test_a_power_share_fault_counts_in_the_energy(profile: Profile) -> None:
    lamp = make(profile, rated_w=100)
    command(lamp, {"id": "a", "on": True, "level": 100})
    inject(lamp, Fault.POWER_SHARE, share=0.5)
    before = lamp.energy_kwh
    lamp.advance(T0 + 3600)
    assert lamp.energy_kwh - before == pytest.approx(0.0505)


def test_after_a_driver_fault_the_driver_takes_the_commanded_level_again(profile: Profile) -> None:
    lamp = make(profile, rated_w=100)
    command(lamp, {"id": "a", "on": True, "level": 100})
    inject(lamp, Fault.DRIVER_FAULT, start=T0 + 10, until=T0 + 20)
    command(lamp, {"id": "b", "on": True, "level": 50}, T0 + 11)
    during = lamp.telemetry(T0 + 12)
    assert (during["level"], during["p"], during["alarm"]) == (50, 100.5, 4)  # frozen at 100 %
    after = lamp.telemetry(T0 + 21)
    assert (after["level"], after["p"], after["alarm"]) == (50, 50.5, 0)  # resumed without a command
    command(lamp, {"id": "c", "on": False}, T0 + 22)
    command(lamp, {"id": "d", "on": True, "level": 30}, T0 + 23)
    assert lamp.telemetry(T0 + 24)["p"] == 30.5
