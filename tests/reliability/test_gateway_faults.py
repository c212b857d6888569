"""A Modbus gateway that hangs and one that answers garbage, next to healthy ones, under `lightctl
serve`: the healthy gateways keep their cycle and take commands, the affected units get comm_loss
alarms, and nothing in the service dies."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import re
import time
from typing import Any

import pytest

from tests import servers
from tests.reliability.conftest import MakeRig
from tests.reliability.harness import Inventory, group_matches
from tests.reliability.wire import Reply, ScriptedGateway, forward_to, mbap

HEALTHY = ("zhg-01", "zhg-02")
# Both on scripted servers on the ports serve polls (the simulator's copies are elsewhere):
HUNG = "zhg-03"  # relays to its simulated gateway, then hangs mid-run: keeps TCP open, never answers
GARBAGE = "zhg-04"  # answers garbage from the start


def garbage_responder(seed: int = 7) -> Any:
    """Every request gets a different kind of wrong answer, in turn."""
    rng = random.Random(seed)
    modes = itertools.cycle(
        [
            "short_byte_count",
            "exception",
            "close_mid_frame",
            "random_bytes",
            "length_overstated",
            "wrong_transaction",
            "wrong_function",
            "exception",
        ]
    )
    codes = itertools.cycle([4, 1, 2, 3, 6, 10, 11, 0, 255])

    def respond(request: bytes) -> Reply:
        fc = request[7]
        mode = next(modes)
        if mode == "short_byte_count":  # says 2 bytes where the request asked for more
            return Reply(mbap(request, bytes([fc, 2, 0x12, 0x34])))
        if mode == "exception":
            return Reply(mbap(request, bytes([fc | 0x80, next(codes)])))
        if mode == "close_mid_frame":
            return Reply(mbap(request, bytes([fc, 26]) + bytes(26))[:9], close=True)
        if mode == "random_bytes":
            return Reply(rng.randbytes(rng.randint(1, 40)))
        if mode == "length_overstated":  # the MBAP length promises bytes that never come
            return Reply(mbap(request, bytes([fc, 2, 0, 1]), length=200))
        if mode == "wrong_transaction":
            tid = (int.from_bytes(request[0:2], "big") + 1) % 65536
            return Reply(mbap(request, bytes([fc, 2, 0, 1]), tid=tid))
        return Reply(mbap(request, bytes([(fc % 4) + 1 if fc != 4 else 3, 2, 0, 1])))

    return respond


@pytest.mark.slow
def test_hung_and_garbage_gateways_cost_only_their_own_units(
    make_rig: MakeRig, mosquitto: servers.Mosquitto
) -> None:
    rig = make_rig(
        mosquitto.port,
        inventory=Inventory(lamps=10, concentrator_lamps=0, gateways=4, units=10),
        sim_elsewhere=(HUNG, GARBAGE),
    )
    garbage = ScriptedGateway(garbage_responder(), port=rig.gateway_ports[GARBAGE]).start()
    hung = ScriptedGateway(forward_to(rig.sim_ports[HUNG]), port=rig.gateway_ports[HUNG]).start()
    try:
        rig.start_sim()
        rig.start_serve()
        _check(rig, garbage, hung)
    finally:
        garbage.stop()
        hung.stop()


def _check(rig: Any, garbage: ScriptedGateway, hung: ScriptedGateway) -> None:
    groups = {gw: [g for g in rig.group_ids if g.startswith(f"{gw}-")] for gw in (*HEALTHY, HUNG, GARBAGE)}
    rig.wait_for(
        lambda: all(rig.devices()[g]["online"] for gw in (*HEALTHY, HUNG) for g in groups[gw]),
        timeout=30,
        what=f"{HUNG} and the healthy gateways polled before {HUNG} hangs",
    )
    hung.respond = lambda request: Reply()  # the connection stays open; nothing ever comes back

    # While the faulty gateways go offline, the healthy ones are sampled: each unit's last_seen must
    # keep up with the 1 s poll interval (a 10-unit cycle on the simulator takes well under 2 s).
    healthy = [g for gw in HEALTHY for g in groups[gw]]
    worst_age = 0.0
    samples = 0
    deadline = time.time() + 25
    affected = [*groups[HUNG], *groups[GARBAGE]]
    offline_at: float | None = None
    while time.time() < deadline:
        devices = rig.devices(kind="group")
        now = dt.datetime.now(dt.UTC)
        for g in healthy:
            seen = devices[g]["last_seen"]
            assert seen is not None, f"{g} never polled"
            worst_age = max(worst_age, (now - dt.datetime.fromisoformat(seen)).total_seconds())
        samples += 1
        if offline_at is None and all(devices[g]["online"] is False for g in affected):
            offline_at = time.time()
        if offline_at is not None and time.time() - offline_at > 5 and samples >= 20:
            break
        time.sleep(0.5)
    assert offline_at is not None, f"affected units still online: {_states(rig, affected)}\n{rig.logs()}"
    assert worst_age <= 6.0, f"a healthy gateway's unit went {worst_age:.1f} s without a poll\n{rig.logs()}"
    # The same from /metrics: the healthy gateways' last full cycle stays short.
    cycles = {
        m.group(1): float(m.group(2))
        for m in re.finditer(
            r'^lightctl_poll_cycle_seconds\{gateway="([^"]+)"\} (\S+)$', rig.metrics(), re.MULTILINE
        )
    }
    assert all(gw in cycles for gw in HEALTHY), f"lightctl_poll_cycle_seconds: {cycles}"
    assert all(cycles[gw] <= 3.0 for gw in HEALTHY), f"lightctl_poll_cycle_seconds: {cycles}"

    # Commands to the healthy gateways still go through (the hung gateway's queue is its own).
    rig.override(list(groups[HEALTHY[0]]) + list(groups[HEALTHY[1]]), k1=True, k2=False)
    rig.wait_for(
        lambda: all(group_matches(rig.devices()[g], True, False) for g in healthy),
        timeout=20,
        what="healthy groups switched while two gateways misbehave",
    )

    # comm_loss for every affected unit (each gateway's units as children of the gateway's alarm).
    alarms = [a for a in rig.alarms(type="comm_loss") if a["state"] != "resolved"]
    by_device = {a["device"]: a for a in alarms}
    missing = [g for g in affected if g not in by_device]
    assert not missing, f"no comm_loss for {missing}; alarms: {alarms}"
    for gw in (HUNG, GARBAGE):
        parent = by_device.get(gw)
        assert parent is not None, f"no comm_loss for the gateway {gw}: {sorted(by_device)}"
        assert parent["parent"] is None
        assert all(by_device[g]["parent"] == parent["id"] for g in groups[gw]), [
            by_device[g] for g in groups[gw]
        ]
    assert not [d for d in by_device if d in healthy], "a healthy unit got comm_loss"
    assert garbage.requests > 20, f"the garbage gateway was asked only {garbage.requests} times"
    assert not garbage.errors

    # Nothing died: the API answers, the process runs, no task or poll loop logged a crash.
    health = rig.health()
    assert health["status"] == "ok"
    assert health["devices"]["by_kind"]["group"]["online"] == len(healthy)
    assert health["devices"]["by_kind"]["lamp"]["online"] == len(rig.lamp_ids)
    # lightctl's own crash reports: a poll loop that caught a bug, a task that ended with an error,
    # an exception nobody retrieved. (pymodbus' protocol failing on a garbage frame is logged by
    # asyncio too; it closes that connection, which the driver reconnects: not a crash of ours.)
    log = rig.serve.log_path.read_text(errors="replace")
    for crash in ("poll loop failed", "ERROR lightctl.runtime", "Task exception was never retrieved"):
        assert crash not in log, f"serve logged {crash!r}:\n{rig.serve.tail(80)}"
    assert rig.serve.running

    # One notified alarm per misbehaving gateway: its comm_loss. Commands that could not reach its
    # units are the same outage, not a fault of each unit (the broker test holds lamps to the same).
    problems: list[str] = []
    affected_set = {*affected, HUNG, GARBAGE}
    top = [a for a in rig.alarms() if a["device"] in affected_set and a["parent"] is None]
    extra = [
        (a["type"], a["device"])
        for a in top
        if not (a["type"] == "comm_loss" and a["device"] in (HUNG, GARBAGE))
    ]
    if extra:
        problems.append(
            f"{len(extra)} more top-level alarms for the units of the faulty gateways: {extra[:6]}..."
        )

    # The garbage gateway comes to its senses (answers as the datasheet says, relayed from the
    # simulator): its units come back, are brought to their desired state and are read in full again.
    rig.override([f"gateway:{GARBAGE}"], k1=True, k2=True)
    garbage.respond = forward_to(rig.sim_ports[GARBAGE])
    rig.wait_for(
        lambda: all(rig.devices()[g]["online"] for g in groups[GARBAGE]),
        timeout=30,
        what=f"{GARBAGE}'s units back online once it answers properly",
    )
    full = set(rig.get(f"/devices/{healthy[0]}")["telemetry"]["values"])

    def incomplete() -> dict[str, list[str]]:
        return {
            g: sorted(full - set(rig.get(f"/devices/{g}")["telemetry"]["values"]))
            for g in groups[GARBAGE]
            if not full <= set(rig.get(f"/devices/{g}")["telemetry"]["values"])
        }

    rig.within(lambda: not incomplete(), 10)
    if incomplete():
        problems.append(
            "registers no longer read after the gateway recovered (an exception answer of the garbage "
            f"phase dropped them from the poll for good): {incomplete()}"
        )
    converged = rig.within(
        lambda: all(group_matches(rig.devices()[g], True, True) for g in groups[GARBAGE]), 15
    )
    if converged is None:
        problems.append(
            f"{GARBAGE}'s units not brought to K1+K2 on within 15 s after it recovered: {_states(rig, groups[GARBAGE])}"
        )
    assert rig.health()["status"] == "ok"
    assert rig.serve.running
    assert not problems, "\n".join(problems) + f"\n{rig.serve.tail(15)}"


def _states(rig: Any, ids: list[str]) -> dict[str, Any]:
    devices = rig.devices()
    return {g: (devices[g]["online"], devices[g]["k1"], devices[g]["k2"]) for g in ids}
