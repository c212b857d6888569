"""Northbound MQTT for other systems: each device's state (retained JSON) and availability.

Topics follow design.md section 5: `lightctl/<site>/<id>/state` and `.../availability`. A device's
state is published when what it is doing changes (online, on, level, k1 / k2, scene, brightness),
coalesced once a second; a reading that only brings new measurements (power, voltage, the time) is
published at most every `measured_every_s` per device, so the ingest rate is not mirrored onto the
broker. Nothing sent is kept: after a reconnect (a restarted broker may have forgotten every
retained topic) the payloads are made again from live state.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Callable
from typing import Protocol, cast

import orjson

from lightctl.clock import Clock
from lightctl.model import Reading
from lightctl.state import DeviceStatus, LiveState


class Publisher(Protocol):
    def publish_state(self, device_id: str, payload: bytes) -> bool: ...

    def publish_availability(self, device_id: str, online: bool) -> bool: ...

    def add_connected_listener(self, callback: Callable[[], None]) -> None: ...


class Northbound:
    def __init__(
        self,
        live: LiveState,
        publisher: Publisher,
        site_id: str,
        clock: Clock,
        every_s: float = 1.0,
        measured_every_s: float = 60.0,
    ) -> None:
        self.live = live
        self.publisher = publisher
        self.clock = clock
        self.every_s = every_s
        self.measured_every_s = measured_every_s
        self._dirty: set[str] = set()
        self._sent: dict[str, object] = {}  # device -> _key of what was published last
        self._waiting: set[str] = set()  # new measurements not published yet
        self._due: deque[tuple[float, list[str]]] = deque()  # when the waiting ones go out, oldest first
        live.reading_listeners.append(self._readings)
        live.availability_listeners.append(self._availability)
        publisher.add_connected_listener(self.resend)

    def _readings(self, batch: list[Reading]) -> None:
        self._dirty.update([r.device for r in batch])

    def _availability(self, device_id: str, online: bool, ts: float, reason: str) -> None:
        if device_id in self.live.status:
            self._dirty.add(device_id)

    def resend(self) -> None:
        """Publish everything again at the next flush (the broker may have lost its retained topics)."""
        self._dirty.update(self._sent)
        self._sent.clear()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            self.flush(CHUNK)
            while self.behind():  # the rest a chunk at a time, letting the API and ingest in between
                await asyncio.sleep(0)
                self.flush(CHUNK)

    def behind(self) -> bool:
        """Whether a flush left devices to look at (it was given a limit)."""
        return bool(self._dirty) or bool(self._due and self._due[0][0] <= self.clock.now())

    def flush(self, limit: int | None = None) -> int:
        """Publish what changed, looking at no more than `limit` devices (all without one); returns
        how many states were published."""
        dirty = self._dirty
        if limit is None or len(dirty) <= limit:
            self._dirty = set()
        else:
            dirty = {dirty.pop() for _ in range(limit)}
        budget = sys.maxsize if limit is None else limit  # devices to look at
        status, sent_keys, waiting = self.live.status, self._sent, self._waiting
        now = self.clock.now()
        later: list[str] = []
        sent = 0
        for dev_id in dirty:
            st = status.get(dev_id)
            if st is None:
                continue
            key = _key(st)
            before = sent_keys.get(dev_id)
            if before == key:
                if dev_id not in waiting:
                    waiting.add(dev_id)
                    later.append(dev_id)
                continue
            if before is None or _online(before) != st.online:
                self.publisher.publish_availability(dev_id, bool(st.online))
            sent_keys[dev_id] = key
            waiting.discard(dev_id)
            self.publisher.publish_state(dev_id, _payload(dev_id, st))
            sent += 1
        if later:
            self._due.append((now + self.measured_every_s, later))
        budget -= len(dirty)
        due = self._due
        while due and due[0][0] <= now and budget > 0:
            at, devices = due[0]
            if len(devices) > budget:
                devices, due[0] = devices[:budget], (at, devices[budget:])
            else:
                due.popleft()
            budget -= len(devices)
            for dev_id in devices:
                st = status.get(dev_id)
                if dev_id in waiting and st is not None:
                    waiting.discard(dev_id)
                    self.publisher.publish_state(dev_id, _payload(dev_id, st))
                    sent += 1
        return sent


CHUNK = 2000  # devices per flush in run(): a bounded pause of the event loop (~20-40 ms)


_TRI = {None: 0, False: 1, True: 2}
_WIDE = 0x1FFFF  # level, scene and brightness below this pack into one int


def _key(st: DeviceStatus) -> object:
    """What the device is doing, as one int (a tuple for values no device reports): it is kept per
    device, so it should be small."""
    n = _TRI[st.online] + 3 * _TRI[st.on] + 9 * _TRI[st.k1] + 27 * _TRI[st.k2]
    for v in (st.level, st.scene, st.brightness):
        if v is None:
            n <<= 17
        elif 0 <= v < _WIDE:
            n = n << 17 | (v + 1)
        else:
            return (st.online, st.on, st.k1, st.k2, st.level, st.scene, st.brightness)
    return n


def _online(key: object) -> bool | None:
    if isinstance(key, int):
        return (None, False, True)[(key >> 51) % 3]
    return cast(tuple[bool | None, ...], key)[0]


def _payload(dev_id: str, st: DeviceStatus) -> bytes:
    # Published at QoS 0, so gmqtt does not hold it; MqttConnection copies what it has to queue
    # (an orjson result keeps its whole 4 KB buffer, and `bytes()` of it would be the same object).
    return orjson.dumps(
        {
            "id": dev_id,
            "online": st.online,
            "on": st.on,
            "level": st.level,
            "k1": st.k1,
            "k2": st.k2,
            "scene": st.scene,
            "brightness": st.brightness,
            "power_w": None if st.power_w is None else round(st.power_w, 1),
            "ts": st.last_seen,
        }
    )
