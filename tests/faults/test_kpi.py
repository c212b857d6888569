"""KPI arithmetic on a hand-computed example."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest

from lightctl.faults.kpi import LightingNights, snapshot
from lightctl.model import DesiredState, Reading

from .factory import T0, context, facade, facade_reading, group, group_reading, lamp, lamp_reading


@dataclass
class Status:
    online: bool | None
    last: Reading | None
    last_seen: float | None


ON = DesiredState(on=True, level=100)
BOTH = DesiredState(k1=True, k2=True, level=100)


def example(at: float = T0) -> tuple[list, dict[str, Status], dict[str, DesiredState]]:  # type: ignore[type-arg]
    arterial = [lamp(ident=f"a-{n}") for n in range(1, 5)]
    secondary = [
        dataclasses.replace(lamp(ident=f"b-{n}", rated_w=90.0), road="dezheng-lu", road_class="secondary")
        for n in range(1, 4)
    ]
    groups = [group(ident="g-1"), group(ident="g-2")]
    zone = facade(ident="z-1")
    ctxs = [context(d) for d in [*arterial, *secondary, *groups, zone]]
    fresh = at - 30

    def ok(r: Reading) -> Status:
        return Status(True, r, fresh)

    units = {
        "a-1": ok(lamp_reading(fresh, device="a-1")),
        "a-2": ok(lamp_reading(fresh, device="a-2", power=0.5)),  # dark
        "a-3": Status(False, lamp_reading(at - 900, device="a-3"), at - 900),  # offline: not confirmed lit
        "a-4": ok(lamp_reading(fresh, device="a-4")),
        "b-1": ok(lamp_reading(fresh, device="b-1", rated_w=90.0)),
        "b-2": ok(lamp_reading(fresh, device="b-2", rated_w=90.0, level=40)),  # dimmed, lit
        "b-3": ok(lamp_reading(fresh, device="b-3", rated_w=90.0, on=False)),  # meant to be off
        "g-1": ok(group_reading(fresh, device="g-1")),
        "g-2": ok(group_reading(fresh, device="g-2", i2=0.0)),  # side heads dark: the group is not lit
        "z-1": ok(facade_reading(fresh, device="z-1")),
    }
    desired = {d.device.id: ON for d in ctxs if d.device.kind == "lamp"}
    desired["b-2"] = DesiredState(on=True, level=40)
    desired["b-3"] = DesiredState(on=False)
    desired["g-1"] = desired["g-2"] = BOTH
    desired["z-1"] = DesiredState(scene=1, brightness=100)
    return ctxs, units, desired


def test_lighting_intact_and_online_rates() -> None:
    ctxs, units, desired = example()
    snap = snapshot(ctxs, units, desired, faulty={"a-2", "g-2"}, at=T0)
    light = snap.lighting
    assert (light.overall.ok, light.overall.total, light.overall.unknown) == (6, 9, 1)
    assert light.overall.value == pytest.approx(6 / 9)
    road = light.by_road
    assert (road["hengan-lu"].ok, road["hengan-lu"].total, road["hengan-lu"].target) == (2, 4, 0.98)
    assert (road["dezheng-lu"].ok, road["dezheng-lu"].total, road["dezheng-lu"].target) == (2, 2, 0.96)
    assert road["hengan-lu"].meets is False
    assert road["dezheng-lu"].meets is True
    kind = light.by_kind
    assert [(kind[k].ok, kind[k].total) for k in ("lamp", "group", "facade")] == [(4, 6), (1, 2), (1, 1)]
    assert kind["lamp"].target == 0.96  # arterial and secondary mixed: the general target
    intact = snap.intact
    assert (intact.overall.ok, intact.overall.total) == (8, 10)
    assert (intact.by_kind["lamp"].ok, intact.by_kind["lamp"].total) == (6, 7)
    assert intact.by_kind["group"].value == 0.5
    assert intact.by_kind["facade"].target == 0.90
    assert intact.by_kind["lamp"].target == 0.95
    online = snap.online
    assert (online.overall.ok, online.overall.total, online.overall.target) == (9, 10, None)


def test_night_average_of_samples_while_anything_should_be_lit() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    nights = LightingNights(tz)
    ctxs, units, desired = example()
    nights.add(snapshot(ctxs, units, desired, set(), T0))  # 6 / 9
    units["a-2"] = dataclasses.replace(
        units["a-2"], last=lamp_reading(T0 + 270, device="a-2"), last_seen=T0 + 270
    )
    units["g-2"] = dataclasses.replace(
        units["g-2"], last=group_reading(T0 + 270, device="g-2"), last_seen=T0 + 270
    )
    for ident in ("a-1", "a-4", "b-1", "b-2", "g-1", "z-1"):
        units[ident] = dataclasses.replace(units[ident], last_seen=T0 + 270)
    nights.add(snapshot(ctxs, units, desired, set(), T0 + 300))  # 8 / 9
    day = {k: DesiredState(on=False) if k[0] in "ab" else DesiredState(k1=False, k2=False) for k in desired}
    day["z-1"] = DesiredState(scene=0)
    nights.add(snapshot(ctxs, units, day, set(), T0 + 600))  # nothing should be lit: not a sample
    from lightctl.schedule.night import night_of

    avg = nights.average(night_of(T0, tz))
    assert avg.samples == 2
    assert avg.overall == pytest.approx((6 / 9 + 8 / 9) / 2)
    assert avg.by_road["hengan-lu"] == pytest.approx((2 / 4 + 3 / 4) / 2)
    assert avg.by_kind["group"] == pytest.approx((1 / 2 + 2 / 2) / 2)


async def test_kpi_service_reads_the_live_state_and_the_engine(district: object) -> None:
    from lightctl.faults.catalog import FACILITY_FAULTS
    from lightctl.faults.kpi import KpiService
    from lightctl.state import LiveState

    from .conftest import DIRECT
    from .harness import Harness

    h = Harness(district)  # type: ignore[arg-type]
    live = LiveState(h.district)
    live.reading_listeners.append(h.engine.readings)
    h.desire_all()
    batch = [h.lamp(d) for d in DIRECT[:3]] + [h.lamp(DIRECT[3], power=0.5)]
    for _ in range(2):
        live.readings(batch)
    await h.settle()
    service = KpiService(
        h.engine.contexts,
        live.status,
        h.engine.desired_states,
        lambda: h.manager.faulty_devices(FACILITY_FAULTS),
        h.clock,
        ZoneInfo("Asia/Shanghai"),
    )
    snap = service.sample()
    lamps = snap.lighting.by_kind["lamp"]
    assert (lamps.ok, lamps.total) == (3, 7)  # 3 lit, 1 dark, 3 behind the concentrator never heard
    assert lamps.unknown == 3
    assert snap.intact.by_kind["lamp"].ok == 6  # the dark one has an open lamp_failure
    assert service.night_average().samples == 1
