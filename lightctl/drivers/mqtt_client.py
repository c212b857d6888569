"""One supervised MQTT connection for the drivers, on gmqtt 0.8.

What gmqtt does by itself and why this module takes over (read from its source, gmqtt/client.py and
gmqtt/mqtt/handler.py):

- gmqtt reconnects on its own after a lost connection, but with a fixed delay (6 s), unlimited, and
  with `clean_session=False` (a persistent session the broker keeps for our client id forever, with
  a queue of QoS 1 messages). It never re-subscribes. Here a supervisor task reconnects instead:
  exponential backoff with jitter (0.5 s doubling to 30 s, in real seconds: networks do not run on
  a simulated clock), a fresh client with a clean session each time, the subscriptions sent again,
  then `on_ready` (the driver publishes its online state and re-asserts retained topics).
- MQTT 5 against Mosquitto: the CONNACK carries Receive Maximum 20, and gmqtt raises
  OverflowError on the 20th QoS 1 publish still unacknowledged (its packet ids are capped by it;
  SUBSCRIBE packets draw from the same ids). QoS 1 publishes therefore go through an outbox drained
  on every PUBACK, and subscriptions are sent a few packets at a time.
- A broker that speaks only 3.1.1 answers an MQTT 5 CONNECT with return code 1 (gmqtt would then
  downgrade on its own reconnect, switched off here) or, like the embedded amqtt broker when the
  CONNECT carries a will, not at all. So after an MQTT 5 attempt that got no CONNACK the next
  attempt tries 3.1.1; if that connects, 3.1.1 is kept (with a warning: configure `version:
  "3.1.1"` to skip the detour, up to CONNECT_TIMEOUT_S), else the next attempt is MQTT 5 again.
- Publishing on a closed connection logs and silently loses the message in gmqtt, so nothing is
  handed to it while disconnected: QoS 0 is refused (the caller knows), QoS 1 waits in the outbox,
  with an optional expiry (a command nobody waits for any more is not sent after a reconnect).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gmqtt
from gmqtt.mqtt.constants import MQTTv50, MQTTv311

from lightctl.config.settings import Mqtt, Tls

# CONNACK codes meaning "who you are is not accepted": 3.1.1 (4, 5) and MQTT 5 (134, 135)
REFUSED_CREDENTIALS = frozenset({4, 5, 134, 135})

log = logging.getLogger("lightctl.drivers.mqtt")
# gmqtt logs every connection and SUBSCRIBE at INFO, and a traceback for every lost connection at
# WARNING; this module reports connection trouble itself, once per change.
if logging.getLogger("gmqtt").level == logging.NOTSET:
    logging.getLogger("gmqtt").setLevel(logging.ERROR)

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 5.0  # a returning broker is found within seconds (design.md section 9: 10 s)
STABLE_S = 10.0  # a connection that lived this long resets the backoff
CONNECT_TIMEOUT_S = 5.0
SUBSCRIBE_CHUNK = 500  # topic filters per SUBSCRIBE packet
SUBSCRIBE_WINDOW = 8  # SUBSCRIBE packets awaiting SUBACK
SUBACK_TIMEOUT_S = 10.0
OUTBOX_MAX = 200_000


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(slots=True)
class _Queued:
    topic: str
    payload: bytes
    retain: bool
    expires: float | None  # time.monotonic()


class _Client(gmqtt.Client):
    """gmqtt with its own reconnect switched off and a hook on every PUBACK."""

    def __init__(self, client_id: str, will: Will | None, on_puback: Callable[[], None]) -> None:
        message = (
            None
            if will is None
            else gmqtt.Message(will.topic, will.payload, qos=will.qos, retain=will.retain)
        )
        super().__init__(client_id, clean_session=True, will_message=message)
        self._puback_hook = on_puback

    async def reconnect(self, delay: bool = False) -> None:
        return  # the supervisor reconnects (clean session, backoff, re-subscribe)

    async def settled(self) -> None:
        """Until every QoS 1 message published so far is acknowledged."""
        await self._persistent_storage.wait_empty()

    def _remove_message_from_queue(self, mid: int) -> None:
        super()._remove_message_from_queue(mid)
        self._puback_hook()


def tls_context(tls: Tls, base_dir: Path | None = None) -> ssl.SSLContext:
    """Client TLS context from config.yaml's mqtt.tls; relative paths are taken from `base_dir`."""

    def path(name: str, value: str) -> str:
        p = Path(value)
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        if not p.is_file():
            raise ValueError(f"mqtt.tls.{name}: file not found: {p}")
        return str(p)

    try:
        context = ssl.create_default_context(cafile=path("ca", tls.ca) if tls.ca else None)
        if tls.cert and tls.key:
            context.load_cert_chain(path("cert", tls.cert), path("key", tls.key))
    except ssl.SSLError as exc:
        raise ValueError(f"mqtt.tls: {exc}") from exc
    if tls.insecure:
        context.check_hostname = False  # the chain is still verified against the CA
    return context


class MqttConnection:
    """Keeps one MQTT connection up; `on_message(topic, payload)` runs on the event loop."""

    def __init__(
        self,
        settings: Mqtt,
        *,
        on_message: Callable[[str, bytes], None],
        on_ready: Callable[[], Awaitable[None]] | None = None,
        will: Will | None = None,
        client_id: str | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.client_id = client_id or settings.client_id
        self._on_message = on_message
        self._on_ready = on_ready
        self._will = will
        self._ssl: ssl.SSLContext | bool = (
            False if settings.tls is None else tls_context(settings.tls, base_dir)
        )
        self._version = MQTTv50 if settings.version == "5" else MQTTv311
        self._probing_311 = False
        self._subscriptions: list[tuple[str, int]] = []
        self._client: _Client | None = None
        self._connected = False
        self._ready = asyncio.Event()
        self._lost = asyncio.Event()
        self._suback = asyncio.Event()
        self._unacked_subs: set[int] = set()
        self._outbox: deque[_Queued] = deque()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.connects = 0
        self.disconnects = 0
        self.expired = 0  # QoS 1 messages whose expiry passed before they could be sent
        self.outbox_overflow = 0
        self.last_error: str | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def set_subscriptions(self, topics: Sequence[tuple[str, int]]) -> None:
        """Topic filters (with QoS) sent after every (re)connect."""
        self._subscriptions = list(topics)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def protocol(self) -> str:
        return "5" if self._version == MQTTv50 else "3.1.1"

    @property
    def outbox_size(self) -> int:
        return len(self._outbox)

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._supervise(), name=f"mqtt:{self.client_id}")

    async def wait_ready(self, within_s: float) -> bool:
        """True once connected and subscribed (False after `within_s` real seconds)."""
        try:
            await asyncio.wait_for(self._ready.wait(), within_s)
        except TimeoutError:
            return False
        return True

    async def stop(self, final: Sequence[tuple[str, bytes, int, bool]] = ()) -> None:
        """Publish `final` (topic, payload, qos, retain) if connected, then disconnect cleanly.

        Waits (up to 2 s) for the broker to acknowledge what is queued first: closing a socket with
        unread incoming data (telemetry keeps arriving) makes the kernel send a reset, and the
        broker then discards whatever of ours it had not read yet.
        """
        self._stopping = True
        client = self._client
        if client is not None and self._connected:
            for topic, payload, qos, retain in final:
                self.publish(topic, payload, qos, retain)
            try:
                await asyncio.wait_for(self._settle(client), 2.0)
            except TimeoutError:
                log.warning(
                    "mqtt %s: stopping with %d message(s) unacknowledged", self.client_id, len(self._outbox)
                )
        await self._close_client()
        self._lost.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._connected = False
        self._ready.clear()

    async def _settle(self, client: _Client) -> None:
        await client.settled()
        while self._outbox and self._connected:  # the last PUBACKs let more into the window
            self._drain()
            await client.settled()

    # --- publishing -----------------------------------------------------------------------------

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, ttl_s: float | None = None
    ) -> bool:
        """Hand a message to the broker; False if it could not be sent or queued.

        QoS 0 goes out now or not at all. QoS 1 is queued while disconnected or while the broker's
        receive window is full, and dropped if `ttl_s` (real seconds) passes first.
        """
        client = self._client
        if qos == 0:
            if client is None or not self._connected:
                return False
            client.publish(topic, payload, qos=0, retain=retain)
            return True
        if client is not None and self._connected and not self._outbox:
            try:
                client.publish(topic, payload, qos=1, retain=retain)
                return True
            except OverflowError:
                pass  # receive window full: queue until a PUBACK
        if len(self._outbox) >= OUTBOX_MAX:
            self.outbox_overflow += 1
            return False
        expires = None if ttl_s is None else time.monotonic() + ttl_s
        # a copy of its own size: an orjson result keeps its whole 4 KB buffer, and this may wait long
        self._outbox.append(_Queued(topic, memoryview(payload).tobytes(), retain, expires))
        return True

    def _drain(self) -> None:
        client = self._client
        if client is None or not self._connected:
            return
        now = time.monotonic()
        outbox = self._outbox
        while outbox:
            item = outbox[0]
            if item.expires is not None and item.expires < now:
                outbox.popleft()
                self.expired += 1
                continue
            try:
                client.publish(item.topic, item.payload, qos=1, retain=item.retain)
            except OverflowError:
                return
            outbox.popleft()

    # --- the supervisor -------------------------------------------------------------------------

    async def _supervise(self) -> None:
        delay = BACKOFF_INITIAL_S
        while not self._stopping:
            started = time.monotonic()
            was_up = False
            try:
                await self._connect_once()
                was_up = True
                await self._lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._note_error(exc)
            finally:
                self._connected = False
                self._ready.clear()
                if was_up:
                    self.disconnects += 1
                    if not self._stopping:
                        self.last_error = "connection lost"
                        log.warning("mqtt %s: connection lost; reconnecting", self.client_id)
            if self._stopping:
                break
            await self._close_client()
            if time.monotonic() - started >= STABLE_S:
                delay = BACKOFF_INITIAL_S
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, BACKOFF_MAX_S)

    def _note_error(self, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        code = getattr(exc, "_code", None)
        if code in REFUSED_CREDENTIALS:
            text = (
                f"the broker refused lightctl's credentials (code {code}): check mqtt.username and "
                "mqtt.password in config.yaml and the broker's password file"
            )
        if text != self.last_error:
            log.warning("mqtt %s: %s:%s: %s", self.client_id, self.settings.host, self.settings.port, text)
        self.last_error = text

    async def _connect_once(self) -> None:
        client = _Client(self.client_id, self._will, self._drain)
        client.on_message = self._dispatch
        client.on_disconnect = self._disconnected
        client.on_subscribe = self._subscribed
        if self.settings.username is not None:
            client.set_auth_credentials(self.settings.username, self.settings.password)
        self._client = client
        self._lost.clear()
        asked = self._version
        settings = self.settings
        connect = asyncio.ensure_future(
            client.connect(
                settings.host, settings.port, ssl=self._ssl, keepalive=settings.keepalive_s, version=asked
            )
        )
        done = await self._unless_lost(connect, CONNECT_TIMEOUT_S)
        if not done:
            if asked == MQTTv50:
                self._version, self._probing_311 = MQTTv311, True  # try 3.1.1 once (see module doc)
            elif self._probing_311:
                self._version, self._probing_311 = MQTTv50, False
            raise ConnectionError(
                "connection closed before CONNACK" if self._lost.is_set() else "no CONNACK in time"
            )
        if self._lost.is_set() or not client.is_connected:
            raise ConnectionError("connection lost right after CONNACK")
        _cork(client)
        if self._probing_311:
            self._probing_311 = False
            log.warning(
                "mqtt %s: the broker did not answer MQTT 5; using 3.1.1 (set mqtt.version)", self.client_id
            )
        await self._subscribe(client)
        self._connected = True
        self.connects += 1
        self.last_error = None
        log.info(
            "mqtt %s: connected to %s:%s (MQTT %s)",
            self.client_id,
            settings.host,
            settings.port,
            self.protocol,
        )
        if self._on_ready is not None:
            await self._on_ready()
        self._drain()
        self._ready.set()

    async def _subscribe(self, client: _Client) -> None:
        self._unacked_subs.clear()
        subs = self._subscriptions
        for start in range(0, len(subs), SUBSCRIBE_CHUNK):
            while len(self._unacked_subs) >= SUBSCRIBE_WINDOW:
                await self._wait_suback()
            chunk = subs[start : start + SUBSCRIBE_CHUNK]
            self._unacked_subs.add(client.subscribe([gmqtt.Subscription(t, qos=q) for t, q in chunk]))
        while self._unacked_subs:
            await self._wait_suback()

    async def _wait_suback(self) -> None:
        self._suback.clear()
        if not await self._unless_lost(asyncio.ensure_future(self._suback.wait()), SUBACK_TIMEOUT_S):
            raise ConnectionError(
                "connection lost while subscribing" if self._lost.is_set() else "no SUBACK in time"
            )

    async def _unless_lost(self, task: asyncio.Future[Any], within_s: float) -> bool:
        """Whether `task` finished before the connection was lost and within `within_s`."""
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({task, lost}, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if not task.done():
            task.cancel()
            return False
        task.result()  # its exception, if any (a refused CONNACK)
        return True

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        # gmqtt would log a warning for a DISCONNECT written to an already closed socket.
        connection = None if client is None else client._connection
        if client is not None and connection is not None and not connection.is_closing():
            try:
                await asyncio.wait_for(client.disconnect(), 2.0)
            except Exception as exc:
                log.debug("mqtt %s: closing a dead connection: %r", self.client_id, exc)

    # --- gmqtt callbacks ------------------------------------------------------------------------

    def _dispatch(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        self._on_message(topic, payload)
        return 0

    def _disconnected(self, client: Any, *args: Any) -> None:
        if client is self._client:
            self._connected = False
            self._lost.set()

    def _subscribed(self, client: Any, mid: int, granted: Sequence[int], properties: Any) -> None:
        if client is not self._client:
            return
        refused = [code for code in granted if code >= 0x80]
        if refused:
            log.error(
                "mqtt %s: broker refused %d subscription(s), codes %s",
                self.client_id,
                len(refused),
                set(refused),
            )
        self._unacked_subs.discard(mid)
        self._suback.set()


class _Corked:
    """A transport that writes what one turn of the event loop produced in one go.

    gmqtt writes every packet to the socket as it is made: in a fan-out to 20,000 lamps that is a
    send() system call per command, a tenth of lightctl's time. Packets written in the same turn are
    joined and sent at the end of it, in order."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._parts:
            asyncio.get_running_loop().call_soon(self.flush)
        self._parts.append(data)

    def flush(self) -> None:
        if self._parts:
            data = b"".join(self._parts)
            self._parts.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _cork(client: Any) -> None:
    # gmqtt 0.8 (pinned in pyproject.toml) writes through two references to one transport: its
    # protocol's (publish, PUBACK, subscribe, ping) and its connection's (replays after a reconnect).
    # Both get the same corked transport, so every packet keeps its place in one buffer. If a release
    # moves them, packets simply go out one by one as before.
    connection = getattr(client, "_connection", None)
    protocol = getattr(connection, "_protocol", None)
    transport = getattr(protocol, "_transport", None)
    if connection is None or protocol is None or transport is None or isinstance(transport, _Corked):
        return
    if getattr(connection, "_transport", None) is not transport:
        return  # not the layout this was written for
    corked = _Corked(transport)
    protocol._transport = corked
    connection._transport = corked
