"""What the fault rules know about a device, worked out once from its inventory entry and profile:
its shape (switched lamp, circuits, scenes), the flags it can report, its electrical figures, how
often it reports and the rules' report counts; and what it is meant to be doing (`Intent`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from lightctl.config.settings import Thresholds
from lightctl.model import DesiredState, Device
from lightctl.profiles import Profile

NOMINAL_V = 220.0

Shape = Literal["switched", "circuits", "scenes"]

# Sub-condition keys; the part before "/" is the alarm type (catalog.type_of).
SUPPLY_LOSS = "supply_loss"
VOLTAGE_HIGH = "voltage_high"
VOLTAGE_LOW = "voltage_low"
OVER_TEMPERATURE = "over_temperature"
LEAKAGE = "leakage"
POWER_FACTOR_LOW = "power_factor_low"
LAMP_POWER = "lamp_failure/power"
LAMP_BIT = "lamp_failure/bit"
LAMP_CHANNELS = "lamp_failure/channels"
DIM_MISMATCH = "dim_mismatch"
DAY_BURNER = "day_burner"
CYCLING = "cycling"
MAIN = ""  # the one output channel of a lamp or facade; groups have "k1" / "k2"

# Device flags that raise an alarm whatever the supply: flag -> (sub-condition, evidence).
FLAG_RULES: dict[str, tuple[str, str]] = {
    "door_open": ("door_open", "door open"),
    "tilt": ("pole_tilt", "tilt bit: pole struck"),
    "breaker_tripped": ("breaker_tripped", "breaker tripped"),
    "driver_fault": ("control_gear_failure/driver", "driver (DALI) not answering"),
    "controller_fault": ("control_gear_failure/controller", "controller fault bit"),
    "relay_stuck": ("relay_failure/bit", "relay stuck bit"),
}
# Flags that say the device cannot follow commands: symptoms they explain are not judged (a stuck
# relay is relay_failure, not also lamp_failure or day_burner).
SWITCH_CAUSES = frozenset({"relay_stuck"})
GEAR_CAUSES = frozenset({"driver_fault", "controller_fault"})


@dataclass(frozen=True, slots=True)
class Intent:
    """What a device is meant to be doing: the desired state, since when, and the last command."""

    state: DesiredState
    changed_at: float  # when the desired output last changed (day_burner's 10 minutes start here)
    commanded_at: float  # when it was last commanded; readings within the grace after are not judged


@dataclass(frozen=True, slots=True)
class Circuit:
    name: str  # "k1" / "k2": also the coil quantity
    rated_w: float
    current: str  # its current quantity
    feedback: str | None  # its contactor feedback flag, if the profile reports one
    lamp_key: str
    dim_key: str
    burn_key: str
    relay_key: str


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """Everything about a device the rules need, worked out once (not per reading)."""

    device: Device
    th: Thresholds
    shape: Shape
    interval_s: float  # how often it reports (lamps behind a concentrator: max(report, batch))
    parent: str | None  # gateway, concentrator or broker bridge whose loss explains its silence
    flags: frozenset[str]  # flags its profile can report
    flag_rules: tuple[tuple[str, str, str], ...]
    circuits: tuple[Circuit, ...]
    standby_w: float
    pf_nominal: float
    channels: int
    scene_share: Mapping[int, float]
    custom_share: float
    cycling: bool  # reports often enough for the cycling rule
    needs: Mapping[str, int]  # consecutive reports that make a sub-condition (others: 1)


@dataclass(frozen=True, slots=True)
class ModelRules:
    """What all devices of one profile share (under one set of thresholds): built once."""

    shape: Shape
    flags: frozenset[str]
    flag_rules: tuple[tuple[str, str, str], ...]
    needs: Mapping[str, int]


RulesCache = dict[tuple[str, Thresholds], ModelRules]


def build_context(
    device: Device,
    profile: Profile,
    th: Thresholds,
    interval_s: float,
    parent: str | None,
    shared: RulesCache | None = None,
) -> DeviceContext:
    """`shared`: a dict the caller keeps while building many contexts, so that 100,000 lamps of one
    profile share one set of flags and report counts."""
    rules = None if shared is None else shared.get((profile.id, th))
    if rules is None:
        rules = _model_rules(profile, th)
        if shared is not None:
            shared[(profile.id, th)] = rules
    circuits = tuple(
        Circuit(
            name=c,
            rated_w=float((device.k1_w if c == "k1" else device.k2_w) or 0.0),
            current=f"current_{c}",
            feedback=f"{c}_closed" if f"{c}_closed" in rules.flags else None,
            lamp_key=f"lamp_failure/{c}",
            dim_key=f"dim_mismatch/{c}",
            burn_key=f"day_burner/{c}",
            relay_key=f"relay_failure/{c}",
        )
        for c in profile.circuits
    )
    el = profile.electrical
    no_driver = not device.dimmable and el.pf_fixed_load is not None
    return DeviceContext(
        device=device,
        th=th,
        shape=rules.shape,
        interval_s=interval_s,
        parent=parent,
        flags=rules.flags,
        flag_rules=rules.flag_rules,
        circuits=circuits,
        standby_w=el.standby_w,
        pf_nominal=float(el.pf_fixed_load if no_driver else el.pf_full),  # type: ignore[arg-type]
        channels=el.channels,
        scene_share=el.scene_share,
        custom_share=el.custom_scene_share,
        cycling=interval_s <= th.cycling_max_report_s,
        needs=rules.needs,
    )


def _model_rules(profile: Profile, th: Thresholds) -> ModelRules:
    flags = _profile_flags(profile)
    shape: Shape = "circuits" if profile.circuits else ("scenes" if profile.scenes > 0 else "switched")
    needs = {
        LAMP_POWER: th.lamp_failure_reports,
        DIM_MISMATCH: th.dim_reports,
        VOLTAGE_HIGH: th.voltage_reports,
        VOLTAGE_LOW: th.voltage_reports,
        POWER_FACTOR_LOW: th.pf_reports,
    }
    for c in profile.circuits:
        needs[f"lamp_failure/{c}"] = th.lamp_failure_reports
        needs[f"dim_mismatch/{c}"] = th.dim_reports
        needs[f"relay_failure/{c}"] = th.relay_polls
    flag_rules = tuple((f, *FLAG_RULES[f]) for f in sorted(flags) if f in FLAG_RULES)
    return ModelRules(shape, flags, flag_rules, needs)


def _profile_flags(profile: Profile) -> frozenset[str]:
    found: set[str] = set()
    if profile.mqtt is not None:
        for fld in profile.mqtt.fields.values():
            found.update(fld.bits.values())
    if profile.modbus is not None:
        for reg in profile.modbus.registers:
            found.update(reg.bits.values())
    return frozenset(found)


def facade_expected_w(ctx: DeviceContext, scene: int, brightness: float, failed_channels: float) -> float:
    share = ctx.scene_share.get(scene, ctx.custom_share if scene > 0 else 0.0)
    healthy = max(0.0, 1.0 - failed_channels / ctx.channels)
    return ctx.device.rated_w * share * brightness / 100.0 * healthy
