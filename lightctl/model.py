"""Domain types shared by every part of lightctl.

Plain dataclasses with no I/O: drivers produce Readings, the scheduler produces DesiredStates, the
reconciler turns the difference into Commands, detectors turn Readings into Alarms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

DeviceKind = Literal["lamp", "group", "facade"]
DEVICE_KINDS: tuple[DeviceKind, ...] = ("lamp", "group", "facade")


class Severity(StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"


class AlarmState(StrEnum):
    OPEN = "open"
    ACKED = "acked"
    RESOLVED = "resolved"


# Status bits are decoded into these names by the profiles, so detectors never see wire bit numbers.
FLAG_NAMES: frozenset[str] = frozenset(
    {
        "lamp_fault",  # SLC-M1 bit0: driver reports lamp open / short
        "relay_stuck",  # SLC-M1 bit1
        "driver_fault",  # SLC-M1 bit2: DALI driver not answering
        "over_temperature",
        "tilt",  # SLC-M1 bit4: pole struck
        "door_open",
        "breaker_tripped",
        "supply_lost",
        "k1_closed",  # ZHD-G2 contactor feedback
        "k2_closed",
        "controller_fault",  # FCD-S1 bit0
        "channel_fault",  # FCD-S1 bit1
    }
)

# Measured quantities a profile may map wire fields or registers onto (all in SI-ish display units).
QUANTITIES: frozenset[str] = frozenset(
    {
        "on",
        "level",
        "k1",
        "k2",
        "scene",
        "brightness",
        "active_scene",
        "voltage",
        "current",
        "current_k1",
        "current_k2",
        "power",
        "pf",
        "energy_kwh",
        "temperature",
        "hours",
        "leakage_ma",
        "failed_channels",
        "firmware",
    }
)


@dataclass(frozen=True, slots=True)
class Device:
    """One addressable controller of the inventory, as expanded from the compact YAML forms."""

    id: str
    kind: DeviceKind
    name: str
    profile: str
    lat: float
    lon: float
    rated_w: float  # lamp: luminaire; group: K1 + K2; facade: installed load
    dimmable: bool
    road: str | None = None
    zone: str | None = None
    gateway: str | None = None  # ZHD-G2: its Modbus gateway
    concentrator: str | None = None  # SLC-M1 behind a concentrator
    mqtt_id: str | None = None  # SLC-M1 `{dev}` on the wire
    unit_id: int | None = None  # Modbus unit id
    host: str | None = None  # FCD-S1 (groups use their gateway's address)
    port: int | None = None
    k1_w: float | None = None
    k2_w: float | None = None
    report_s: int | None = None  # overrides the profile's report interval
    road_class: str | None = None  # arterial | secondary | landscape ...: KPI targets differ


@dataclass(frozen=True, slots=True)
class Gateway:
    """A Modbus TCP gateway in a feeder cabinet: its units share one RS-485 bus and one feeder."""

    id: str
    name: str
    host: str
    port: int
    lat: float
    lon: float
    units: tuple[str, ...]  # device ids in unit-id order


@dataclass(frozen=True, slots=True)
class Concentrator:
    """A LoRa/PLC concentrator bridging several SLC-M1 lamps to MQTT with batched telemetry."""

    id: str
    name: str
    mqtt_id: str
    batch_s: int
    lat: float
    lon: float
    lamps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Road:
    id: str
    name: str
    road_class: str
    path: tuple[tuple[float, float], ...]
    lamps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    name: str
    zone_class: str
    devices: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reading:
    """One telemetry sample of one device, in the profile's canonical quantities."""

    device: str
    ts: float  # seconds since the epoch, UTC, as measured by the device
    seq: int | None = None
    values: dict[str, float] = field(default_factory=dict)  # QUANTITIES -> value (bools as 0/1)
    flags: frozenset[str] = frozenset()
    received: float = 0.0  # when lightctl got it (its own clock)

    def get(self, quantity: str) -> float | None:
        return self.values.get(quantity)


@dataclass(frozen=True, slots=True)
class DesiredState:
    """What a device should be doing now; fields that do not apply to its kind stay None."""

    on: bool | None = None
    level: int | None = None
    k1: bool | None = None
    k2: bool | None = None
    scene: int | None = None
    brightness: int | None = None
    source: str = "default"  # which rule, override or emergency asked for it

    def same_output(self, other: DesiredState) -> bool:
        """Equal in what the device is told to do, whatever the source."""
        return (self.on, self.level, self.k1, self.k2, self.scene, self.brightness) == (
            other.on,
            other.level,
            other.k1,
            other.k2,
            other.scene,
            other.brightness,
        )


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    device: str
    desired: DesiredState
    issued_at: float


@dataclass(slots=True)
class Alarm:
    id: int | None
    type: str
    severity: Severity
    device: str
    state: AlarmState
    first_seen: float
    last_seen: float
    parent: int | None = None
    assignee: str | None = None
    note: str | None = None
    held: bool = False  # raised during maintenance: recorded, not notified
    detail: str = ""  # the evidence that raised it, e.g. "power 1.2 W < 25 % of expected 150.5 W"


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What became of a command: confirmed by an acknowledgement or a read-back, or not."""

    device: str
    command_id: str
    ok: bool
    detail: str = ""  # why not, in words an operator can act on
    confirmed_by: str | None = None  # "ack", "telemetry", "readback"
    latency_s: float | None = None


OverrideKind = Literal["emergency", "manual", "event"]


@dataclass(frozen=True, slots=True)
class Override:
    """A temporary departure from the plan; it always has an end (`until`).

    Precedence: emergency > manual > event > plan; among equals the most recent wins.
    """

    id: int | None
    kind: OverrideKind
    targets: tuple[str, ...]  # ids or road:/zone:/kind:/gateway: targets
    state: DesiredState  # only the fields it sets are not None
    start: float
    until: float
    reason: str
    event: str | None = None  # the event's name, for kind "event"
    created_by: str = ""
    created_at: float = 0.0
    ended_at: float | None = None  # ended early (DELETE, emergency clear)

    def active(self, now: float) -> bool:
        end = self.until if self.ended_at is None else min(self.until, self.ended_at)
        return self.start <= now < end


@dataclass(frozen=True, slots=True)
class Maintenance:
    """Devices left alone by the reconciler, their alarms held, for a time window."""

    id: int | None
    targets: tuple[str, ...]
    start: float
    until: float
    reason: str
    created_by: str = ""
    created_at: float = 0.0
    ended_at: float | None = None

    def active(self, now: float) -> bool:
        end = self.until if self.ended_at is None else min(self.until, self.ended_at)
        return self.start <= now < end
