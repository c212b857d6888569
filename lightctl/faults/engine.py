"""The fault engine: runs the rules as readings arrive and checks for silence on a timer.

It is a ReadingSink listener (`readings`, `availability`), fed with what each device is meant to be
doing (`set_desired` when the desired output changes, `commanded` whenever a command goes out) and
with the maintenance set. Per reading: judge (detectors.py) -> fold into the device's window
(window.py) -> the changes of condition go to the AlarmManager, through the Correlator for the
alarms that have parents (comm_loss, supply_loss of groups). `tick` (every second of clock time in
`run`) raises comm_loss for silence, settles deferred notifications, auto-resolves and marks overdue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from lightctl.clock import Clock
from lightctl.config.loader import District
from lightctl.faults.catalog import BRIDGE_ID
from lightctl.faults.comm import CommWatch
from lightctl.faults.context import DeviceContext, Intent, RulesCache, build_context
from lightctl.faults.correlate import COMM, SUPPLY, Correlator, Topology
from lightctl.faults.detectors import judge
from lightctl.faults.lifecycle import AlarmManager
from lightctl.faults.window import ON, SEEN, Window, fold
from lightctl.model import DEVICE_KINDS, DesiredState, Reading, Severity

DOOR = "door_open"
log = logging.getLogger(__name__)


class FaultEngine:
    def __init__(
        self,
        district: District,
        manager: AlarmManager,
        clock: Clock,
        *,
        is_night: Callable[[float], bool] | None = None,
    ) -> None:
        self.district = district
        self.manager = manager
        self.clock = clock
        self.is_night = is_night or (lambda ts: False)
        self.stats: Counter[str] = Counter()
        self._intents: dict[str, Intent] = {}
        self._windows: dict[str, Window] = {}
        self._maintenance: frozenset[str] = frozenset()
        self._doors: set[str] = set()
        self._broker_down = False
        self.comm = CommWatch()
        self._ctx, topo = _build(district)
        self.correlator = Correlator(manager, topo, self._holdoff)
        self._mqtt_ids = [i for i in topo.parent_of if _under_bridge(i, topo.parent_of)]
        now = clock.now()
        self._th = {kind: district.settings.thresholds_for(kind) for kind in DEVICE_KINDS}
        lamp_th = self._th["lamp"]
        for ctx in self._ctx.values():
            profile = district.profiles[ctx.device.profile]
            if profile.transport == "mqtt":
                self.comm.watch(ctx.device.id, ctx.th.comm_loss_intervals * ctx.interval_s, now)
        for conc in district.concentrators.values():
            self.comm.watch(conc.id, lamp_th.comm_loss_intervals * conc.batch_s, now)
        mqtt_intervals = [self._ctx[i].interval_s for i in self._mqtt_ids if i in self._ctx]
        if mqtt_intervals:
            self.comm.watch(BRIDGE_ID, lamp_th.comm_loss_intervals * min(mqtt_intervals), now)
        manager.in_maintenance = self._in_maintenance
        manager.on_manual_resolve = self._manual_resolved

    # --- inputs ----------------------------------------------------------------------------------

    def readings(self, batch: list[Reading]) -> None:
        now = self.clock.now()
        ctxs = self._ctx
        windows = self._windows
        intents = self._intents
        for reading in batch:
            ctx = ctxs.get(reading.device)
            if ctx is None:
                self.stats["unknown_device"] += 1
                continue
            at = reading.received or now
            try:
                self._heard(ctx, at)
                intent = intents.get(reading.device)
                obs = judge(ctx, reading, intent, at)
                w = windows.get(reading.device)
                if w is None:
                    w = windows[reading.device] = Window()
                changes = fold(ctx, w, obs, intent, at)
                if changes:
                    self._apply(ctx, changes, at)
            except Exception:  # one odd reading must not cost the rest of the batch
                self.stats["reading_errors"] += 1
                if self.stats["reading_errors"] <= 10:
                    log.exception("faults: reading of %s not judged", reading.device)
        self.stats["readings"] += len(batch)

    def availability(self, device_id: str, online: bool, ts: float, reason: str) -> None:
        if device_id == BRIDGE_ID:
            (self.broker_up if online else self.broker_down)(ts)
            return
        ctx = self._ctx.get(device_id)
        if ctx is not None:
            if online:
                self._heard(ctx, ts)
            elif device_id not in self.comm.silence_s and self.comm.set_lost(device_id):
                self.correlator.lost(device_id, ts, f"offline: {reason}")  # the driver's failed polls
            return  # MQTT devices: silence decides (their `offline` is a will, or the driver's silence)
        if device_id in self.district.gateways:
            if online:
                self._parent_heard(device_id, ts)
            elif self.comm.set_lost(device_id):
                self.correlator.lost(device_id, ts, f"gateway offline: {reason}")
        elif device_id in self.district.concentrators:
            if online:
                self._parent_heard(device_id, ts)
                self._parent_heard(BRIDGE_ID, ts)
        else:
            self.stats["unknown_availability"] += 1

    def broker_down(self, ts: float) -> None:
        """lightctl lost its MQTT broker: silent MQTT devices become children of one alarm."""
        self._broker_down = True

    def broker_up(self, ts: float) -> None:
        self._broker_down = False
        self._parent_heard(BRIDGE_ID, ts)
        self.comm.rearm(self._mqtt_ids, ts)  # they report within one interval of reconnecting

    def set_desired(self, device_id: str, state: DesiredState, at: float | None = None) -> None:
        """The desired output of a device (from the scheduler); the time it changed starts its grace."""
        when = self.clock.now() if at is None else at
        prev = self._intents.get(device_id)
        if prev is not None and prev.state.same_output(state):
            return
        self._intents[device_id] = Intent(state, when, when)

    def sync_desired(
        self, states: Mapping[str, DesiredState], at: float | None = None, only: Iterable[str] | None = None
    ) -> None:
        """Take a whole desired-state map (e.g. the reconciler's), or just the devices in `only`."""
        when = self.clock.now() if at is None else at
        for device_id in states if only is None else only:
            state = states.get(device_id)
            if state is not None:
                self.set_desired(device_id, state, when)

    def commanded(self, device_id: str, at: float | None = None) -> None:
        """A command went to the device (retries included): readings right after it are not judged."""
        prev = self._intents.get(device_id)
        if prev is not None:
            self._intents[device_id] = Intent(
                prev.state, prev.changed_at, self.clock.now() if at is None else at
            )

    def desired_states(self) -> dict[str, DesiredState]:
        return {dev: intent.state for dev, intent in self._intents.items()}

    def set_maintenance(self, devices: Iterable[str]) -> None:
        self._maintenance = frozenset(devices)

    def context(self, device_id: str) -> DeviceContext | None:
        return self._ctx.get(device_id)

    def contexts(self) -> Iterable[DeviceContext]:
        return self._ctx.values()

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> int:
        """Reload the alarms left open by the last run so that nothing is raised twice."""
        restored = await self.manager.load()
        for alarm in restored:
            if alarm.type == COMM:
                self.comm.lost.add(alarm.device)
            elif alarm.device in self._ctx and alarm.type in _WINDOW_TYPES:
                self._windows.setdefault(alarm.device, Window()).restore(alarm.type)
                if alarm.type == DOOR:
                    self._doors.add(alarm.device)
        return len(restored)

    async def run(self, tick_s: float = 1.0) -> None:
        writer = asyncio.create_task(self.manager.run(), name="alarm-writer")
        try:
            while True:
                await self.clock.sleep(tick_s)
                self.tick()
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    def tick(self, now: float | None = None) -> None:
        now = self.clock.now() if now is None else now
        expired = self.comm.expired(now)
        if expired:
            expired.sort(key=self._parent_rank)
            for ident in expired:
                self._silent(ident, now)
        self.correlator.tick(now, self._interval_of, self._th["lamp"].comm_loss_intervals)
        if self._doors and self.is_night(now):
            for dev in self._doors:
                ep = self.manager.episode(DOOR, dev)
                if ep is not None and ep.alarm.severity is not Severity.CRITICAL:
                    self.manager.escalate(ep, Severity.CRITICAL, now)
        self.manager.tick(now)

    # --- internals -----------------------------------------------------------------------------------

    def _heard(self, ctx: DeviceContext, at: float) -> None:
        dev = ctx.device.id
        comm = self.comm
        if comm.heard(dev, at):
            self.correlator.back(dev, at)
        parent = ctx.parent
        if parent is None:
            return
        self._parent_heard(parent, at)
        if ctx.device.concentrator is not None:
            self._parent_heard(BRIDGE_ID, at)
        gateway = ctx.device.gateway
        if gateway is not None:
            self.correlator.unit_polled(dev, gateway, at, self._reachable)

    def _parent_heard(self, parent: str, at: float) -> None:
        if self.comm.heard(parent, at):
            self.correlator.back(parent, at)
            self.comm.rearm(self.correlator.topo.children_of.get(parent, ()), at)
        else:
            self.correlator.parent_heard(parent, at)

    def _silent(self, ident: str, now: float) -> None:
        silent = self.comm.silent_for(ident, now)
        if ident == BRIDGE_ID:
            self.correlator.lost(BRIDGE_ID, now, f"no message from any MQTT device for {silent:.0f} s")
            return
        if self._broker_down and BRIDGE_ID not in self.comm.lost and ident in self.correlator.topo.parent_of:
            self.comm.lost.add(BRIDGE_ID)
            self.correlator.lost(BRIDGE_ID, now, "MQTT broker connection lost")
        allowed = self.comm.silence_s.get(ident, 0.0)
        self.correlator.lost(ident, now, f"no report for {silent:.0f} s (allowed {allowed:.0f} s)")

    def _parent_rank(self, ident: str) -> int:
        if ident == BRIDGE_ID:
            return 0
        return 1 if ident in self.district.concentrators else 2

    def _apply(self, ctx: DeviceContext, changes: list[tuple[str, int, str]], at: float) -> None:
        dev = ctx.device.id
        m = self.manager
        gateway = ctx.device.gateway
        for alarm_type, code, evidence in changes:
            if code == SEEN:
                m.seen(alarm_type, dev, at, evidence)
            elif code == ON:
                if alarm_type == SUPPLY and gateway is not None:
                    self.correlator.supply_lost(dev, gateway, at, evidence)
                    continue
                severity = None
                if alarm_type == DOOR:
                    self._doors.add(dev)
                    severity = Severity.CRITICAL if self.is_night(at) else None
                m.activate(alarm_type, dev, at, evidence, severity=severity)
            else:
                if alarm_type == SUPPLY and gateway is not None:
                    self.correlator.supply_back(dev, gateway, at)
                    continue
                if alarm_type == DOOR:
                    self._doors.discard(dev)
                m.deactivate(alarm_type, dev, at, ctx.th.flap_holdoff_s)

    def _holdoff(self, ident: str) -> float:
        ctx = self._ctx.get(ident)
        th = ctx.th if ctx is not None else self._th["group" if ident in self.district.gateways else "lamp"]
        return th.flap_holdoff_s

    def _interval_of(self, ident: str) -> float:
        ctx = self._ctx.get(ident)
        if ctx is not None:
            return ctx.interval_s
        conc = self.district.concentrators.get(ident)
        return float(conc.batch_s) if conc is not None else self.district.settings.modbus.poll_interval_s

    def _reachable(self, ident: str) -> bool:
        return ident not in self.comm.lost

    def _in_maintenance(self, ident: str) -> bool:
        m = self._maintenance
        if not m:
            return False
        if ident in m:
            return True
        units = self.correlator.topo.children_of.get(ident, ())
        return bool(units) and ident != BRIDGE_ID and all(u in m for u in units)

    def _manual_resolved(self, alarm_type: str, device: str) -> None:
        now = self.clock.now()
        if alarm_type == COMM:
            self.comm.reset(device, now)
            return
        w = self._windows.get(device)
        if w is not None:
            w.forget(alarm_type)
        if alarm_type == DOOR:
            self._doors.discard(device)


_WINDOW_TYPES = frozenset(
    {
        "lamp_failure",
        "control_gear_failure",
        "day_burner",
        "relay_failure",
        "dim_mismatch",
        "cycling",
        "voltage_high",
        "voltage_low",
        "power_factor_low",
        "over_temperature",
        "leakage",
        "door_open",
        "breaker_tripped",
        "pole_tilt",
        "supply_loss",
    }
)


def _under_bridge(ident: str, parent_of: Mapping[str, str]) -> bool:
    seen = 0
    while ident in parent_of and seen < 4:
        ident = parent_of[ident]
        if ident == BRIDGE_ID:
            return True
        seen += 1
    return False


def _build(district: District) -> tuple[dict[str, DeviceContext], Topology]:
    settings = district.settings
    modbus = settings.modbus
    parent_of: dict[str, str] = {}
    children: dict[str, list[str]] = {}
    ctxs: dict[str, DeviceContext] = {}
    th_of = {kind: settings.thresholds_for(kind) for kind in DEVICE_KINDS}  # one object per kind
    shared: RulesCache = {}
    for dev in district.devices.values():
        profile = district.profiles[dev.profile]
        th = th_of[dev.kind]
        parent: str | None = None
        if profile.transport == "mqtt":
            interval = float(dev.report_s or profile.report_s)
            conc = district.concentrators.get(dev.concentrator) if dev.concentrator else None
            if conc is not None:
                interval = max(interval, float(conc.batch_s))
                parent = conc.id
            else:
                parent = BRIDGE_ID
        else:
            interval = modbus.poll_interval_s
            parent = dev.gateway
        if parent is not None:
            parent_of[dev.id] = parent
            children.setdefault(parent, []).append(dev.id)
        ctxs[dev.id] = build_context(dev, profile, th, interval, parent, shared)
    for conc in district.concentrators.values():
        parent_of[conc.id] = BRIDGE_ID
        children.setdefault(BRIDGE_ID, []).append(conc.id)
    lamp_th = th_of["lamp"]
    wait: dict[str, float] = {}
    for gw in district.gateways.values():
        wait[gw.id] = modbus.poll_interval_s + len(gw.units) * modbus.timeout_s + 5.0
    for conc in district.concentrators.values():
        wait[conc.id] = lamp_th.comm_loss_intervals * conc.batch_s + 5.0
    bridged = [ctxs[d].interval_s for d in children.get(BRIDGE_ID, ()) if d in ctxs]
    wait[BRIDGE_ID] = lamp_th.comm_loss_intervals * min(bridged, default=60.0) + 5.0
    topo = Topology(
        parent_of=parent_of,
        children_of={p: tuple(c) for p, c in children.items()},
        parent_wait_s=wait,
        gateway_units={gw.id: gw.units for gw in district.gateways.values()},
        poll_s=modbus.poll_interval_s,
        theft_window_s=1.5 * modbus.poll_interval_s,
        theft_groups=th_of["group"].cable_theft_groups,
    )
    return ctxs, topo
