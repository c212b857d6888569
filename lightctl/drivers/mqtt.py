"""The one MQTT driver: any device whose profile says `transport: mqtt` (SLC-M1 lamps and their
concentrators), driven by the profile's topics and fields, never by model-specific code.

Inbound: every message is routed by a dict lookup from its topic to the lamp or concentrator it
belongs to, parsed with orjson, validated by the profile (drivers/mqtt_codec.py) and handed to the
sink in batches (every `flush_s` seconds or `flush_max` readings, whichever comes first), all in
the MQTT connection's callback: no task per message. Bad input is dropped and counted by reason in
`drops` (with the last example of each reason in `drop_examples`), never raised.

Commands: `send` publishes `{"id", "on", "level"}` at QoS 1 with a unique id and waits up to
mqtt.ack_timeout_s for the acknowledgement with that id, or for a report showing the commanded
state, whichever comes first (a lamp behind a concentrator often reports its new state in a batch
before its ack arrives). The timeout is in real seconds even on a fast ScaledClock: a round trip
through a broker does not get faster with the simulated clock (amqtt in the demo takes seconds).
A command still waiting when its lamp (or the lamp's concentrator) announces `online` is published
again at once: the lamp may have subscribed only after the first copy went out.

Availability (sink.availability, by inventory id): `online` / `offline` on a lamp's or
concentrator's retained state topic (offline is its last will); a lamp behind a concentrator goes
offline with its concentrator; any device goes offline when silent for `silence_intervals` report
intervals (a concentrator: batch intervals; a lamp behind one: max(report, batch) intervals), and
online again with its next report. Silence is only judged while the driver itself is connected.

Northbound: `lightctl/<site>/<id>/state` (retained, QoS 0), `.../availability` (retained, QoS 1),
`lightctl/<site>/alarms` (QoS 1) and the service's own `lightctl/<site>/bridge/state` (retained;
`{"state":"online"}` on every connect, `{"state":"offline"}` as the last will and on a clean stop).
An instance that owns a partition names itself: `lightctl/<site>/bridge/<instance>/state`, so that
one instance stopping does not mark the others offline.
The driver keeps no copy of what it published: after every reconnect (a restarted broker without
persistence has forgotten its retained topics) it tells its connected listeners, and northbound.py
publishes every device's state and availability again from live state.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from lightctl.clock import Clock
from lightctl.config.settings import Mqtt
from lightctl.drivers.mqtt_client import MqttConnection, Will
from lightctl.drivers.mqtt_codec import UNKNOWN_DEVICE, Invalid, parse_json
from lightctl.drivers.mqtt_commands import PendingCommands
from lightctl.drivers.mqtt_routes import ACK, BATCH, TELEMETRY, ConcTrack, Track, build_routes
from lightctl.drivers.sink import Drops, ReadingSink
from lightctl.model import CommandResult, Concentrator, DesiredState, Device, Reading
from lightctl.profiles import Profile
from lightctl.tasks import cancel_and_wait

log = logging.getLogger("lightctl.drivers.mqtt")

_NORTHBOUND_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ONLINE = orjson.dumps({"state": "online"})
_OFFLINE = orjson.dumps({"state": "offline"})
EXPIRE_EVERY_S = 0.1  # how late past its timeout an unanswered command may be failed


@dataclass(frozen=True, slots=True)
class MqttDriverStats:
    connected: bool
    protocol: str
    connects: int
    disconnects: int
    last_error: str | None
    messages: int
    readings: int
    dropped: dict[str, int]
    commands: int
    confirmed: int
    refused: int
    timed_out: int
    resent: int
    outbox: int


class MqttDriver:
    """Profile-driven MQTT driver for lamps (and their concentrators) of one lightctl instance."""

    def __init__(
        self,
        settings: Mqtt,
        site_id: str,
        devices: Iterable[Device],
        concentrators: Iterable[Concentrator],
        profiles: Mapping[str, Profile],
        sink: ReadingSink,
        clock: Clock,
        *,
        per_device_topics: bool = False,
        silence_intervals: float = 3.0,
        flush_s: float = 0.005,
        flush_max: int = 2000,
        config_dir: Path | None = None,
        on_connected: Callable[[], None] | None = None,
        instance: str | None = None,
    ) -> None:
        self.settings = settings
        self.site_id = site_id
        self.drops = Drops()
        self.drop_examples: dict[str, str] = {}
        self._sink = sink
        self._clock = clock
        self._flush_s = flush_s
        self._flush_max = flush_max
        self._connected_listeners: list[Callable[[], None]] = [] if on_connected is None else [on_connected]
        self._bridge_topic = bridge_topic(site_id, instance)
        routes = build_routes(devices, concentrators, profiles, silence_intervals)
        self._route = routes.route
        self._lamps = routes.lamps
        self._concentrators = routes.concentrators
        self._subscriptions = routes.filters(per_device_topics, settings.telemetry_qos)
        self._conn = MqttConnection(
            settings,
            on_message=self.ingest,
            on_ready=self._ready,
            will=Will(self._bridge_topic, _OFFLINE),
            base_dir=config_dir,
        )
        self._conn.set_subscriptions(self._subscriptions)
        self._pending = PendingCommands(clock.now)
        self._ids = itertools.count(1)
        self._id_prefix = f"lc{secrets.token_hex(3)}"
        self._out: list[Reading] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._connected_since = float("-inf")
        self._watch: asyncio.Task[None] | None = None
        self._expiry: asyncio.Task[None] | None = None
        self.messages = self.readings = 0

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._conn.connected

    async def start(self) -> None:
        """Start connecting in the background (see `wait_connected`); never fails on a down broker."""
        await self._conn.start()
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_silence(), name="mqtt-silence")
        if self._expiry is None:
            self._expiry = asyncio.create_task(self._expire_commands(), name="mqtt-ack-timeouts")

    async def wait_connected(self, within_s: float) -> bool:
        """True once connected and subscribed, within `within_s` real seconds."""
        return await self._conn.wait_ready(within_s)

    async def stop(self) -> None:
        await cancel_and_wait(t for t in (self._watch, self._expiry) if t is not None)
        self._watch = self._expiry = None
        self._flush()
        self._pending.cancel_all("driver stopped")
        await self._conn.stop(final=[(self._bridge_topic, _OFFLINE, 1, True)])

    async def _ready(self) -> None:
        self._connected_since = self._clock.now()
        self._conn.publish(self._bridge_topic, _ONLINE, qos=1, retain=True)
        for listener in self._connected_listeners:
            try:
                listener()
            except Exception:  # the caller's bug must not cost the connection
                log.exception("mqtt: connected listener")

    def add_connected_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every (re)connect: the time to publish retained topics again."""
        self._connected_listeners.append(callback)

    def stats(self) -> MqttDriverStats:
        conn, p = self._conn, self._pending
        return MqttDriverStats(
            conn.connected, conn.protocol, conn.connects, conn.disconnects, conn.last_error,
            self.messages, self.readings, dict(self.drops.by_reason), p.commands, p.confirmed, p.refused,
            p.timed_out, p.resent, conn.outbox_size,
        )  # fmt: skip

    # --- inbound --------------------------------------------------------------------------------

    def ingest(self, topic: str, payload: bytes) -> None:
        """Handle one message as received from the broker (also used by tests and replays)."""
        self.messages += 1
        route = self._route(topic)
        if route is None:
            self._drop(UNKNOWN_DEVICE, topic, "topic of no device of this instance")
            return
        kind, track = route
        try:
            if kind == TELEMETRY:
                now = self._clock.now()
                self._accept(
                    track, track.codec.reading(track.id, parse_json(payload, track.codec.max_bytes), now), now
                )
            elif kind == BATCH and isinstance(track, ConcTrack):
                self._batch(track, topic, payload)
            elif kind == ACK:
                self._ack(track, payload)
            elif payload:  # an empty retained message only clears the topic
                self._state(track, track.codec.state(payload))
        except Invalid as exc:
            self._drop(exc.reason, topic, exc.detail)
        except Exception:
            log.exception("mqtt: message on %s", topic)
            self._drop("internal_error", topic)

    def _drop(self, reason: str, topic: str, detail: str = "") -> None:
        self.drops.count(reason)
        self.drop_examples[reason] = f"{topic}: {detail}"[:200]

    def _accept(self, track: Track, reading: Reading, now: float) -> None:
        track.last_seen = now
        if track.online is not True:
            self._set_online(track, True, now, "reporting")
        if self._pending.by_device and track.id in self._pending.by_device:
            self._pending.reported(track, reading)
        self.readings += 1
        out = self._out
        out.append(reading)
        if len(out) >= self._flush_max:
            self._flush()
        elif self._flush_handle is None:
            try:
                self._flush_handle = asyncio.get_running_loop().call_later(self._flush_s, self._flush)
            except RuntimeError:  # no loop (a synchronous caller): deliver at once
                self._flush()

    def _batch(self, conc: ConcTrack, topic: str, payload: bytes) -> None:
        codec = conc.codec
        _, entries = codec.batch(parse_json(payload, codec.max_bytes))
        now = self._clock.now()
        conc.last_seen = now
        if conc.online is not True:
            self._set_online(conc, True, now, "batch received")
        lamps = conc.wire_lamps
        for entry in entries:
            try:
                wire_id = codec.batch_device(entry)
                lamp = lamps.get(wire_id)
                if lamp is None:
                    raise Invalid(UNKNOWN_DEVICE, f"lamp {wire_id!r:.40} not behind this concentrator")
                self._accept(lamp, codec.reading(lamp.id, entry, now), now)
            except Invalid as exc:
                self._drop(exc.reason, topic, exc.detail)

    def _ack(self, track: Track, payload: bytes) -> None:
        self._pending.acknowledged(track, track.codec.ack(parse_json(payload, track.codec.max_bytes)))

    def _state(self, track: Track, online: bool) -> None:
        now = self._clock.now()
        if online:
            track.last_seen = now  # it reports within one interval of coming online
            self._set_online(track, True, now, "state online")
            self._resend(track.lamps if isinstance(track, ConcTrack) else [track])
            return
        self._set_online(track, False, now, "state offline (last will)")
        if isinstance(track, ConcTrack):
            for lamp in track.lamps:
                self._set_online(lamp, False, now, f"concentrator {track.id} offline")

    def _set_online(self, track: Track, online: bool, now: float, reason: str) -> None:
        if track.online is online:
            return
        track.online = online
        try:
            self._sink.availability(track.id, online, now, reason)
        except Exception:
            log.exception("mqtt: sink.availability(%s)", track.id)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        batch, self._out = self._out, []
        if batch:
            try:
                self._sink.readings(batch)
            except Exception:
                log.exception("mqtt: sink.readings (%d readings lost)", len(batch))

    async def _watch_silence(self) -> None:
        tracks: list[Track] = [*self._concentrators.values(), *self._lamps.values()]
        if not tracks:
            return
        step = max(0.5, min(t.silence_s for t in tracks) / 6)
        while True:
            await self._clock.sleep(step)
            if not self._conn.connected:
                continue
            self._check_silence(tracks, self._clock.now())

    def _check_silence(self, tracks: list[Track], now: float) -> None:
        since = self._connected_since  # silence while we were disconnected is not theirs
        for track in tracks:
            if track.online is False or now - max(track.last_seen, since) <= track.silence_s:
                continue
            why = "no report" if track.last_seen > since else "no report since connecting"
            self._set_online(track, False, now, f"{why} for {track.silence_s:.0f} s")
            if isinstance(track, ConcTrack):  # a silent concentrator forwards nothing from its lamps
                for lamp in track.lamps:
                    self._set_online(lamp, False, now, f"concentrator {track.id} silent")

    # --- commands -------------------------------------------------------------------------------

    async def send(self, device_id: str, desired: DesiredState) -> CommandResult:
        """Switch / dim one lamp; ok once its ack or a report confirms, else ok=False with why."""
        track = self._lamps.get(device_id)
        if track is None:
            return CommandResult(device_id, "", False, "not an MQTT lamp of this instance")
        if desired.on is None:
            return CommandResult(device_id, "", False, "the desired state has no on / off")
        level = desired.level if desired.on else None
        if level is not None and not 0 <= level <= 100:
            return CommandResult(device_id, "", False, f"level {level} outside 0-100")
        command_id = f"{self._id_prefix}-{next(self._ids)}"
        payload = track.codec.command(command_id, desired.on, level)
        return await self._transact(track, command_id, payload, desired.on, 100 if level is None else level)

    async def request_report(self, device_id: str) -> CommandResult:
        """Ask a lamp for an immediate report (`get`); ok once it acknowledges or reports."""
        track = self._lamps.get(device_id)
        if track is None:
            return CommandResult(device_id, "", False, "not an MQTT lamp of this instance")
        command_id = f"{self._id_prefix}-{next(self._ids)}"
        return await self._transact(track, command_id, track.codec.get_command(command_id), None, None)

    async def _transact(
        self, track: Track, cid: str, payload: bytes, on: bool | None, level: int | None
    ) -> CommandResult:
        if not self._conn.connected:
            return CommandResult(track.id, cid, False, "MQTT broker not connected")
        wait_s = self.settings.ack_timeout_s
        pending = self._pending.open(track, cid, on, level, time.monotonic() + wait_s, payload)
        try:
            self._conn.publish(track.codec.command_topic(track.wire_id), payload, qos=1, ttl_s=wait_s)
            return await pending.future  # _expire_commands fails it after wait_s
        finally:
            self._pending.close(pending)

    def _resend(self, tracks: Iterable[Track]) -> None:
        """A device announcing `online` has (re)connected with a clean session: a command published
        before it subscribed is lost (after a broker restart lightctl is often back first), so the
        ones still waiting are published again at once instead of waiting out their timeout. The
        same id: if the first copy did arrive, the second ack is ignored."""
        waiting = self._pending.by_device
        if not waiting or not self._conn.connected:
            return
        now_real = time.monotonic()
        for track in tracks:
            for pending in waiting.get(track.id, ()):
                ttl = pending.deadline - now_real
                if ttl > 0 and not pending.future.done():
                    topic = track.codec.command_topic(track.wire_id)
                    self._conn.publish(topic, pending.payload, qos=1, ttl_s=ttl)
                    self._pending.resent += 1

    async def _expire_commands(self) -> None:
        detail = f"no acknowledgement or confirming report within {self.settings.ack_timeout_s:g} s"
        while True:
            await asyncio.sleep(EXPIRE_EVERY_S)
            self._pending.expire(time.monotonic(), detail)

    # --- northbound -----------------------------------------------------------------------------

    def _northbound(self, device_id: str, leaf: str) -> str:
        if not _NORTHBOUND_ID.match(device_id):
            raise ValueError(f"device id {device_id!r} cannot be part of an MQTT topic")
        return f"lightctl/{self.site_id}/{device_id}/{leaf}"

    def publish_state(self, device_id: str, payload: bytes) -> bool:
        """Retained JSON state of a device (QoS 0: False if not connected)."""
        return self._conn.publish(self._northbound(device_id, "state"), payload, qos=0, retain=True)

    def publish_availability(self, device_id: str, online: bool) -> bool:
        """Retained availability of a device (QoS 1: queued while disconnected)."""
        payload = _ONLINE if online else _OFFLINE
        return self._conn.publish(self._northbound(device_id, "availability"), payload, qos=1, retain=True)

    def publish_alarm(self, payload: bytes) -> bool:
        """An alarm event on lightctl/<site>/alarms (QoS 1; queued while disconnected)."""
        return self._conn.publish(f"lightctl/{self.site_id}/alarms", payload, qos=1)


def bridge_topic(site_id: str, instance: str | None = None) -> str:
    """The service's own retained state and last will; per instance when several share a site."""
    if instance is None:
        return f"lightctl/{site_id}/bridge/state"
    return f"lightctl/{site_id}/bridge/{re.sub(r'[/+#]', '_', instance)}/state"
