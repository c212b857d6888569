"""Nightly energy figures in the state database (state.EnergyNight), on SQLite and PostgreSQL: what
goes in comes back after a reopen, a (night, owner) saved again is replaced, and pruning drops only
the nights before the cutoff."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from lightctl.store.state import EnergyNight
from tests.store.conftest import StateTarget

NIGHT = dt.date(2025, 10, 20)
ONE = dt.timedelta(days=1)


def test_packing_keeps_devices_programs_and_float32_figures() -> None:
    figures = {"ha-001": ("week", 1.3), "ha-002": (None, 0.0), "zhg-01-u01": ("week", 2.0), "x": ("hol", 0.1)}
    packed = EnergyNight.of(NIGHT, "", figures)
    assert len(packed.kwh) == 4 * 4  # float32, as the watch holds it
    assert len(packed.program) == 2 * 4
    back = packed.figures()
    assert list(back) == list(figures)
    for dev, (program, kwh) in figures.items():
        assert back[dev][0] == program
        assert math.isclose(back[dev][1], kwh, rel_tol=1e-6)
    assert EnergyNight.of(NIGHT, "", {}).figures() == {}


def test_a_damaged_night_is_refused_rather_than_misread() -> None:
    packed = EnergyNight.of(NIGHT, "", {"a": ("p", 1.0), "b": ("p", 2.0)})
    cut = EnergyNight(NIGHT, "", packed.devices, packed.programs, packed.program, packed.kwh[:4])
    with pytest.raises(ValueError, match="unequal"):
        cut.figures()


async def test_nights_survive_a_reopen_are_replaced_per_owner_and_pruned(state_target: StateTarget) -> None:
    db = await state_target.open()
    try:
        for n in range(5):
            night = NIGHT + n * ONE
            await db.save_energy_night(EnergyNight.of(night, "", {"ha-001": ("p", float(n + 1))}))
        # Another instance's partition on the same night: kept beside it, not over it.
        await db.save_energy_night(EnergyNight.of(NIGHT + 4 * ONE, "roads=binhe", {"ha-101": (None, 7.0)}))
        # The same night of the same owner saved again: replaced.
        await db.save_energy_night(EnergyNight.of(NIGHT + 3 * ONE, "", {"ha-001": ("q", 9.0)}))
    finally:
        await db.close()

    db = await state_target.open()
    try:
        nights = await db.load_energy_nights(NIGHT + ONE)
        assert [(n.night, n.owner) for n in nights] == [
            (NIGHT + ONE, ""),
            (NIGHT + 2 * ONE, ""),
            (NIGHT + 3 * ONE, ""),
            (NIGHT + 4 * ONE, ""),
            (NIGHT + 4 * ONE, "roads=binhe"),
        ]
        assert [n.figures() for n in nights] == [
            {"ha-001": ("p", 2.0)},
            {"ha-001": ("p", 3.0)},
            {"ha-001": ("q", 9.0)},
            {"ha-001": ("p", 5.0)},
            {"ha-101": (None, 7.0)},
        ]
        assert await db.prune_energy_nights(NIGHT + 3 * ONE) == 3
        assert await db.prune_energy_nights(NIGHT + 3 * ONE) == 0
        left = await db.load_energy_nights(NIGHT - 100 * ONE)
        assert [(n.night, n.owner) for n in left] == [
            (NIGHT + 3 * ONE, ""),
            (NIGHT + 4 * ONE, ""),
            (NIGHT + 4 * ONE, "roads=binhe"),
        ]
    finally:
        await db.close()
