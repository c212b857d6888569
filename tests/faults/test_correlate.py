"""Cable theft: supply loss on 3 groups of one gateway within one poll cycle is one critical alarm
for the gateway, the groups' supply_loss alarms its children; only the parent is notified."""

from __future__ import annotations

from lightctl.config.loader import District
from lightctl.model import AlarmState, Severity

from .conftest import OTHER_UNITS, UNITS
from .harness import Harness

POLL = 30.0
LOST = frozenset({"supply_lost"})


def poll_cycle(h: Harness, units: tuple[str, ...], lost: set[str], step: float = 0.04) -> None:
    """The gateway polls its units in turn, ~40 ms each, as the driver does."""
    for unit in units:
        if unit in lost:
            h.engine.readings([h.group(unit, volts=0.3, fb1=False, fb2=False, flags=LOST)])
        else:
            h.engine.readings([h.group(unit)])
        h.advance(step, step=step)


async def test_three_groups_losing_supply_in_one_cycle_is_one_cable_theft(feeder_district: District) -> None:
    h = Harness(feeder_district)
    h.desire_all()
    poll_cycle(h, UNITS, set())
    h.advance(POLL)
    poll_cycle(h, UNITS, set(UNITS))  # the feeder cable is cut: every group, same cycle
    await h.settle()
    theft = h.alarms("cable_theft_suspected")
    assert len(theft) == 1
    assert (theft[0].device, theft[0].severity) == ("zhg-01", Severity.CRITICAL)
    losses = h.alarms("supply_loss")
    assert sorted(a.device for a in losses) == sorted(UNITS)
    assert {a.parent for a in losses} == {theft[0].id}
    assert [(a.type, a.device) for a in h.rec.notified()] == [("cable_theft_suspected", "zhg-01")]
    # later cycles: nothing new
    for _ in range(5):
        h.advance(POLL)
        poll_cycle(h, UNITS, set(UNITS))
    await h.settle()
    assert len(h.alarms()) == 1 + len(UNITS)
    assert len(h.rec.notified()) == 1


async def test_a_cut_in_the_middle_of_a_cycle_is_still_one_theft(feeder_district: District) -> None:
    h = Harness(feeder_district)
    h.desire_all()
    poll_cycle(h, UNITS, set())
    h.advance(POLL)
    poll_cycle(h, UNITS, set(UNITS[3:]))  # cut while polling: only the last two see it this cycle
    await h.settle()
    assert h.rec.notified() == []  # two losses: the rest of the gateway has not been polled since
    h.advance(POLL)
    poll_cycle(h, UNITS, set(UNITS))
    await h.settle()
    theft = h.alarms("cable_theft_suspected")
    assert len(theft) == 1
    assert {a.parent for a in h.alarms("supply_loss")} == {theft[0].id}
    assert [a.type for a in h.rec.notified()] == ["cable_theft_suspected"]


async def test_two_groups_losing_supply_are_two_supply_losses(feeder_district: District) -> None:
    h = Harness(feeder_district)
    h.desire_all()
    poll_cycle(h, UNITS, set())
    h.advance(POLL)
    poll_cycle(h, UNITS, set(UNITS[:2]))
    await h.settle()
    assert h.alarms("cable_theft_suspected") == []
    # the whole gateway was polled after the losses: they are notified on their own, at once
    notified = h.rec.notified()
    assert sorted((a.type, a.device, a.parent) for a in notified) == [
        ("supply_loss", UNITS[0], None),
        ("supply_loss", UNITS[1], None),
    ]
    for _ in range(3):
        h.advance(POLL)
        poll_cycle(h, UNITS, set(UNITS[:2]))
    await h.settle()
    assert h.alarms("cable_theft_suspected") == []
    assert len(h.rec.notified()) == 2


async def test_losses_on_different_gateways_do_not_add_up(feeder_district: District) -> None:
    h = Harness(feeder_district)
    h.desire_all()
    poll_cycle(h, UNITS, set(UNITS[:2]))
    poll_cycle(h, OTHER_UNITS, set(OTHER_UNITS[:2]))
    await h.settle()
    assert h.alarms("cable_theft_suspected") == []
    assert len(h.alarms("supply_loss")) == 4


async def test_slow_losses_over_many_cycles_are_not_a_theft(feeder_district: District) -> None:
    h = Harness(feeder_district)
    h.desire_all()
    lost: set[str] = set()
    for unit in UNITS[:3]:  # one more group every five minutes: local faults, not a cut cable
        lost.add(unit)
        for _ in range(10):
            poll_cycle(h, UNITS, lost)
            h.advance(POLL)
    await h.settle()
    assert h.alarms("cable_theft_suspected") == []
    assert len([a for a in h.rec.notified() if a.type == "supply_loss"]) == 3


async def test_a_theft_clears_when_the_supply_returns(feeder_district: District) -> None:
    h = Harness(feeder_district)
    h.desire_all()
    poll_cycle(h, UNITS, set(UNITS))
    await h.settle()
    for _ in range(3):
        h.advance(POLL)
        poll_cycle(h, UNITS, set())  # the cable is repaired
    h.advance(400)
    for _ in range(2):
        poll_cycle(h, UNITS, set())
        h.advance(POLL)
    await h.settle()
    assert all(a.state is AlarmState.RESOLVED for a in h.alarms())
    assert [a.type for a in h.rec.notified("resolved")] == ["cable_theft_suspected"]


async def test_a_single_group_losing_supply_is_notified_once_its_gateway_was_polled(
    feeder_district: District,
) -> None:
    h = Harness(feeder_district)
    h.desire_all()
    poll_cycle(h, UNITS, set())
    h.advance(POLL)
    poll_cycle(h, UNITS[:3], {UNITS[2]})
    await h.settle()
    assert h.rec.notified() == []
    poll_cycle(h, UNITS[3:], set())
    poll_cycle(h, UNITS[:2], set())  # next cycle reaches the units polled before it
    await h.settle()
    assert [(a.type, a.device) for a in h.rec.notified()] == [("supply_loss", UNITS[2])]


async def test_groups_going_quiet_after_a_theft_are_part_of_it(feeder_district: District) -> None:
    h = Harness(feeder_district)
    h.desire_all()
    poll_cycle(h, UNITS, set(UNITS))
    h.advance(600)  # the backup capacitors run out: the driver gives up on every unit, then the gateway
    for unit in UNITS:
        h.engine.availability(unit, False, h.now, "3 polls failed: exception 11")
    h.engine.availability("zhg-01", False, h.now, "no unit answered in 3 polls")
    h.advance(120)
    await h.settle()
    theft = h.alarms("cable_theft_suspected")[0]
    quiet = h.alarms("comm_loss")
    assert len(quiet) == len(UNITS) + 1
    assert all(a.parent is not None for a in quiet)
    gateway = next(a for a in quiet if a.device == "zhg-01")
    assert gateway.parent == theft.id
    assert [a.type for a in h.rec.notified()] == ["cable_theft_suspected"]
