"""The wire, from the field devices' side: a recorder of what they publish on the broker (the ground
truth lightctl's view is checked against) and scripted Modbus TCP gateways that answer whatever a
test wants (garbage, exceptions, silence, or a relay to a simulated gateway)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import paho.mqtt.client as paho

from tests.servers import HOST, free_port


class MqttRecorder:
    """Records what the field devices publish, straight from the broker: the ground truth the API's
    view is checked against. Lamp reports keyed by inventory id (HA-001 -> ha-001)."""

    def __init__(self, port: int, topics: tuple[str, ...] = ("slc/#",)) -> None:
        self._lock = threading.Lock()
        self.reports: list[tuple[float, str, dict[str, Any]]] = []  # (arrival, lamp id, report)
        self.messages: list[tuple[float, str, bytes]] = []
        self._client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"rel-rec-{os.urandom(4).hex()}"
        )
        self._client.on_message = self._on_message
        self._topics = topics
        self._subscribed = False
        self._client.on_connect = self._on_connect
        self._client.connect(HOST, port, keepalive=10)
        self._client.loop_start()
        # Subscribed before the caller goes on: a report published next must not be missed.
        deadline = time.monotonic() + 5
        while not self._subscribed and time.monotonic() < deadline:
            time.sleep(0.01)

    def _on_connect(self, client: Any, *_: Any) -> None:
        for topic in self._topics:
            client.subscribe(topic, qos=1)
        self._subscribed = True

    def _on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        now = time.time()
        with self._lock:
            self.messages.append((now, msg.topic, msg.payload))
            if not msg.topic.endswith("/up/telemetry"):
                return
            try:
                body = orjson.loads(msg.payload)
            except orjson.JSONDecodeError:
                return
            if not isinstance(body, dict):
                return
            if "/gw/" in msg.topic:
                for lamp in body.get("lamps") or []:
                    if isinstance(lamp, dict) and isinstance(lamp.get("dev"), str):
                        self.reports.append((now, lamp["dev"].lower(), lamp))
            else:
                self.reports.append((now, msg.topic.split("/")[1].lower(), body))

    def latest(self, since: float = 0.0) -> dict[str, dict[str, Any]]:
        """Each lamp's last report that arrived after `since`."""
        with self._lock:
            return {dev: report for at, dev, report in self.reports if at >= since}

    def reports_of(
        self, since: float = 0.0, until: float = math.inf
    ) -> list[tuple[float, str, dict[str, Any]]]:
        with self._lock:
            return [r for r in self.reports if since <= r[0] < until]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@dataclass(frozen=True)
class Reply:
    """What a scripted gateway does with one request: send `data` after `delay_s`, then maybe close."""

    data: bytes = b""
    close: bool = False
    delay_s: float = 0.0


Responder = Callable[[bytes], Reply]


class ScriptedGateway:
    """A raw Modbus TCP "gateway" that answers each request frame (MBAP header + PDU) as
    `respond(frame)` says: garbage, wrong lengths, exception codes, silence, a socket closed
    mid-frame. It runs its own event loop on a thread, so a synchronous test can run it next to
    real processes and an asynchronous one next to an in-process driver. `respond` may be replaced
    while it runs."""

    def __init__(self, respond: Responder, port: int | None = None) -> None:
        self.respond = respond
        self.port = port or free_port()
        self.requests = 0
        self.errors: list[str] = []  # exceptions of `respond` itself (a bug in the test)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"scripted-{self.port}", daemon=True
        )
        self._server: Any = None
        self._writers: set[Any] = set()

    def start(self) -> ScriptedGateway:
        self._thread.start()

        async def listen() -> None:
            self._server = await asyncio.start_server(self._serve, HOST, self.port)

        asyncio.run_coroutine_threadsafe(listen(), self._loop).result(5)
        return self

    async def _serve(self, reader: Any, writer: Any) -> None:
        self._writers.add(writer)
        try:
            while True:
                header = await reader.readexactly(7)
                length = int.from_bytes(header[4:6], "big")
                body = await reader.readexactly(max(0, length - 1))
                self.requests += 1
                try:
                    reply = self.respond(header + body)
                except Exception as exc:
                    self.errors.append(repr(exc))
                    return
                if reply.delay_s:
                    await asyncio.sleep(reply.delay_s)
                if reply.data:
                    writer.write(reply.data)
                    await writer.drain()
                if reply.close:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.close()

        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


def mbap(request: bytes, pdu: bytes, *, tid: int | None = None, length: int | None = None) -> bytes:
    """A Modbus TCP answer to `request` carrying `pdu` (transaction id and length overridable)."""
    t = request[0:2] if tid is None else tid.to_bytes(2, "big")
    n = len(pdu) + 1 if length is None else length
    return t + request[2:4] + n.to_bytes(2, "big") + request[6:7] + pdu


def valid_answer(request: bytes, value: int = 0) -> bytes:
    """A correct answer to a read (every register / bit = `value`) or an echo of a write."""
    fc = request[7]
    count = int.from_bytes(request[10:12], "big")
    if fc in (1, 2):
        nbytes = (count + 7) // 8
        return mbap(request, bytes([fc, nbytes]) + bytes([0xFF if value else 0]) * nbytes)
    if fc in (3, 4):
        return mbap(request, bytes([fc, 2 * count]) + value.to_bytes(2, "big") * count)
    return mbap(request, request[7:12])  # FC05 / FC06 / FC15 / FC16 echo address and value / count


def forward_to(port: int) -> Responder:
    """A responder that relays each request to a real (simulated) gateway on `port` and returns its
    answer: the scripted gateway "recovers" and behaves as the datasheet says."""
    conn: list[socket.socket] = []

    def respond(request: bytes) -> Reply:
        if not conn:
            conn.append(socket.create_connection((HOST, port), timeout=3.0))
        sock = conn[0]
        try:
            sock.sendall(request)
            header = _recv_exactly(sock, 7)
            body = _recv_exactly(sock, int.from_bytes(header[4:6], "big") - 1)
        except OSError:
            conn.clear()
            sock.close()
            return Reply(close=True)
        return Reply(header + body)

    return respond


def _recv_exactly(sock: Any, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data
