"""The reconciler: brings every device to its desired state and keeps it there.

Each tick it compares what the scheduler wants with what the devices report, and commands the
difference through the driver that owns the device. A command is confirmed by an acknowledgement or
a reading; a failed one is retried after 2, 4 and 8 s, each time re-asserting the desired state of
that moment rather than repeating the old command, and `command_failed` is raised after the last.
Devices in maintenance are left alone; devices known to be offline are not commanded until they come
back, when they are brought to the desired state of that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from lightctl.clock import Clock
from lightctl.model import CommandResult, DesiredState, Device
from lightctl.state import DeviceStatus, LiveState

log = logging.getLogger(__name__)


class CommandPort(Protocol):
    async def apply(self, device_id: str, desired: DesiredState) -> CommandResult: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished command, as the reconciler hands it to the command log and alarms."""

    device: str
    desired: DesiredState
    result: CommandResult
    attempt: int
    final: bool  # no more retries will follow


DesiredFn = Callable[[float], dict[str, DesiredState]]
MaintenanceFn = Callable[[float], set[str]]
OutcomeFn = Callable[[Outcome], None]


@dataclass(slots=True)
class _Track:
    confirmed: DesiredState | None = None  # last state a device confirmed
    confirmed_at: float = 0.0
    in_flight: bool = False
    failures: int = 0
    next_try: float = 0.0
    failed_for: DesiredState | None = None  # gave up on this desired state (command_failed raised)
    reassert: bool = True  # command even if the last confirmation matches (restart, came back online)


@dataclass
class Reconciler:
    devices: dict[str, Device]
    live: LiveState
    ports: dict[str, CommandPort]  # device kind -> port ("lamp" -> MQTT driver, ...)
    clock: Clock
    desired_fn: DesiredFn
    maintenance_fn: MaintenanceFn = field(default=lambda now: set())
    retry_delays: list[float] = field(default_factory=lambda: [2.0, 4.0, 8.0])
    tick_s: float = 1.0
    max_in_flight: dict[str, int] = field(
        default_factory=lambda: {"lamp": 10000, "group": 2000, "facade": 64}
    )
    on_outcome: OutcomeFn | None = None
    mismatch_grace_s: float = 90.0  # a reading may lag a confirmed command by one report interval

    def __post_init__(self) -> None:
        self._tracks: dict[str, _Track] = {dev_id: _Track() for dev_id in self.devices}
        self._slots = {kind: asyncio.Semaphore(n) for kind, n in self.max_in_flight.items()}
        self._tasks: set[asyncio.Task[None]] = set()
        self.desired: dict[str, DesiredState] = {}
        self._held: set[str] = set()
        self._wake = asyncio.Event()
        self.live.availability_listeners.append(self._availability)

    def _availability(self, device_id: str, online: bool, ts: float, reason: str) -> None:
        track = self._tracks.get(device_id)
        members = [device_id] if track is not None else self._members(device_id)
        for member in members:
            if online:
                # It may have lost its state (clean session, power cycle): re-assert what we want.
                t = self._tracks[member]
                t.reassert = True
                t.next_try = 0.0
        if online:
            self._wake.set()

    def _members(self, parent: str) -> list[str]:
        gw = self.live.district.gateways.get(parent)
        if gw is not None:
            return list(gw.units)
        conc = self.live.district.concentrators.get(parent)
        return list(conc.lamps) if conc is not None else []

    def reassert(self, device_ids: list[str]) -> None:
        """Bring these devices to the desired state again, whatever they confirmed before (their
        broker came back: commands given meanwhile were lost, and the lamps kept their old state)."""
        for dev_id in device_ids:
            track = self._tracks.get(dev_id)
            if track is not None:
                track.reassert = True
                track.next_try = 0.0
                track.failures = 0
        self._wake.set()

    def poke(self) -> None:
        """Reconcile now (an override or emergency was just set)."""
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                self.step()
                self._wake.clear()
                sleeper = asyncio.ensure_future(self.clock.sleep(self.tick_s))
                waker = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
                sleeper.cancel()
                waker.cancel()
        finally:
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def step(self) -> int:
        """One reconciliation pass; returns how many commands it started."""
        now = self.clock.now()
        self.desired = self.desired_fn(now)
        held = self.maintenance_fn(now)
        for dev_id in self._held - held:
            if dev_id in self._tracks:
                self._tracks[dev_id].reassert = True  # the crew may have left it in any state
        self._held = held
        started = 0
        for dev_id, want in self.desired.items():
            track = self._tracks.get(dev_id)
            if track is None or track.in_flight or dev_id in held or now < track.next_try:
                continue
            status = self.live.status[dev_id]
            if status.online is False:
                continue
            if not self._needs_command(dev_id, want, status, track, now):
                continue
            if track.failed_for is not None and track.failed_for.same_output(want) and not track.reassert:
                continue  # gave up on exactly this; wait for a change or for the device to come back
            track.in_flight = True
            track.reassert = False
            task = asyncio.ensure_future(self._command(dev_id, want))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    def _needs_command(
        self, dev_id: str, want: DesiredState, status: DeviceStatus, track: _Track, now: float
    ) -> bool:
        if track.reassert or track.confirmed is None or not track.confirmed.same_output(want):
            return True
        # Confirmed earlier; re-assert only if the device now reports something else for long enough
        # (a lamp that rebooted, an operator at the cabinet switching by hand).
        dev = self.devices[dev_id]
        return now - track.confirmed_at > self.mismatch_grace_s and not reported_matches(dev, want, status)

    async def _command(self, dev_id: str, want: DesiredState) -> None:
        dev = self.devices[dev_id]
        track = self._tracks[dev_id]
        port = self.ports.get(dev.kind)
        try:
            if port is None:
                return
            async with self._slots.setdefault(dev.kind, asyncio.Semaphore(1000)):
                try:
                    result = await port.apply(dev_id, want)
                except Exception as exc:  # a driver bug must not stop reconciliation of the others
                    log.exception("command to %s failed unexpectedly", dev_id)
                    result = CommandResult(dev_id, uuid.uuid4().hex, ok=False, detail=f"driver error: {exc}")
            now = self.clock.now()
            attempt = track.failures + 1
            if result.ok:
                track.confirmed, track.confirmed_at = want, now
                track.failures, track.next_try, track.failed_for = 0, 0.0, None
                self._report(Outcome(dev_id, want, result, attempt, True))
                return
            final = attempt > len(self.retry_delays)
            if final:
                track.failed_for, track.failures, track.next_try = want, 0, 0.0
            else:
                track.failures, track.next_try = attempt, now + self.retry_delays[attempt - 1]
            self._report(Outcome(dev_id, want, result, attempt, final))
        finally:
            track.in_flight = False

    def _report(self, outcome: Outcome) -> None:
        if self.on_outcome is not None:
            try:
                self.on_outcome(outcome)
            except Exception:
                log.exception("command outcome listener failed")

    def pending(self) -> int:
        return sum(1 for t in self._tracks.values() if t.in_flight)

    def confirmed(self, dev_id: str) -> DesiredState | None:
        return self._tracks[dev_id].confirmed


def reported_matches(dev: Device, want: DesiredState, st: DeviceStatus) -> bool:
    """Whether the device's latest report shows the desired state (unknown counts as matching)."""
    if dev.kind == "lamp":
        if want.on is not None and st.on is not None and st.on != want.on:
            return False
        return not (
            want.on
            and dev.dimmable
            and want.level is not None
            and st.level is not None
            and st.level != want.level
        )
    if dev.kind == "group":
        for want_c, got in ((want.k1, st.k1), (want.k2, st.k2)):
            if want_c is not None and got is not None and want_c != got:
                return False
        return True
    if want.scene is not None and st.scene is not None and st.scene != want.scene:
        return False
    return not (
        want.brightness is not None and st.brightness is not None and st.brightness != want.brightness
    )
