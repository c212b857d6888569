"""Builders for the fault tests: devices, the repository's profiles, readings as the datasheets
describe healthy and faulty devices, and a runner that feeds readings through judge + fold."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lightctl.config.settings import Thresholds
from lightctl.faults.context import DeviceContext, Intent, build_context
from lightctl.faults.detectors import judge
from lightctl.faults.window import OFF, ON, Window, fold
from lightctl.model import DesiredState, Device, Reading
from lightctl.profiles import Profile

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_764_180_000.0  # 2025-11-26 18:00 UTC+8 region: just a fixed start


def profile(name: str) -> Profile:
    return Profile.model_validate(
        yaml.safe_load((ROOT / "devices" / "profiles" / f"{name}.yaml").read_text())
    )


def lamp(rated_w: float = 150.0, dimmable: bool = True, ident: str = "ha-001", **kw: object) -> Device:
    return Device(
        id=ident, kind="lamp", name=ident, profile="slc-m1", lat=0, lon=0, rated_w=rated_w,
        dimmable=dimmable, road="hengan-lu", road_class="arterial", mqtt_id=ident.upper(), **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def group(
    k1_w: float = 150.0,
    k2_w: float = 400.0,
    dimmable: bool = True,
    ident: str = "zhg-01-u01",
    gateway: str = "zhg-01",
) -> Device:
    return Device(
        id=ident, kind="group", name=ident, profile="zhd-g2", lat=0, lon=0, rated_w=k1_w + k2_w,
        dimmable=dimmable, gateway=gateway, unit_id=1, k1_w=k1_w, k2_w=k2_w,
    )  # fmt: skip


def facade(load_w: float = 30000.0, ident: str = "gymnasium") -> Device:
    return Device(
        id=ident, kind="facade", name=ident, profile="fcd-s1", lat=0, lon=0, rated_w=load_w,
        dimmable=True, zone=ident, road_class="landscape", unit_id=1,
    )  # fmt: skip


def context(dev: Device, th: Thresholds | None = None, interval_s: float | None = None) -> DeviceContext:
    prof = profile(dev.profile)
    interval = interval_s if interval_s is not None else (60.0 if dev.kind == "lamp" else 30.0)
    return build_context(dev, prof, th or Thresholds(), interval, None)


@dataclass
class Noise:
    """The bench's noise: voltage +-3 V, power +-5 %, pf +-0.01, temperature +-1 deg C."""

    rng: random.Random = field(default_factory=lambda: random.Random(7))
    on: bool = True

    def v(self, x: float) -> float:
        return x + self.rng.uniform(-3, 3) if self.on else x

    def p(self, x: float) -> float:
        return x * (1 + self.rng.uniform(-0.05, 0.05)) if self.on else x

    def pf(self, x: float) -> float:
        return max(0.0, min(1.0, x + self.rng.uniform(-0.01, 0.01))) if self.on and x > 0 else x

    def t(self, x: float) -> float:
        return x + self.rng.uniform(-1, 1) if self.on else x


QUIET = Noise(on=False)


def slc_pf(level: float) -> float:
    if level >= 30:
        return 0.90 + (level - 30) / 70 * 0.07
    return 0.87 + level / 30 * 0.03


def lamp_reading(
    ts: float,
    on: bool = True,
    level: int = 100,
    rated_w: float = 150.0,
    power: float | None = None,
    volts: float = 220.0,
    pf: float | None = None,
    temp: float = 35.0,
    flags: frozenset[str] = frozenset(),
    noise: Noise = QUIET,
    device: str = "ha-001",
    relay_closed: bool | None = None,
) -> Reading:
    """An SLC-M1 report: healthy unless `power` / `pf` / `flags` say otherwise."""
    closed = on if relay_closed is None else relay_closed
    lvl = level if on else 0
    if power is None:
        power = rated_w * lvl / 100 + 0.5 if closed else 0.0
        power = noise.p(power) if closed else 0.0
    if pf is None:
        pf = slc_pf(lvl) if power > 0 else 0.0
    v = noise.v(volts)
    pfv = noise.pf(pf)
    values = {
        "on": 1.0 if on else 0.0,
        "level": float(lvl),
        "voltage": v,
        "power": power,
        "pf": pfv,
        "current": power / (v * pfv) if pfv > 0 and v > 0 else 0.0,
        "temperature": noise.t(temp),
        "energy_kwh": 100.0,
        "hours": 1000.0,
    }
    return Reading(device, ts, None, values, flags, received=ts)


def group_reading(
    ts: float,
    k1: bool = True,
    k2: bool = True,
    level: int = 100,
    k1_w: float = 150.0,
    k2_w: float = 400.0,
    dimmable: bool = True,
    volts: float = 220.0,
    i1: float | None = None,
    i2: float | None = None,
    fb1: bool | None = None,
    fb2: bool | None = None,
    pf: float | None = None,
    leakage: float = 2.0,
    temp: float = 30.0,
    flags: frozenset[str] = frozenset(),
    noise: Noise = QUIET,
    device: str = "zhg-01-u01",
) -> Reading:
    """A ZHD-G2 poll: coils, contactor feedback, currents per circuit, as the datasheet says."""
    v = noise.v(volts)
    nominal_pf = 0.95 if dimmable else 0.90
    factor = level / 100 if dimmable else 1.0
    closed1 = k1 if fb1 is None else fb1
    closed2 = k2 if fb2 is None else fb2
    p1 = noise.p(k1_w * factor) if closed1 else 0.0
    p2 = noise.p(k2_w * factor) if closed2 else 0.0
    pf_read = pf if pf is not None else (noise.pf(nominal_pf) if p1 + p2 > 0 else 0.0)
    cur1 = i1 if i1 is not None else (p1 / (v * pf_read) if p1 else 0.0)
    cur2 = i2 if i2 is not None else (p2 / (v * pf_read) if p2 else 0.0)
    fl = set(flags)
    if closed1:
        fl.add("k1_closed")
    if closed2:
        fl.add("k2_closed")
    values = {
        "k1": 1.0 if k1 else 0.0,
        "k2": 1.0 if k2 else 0.0,
        "level": float(level),
        "voltage": v,
        "current_k1": cur1,
        "current_k2": cur2,
        "power": (cur1 + cur2) * v * pf_read,
        "pf": pf_read,
        "energy_kwh": 10.0,
        "leakage_ma": leakage,
        "temperature": noise.t(temp),
        "hours": 100.0,
    }
    return Reading(device, ts, None, values, frozenset(fl), received=ts)


def facade_reading(
    ts: float,
    scene: int = 1,
    brightness: int = 100,
    load_w: float = 30000.0,
    failed: int = 0,
    power: float | None = None,
    volts: float = 220.0,
    flags: frozenset[str] = frozenset(),
    noise: Noise = QUIET,
    device: str = "gymnasium",
) -> Reading:
    share = {0: 0.0, 1: 0.45, 2: 0.75, 3: 1.0}.get(scene, 0.60)
    if power is None:
        power = noise.p(load_w * share * brightness / 100 * (1 - failed / 8))
    fl = set(flags)
    if failed:
        fl.add("channel_fault")
    values = {
        "scene": float(scene),
        "brightness": float(brightness),
        "active_scene": float(scene),
        "voltage": noise.v(volts),
        "power": power,
        "energy_kwh": 5.0,
        "failed_channels": float(failed),
    }
    return Reading(device, ts, None, values, frozenset(fl), received=ts)


def intent(state: DesiredState, at: float, commanded_at: float | None = None) -> Intent:
    return Intent(state, at, at if commanded_at is None else commanded_at)


class Runner:
    """judge + fold for one device, remembering which alarm types are active."""

    def __init__(self, ctx: DeviceContext) -> None:
        self.ctx = ctx
        self.window = Window()
        self.active: dict[str, str] = {}
        self.raised: list[tuple[str, float]] = []
        self.cleared: list[tuple[str, float]] = []

    def feed(self, reading: Reading, desired: Intent | None) -> set[str]:
        at = reading.received or reading.ts
        obs = judge(self.ctx, reading, desired, at)
        for alarm_type, code, evidence in fold(self.ctx, self.window, obs, desired, at) or ():
            if code == ON:
                self.active[alarm_type] = evidence
                self.raised.append((alarm_type, at))
            elif code == OFF:
                self.active.pop(alarm_type, None)
                self.cleared.append((alarm_type, at))
        return set(self.active)

    def raised_types(self) -> set[str]:
        return {t for t, _ in self.raised}
