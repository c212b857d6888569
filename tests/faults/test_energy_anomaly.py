"""energy_anomaly: a night's energy against the median of the device's earlier nights on the same
program (lightctl/faults/energy.py), and the watch that closes each night from the telemetry store
(lightctl/faults/energy_watch.py) against a real SQLite telemetry database, keeping the nights in
the state database (SQLite and PostgreSQL) for its next start."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lightctl.clock import ManualClock
from lightctl.config.loader import District
from lightctl.config.settings import Partition, Thresholds
from lightctl.faults.energy import EnergyHistory, judge_energy
from lightctl.faults.energy_watch import EnergyWatch, owner_of
from lightctl.faults.lifecycle import AlarmManager
from lightctl.faults.store import MemoryAlarmStore
from lightctl.model import DesiredState, Override, Reading
from lightctl.schedule.resolve import Resolver
from lightctl.store.sqlite_ts import SqliteTelemetry
from lightctl.store.state import EnergyNight, StateDB
from lightctl.store.state_sqlite import SqliteStateDB

# The state database on SQLite and on a PostgreSQL schema of its own, as the store tests use it.
from tests.store.conftest import StateTarget, pg_schema, postgresql, state_target  # noqa: F401

from .harness import Recorder

TH = Thresholds()
NIGHT = dt.date(2025, 10, 20)
ONE = dt.timedelta(days=1)


def verdict(kwh: float, previous: list[float], program: str | None = "p", th: Thresholds = TH) -> str | None:
    v = judge_energy(NIGHT, kwh, program, previous, th)
    assert v.judged
    return v.evidence


def test_no_judgement_without_enough_nights_a_program_or_energy() -> None:
    assert not judge_energy(NIGHT, 9.0, "p", [1.0, 1.0], TH).judged  # 2 nights < energy_min_nights 3
    assert not judge_energy(NIGHT, 9.0, None, [1.0] * 5, TH).judged  # an override touched the night
    assert not judge_energy(NIGHT, 9.0, "p", [0.01] * 5, TH).judged  # baseline under energy_min_kwh
    assert judge_energy(NIGHT, 1.0, "p", [1.0] * 3, TH).judged


@pytest.mark.parametrize(
    ("kwh", "faulty"),
    [(1.0, False), (1.199, False), (1.20, False), (1.201, True), (0.801, False), (0.80, False),
     (0.799, True), (0.0, True), (2.0, True)],
)  # fmt: skip
def test_more_than_twenty_percent_either_way(kwh: float, faulty: bool) -> None:
    assert (verdict(kwh, [1.0, 1.0, 1.0]) is not None) is faulty


def test_the_evidence_names_the_night_the_figures_and_the_baseline() -> None:
    text = verdict(1.3, [1.0, 0.98, 1.02])
    assert text == (
        "night of 2025-10-20: 1.300 kWh = +30% against the baseline 1.000 kWh (median of 3 nights on program p)"
    )


def test_the_baseline_is_a_median_of_the_last_nights() -> None:
    # one odd night (a fault, a night cut short) does not move the median
    assert verdict(1.0, [1.0, 0.2, 1.0, 1.0, 1.0]) is None
    # only the last energy_baseline_nights count: older nights at 2 kWh are forgotten
    th = Thresholds(energy_baseline_nights=3)
    assert verdict(1.0, [2.0, 2.0, 2.0, 1.0, 1.0, 1.0], th=th) is None
    assert verdict(1.0, [2.0, 2.0, 2.0, 1.0, 1.0, 1.0]) is not None  # median of 6 is 1.5


def test_history_keeps_each_program_apart_in_night_order() -> None:
    h = EnergyHistory(["a", "b"], keep=10)
    for n in range(6):
        night = NIGHT - (6 - n) * ONE
        h.add(night, {"a": ("week" if n % 2 else "weekend", float(n)), "b": (None, 5.0)})
    h.add(NIGHT - 8 * ONE, {"a": ("week", 99.0)})  # read back late: still in night order
    assert h.previous("a", "week", NIGHT, 10) == [99.0, 1.0, 3.0, 5.0]
    assert h.previous("a", "week", NIGHT, 2) == [3.0, 5.0]
    assert h.previous("a", "weekend", NIGHT - 2 * ONE, 10) == [0.0, 2.0]
    assert h.previous("b", None, NIGHT, 10) == []  # no program: never a baseline
    assert h.previous("zz", "week", NIGHT, 10) == []
    h.add(NIGHT - ONE, {"a": ("week", 0.0), "b": ("week", 4.0)})  # the same night again: fills gaps only
    assert h.previous("a", "week", NIGHT, 1) == [5.0]
    assert h.previous("b", "week", NIGHT, 9) == []  # b had a figure (no program): kept
    h.add(NIGHT - 7 * ONE, {"b": ("week", 4.0)})  # a night b had no figure for
    assert h.previous("b", "week", NIGHT, 9) == [4.0]


def test_history_forgets_nights_beyond_keep() -> None:
    h = EnergyHistory(["a"], keep=3)
    for n in range(5):
        h.add(NIGHT + n * ONE, {"a": ("p", float(n))})
    assert h.previous("a", "p", NIGHT + 9 * ONE, 10) == [2.0, 3.0, 4.0]


def test_history_columns_go_back_in_whole_or_by_device() -> None:
    h = EnergyHistory(["a", "b", "c"], keep=10)
    h.add(NIGHT - 2 * ONE, {"a": ("week", 1.0), "b": (None, 2.0)})
    h.add(NIGHT - ONE, {"a": ("weekend", 3.0), "c": ("week", 4.0)})
    saved = {n: EnergyNight.pack(n, "", *(h.columns(n) or ())) for n in (NIGHT - 2 * ONE, NIGHT - ONE)}
    assert h.columns(NIGHT) is None
    assert saved[NIGHT - 2 * ONE].figures() == {"a": ("week", 1.0), "b": (None, 2.0)}  # "c": no figure
    # the same inventory, programs met in another order: the arrays are taken whole, indices mapped
    same = EnergyHistory(["a", "b", "c"], keep=10)
    same.add(NIGHT - 5 * ONE, {"a": ("weekend", 9.0)})
    # another inventory: device by device
    other = EnergyHistory(["c", "a", "z"], keep=10)
    for h2 in (same, other):
        for n in sorted(saved, reverse=True):
            h2.add_columns(n, *saved[n].columns())
        assert h2.previous("a", "week", NIGHT, 9) == [1.0]
        assert h2.previous("a", "weekend", NIGHT, 9)[-1:] == [3.0]
        assert h2.previous("c", "week", NIGHT, 9) == [4.0]
        assert h2.previous("b", None, NIGHT, 9) == []
    assert [n.night for n in same.nights] == [NIGHT - 5 * ONE, NIGHT - 2 * ONE, NIGHT - ONE]


# --- the watch, on a telemetry database ------------------------------------------------------------

LAMP = "ha-001"
OTHER = "ha-002"


class Rig:
    def __init__(
        self, district: District, store: SqliteTelemetry, clock: ManualClock, state: StateDB | None = None
    ) -> None:
        self.district = district
        self.store = store
        self.clock = clock
        self.resolver = Resolver.for_district(district)
        self.rec = Recorder()
        self.manager = AlarmManager(MemoryAlarmStore(), clock, events=self.rec)
        self.watch = EnergyWatch(district, lambda: self.resolver, self.manager, clock, store, state)
        self.counter = dict.fromkeys(district.devices, 100.0)

    async def night(self, night: dt.date, kwh: dict[str, float]) -> None:
        """Readings of a night: every device's counter rises by `kwh` (default 1) between its
        window's start and end, in hourly reports (lamps lit in between)."""
        start, end = self.watch.bounds(night)
        batch: list[Reading] = []
        hours = int((end - start) // 3600)
        for dev in sorted({LAMP, OTHER, *kwh}):
            total = kwh.get(dev, 1.0)
            batch.append(Reading(dev, start - 600, None, {"energy_kwh": self.counter[dev], "power": 0.0}))
            for h in range(hours):
                ts = start + 60 + h * 3600
                self.counter[dev] += total / hours
                batch.append(Reading(dev, ts, None, {"energy_kwh": self.counter[dev], "power": 50.0}))
        await self.store.write(batch)

    def program(self, dev: str, night: dt.date) -> str | None:
        start, end = self.watch.bounds(night)
        return self.watch.programs(night, start, end)[dev]

    async def close(self, night: dt.date) -> None:
        self.clock.set(self.watch.bounds(night)[1] + 200)
        figures = await self.watch.figures(night)
        self.watch.judge(night, figures, self.clock.now())
        await self.watch.save(night)
        await self.manager.flush()

    async def run_until_judged(self, night: dt.date) -> None:
        """Start the watch on the afternoon of `night` (earlier nights are history), then move the
        clock past the night's close and wait for the watch to judge it."""
        self.clock.set(self.watch.bounds(night)[0] + 6 * 3600)
        task = asyncio.create_task(self.watch.run())
        try:
            # Wait for the whole restore: the last closed night it judges must not pass for the
            # judgement of `night` below.
            for _ in range(2000):  # up to 20 s on a busy machine
                await asyncio.sleep(0.01)
                if (
                    self.watch.stats["nights_loaded"] + self.watch.stats["nights_read_back"]
                    >= self.watch.keep
                ):
                    break
            assert self.open_alarms() == []
            judged = self.judged()  # the night before may have been judged at start
            saved = self.watch.stats["nights_saved"]
            self.clock.set(self.watch.bounds(night)[1] + 121)
            for _ in range(2000):  # up to 20 s on a busy machine
                await asyncio.sleep(0.01)
                await self.manager.flush()
                if self.judged() > judged and (
                    self.watch.state is None or self.watch.stats["nights_saved"] > saved
                ):
                    break
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await self.manager.flush()

    def judged(self) -> int:
        return self.watch.stats["normal"] + self.watch.stats["anomalies"] + self.watch.stats["not_judged"]

    def open_alarms(self) -> list[tuple[str, str]]:
        return [(a.type, a.device) for a in self.manager.open_alarms()]


@pytest.fixture
async def rig(district: District, tmp_path: Path) -> AsyncIterator[Rig]:
    store = SqliteTelemetry(tmp_path / "telemetry.db")
    await store.open()
    try:
        yield Rig(district, store, ManualClock(dt.datetime(2025, 9, 1, 8, tzinfo=dt.UTC).timestamp()))
    finally:
        await store.close()


def same_program_nights(rig: Rig, start: dt.date, count: int) -> list[dt.date]:
    program = rig.program(LAMP, start)
    out, night = [], start
    while len(out) < count:
        if rig.program(LAMP, night) == program:
            out.append(night)
        night += ONE
    return out


async def test_raise_at_the_close_clear_the_next_normal_night_and_raise_again(rig: Rig) -> None:
    nights = same_program_nights(rig, dt.date(2025, 9, 1), 7)
    for night in nights[:3]:
        await rig.night(night, {})
        await rig.close(night)
    assert rig.open_alarms() == []  # the baseline is being built: not judged yet
    await rig.night(nights[3], {LAMP: 1.3})
    await rig.close(nights[3])
    assert rig.open_alarms() == [("energy_anomaly", LAMP)]
    (alarm,) = rig.manager.open_alarms()
    assert alarm.severity == "minor"
    assert alarm.detail.startswith(
        f"night of {nights[3].isoformat()}: 1.300 kWh = +30% against the baseline 1.000"
    )
    assert alarm.first_seen == rig.watch.bounds(nights[3])[1] + 200
    await rig.night(nights[4], {LAMP: 1.05})
    await rig.close(nights[4])
    assert rig.open_alarms() == []
    assert [a.device for a in rig.rec.of("resolved")] == [LAMP]
    await rig.night(nights[5], {LAMP: 0.7})
    await rig.close(nights[5])
    assert rig.open_alarms() == [("energy_anomaly", LAMP)]
    assert len(rig.rec.of("raised")) == 2  # a new episode
    assert "-30%" in rig.manager.open_alarms()[0].detail


async def test_nights_on_another_program_are_not_its_baseline(rig: Rig) -> None:
    group = "zhg-01-u01"  # half-night program, and the holiday program in the National Day week
    programs: dict[str | None, list[dt.date]] = {}
    for n in range(30):
        night = dt.date(2025, 9, 24) + n * ONE
        programs.setdefault(rig.program(group, night), []).append(night)
    assert set(programs) == {"zhonghua-half-night", "zhonghua-holiday"}
    holiday = programs["zhonghua-holiday"]
    for n in sorted({*programs["zhonghua-half-night"], *holiday}):
        # the holiday program keeps K2 on to midnight: half again as much energy
        await rig.night(n, {group: 1.5 if n in holiday else 1.0})
        await rig.close(n)
    assert rig.open_alarms() == []
    assert rig.watch.stats["normal"] > 20


async def test_a_night_under_an_override_is_neither_judged_nor_a_baseline(rig: Rig) -> None:
    nights = same_program_nights(rig, dt.date(2025, 9, 1), 5)
    for night in nights[:3]:
        await rig.night(night, {})
        await rig.close(night)
    start, _end = rig.watch.bounds(nights[3])
    rig.resolver.set_overrides(
        [Override(1, "manual", (LAMP,), DesiredState(on=True, level=100), start + 3600, start + 7200, "test")]
    )
    await rig.night(nights[3], {LAMP: 3.0})
    await rig.close(nights[3])
    assert rig.open_alarms() == []
    assert rig.watch.stats["not_judged"] >= 1
    await rig.night(nights[4], {LAMP: 1.0})
    await rig.close(nights[4])
    assert rig.watch.history.previous(LAMP, rig.program(LAMP, nights[4]), nights[4] + ONE, 9) == [1.0] * 4


async def test_at_start_earlier_nights_are_read_back_and_the_next_close_judged(rig: Rig) -> None:
    nights = same_program_nights(rig, dt.date(2025, 9, 1), 5)
    for night in nights:
        await rig.night(night, {LAMP: 2.0 if night == nights[-1] else 1.0})
    # no state database: the earlier nights come from the telemetry store
    await rig.run_until_judged(nights[-1])
    assert rig.open_alarms() == [("energy_anomaly", LAMP)]
    assert "+100%" in rig.manager.open_alarms()[0].detail
    assert rig.watch.stats["nights_read_back"] == rig.watch.keep


async def test_a_night_that_closed_while_the_watch_was_down_is_judged_when_it_starts(rig: Rig) -> None:
    nights = same_program_nights(rig, dt.date(2025, 9, 1), 5)
    for night in nights:
        await rig.night(night, {LAMP: 2.0 if night == nights[-1] else 1.0})
    rig.clock.set(rig.watch.bounds(nights[-1])[1] + 60)  # closed, not yet judged, when it starts
    task = asyncio.create_task(rig.watch.run())
    try:
        for _ in range(2000):  # up to 20 s on a busy machine
            await asyncio.sleep(0.01)
            if rig.watch.stats["anomalies"]:
                break
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await rig.manager.flush()
    assert rig.open_alarms() == [("energy_anomaly", LAMP)]


async def test_saved_nights_are_the_history_after_a_restart_without_reading_telemetry(
    district: District,
    tmp_path: Path,
    state_target: StateTarget,  # noqa: F811
) -> None:
    clock = ManualClock(dt.datetime(2025, 9, 1, 8, tzinfo=dt.UTC).timestamp())
    before = SqliteTelemetry(tmp_path / "before.db")
    after = SqliteTelemetry(tmp_path / "after.db")  # the restarted run's store: only the night judged
    await before.open()
    await after.open()
    state = await state_target.open()
    try:
        first = Rig(district, before, clock, state)
        nights = same_program_nights(first, dt.date(2025, 9, 1), 4)
        every = [nights[0] + i * ONE for i in range((nights[-1] - nights[0]).days)]
        for night in every:
            await first.night(night, {})
        # the first run starts before them (nothing to read back yet) and closes each of them
        await first.watch.restore(nights[0])
        assert first.watch.stats["nights_read_back"] == first.watch.keep
        for night in every:
            await first.close(night)
        assert first.open_alarms() == []
        await state.close()

        state = await state_target.open()
        saved = await state.load_energy_nights(dt.date(2000, 1, 1))
        keep = first.watch.keep
        # pruned to the lookback: exactly what the next start needs
        assert [n.night for n in saved] == [every[-1] - i * ONE for i in range(keep - 1, -1, -1)]
        assert saved[-1].figures()[LAMP] == (first.program(LAMP, every[-1]), 1.0)

        second = Rig(district, after, clock, state)
        await second.night(nights[-1], {LAMP: 1.3})
        await second.run_until_judged(nights[-1])
        assert second.watch.stats["nights_loaded"] == keep
        assert second.watch.stats["nights_read_back"] == 0
        assert second.open_alarms() == [("energy_anomaly", LAMP)]
        assert "+30% against the baseline 1.000 kWh" in second.manager.open_alarms()[0].detail
        # the judged night was saved in turn, and the oldest one pruned
        again = await state.load_energy_nights(dt.date(2000, 1, 1))
        assert [n.night for n in again] == [nights[-1] - i * ONE for i in range(keep - 1, -1, -1)]
    finally:
        await state.close()
        await before.close()
        await after.close()


async def test_a_partition_uses_nights_another_saved_for_its_devices(
    district: District, tmp_path: Path
) -> None:
    assert owner_of(None) == ""
    assert owner_of(Partition(roads=["binhe", "zhonghua"], gateways=["zhg-01"])) == (
        "roads=binhe,zhonghua;gateways=zhg-01"
    )
    clock = ManualClock(dt.datetime(2025, 9, 1, 8, tzinfo=dt.UTC).timestamp())
    store = SqliteTelemetry(tmp_path / "telemetry.db")
    await store.open()
    state = await SqliteStateDB.open(tmp_path / "state.db")
    try:
        rig = Rig(district, store, clock, state)
        rig.watch.owner = "roads=b"
        nights = same_program_nights(rig, dt.date(2025, 9, 1), 4)
        window = [nights[-1] - i * ONE for i in range(rig.watch.keep, 0, -1)]
        for night in window:
            if night in nights[:3]:  # closed by the instance that owned the lamp before a handover
                figures = {LAMP: (rig.program(LAMP, night), 1.0)}
                await state.save_energy_night(EnergyNight.of(night, "roads=a", figures))
            elif night == window[0]:  # another partition's night, none of these devices: read back
                await state.save_energy_night(EnergyNight.of(night, "roads=c", {"zz-999": ("p", 1.0)}))
            else:
                await state.save_energy_night(EnergyNight.of(night, "roads=b", {}))
        await rig.night(nights[-1], {LAMP: 1.3})
        await rig.run_until_judged(nights[-1])
        assert rig.watch.stats["nights_loaded"] == rig.watch.keep - 1
        assert rig.watch.stats["nights_read_back"] == 1
        assert rig.open_alarms() == [("energy_anomaly", LAMP)]
    finally:
        await state.close()
        await store.close()


def test_the_window_closes_on_the_hour_after_sunrise(rig: Rig) -> None:
    start, end = rig.watch.bounds(NIGHT)
    sunrise = rig.resolver.sun.night(NIGHT).sunrise
    assert end % 3600 == 0
    assert start % 3600 == 0
    assert sunrise + 1800 <= end < sunrise + 1800 + 3600
    assert rig.watch.bounds(NIGHT + ONE)[0] == end
