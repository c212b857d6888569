"""The connection to one Modbus TCP gateway, through pymodbus: reads and writes of blocks, with
timeouts and reconnection. Only the gateway's own task (modbus_gateway) uses it, so requests to a
gateway go out strictly one at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from lightctl.drivers.modbus_units import Block, WriteRequest, exception_text

BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # between connect attempts after consecutive failures


class NoAnswer(Exception):
    """The gateway did not answer (timeout, connection refused or lost)."""

    def __init__(self, message: str, *, connect_failed: bool = False) -> None:
        super().__init__(message)
        self.connect_failed = connect_failed


class DeviceRefused(Exception):
    """The gateway or unit answered with a Modbus exception."""

    def __init__(self, code: int) -> None:
        super().__init__(exception_text(code))
        self.code = code


class GatewayLink:
    def __init__(self, gateway_id: str, host: str, port: int, timeout_s: float) -> None:
        self.id = gateway_id
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.reconnects = 0
        self.last_error = ""
        self._client: AsyncModbusTcpClient | None = None
        self._connect_failures = 0
        self._retry_at = 0.0
        self._ever_connected = False

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def read(self, unit_id: int, block: Block) -> list[int] | list[bool]:
        address, count = block.address, block.count

        def call(client: AsyncModbusTcpClient) -> Awaitable[ModbusPDU]:
            if block.table == "coil":
                return client.read_coils(address, count=count, device_id=unit_id)
            if block.table == "discrete":
                return client.read_discrete_inputs(address, count=count, device_id=unit_id)
            if block.table == "holding":
                return client.read_holding_registers(address, count=count, device_id=unit_id)
            return client.read_input_registers(address, count=count, device_id=unit_id)

        response = await self._request(
            call, f"reading {block.table} {address}-{address + count - 1} of unit {unit_id}"
        )
        if block.table in ("coil", "discrete"):
            bits = list(response.bits)[:count]
            if len(bits) < count:
                raise DeviceRefused(3)
            return bits
        registers = list(response.registers)
        if len(registers) != count:
            raise DeviceRefused(3)
        return registers

    async def write(self, unit_id: int, request: WriteRequest) -> None:
        address, values = request.address, request.values

        def call(client: AsyncModbusTcpClient) -> Awaitable[ModbusPDU]:
            if request.table == "coil":
                if len(values) == 1:
                    return client.write_coil(address, bool(values[0]), device_id=unit_id)
                return client.write_coils(address, [bool(v) for v in values], device_id=unit_id)
            if len(values) == 1:
                return client.write_register(address, values[0], device_id=unit_id)
            return client.write_registers(address, list(values), device_id=unit_id)

        await self._request(call, f"writing {', '.join(request.names)} to unit {unit_id}")

    async def _request(
        self, call: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]], what: str
    ) -> ModbusPDU:
        client = await self._connect()
        try:
            # pymodbus times the request out itself; the outer bound only guards against a stuck call.
            response = await asyncio.wait_for(call(client), self.timeout_s + 1.0)
        except (TimeoutError, ModbusException, OSError) as exc:
            self.close()  # a late answer on this connection would confuse the next request
            self.last_error = (
                f"gateway {self.id} at {self.host}:{self.port}: no answer {what} within {self.timeout_s:g} s"
            )
            raise NoAnswer(self.last_error) from exc
        if response.isError():
            raise DeviceRefused(int(response.exception_code))
        return response

    async def _connect(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        where = f"gateway {self.id} at {self.host}:{self.port}"
        if time.monotonic() < self._retry_at:  # backing off: no traffic
            raise NoAnswer(self.last_error or f"{where}: not connected", connect_failed=True)
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            name=self.id,
            timeout=self.timeout_s,
            retries=0,
            reconnect_delay=0,  # the gateway's task reconnects, with the backoff above
        )
        if not await client.connect():
            client.close()
            self._connect_failures += 1
            delay = BACKOFF_S[min(self._connect_failures, len(BACKOFF_S)) - 1]
            self._retry_at = time.monotonic() + delay
            self.last_error = f"{where}: cannot connect (next attempt in {delay:g} s)"
            raise NoAnswer(self.last_error, connect_failed=True)
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self._connect_failures = 0
        self._client = client
        return client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
