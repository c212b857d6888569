"""Modbus TCP endpoints of the simulated field devices: a cabinet gateway with its RS-485 bus of
ZHD-G2 controllers, or an FCD-S1 facade controller answering by itself.

A gateway serves one request at a time for all its connections (it bridges a single bus), answers
after the controller's latency, and answers exception 11 after `no_answer_s` to a request for a
unit id that is not on its bus (or a controller that is silent). A function code a device's
datasheet does not list answers exception 1. The framing is written here for the simulator and
shares nothing with the driver (which uses pymodbus), so the two check each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from lightctl.clock import Clock
from lightctl.sim.modbus_faults import DeviceException, ExceptionCode, FaultValue

log = logging.getLogger(__name__)

MBAP = struct.Struct(">HHHB")  # transaction id, protocol id (0), length (unit id + PDU), unit id
MAX_PDU = 253


class SimUnit(Protocol):
    kind: str
    function_codes: frozenset[int]
    faults: dict[str, FaultValue | None]

    @property
    def silent(self) -> bool: ...

    def read_coils(self, address: int, count: int) -> list[bool]: ...
    def write_coils(self, address: int, values: list[bool]) -> None: ...
    def read_holding(self, address: int, count: int) -> list[int]: ...
    def write_holding(self, address: int, values: list[int]) -> None: ...
    def read_input(self, address: int, count: int) -> list[int]: ...
    def set_fault(self, fault: str, value: FaultValue | None) -> None: ...
    def clear_fault(self, fault: str) -> None: ...
    def set_counters(self, energy_wh: float | None = None, hours: float | None = None) -> None: ...


def answer_pdu(unit: SimUnit, pdu: bytes) -> bytes:
    """The response PDU to a request PDU, as the datasheets specify; exceptions as exception PDUs."""
    fc = pdu[0]
    try:
        return _dispatch(unit, fc, pdu[1:])
    except DeviceException as exc:
        return bytes([fc | 0x80, exc.code])


def _dispatch(unit: SimUnit, fc: int, body: bytes) -> bytes:
    if fc not in unit.function_codes:
        raise DeviceException(ExceptionCode.ILLEGAL_FUNCTION)
    if len(body) < 4:
        raise DeviceException(ExceptionCode.ILLEGAL_DATA_VALUE)
    address, count_or_value = struct.unpack_from(">HH", body)
    if fc in (1, 3, 4):
        if len(body) != 4 or not 1 <= count_or_value <= (2000 if fc == 1 else 125):
            raise DeviceException(ExceptionCode.ILLEGAL_DATA_VALUE)
        if fc == 1:
            packed = _pack_bits(unit.read_coils(address, count_or_value))
            return bytes([fc, len(packed)]) + packed
        read = unit.read_holding if fc == 3 else unit.read_input
        registers = read(address, count_or_value)
        return bytes([fc, 2 * len(registers)]) + struct.pack(f">{len(registers)}H", *registers)
    if fc == 5:
        if len(body) != 4 or count_or_value not in (0xFF00, 0x0000):
            raise DeviceException(ExceptionCode.ILLEGAL_DATA_VALUE)
        unit.write_coils(address, [count_or_value == 0xFF00])
        return bytes([fc]) + body
    if fc == 6:
        if len(body) != 4:
            raise DeviceException(ExceptionCode.ILLEGAL_DATA_VALUE)
        unit.write_holding(address, [count_or_value])
        return bytes([fc]) + body
    # FC15 / FC16: address, quantity, byte count, values
    count = count_or_value
    data = body[5:]
    if fc == 15:
        if not 1 <= count <= 1968 or len(body) < 5 or body[4] != (count + 7) // 8 or len(data) != body[4]:
            raise DeviceException(ExceptionCode.ILLEGAL_DATA_VALUE)
        unit.write_coils(address, [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)])
    else:
        if not 1 <= count <= 123 or len(body) < 5 or body[4] != 2 * count or len(data) != body[4]:
            raise DeviceException(ExceptionCode.ILLEGAL_DATA_VALUE)
        unit.write_holding(address, list(struct.unpack(f">{count}H", data)))
    return struct.pack(">BHH", fc, address, count)


def _pack_bits(bits: list[bool]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


@dataclass(frozen=True)
class RequestRecord:
    """A request a simulated gateway received (for tests that count traffic)."""

    ts: float
    unit_id: int
    function_code: int
    address: int | None
    count: int | None


class SimGateway:
    """One Modbus TCP endpoint: a cabinet gateway with its bus, or a facade controller."""

    def __init__(
        self,
        gateway_id: str,
        units: dict[int, SimUnit],
        clock: Clock,
        rng: random.Random,
        *,
        host: str,
        port: int,
        latency: tuple[float, float],
        no_answer_s: float,
    ) -> None:
        self.id = gateway_id
        self.units = units
        self.host = host
        self.port = port
        self.hung = False
        self.requests: deque[RequestRecord] = deque(maxlen=10_000)
        self._clock = clock
        self._rng = rng
        self._latency = latency
        self._no_answer_s = no_answer_s
        self._bus = asyncio.Lock()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._server is not None:
            return
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as exc:
            raise RuntimeError(
                f"simulated gateway {self.id} cannot listen on {self.host}:{self.port}: {exc}"
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and every connection; `start` listens again on the same port."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                header = await reader.readexactly(MBAP.size)
                tid, protocol, length, unit_id = MBAP.unpack(header)
                if protocol != 0 or not 2 <= length <= MAX_PDU + 1:
                    return  # not Modbus TCP: drop the connection as real gateways do
                pdu = await reader.readexactly(length - 1)
                self._record(unit_id, pdu)
                if self.hung:
                    continue
                async with self._bus:
                    response = await self._answer(unit_id, pdu)
                if response is None:
                    continue
                writer.write(MBAP.pack(tid, 0, len(response) + 1, unit_id) + response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # `stop` ends connections by cancelling them; a cancelled stream handler makes asyncio
            # log a spurious error in Python 3.11, so end it as a normal return.
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, unit_id: int, pdu: bytes) -> bytes | None:
        unit = self.units.get(unit_id)
        if unit is None or unit.silent:
            await self._clock.sleep(self._no_answer_s)
            response = bytes([pdu[0] | 0x80, ExceptionCode.TARGET_FAILED_TO_RESPOND])
        else:
            await self._clock.sleep(self._rng.uniform(*self._latency))
            try:
                response = answer_pdu(unit, pdu)
            except Exception:  # a simulator bug answers "server device failure", as a device would
                log.exception(
                    "simulated gateway %s: request %s to unit %d failed", self.id, pdu.hex(), unit_id
                )
                response = bytes([pdu[0] | 0x80, 4])
        return None if self.hung else response  # a gateway that hung mid-request never answers

    def _record(self, unit_id: int, pdu: bytes) -> None:
        address = count = None
        if len(pdu) >= 5:
            address, count = struct.unpack_from(">HH", pdu, 1)
        self.requests.append(RequestRecord(self._clock.now(), unit_id, pdu[0], address, count))
