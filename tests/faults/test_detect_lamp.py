"""SLC-M1 rules, reading by reading: each rule fires when design.md section 4 says and not a report
earlier, never during the schedule's own transitions, and not just below its threshold."""

from __future__ import annotations

import random

import pytest

from lightctl.config.settings import Thresholds
from lightctl.model import DesiredState

from .factory import T0, Noise, Runner, context, intent, lamp, lamp_reading

ON100 = DesiredState(on=True, level=100)
OFF = DesiredState(on=False)


def runner(**kw: object) -> Runner:
    return Runner(context(lamp(**kw)))  # type: ignore[arg-type]


def night(noise: Noise, lag_s: float = 2.0) -> list[tuple[float, DesiredState, int | None, bool]]:
    """The arterial program as the lamp lives it: (time, desired, applied level or None=off, is_command_report)."""
    steps = [(0, DesiredState(on=True, level=100)), (5 * 3600, DesiredState(on=True, level=70))]
    steps += [(7 * 3600, DesiredState(on=True, level=50)), (11 * 3600, DesiredState(on=True, level=80))]
    steps += [(12.5 * 3600, DesiredState(on=False))]
    events: list[tuple[float, DesiredState, int | None, bool]] = []
    for n, (offset, state) in enumerate(steps):
        start = T0 + offset
        end = T0 + steps[n + 1][0] if n + 1 < len(steps) else start + 3 * 3600
        prev_level = steps[n - 1][1].level if n else None
        prev_on = steps[n - 1][1].on if n else False
        level = state.level if state.on else None
        # periodic reports land between the desired change and the command: still the old state
        t = start + 0.5
        while t < start + lag_s:
            events.append((t, state, prev_level if prev_on else None, False))
            t += 60
        # the report the lamp sends right after executing the command
        events.append((start + lag_s + 0.4, state, level, True))
        t = start + lag_s + 30 + noise.rng.uniform(0, 20)
        while t < end:
            events.append((t, state, level, False))
            t += 60 + noise.rng.uniform(-0.5, 0.5)
    return events


@pytest.mark.parametrize(("seed", "lag_s"), [(1, 2.0), (2, 2.0), (3, 2.0), (4, 200.0), (5, 200.0)])
def test_a_healthy_night_with_every_transition_raises_nothing(seed: int, lag_s: float) -> None:
    """lag_s: how long the command takes to land (200 s: three periodic reports still show the old state)."""
    noise = Noise(random.Random(seed))
    r = runner()
    changed: dict[int, float] = {}
    for ts, state, level, after_command in night(noise, lag_s):
        key = id(state)
        changed.setdefault(key, ts - 0.5)
        command_at = changed[key] + lag_s
        # as the engine sees it: the desired change at once, the command only once it has gone out
        desired = intent(state, changed[key], commanded_at=command_at if ts >= command_at else changed[key])
        on = level is not None
        reading = lamp_reading(ts, on=on, level=level or 0, noise=noise)
        assert r.feed(reading, desired) == set(), (ts - T0, level, after_command)
    assert r.raised == []


def test_lamp_failure_needs_two_reports_of_low_power() -> None:
    r = runner()
    desired = intent(ON100, T0 - 600)
    assert r.feed(lamp_reading(T0, power=0.5), desired) == set()
    assert r.feed(lamp_reading(T0 + 60, power=0.5), desired) == {"lamp_failure"}
    assert "25 %" in r.active["lamp_failure"] or "0%" in r.active["lamp_failure"]


def test_lamp_failure_just_below_the_threshold_is_a_dim_mismatch_not_a_failure() -> None:
    r = runner()
    desired = intent(ON100, T0 - 600)
    expected = 150 * 1.0 + 0.5
    for n in range(4):
        r.feed(lamp_reading(T0 + 60 * n, power=0.255 * expected), desired)
    assert "lamp_failure" not in r.active
    assert "dim_mismatch" in r.active
    r2 = runner()
    for n in range(2):
        r2.feed(lamp_reading(T0 + 60 * n, power=0.245 * expected), desired)
    assert "lamp_failure" in r2.active


def test_no_lamp_failure_below_four_watts_expected() -> None:
    r = runner()
    desired = intent(DesiredState(on=True, level=2), T0 - 600)  # 150 * 2 % + 0.5 = 3.5 W
    for n in range(5):
        r.feed(lamp_reading(T0 + 60 * n, level=2, power=0.0), desired)
    assert r.raised == []


def test_lamp_bit_raises_at_once_and_clears_after_two_healthy_reports() -> None:
    r = runner()
    desired = intent(ON100, T0 - 600)
    assert r.feed(lamp_reading(T0, power=0.5, flags=frozenset({"lamp_fault"})), desired) == {"lamp_failure"}
    assert r.feed(lamp_reading(T0 + 60), desired) == {"lamp_failure"}  # one healthy report is not enough
    assert r.feed(lamp_reading(T0 + 120), desired) == set()
    assert r.cleared == [("lamp_failure", T0 + 120)]


def test_clear_and_re_raise_cycle() -> None:
    r = runner()
    desired = intent(ON100, T0 - 600)
    t = T0
    for cycle in range(3):
        for _ in range(2):
            r.feed(lamp_reading(t, power=0.5), desired)
            t += 60
        assert "lamp_failure" in r.active, cycle
        r.feed(lamp_reading(t), desired)  # one healthy report, then faulty again: still active
        t += 60
        r.feed(lamp_reading(t, power=0.5), desired)
        t += 60
        assert "lamp_failure" in r.active
        for _ in range(2):
            r.feed(lamp_reading(t), desired)
            t += 60
        assert "lamp_failure" not in r.active
    assert [x for x, _ in r.raised if x == "lamp_failure"] == ["lamp_failure"] * 3
    assert [x for x, _ in r.cleared if x == "lamp_failure"] == ["lamp_failure"] * 3
    assert "cycling" in r.raised_types()  # dark -> lit on its own three times in 30 min: it is cycling


def test_no_judgement_while_the_lamp_has_not_applied_the_command() -> None:
    r = runner()
    desired = intent(DesiredState(on=True, level=70), T0, commanded_at=T0 + 1)
    # the lamp still says level 100 and draws for 100: not a mismatch, the command has not landed
    for n in range(5):
        r.feed(lamp_reading(T0 + 10 + 60 * n, level=100), desired)
    # a lamp that missed the switch-on (broker outage): off while meant to be on is not a failure
    r2 = runner()
    for n in range(5):
        r2.feed(lamp_reading(T0 + 10 + 60 * n, on=False), intent(ON100, T0))
    assert r.raised == []
    assert r2.raised == []


def test_readings_within_the_command_grace_are_not_judged() -> None:
    r = runner()
    desired = intent(DesiredState(on=True, level=70), T0, commanded_at=T0)
    # level already 70 but the power not settled yet: within 5 s of the command
    r.feed(lamp_reading(T0 + 1, level=70, power=150.5), desired)
    r.feed(lamp_reading(T0 + 4, level=70, power=150.5), desired)
    assert r.raised == []
    assert "dim_mismatch" not in (r.window.streaks or {})


def test_dim_mismatch_band_edges() -> None:
    desired = intent(DesiredState(on=True, level=70), T0 - 600)
    expected = 150 * 0.7 + 0.5

    def after(ratio: float, reports: int = 3) -> set[str]:
        r = runner()
        for n in range(reports):
            r.feed(lamp_reading(T0 + 60 * n, level=70, power=ratio * expected), desired)
        return set(r.active)

    assert after(0.74) == {"dim_mismatch"}
    assert after(0.76) == set()
    assert after(1.24) == set()
    assert after(1.26) == {"dim_mismatch"}
    assert after(1.40, reports=2) == set()  # 3 reports, not 2
    r = Runner(context(lamp(dimmable=False)))
    for n in range(4):
        r.feed(lamp_reading(T0 + 60 * n, level=70, power=1.4 * expected), desired)
    assert r.raised == []


def test_day_burner_after_ten_minutes_desired_off() -> None:
    r = runner()
    off_at = T0
    desired = intent(OFF, off_at, commanded_at=off_at + 1)
    # the controller believes it switched off, but the lamp keeps burning (bypassed relay, no bit)
    r.feed(lamp_reading(off_at - 30, power=150.5), intent(ON100, T0 - 3600))
    for n in range(10):
        ts = off_at + 1.5 + 60 * n
        assert r.feed(lamp_reading(ts, on=False, power=150.0), desired) == set(), n
    assert r.feed(lamp_reading(off_at + 601.5, on=False, power=150.0), desired) == {"day_burner"}
    assert "while meant to be off" in r.active["day_burner"]


def test_day_burner_threshold_is_twenty_percent_of_rated() -> None:
    desired = intent(OFF, T0 - 3600)

    def after(power: float) -> set[str]:
        r = runner()
        for n in range(15):
            r.feed(lamp_reading(T0 + 60 * n, on=False, power=power), desired)
        return set(r.active)

    assert after(0.19 * 150) == set()
    assert after(0.21 * 150) == {"day_burner"}


def test_relay_stuck_bit_is_relay_failure_not_its_symptoms() -> None:
    r = runner()
    stuck = frozenset({"relay_stuck"})
    # stuck open at night: dark while commanded on
    for n in range(3):
        r.feed(lamp_reading(T0 + 60 * n, power=0.0, flags=stuck), intent(ON100, T0 - 600))
    assert set(r.active) == {"relay_failure"}
    # stuck closed at sunrise: burning while meant to be off
    r2 = runner()
    for n in range(15):
        r2.feed(lamp_reading(T0 + 60 * n, on=False, power=150.0, flags=stuck), intent(OFF, T0 - 5))
    assert set(r2.active) == {"relay_failure"}


def test_driver_fault_is_control_gear_failure_and_explains_the_dim_mismatch() -> None:
    r = runner()
    desired = intent(DesiredState(on=True, level=70), T0 - 600)
    for n in range(4):
        r.feed(lamp_reading(T0 + 60 * n, level=70, power=150.5, flags=frozenset({"driver_fault"})), desired)
    assert set(r.active) == {"control_gear_failure"}


def test_cycling_counts_uncommanded_dark_to_lit_transitions() -> None:
    r = runner()
    desired = intent(ON100, T0 - 600)
    seen_at = None
    for n in range(30):
        dark = n % 4 == 3  # dark for one report in every four (the simulator's cycling)
        active = r.feed(lamp_reading(T0 + 60 * n, power=0.5 if dark else None), desired)
        if "cycling" in active and seen_at is None:
            seen_at = n
    assert seen_at is not None
    assert seen_at <= 16
    assert "lamp_failure" not in r.raised_types()  # never two dark reports in a row


def test_switching_by_command_is_not_cycling() -> None:
    r = runner()
    t = T0
    for _ in range(6):  # a lamp test: on, off, on ... each by a command
        on_intent = intent(ON100, t, commanded_at=t)
        r.feed(lamp_reading(t + 10), on_intent)
        r.feed(lamp_reading(t + 70), on_intent)
        t += 120
        off_intent = intent(OFF, t, commanded_at=t)
        r.feed(lamp_reading(t + 10, on=False), off_intent)
        t += 120
    assert r.raised == []


def test_no_cycling_rule_for_slow_reporters() -> None:
    r = Runner(context(lamp(), interval_s=600))
    desired = intent(ON100, T0 - 600)
    for n in range(30):
        r.feed(lamp_reading(T0 + 60 * n, power=0.5 if n % 4 == 3 else None), desired)
    assert "cycling" not in r.raised_types()


@pytest.mark.parametrize(
    ("volts", "expected"),
    [(252.0, {"voltage_high"}), (242.0, set()), (188.0, {"voltage_low"}), (198.0, set()), (220.0, set())],
)
def test_voltage_limits_after_three_reports(volts: float, expected: set[str]) -> None:
    r = runner()
    desired = intent(ON100, T0 - 600)
    r.feed(lamp_reading(T0, volts=volts), desired)
    r.feed(lamp_reading(T0 + 60, volts=volts), desired)
    assert r.raised == []
    r.feed(lamp_reading(T0 + 120, volts=volts), desired)
    assert set(r.active) == expected


def test_voltage_high_with_noise_and_its_clearing() -> None:
    noise = Noise(random.Random(3))
    r = runner()
    desired = intent(DesiredState(on=False), T0 - 600)
    for n in range(3):
        r.feed(lamp_reading(T0 + 60 * n, on=False, volts=252.0, noise=noise), desired)
    assert set(r.active) == {"voltage_high"}
    for n in range(3, 5):
        r.feed(lamp_reading(T0 + 60 * n, on=False, volts=220.0, noise=noise), desired)
    assert r.active == {}


def test_power_factor_low_only_at_level_fifty_or_more() -> None:
    desired_full = intent(ON100, T0 - 600)
    r = runner()
    for n in range(3):
        r.feed(lamp_reading(T0 + 60 * n, pf=0.78), desired_full)
    assert set(r.active) == {"power_factor_low"}
    r2 = runner()
    low = intent(DesiredState(on=True, level=40), T0 - 600)
    for n in range(5):
        r2.feed(lamp_reading(T0 + 60 * n, level=40, pf=0.78), low)
    r3 = runner()
    for n in range(5):
        r3.feed(lamp_reading(T0 + 60 * n, pf=0.86), desired_full)
    assert r2.raised == []
    assert r3.raised == []


def test_over_temperature_bit_or_above_75() -> None:
    def after(temp: float, flags: frozenset[str] = frozenset()) -> set[str]:
        r = runner()
        r.feed(lamp_reading(T0, temp=temp, flags=flags), intent(ON100, T0 - 600))
        return set(r.active)

    assert after(75.0) == set()
    assert after(76.0) == {"over_temperature"}
    assert after(40.0, frozenset({"over_temperature"})) == {"over_temperature"}


def test_tilt_is_pole_tilt_at_once() -> None:
    r = runner()
    assert r.feed(lamp_reading(T0, flags=frozenset({"tilt"})), intent(ON100, T0 - 600)) == {"pole_tilt"}


def test_supply_loss_below_fifty_volts_and_no_lamp_failure_without_supply() -> None:
    r = runner()
    desired = intent(ON100, T0 - 600)
    for n in range(4):
        r.feed(lamp_reading(T0 + 60 * n, volts=30.0, power=0.0), desired)
    assert set(r.active) == {"supply_loss"}
    r2 = runner()
    for n in range(4):
        r2.feed(lamp_reading(T0 + 60 * n, volts=55.0, power=0.0), desired)
    assert "supply_loss" not in r2.active  # 55 V is a (very) low voltage, not a loss


def test_faulty_reports_far_apart_are_not_in_a_row() -> None:
    r = runner()
    desired = intent(ON100, T0 - 600)
    r.feed(lamp_reading(T0, power=0.5), desired)
    r.feed(lamp_reading(T0 + 3600, power=0.5), desired)  # an hour later: not consecutive
    assert r.raised == []
    r.feed(lamp_reading(T0 + 3660, power=0.5), desired)
    assert set(r.active) == {"lamp_failure"}


def test_a_restored_alarm_continues_until_judged_clear() -> None:
    r = runner()
    r.window.restore("lamp_failure")
    desired = intent(ON100, T0 - 600)
    assert r.feed(lamp_reading(T0, power=0.5), desired) == set()  # still active: SEEN, not a new ON
    assert r.raised == []
    r.feed(lamp_reading(T0 + 60), desired)
    r.feed(lamp_reading(T0 + 120), desired)
    assert r.cleared == [("lamp_failure", T0 + 120)]


def test_thresholds_come_from_settings() -> None:
    th = Thresholds(lamp_failure_reports=4)
    r = Runner(context(lamp(), th=th))
    desired = intent(ON100, T0 - 600)
    for n in range(3):
        r.feed(lamp_reading(T0 + 60 * n, power=0.5), desired)
    assert r.raised == []
    r.feed(lamp_reading(T0 + 180, power=0.5), desired)
    assert r.raised_types() == {"lamp_failure"}
