"""The one Modbus TCP driver: lamp groups behind cabinet gateways and facade scene controllers.

Everything a device model means on the wire (addresses, types, word order, scale, which registers
may be written and how a write is confirmed) comes from its profile. One task per gateway owns its
connection (lightctl.drivers.modbus_gateway); a facade controller is a gateway of one unit.

Wiring (app.py):

    driver = ModbusDriver(settings.modbus, gateways, devices, profiles, sink, clock)
    await driver.start()
    result = await driver.apply("zhg-01-u07", DesiredState(k1=True, k2=False, level=80))
    ...
    await driver.stop()

`gateways` are the gateways this instance polls; `devices` may hold the whole inventory: groups are
taken from the gateways, facades (Modbus devices with a host and no gateway) from `devices`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping

from lightctl.clock import Clock
from lightctl.config.settings import Modbus
from lightctl.drivers.modbus_frames import UndecodableFrames
from lightctl.drivers.modbus_gateway import GatewayWorker
from lightctl.drivers.modbus_state import GatewayStatus, Job, UnitState
from lightctl.drivers.modbus_units import UnitPlan, Write, WriteRefused, write_requests
from lightctl.drivers.sink import Drops, ReadingSink
from lightctl.model import CommandResult, DesiredState, Device, Gateway
from lightctl.profiles import Profile
from lightctl.tasks import cancel_and_wait

__all__ = ["GatewayStatus", "ModbusDriver", "WriteRefused"]

DEFAULT_SCENE = 1  # `on` for a facade that shows no scene: the weekday scene (平日)


class ModbusDriver:
    def __init__(
        self,
        settings: Modbus,
        gateways: Iterable[Gateway],
        devices: Mapping[str, Device],
        profiles: Mapping[str, Profile],
        sink: ReadingSink,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self.drops = Drops()
        self._workers: dict[str, GatewayWorker] = {}
        self._units: dict[str, tuple[GatewayWorker, UnitState]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._ids = itertools.count(1)
        in_flight = settings.commands_in_flight

        def unit_state(device: Device) -> UnitState:
            profile = profiles.get(device.profile)
            if profile is None or profile.modbus is None:
                raise ValueError(f"{device.id}: profile {device.profile!r} is not a Modbus profile")
            return UnitState(UnitPlan(device, profile))

        for gw in gateways:
            units = [unit_state(devices[d]) for d in gw.units if d in devices]
            self._add(
                GatewayWorker(
                    gw.id, gw.host, gw.port, units, settings, sink, clock, self.drops, in_flight=in_flight
                )
            )
        for device in devices.values():
            profile = profiles.get(device.profile)
            if device.gateway is not None or device.host is None or profile is None or profile.modbus is None:
                continue
            port = device.port or profile.modbus.default_port
            worker = GatewayWorker(
                device.id, device.host, port, [unit_state(device)], settings, sink, clock, self.drops,
                standalone=True, in_flight=in_flight,
            )  # fmt: skip
            self._add(worker)
        self._frames = UndecodableFrames({(w.host, w.port): w.id for w in self._workers.values()}, self.drops)

    def _add(self, worker: GatewayWorker) -> None:
        if worker.id in self._workers:
            raise ValueError(f"gateway id {worker.id!r} given twice")
        self._workers[worker.id] = worker
        for unit in worker.units:
            self._units[unit.plan.device.id] = (worker, unit)

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._frames.install(loop)
        self._tasks = [loop.create_task(w.run(), name=f"modbus-{w.id}") for w in self._workers.values()]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for worker in self._workers.values():
            worker.stopping = True
        await cancel_and_wait(tasks)
        self._frames.uninstall()

    def owns(self, device_id: str) -> bool:
        return device_id in self._units

    def gateway_status(self) -> list[GatewayStatus]:
        """Per gateway (and facade controller): cycle time, failures, units online; for health and /metrics."""
        return [w.status() for w in self._workers.values()]

    # --- commands ----------------------------------------------------------------------------------

    async def apply(
        self, device_id: str, desired: DesiredState, command_id: str | None = None
    ) -> CommandResult:
        """Write what `desired` asks of this device and confirm it by reading back.

        Groups: `k1` / `k2` switch a circuit, `on` both circuits (where k1 / k2 are not given), `level`
        the dim level of dimmable groups only. Facades: `scene`, `brightness` (or `level`), `on: false`
        = scene 0, `on: true` without a scene keeps the scene shown, or scene 1 if none is.
        Raises WriteRefused (before any traffic) for an unknown device or out-of-range value.
        """
        worker, unit = self._unit(device_id)
        plan = unit.plan
        writes = [plan.encode(name, value) for name, value in self._fields(unit, desired)]
        return await self._submit(worker, unit, writes, command_id)

    async def write_register(
        self, device_id: str, name: str, value: float, command_id: str | None = None
    ) -> CommandResult:
        """Write one register the profile marks writable (in its unit, after scale), then read back
        per the profile's verify map. Anything else raises WriteRefused and sends nothing."""
        worker, unit = self._unit(device_id)
        return await self._submit(worker, unit, [unit.plan.encode(name, value)], command_id)

    def _unit(self, device_id: str) -> tuple[GatewayWorker, UnitState]:
        try:
            return self._units[device_id]
        except KeyError:
            raise WriteRefused(f"{device_id!r} is not a Modbus device of this driver") from None

    def _fields(self, unit: UnitState, desired: DesiredState) -> list[tuple[str, float]]:
        """DesiredState fields -> (register name, value), through the profile's quantities."""
        spec = unit.plan.spec
        device = unit.plan.device

        def reg(quantity: str) -> str | None:
            found = spec.by_quantity(quantity)
            return found.name if found is not None and found.writable else None

        fields: list[tuple[str, float]] = []
        circuits = [q for q in ("k1", "k2") if reg(q)]
        for q in circuits:
            state = getattr(desired, q)
            state = desired.on if state is None else state
            if state is not None:
                fields.append((str(reg(q)), int(state)))
        scene_reg = reg("scene")
        scene = desired.scene
        if scene_reg and desired.on is False:
            scene = 0
        elif scene_reg and desired.on is True and scene is None:
            shown = unit.last_values.get("scene")
            scene = DEFAULT_SCENE if not shown else None
        if scene is not None:
            if not scene_reg:
                raise WriteRefused(f"{device.id}: profile {unit.plan.profile.id} has no writable scene")
            fields.append((scene_reg, scene))
        brightness = desired.brightness
        level_reg = reg("level")
        if brightness is None and not level_reg:
            brightness = desired.level  # a facade's master brightness is its level
        if brightness is not None and reg("brightness"):
            fields.append((str(reg("brightness")), brightness))
        if desired.level is not None and level_reg and device.dimmable:
            fields.append((level_reg, desired.level))
        if not circuits and not scene_reg and desired.on is not None and reg("on"):
            fields.append((str(reg("on")), int(desired.on)))
        return fields

    async def _submit(
        self, worker: GatewayWorker, unit: UnitState, writes: list[Write], command_id: str | None
    ) -> CommandResult:
        command_id = command_id or f"modbus-{next(self._ids)}"
        device_id = unit.plan.device.id
        if not writes:
            return CommandResult(
                device_id, command_id, ok=True, detail="nothing to write", confirmed_by="noop"
            )
        if not self._tasks:
            return CommandResult(device_id, command_id, ok=False, detail="Modbus driver is not running")
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        checks = unit.plan.checks(writes)
        worker.submit(Job(unit, command_id, write_requests(writes), checks, future, self._clock.now()))
        return await future
