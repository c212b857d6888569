"""Live state of every device, as the latest readings and availability reports say.

It is the drivers' ReadingSink: it keeps what the API shows and passes each batch on to the
listeners the composition root registers (storage, fault detection, the event stream).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lightctl.config.loader import District
from lightctl.model import Reading

ReadingListener = Callable[[list[Reading]], None]
AvailabilityListener = Callable[[str, bool, float, str], None]


@dataclass(slots=True)
class DeviceStatus:
    online: bool | None = None  # None until the device has been heard from or given up on
    on: bool | None = None
    level: int | None = None
    k1: bool | None = None
    k2: bool | None = None
    scene: int | None = None
    brightness: int | None = None
    power_w: float | None = None
    last_seen: float | None = None
    last: Reading | None = None


class LiveState:
    def __init__(self, district: District) -> None:
        self.district = district
        self.status: dict[str, DeviceStatus] = {dev_id: DeviceStatus() for dev_id in district.devices}
        self.parents: dict[str, bool | None] = {}  # gateway / concentrator id -> online
        self.reading_listeners: list[ReadingListener] = []
        self.availability_listeners: list[AvailabilityListener] = []

    def readings(self, batch: list[Reading]) -> None:
        for reading in batch:
            st = self.status.get(reading.device)
            if st is None:
                continue
            apply_reading(st, reading)
        for listener in self.reading_listeners:
            listener(batch)

    def availability(self, device_id: str, online: bool, ts: float, reason: str) -> None:
        st = self.status.get(device_id)
        if st is not None:
            st.online = online
        else:
            self.parents[device_id] = online
        for listener in self.availability_listeners:
            listener(device_id, online, ts, reason)

    def online_count(self) -> int:
        return sum(1 for st in self.status.values() if st.online)


def apply_reading(st: DeviceStatus, reading: Reading) -> None:
    v = reading.values
    st.last = reading
    st.last_seen = reading.ts
    st.online = True
    if "power" in v:
        st.power_w = v["power"]
    if "level" in v:
        st.level = int(v["level"])
    if "k1" in v or "k2" in v:
        st.k1 = bool(v.get("k1", 0))
        st.k2 = bool(v.get("k2", 0))
        st.on = st.k1 or st.k2
    if "on" in v:
        st.on = bool(v["on"])
    if "active_scene" in v:
        st.scene = int(v["active_scene"])
        st.on = st.scene > 0
    if "brightness" in v:
        st.brightness = int(v["brightness"])
