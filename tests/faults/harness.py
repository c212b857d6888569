"""An engine, its alarm manager and an in-memory store on a manual clock, recording every event."""

from __future__ import annotations

from collections.abc import Callable

from lightctl.clock import ManualClock
from lightctl.config.loader import District
from lightctl.faults.engine import FaultEngine
from lightctl.faults.lifecycle import AlarmEvent, AlarmManager
from lightctl.faults.store import AlarmStore, MemoryAlarmStore
from lightctl.model import Alarm, DesiredState, Reading

from .factory import T0, group_reading, lamp_reading

ON100 = DesiredState(on=True, level=100)
BOTH = DesiredState(k1=True, k2=True, level=100)


class Recorder:
    def __init__(self) -> None:
        self.events: list[AlarmEvent] = []

    def alarm_event(self, event: AlarmEvent) -> None:
        self.events.append(event)

    def notified(self, kind: str = "raised") -> list[Alarm]:
        return [e.alarm for e in self.events if e.kind == kind and e.notify]

    def of(self, kind: str) -> list[Alarm]:
        return [e.alarm for e in self.events if e.kind == kind]


class Harness:
    def __init__(
        self,
        district: District,
        store: AlarmStore | None = None,
        start: float = T0,
        is_night: Callable[[float], bool] | None = None,
    ) -> None:
        self.district = district
        self.clock = ManualClock(start)
        self.memory = store if isinstance(store, MemoryAlarmStore) else MemoryAlarmStore()
        self.rec = Recorder()
        self.manager = AlarmManager(store or self.memory, self.clock, events=self.rec)
        self.engine = FaultEngine(district, self.manager, self.clock, is_night=is_night)

    @property
    def now(self) -> float:
        return self.clock.now()

    def desire_all(
        self, lamps: DesiredState = ON100, groups: DesiredState = BOTH, at: float | None = None
    ) -> None:
        when = self.now - 3600 if at is None else at
        facades = DesiredState(scene=1, brightness=100)
        states = {
            dev.id: lamps if dev.kind == "lamp" else groups if dev.kind == "group" else facades
            for dev in self.district.devices.values()
        }
        self.engine.sync_desired(states, when)

    def lamp(self, ident: str, **kw: object) -> Reading:
        dev = self.district.devices[ident]
        return lamp_reading(self.now, rated_w=dev.rated_w, device=ident, **kw)  # type: ignore[arg-type]

    def group(self, ident: str, **kw: object) -> Reading:
        dev = self.district.devices[ident]
        return group_reading(
            self.now,
            k1_w=dev.k1_w or 0,
            k2_w=dev.k2_w or 0,
            dimmable=dev.dimmable,
            device=ident,
            **kw,  # type: ignore[arg-type]
        )

    def healthy_round(self, skip: set[str] | frozenset[str] = frozenset()) -> None:
        """Every device but `skip` reports healthy now."""
        batch = []
        for dev in self.district.devices.values():
            if dev.id in skip:
                continue
            if dev.kind == "lamp":
                batch.append(self.lamp(dev.id))
            elif dev.kind == "group":
                batch.append(self.group(dev.id))
        self.engine.readings(batch)

    def advance(self, seconds: float, step: float = 1.0) -> None:
        """Move the clock, ticking the engine every `step` seconds as `run` would."""
        end = self.now + seconds
        while self.now + step <= end:
            self.clock.advance(step)
            self.engine.tick()
        if self.now < end:
            self.clock.set(end)
            self.engine.tick()

    async def settle(self) -> None:
        await self.manager.flush()

    @property
    def store(self) -> MemoryAlarmStore:
        return self.memory

    def alarms(self, alarm_type: str | None = None) -> list[Alarm]:
        """What the in-memory store holds (tests on another store read it themselves)."""
        rows = [r.alarm for r in self.memory.rows.values()]
        return [a for a in rows if alarm_type is None or a.type == alarm_type]
