"""Northbound MQTT for other systems: each device's state (retained JSON) and availability.

Topics follow design.md section 5: `lightctl/<site>/<id>/state` and `.../availability`. A state is
published when it changes (coalesced once a second), not for every reading, so the ingest rate is
not mirrored onto the broker.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import orjson

from lightctl.clock import Clock
from lightctl.model import Reading
from lightctl.state import DeviceStatus, LiveState


class Publisher(Protocol):
    def publish_state(self, device_id: str, payload: bytes) -> bool: ...

    def publish_availability(self, device_id: str, online: bool) -> bool: ...


class Northbound:
    def __init__(
        self, live: LiveState, publisher: Publisher, site_id: str, clock: Clock, every_s: float = 1.0
    ) -> None:
        self.live = live
        self.publisher = publisher
        self.clock = clock
        self.every_s = every_s
        self._dirty: set[str] = set()
        self._sent: dict[str, tuple[object, ...]] = {}
        self._online: dict[str, bool] = {}
        live.reading_listeners.append(self._readings)
        live.availability_listeners.append(self._availability)

    def _readings(self, batch: list[Reading]) -> None:
        self._dirty.update(r.device for r in batch)

    def _availability(self, device_id: str, online: bool, ts: float, reason: str) -> None:
        if device_id in self.live.status:
            self._dirty.add(device_id)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            self.flush()

    def flush(self) -> int:
        dirty, self._dirty = self._dirty, set()
        sent = 0
        for dev_id in dirty:
            st = self.live.status.get(dev_id)
            if st is None:
                continue
            online = bool(st.online)
            if self._online.get(dev_id) != online:
                self.publisher.publish_availability(dev_id, online)
                self._online[dev_id] = online
            key = _key(st)
            if self._sent.get(dev_id) == key:
                continue
            self._sent[dev_id] = key
            self.publisher.publish_state(dev_id, _payload(dev_id, st))
            sent += 1
        return sent


def _key(st: DeviceStatus) -> tuple[object, ...]:
    power = None if st.power_w is None else round(st.power_w)
    return (st.online, st.on, st.level, st.k1, st.k2, st.scene, st.brightness, power)


def _payload(dev_id: str, st: DeviceStatus) -> bytes:
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
