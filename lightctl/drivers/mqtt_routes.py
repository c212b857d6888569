"""Which topic belongs to which lamp or concentrator: the MQTT driver's routing table.

Built once from the inventory and the profiles, so that handling a message is one dict lookup from
its topic. Topic names come from each profile's templates; nothing here knows a model by name.
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


@dataclass(eq=False, slots=True)
class Track:
    """A lamp or concentrator as the driver follows it."""

    id: str  # inventory id
    wire_id: str  # `{dev}` / `{gw}` on the wire
    codec: MqttCodec
    silence_s: float  # clock seconds without a message before it counts as offline
    command_topic: str = ""
    concentrator: Track | None = None
    lamps: list[Track] = field(default_factory=list)  # a concentrator's
    wire_lamps: dict[str, Track] = field(default_factory=dict)  # a concentrator's, by wire id
    last_seen: float = float("-inf")
    online: bool | None = None


@dataclass
class Routes:
    topics: dict[str, tuple[int, Track]] = field(default_factory=dict)
    lamps: dict[str, Track] = field(default_factory=dict)
    concentrators: dict[str, Track] = field(default_factory=dict)

    def add(self, topic: str, kind: int, track: Track) -> None:
        if topic in self.topics:
            raise ValueError(f"topic {topic} claimed by both {self.topics[topic][1].id} and {track.id}")
        self.topics[topic] = (kind, track)

    def filters(self, per_device: bool, telemetry_qos: int) -> list[tuple[str, int]]:
        """Topic filters to subscribe: one per device topic, or the profiles' `+` wildcards."""
        qos_of = {TELEMETRY: telemetry_qos, BATCH: telemetry_qos}
        if per_device:
            return [(topic, qos_of.get(kind, 1)) for topic, (kind, _) in self.topics.items()]
        filters: dict[str, int] = {}
        for kind, track in self.topics.values():
            filters[track.codec.spec.topic(_TOPIC_NAMES[kind])] = qos_of.get(kind, 1)
        return list(filters.items())


def build_routes(
    devices: Iterable[Device],
    concentrators: Iterable[Concentrator],
    profiles: Mapping[str, Profile],
    silence_intervals: float,
) -> Routes:
    """Routes for every device with an MQTT profile (others are skipped) and every concentrator."""
    routes = Routes()
    codecs: dict[str, MqttCodec] = {}
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
        track = Track(
            dev.id, dev.mqtt_id, codec, silence_intervals * report_s, spec.topic("command", dev=dev.mqtt_id)
        )
        routes.lamps[dev.id] = track
        routes.add(spec.topic("telemetry", dev=dev.mqtt_id), TELEMETRY, track)
        routes.add(spec.topic("ack", dev=dev.mqtt_id), ACK, track)
        routes.add(spec.topic("state", dev=dev.mqtt_id), STATE, track)
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
        ctrack = Track(conc.id, conc.mqtt_id, codec, silence_intervals * conc.batch_s)
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
        routes.add(spec.topic("batch", gw=conc.mqtt_id), BATCH, ctrack)
        routes.add(spec.topic("batch_state", gw=conc.mqtt_id), BATCH_STATE, ctrack)
    return routes
