"""Live state of every device, as the latest readings and availability reports say.

It is the drivers' ReadingSink: it keeps what the API shows and passes each batch on to the
listeners the composition root registers (storage, fault detection, the event stream).

There is one DeviceStatus per device (100,000 at city scale), so it is kept small: the latest
reading is held packed (its values as one bytes object of doubles, its quantity names shared by
every device that reports the same ones) and made into a Reading again only when it is read; and
the devices online / offline / unknown and on / off are counted as they change, per kind, so that
neither the API nor the metrics walk every device to count them.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable

from lightctl.config.loader import District
from lightctl.model import Reading

ReadingListener = Callable[[list[Reading]], None]
AvailabilityListener = Callable[[str, bool, float, str], None]

Tally = Counter[tuple[str, bool | None]]  # ("online" | "on", value) -> devices of one kind

_MAX_LAYOUTS = 4096  # distinct sets of quantities; beyond (no real fleet) a Reading is kept as is


class _Layout:
    """The quantity names of a packed reading, in order, and how their values are packed."""

    __slots__ = ("keys", "packer")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self.packer = struct.Struct(f"<{len(keys)}d")


_LAYOUTS: dict[tuple[str, ...], _Layout] = {}


class DeviceStatus:
    """What is known of one device now."""

    __slots__ = (
        "_device",
        "_flags",
        "_layout",
        "_on",
        "_online",
        "_packed",
        "_received",
        "_seq",
        "_tally",
        "_ts",
        "brightness",
        "k1",
        "k2",
        "last_seen",
        "level",
        "power_w",
        "scene",
    )  # fmt: skip

    def __init__(
        self,
        online: bool | None = None,  # None until the device has been heard from or given up on
        on: bool | None = None,
        level: int | None = None,
        k1: bool | None = None,
        k2: bool | None = None,
        scene: int | None = None,
        brightness: int | None = None,
        power_w: float | None = None,
        last_seen: float | None = None,
        last: Reading | None = None,
        tally: Tally | None = None,
    ) -> None:
        self._tally = tally
        self._online = online
        self._on = on
        if tally is not None:
            tally["online", online] += 1
            tally["on", on] += 1
        self.level = level
        self.k1 = k1
        self.k2 = k2
        self.scene = scene
        self.brightness = brightness
        self.power_w = power_w
        self.last_seen = last_seen
        self._layout: _Layout | Reading | None = None
        self.last = last

    @property
    def online(self) -> bool | None:
        return self._online

    @online.setter
    def online(self, value: bool | None) -> None:
        if value is not self._online:
            self._move("online", self._online, value)
            self._online = value

    @property
    def on(self) -> bool | None:
        return self._on

    @on.setter
    def on(self, value: bool | None) -> None:
        if value is not self._on:
            self._move("on", self._on, value)
            self._on = value

    def _move(self, field: str, old: bool | None, new: bool | None) -> None:
        if self._tally is not None:
            self._tally[field, old] -= 1
            self._tally[field, new] += 1

    @property
    def last(self) -> Reading | None:
        """The latest reading (made anew from its packed form at every read)."""
        layout = self._layout
        if layout is None or isinstance(layout, Reading):
            return layout
        values = dict(zip(layout.keys, layout.packer.unpack(self._packed), strict=True))
        return Reading(self._device, self._ts, self._seq, values, self._flags, self._received)

    @last.setter
    def last(self, reading: Reading | None) -> None:
        if reading is None:
            self._layout = None
            return
        values = reading.values
        keys = tuple(values)
        layout = _LAYOUTS.get(keys)
        if layout is None:
            if len(_LAYOUTS) >= _MAX_LAYOUTS:
                self._layout = reading
                return
            layout = _LAYOUTS[keys] = _Layout(keys)
        try:
            self._packed = layout.packer.pack(*values.values())
        except struct.error:  # a value that is not a number: keep that one as it came
            self._layout = reading
            return
        self._layout = layout
        self._device = reading.device
        self._ts = reading.ts
        self._seq = reading.seq
        self._flags = reading.flags
        self._received = reading.received

    def __repr__(self) -> str:
        return (
            f"DeviceStatus(online={self.online}, on={self.on}, level={self.level}, k1={self.k1}, "
            f"k2={self.k2}, scene={self.scene}, brightness={self.brightness}, power_w={self.power_w}, "
            f"last_seen={self.last_seen})"
        )


class LiveState:
    def __init__(self, district: District) -> None:
        self.district = district
        self.tallies: dict[str, Tally] = {}  # by kind
        self.status: dict[str, DeviceStatus] = {}
        for dev_id, dev in district.devices.items():
            tally = self.tallies.get(dev.kind)
            if tally is None:
                tally = self.tallies[dev.kind] = Counter()
            self.status[dev_id] = DeviceStatus(tally=tally)
        self.parents: dict[str, bool | None] = {}  # gateway / concentrator id -> online
        self.reading_listeners: list[ReadingListener] = []
        self.availability_listeners: list[AvailabilityListener] = []

    def readings(self, batch: list[Reading]) -> None:
        status = self.status
        for reading in batch:
            st = status.get(reading.device)
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

    def count(self, field: str, value: bool | None, kind: str | None = None) -> int:
        """Devices (of one kind, or all) whose `online` or `on` is `value`, from the tallies."""
        tallies = self.tallies.values() if kind is None else [self.tallies.get(kind, Counter())]
        return sum(t[field, value] for t in tallies)

    def online_count(self) -> int:
        return self.count("online", True)


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
