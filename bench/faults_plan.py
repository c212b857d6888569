"""What bench/faults.py injects, where and when: alarm type -> simulator fault, and the night's plan.

Each Variant maps one alarm type of design.md section 4 onto a simulator fault (lightctl/sim/
slc_faults.py, modbus_faults.py), with what the rule needs to see it (how many reports, or a time
window of its own) and when the fault can show at all: a lamp that draws nothing is a fault only
while the lamp should be lit, a contactor stuck open only while its circuit is switched on. Faults
that stop a device from following commands (no supply, a hung gateway, a silent lamp) are placed
clear of that device's schedule steps, so that the reconciler has nothing to command meanwhile:
the bench scores the fault detectors, and a command that cannot be carried out would add a
legitimate `command_failed` of its own (`faults.py --over-steps` lets them span steps to show it).

The planner is pure (a seeded Random, the district and a Resolver for the desired states).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from lightctl.config.loader import District
from lightctl.model import DesiredState
from lightctl.schedule.resolve import Resolver

Target = Literal[
    "lamp",
    "lamp_direct",
    "lamp_dimmable",
    "lamp_behind",
    "concentrator",
    "group",
    "group_fixed",
    "gateway",
    "facade",
]
Shows = Literal["any", "lamp_lit", "lamp_pf", "lamp_dark", "k1_on", "k1_off", "k2_on", "k2_off"]

FLAP_HOLDOFF_S = 300.0  # Thresholds.flap_holdoff_s: an alarm resolves this long after it cleared
SAMPLE_S = 30.0  # resolution of the desired-state timeline the planner looks at
SETTLE_S = 90.0  # a step is applied (commands, retries) within this; faults keep this far from it


@dataclass(frozen=True, slots=True)
class Variant:
    name: str  # "<alarm type>:<how>"
    alarm: str | None  # the alarm type expected; None: a harmless condition that must raise nothing
    sim: Literal["slc", "modbus"]
    fault: str  # the simulator's fault name
    target: Target
    reports: int = 1  # reports (polls, batches) the rule needs
    rule_window_s: float | None = None  # a rule with a time window of its own (cycling)
    shows: Shows = "any"  # when the fault can be seen
    blocks: bool = False  # keep clear of the device's schedule steps (it cannot follow commands)
    params: tuple[tuple[str, str | float], ...] = ()
    # The fault spans a schedule step of its device, which the device does not follow: the rule's
    # window is from that step to the reconciler's last retry (command_failed).
    over_step: bool = False
    # The fault lasts the whole run and is judged at the night's energy close (energy_anomaly).
    whole_night: bool = False
    # The rule's window starts at the first report that shows the fault (day_burner's 10 minutes).
    from_first_report: bool = False


VARIANTS: tuple[Variant, ...] = (
    Variant("lamp_failure:slc-bit", "lamp_failure", "slc", "lamp_failure", "lamp"),
    Variant("lamp_failure:slc-power", "lamp_failure", "slc", "lamp_failure", "lamp", 2, shows="lamp_lit",
            params=(("bit", 0.0),)),
    Variant("lamp_failure:zhd-k1", "lamp_failure", "modbus", "lamp_failure", "group", 2, shows="k1_on",
            params=(("circuit", "k1"),)),
    Variant("lamp_failure:zhd-k2", "lamp_failure", "modbus", "lamp_failure", "group", 2, shows="k2_on",
            params=(("circuit", "k2"),)),
    Variant("lamp_failure:fcd-channels", "lamp_failure", "modbus", "channel_fault", "facade",
            params=(("n", 2),)),
    # Kept clear of dimming steps: the simulated driver keeps the level it had when it stopped
    # answering even after the fault ends (until the next command), so a step during the fault
    # leaves a real dim_mismatch behind it (reported to the simulator's owner).
    Variant("control_gear_failure:slc-driver", "control_gear_failure", "slc", "driver_fault", "lamp",
            blocks=True),
    Variant("control_gear_failure:fcd-controller", "control_gear_failure", "modbus", "controller_fault",
            "facade", blocks=True),
    Variant("relay_failure:slc-stuck-off", "relay_failure", "slc", "relay_stuck_off", "lamp",
            shows="lamp_lit"),
    Variant("relay_failure:slc-stuck-on", "relay_failure", "slc", "relay_stuck_on", "lamp",
            shows="lamp_dark"),
    Variant("relay_failure:zhd-k1-open", "relay_failure", "modbus", "contactor_stuck", "group", 2,
            shows="k1_on", blocks=True, params=(("mode", "k1_open"),)),
    Variant("relay_failure:zhd-k1-closed", "relay_failure", "modbus", "contactor_stuck", "group", 2,
            shows="k1_off", blocks=True, params=(("mode", "k1_closed"),)),
    Variant("relay_failure:zhd-k2-open", "relay_failure", "modbus", "contactor_stuck", "group", 2,
            shows="k2_on", blocks=True, params=(("mode", "k2_open"),)),
    Variant("relay_failure:zhd-k2-closed", "relay_failure", "modbus", "contactor_stuck", "group", 2,
            shows="k2_off", blocks=True, params=(("mode", "k2_closed"),)),
    # Kept clear of dimming steps: the simulated lamp is dark for a whole report interval, so the
    # report that follows a command inside that interval is a second dark report (lamp_failure) once
    # it arrives after the 5 s command grace, which a busy fast-clock run cannot promise.
    Variant("cycling:slc", "cycling", "slc", "cycling", "lamp", rule_window_s=1800.0, shows="lamp_lit",
            blocks=True),
    Variant("voltage_high:slc", "voltage_high", "slc", "voltage_high", "lamp", 3),
    Variant("voltage_low:slc", "voltage_low", "slc", "voltage_low", "lamp", 3),
    Variant("power_factor_low:slc", "power_factor_low", "slc", "low_pf", "lamp", 3, shows="lamp_pf"),
    Variant("over_temperature:slc", "over_temperature", "slc", "over_temperature", "lamp"),
    Variant("over_temperature:zhd", "over_temperature", "modbus", "over_temperature", "group"),
    Variant("leakage:zhd", "leakage", "modbus", "leakage", "group"),
    Variant("door_open:zhd", "door_open", "modbus", "door_open", "group"),
    Variant("door_open:fcd", "door_open", "modbus", "door_open", "facade"),
    Variant("breaker_tripped:zhd", "breaker_tripped", "modbus", "breaker_tripped", "group", blocks=True),
    Variant("pole_tilt:slc", "pole_tilt", "slc", "tilt", "lamp"),
    Variant("supply_loss:zhd", "supply_loss", "modbus", "supply_loss", "group", blocks=True),
    Variant("supply_loss:fcd", "supply_loss", "modbus", "supply_loss", "facade", blocks=True),
    Variant("cable_theft_suspected:gateway", "cable_theft_suspected", "modbus", "cable_theft", "gateway",
            blocks=True),
    Variant("comm_loss:slc-silent", "comm_loss", "slc", "silence", "lamp_direct", 3, blocks=True),
    Variant("comm_loss:slc-offline", "comm_loss", "slc", "offline", "lamp_direct", 3, blocks=True),
    Variant("comm_loss:slc-silent-behind-concentrator", "comm_loss", "slc", "silence", "lamp_behind", 3,
            blocks=True),
    Variant("comm_loss:concentrator-silent", "comm_loss", "slc", "silence", "concentrator", 3, blocks=True),
    Variant("comm_loss:zhd-no-response", "comm_loss", "modbus", "no_response", "group", 3, blocks=True),
    Variant("comm_loss:gateway-hang", "comm_loss", "modbus", "gateway_hang", "gateway", 3, blocks=True),
    Variant("comm_loss:fcd-hang", "comm_loss", "modbus", "gateway_hang", "facade", 3, blocks=True),
    # A welded relay on a controller that cannot sense it: no bit1, the lamp burns by day.
    Variant("day_burner:slc-welded", "day_burner", "slc", "relay_stuck_on", "lamp", rule_window_s=600.0,
            shows="lamp_dark", params=(("bit", 0.0),), from_first_report=True),
    # A jumper around K2's contactor: coil and feedback off after 23:30, the side heads still burn.
    Variant("day_burner:zhd-k2-bypass", "day_burner", "modbus", "contactor_bypass", "group",
            rule_window_s=600.0, shows="k2_off", params=(("circuit", "k2"),), from_first_report=True),
    Variant("dim_mismatch:slc-half", "dim_mismatch", "slc", "power_share", "lamp_dimmable", 3,
            shows="lamp_lit", params=(("share", 0.5),)),
    Variant("dim_mismatch:slc-overdrive", "dim_mismatch", "slc", "power_share", "lamp_dimmable", 3,
            shows="lamp_lit", params=(("share", 1.4),)),
    Variant("command_failed:slc-deaf", "command_failed", "slc", "deaf", "lamp_direct", shows="lamp_lit",
            over_step=True),
    # An illegal tap on a 中华灯 group without LED drivers: +40 % on every lit circuit all night; no
    # per-reading rule sees it (dim_mismatch is for dimmable devices only).
    Variant("energy_anomaly:zhd-extra-load", "energy_anomaly", "modbus", "extra_load", "group_fixed",
            whole_night=True, params=(("share", 0.4),)),
    Variant("none:zhd-cold-cabinet", None, "modbus", "temperature", "group", params=(("c", -15.0),)),
    Variant("none:zhd-warm-cabinet", None, "modbus", "temperature", "group", params=(("c", 65.0),)),
)  # fmt: skip

# Alarm types of design.md section 4 that no simulator fault produces, and why.
NOT_EVALUATED: dict[str, str] = {
    "calendar_data_missing": "not a field fault (a missing holiday file); skipped as the brief says",
}


@dataclass(frozen=True, slots=True)
class Injection:
    """One planned fault: the simulator target, its clock-time interval and what should detect it."""

    ident: int
    variant: Variant
    target: str  # the simulator's target id, which is also the device the expected alarm names
    start: float
    end: float
    interval_s: float  # report interval of the alarm's device
    window_end: float | None = None  # the rule's window ends here (a step's last retry, the close)

    @property
    def deadline_s(self) -> float:
        """design.md section 9: the rule's own window plus one report interval."""
        v = self.variant
        if self.window_end is not None:
            return self.window_end - self.start + self.interval_s
        window = v.rule_window_s if v.rule_window_s is not None else v.reports * self.interval_s
        if v.from_first_report:
            window += self.interval_s
        return window + self.interval_s


@dataclass
class Timeline:
    """Each device's desired state sampled every SAMPLE_S over the run, and its step times."""

    t0: float
    states: dict[str, list[DesiredState]]
    steps: dict[str, list[float]]

    def state(self, device: str, t: float) -> DesiredState:
        series = self.states[device]
        return series[max(0, min(len(series) - 1, int((t - self.t0) // SAMPLE_S)))]

    @classmethod
    def build(cls, resolver: Resolver, devices: list[str], t0: float, t1: float) -> Timeline:
        times = [t0 + i * SAMPLE_S for i in range(int((t1 - t0) // SAMPLE_S) + 1)]
        states = {d: [resolver.desired(d, t) for t in times] for d in devices}
        steps = {
            d: [times[i] for i in range(1, len(times)) if not s[i].same_output(s[i - 1])]
            for d, s in states.items()
        }
        return cls(t0, states, steps)


def _shows(kind: Shows) -> Callable[[DesiredState], bool]:
    def level(s: DesiredState) -> int:
        return 100 if s.level is None else s.level

    checks: dict[Shows, Callable[[DesiredState], bool]] = {
        "any": lambda s: True,
        "lamp_lit": lambda s: s.on is True and level(s) > 0,
        "lamp_pf": lambda s: s.on is True and level(s) >= 50,
        "lamp_dark": lambda s: s.on is not True,
        "k1_on": lambda s: s.k1 is True,
        "k1_off": lambda s: s.k1 is not True,
        "k2_on": lambda s: s.k2 is True,
        "k2_off": lambda s: s.k2 is not True,
    }
    return checks[kind]


@dataclass
class Planner:
    district: District
    timeline: Timeline
    rng: random.Random
    interval_of: dict[str, float]  # alarm device -> report interval (s)
    clear_of_steps: bool = True  # False: `blocks` faults may span schedule steps (to see what follows)
    busy: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    command_s: float = 180.0  # a command's attempts and retries, clock s (over_step variants)
    close_at: float | None = None  # the night's energy is judged then (whole_night variants)
    whole: set[str] = field(default_factory=set)  # whole-night targets: no other fault on them
    judged_energy: frozenset[str] = frozenset()  # devices whose night's energy has a baseline

    def candidates(self, target: Target) -> list[str]:
        d = self.district
        lamps = [x for x in d.devices.values() if x.kind == "lamp"]
        pools: dict[Target, list[str]] = {
            "lamp": [x.id for x in lamps],
            "lamp_direct": [x.id for x in lamps if x.concentrator is None],
            "lamp_dimmable": [x.id for x in lamps if x.dimmable],
            "lamp_behind": [x.id for x in lamps if x.concentrator is not None],
            "concentrator": [c.id for c in d.concentrators.values() if c.lamps],
            "group": [x.id for x in d.devices.values() if x.kind == "group"],
            "group_fixed": [x.id for x in d.devices.values() if x.kind == "group" and not x.dimmable],
            "gateway": [g.id for g in d.gateways.values() if g.units],
            "facade": [x.id for x in d.devices.values() if x.kind == "facade"],
        }
        return pools[target]

    def members(self, target: str) -> list[str]:
        return members_of(self.district, target)

    def locks(self, v: Variant, target: str) -> list[str]:
        names = [target, *self.members(target)]
        dev = self.district.devices.get(target)
        gateway = target if target in self.district.gateways else (dev.gateway if dev else None)
        if gateway is not None and v.fault in ("supply_loss", "cable_theft"):
            names.append(f"feeder:{gateway}")  # never 3 groups of a feeder without supply by chance
        return names

    def place(
        self, ident: int, v: Variant, t_first: float, t_last: float, tries: int = 200
    ) -> Injection | None:
        if v.over_step:
            return self.place_over_step(ident, v, t_first, t_last, tries)
        if v.whole_night:
            return self.place_whole_night(ident, v, t_first, t_last, tries)
        pool = self.candidates(v.target)
        shows = _shows(v.shows)
        for _ in range(tries):
            target = self.rng.choice(pool)
            if target in self.whole:
                continue
            interval = self.interval_of[target]
            window = v.rule_window_s if v.rule_window_s is not None else v.reports * interval
            window += interval if v.from_first_report else 0.0
            needed = window + 3 * interval  # past the deadline, so a late alarm would still be seen
            duration = needed + self.rng.uniform(0, 40 * 60)
            start = self.rng.uniform(t_first, t_last - duration)
            if start < t_first:
                continue
            end = start + duration
            members = self.members(target)
            if v.shows != "any" and not all(
                shows(self.timeline.state(m, t))
                for m in members
                for t in _range(start - SETTLE_S, start + needed + SETTLE_S)
            ):
                continue
            if (
                v.blocks
                and self.clear_of_steps
                and any(
                    start - SETTLE_S <= s <= end + SETTLE_S for m in members for s in self.timeline.steps[m]
                )
            ):
                continue
            cool = 2 * interval + FLAP_HOLDOFF_S + 2 * interval  # cleared, resolved, and some quiet
            span = (start - 2 * interval, end + cool)
            names = self.locks(v, target)
            if any(_overlaps(span, self.busy.get(n, [])) for n in names):
                continue
            for n in names:
                self.busy.setdefault(n, []).append(span)
            return Injection(ident, v, target, start, end, interval)
        return None

    def place_over_step(
        self, ident: int, v: Variant, t_first: float, t_last: float, tries: int
    ) -> Injection | None:
        """Around one schedule step of the device, lit before and after it (a dimming step), clear
        of its other steps."""
        pool = self.candidates(v.target)
        shows = _shows(v.shows)
        for _ in range(tries):
            target = self.rng.choice(pool)
            interval = self.interval_of[target]
            steps = [x for x in self.timeline.steps[target] if t_first + SETTLE_S + 600 < x < t_last]
            if not steps:
                continue
            step = self.rng.choice(steps)
            start = step - self.rng.uniform(SETTLE_S, 600.0)
            window_end = step + self.command_s
            end = window_end + 3 * interval + self.rng.uniform(0, 600.0)
            if end > t_last or not all(
                shows(self.timeline.state(target, t)) for t in _range(start - SETTLE_S, end + SETTLE_S)
            ):
                continue
            if any(start - SETTLE_S <= x <= end + SETTLE_S for x in self.timeline.steps[target] if x != step):
                continue
            # The device stays in the state it missed until its next step (the reconciler gives up on
            # a desired state until it changes): no other fault on it until then.
            later = [x for x in self.timeline.steps[target] if x > step]
            until = max(
                end + 2 * interval + FLAP_HOLDOFF_S, (later[0] + SETTLE_S) if later else t_last + 3600.0
            )
            span = (start - 2 * interval, until)
            if _overlaps(span, self.busy.get(target, [])):
                continue
            self.busy.setdefault(target, []).append(span)
            return Injection(ident, v, target, start, end, interval, window_end)
        return None

    def place_whole_night(
        self, ident: int, v: Variant, t_first: float, t_last: float, tries: int
    ) -> Injection | None:
        """From the run's first to its last moment, on a device nothing else happens to."""
        if self.close_at is None:
            return None
        pool = [x for x in self.candidates(v.target) if x not in self.busy and x in self.judged_energy]
        # All on one feeder (the one with most candidates), so that the others stay free for the
        # faults of whole gateways, which must not overlap a fault of one of their groups.
        feeders: dict[str | None, list[str]] = {}
        for x in pool:
            feeders.setdefault(self.district.devices[x].gateway, []).append(x)
        if not feeders:
            return None
        pool = max(feeders.values(), key=len)
        target = self.rng.choice(pool)
        interval = self.interval_of[target]
        if self.close_at + interval > t_last:
            return None
        self.whole.add(target)
        self.busy.setdefault(target, []).append((t_first - 3600.0, t_last + 3600.0))
        return Injection(ident, v, target, t_first, t_last, interval, self.close_at)


def members_of(district: District, target: str) -> list[str]:
    """Devices whose state a fault of `target` touches (a gateway's units, a concentrator's lamps)."""
    if target in district.gateways:
        return list(district.gateways[target].units)
    if target in district.concentrators:
        return list(district.concentrators[target].lamps)
    return [target]


def _range(a: float, b: float) -> list[float]:
    n = max(1, int((b - a) // SAMPLE_S) + 1)
    return [a + i * SAMPLE_S for i in range(n)] + [b]


def _overlaps(span: tuple[float, float], taken: list[tuple[float, float]]) -> bool:
    return any(a < span[1] and span[0] < b for a, b in taken)


def plan_night(
    district: District,
    resolver: Resolver,
    t0: float,
    t1: float,
    rng: random.Random,
    per_variant: int,
    interval_of: dict[str, float],
    warmup_s: float = 300.0,
    clear_of_steps: bool = True,
    command_s: float = 180.0,
    close_at: float | None = None,
    judged_energy: frozenset[str] = frozenset(),
) -> tuple[list[Injection], list[str]]:
    """Injections for one run over [t0, t1] (clock time), each variant `per_variant` times, in
    random order; returns them and the variants that found no place (named). `command_s`: how long
    a command's attempts take; `close_at`: when the night's energy is judged (None: not in the run);
    `judged_energy`: devices with a baseline for that night (energy_anomaly goes only there)."""
    devices = list(district.devices)
    timeline = Timeline.build(resolver, devices, t0 - SAMPLE_S, t1 + SAMPLE_S)
    planner = Planner(
        district, timeline, rng, interval_of, clear_of_steps, command_s=command_s, close_at=close_at,
        judged_energy=judged_energy,
    )  # fmt: skip
    order = [v for v in VARIANTS for _ in range(per_variant)]
    rng.shuffle(order)
    # Hard-to-place variants first: whole nights, whole gateways and concentrators, then the rest.
    order.sort(key=lambda v: (not v.whole_night, v.target not in ("gateway", "concentrator")))
    planned: list[Injection] = []
    unplaced: list[str] = []
    for v in order:
        inj = planner.place(len(planned) + 1, v, t0 + warmup_s, t1 - 300.0)
        if inj is None:
            unplaced.append(v.name)
        else:
            planned.append(inj)
    planned.sort(key=lambda i: i.start)
    return planned, unplaced
