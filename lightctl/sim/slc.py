"""A simulated fleet of SLC-M1 single-lamp controllers (and their concentrators) on an MQTT broker.

    fleet = SlcFleet(lamps, concentrators, profiles, "127.0.0.1", 1883, clock, seed=1,
                     lamps_per_connection=200, faults="lamp_failure:ha-003,silence:zs-010@+600")
    await fleet.start()
    fleet.inject("ha-007", "relay_stuck_on", start=clock.now() + 30)
    fleet.truth("ha-007")            # what the lamp really does, for scoring detections
    fleet.fault_log()                # every injection with its start and end
    await fleet.stop()

The lamps behave as devices.md section 1 says (lightctl/sim/slc_model.py: electrical model, command
rules, status bits); faults and the `--faults SPEC` syntax are in lightctl/sim/slc_faults.py;
connections, availability on shared connections and concentrator batches in slc_link.py.

Everything runs on the injected Clock: reports every `report_s` clock seconds (a ScaledClock at
speed 60 makes them one real second apart), fault start times are clock times. For scale (20,000
lamps) directly connected lamps share connections, `lamps_per_connection` at a time, each
connection with one scheduler loop; lamps behind a concentrator always share its connection.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import ssl
from collections.abc import Iterable, Mapping

from lightctl.clock import Clock
from lightctl.model import Concentrator, Device
from lightctl.profiles import Profile
from lightctl.sim.slc_faults import (
    CONCENTRATOR_FAULTS,
    DEFAULT_PARAMS,
    ActiveFault,
    Fault,
    FaultOrder,
    FaultRecord,
    parse_faults,
)
from lightctl.sim.slc_link import Broker, LampTopics, Link, SimConcentrator
from lightctl.sim.slc_model import LampTruth, SimLamp, WireNames

log = logging.getLogger("lightctl.sim.slc")


class SlcFleet:
    """Simulated SLC-M1 lamps and concentrators, with faults injectable at runtime."""

    def __init__(
        self,
        devices: Iterable[Device],
        concentrators: Iterable[Concentrator],
        profiles: Mapping[str, Profile],
        host: str,
        port: int,
        clock: Clock,
        seed: int = 0,
        *,
        lamps_per_connection: int = 1,
        noise: bool = True,
        initially_on: bool = False,
        faults: str | Iterable[FaultOrder] = (),
        username: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        telemetry_qos: int = 0,
        client_prefix: str = "slc-sim",
    ) -> None:
        if lamps_per_connection < 1:
            raise ValueError("lamps_per_connection must be at least 1")
        self.clock = clock
        self._rng = random.Random(seed)
        self._broker = Broker(host, port, username, password, ssl_context, telemetry_qos)
        self._per_link = lamps_per_connection
        self._noise = noise
        self._initially_on = initially_on
        self._orders = parse_faults(faults) if isinstance(faults, str) else list(faults)
        self._prefix = f"{client_prefix}-{secrets.token_hex(3)}"
        self._devices = [
            d for d in devices if (p := profiles.get(d.profile)) is not None and p.mqtt is not None
        ]
        self._concentrators = list(concentrators)
        self._profiles = profiles
        self._lamps: dict[str, tuple[SimLamp, Link, int]] = {}  # inventory id and wire id -> lamp
        self._concs: dict[str, tuple[SimConcentrator, Link]] = {}
        self._links: list[Link] = []
        self._log: list[tuple[str, ActiveFault]] = []
        self._started_at: float | None = None
        self._check_orders()

    def _check_orders(self) -> None:
        """Refuse a SPEC naming devices this fleet does not simulate before anything starts."""
        lamps = {d.id for d in self._devices} | {d.mqtt_id for d in self._devices if d.mqtt_id}
        concs = {c.id for c in self._concentrators}
        for order in self._orders:
            where = f"fault {order.fault.value}:{order.target}"
            if order.target in concs and order.fault not in CONCENTRATOR_FAULTS:
                raise ValueError(f"{where}: a concentrator can only be silent or offline")
            if order.target not in lamps | concs:
                raise ValueError(f"{where}: no simulated lamp or concentrator has that id")

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self, within_s: float = 15.0) -> None:
        """Connect every link (waits up to `within_s` real seconds for them) and start reporting."""
        if self._started_at is not None:
            return
        now = self._started_at = self.clock.now()
        self._build(now)
        for link in self._links:
            link.start(now)
        for order in self._orders:
            start = order.at if order.at is not None else now + (order.after_s or 0.0)
            until = None if order.duration_s is None else start + order.duration_s
            self.inject(order.target, order.fault, start=start, until=until, **dict(order.params))
        if not await self.wait_ready(within_s):
            log.warning("sim: not every SLC-M1 link connected within %.0f s", within_s)

    async def wait_ready(self, within_s: float) -> bool:
        waits = [link.ready.wait() for link in self._links if not link.held_offline(self.clock.now())]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), within_s)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Switch the field off: each lamp and concentrator announces `offline`, then disconnects."""
        await asyncio.gather(*(link.stop() for link in self._links))

    async def kill(self) -> None:
        """Crash the whole field: every connection drops without DISCONNECT (the wills fire)."""
        await asyncio.gather(*(link.stop(abrupt=True) for link in self._links))

    def _build(self, now: float) -> None:
        conc_of: dict[str, Concentrator] = {}
        for conc in self._concentrators:
            for lamp_id in conc.lamps:
                conc_of[lamp_id] = conc
        direct: list[tuple[SimLamp, LampTopics]] = []
        behind: dict[str, list[tuple[SimLamp, LampTopics]]] = {c.id: [] for c in self._concentrators}
        names: dict[str, WireNames] = {}
        for dev in self._devices:
            profile = self._profiles[dev.profile]
            spec = profile.mqtt
            if spec is None or not dev.mqtt_id:
                continue
            if profile.id not in names:
                names[profile.id] = WireNames.of(spec)
            behind_conc = conc_of.get(dev.id)
            report_s = float(dev.report_s or profile.report_s)
            if behind_conc is not None:
                report_s = max(report_s, behind_conc.batch_s)
            phase = now + self._rng.uniform(0, report_s)
            lamp = SimLamp(
                dev.id, dev.mqtt_id, dev.rated_w, report_s, phase, profile.electrical, names[profile.id],
                self._rng, self._noise, now, on=self._initially_on,
            )  # fmt: skip
            topics = LampTopics(
                *(spec.topic(n, dev=dev.mqtt_id) for n in ("telemetry", "ack", "state", "command"))
            )
            (behind[behind_conc.id] if behind_conc is not None else direct).append((lamp, topics))
        profile_of = {d.id: self._profiles[d.profile] for d in self._devices}
        for n in range(0, len(direct), self._per_link):
            chunk = direct[n : n + self._per_link]
            spec = profile_of[chunk[0][0].device_id].mqtt
            assert spec is not None  # noqa: S101 - filtered above
            self._add_link(Link(f"{self._prefix}-{len(self._links)}", self._broker, self.clock, chunk,
                                spec.online.encode(), spec.offline.encode()))  # fmt: skip
        for conc in self._concentrators:
            lamps = behind[conc.id]
            with_batch = (p for p in self._profiles.values() if p.mqtt is not None and p.mqtt.topics.batch)
            conc_profile = profile_of[lamps[0][0].device_id] if lamps else next(with_batch, None)
            spec = None if conc_profile is None else conc_profile.mqtt
            if spec is None or spec.topics.batch is None or spec.topics.batch_state is None:
                log.warning("sim: concentrator %s has no profile with batch topics; not simulated", conc.id)
                continue
            sim_conc = SimConcentrator(
                conc.id, conc.mqtt_id, float(conc.batch_s), now + self._rng.uniform(0, conc.batch_s),
                spec.topic("batch_state", gw=conc.mqtt_id), spec.topic("batch", gw=conc.mqtt_id), spec.max_batch,
            )  # fmt: skip
            for lamp, _ in lamps:
                lamp.phase = sim_conc.phase  # measured when its concentrator sends
            link = Link(f"{self._prefix}-{len(self._links)}", self._broker, self.clock, lamps,
                        spec.online.encode(), spec.offline.encode(), sim_conc)  # fmt: skip
            self._add_link(link)
            self._concs[conc.id] = (sim_conc, link)

    def _add_link(self, link: Link) -> None:
        self._links.append(link)
        for i, lamp in enumerate(link.lamps):
            self._lamps[lamp.device_id] = self._lamps[lamp.wire_id] = (lamp, link, i)

    # --- faults ---------------------------------------------------------------------------------

    def inject(
        self,
        device_id: str,
        fault: Fault | str,
        start: float | None = None,
        until: float | None = None,
        **params: float,
    ) -> None:
        """Give a lamp (inventory or wire id) or a concentrator a fault from `start` (clock time,
        default now) until `until` (default: until cleared). Parameters: see slc_faults."""
        kind = Fault(fault)
        allowed = DEFAULT_PARAMS.get(kind, {})
        for name in params:
            if name not in allowed:
                raise ValueError(
                    f"{kind.value} has no parameter {name!r} (has: {', '.join(allowed) or 'none'})"
                )
        now = self.clock.now()
        begin = now if start is None else start
        if until is not None and until <= begin:
            raise ValueError("until must be after start")
        active = ActiveFault(kind, begin, until, dict(params))
        target, link = self._target(device_id, kind)
        target.append(active)
        self._log.append((self._canonical(device_id), active))
        link.faults_changed(begin)
        if until is not None:
            link.faults_changed(until)

    def clear(self, device_id: str, fault: Fault | str | None = None) -> None:
        """End a device's faults (of one kind, or all) now; ones not yet started are withdrawn."""
        kind = None if fault is None else Fault(fault)
        now = self.clock.now()
        faults, link = self._target(device_id, kind)
        for f in list(faults):
            if kind is not None and f.kind is not kind:
                continue
            if f.start > now:
                faults.remove(f)
                self._log = [(d, a) for d, a in self._log if a is not f]
            elif f.until is None or f.until > now:
                f.until = now
        link.faults_changed(now)

    def _target(self, device_id: str, kind: Fault | None) -> tuple[list[ActiveFault], Link]:
        if device_id in self._concs:
            if kind is not None and kind not in CONCENTRATOR_FAULTS:
                raise ValueError(f"a concentrator can only have {', '.join(sorted(CONCENTRATOR_FAULTS))}")
            conc, link = self._concs[device_id]
            return conc.faults, link
        if device_id not in self._lamps:
            raise KeyError(f"no simulated lamp or concentrator {device_id!r}")
        lamp, link, _ = self._lamps[device_id]
        return lamp.faults, link

    def _canonical(self, device_id: str) -> str:
        return device_id if device_id in self._concs else self._lamps[device_id][0].device_id

    def fault_log(self) -> list[FaultRecord]:
        """Every injection (by inventory id) with its start and end, in injection order."""
        return [
            FaultRecord(device, a.kind, a.start, a.until, tuple(sorted(a.params.items())))
            for device, a in self._log
        ]

    # --- the truth ------------------------------------------------------------------------------

    def lamp(self, device_id: str) -> SimLamp:
        """The simulated controller of a lamp (inventory or wire id), e.g. to set its counters."""
        return self._lamps[device_id][0]

    def lamp_ids(self) -> list[str]:
        return [lamp.device_id for link in self._links for lamp in link.lamps]

    def truth(self, device_id: str, at: float | None = None) -> LampTruth:
        lamp, link, i = self._lamps[device_id]
        now = self.clock.now() if at is None else at
        return lamp.truth(now, link.reachable(i, now))

    def concentrator_online(self, concentrator_id: str) -> bool:
        conc, link = self._concs[concentrator_id]
        return link.connected and conc.talks(self.clock.now())

    @property
    def connected(self) -> int:
        """How many links are connected (of `len(self.links)`)."""
        return sum(link.connected for link in self._links)

    @property
    def links(self) -> list[Link]:
        return list(self._links)
