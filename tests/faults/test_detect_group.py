"""ZHD-G2 rules: per circuit (K1 centre head, K2 side heads) against its share, contactor feedback,
and the cabinet's own bits; the half-night program's switching raises nothing."""

from __future__ import annotations

import random

import pytest

from lightctl.model import DesiredState

from .factory import T0, Noise, Runner, context, group, group_reading, intent

BOTH = DesiredState(k1=True, k2=True, level=100)
HALF = DesiredState(k1=True, k2=False, level=100)
NONE = DesiredState(k1=False, k2=False, level=100)
POLL = 30.0


def runner(**kw: object) -> Runner:
    return Runner(context(group(**kw)))  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [11, 12, 13])
@pytest.mark.parametrize("dimmable", [True, False])
def test_half_night_program_raises_nothing(seed: int, dimmable: bool) -> None:
    noise = Noise(random.Random(seed))
    r = runner(dimmable=dimmable)
    t = T0
    # sunset: K1 + K2 on, written at +0.8 s; a poll at +0.3 s still shows both off
    r.feed(group_reading(t + 0.3, k1=False, k2=False, dimmable=dimmable, noise=noise), intent(BOTH, t))
    on = intent(BOTH, t, commanded_at=t + 0.8)
    # the read-back 100 ms after the write: contactors not closed yet
    r.feed(group_reading(t + 0.9, fb1=False, fb2=False, dimmable=dimmable, noise=noise), on)
    t += POLL
    while t < T0 + 5.5 * 3600:
        r.feed(group_reading(t, dimmable=dimmable, noise=noise), on)
        t += POLL
    # 23:30: K2 off; a poll lands before the write, one just after it (feedback still closed)
    k2_off = t
    r.feed(group_reading(k2_off + 0.2, dimmable=dimmable, noise=noise), intent(HALF, k2_off))
    half = intent(HALF, k2_off, commanded_at=k2_off + 0.5)
    r.feed(group_reading(k2_off + 0.6, k2=False, fb2=True, dimmable=dimmable, noise=noise), half)
    t = k2_off + POLL
    while t < T0 + 12.5 * 3600:
        r.feed(group_reading(t, k2=False, dimmable=dimmable, noise=noise), half)
        t += POLL
    # sunrise: K1 off
    off = intent(NONE, t, commanded_at=t + 1)
    r.feed(group_reading(t + 0.4, k2=False, dimmable=dimmable, noise=noise), off)
    t += POLL
    for _ in range(60):
        r.feed(group_reading(t, k1=False, k2=False, dimmable=dimmable, noise=noise), off)
        t += POLL
    assert r.raised == []


def test_lamp_failure_of_one_circuit_after_two_polls() -> None:
    r = runner()
    desired = intent(BOTH, T0 - 600)
    r.feed(group_reading(T0, i2=0.0), desired)
    assert r.active == {}
    r.feed(group_reading(T0 + POLL, i2=0.0), desired)
    assert set(r.active) == {"lamp_failure"}
    assert r.active["lamp_failure"].startswith("0.00 A")
    assert "k2" in r.active["lamp_failure"]


def test_circuit_just_above_a_quarter_of_its_share_is_not_a_failure() -> None:
    r = runner()
    desired = intent(BOTH, T0 - 600)
    expected_k1 = 150 / (220 * 0.95)
    for n in range(3):
        r.feed(group_reading(T0 + POLL * n, i1=0.26 * expected_k1), desired)
    assert "lamp_failure" not in r.active
    assert "dim_mismatch" in r.active  # 26 % is in the dim mismatch band


def test_lamp_failure_is_not_judged_for_a_circuit_that_is_meant_off() -> None:
    r = runner()
    desired = intent(HALF, T0 - 600)
    for n in range(5):
        r.feed(group_reading(T0 + POLL * n, k2=False), desired)
    assert r.raised == []


def test_a_group_without_led_driver_ignores_the_dim_register() -> None:
    r = runner(dimmable=False)
    desired = intent(DesiredState(k1=True, k2=True, level=50), T0 - 600)
    for n in range(5):
        # the register reads back 50, the lamps draw full power: healthy for a fixed load
        r.feed(group_reading(T0 + POLL * n, level=50, dimmable=False), desired)
    assert r.raised == []


def test_dim_mismatch_per_circuit_on_an_led_group() -> None:
    r = runner()
    desired = intent(DesiredState(k1=True, k2=True, level=50), T0 - 600)
    full_k2 = 400 / (220 * 0.95)
    for n in range(3):
        r.feed(group_reading(T0 + POLL * n, level=50, i2=full_k2), desired)
    assert set(r.active) == {"dim_mismatch"}


def test_contactor_stuck_closed_is_relay_failure_after_two_polls_not_day_burner() -> None:
    r = runner()
    desired = intent(HALF, T0 - 3600)
    r.feed(group_reading(T0 - POLL, k2=False), desired)  # an hour after the write, the contactor welds
    for n in range(30):
        r.feed(group_reading(T0 + POLL * n, k2=False, fb2=True), desired)
        if n == 0:
            assert r.active == {}
    assert set(r.active) == {"relay_failure"}
    assert r.raised[0][1] == T0 + POLL


def test_contactor_mismatch_one_second_after_a_write_is_enough() -> None:
    r = runner()
    r.feed(group_reading(T0 - POLL), intent(BOTH, T0 - 3600))
    desired = intent(HALF, T0, commanded_at=T0)
    # read within 1 s of the write: the contactor may still be moving
    r.feed(group_reading(T0 + 0.3, k2=False, fb2=True), desired)
    assert r.active == {}
    # the first poll after that still shows it closed: relay failure at once
    r.feed(group_reading(T0 + POLL, k2=False, fb2=True), desired)
    assert set(r.active) == {"relay_failure"}


def test_breaker_trip_is_breaker_tripped_only() -> None:
    r = runner()
    desired = intent(BOTH, T0 - 600)
    for n in range(4):
        reading = group_reading(
            T0 + POLL * n, fb1=False, fb2=False, i1=0.0, i2=0.0, flags=frozenset({"breaker_tripped"})
        )
        r.feed(reading, desired)
    assert set(r.active) == {"breaker_tripped"}


def test_supply_loss_is_supply_loss_only() -> None:
    r = runner()
    desired = intent(BOTH, T0 - 600)
    for n in range(4):
        reading = group_reading(
            T0 + POLL * n, volts=0.4, fb1=False, fb2=False, flags=frozenset({"supply_lost"})
        )
        r.feed(reading, desired)
    assert set(r.active) == {"supply_loss"}


@pytest.mark.parametrize(("ma", "expected"), [(45.0, {"leakage"}), (30.0, set()), (29.0, set())])
def test_leakage_above_thirty_milliamps(ma: float, expected: set[str]) -> None:
    r = runner()
    assert r.feed(group_reading(T0, leakage=ma), intent(BOTH, T0 - 600)) == expected


def test_cabinet_temperature() -> None:
    r = runner()
    desired = intent(BOTH, T0 - 600)
    assert r.feed(group_reading(T0, temp=82.0, flags=frozenset({"over_temperature"})), desired) == {
        "over_temperature"
    }
    cold = runner()
    for n in range(5):
        cold.feed(group_reading(T0 + POLL * n, temp=-15.0), desired)
    assert cold.raised == []  # a cold cabinet is a condition, not a fault


def test_door_open() -> None:
    r = runner()
    assert r.feed(group_reading(T0, flags=frozenset({"door_open"})), intent(BOTH, T0 - 600)) == {"door_open"}


def test_day_burner_of_a_circuit_after_ten_minutes() -> None:
    r = runner()
    off_at = T0
    desired = intent(HALF, off_at, commanded_at=off_at + 0.5)
    # feedback follows the coil but the side heads keep drawing (a bypass): day burner
    full_k2 = 400 / (220 * 0.95)
    t = off_at + POLL
    while t < off_at + POLL + 600:  # ten minutes from the first poll that saw it burning
        assert r.feed(group_reading(t, k2=False, i2=full_k2), desired) == set()
        t += POLL
    r.feed(group_reading(t, k2=False, i2=full_k2), desired)
    assert set(r.active) == {"day_burner"}
    assert r.raised == [("day_burner", off_at + POLL + 600)]


def test_power_factor_low_on_a_group() -> None:
    r = runner()
    desired = intent(BOTH, T0 - 600)
    for n in range(3):
        r.feed(group_reading(T0 + POLL * n, pf=0.80), desired)
    assert set(r.active) == {"power_factor_low"}
