"""Fault rules of design.md section 4, judged one reading at a time: pure functions, no clock, no I/O.

`judge(ctx, reading, intent, arrival)` looks at one reading of one device, with what the device is
meant to be doing (`Intent`), and returns an Observation: for every sub-condition the reading can
speak to, evidence (a short text) when it shows the fault, or None when it shows the device healthy.
Sub-conditions a reading cannot judge (the lamp is meant to be off, a command was just sent, the
supply is gone, a quantity is missing) are left out, so they neither count towards nor clear a
condition. How many reports, or how long, make a condition is window.py's business.

Rules are chosen by what a profile can do (circuits, scenes, or a switched and dimmed lamp) and by
the flags and quantities it reports, never by model name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lightctl.faults.context import (
    DAY_BURNER,
    DIM_MISMATCH,
    GEAR_CAUSES,
    LAMP_BIT,
    LAMP_CHANNELS,
    LAMP_POWER,
    LEAKAGE,
    MAIN,
    NOMINAL_V,
    OVER_TEMPERATURE,
    POWER_FACTOR_LOW,
    SUPPLY_LOSS,
    SWITCH_CAUSES,
    VOLTAGE_HIGH,
    VOLTAGE_LOW,
    DeviceContext,
    Intent,
    facade_expected_w,
)
from lightctl.model import DesiredState, Reading

_HIGH = {MAIN: True}
_NOT_HIGH = {MAIN: False}
_LIT = {MAIN: True}
_DARK = {MAIN: False}


@dataclass(slots=True)
class Observation:
    """One reading's verdicts: sub-condition -> evidence (faulty) or None (healthy); absent: not judged."""

    verdicts: dict[str, str | None]
    high: Mapping[str, bool] | None = (
        None  # channel -> drawing > day_burner_ratio of rated, whatever is desired
    )
    lit: Mapping[str, bool] | None = None  # channel -> lit, for channels meant to be lit (cycling)


def settled(ctx: DeviceContext, intent: Intent | None, arrival: float) -> bool:
    """Outside the grace after the last command: the reading may be judged against the intent."""
    return intent is None or arrival >= intent.commanded_at + ctx.th.command_grace_s


def judge(ctx: DeviceContext, reading: Reading, intent: Intent | None, arrival: float) -> Observation:
    """Judge one reading (`arrival`: when lightctl received it, on its own clock)."""
    values = reading.values
    flags = reading.flags
    th = ctx.th
    out: dict[str, str | None] = {}
    obs = Observation(out)

    volts = values.get("voltage")
    lost = "supply_lost" in flags or (volts is not None and volts < th.supply_lost_v)
    if lost:
        out[SUPPLY_LOSS] = "supply lost" + ("" if volts is None else f", {volts:.0f} V")
    elif volts is not None:
        out[SUPPLY_LOSS] = None
        out[VOLTAGE_HIGH] = (
            f"voltage {volts:.1f} V > {th.voltage_high:g} V" if volts > th.voltage_high else None
        )
        out[VOLTAGE_LOW] = f"voltage {volts:.1f} V < {th.voltage_low:g} V" if volts < th.voltage_low else None
    elif "supply_lost" in ctx.flags:
        out[SUPPLY_LOSS] = None

    temp = values.get("temperature")
    if "over_temperature" in flags:
        out[OVER_TEMPERATURE] = "over-temperature bit" + ("" if temp is None else f", {temp:.1f} °C")
    elif temp is not None and temp > th.temperature_max:
        out[OVER_TEMPERATURE] = f"temperature {temp:.1f} °C > {th.temperature_max:g} °C"
    elif temp is not None or "over_temperature" in ctx.flags:
        out[OVER_TEMPERATURE] = None

    leak = values.get("leakage_ma")
    if leak is not None:
        out[LEAKAGE] = (
            f"residual current {leak:.0f} mA > {th.leakage_ma:g} mA" if leak > th.leakage_ma else None
        )

    for flag, key, text in ctx.flag_rules:
        out[key] = text if flag in flags else None

    if lost or "breaker_tripped" in flags:
        return obs  # no supply to the lamps: nothing about them can be judged

    if "lamp_fault" in ctx.flags:
        out[LAMP_BIT] = "lamp bit: lamp open / short" if "lamp_fault" in flags else None
    failed = values.get("failed_channels")
    if failed is not None or "channel_fault" in ctx.flags:
        if (failed or 0) > 0 or "channel_fault" in flags:
            out[LAMP_CHANNELS] = f"{failed or 0:.0f} failed channel(s)"
        else:
            out[LAMP_CHANNELS] = None

    calm = settled(ctx, intent, arrival)
    desired = None if intent is None else intent.state
    if ctx.shape == "switched":
        _switched(ctx, values, flags, desired, calm, obs)
    elif ctx.shape == "circuits":
        _circuits(ctx, values, flags, desired, calm, intent, arrival, obs)
    else:
        _scenes(ctx, values, flags, desired, calm, obs)
    return obs


def _switched(
    ctx: DeviceContext,
    values: Mapping[str, float],
    flags: frozenset[str],
    desired: DesiredState | None,
    calm: bool,
    obs: Observation,
) -> None:
    power = values.get("power")
    on = values.get("on")
    if power is None or on is None:
        return
    th = ctx.th
    out = obs.verdicts
    rated = ctx.device.rated_w
    high = power > th.day_burner_ratio * rated
    obs.high = _HIGH if high else _NOT_HIGH
    if not calm or (flags and not SWITCH_CAUSES.isdisjoint(flags)):
        return
    level = values.get("level")
    level_now = 100.0 if level is None else level
    if desired is not None and desired.on is False:
        out[DAY_BURNER] = (
            f"power {power:.1f} W > {th.day_burner_ratio:.0%} of rated {rated:g} W" if high else None
        )
        return
    if on < 0.5:
        if desired is not None and desired.on is True:
            obs.lit = _DARK  # relay open on its own while meant to be on: dark, for cycling
        return
    # No schedule known: judge what the lamp says it applied. `on` without a level applies 100.
    want_level = level_now if desired is None else (100.0 if desired.level is None else float(desired.level))
    expected = rated * want_level / 100.0 + ctx.standby_w
    applied = abs(level_now - want_level) < 0.5 and (desired is None or desired.on is True)
    if applied and expected >= th.lamp_failure_min_expected_w:
        ratio = power / expected
        if flags.isdisjoint(GEAR_CAUSES):
            what = f"level {want_level:.0f} %"
            _power_verdicts(ctx, obs, ratio, power, expected, what, LAMP_POWER, DIM_MISMATCH)
        if desired is not None:
            obs.lit = _LIT if ratio >= th.lamp_failure_ratio else _DARK
    pf = values.get("pf")
    drawing = power >= th.lamp_failure_ratio * (rated * level_now / 100.0 + ctx.standby_w)
    if pf is not None and pf > 0 and level_now >= th.pf_min_level and drawing:
        out[POWER_FACTOR_LOW] = f"power factor {pf:.2f} < {th.pf_low:g}" if pf < th.pf_low else None


def _power_verdicts(
    ctx: DeviceContext,
    obs: Observation,
    ratio: float,
    measured: float,
    expected: float,
    what: str,
    lamp_key: str,
    dim_key: str,
    unit: str = "W",
) -> None:
    th = ctx.th
    out = obs.verdicts
    text = f"{measured:.2f} {unit} = {ratio:.0%} of expected {expected:.2f} {unit} ({what})"
    out[lamp_key] = text if ratio < th.lamp_failure_ratio else None
    if ctx.device.dimmable:
        off_band = (th.lamp_failure_ratio <= ratio < th.dim_low_ratio) or ratio > th.dim_high_ratio
        out[dim_key] = text if off_band else None


def _circuits(
    ctx: DeviceContext,
    values: Mapping[str, float],
    flags: frozenset[str],
    desired: DesiredState | None,
    calm: bool,
    intent: Intent | None,
    arrival: float,
    obs: Observation,
) -> None:
    th = ctx.th
    out = obs.verdicts
    volts = values.get("voltage") or NOMINAL_V
    pf = values.get("pf")
    pf_used = pf if pf is not None and 0.5 <= pf <= 1.0 else ctx.pf_nominal
    level = values.get("level")
    dimmable = ctx.device.dimmable
    level_now = 100.0 if level is None or not dimmable else level
    want_level = level_now
    if dimmable and desired is not None and desired.level is not None:
        want_level = float(desired.level)
    level_applied = abs(level_now - want_level) < 0.5
    relay_judged = intent is None or arrival >= intent.commanded_at + th.relay_settle_s
    high: dict[str, bool] = {}
    lit: dict[str, bool] = {}
    drawing = False
    for c in ctx.circuits:
        coil = values.get(c.name)
        if coil is None:
            continue
        coil_on = coil >= 0.5
        closed = coil_on
        if c.feedback is not None:
            closed = c.feedback in flags
            if closed != coil_on:
                # The contactor explains whatever the current shows: only relay_failure is judged.
                if relay_judged:
                    state = "closed" if closed else "open"
                    out[c.relay_key] = f"{c.name} contactor {state} but coil {'on' if coil_on else 'off'}"
                continue
            out[c.relay_key] = None
        current = values.get(c.current)
        if current is None:
            continue
        rated_i = c.rated_w / (volts * ctx.pf_nominal)
        high[c.name] = rated_i > 0 and current > th.day_burner_ratio * rated_i
        if not calm:
            continue
        want = coil_on if desired is None else getattr(desired, c.name)
        if want is False and desired is not None:
            out[c.burn_key] = (
                f"{c.name} current {current:.2f} A > {th.day_burner_ratio:.0%} of rated {rated_i:.2f} A"
                if high[c.name]
                else None
            )
        elif want is True and coil_on and level_applied:
            expected_w = c.rated_w * (want_level / 100.0 if dimmable else 1.0)
            if expected_w < th.lamp_failure_min_expected_w:
                continue
            expected_i = expected_w / (volts * pf_used)
            ratio = current / expected_i
            what = f"{c.name}" + (f" at {want_level:.0f} %" if dimmable else "")
            _power_verdicts(ctx, obs, ratio, current, expected_i, what, c.lamp_key, c.dim_key, unit="A")
            lit_now = ratio >= th.lamp_failure_ratio
            drawing = drawing or lit_now
            if desired is not None:
                lit[c.name] = lit_now
    obs.high = high
    obs.lit = lit or None
    if drawing and pf is not None and pf > 0 and level_now >= th.pf_min_level:
        out[POWER_FACTOR_LOW] = f"power factor {pf:.2f} < {th.pf_low:g}" if pf < th.pf_low else None


def _scenes(
    ctx: DeviceContext,
    values: Mapping[str, float],
    flags: frozenset[str],
    desired: DesiredState | None,
    calm: bool,
    obs: Observation,
) -> None:
    power = values.get("power")
    if power is None:
        return
    th = ctx.th
    out = obs.verdicts
    load = ctx.device.rated_w
    high = power > th.day_burner_ratio * load
    obs.high = _HIGH if high else _NOT_HIGH
    if not calm or not flags.isdisjoint(GEAR_CAUSES):
        return
    active = values.get("active_scene")
    bright = values.get("brightness")
    if desired is not None and desired.scene is not None:
        want_scene = desired.scene
    elif active is not None:
        want_scene = round(active)
    else:
        return
    if desired is not None and desired.brightness is not None:
        want_b = float(desired.brightness)
    else:
        want_b = 100.0 if bright is None else bright
    if want_scene <= 0 or want_b <= 0:
        if desired is not None:
            out[DAY_BURNER] = (
                f"power {power:.0f} W > {th.day_burner_ratio:.0%} of load {load:g} W" if high else None
            )
        return
    if active is None or round(active) != want_scene or (bright is not None and abs(bright - want_b) >= 0.5):
        return  # not showing what it was told yet
    failed = values.get("failed_channels") or 0.0
    expected = facade_expected_w(ctx, want_scene, want_b, failed)
    if expected < th.lamp_failure_min_expected_w:
        return
    ratio = power / expected
    what = f"scene {want_scene} at {want_b:.0f} %" + (f", {failed:.0f} channel(s) failed" if failed else "")
    _power_verdicts(ctx, obs, ratio, power, expected, what, LAMP_POWER, DIM_MISMATCH)
    if desired is not None:
        obs.lit = _LIT if ratio >= th.lamp_failure_ratio else _DARK
