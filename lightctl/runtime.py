"""One running lightctl service: storage, drivers, scheduler, reconciler, fault detection and API.

This is where the parts are wired together (with app.py for the commands); nothing else constructs
drivers or stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import uvicorn

from lightctl.api.app import create_app
from lightctl.api.auth import TokenBook
from lightctl.api.events import EventHub
from lightctl.clock import Clock
from lightctl.config.loader import District
from lightctl.config.partition import partition_district
from lightctl.control import Outcome, Reconciler
from lightctl.drivers.modbus import ModbusDriver
from lightctl.drivers.mqtt import MqttDriver
from lightctl.faults import messages
from lightctl.faults.energy_watch import EnergyWatch
from lightctl.faults.engine import FaultEngine
from lightctl.faults.kpi import KpiService, faulty_devices
from lightctl.faults.lifecycle import AlarmManager
from lightctl.faults.night import night_by_sun
from lightctl.faults.notify import Notifier
from lightctl.model import CommandResult, DesiredState
from lightctl.northbound import Northbound
from lightctl.operations import Operations
from lightctl.schedule.plans import TargetIndex
from lightctl.schedule.resolve import Resolver
from lightctl.services import Services
from lightctl.state import LiveState, apply_reading
from lightctl.store.command_log import CommandLog
from lightctl.store.factory import open_state, open_telemetry
from lightctl.store.pipeline import TelemetryWriter
from lightctl.store.state import CommandLogEntry, DeviceSnapshot, StateDB
from lightctl.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SNAPSHOT_EVERY_S = 10.0  # real seconds; each device is written only when it reported since
SNAPSHOT_SLICE = 5000  # devices per transaction: the event loop gets a turn between them


class ResolverFeed:
    """Keeps the full desired state up to date from the resolver's incremental ticks, and tells the
    fault engine what each device should be doing (its rules judge readings against that)."""

    def __init__(self, resolver: Resolver, engine: FaultEngine | None = None) -> None:
        self.resolver = resolver
        self.engine = engine
        self.desired: dict[str, DesiredState] = {}
        self.held: frozenset[str] = frozenset()
        self.on_change: Callable[[list[str]], None] | None = None  # the reconciler looks at these

    def desired_at(self, now: float) -> dict[str, DesiredState]:
        result = self.resolver.tick(now)
        for dev_id in result.changed:
            state = self.resolver.state(dev_id)
            self.desired[dev_id] = state
            if self.engine is not None:
                self.engine.set_desired(dev_id, state, now)
        if result.changed and self.on_change is not None:
            self.on_change(list(result.changed))
        if self.engine is not None and result.maintenance != self.held:
            self.engine.set_maintenance(result.maintenance)
        self.held = result.maintenance
        return self.desired

    def maintenance_at(self, now: float) -> set[str]:
        return set(self.held)


@dataclass
class _Port:
    """The reconciler's view of a driver: apply a desired state, get a confirmed result.

    The fault engine hears of every command first, so it does not judge the readings of a device that
    is still switching against the state it was just told to take."""

    apply_fn: Callable[[str, DesiredState], Awaitable[CommandResult]]
    engine: FaultEngine
    clock: Clock

    async def apply(self, device_id: str, desired: DesiredState) -> CommandResult:
        self.engine.commanded(device_id, self.clock.now())
        return await self.apply_fn(device_id, desired)


@dataclass
class Runtime:
    district: District
    clock: Clock
    host: str
    port: int
    demo: bool = False
    config_path: str = "config.yaml"
    extra_tasks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.whole = self.district  # every instance's devices: operators may target any of them
        self.district = partition_district(self.district)
        self.live = LiveState(self.district)
        self.services = Services(
            district=self.district,
            live=self.live,
            tokens=TokenBook(self.district.settings.tokens, demo=self.demo),
            clock=self.clock,
            demo=self.demo,
        )
        self.state: StateDB | None = None
        self.writer: TelemetryWriter | None = None
        self.mqtt: MqttDriver | None = None
        self.modbus: ModbusDriver | None = None
        self.reconciler: Reconciler | None = None
        self.resolver = Resolver.for_district(self.district)
        self.feed = ResolverFeed(self.resolver)
        self.ops: Operations | None = None
        self.command_log: CommandLog | None = None
        self._saved: dict[str, float] = {}  # device -> time of the reading last snapshotted
        self._tasks: set[asyncio.Task[Any]] = set()  # running only: finished ones leave (one per command)
        self._latencies: deque[float] = deque(maxlen=2000)
        self._server: uvicorn.Server | None = None
        self.stopping = asyncio.Event()

    # --- start --------------------------------------------------------------------------------

    async def start(self) -> None:
        d = self.district
        settings = d.settings
        self.state = state = await open_state(settings.storage, d.path)
        kinds = {dev_id: dev.kind for dev_id, dev in d.devices.items()}
        self.writer = await open_telemetry(settings.storage.telemetry, d.path, kinds, self.clock)
        await self._restore_device_states(self.state)
        self.live.reading_listeners.append(self.writer.readings)

        lamps = [dev for dev in d.devices.values() if _transport(d, dev.profile) == "mqtt"]
        modbus_devices = {k: v for k, v in d.devices.items() if _transport(d, v.profile) == "modbus"}
        if lamps:
            self.mqtt = MqttDriver(
                settings.mqtt,
                settings.site.id,
                lamps,
                d.concentrators.values(),
                d.profiles,
                self.live,
                self.clock,
                config_dir=d.base_dir,
                # one instance of several subscribes to its own devices' topics only (docs/scaling.md)
                per_device_topics=settings.partition is not None,
                instance=settings.mqtt.client_id if settings.partition is not None else None,
            )
            self.services.drops["mqtt"] = self.mqtt.drops
        if modbus_devices:
            self.modbus = ModbusDriver(
                settings.modbus, d.gateways.values(), modbus_devices, d.profiles, self.live, self.clock
            )
            self.services.drops["modbus"] = self.modbus.drops

        await self._start_faults(state)
        engine = self.engine
        self.ops = Operations(
            state,
            self.resolver,
            self.clock,
            poke=self._poke,
            announce=self._announce,
            targets=TargetIndex.for_district(self.whole),
        )
        await self.ops.load()
        ports: dict[str, _Port] = {}
        if self.mqtt is not None:
            ports["lamp"] = _Port(self.mqtt.send, engine, self.clock)
        if self.modbus is not None:
            ports["group"] = ports["facade"] = _Port(self.modbus.apply, engine, self.clock)
        self.reconciler = Reconciler(
            devices=d.devices,
            live=self.live,
            ports=dict(ports),
            clock=self.clock,
            desired_fn=self.feed.desired_at,
            maintenance_fn=self.feed.maintenance_at,
            retry_delays=list(settings.control.retry_delays_s),
            tick_s=settings.control.tick_s,
            on_outcome=self._command_outcome,
            scan_all=False,
        )
        self.feed.on_change = self.reconciler.changed
        self.services.extras.update(
            operations=self.ops,
            maintenance=self.ops,
            resolver=self.resolver,
            state_db=self.state,
            audit=self.state,
            telemetry_backlog=self._backlog,
            telemetry=self.writer.backend,
            reload=self.reload,
            calendar_coverage=self._coverage,
            links=self._links,
            storage=self._storage,
            poll_cycle_seconds=self._poll_cycles,
            command_latency_seconds=self._command_latency,
            ingest_counters=self._ingest,
        )
        if self.mqtt is not None:
            self.northbound = Northbound(self.live, self.mqtt, settings.site.id, self.clock)
            await self.mqtt.start()
        if self.modbus is not None:
            await self.modbus.start()
        self.command_log = CommandLog(state)
        self._spawn(self.command_log.run(), "command-log")
        self._spawn(self.reconciler.run(), "reconciler")
        self._spawn(self._snapshots(self.state), "device-snapshots")
        self._spawn(self.ops.watch(), "overrides-watch")
        if self.district.settings.partition is not None:
            self._spawn(self.alarms.watch_shared(), "alarms-watch")
        if self.mqtt is not None:
            self._spawn(self.northbound.run(), "northbound")
        self._spawn(engine.run(), "fault-engine")
        self._spawn(self.notifier.run(), "notifier")
        self._spawn(self.kpi.run(), "kpi")
        # energy_anomaly: each night judged against its baseline a little after its morning close
        self.energy = EnergyWatch(
            d, lambda: self.resolver, self.alarms, self.clock, self.writer.backend, state
        )
        self._spawn(self.energy.run(), "energy-watch")
        self._spawn(self._watch_broker(), "broker-watch")
        self._spawn(self._watch_calendar(), "calendar-watch")
        for make in self.extra_tasks:
            self._spawn(make(), "extra")

    async def _start_faults(self, state: StateDB) -> None:
        d = self.district
        site = d.settings.site
        tz = ZoneInfo(site.timezone)
        hub = EventHub(self.live, tz, self.clock.now)
        self.services.extras["events"] = hub
        managers: list[AlarmManager] = []
        ctx = messages.Context(
            site.id, tz, messages.names_of(d), lambda a, now: managers[0].is_overdue(a, now)
        )
        alerts = d.settings.alerts
        mqtt = self.mqtt
        self.notifier = Notifier(
            ctx,
            stream=hub,
            mqtt_publish=(lambda topic, payload: bool(mqtt.publish_alarm(payload)))
            if mqtt and alerts.mqtt
            else None,
            webhooks=alerts.webhooks,
            smtp=alerts.smtp,
        )
        self.alarms = AlarmManager(
            state,
            self.clock,
            repair_hours={str(k): v for k, v in alerts.repair_hours.items()},
            events=self.notifier,
        )
        managers.append(self.alarms)
        self.engine = FaultEngine(d, self.alarms, self.clock, is_night=night_by_sun(self.resolver.sun))
        await self.engine.start()
        self.feed.engine = self.engine
        self.live.reading_listeners.append(self.engine.readings)
        self.live.availability_listeners.append(self.engine.availability)
        self.kpi = KpiService(
            self.engine.contexts,
            self.live.status,
            self.engine.desired_states,
            faulty_devices(self.alarms.faulty_devices),
            self.clock,
            tz,
        )
        self.services.extras.update(alarms=self.alarms, kpi=self.kpi)

    async def _watch_broker(self) -> None:
        """A lost broker connection is one comm episode, not a silence alarm per lamp."""
        if self.mqtt is None:
            return
        up: bool | None = None
        while True:
            now_up = self.mqtt.connected
            if now_up != up:
                if now_up:
                    self.engine.broker_up(self.clock.now())
                    if up is not None and self.reconciler is not None:
                        lamps = [d.id for d in self.district.devices.values() if d.kind == "lamp"]
                        self.reconciler.retry_now(lamps)
                elif up is not None:
                    self.engine.broker_down(self.clock.now())
                up = now_up
            await asyncio.sleep(0.5)

    async def _watch_calendar(self) -> None:
        """calendar_data_missing from 30 days before a year without holiday data (checked hourly)."""
        site = self.district.settings.site
        tz = ZoneInfo(site.timezone)
        while True:
            now = self.clock.now()
            today = dt.datetime.fromtimestamp(now, tz).date()
            if self.resolver.calendar.calendar_data_missing(today):
                year = self.resolver.calendar.missing_year(today)
                self.alarms.raise_alarm(
                    "calendar_data_missing",
                    site.id,
                    now,
                    f"no holiday data for {year}: add schedules/holidays/{year}.yaml or update chinesecalendar",
                )
            else:
                self.alarms.clear_alarm("calendar_data_missing", site.id, now)
            await self.clock.sleep(3600)

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        task.add_done_callback(self._task_done)
        self._tasks.add(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("task %s stopped: %r", task.get_name(), exc, exc_info=exc)

    async def _restore_device_states(self, state: StateDB) -> None:
        """The last known readings, so the API and the detectors resume where they stopped."""
        snapshots = await state.load_device_states()
        restored = [
            s.reading for s in snapshots.values() if s.reading is not None and s.device in self.live.status
        ]
        for reading in restored:
            st = self.live.status[reading.device]
            apply_reading(st, reading)
            st.online = None  # not heard from since the restart

    async def _snapshots(self, state: StateDB) -> None:
        """Save every device's latest reading now and then, so a restart resumes from it (and the
        reconciler leaves alone what already shows the desired state). In slices: at city scale it
        is a whole-inventory write. A state restored out of date (a command confirmed in the last
        seconds before a crash) is corrected by the device's next report, acted on at once."""
        while True:
            await asyncio.sleep(SNAPSHOT_EVERY_S)
            await self._save_all_snapshots(state)

    async def _save_all_snapshots(self, state: StateDB) -> None:
        ids = list(self.live.status)
        for first in range(0, len(ids), SNAPSHOT_SLICE):
            try:
                await self._save_snapshots(state, ids[first : first + SNAPSHOT_SLICE], self._saved)
            except Exception as exc:
                # Not fatal (a restart then resumes from older states, corrected by the next
                # reports), but said: the rest of this round waits for the next one.
                log.warning("device states not saved (state database): %s", exc)
                return

    async def _save_snapshots(self, state: StateDB, ids: list[str], saved: dict[str, float]) -> None:
        now = self.clock.now()
        status = self.live.status
        # last_seen is the latest reading's time: reading it costs nothing, `last` builds a Reading.
        batch = [
            DeviceSnapshot(dev_id, st.last, bool(st.online), now)
            for dev_id in ids
            if (st := status[dev_id]).last_seen is not None and saved.get(dev_id) != st.last_seen
        ]
        if batch:
            await state.save_device_states(batch)
            saved.update((s.device, s.reading.ts) for s in batch if s.reading is not None)

    async def reload(self) -> list[str]:
        """Re-read the configuration. Schedules, calendars and tokens take effect at once; an inventory
        change (devices, addresses) needs a restart, which the notes say. Invalid files change nothing."""
        from lightctl.api.routes_admin import ReloadRefused
        from lightctl.config.loader import ConfigError, load

        try:
            fresh = await asyncio.to_thread(load, self.config_path)
        except ConfigError as exc:
            raise ReloadRefused(exc.errors) from None
        notes: list[str] = []
        if fresh.devices.keys() != self.district.devices.keys() or fresh.devices != self.district.devices:
            notes.append("the inventory changed: restart lightctl to talk to the new devices")
        resolver = Resolver.for_district(dataclasses.replace(fresh, devices=self.district.devices))
        self.resolver = resolver
        self.feed.resolver = resolver
        if self.ops is not None:
            self.ops.set_resolver(resolver)
        self.services.extras["resolver"] = resolver
        self.services.tokens = TokenBook(fresh.settings.tokens, demo=self.demo)
        notes.append(f"schedules reloaded: {len(fresh.programs)} programs, {len(fresh.plans)} plans")
        self._poke()
        return notes

    # --- hooks -----------------------------------------------------------------------------------

    def _poke(self) -> None:
        if self.reconciler is not None:
            self.reconciler.poke()

    def _announce(self, kind: str, payload: dict[str, object]) -> None:
        hub = self.services.extras.get("events")
        if hub is not None:
            hub.publish(kind, payload)

    def _command_outcome(self, outcome: Outcome) -> None:
        r = outcome.result
        now = self.clock.now()
        if r.ok and r.latency_s is not None:
            self._latencies.append(r.latency_s)
        if r.ok:
            self.alarms.clear_alarm("command_failed", outcome.device, now)
        elif outcome.final and self._reachable(outcome.device):
            why = f"{r.detail} (after {outcome.attempt} attempts)"
            self.alarms.raise_alarm("command_failed", outcome.device, now, why)
        if self.command_log is None:
            return
        entry = CommandLogEntry(
            id=r.command_id,
            device=outcome.device,
            desired=outcome.desired,
            issued=self.clock.now() - (r.latency_s or 0.0),
            ok=r.ok,
            result=r.detail or ("ok" if r.ok else "failed"),
            confirmed_by=r.confirmed_by,
            latency_s=r.latency_s,
            completed=self.clock.now(),
        )
        self.command_log.add(entry)

    def _backlog(self) -> float:
        """Readings waiting for the telemetry database (in memory and in the outage buffer)."""
        if self.writer is None:
            return 0.0
        status = self.writer.status()
        return float(status.pending + status.backlog.records)

    def _storage(self) -> dict[str, object]:
        if self.writer is None:
            return {}
        st = self.writer.status()
        return {
            "backend": st.backend,
            "healthy": st.healthy,
            "last_error": st.last_error,
            "pending": st.pending,
            "written": st.written,
            "backlog_records": st.backlog.records,
            "backlog_bytes": st.backlog.bytes,
            "dropped": st.backlog.dropped + st.queue_dropped,
        }

    def _poll_cycles(self) -> dict[str, float]:
        if self.modbus is None:
            return {}
        return {
            g.gateway_id: g.last_cycle_s for g in self.modbus.gateway_status() if g.last_cycle_s is not None
        }

    def _command_latency(self) -> dict[str, float]:
        recent = sorted(self._latencies)
        if not recent:
            return {}
        return {q: recent[min(len(recent) - 1, int(float(q) * len(recent)))] for q in ("0.5", "0.9", "0.99")}

    def _ingest(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.mqtt is not None:
            out["mqtt"] = float(self.mqtt.stats().messages)
        if self.modbus is not None:
            out["modbus"] = float(sum(g.cycles * g.units for g in self.modbus.gateway_status()))
        return out

    def _reachable(self, dev_id: str) -> bool:
        """Whether a failed command is the device's fault: its path (broker, gateway) is up and it has
        answered; otherwise the comm_loss episode already says what is wrong, once."""
        dev = self.district.devices[dev_id]
        if dev.kind == "lamp" and (self.mqtt is None or not self.mqtt.connected):
            return False
        return self.live.status[dev_id].online is True

    def _links(self) -> dict[str, object]:
        """The broker connection and the gateways, for /health: what an operator checks first."""
        out: dict[str, object] = {}
        if self.mqtt is not None:
            st = self.mqtt.stats()
            out["mqtt"] = {"connected": st.connected, "protocol": st.protocol, "last_error": st.last_error}
        if self.modbus is not None:
            gws = self.modbus.gateway_status()
            out["modbus"] = {
                "gateways": len(gws),
                "online": sum(1 for g in gws if g.online),
                "errors": {g.gateway_id: g.last_error for g in gws if g.last_error and not g.online},
            }
        return out

    def _coverage(self) -> dict[str, object]:
        today = dt.datetime.fromtimestamp(
            self.clock.now(), ZoneInfo(self.district.settings.site.timezone)
        ).date()
        cov = self.resolver.calendar.coverage(today)
        return {
            "package_years": list(cov.package_years),
            "local_years": list(cov.local_years),
            "first_missing_year": cov.first_missing_year,
            "calendar_data_missing": cov.missing,
        }

    # --- run / stop ------------------------------------------------------------------------------

    async def serve(self, duration: float | None = None) -> None:
        app = create_app(self.services)
        config = uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=3,
        )
        self._server = uvicorn.Server(config)
        api = asyncio.ensure_future(self._server.serve())
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self.stopping.wait()), api]
        if duration is not None:
            waits.append(asyncio.ensure_future(asyncio.sleep(duration)))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        hub = self.services.extras.get("events")
        if hub is not None:
            hub.close()  # open event streams would hold the server up
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await api
        for w in waits:
            w.cancel()

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        if self.command_log is not None:
            await self.command_log.flush()
        if self.state is not None:
            await self._save_all_snapshots(self.state)  # the next start resumes from now
        if self.mqtt is not None:
            await self.mqtt.stop()
        if self.modbus is not None:
            await self.modbus.stop()
        if self.writer is not None:
            await self.writer.stop()
            await self.writer.backend.close()
        if self.state is not None:
            await self.state.close()


def _transport(district: District, profile_id: str) -> str:
    return district.profiles[profile_id].transport
