"""bench/faults.py without running a night: its scoring, its fault catalogue and its planner.

The labelled runs themselves take minutes (bench/faults.py); these check that what they score
and where they put faults is right, against the simulators' and the scheduler's own data.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from bench.faults_night import NightSpec, energy_close_at, interval_of, judged_energy, night_window
from bench.faults_plan import NOT_EVALUATED, SETTLE_S, VARIANTS, members_of, plan_night
from bench.faults_score import Raised, Truth, score
from bench.faults_setup import reduced_district
from lightctl.config.loader import District, load
from lightctl.faults.catalog import ALARM_TYPES
from lightctl.model import DesiredState
from lightctl.schedule.resolve import Resolver
from lightctl.sim.modbus_faults import FAULTS as MODBUS_FAULTS
from lightctl.sim.slc_faults import Fault as SlcFault

CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def _truth(ident: int, alarm: str | None, device: str, start: float, **kw: object) -> Truth:
    fields: dict[str, object] = {
        "night": "n",
        "ident": ident,
        "variant": f"{alarm}:test",
        "alarm": alarm,
        "device": device,
        "start": start,
        "end": start + 1000.0,
        "deadline_s": 120.0,
        "late_s": 120.0,
    }
    fields.update(kw)
    return Truth(**fields)  # type: ignore[arg-type]


def _alarm(ident: int, kind: str, device: str, at: float, parent: int | None = None) -> Raised:
    return Raised("n", ident, kind, device, at, parent, "")


def test_scoring_tells_detections_late_alarms_and_false_positives_apart() -> None:
    truths = [
        _truth(1, "lamp_failure", "ha-001", 1000.0),
        _truth(2, "lamp_failure", "ha-002", 1000.0),
        _truth(3, "comm_loss", "zhg-01", 5000.0, members=("zhg-01-u01",)),
        _truth(4, None, "zhg-09-u21", 8000.0),
    ]
    alarms = [
        _alarm(10, "lamp_failure", "ha-001", 1060.0),  # on time: 60 s
        _alarm(11, "lamp_failure", "ha-001", 1070.0),  # a second alarm for the same fault
        _alarm(12, "lamp_failure", "ha-002", 1500.0),  # after the 120 s deadline: late
        _alarm(13, "comm_loss", "zhg-01", 5100.0),  # the gateway's own alarm
        _alarm(14, "comm_loss", "zhg-01-u01", 5090.0, parent=13),  # a child: part of 13
        _alarm(15, "leakage", "zhg-09-u21", 8030.0),  # on a harmless condition
        _alarm(16, "voltage_low", "dz-001", 9000.0),  # nothing injected there
        _alarm(17, "lamp_failure", "ha-001", 999.0),  # before its injection began
    ]
    out = score(truths, alarms)
    lamp = out.types["lamp_failure"]
    assert (lamp.injected, lamp.detected, lamp.late, lamp.false_positives) == (2, 1, 1, 2)
    assert lamp.delays == [60.0]
    assert lamp.summary()["recall"] == 0.5
    assert lamp.summary()["precision"] == 0.5  # 10 and 12 were the faults', 11 and 17 were not
    comm = out.types["comm_loss"]
    assert (comm.injected, comm.detected, comm.false_positives) == (1, 1, 0)
    assert out.types["leakage"].false_positives == 1
    assert out.types["voltage_low"].false_positives == 1
    assert out.variants["None:test"].false_positives == 1  # blamed on the harmless condition
    assert [m["device"] for m in out.misses] == ["ha-002"]
    assert out.misses[0]["late_alarm_after_s"] == 500.0
    during = {f["device"]: f["during"] for f in out.false_positives}
    assert during["dz-001"] is None
    assert during["zhg-09-u21"] is not None


def test_each_alarm_is_used_once_and_the_earliest_on_time_one_wins() -> None:
    truths = [_truth(1, "door_open", "zhg-01-u01", 100.0), _truth(2, "door_open", "zhg-01-u01", 2000.0)]
    alarms = [_alarm(1, "door_open", "zhg-01-u01", 150.0), _alarm(2, "door_open", "zhg-01-u01", 130.0)]
    out = score(truths, alarms)
    assert out.types["door_open"].delays == [30.0]
    door = out.types["door_open"]
    assert (door.detected, door.late, door.false_positives) == (1, 0, 1)  # 150 s: a duplicate
    assert [m["start"] for m in out.misses] == [2000.0]  # an alarm before a fault began is not its


def test_every_alarm_type_is_injected_or_said_why_not() -> None:
    covered = {v.alarm for v in VARIANTS if v.alarm is not None}
    assert covered | set(NOT_EVALUATED) == set(ALARM_TYPES)
    assert not covered & set(NOT_EVALUATED)


def test_every_variant_is_a_fault_the_simulators_have() -> None:
    slc = {f.value for f in SlcFault}
    for v in VARIANTS:
        if v.sim == "slc":
            assert v.fault in slc, v.name
        else:
            kind = MODBUS_FAULTS[v.fault]
            where = "facade" if v.target == "facade" else ("gateway" if v.target == "gateway" else "group")
            assert where in kind.targets, v.name
            assert {k for k, _ in v.params} <= ({kind.param} if kind.param else set()), v.name


@pytest.fixture(scope="module")
def district() -> District:
    return reduced_district(load(CONFIG))


def _shows(kind: str, s: DesiredState) -> bool:
    level = 100 if s.level is None else s.level
    return {
        "any": True,
        "lamp_lit": s.on is True and level > 0,
        "lamp_pf": s.on is True and level >= 50,
        "lamp_dark": s.on is not True,
        "k1_on": s.k1 is True,
        "k1_off": s.k1 is not True,
        "k2_on": s.k2 is True,
        "k2_off": s.k2 is not True,
    }[kind]


def test_a_planned_night_puts_faults_where_and_when_they_can_show(district: District) -> None:
    spec = NightSpec(str(CONFIG), "2025-10-01", 1, 120.0, 2, 5400.0, 7200.0)
    t0, t1, sunset, sunrise, day_type = night_window(spec, district)
    assert day_type == "holiday"
    assert t0 < sunset < sunrise < t1
    resolver = Resolver.for_district(district)
    night = dt.date(2025, 10, 1)
    close_at = energy_close_at(resolver, night)
    judged = judged_energy(district, resolver, night)
    plan, unplaced = plan_night(
        district, resolver, t0, t1, random.Random(3), 2, interval_of(district), close_at=close_at,
        judged_energy=judged,
    )  # fmt: skip
    # National Day is the first night of the 中华灯 holiday program: no baseline for its energy yet
    assert not any(d.startswith("zhg-17") for d in judged)
    assert unplaced == ["energy_anomaly:zhd-extra-load"] * 2
    assert {i.variant.name for i in plan} == {v.name for v in VARIANTS} - {"energy_anomaly:zhd-extra-load"}
    later = dt.date(2025, 10, 15)
    judged_later = judged_energy(district, resolver, later)
    assert {d for d in district.devices if d.startswith("zhg-17")} <= judged_later
    for inj in plan:
        v = inj.variant
        assert t0 <= inj.start < inj.end <= t1, v.name
        members = members_of(district, inj.target)
        # Visible from its start until past its deadline, by the scheduler's own answer every 10 s.
        t = inj.start
        while t <= inj.start + inj.deadline_s:
            for m in members:
                assert _shows(v.shows, resolver.desired(m, t)), (v.name, m, t - inj.start)
            t += 10.0
        if v.blocks:  # nothing to command while it lasts
            for m in members:
                before = resolver.desired(m, inj.start - SETTLE_S + 30)
                t = inj.start - SETTLE_S + 30
                while t <= inj.end + SETTLE_S - 30:
                    assert resolver.desired(m, t).same_output(before), (v.name, m, t - inj.start)
                    t += 10.0
    # One fault at a time per device, a gateway's or concentrator's faults counting for all members.
    spans: dict[str, list[tuple[float, float]]] = {}
    for inj in plan:
        for dev in {inj.target, *members_of(district, inj.target)}:
            for a, b in spans.get(dev, []):
                assert inj.end <= a or b <= inj.start, (inj.variant.name, dev)
            spans.setdefault(dev, []).append((inj.start, inj.end))


def test_the_deadline_is_the_rule_window_plus_one_report_interval(district: District) -> None:
    intervals = interval_of(district)
    assert (intervals["ha-001"], intervals["zhg-01-u01"], intervals["hcx-plc-1"]) == (60.0, 30.0, 60.0)
    resolver = Resolver.for_district(district)
    spec = NightSpec(str(CONFIG), "2025-10-15", 1, 120.0, 1, 5400.0, 3600.0)
    t0, t1, *_ = night_window(spec, district)
    plan, _ = plan_night(district, resolver, t0, t1, random.Random(5), 1, intervals)
    by_name = {i.variant.name: i.deadline_s for i in plan}
    assert by_name["voltage_high:slc"] == 3 * 60 + 60
    assert by_name["comm_loss:gateway-hang"] == 3 * 30 + 30
    assert by_name["cycling:slc"] == 1800 + 60
    assert by_name["lamp_failure:zhd-k1"] == 2 * 30 + 30
