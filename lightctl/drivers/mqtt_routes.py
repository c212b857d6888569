"""Which topic belongs to which lamp or concentrator: the MQTT driver's routing table.

Built once from the inventory and the profiles. A topic is matched against each profile topic
template (the literal text before and after `{dev}` / `{gw}`, at most a few per profile), and the
id between them is looked up in one dict of wire ids per template family: one entry per lamp, no
topic strings per lamp (three per lamp would be ~50 MB at 100,000 lamps). Nothing here knows a
model by name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lightctl.drivers.mqtt_codec import MqttCodec
from lightctl.model import Concentrator, Device
from lightctl.profiles import MqttSpec, Profile

log = logging.getLogger("lightctl.drivers.mqtt")

TELEMETRY, ACK, STATE, BATCH, BATCH_STATE = range(5)
_TOPIC_NAMES = {
    TELEMETRY: "telemetry",
    ACK: "ack",
    STATE: "state",
    BATCH: "batch",
    BATCH_STATE: "batch_state",
}
_LAMP_KINDS = (TELEMETRY, ACK, STATE)
_CONC_KINDS = (BATCH, BATCH_STATE)


@dataclass(eq=False, slots=True)
class Track:
    """A lamp as the driver follows it (one per lamp: keep it small)."""

    id: str  # inventory id
    wire_id: str  # `{dev}` / `{gw}` on the wire
    codec: MqttCodec
    silence_s: float  # clock seconds without a message before it counts as offline
    concentrator: ConcTrack | None = None
    last_seen: float = float("-inf")
    online: bool | None = None


@dataclass(eq=False, slots=True)
class ConcTrack(Track):
    """A concentrator, and the lamps behind it."""

    lamps: list[Track] = field(default_factory=list)
    wire_lamps: dict[str, Track] = field(default_factory=dict)  # by wire id


@dataclass(frozen=True, slots=True)
class _Pattern:
    head: str  # the topic up to the id
    tail: str  # after it
    kind: int
    tracks: dict[str, Track]  # wire id -> track, shared by the patterns of one profile family
    spec: MqttSpec


@dataclass
class Routes:
    patterns: list[_Pattern] = field(default_factory=list)  # most literal text first
    lamps: dict[str, Track] = field(default_factory=dict)
    concentrators: dict[str, ConcTrack] = field(default_factory=dict)

    def route(self, topic: str) -> tuple[int, Track] | None:
        """The kind of message and the lamp or concentrator a topic belongs to, if any."""
        size = len(topic)
        for p in self.patterns:
            head, tail = p.head, p.tail
            if size > len(head) + len(tail) and topic.startswith(head) and topic.endswith(tail):
                wire_id = topic[len(head) : size - len(tail)]
                if "/" in wire_id:
                    continue
                track = p.tracks.get(wire_id)
                if track is not None:
                    return p.kind, track
        return None

    def topics(self) -> list[tuple[str, int]]:
        """Every device topic, with its kind (per-device subscriptions)."""
        return [(p.head + wire_id + p.tail, p.kind) for p in self.patterns for wire_id in p.tracks]

    def filters(self, per_device: bool, telemetry_qos: int) -> list[tuple[str, int]]:
        """Topic filters to subscribe: one per device topic, or the profiles' `+` wildcards."""
        qos_of = {TELEMETRY: telemetry_qos, BATCH: telemetry_qos}
        if per_device:
            return [(topic, qos_of.get(kind, 1)) for topic, kind in self.topics()]
        filters: dict[str, int] = {}
        for p in self.patterns:
            filters[p.spec.topic(_TOPIC_NAMES[p.kind])] = qos_of.get(p.kind, 1)
        return list(filters.items())


class _Builder:
    def __init__(self) -> None:
        self.by_text: dict[tuple[str, str], _Pattern] = {}
        self.families: dict[tuple[tuple[str, str], ...], dict[str, Track]] = {}

    def tracks_for(self, spec: MqttSpec, kinds: tuple[int, ...]) -> dict[str, Track]:
        """The wire-id dict of a profile's lamp (or concentrator) topics, shared by equal templates."""
        texts = tuple(_split(spec, kind) for kind in kinds)
        tracks = self.families.get(texts)
        if tracks is None:
            tracks = self.families[texts] = {}
            for kind, text in zip(kinds, texts, strict=True):
                if text in self.by_text:
                    raise ValueError(f"MQTT topic template {text[0]}{{id}}{text[1]} used for two purposes")
                self.by_text[text] = _Pattern(text[0], text[1], kind, tracks, spec)
        return tracks

    def add(self, tracks: dict[str, Track], track: Track) -> None:
        other = tracks.get(track.wire_id)
        if other is not None:
            raise ValueError(f"MQTT id {track.wire_id} claimed by both {other.id} and {track.id}")
        tracks[track.wire_id] = track

    def patterns(self) -> list[_Pattern]:
        return sorted(self.by_text.values(), key=lambda p: len(p.head) + len(p.tail), reverse=True)


def _split(spec: MqttSpec, kind: int) -> tuple[str, str]:
    marker = "\x00"
    head, _, tail = spec.topic(_TOPIC_NAMES[kind], dev=marker, gw=marker).partition(marker)
    if marker in tail or (not head and not tail):
        raise ValueError(f"MQTT topic {_TOPIC_NAMES[kind]} of prefix {spec.prefix} must name its device once")
    return head, tail


def build_routes(
    devices: Iterable[Device],
    concentrators: Iterable[Concentrator],
    profiles: Mapping[str, Profile],
    silence_intervals: float,
) -> Routes:
    """Routes for every device with an MQTT profile (others are skipped) and every concentrator."""
    routes = Routes()
    build = _Builder()
    codecs: dict[str, MqttCodec] = {}
    silences: dict[float, float] = {}  # one float object per distinct value, not one per lamp
    concs = list(concentrators)
    conc_by_id = {c.id: c for c in concs}
    conc_spec: dict[str, MqttSpec] = {}
    for dev in devices:
        profile = profiles.get(dev.profile)
        if profile is None:
            raise ValueError(f"device {dev.id}: unknown profile {dev.profile!r}")
        spec = profile.mqtt
        if spec is None:
            continue
        if not dev.mqtt_id:
            raise ValueError(f"device {dev.id}: profile {profile.id} needs an mqtt_id")
        codec = codecs.get(profile.id)
        if codec is None:
            codec = codecs[profile.id] = MqttCodec(spec)
        report_s = float(dev.report_s or profile.report_s)
        conc = conc_by_id.get(dev.concentrator) if dev.concentrator else None
        if conc is not None:
            report_s = max(report_s, conc.batch_s)  # a batch carries its latest reading
            conc_spec.setdefault(conc.id, spec)
        silence = silences.setdefault(report_s, silence_intervals * report_s)
        track = Track(dev.id, dev.mqtt_id, codec, silence)
        routes.lamps[dev.id] = track
        build.add(build.tracks_for(spec, _LAMP_KINDS), track)
    for conc in concs:
        found = conc_spec.get(conc.id)
        if found is None:  # no lamp of it here: any profile with batch topics describes it
            found = next(
                (p.mqtt for p in profiles.values() if p.mqtt is not None and p.mqtt.topics.batch), None
            )
        if found is None or found.topics.batch is None or found.topics.batch_state is None:
            log.warning("concentrator %s: no MQTT profile with batch topics; ignored", conc.id)
            continue
        spec = found
        codec = next((c for c in codecs.values() if c.spec is spec), None) or MqttCodec(spec)
        ctrack = ConcTrack(conc.id, conc.mqtt_id, codec, silence_intervals * conc.batch_s)
        for lamp_id in conc.lamps:
            lamp = routes.lamps.get(lamp_id)
            if lamp is None:
                continue
            if lamp.codec.spec.topics.batch != spec.topics.batch:
                raise ValueError(f"concentrator {conc.id}: lamp {lamp_id} uses other batch topics")
            lamp.concentrator = ctrack
            ctrack.lamps.append(lamp)
            ctrack.wire_lamps[lamp.wire_id] = lamp
        routes.concentrators[conc.id] = ctrack
        build.add(build.tracks_for(spec, _CONC_KINDS), ctrack)
    routes.patterns = build.patterns()
    return routes
