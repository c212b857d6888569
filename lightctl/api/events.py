"""Server-sent events: device state changes, alarms, overrides and health, pushed to the console.

Each event is one `data:` line of JSON: {"type": kind, "ts": ISO time, "data": payload}. Device
state is not forwarded reading by reading: the readings only mark devices dirty, and every
`coalesce_s` one "state" event lists the devices whose online / on / level / k1 / k2 / scene
actually changed, so 20,000 lamps switching at sunset cost each browser a few events, not 20,000.
A client that cannot keep up loses its queued events and gets {"type": "resync"} instead, telling
it to fetch the lists again; the server never buffers without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections import deque
from collections.abc import AsyncGenerator, Callable
from typing import Literal
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse

from lightctl.api.auth import Identity
from lightctl.api.deps import require, services
from lightctl.api.session import COOKIE, sessions_of
from lightctl.model import Reading
from lightctl.services import Services
from lightctl.state import DeviceStatus, LiveState

EventKind = Literal["state", "alarm", "override", "maintenance", "health"]
StateView = tuple[bool | None, bool | None, int | None, bool | None, bool | None, int | None]
STATE_FIELDS = ("online", "on", "level", "k1", "k2", "scene")


class _Subscriber:
    __slots__ = ("dropped", "frames", "resync", "wake")

    def __init__(self) -> None:
        self.frames: deque[bytes] = deque()
        self.wake = asyncio.Event()
        self.resync = False
        self.dropped = 0


class EventHub:
    """The in-process broadcaster. Other parts call `publish`; the hub itself watches LiveState."""

    def __init__(
        self,
        live: LiveState,
        tz: ZoneInfo,
        now: Callable[[], float],
        *,
        coalesce_s: float = 0.5,
        heartbeat_s: float = 15.0,
        queue_frames: int = 256,
        devices_per_event: int = 2000,
    ) -> None:
        self._live = live
        self._tz = tz
        self._now = now
        self.coalesce_s = coalesce_s
        self.heartbeat_s = heartbeat_s
        self.queue_frames = queue_frames
        self.devices_per_event = devices_per_event
        self._facades = {dev_id for dev_id, dev in live.district.devices.items() if dev.kind == "facade"}
        self._subs: set[_Subscriber] = set()
        self._dirty: set[str] = set()
        self._sent: dict[str, StateView] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self.dropped_frames = 0  # shown in /metrics
        live.reading_listeners.append(self._on_readings)
        live.availability_listeners.append(self._on_availability)

    @property
    def clients(self) -> int:
        return len(self._subs)

    def publish(self, kind: EventKind, payload: object) -> None:
        """Sends an event to every connected client. Safe to call from any thread; never blocks.

        `payload` is anything JSON-serialisable, or JSON text (as faults.notify publishes alarms).
        """
        if not self._subs:
            return
        if self._off_loop():
            self._call_on_loop(self.publish, kind, payload)
            return
        self._broadcast(self._frame(kind, payload))

    def close(self) -> None:
        """Ends every stream, so a server shutting down is not held open by browsers."""
        self._closed = True
        for sub in self._subs:
            sub.wake.set()

    async def stream(self, still_valid: Callable[[], bool]) -> AsyncGenerator[bytes, None]:
        """One client's event stream, ending when it disconnects, its login ends or the hub closes."""
        sub = self._subscribe()
        try:
            yield b"retry: 3000\n: connected\n\n"
            while not self._closed and still_valid():
                if sub.resync:
                    sub.resync = False
                    yield self._frame("resync", {"dropped": sub.dropped})
                    continue
                if sub.frames:
                    batch = b"".join(sub.frames)
                    sub.frames.clear()
                    yield batch
                    continue
                sub.wake.clear()
                try:
                    await asyncio.wait_for(sub.wake.wait(), self.heartbeat_s)
                except TimeoutError:
                    yield b": keep-alive\n\n"
        finally:
            self._subs.discard(sub)

    # LiveState listeners: called for every batch of readings, so they only mark devices dirty.

    def _on_readings(self, batch: list[Reading]) -> None:
        if not self._subs:
            return
        if self._off_loop():
            self._call_on_loop(self._on_readings, batch)
            return
        self._dirty.update(r.device for r in batch)

    def _on_availability(self, device_id: str, online: bool, ts: float, reason: str) -> None:
        if not self._subs:
            return
        if self._off_loop():
            self._call_on_loop(self._on_availability, device_id, online, ts, reason)
            return
        if device_id in self._live.status:
            self._dirty.add(device_id)
        else:  # a gateway or concentrator
            self._broadcast(self._frame("health", {"id": device_id, "online": online, "reason": reason}))

    # Internals (all on the event loop).

    def _subscribe(self) -> _Subscriber:
        # The loop that serves the streams; publishers on other threads hand their events to it.
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        sub = _Subscriber()
        self._subs.add(sub)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop(), name="sse-coalesce")
        return sub

    async def _flush_loop(self) -> None:
        while self._subs and not self._closed:
            await asyncio.sleep(self.coalesce_s)
            self._flush_state()

    def _flush_state(self) -> None:
        dirty, self._dirty = self._dirty, set()
        changed: list[dict[str, object]] = []
        for dev_id in dirty:
            st = self._live.status.get(dev_id)
            if st is None:
                continue
            view = self._view(dev_id, st)
            if self._sent.get(dev_id) != view:
                self._sent[dev_id] = view
                changed.append({"id": dev_id, **dict(zip(STATE_FIELDS, view, strict=True))})
        for i in range(0, len(changed), self.devices_per_event):
            self._broadcast(self._frame("state", {"devices": changed[i : i + self.devices_per_event]}))

    def _view(self, dev_id: str, st: DeviceStatus) -> StateView:
        level = st.brightness if dev_id in self._facades else st.level
        return (st.online, st.on, level, st.k1, st.k2, st.scene)

    def _broadcast(self, frame: bytes) -> None:
        for sub in self._subs:
            if len(sub.frames) >= self.queue_frames:
                # Too slow: what it missed cannot be patched up event by event, so it starts over.
                sub.dropped += len(sub.frames)
                self.dropped_frames += len(sub.frames)
                sub.frames.clear()
                sub.resync = True
            sub.frames.append(frame)
            sub.wake.set()

    def _frame(self, kind: str, payload: object) -> bytes:
        if isinstance(payload, bytes):
            payload = payload.decode(errors="replace")
        if isinstance(payload, str):
            try:
                payload = orjson.loads(payload)
            except orjson.JSONDecodeError:
                payload = {"text": payload}
        ts = self._now()
        event = {
            "type": kind,
            "ts": dt.datetime.fromtimestamp(ts, self._tz).isoformat(timespec="seconds"),
            "data": payload,
        }
        return b"data: " + orjson.dumps(event, default=_jsonable) + b"\n\n"

    def _off_loop(self) -> bool:
        return self._loop_thread is not None and threading.get_ident() != self._loop_thread

    def _call_on_loop(self, fn: Callable[..., None], *args: object) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
                loop.call_soon_threadsafe(fn, *args)


def _jsonable(value: object) -> object:
    dump = getattr(value, "model_dump", None)  # pydantic models from other routers
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, frozenset | set | tuple):
        return sorted(value) if isinstance(value, frozenset | set) else list(value)
    return str(value)


def hub_of(app: FastAPI) -> EventHub:
    svc: Services = app.state.services
    hub: EventHub = svc.extras["events"]
    return hub


router = APIRouter()
viewer = require("viewer")


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}},
)
async def event_stream(
    request: Request, who: Identity = Depends(viewer), svc: Services = Depends(services)
) -> StreamingResponse:
    sid = request.cookies.get(COOKIE, "") if request.state.auth_via == "cookie" else None
    sessions = sessions_of(request.app)

    def still_valid() -> bool:
        if sid is not None and sessions.get(sid) is None:
            return False  # logged out or expired: the stream ends with the session
        return svc.tokens.holds(who)

    return StreamingResponse(
        hub_of(request.app).stream(still_valid),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
