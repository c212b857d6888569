"""Simulated Modbus field devices: one Modbus TCP server per ZHD-G2 gateway and per FCD-S1 facade.

Gateways answer one request at a time after the controllers' 20-40 ms, and exception 11 about
500 ms after a request to a unit id that is not on their bus (lightctl.sim.modbus_server). The
devices follow their datasheets (group_model, facade_model), with noise. Latencies, contactor and
scene lags run on the injected clock. Fault injection and its textual spec: lightctl.sim.modbus_faults.

    sim = ModbusSim(district.gateways.values(), district.devices, clock, seed=1,
                    profiles=district.profiles)
    sim.apply_spec("cable_theft:zhg-05@+30m~10m,channel_fault:longcheng;n=2")
    await sim.start()
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Iterable, Mapping

from lightctl.clock import Clock
from lightctl.model import Device, Gateway
from lightctl.profiles import Profile
from lightctl.sim import facade_model
from lightctl.sim.facade_model import FacadeFigures, FacadeTruth, FacadeUnit
from lightctl.sim.group_model import GroupTruth, GroupUnit
from lightctl.sim.modbus_faults import FaultRecord, FaultSpec, FaultValue, fault_value, parse_fault_spec
from lightctl.sim.modbus_server import RequestRecord, SimGateway, SimUnit

__all__ = ["ModbusSim", "RequestRecord"]

log = logging.getLogger(__name__)


class ModbusSim:
    """All simulated ZHD-G2 gateways and FCD-S1 facades of an inventory, with fault injection.

    Ports come from the inventory; `ports` remaps any gateway or facade id (0 = a free port, read it
    back with `port_of` after `start`). Servers always listen on `host` (loopback by default),
    whatever host the inventory gives, so a simulator never answers for a real gateway.
    """

    def __init__(
        self,
        gateways: Iterable[Gateway],
        devices: Mapping[str, Device],
        clock: Clock,
        seed: int = 0,
        latency: tuple[float, float] = (0.02, 0.04),
        *,
        profiles: Mapping[str, Profile] | None = None,
        ports: Mapping[str, int] | None = None,
        host: str = "127.0.0.1",
        noise: bool = True,
        no_answer_s: float = 0.5,
    ) -> None:
        self._clock = clock
        self._started_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending_specs: list[FaultSpec] = []
        self.gateways: dict[str, SimGateway] = {}
        self.units: dict[str, GroupUnit | FacadeUnit] = {}
        self.fault_log: list[FaultRecord] = []
        self._active: dict[tuple[str, str], int] = {}  # (target, fault) -> index in fault_log
        ports = dict(ports or {})
        profiles = profiles or {}

        def rng(name: str) -> random.Random:
            return random.Random(f"{seed}:{name}")

        for gw in gateways:
            units: dict[int, SimUnit] = {}
            for device_id in gw.units:
                device = devices[device_id]
                if device.kind != "group" or device.unit_id is None:
                    continue
                electrical = profiles[device.profile].electrical if device.profile in profiles else None
                unit = GroupUnit(
                    device,
                    clock,
                    rng(device.id),
                    pf_led=electrical.pf_full if electrical else 0.95,
                    pf_fixed_load=(electrical.pf_fixed_load or 0.90) if electrical else 0.90,
                    noise=noise,
                )
                units[device.unit_id] = unit
                self.units[device.id] = unit
            self.gateways[gw.id] = SimGateway(
                gw.id, units, clock, rng(gw.id), host=host, port=ports.get(gw.id, gw.port),
                latency=latency, no_answer_s=no_answer_s,
            )  # fmt: skip
        for device in devices.values():
            if device.kind != "facade" or device.port is None:
                continue
            figures = None
            if device.profile in profiles:
                e = profiles[device.profile].electrical
                figures = FacadeFigures(dict(e.scene_share), e.custom_scene_share, e.channels)
            facade = FacadeUnit(device, clock, rng(device.id), figures=figures, noise=noise)
            self.units[device.id] = facade
            # A facade controller answers by itself: only the normal latency, even for wrong unit ids.
            self.gateways[device.id] = SimGateway(
                device.id, {facade_model.UNIT_ID: facade}, clock, rng(f"{device.id}:tcp"), host=host,
                port=ports.get(device.id, device.port), latency=latency, no_answer_s=latency[1],
            )  # fmt: skip

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        for gw in self.gateways.values():
            await gw.start()
        self._started_at = self._clock.now()
        pending, self._pending_specs = self._pending_specs, []
        for spec in pending:
            self._schedule(spec)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for gw in self.gateways.values():
            await gw.stop()

    async def stop_gateway(self, gateway_id: str) -> None:
        """Power off a gateway (or facade controller): its port closes; its controllers keep state."""
        await self.gateways[gateway_id].stop()

    async def start_gateway(self, gateway_id: str) -> None:
        await self.gateways[gateway_id].start()

    def port_of(self, target: str) -> int:
        return self.gateways[target].port

    def knows(self, target: str) -> bool:
        return target in self.gateways or target in self.units

    # --- faults ------------------------------------------------------------------------------------

    def _kind(self, target: str) -> str:
        if target in self.units:
            return self.units[target].kind
        if target in self.gateways:
            return "gateway"
        raise ValueError(f"unknown target {target!r}: not a simulated group, gateway or facade")

    def inject(self, target: str, fault: str, **params: FaultValue) -> None:
        value = fault_value(fault, self._kind(target), params)
        if fault == "cable_theft":
            for unit in self.gateways[target].units.values():
                if isinstance(unit, GroupUnit):
                    unit.set_feeder_cut(True)
        elif fault == "gateway_hang":
            self.gateways[target].hung = True
        else:
            self.units[target].set_fault(fault, value)
        self._end_record(target, fault)
        self._active[(target, fault)] = len(self.fault_log)
        self.fault_log.append(FaultRecord(target, fault, value, self._clock.now()))
        log.info("sim fault injected: %s on %s (%s)", fault, target, value)

    def clear(self, target: str, fault: str | None = None) -> None:
        """Clear one fault of a target, or all of them."""
        self._kind(target)
        faults = [fault] if fault else [f for (t, f) in self._active if t == target]
        for name in faults:
            if name == "cable_theft":
                for unit in self.gateways[target].units.values():
                    if isinstance(unit, GroupUnit):
                        unit.set_feeder_cut(False)
            elif name == "gateway_hang":
                self.gateways[target].hung = False
            elif target in self.units:
                self.units[target].clear_fault(name)
            self._end_record(target, name)

    def hang(self, gateway_id: str) -> None:
        self.inject(gateway_id, "gateway_hang")

    def _end_record(self, target: str, fault: str) -> None:
        index = self._active.pop((target, fault), None)
        if index is not None:
            record = self.fault_log[index]
            self.fault_log[index] = FaultRecord(
                record.target, record.fault, record.value, record.start, self._clock.now()
            )

    def active_faults(self) -> list[FaultRecord]:
        return [self.fault_log[i] for i in self._active.values()]

    def apply_spec(self, spec: str | Iterable[FaultSpec]) -> None:
        """Inject, or schedule on the clock, the faults of a textual spec (lightctl.sim.modbus_faults)."""
        specs = parse_fault_spec(spec) if isinstance(spec, str) else list(spec)
        for item in specs:  # check every item before injecting any
            fault_value(item.fault, self._kind(item.target), item.param_dict())
        for item in specs:
            if self._started_at is None:
                self._pending_specs.append(item)
            else:
                self._schedule(item)

    def claim_spec(self, spec: str) -> str:
        """Apply the items of a combined `--faults` spec whose targets this simulator knows and
        return the others, comma-separated, for the lamp fleet's parser."""
        mine: list[str] = []
        others: list[str] = []
        for item in (part.strip() for part in spec.split(",")):
            target = item.split(";", 1)[0].partition(":")[2]
            target = re.split(r"[@~]", target, maxsplit=1)[0]
            if item:
                (mine if self.knows(target) else others).append(item)
        self.apply_spec(",".join(mine))
        return ",".join(others)

    def _schedule(self, spec: FaultSpec) -> None:
        if spec.at is None and not spec.after_s and not spec.duration_s:
            self.inject(spec.target, spec.fault, **spec.param_dict())
            return
        task = asyncio.get_running_loop().create_task(self._timed(spec), name=f"sim-fault-{spec.target}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _timed(self, spec: FaultSpec) -> None:
        started = self._started_at if self._started_at is not None else self._clock.now()
        start = spec.at if spec.at is not None else started + (spec.after_s or 0.0)
        await self._clock.sleep(start - self._clock.now())
        self.inject(spec.target, spec.fault, **spec.param_dict())
        if spec.duration_s:
            await self._clock.sleep(spec.duration_s)
            self.clear(spec.target, spec.fault)

    # --- ground truth ------------------------------------------------------------------------------

    def truth(self, device_id: str) -> GroupTruth | FacadeTruth:
        return self.units[device_id].truth()

    def set_counters(
        self, device_id: str, energy_wh: float | None = None, hours: float | None = None
    ) -> None:
        """Set a controller's cumulative energy (Wh) and burning hours, e.g. past 65,535."""
        self.units[device_id].set_counters(energy_wh=energy_wh, hours=hours)

    def requests(self, target: str) -> list[RequestRecord]:
        """Requests the gateway (or facade) received, oldest first (the last 10,000)."""
        return list(self.gateways[target].requests)
