"""What the Modbus driver keeps per unit, per queued command and per gateway (for health)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from lightctl.drivers.modbus_units import Check, UnitPlan, WriteRequest
from lightctl.model import CommandResult


@dataclass
class UnitState:
    plan: UnitPlan
    seq: int = 0
    failed: int = 0  # consecutive failed polls
    online: bool | None = None
    last_values: dict[str, float] = field(default_factory=dict)


@dataclass
class Job:
    """A command for one unit: its write requests and the read-backs that confirm them."""

    unit: UnitState
    command_id: str
    requests: list[WriteRequest]
    checks: list[Check]
    future: asyncio.Future[CommandResult]
    queued_at: float
    written_at: float = 0.0
    pending: list[PendingCheck] = field(default_factory=list)

    @property
    def next_check(self) -> float:
        return min(p.due for p in self.pending)


@dataclass
class PendingCheck:
    check: Check
    due: float  # clock time of the next read-back


@dataclass(frozen=True)
class GatewayStatus:
    gateway_id: str
    host: str
    port: int
    units: int
    units_online: int
    connected: bool
    online: bool | None  # None until the first cycle ends
    cycles: int
    cycle_interval_s: float | None  # between the starts of the last two cycles (clock seconds)
    last_cycle_s: float | None  # how long the last cycle took (clock seconds)
    failed_polls: int
    reconnects: int
    commands_ok: int
    commands_failed: int
    queued_commands: int
    last_error: str
