"""One MQTT connection of the simulated SLC-M1 fleet: its lamps (or one concentrator's) and their
report schedule.

Written apart from lightctl's driver connection on purpose (no shared code), and simpler: MQTT
3.1.1 as the devices speak it, a clean session on every connect (the datasheet: commands sent while
a device is offline are lost, so gmqtt's own reconnect with `clean_session=False` is switched off
and the link reconnects itself), and one scheduler loop per connection (a heap of due reports and
batches, no task per lamp).

Availability on a shared connection: MQTT allows one last will per connection, so a link holding
several directly connected lamps carries the will of its first lamp only; it publishes a retained
`online` for every lamp on connect, and `offline` for a lamp put in the `offline` fault. If the
whole link drops abruptly (`kill`, a crash), only the first lamp's will fires: the others fall
silent and the center notices their silence. With `lamps_per_connection=1` every lamp has its own
connection and will, exactly as the datasheet has it. A concentrator is always one connection with
its own will; its lamps have no state topic, as on the real device.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import ssl
from dataclasses import dataclass, field
from typing import Any

import gmqtt
import orjson
from gmqtt.mqtt.constants import MQTTv311

from lightctl.clock import Clock
from lightctl.sim.slc_faults import ActiveFault, Fault
from lightctl.sim.slc_model import SimLamp

log = logging.getLogger("lightctl.sim.slc")

_REPORT, _BATCH, _FLUSH, _FAULT = range(4)
MIN_SLEEP_REAL_S = 0.02  # scheduler granularity: lets a busy link batch its wake-ups


class _Client(gmqtt.Client):
    async def reconnect(self, delay: bool = False) -> None:
        return  # the link reconnects with a clean session instead

    async def settled(self) -> None:
        await self._persistent_storage.wait_empty()  # every QoS 1 publish acknowledged


@dataclass(frozen=True, slots=True)
class Broker:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    ssl: ssl.SSLContext | None = None
    telemetry_qos: int = 0


@dataclass(slots=True)
class LampTopics:
    telemetry: str
    ack: str
    state: str
    command: str


@dataclass(eq=False, slots=True)
class SimConcentrator:
    device_id: str
    wire_id: str
    batch_s: float
    phase: float
    state_topic: str
    batch_topic: str
    max_batch: int
    faults: list[ActiveFault] = field(default_factory=list)

    def fault(self, kind: Fault, now: float) -> bool:
        return any(f.kind is kind and f.active(now) for f in self.faults)

    def talks(self, now: float) -> bool:
        return not (self.faults and (self.fault(Fault.SILENCE, now) or self.fault(Fault.OFFLINE, now)))


class Link:
    """One connection: lamps reporting on their own topics, or one concentrator and its lamps."""

    def __init__(
        self,
        client_id: str,
        broker: Broker,
        clock: Clock,
        lamps: list[tuple[SimLamp, LampTopics]],
        online: bytes,
        offline: bytes,
        concentrator: SimConcentrator | None = None,
        flush_delay_s: float = 1.0,
    ) -> None:
        self.client_id, self.broker, self.clock = client_id, broker, clock
        self.lamps = [lamp for lamp, _ in lamps]
        self.topics = [topics for _, topics in lamps]
        self.by_command = {topics.command: i for i, (_, topics) in enumerate(lamps)}
        self.online, self.offline = online, offline
        self.conc = concentrator
        self.flush_delay_s = flush_delay_s
        self.connected = False
        self.ready = asyncio.Event()
        self._client: _Client | None = None
        self._lost = asyncio.Event()
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._heap: list[tuple[float, int, int, int]] = []
        self._order = itertools.count()
        self._next_measure: list[float] = []
        self._fresh: set[int] = set()
        self._flush_due: float | None = None
        self._announced_offline: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        self._running = True
        if self.conc is None:
            for i, lamp in enumerate(self.lamps):
                self._push(lamp.phase, _REPORT, i)
        else:
            self._next_measure = [self.conc.phase] * len(self.lamps)
            self._push(self.conc.phase, _BATCH, -1)
        self._tasks = [
            asyncio.create_task(self._supervise(), name=f"sim:{self.client_id}"),
            asyncio.create_task(self._schedule(), name=f"sim-schedule:{self.client_id}"),
        ]

    async def stop(self, abrupt: bool = False) -> None:
        self._running = False
        client = self._client
        if client is not None and self.connected:
            if abrupt:
                self._abort()
            else:
                if self.conc is None:
                    for topics in self.topics:
                        self._publish(topics.state, self.offline, 1, True)
                if self.conc is not None:
                    self._publish(self.conc.state_topic, self.offline, 1, True)
                try:
                    # Acknowledged before closing: a close with unread input resets the connection
                    # and the broker drops what it had not read yet.
                    await asyncio.wait_for(client.settled(), 2.0)
                    await asyncio.wait_for(client.disconnect(), 2.0)
                except Exception as exc:
                    log.debug("sim %s: disconnect: %r", self.client_id, exc)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.connected = False

    def _abort(self) -> None:
        """Drop the TCP connection without DISCONNECT, as a power cut would: the broker sends the will."""
        client = self._client
        connection = None if client is None else client._connection
        if connection is not None:
            connection._transport.abort()  # gmqtt has no public abort; close() would send nothing either

    def held_offline(self, now: float) -> bool:
        if self.conc is not None:
            return self.conc.fault(Fault.OFFLINE, now)
        return len(self.lamps) == 1 and self.lamps[0].fault(Fault.OFFLINE, now) is not None

    def faults_changed(self, at: float) -> None:
        """A fault starts or ends at `at` (clock time): re-check connectivity then."""
        self._push(at, _FAULT, -1)
        self._wake.set()

    # --- connection -----------------------------------------------------------------------------

    async def _supervise(self) -> None:
        delay = 0.2
        while self._running:
            if self.held_offline(self.clock.now()):
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("sim %s: connect failed: %r", self.client_id, exc)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            await self._lost.wait()
            self.connected = False
            self.ready.clear()
            await asyncio.sleep(0.2 * random.uniform(0.8, 1.2))

    async def _connect(self) -> None:
        will_topic = self.conc.state_topic if self.conc is not None else self.topics[0].state
        client = _Client(
            self.client_id,
            clean_session=True,
            will_message=gmqtt.Message(will_topic, self.offline, qos=1, retain=True),
        )
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        if self.broker.username is not None:
            client.set_auth_credentials(self.broker.username, self.broker.password)
        self._lost.clear()
        self._client = client
        b = self.broker
        ssl_arg: ssl.SSLContext | bool = b.ssl if b.ssl is not None else False
        try:
            await asyncio.wait_for(
                client.connect(b.host, b.port, ssl=ssl_arg, keepalive=30, version=MQTTv311), 10
            )
            await self._subscribe(client)
        except BaseException:
            self._abort()  # no half-open connection left behind to be taken over (and fire its will)
            raise
        self.connected = True
        now = self.clock.now()
        if self.conc is not None:
            self._publish(self.conc.state_topic, self.online, 1, True)
        else:
            self._announced_offline.clear()
            for i, lamp in enumerate(self.lamps):
                off = lamp.fault(Fault.OFFLINE, now) is not None
                self._publish(self.topics[i].state, self.offline if off else self.online, 1, True)
                if off:
                    self._announced_offline.add(i)
        self.ready.set()

    async def _subscribe(self, client: _Client) -> None:
        """Every lamp's command topic, 500 to a SUBSCRIBE, waiting for all SUBACKs."""
        acked: set[int] = set()
        done = asyncio.Event()

        def subscribed(_client: Any, mid: int, _qos: Any, _properties: Any) -> None:
            acked.add(mid)
            done.set()

        client.on_subscribe = subscribed
        topics = list(self.by_command)
        chunks = [topics[i : i + 500] for i in range(0, len(topics), 500)]
        mids = {client.subscribe([gmqtt.Subscription(t, qos=1) for t in chunk]) for chunk in chunks}
        while not mids <= acked:
            done.clear()
            await asyncio.wait_for(done.wait(), 10)

    def _on_disconnect(self, client: Any, *args: Any) -> None:
        if client is self._client:
            self.connected = False
            self._lost.set()

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> None:
        client = self._client
        if client is not None and self.connected:
            client.publish(topic, payload, qos=qos, retain=retain)

    # --- commands -------------------------------------------------------------------------------

    def _talks(self, i: int, now: float) -> bool:
        lamp = self.lamps[i]
        if lamp.faults and (lamp.fault(Fault.SILENCE, now) or lamp.fault(Fault.OFFLINE, now)):
            return False
        return self.conc is None or self.conc.talks(now)

    def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        i = self.by_command.get(topic)
        if client is not self._client or i is None:
            return 0
        now = self.clock.now()
        if not self._talks(i, now):
            return 0
        lamp = self.lamps[i]
        if lamp.faults and lamp.fault(Fault.DEAF, now):
            return 0  # hears nothing: no ack, no change, reports go on as before
        ack, changed = lamp.command(payload, now)
        self._publish(self.topics[i].ack, orjson.dumps(ack), 1)
        if changed:
            if self.conc is None:
                self._publish(
                    self.topics[i].telemetry, orjson.dumps(lamp.telemetry(now)), self.broker.telemetry_qos
                )
            else:
                self._fresh.add(i)
                if self._flush_due is None:
                    self._flush_due = now + self.flush_delay_s
                    self._push(self._flush_due, _FLUSH, -1)
                    self._wake.set()
        return 0

    # --- schedule -------------------------------------------------------------------------------

    def _push(self, due: float, kind: int, index: int) -> None:
        heapq.heappush(self._heap, (due, next(self._order), kind, index))

    async def _schedule(self) -> None:
        clock = self.clock
        heap = self._heap
        while True:
            now = clock.now()
            while heap and heap[0][0] <= now:
                due, _, kind, i = heapq.heappop(heap)
                if kind == _REPORT:
                    self._report(i, now)
                    step = self.lamps[i].report_s
                    self._push(due + step * (1 + (now - due) // step), _REPORT, i)
                elif kind == _BATCH and self.conc is not None:
                    self._batch(now, regular=True)
                    step = self.conc.batch_s
                    self._push(due + step * (1 + (now - due) // step), _BATCH, -1)
                elif kind == _FLUSH:
                    self._flush_due = None
                    self._batch(now, regular=False)
                elif kind == _FAULT:
                    self._connectivity(now)
            await self._sleep(heap[0][0] - now if heap else 3600.0)

    async def _sleep(self, delay: float) -> None:
        delay = max(delay, MIN_SLEEP_REAL_S * self.clock.speed)
        self._wake.clear()
        sleeper = asyncio.ensure_future(self.clock.sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    def _report(self, i: int, now: float) -> None:
        if self._talks(i, now):
            report = self.lamps[i].telemetry(now)  # measured (seq advances) even if the link is down
            self._publish(self.topics[i].telemetry, orjson.dumps(report), self.broker.telemetry_qos)

    def _batch(self, now: float, regular: bool) -> None:
        conc = self.conc
        if conc is None or not conc.talks(now):
            self._fresh.clear()
            return
        entries: list[dict[str, object]] = []
        for i, lamp in enumerate(self.lamps):
            due = self._next_measure[i]
            fresh = i in self._fresh
            if not (fresh or (regular and due <= now + 1e-6)) or not self._talks(i, now):
                continue
            measured = now if fresh or due > now else due + lamp.report_s * ((now - due) // lamp.report_s)
            entries.append({"dev": lamp.wire_id, **lamp.telemetry(now, measured)})
            if due <= now:
                self._next_measure[i] = due + lamp.report_s * (1 + (now - due) // lamp.report_s)
        self._fresh.clear()
        if not entries and not regular:
            return
        qos = self.broker.telemetry_qos
        for start in range(0, max(1, len(entries)), conc.max_batch):
            body = {"ts": int(now), "lamps": entries[start : start + conc.max_batch]}
            self._publish(conc.batch_topic, orjson.dumps(body), qos)

    def _connectivity(self, now: float) -> None:
        if self.held_offline(now):
            if self.connected:
                self._abort()
        else:
            self._changed.set()
        if self.conc is not None or not self.connected or len(self.lamps) == 1:
            return
        for i, lamp in enumerate(self.lamps):  # a shared link announces each lamp's own state
            off = lamp.fault(Fault.OFFLINE, now) is not None
            if off != (i in self._announced_offline):
                self._publish(self.topics[i].state, self.offline if off else self.online, 1, True)
                (self._announced_offline.add if off else self._announced_offline.discard)(i)

    def reachable(self, i: int, now: float) -> bool:
        return self.connected and self._talks(i, now)
