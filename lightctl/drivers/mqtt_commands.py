"""Commands in flight to MQTT lamps, and what confirms them.

A command is confirmed by the acknowledgement carrying its id, or by a report of the device showing
the commanded state (`on`, and `level` when switched on), whichever comes first; a report request
(`get`) by any report. An acknowledgement that refuses, or that says another state was applied,
fails it with the device's reason.

The ids of the last RECENT finished commands are remembered: the ack of a command a report already
confirmed is expected (brokers such as amqtt do not keep one client's messages in order) and is
ignored; the ack of one that timed out is counted as `ack_late`; any other id as `ack_unknown_id`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from lightctl.drivers.mqtt_codec import ACK_LATE, ACK_UNKNOWN_ID, Ack, Invalid
from lightctl.drivers.mqtt_routes import Track
from lightctl.model import CommandResult, Reading

RECENT = 10_000


@dataclass(eq=False, slots=True)
class Pending:
    command_id: str
    device: Track
    on: bool | None  # None: a report request, confirmed by any report
    level: int | None  # the level expected back when switched on
    issued: float  # clock time
    future: asyncio.Future[CommandResult]
    payload: bytes  # as published, for a resend to a device that reconnected meanwhile
    deadline: float  # monotonic


class PendingCommands:
    """Commands waiting for confirmation, by id (for acks) and by device (for reports)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._by_id: dict[str, Pending] = {}
        self.by_device: dict[str, list[Pending]] = {}  # read in the hot path: empty most of the time
        self._finished: OrderedDict[str, bool] = OrderedDict()  # command id -> it was confirmed
        self._deadlines: deque[tuple[float, Pending]] = deque()
        self.commands = self.confirmed = self.refused = self.timed_out = self.resent = 0

    def open(
        self,
        track: Track,
        command_id: str,
        on: bool | None,
        level: int | None,
        deadline: float,
        payload: bytes,
    ) -> Pending:
        """`deadline` is in real (monotonic) seconds; every command has the same timeout, so
        deadlines come in order and one sweep (`expire`) replaces a timer per command."""
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        pending = Pending(command_id, track, on, level, self._now(), future, payload, deadline)
        self._deadlines.append((deadline, pending))
        self._by_id[command_id] = pending
        self.by_device.setdefault(track.id, []).append(pending)
        self.commands += 1
        return pending

    def close(self, pending: Pending) -> None:
        if self._by_id.pop(pending.command_id, None) is not None:
            done = pending.future
            self._finished[pending.command_id] = done.done() and not done.cancelled() and done.result().ok
            if len(self._finished) > RECENT:
                self._finished.popitem(last=False)
        waiting = self.by_device.get(pending.device.id)
        if waiting is not None:
            if pending in waiting:
                waiting.remove(pending)
            if not waiting:
                del self.by_device[pending.device.id]

    def expire(self, now_real: float, detail: str) -> None:
        """Fail the commands whose deadline has passed without a confirmation."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now_real:
            _, pending = deadlines.popleft()
            if pending.future.done():
                continue
            self.timed_out += 1
            pending.future.set_result(
                CommandResult(
                    pending.device.id, pending.command_id, False, detail, None, self._now() - pending.issued
                )
            )
            self.close(pending)

    def resolve(self, pending: Pending, ok: bool, detail: str, by: str | None) -> None:
        if pending.future.done():
            return
        if ok:
            self.confirmed += 1
        elif by is not None:
            self.refused += 1
        result = CommandResult(
            pending.device.id, pending.command_id, ok, detail, by, self._now() - pending.issued
        )
        pending.future.set_result(result)
        self.close(pending)

    def cancel_all(self, detail: str) -> None:
        for pending in list(self._by_id.values()):
            self.resolve(pending, False, detail, None)

    def acknowledged(self, track: Track, ack: Ack) -> None:
        pending = self._by_id.get(ack.command_id) if ack.command_id is not None else None
        if pending is None or pending.device is not track:
            confirmed = self._finished.get(ack.command_id) if ack.command_id is not None else None
            if confirmed:
                return  # a report confirmed it first
            if confirmed is False:
                raise Invalid(ACK_LATE, f"id {ack.command_id!r:.70} after its command gave up")
            raise Invalid(ACK_UNKNOWN_ID, f"id {ack.command_id!r:.70} (foreign or unreadable)")
        if not ack.ok:
            self.resolve(pending, False, f"device refused: {ack.err or 'no reason given'}", "ack")
        elif pending.on is not None and ack.on is not None and ack.on != pending.on:
            self.resolve(pending, False, f"device applied on={ack.on} instead of {pending.on}", "ack")
        elif (
            pending.on and pending.level is not None and ack.level is not None and ack.level != pending.level
        ):
            self.resolve(
                pending, False, f"device applied level {ack.level} instead of {pending.level}", "ack"
            )
        else:
            self.resolve(pending, True, "", "ack")

    def reported(self, track: Track, reading: Reading) -> None:
        on = reading.values.get("on")
        level = reading.values.get("level")
        for pending in list(self.by_device.get(track.id, ())):
            if pending.on is None:  # a report request: any report answers it
                self.resolve(pending, True, "", "telemetry")
                continue
            shows_level = (
                not pending.on or pending.level is None or (level is not None and int(level) == pending.level)
            )
            if on is not None and bool(on) == pending.on and shows_level:
                self.resolve(pending, True, "", "telemetry")
