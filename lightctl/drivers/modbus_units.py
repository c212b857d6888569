"""One Modbus unit as the driver sees it: its profile's register map cut into block reads, decoded
into canonical quantities and flags, and the checked, encoded form of writes and their read-backs.

Nothing here knows a device model: everything comes from the profile (profiles.ModbusSpec).
"""

from __future__ import annotations

from dataclasses import dataclass

from lightctl.model import Device
from lightctl.profiles import (
    ModbusSpec,
    Profile,
    Register,
    Table,
    Verify,
    decode_bits,
    decode_words,
    encode_words,
    read_blocks,
)

TABLES: tuple[Table, ...] = ("coil", "discrete", "holding", "input")
# Largest read the protocol allows per function code (bits for FC01/02, registers for FC03/04).
MAX_READ = {"coil": 2000, "discrete": 2000, "holding": 125, "input": 125}
INT_RANGE = {
    "bool": (0, 1),
    "uint16": (0, 0xFFFF),
    "int16": (-0x8000, 0x7FFF),
    "bits": (0, 0xFFFF),
    "uint32": (0, 0xFFFFFFFF),
    "int32": (-0x80000000, 0x7FFFFFFF),
}
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
# Flags worth naming when a read-back fails: they usually explain why.
EXPLAINING_FLAGS = {
    "supply_lost": "supply lost",
    "breaker_tripped": "breaker tripped",
    "controller_fault": "controller fault",
}


class WriteRefused(ValueError):
    """A write lightctl will not send (unknown device or register, not writable, out of range)."""


def exception_text(code: int) -> str:
    return f"exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})"


@dataclass(frozen=True)
class Block:
    """One read request: a run of adjacent registers (or coils) of one table."""

    table: Table
    address: int
    count: int
    registers: tuple[Register, ...]


@dataclass(frozen=True)
class Decoded:
    values: dict[str, float]
    flags: frozenset[str]


class UnitPlan:
    """How one device is polled: adjacent registers of a table are read in one request."""

    def __init__(self, device: Device, profile: Profile) -> None:
        if profile.modbus is None or device.unit_id is None:
            raise ValueError(
                f"{device.id}: not a Modbus device (profile {profile.id}, unit id {device.unit_id})"
            )
        self.device = device
        self.profile = profile
        self.spec: ModbusSpec = profile.modbus
        self.unit_id: int = device.unit_id
        self.refused: dict[str, str] = {}  # register name -> why the device refused it
        self.refused_since: float | None = None  # when the first of them was dropped
        self.blocks = self._plan(list(self.spec.registers))

    def _plan(self, registers: list[Register]) -> list[Block]:
        blocks: list[Block] = []
        for table in TABLES:
            members = sorted((r for r in registers if r.table == table), key=lambda r: r.address)
            for start, count in read_blocks(members, table):
                inside = [r for r in members if start <= r.address < start + count]
                blocks.extend(_chunk(table, inside, MAX_READ[table]))
        return blocks

    def split(self, block: Block) -> list[Block]:
        """Read a refused block's registers one by one from now on, to find the one the device lacks."""
        singles = [Block(block.table, r.address, r.words, (r,)) for r in block.registers]
        index = self.blocks.index(block)
        self.blocks[index : index + 1] = singles
        return singles

    def drop(self, block: Block, why: str, now: float) -> None:
        """Stop reading a register the device refused; the others go back to block reads."""
        for reg in block.registers:
            self.refused[reg.name] = why
        if self.refused_since is None:
            self.refused_since = now
        self.blocks = self._plan([r for r in self.spec.registers if r.name not in self.refused])

    def restore(self) -> None:
        """Read every register of the profile again. A refusal may have come from a gateway that was
        misbehaving rather than from the device, so it is not held against the device for ever."""
        if self.refused:
            self.refused.clear()
            self.refused_since = None
            self.blocks = self._plan(list(self.spec.registers))

    def decode(self, block: Block, data: list[int] | list[bool]) -> Decoded:
        values: dict[str, float] = {}
        flags: set[str] = set()
        for reg in block.registers:
            raw = self.decode_raw(reg, data[reg.address - block.address :])
            if reg.type == "bits":
                flags |= decode_bits(reg.bits, raw)
            if reg.quantity is not None:
                values[reg.quantity] = round(
                    raw * reg.scale, 6
                )  # 2205 * 0.1 -> 220.5, not 220.50000000000003
        return Decoded(values, frozenset(flags))

    def decode_raw(self, reg: Register, data: list[int] | list[bool]) -> int:
        """The raw integer of `reg` from data read starting at its address."""
        if reg.table in ("coil", "discrete"):
            return int(bool(data[0]))
        return decode_words(reg, [int(w) for w in data[: reg.words]])

    # --- writes ------------------------------------------------------------------------------------

    def register(self, name: str) -> Register:
        try:
            return self.spec.register(name)
        except KeyError:
            known = ", ".join(r.name for r in self.spec.registers if r.writable)
            raise WriteRefused(
                f"{self.device.id}: profile {self.profile.id} has no register {name!r} (writable: {known})"
            ) from None

    def encode(self, name: str, value: float) -> Write:
        """Check a write against the profile and encode it; raises WriteRefused."""
        reg = self.register(name)
        where = f"{self.device.id}: {reg.table} {name!r} of profile {self.profile.id}"
        if not reg.writable:
            raise WriteRefused(f"{where} is not writable")
        if reg.type == "bool":
            if value not in (0, 1):
                raise WriteRefused(f"{where} takes 0 or 1, not {value!r}")
            return Write(reg, int(value))
        if (reg.min is not None and value < reg.min) or (reg.max is not None and value > reg.max):
            raise WriteRefused(f"{where}: {value:g} is outside {reg.min}-{reg.max}")
        raw = round(value / reg.scale)
        lo, hi = INT_RANGE[reg.type]
        if not lo <= raw <= hi or abs(raw * reg.scale - value) > abs(reg.scale) / 2 + 1e-9:
            raise WriteRefused(f"{where}: {value!r} does not fit a {reg.type} with scale {reg.scale:g}")
        return Write(reg, raw)

    def checks(self, writes: list[Write]) -> list[Check]:
        """The read-backs the profile's verify map asks for; registers it does not list need none."""
        out: list[Check] = []
        for write in writes:
            verify = self.spec.verify.get(write.register.name)
            if verify is None:
                continue
            if verify.flag is not None:
                source = next(
                    (r for r in self.spec.registers if r.type == "bits" and verify.flag in r.bits.values()),
                    None,
                )
                if source is None:
                    raise WriteRefused(f"{self.device.id}: no register carries flag {verify.flag!r}")
            else:
                source = self.spec.register(str(verify.read_register))
            out.append(Check(write, verify, source))
        # Read-backs with no physical lag (the written register itself) first: they pass at once.
        out.sort(key=lambda c: c.source.name != c.write.register.name)
        return out


def _chunk(table: Table, registers: list[Register], limit: int) -> list[Block]:
    blocks: list[Block] = []
    current: list[Register] = []
    for reg in registers:
        if current and reg.end - current[0].address > limit:
            blocks.append(_block(table, current))
            current = []
        current.append(reg)
    if current:
        blocks.append(_block(table, current))
    return blocks


def _block(table: Table, registers: list[Register]) -> Block:
    start = registers[0].address
    return Block(table, start, max(r.end for r in registers) - start, tuple(registers))


@dataclass(frozen=True)
class Write:
    register: Register
    raw: int

    def words(self) -> list[int]:
        return encode_words(self.register, self.raw)


@dataclass(frozen=True)
class WriteRequest:
    """One write on the wire: adjacent coils (FC05/FC15) or holding registers (FC06/FC16)."""

    table: Table
    address: int
    values: tuple[int, ...]  # coil states or 16-bit words
    names: tuple[str, ...]


def write_requests(writes: list[Write]) -> list[WriteRequest]:
    """Adjacent writes of a table merged; holding registers before coils, so that a group is dimmed
    to its level before its contactors close."""
    requests: list[WriteRequest] = []
    for table in ("holding", "coil"):
        items = sorted((w for w in writes if w.register.table == table), key=lambda w: w.register.address)
        for write in items:
            words = [write.raw] if table == "coil" else write.words()
            last = requests[-1] if requests else None
            if last and last.table == table and last.address + len(last.values) == write.register.address:
                requests[-1] = WriteRequest(
                    table, last.address, (*last.values, *words), (*last.names, write.register.name)
                )
            else:
                requests.append(
                    WriteRequest(table, write.register.address, tuple(words), (write.register.name,))
                )
    return requests


@dataclass(frozen=True)
class Check:
    """A read-back confirming one write: a flag or a register reaching the written value."""

    write: Write
    verify: Verify
    source: Register  # the register read back

    @property
    def expected(self) -> int:
        return int(bool(self.write.raw)) if self.verify.flag is not None else self.write.raw

    def observed(self, raw: int) -> int:
        if self.verify.flag is not None:
            return int(self.verify.flag in decode_bits(self.source.bits, raw))
        return raw

    def failure(self, got: int, raw: int) -> str:
        """What an operator reads when the read-back never matched."""
        name = self.write.register.name
        after = f"after {self.verify.within_s:g} s"
        if self.verify.flag is not None and self.write.register.table == "coil":
            action = "close" if self.expected else "open"
            text = f"{name.upper()} contactor did not {action}: feedback {got} {after}"
        elif self.verify.flag is not None:
            text = f"{name} = {self.write.raw} not confirmed: {self.verify.flag} reads {got} {after}"
        else:
            text = f"{name} = {self.write.raw} not confirmed: {self.source.name} reads {got} {after}"
        if self.source.type == "bits":
            causes = [
                EXPLAINING_FLAGS[f]
                for f in sorted(decode_bits(self.source.bits, raw))
                if f in EXPLAINING_FLAGS
            ]
            if causes:
                text += f" ({', '.join(causes)})"
        return text
