"""Device profiles as data: one YAML file per device model in devices/profiles/.

A profile says how a model talks (MQTT topics and payload fields, or a Modbus register map with
types, word order and scale), what it can do, and the electrical figures the simulators and the
energy estimate need. Adding a model means adding a file; nothing here knows a model by name.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lightctl.model import FLAG_NAMES, QUANTITIES, DeviceKind

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_quantity(value: str) -> str:
    if value not in QUANTITIES:
        raise ValueError(f"unknown quantity {value!r}; known: {', '.join(sorted(QUANTITIES))}")
    return value


def _check_bits(bits: dict[int, str]) -> dict[int, str]:
    for bit, flag in bits.items():
        if not 0 <= bit <= 31:
            raise ValueError(f"bit {bit} out of range 0-31")
        if flag not in FLAG_NAMES:
            raise ValueError(f"unknown flag {flag!r}; known: {', '.join(sorted(FLAG_NAMES))}")
    return bits


# --- MQTT ----------------------------------------------------------------------------------------


class PayloadField(Strict):
    """One field of a JSON telemetry object and the quantity it carries."""

    quantity: str | None = None  # None for ts / seq, which are read by name
    type: Literal["int", "float", "bool", "bitmask"]
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    bits: dict[int, str] = Field(default_factory=dict)

    _q = field_validator("quantity")(lambda v: v if v is None else _check_quantity(v))
    _b = field_validator("bits")(_check_bits)


class MqttTopics(Strict):
    telemetry: str
    ack: str
    state: str
    command: str
    batch: str | None = None  # concentrator telemetry batches
    batch_state: str | None = None

    @field_validator("*")
    @classmethod
    def _placeholders(cls, value: str | None) -> str | None:
        if value is None:
            return value
        names = set(re.findall(r"{(\w+)}", value))
        if not names <= {"prefix", "dev", "gw"}:
            raise ValueError(f"unknown placeholder in {value!r}: only {{prefix}}, {{dev}}, {{gw}}")
        if "#" in value or "+" in value:
            raise ValueError("a topic template may not contain MQTT wildcards")
        return value


class MqttCommand(Strict):
    """Names of the command payload's fields."""

    id: str = "id"
    on: str = "on"
    level: str = "level"
    get: str = "get"


class MqttSpec(Strict):
    prefix: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    device_id_pattern: str = r"^[A-Za-z0-9_-]{1,32}$"
    topics: MqttTopics
    online: str = "online"
    offline: str = "offline"
    batch_s: int = Field(60, ge=1, le=3600)
    max_batch: int = Field(200, ge=1)
    max_payload_bytes: int = Field(65536, ge=256)
    fields: dict[str, PayloadField]
    command: MqttCommand = MqttCommand()

    def topic(self, name: str, dev: str = "+", gw: str = "+") -> str:
        template: str | None = getattr(self.topics, name)
        if template is None:
            raise KeyError(f"profile has no {name} topic")
        return template.format(prefix=self.prefix, dev=dev, gw=gw)


# --- Modbus --------------------------------------------------------------------------------------

Table = Literal["coil", "discrete", "holding", "input"]
RegisterType = Literal["bool", "uint16", "int16", "uint32", "int32", "bits"]
WORDS = {"bool": 1, "uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "bits": 1}


class Register(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    table: Table
    address: int = Field(ge=0, le=65535)
    type: RegisterType = "uint16"
    word_order: Literal["high_first", "low_first"] = "high_first"
    scale: float = 1.0
    unit: str | None = None
    quantity: str | None = None
    bits: dict[int, str] = Field(default_factory=dict)
    writable: bool = False
    min: int | None = None
    max: int | None = None

    _q = field_validator("quantity")(lambda v: v if v is None else _check_quantity(v))
    _b = field_validator("bits")(_check_bits)

    @model_validator(mode="after")
    def _shape(self) -> Register:
        if self.table in ("coil", "discrete") and self.type != "bool":
            raise ValueError(f"{self.table} {self.name!r} must have type bool")
        if self.table in ("holding", "input") and self.type == "bool":
            raise ValueError(f"register {self.name!r} cannot be bool; use a coil")
        if self.writable and self.table not in ("coil", "holding"):
            raise ValueError(f"{self.table} {self.name!r} cannot be writable")
        if self.type == "bits" and not self.bits:
            raise ValueError(f"register {self.name!r} of type bits needs a bits map")
        return self

    @property
    def words(self) -> int:
        return WORDS[self.type]

    @property
    def end(self) -> int:
        """One past the last address this register occupies."""
        return self.address + self.words


class Verify(Strict):
    """How a write is confirmed by reading back: a register's value or a status flag."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    read_register: str | None = Field(None, alias="register")
    flag: str | None = None
    within_s: float = Field(1.0, gt=0, le=60)

    @model_validator(mode="after")
    def _one(self) -> Verify:
        if (self.read_register is None) == (self.flag is None):
            raise ValueError("give exactly one of register or flag")
        if self.flag is not None and self.flag not in FLAG_NAMES:
            raise ValueError(f"unknown flag {self.flag!r}")
        return self


class ModbusSpec(Strict):
    unit_ids: tuple[int, int] = (1, 247)
    default_port: int = 502
    registers: list[Register]
    verify: dict[str, Verify] = Field(default_factory=dict)  # written register name -> check

    @model_validator(mode="after")
    def _consistent(self) -> ModbusSpec:
        lo, hi = self.unit_ids
        if not 1 <= lo <= hi <= 247:
            raise ValueError(f"unit_ids {lo}-{hi} must lie within 1-247")
        names = [r.name for r in self.registers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate register names: {', '.join(dupes)}")
        for table in ("coil", "discrete", "holding", "input"):
            regs = sorted((r for r in self.registers if r.table == table), key=lambda r: r.address)
            for a, b in itertools.pairwise(regs):
                if b.address < a.end:
                    raise ValueError(f"{table} registers {a.name!r} and {b.name!r} overlap at {b.address}")
        for written, check in self.verify.items():
            if written not in names:
                raise ValueError(f"verify names unknown register {written!r}")
            if check.read_register is not None and check.read_register not in names:
                raise ValueError(f"verify of {written!r} reads unknown register {check.read_register!r}")
        return self

    def register(self, name: str) -> Register:
        for reg in self.registers:
            if reg.name == name:
                return reg
        raise KeyError(name)

    def by_quantity(self, quantity: str) -> Register | None:
        for reg in self.registers:
            if reg.quantity == quantity:
                return reg
        return None


# --- Electrical figures (for simulators and energy estimates) ------------------------------------


class Electrical(Strict):
    standby_w: float = Field(0.0, ge=0)
    pf_full: float = Field(0.95, gt=0, le=1)  # at 100 %
    pf_low: float | None = Field(None, gt=0, le=1)  # at pf_low_level %
    pf_low_level: int = Field(30, ge=0, le=100)
    pf_zero: float | None = Field(None, gt=0, le=1)  # at 0 %
    pf_fixed_load: float | None = Field(None, gt=0, le=1)  # groups without an LED driver
    scene_share: dict[int, float] = Field(default_factory=dict)  # facade scene -> share of load
    custom_scene_share: float = 0.0
    channels: int = Field(1, ge=1)


class Profile(Strict):
    id: Slug
    model: str
    kind: DeviceKind
    transport: Literal["mqtt", "modbus"]
    description: str = ""
    dimmable: bool = False  # default; the inventory may say otherwise per device
    circuits: list[Literal["k1", "k2"]] = Field(default_factory=list)
    scenes: int = Field(0, ge=0, le=65535)  # highest scene number; 0 = no scenes
    report_s: int = Field(60, ge=1, le=86400)  # MQTT: report interval; Modbus: unused (poll interval)
    electrical: Electrical = Electrical()
    mqtt: MqttSpec | None = None
    modbus: ModbusSpec | None = None

    @model_validator(mode="after")
    def _transport(self) -> Profile:
        if self.transport == "mqtt" and self.mqtt is None:
            raise ValueError("transport mqtt needs an mqtt section")
        if self.transport == "modbus" and self.modbus is None:
            raise ValueError("transport modbus needs a modbus section")
        if self.transport == "mqtt" and self.modbus is not None:
            raise ValueError("transport mqtt cannot have a modbus section")
        if self.transport == "modbus" and self.mqtt is not None:
            raise ValueError("transport modbus cannot have an mqtt section")
        return self


# --- Codecs --------------------------------------------------------------------------------------


def decode_words(reg: Register, words: list[int]) -> int:
    """Raw integer of a register from its 16-bit words, honouring type and word order."""
    if reg.words == 1:
        raw = words[0] & 0xFFFF
        if reg.type == "int16" and raw >= 0x8000:
            raw -= 0x10000
        return raw
    hi, lo = (words[0], words[1]) if reg.word_order == "high_first" else (words[1], words[0])
    raw = ((hi & 0xFFFF) << 16) | (lo & 0xFFFF)
    if reg.type == "int32" and raw >= 0x80000000:
        raw -= 0x100000000
    return raw


def encode_words(reg: Register, raw: int) -> list[int]:
    """16-bit words of a register's raw integer (the inverse of decode_words)."""
    if reg.words == 1:
        return [raw & 0xFFFF]
    raw &= 0xFFFFFFFF
    hi, lo = raw >> 16, raw & 0xFFFF
    return [hi, lo] if reg.word_order == "high_first" else [lo, hi]


def decode_bits(bits: dict[int, str], raw: int) -> frozenset[str]:
    return frozenset(flag for bit, flag in bits.items() if raw >> bit & 1)


def read_blocks(registers: list[Register], table: Table, max_gap: int = 0) -> list[tuple[int, int]]:
    """Address ranges (start, count) covering a table's registers, adjacent ones in one request."""
    regs = sorted((r for r in registers if r.table == table), key=lambda r: r.address)
    blocks: list[tuple[int, int]] = []
    for reg in regs:
        if blocks and reg.address <= blocks[-1][0] + blocks[-1][1] + max_gap:
            start, _ = blocks[-1]
            blocks[-1] = (start, max(blocks[-1][1], reg.end - start))
        else:
            blocks.append((reg.address, reg.words))
    return blocks
