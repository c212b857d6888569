"""FCD-S1 rules: expected power = load x scene share x brightness, minus failed channels' 1/8 each."""

from __future__ import annotations

import random

from lightctl.model import DesiredState

from .factory import T0, Noise, Runner, context, facade, facade_reading, intent

POLL = 30.0


def runner() -> Runner:
    return Runner(context(facade()))


def test_weekday_evening_with_scene_changes_raises_nothing() -> None:
    noise = Noise(random.Random(5))
    r = runner()
    on = DesiredState(scene=1, brightness=100)
    t = T0
    # 19:00 scene 1: a poll before the write still shows scene 0, one within 2 s shows it lagging
    r.feed(facade_reading(t + 0.2, scene=0, noise=noise), intent(on, t))
    written = intent(on, t, commanded_at=t + 0.5)
    r.feed(facade_reading(t + 1.0, scene=0, noise=noise), written)
    t += POLL
    while t < T0 + 3 * 3600:
        r.feed(facade_reading(t, scene=1, noise=noise), written)
        t += POLL
    # an operator's event scene 3, then back to the plan, then 22:00 off
    for scene in (3, 1, 0):
        state = DesiredState(scene=scene, brightness=100 if scene else None)
        r.feed(facade_reading(t + 0.3, scene=1 if scene != 1 else 3, noise=noise), intent(state, t))
        written = intent(state, t, commanded_at=t + 0.5)
        end = t + 1800
        t += POLL
        while t < end:
            r.feed(facade_reading(t, scene=scene, noise=noise), written)
            t += POLL
    assert r.raised == []


def test_failed_channels_are_a_lamp_failure_and_their_share_is_not_a_dim_mismatch() -> None:
    r = runner()
    desired = intent(DesiredState(scene=2, brightness=100), T0 - 600)
    assert r.feed(facade_reading(T0, scene=2, failed=3), desired) == {"lamp_failure"}
    for n in range(1, 5):
        r.feed(facade_reading(T0 + POLL * n, scene=2, failed=3), desired)
    assert set(r.active) == {"lamp_failure"}
    assert r.active["lamp_failure"] == "3 failed channel(s)"


def test_a_dark_zone_without_a_channel_report_is_a_lamp_failure() -> None:
    r = runner()
    desired = intent(DesiredState(scene=1, brightness=100), T0 - 600)
    r.feed(facade_reading(T0, power=500.0), desired)
    assert r.active == {}
    r.feed(facade_reading(T0 + POLL, power=500.0), desired)
    assert set(r.active) == {"lamp_failure"}


def test_brightness_mismatch_is_a_dim_mismatch() -> None:
    r = runner()
    desired = intent(DesiredState(scene=1, brightness=60), T0 - 600)
    full = 30000 * 0.45
    for n in range(3):
        r.feed(facade_reading(T0 + POLL * n, brightness=60, power=full), desired)
    assert set(r.active) == {"dim_mismatch"}


def test_controller_fault_is_control_gear_failure_and_explains_a_stuck_scene() -> None:
    r = runner()
    fault = frozenset({"controller_fault"})
    r.feed(facade_reading(T0, flags=fault), intent(DesiredState(scene=1, brightness=100), T0 - 600))
    off = intent(DesiredState(scene=0), T0 + 10, commanded_at=T0 + 10)
    for n in range(1, 40):
        # the active scene no longer follows writes: still showing scene 1 after 22:00
        r.feed(facade_reading(T0 + POLL * n, scene=1, flags=fault), off)
    assert set(r.active) == {"control_gear_failure"}


def test_day_burner_of_a_zone_left_on() -> None:
    r = runner()
    off = intent(DesiredState(scene=0), T0, commanded_at=T0 + 0.5)
    for n in range(1, 25):
        r.feed(facade_reading(T0 + POLL * n, scene=1), off)
    assert set(r.active) == {"day_burner"}


def test_supply_loss_of_a_zone() -> None:
    r = runner()
    reading = facade_reading(T0, volts=0.0, power=0.0)
    assert r.feed(reading, intent(DesiredState(scene=1, brightness=100), T0 - 600)) == {"supply_loss"}
