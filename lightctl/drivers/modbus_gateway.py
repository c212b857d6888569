"""The task that owns one Modbus TCP gateway: its connection, its poll cycle and its command queue.

A gateway serves one request at a time, so everything for it goes through this one task: unit
polls in turn, and between two unit polls the queued commands (writes, then read-backs as the
profile's verify map asks). Gateways run in parallel, each in its own task, so a gateway that
hangs costs only its own cycle. A facade controller is a gateway of one unit.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from lightctl.clock import Clock
from lightctl.config.settings import Modbus
from lightctl.drivers.modbus_link import DeviceRefused, GatewayLink, NoAnswer
from lightctl.drivers.modbus_state import GatewayStatus, Job, PendingCheck, UnitState
from lightctl.drivers.modbus_units import Block, Check
from lightctl.drivers.sink import Drops, ReadingSink
from lightctl.model import CommandResult, Reading

log = logging.getLogger(__name__)

MIN_WIRE_TIMEOUT_S = 0.25  # a scaled demo clock must not shrink network timeouts below this
SILENT_CODES = (10, 11)  # gateway path unavailable / target device failed to respond
COMMANDS_BEFORE_POLL_S = 5.0  # clock seconds of commands before the next unit poll gets its turn
REPROBE_S = 600.0  # clock seconds before registers a unit refused are asked for again


class GatewayWorker:
    def __init__(
        self,
        gateway_id: str,
        host: str,
        port: int,
        units: list[UnitState],
        settings: Modbus,
        sink: ReadingSink,
        clock: Clock,
        drops: Drops,
        *,
        standalone: bool = False,  # a facade controller: its unit's availability is its own
        in_flight: int = 1,
    ) -> None:
        self.id = gateway_id
        self.host = host
        self.port = port
        self.units = units
        self._settings = settings
        self._sink = sink
        self._clock = clock
        self._drops = drops
        self._standalone = standalone
        self._in_flight_max = in_flight
        # A wire timeout is real time: a gateway does not answer faster because the clock runs fast.
        self._link = GatewayLink(gateway_id, host, port, max(settings.timeout_s, MIN_WIRE_TIMEOUT_S))
        self._queue: deque[Job] = deque()
        self._in_flight: list[Job] = []
        self._wake = asyncio.Event()
        self.stopping = False  # set by the driver's stop(); ends the loop even if a cancellation is lost
        self.online: bool | None = None
        self.cycles = 0
        self.failed_polls = 0
        self.commands_ok = 0
        self.commands_failed = 0
        self.last_error = ""
        self._reference: UnitState | None = None  # the unit that answered last
        self._cycle_starts: deque[float] = deque(maxlen=2)
        self._last_cycle_s: float | None = None

    # --- public ------------------------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        self._queue.append(job)
        self._wake.set()

    def status(self) -> GatewayStatus:
        starts = list(self._cycle_starts)
        return GatewayStatus(
            gateway_id=self.id,
            host=self.host,
            port=self.port,
            units=len(self.units),
            units_online=sum(1 for u in self.units if u.online),
            connected=self._link.connected,
            online=self.online,
            cycles=self.cycles,
            cycle_interval_s=starts[1] - starts[0] if len(starts) == 2 else None,
            last_cycle_s=self._last_cycle_s,
            failed_polls=self.failed_polls,
            reconnects=self._link.reconnects,
            commands_ok=self.commands_ok,
            commands_failed=self.commands_failed,
            queued_commands=len(self._queue) + len(self._in_flight),
            last_error=self.last_error or self._link.last_error,
        )

    async def run(self) -> None:
        interval = self._settings.poll_interval_s
        next_cycle = self._clock.now()
        try:
            while not self.stopping:
                try:
                    await self._cycle()
                    next_cycle = max(next_cycle + interval, self._clock.now())  # late: now, no catching up
                    while self._clock.now() < next_cycle:
                        await self._serve_commands()
                        due = min((j.next_check for j in self._in_flight), default=next_cycle)
                        await self._idle(min(next_cycle, due) - self._clock.now())
                except Exception:  # a bug must not stop a gateway's polling for good
                    log.exception("gateway %s: poll loop failed; going on", self.id)
                    self._link.close()
                    await self._clock.sleep(min(interval, 1.0))
        finally:
            self._fail_all("driver stopped")
            self._link.close()

    # --- polling -----------------------------------------------------------------------------------

    async def _cycle(self) -> None:
        start = self._clock.now()
        self._cycle_starts.append(start)
        given_up: str | None = None
        for unit in self.units:
            if self.stopping:
                return
            await self._drain_commands()
            if given_up is not None:
                self._unit_failed(unit, given_up)
                continue
            try:
                await self._poll(unit)
            except NoAnswer as exc:
                self._unit_failed(unit, str(exc))
                # A gateway that refuses connections, or hangs, is not asked about the rest of the
                # cycle: it would only cost a timeout per unit.
                if exc.connect_failed or not await self._gateway_answers(unit):
                    given_up = f"{exc} (gateway not answering)" if not exc.connect_failed else str(exc)
        self.cycles += 1
        self._last_cycle_s = self._clock.now() - start

    async def _gateway_answers(self, silent: UnitState) -> bool:
        """After a timeout: is the gateway hung, or is only this unit silent? Ask the unit that
        answered last. Without one there is no evidence against the gateway, so polling goes on
        (two dead units must not make the healthy ones behind them look dead)."""
        reference = self._reference
        if reference is None or reference is silent or not reference.plan.blocks:
            return True
        try:
            await self._link.read(reference.plan.unit_id, reference.plan.blocks[0])
        except NoAnswer:
            return False
        except DeviceRefused:
            pass  # an exception is an answer: the gateway is alive
        return True

    async def _poll(self, unit: UnitState) -> None:
        plan = unit.plan
        if plan.refused_since is not None and self._clock.now() - plan.refused_since >= REPROBE_S:
            plan.restore()  # a device whose firmware was updated, or a refusal the gateway made up
        values: dict[str, float] = {}
        flags: set[str] = set()
        pending = list(plan.blocks)
        while pending:
            block = pending.pop(0)
            try:
                data = await self._link.read(plan.unit_id, block)
            except DeviceRefused as exc:
                if exc.code in SILENT_CODES:
                    self._unit_failed(unit, f"unit {plan.unit_id} did not answer: gateway sent {exc}")
                    return
                if exc.code not in (1, 2):
                    self._unit_failed(unit, f"unit {plan.unit_id} answered {exc}")
                    return
                # The profile lists something the device lacks: find it, keep reading the rest.
                if len(block.registers) > 1:
                    pending[:0] = plan.split(block)
                else:
                    plan.drop(block, str(exc), self._clock.now())
                    self._drops.count("modbus_register_refused")
                    log.warning(
                        "%s: %s %r refused with %s; not read for %g s (check profile %s)",
                        plan.device.id, block.table, block.registers[0].name, exc, REPROBE_S,
                        plan.profile.id,
                    )  # fmt: skip
                continue
            decoded = plan.decode(block, data)
            values.update(decoded.values)
            flags |= decoded.flags
        now = self._clock.now()
        unit.last_values = values
        reading = Reading(
            plan.device.id, ts=now, seq=unit.seq, values=values, flags=frozenset(flags), received=now
        )
        unit.seq += 1
        self._unit_ok(unit)
        if values or flags:
            self._emit(lambda: self._sink.readings([reading]))

    # --- commands ----------------------------------------------------------------------------------

    async def _serve_commands(self) -> None:
        self._wake.clear()  # whatever was submitted before this point is seen by the loop below
        while True:
            now = self._clock.now()
            due = [j for j in self._in_flight if j.next_check <= now]
            if due:
                await self._check(min(due, key=lambda j: j.next_check))
                continue
            job = self._startable()
            if job is None:
                return
            await self._start(job)

    async def _drain_commands(self) -> None:
        """Before the next unit poll, run the queued commands to their end (read-backs included):
        an operator waits on them, a poll can wait. Bounded, so a stream of commands cannot stop
        polling."""
        deadline = self._clock.now() + COMMANDS_BEFORE_POLL_S
        while True:
            await self._serve_commands()
            if not self._in_flight or self._clock.now() >= deadline:
                return
            await self._idle(min(j.next_check for j in self._in_flight) - self._clock.now())

    def _startable(self) -> Job | None:
        if len(self._in_flight) >= self._in_flight_max:
            return None
        busy = {j.unit.plan.device.id for j in self._in_flight}
        for job in self._queue:
            if job.future.done():  # the caller gave up
                self._queue.remove(job)
                return self._startable()
            if job.unit.plan.device.id not in busy:  # commands to one unit never overlap
                self._queue.remove(job)
                return job
        return None

    async def _start(self, job: Job) -> None:
        unit_id = job.unit.plan.unit_id
        for request in job.requests:
            try:
                await self._link.write(unit_id, request)
            except (NoAnswer, DeviceRefused) as exc:
                names = ", ".join(request.names)
                self._finish(job, False, f"write of {names} to unit {unit_id} failed: {exc}")
                return
            except BaseException:  # stopped mid-write: the caller must still get an answer
                self._finish(job, False, "driver stopped during the write")
                raise
        job.written_at = now = self._clock.now()
        # The written register itself reads back at once; a physical effect (a contactor, a scene)
        # gets a moment to happen first, while other units' writes use the bus.
        job.pending = [
            PendingCheck(c, now if c.source.name == c.write.register.name else now + _recheck_s(c))
            for c in job.checks
        ]
        if job.pending:
            self._in_flight.append(job)
        else:
            self._finish(job, True, "", "write")

    async def _check(self, job: Job) -> None:
        plan = job.unit.plan
        raws: dict[str, int] = {}
        asked = self._clock.now()  # a read asked for after the time allowed shows the settled state
        due = {p.check.source.name for p in job.pending if p.due <= asked}
        try:
            for pending in job.pending:
                reg = pending.check.source
                if reg.name in due and reg.name not in raws:
                    block = Block(reg.table, reg.address, reg.words, (reg,))
                    data = await self._link.read(plan.unit_id, block)
                    raws[reg.name] = plan.decode_raw(reg, data)
        except (NoAnswer, DeviceRefused) as exc:
            self._in_flight.remove(job)
            self._finish(job, False, f"read-back from unit {plan.unit_id} failed: {exc}")
            return
        now = self._clock.now()
        late: list[str] = []
        for pending in list(job.pending):
            check = pending.check
            raw = raws.get(check.source.name)
            if raw is None:
                continue
            got = check.observed(raw)
            if got == check.expected:
                job.pending.remove(pending)  # confirmed once is enough
            elif asked - job.written_at >= check.verify.within_s:
                late.append(check.failure(got, raw))
            else:
                pending.due = now + _recheck_s(check)
        if late or not job.pending:
            self._in_flight.remove(job)
            self._finish(job, not late, "; ".join(late), "readback")

    def _finish(self, job: Job, ok: bool, detail: str, confirmed_by: str | None = None) -> None:
        if ok:
            self.commands_ok += 1
        else:
            self.commands_failed += 1
            log.warning(
                "gateway %s: command %s for %s failed: %s",
                self.id,
                job.command_id,
                job.unit.plan.device.id,
                detail,
            )
        if not job.future.done():
            job.future.set_result(
                CommandResult(
                    device=job.unit.plan.device.id,
                    command_id=job.command_id,
                    ok=ok,
                    detail=detail,
                    confirmed_by=confirmed_by if ok else None,
                    latency_s=self._clock.now() - job.queued_at,
                )
            )

    def _fail_all(self, why: str) -> None:
        for job in [*self._in_flight, *self._queue]:
            self._finish(job, False, why)
        self._in_flight.clear()
        self._queue.clear()

    async def _idle(self, seconds: float) -> None:
        """Sleep on the clock until `seconds` pass or a command arrives (since `_serve_commands` looked)."""
        if seconds <= 0 or self._wake.is_set():
            return
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Not awaited: awaiting them here could swallow a cancellation of this worker (stop()),
            # which then never ends. Cancelled helpers finish on their own.
            sleeper.cancel()
            waker.cancel()

    # --- availability ------------------------------------------------------------------------------

    def _emit(self, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:  # the sink's problem must not stop polling
            log.exception("gateway %s: reading sink failed", self.id)
            self._drops.count("sink_error")

    def _unit_ok(self, unit: UnitState) -> None:
        self._reference = unit
        unit.failed = 0
        if unit.online is False:
            unit.plan.restore()  # whatever it refused while its path was failing is asked for again
        if unit.online is not True:
            unit.online = True
            now = self._clock.now()
            self._emit(lambda: self._sink.availability(unit.plan.device.id, True, now, "answering"))
        if self.online is not True:
            self.online = True
            if not self._standalone:
                now = self._clock.now()
                self._emit(lambda: self._sink.availability(self.id, True, now, "answering"))

    def _unit_failed(self, unit: UnitState, reason: str) -> None:
        limit = self._settings.failed_polls_for_comm_loss
        unit.failed += 1
        self.failed_polls += 1
        self.last_error = reason
        now = self._clock.now()
        if unit.failed >= limit and unit.online is not False:
            unit.online = False
            why = f"{unit.failed} polls failed: {reason}"
            self._emit(lambda: self._sink.availability(unit.plan.device.id, False, now, why))
        if self.online is not False and all(u.failed >= limit for u in self.units):
            self.online = False
            if not self._standalone:
                why = f"no unit answered in {limit} polls: {reason}"
                self._emit(lambda: self._sink.availability(self.id, False, now, why))


def _recheck_s(check: Check) -> float:
    """How long to wait before reading back again: a tenth of the time allowed, 20-100 ms."""
    return max(0.02, min(0.1, check.verify.within_s / 10))
