"""The reconciler: brings every device to its desired state and keeps it there.

It compares what the scheduler wants with what the devices report, and commands the difference
through the driver that owns the device. A command is confirmed by an acknowledgement or a reading;
a failed one is retried after 2, 4 and 8 s, each time re-asserting the desired state of that moment
rather than repeating the old command, and `command_failed` is raised after the last. Devices in
maintenance are left alone; devices known to be offline are not commanded until they come back, when
they are brought to the desired state of that moment.

At city scale (100,000 devices) a pass over every device each second, or a task per device parked
on a semaphore, costs more than the commands themselves. So each pass looks only at devices that may
need something (their desired state changed, they reported, came back, or a retry is due), and no
more commands are started per kind than it has slots; the rest wait in a queue that a finishing
command drains. Groups and facades are started before lamps: their gateways take one request at a
time, so theirs is the longest road to the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from lightctl.clock import Clock
from lightctl.model import CommandResult, DesiredState, Device, Reading
from lightctl.state import DeviceStatus, LiveState

log = logging.getLogger(__name__)

NEVER = float("-inf")


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
    kind: str
    confirmed: DesiredState | None = None  # last state the device confirmed (or was found in)
    confirmed_at: float = NEVER
    in_flight: bool = False
    failures: int = 0
    next_try: float = 0.0
    failed_for: DesiredState | None = None  # gave up on this desired state (command_failed raised)
    reassert: bool = False  # command even if the last confirmation matches (came back online)
    offline: bool = False  # was reported offline: coming back means it may have lost its state
    seen: DesiredState | None = None  # the desired state the last look at this device saw


@dataclass
class Reconciler:
    devices: dict[str, Device]
    live: LiveState
    ports: dict[str, CommandPort]  # device kind -> port ("lamp" -> MQTT driver, ...)
    clock: Clock
    desired_fn: DesiredFn
    maintenance_fn: MaintenanceFn = field(default=lambda now: set())
    retry_delays: list[float] = field(default_factory=lambda: [2.0, 4.0, 8.0])
    retry_after_giving_up_s: float = 300.0
    tick_s: float = 1.0
    # Enough lamp commands in flight to keep the broker round trip busy, few enough that one turn
    # of the event loop stays short: a gateway's one-request-at-a-time bus needs a turn per request
    # (measured in bench/fanout.py: 400-800 beat both 200 and 2,000). A gateway's own limit
    # (modbus.commands_in_flight) decides how many of its units really talk.
    max_in_flight: dict[str, int] = field(default_factory=lambda: {"lamp": 500, "group": 2000, "facade": 64})
    on_outcome: OutcomeFn | None = None
    mismatch_grace_s: float = 90.0  # a reading may lag a confirmed command by one report interval
    # True: every pass looks at every device whose desired state object changed (for a desired_fn
    # that returns new objects). The service instead calls changed() with what the resolver changed.
    scan_all: bool = True

    def __post_init__(self) -> None:
        self._tracks: dict[str, _Track] = {dev_id: _Track(dev.kind) for dev_id, dev in self.devices.items()}
        self._busy: dict[str, int] = dict.fromkeys(self.max_in_flight, 0)
        self._queue: dict[str, deque[str]] = {kind: deque() for kind in self.max_in_flight}
        self._queued: set[str] = set()
        self._dirty: set[str] = set(self.devices)
        self._timers: list[tuple[float, str]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.desired: dict[str, DesiredState] = {}
        self._held: set[str] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self.live.availability_listeners.append(self._availability)
        self.live.reading_listeners.append(self._heard)

    # --- what may need a look ----------------------------------------------------------------

    def _heard(self, batch: list[Reading]) -> None:
        # A report may show a device that lost its state; it is judged on the next pass.
        dirty = self._dirty
        for reading in batch:
            dirty.add(reading.device)

    def _availability(self, device_id: str, online: bool, ts: float, reason: str) -> None:
        track = self._tracks.get(device_id)
        members = [device_id] if track is not None else self._members(device_id)
        for member in members:
            t = self._tracks[member]
            if not online:
                t.offline = True
            elif t.offline:
                # Back after being offline: it may have lost its state (clean session, power cycle).
                t.offline, t.reassert, t.next_try = False, True, 0.0
            self._dirty.add(member)
        if online:
            self._wake.set()

    def _members(self, parent: str) -> list[str]:
        gw = self.live.district.gateways.get(parent)
        if gw is not None:
            return list(gw.units)
        conc = self.live.district.concentrators.get(parent)
        return list(conc.lamps) if conc is not None else []

    def changed(self, device_ids: Iterable[str]) -> None:
        """These devices' desired state changed (the resolver says so)."""
        self._dirty.update(device_ids)

    def retry_now(self, device_ids: Iterable[str]) -> None:
        """Their path came back (the broker returned): commands given meanwhile were lost, so what is
        not confirmed for the desired state of now is commanded at once, without waiting out retries."""
        for dev_id in device_ids:
            track = self._tracks.get(dev_id)
            if track is not None:
                track.next_try, track.failures, track.failed_for = 0.0, 0, None
                self._dirty.add(dev_id)
        self._wake.set()

    def reassert(self, device_ids: Iterable[str]) -> None:
        """Command these devices again, whatever they confirmed before."""
        for dev_id in device_ids:
            track = self._tracks.get(dev_id)
            if track is not None:
                track.reassert, track.next_try, track.failures = True, 0.0, 0
                self._dirty.add(dev_id)
        self._wake.set()

    def poke(self) -> None:
        """Reconcile now (an override or emergency was just set)."""
        self._wake.set()

    # --- the loop ------------------------------------------------------------------------------

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
            self._stopping = True  # a cancelled command's slot must not start a queued one
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def step(self) -> int:
        """One reconciliation pass; returns how many commands it started."""
        now = self.clock.now()
        previous = self.desired
        self.desired = desired = self.desired_fn(now)
        held = self.maintenance_fn(now)
        for dev_id in self._held - held:
            if dev_id in self._tracks:
                self._tracks[dev_id].reassert = True  # the crew may have left it in any state
        self._dirty.update(self._held ^ held)
        self._held = held
        while self._timers and self._timers[0][0] <= now:
            self._dirty.add(heapq.heappop(self._timers)[1])
        if self.scan_all or desired is not previous:
            tracks = self._tracks
            self._dirty.update(
                dev_id
                for dev_id, want in desired.items()
                if dev_id in tracks and tracks[dev_id].seen is not want
            )
        look, self._dirty = self._dirty, set()
        started = 0
        # Gateways' units first: their one-request-at-a-time buses are the longest road to the end.
        for dev_id in sorted(
            look, key=lambda i: self._tracks[i].kind == "lamp" if i in self._tracks else True
        ):
            started += self._look(dev_id, now)
        return started

    def _look(self, dev_id: str, now: float) -> int:
        track = self._tracks.get(dev_id)
        want = self.desired.get(dev_id)
        if track is None or want is None:
            return 0
        track.seen = want
        if track.in_flight or dev_id in self._held or self._stopping:
            return 0  # a finishing command looks again
        gave_up = track.failed_for is not None and track.failed_for.same_output(want)
        if now < track.next_try and (gave_up or track.failed_for is None) and not track.reassert:
            heapq.heappush(self._timers, (track.next_try, dev_id))
            return 0
        status = self.live.status[dev_id]
        if status.online is False:
            return 0  # coming back online brings it here again
        if not self._needs_command(dev_id, want, status, track, now):
            return 0
        kind = track.kind
        if self._busy.get(kind, 0) >= self.max_in_flight.get(kind, 1000):
            if dev_id not in self._queued:
                self._queued.add(dev_id)
                self._queue.setdefault(kind, deque()).append(dev_id)
            return 0
        track.in_flight = True
        track.reassert = False
        if track.failed_for is not None and not track.failed_for.same_output(want):
            track.failed_for = None  # a new state gets its own retries, 2, 4 and 8 s apart
        self._busy[kind] = self._busy.get(kind, 0) + 1
        task = asyncio.ensure_future(self._command(dev_id, want))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return 1

    def _needs_command(
        self, dev_id: str, want: DesiredState, status: DeviceStatus, track: _Track, now: float
    ) -> bool:
        if track.reassert:
            return True
        dev = self.devices[dev_id]
        if track.confirmed is None:
            # Never commanded since start: if its report (restored or fresh) already shows the
            # desired state there is nothing to say; a later report that differs is acted on at once.
            if reported_known(dev, status) and reported_matches(dev, want, status):
                track.confirmed, track.confirmed_at = want, NEVER
                return False
            return True
        if not track.confirmed.same_output(want):
            return True
        # Confirmed earlier; re-assert only if the device now reports something else for long enough
        # (a lamp that rebooted, an operator at the cabinet switching by hand).
        if reported_matches(dev, want, status):
            return False
        due = track.confirmed_at + self.mismatch_grace_s
        if now > due:
            return True
        heapq.heappush(self._timers, (due, dev_id))
        return False

    async def _command(self, dev_id: str, want: DesiredState) -> None:
        dev = self.devices[dev_id]
        track = self._tracks[dev_id]
        port = self.ports.get(dev.kind)
        try:
            if port is None:
                return
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
                # Given up for now (command_failed): the same state is tried again after a while,
                # so a device that answers again takes it without waiting for the next step.
                track.failed_for, track.failures = want, 0
                track.next_try = now + self.retry_after_giving_up_s
                heapq.heappush(self._timers, (track.next_try, dev_id))
            else:
                track.failures, track.next_try = attempt, now + self.retry_delays[attempt - 1]
                heapq.heappush(self._timers, (track.next_try, dev_id))
            self._report(Outcome(dev_id, want, result, attempt, final))
        finally:
            track.in_flight = False
            self._busy[track.kind] -= 1
            if self.desired.get(dev_id) is not want or track.reassert:
                self._dirty.add(dev_id)  # it changed, or was asked to re-assert, while this was out
                self._wake.set()
            self._drain(track.kind)

    def _drain(self, kind: str) -> None:
        """Start queued commands of this kind while it has free slots."""
        queue = self._queue.get(kind)
        if not queue:
            return
        now = self.clock.now()
        limit = self.max_in_flight.get(kind, 1000)
        while queue and self._busy.get(kind, 0) < limit:
            dev_id = queue.popleft()
            self._queued.discard(dev_id)
            self._look(dev_id, now)

    def _report(self, outcome: Outcome) -> None:
        if self.on_outcome is not None:
            try:
                self.on_outcome(outcome)
            except Exception:
                log.exception("command outcome listener failed")

    def pending(self) -> int:
        """Commands in flight or waiting for a slot."""
        return sum(self._busy.values()) + len(self._queued)

    def confirmed(self, dev_id: str) -> DesiredState | None:
        return self._tracks[dev_id].confirmed


def reported_known(dev: Device, st: DeviceStatus) -> bool:
    """Whether the device has reported the outputs the reconciler commands."""
    if dev.kind == "lamp":
        return st.on is not None and (not dev.dimmable or st.level is not None)
    if dev.kind == "group":
        return st.k1 is not None and st.k2 is not None
    return st.scene is not None


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
