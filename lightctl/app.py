"""The composition root: the only place that wires drivers, simulators, storage, scheduler and API."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
from pathlib import Path

import uvicorn

from lightctl.api.app import create_app
from lightctl.api.auth import DEMO_TOKENS, TokenBook
from lightctl.clock import Clock, ScaledClock, SystemClock
from lightctl.config.loader import District
from lightctl.model import Override
from lightctl.services import Services
from lightctl.state import LiveState


class Runtime:
    """One running lightctl: its parts, started and stopped together."""

    def __init__(self, district: District, clock: Clock, demo: bool, host: str, port: int) -> None:
        self.district = district
        self.clock = clock
        self.live = LiveState(district)
        self.services = Services(
            district=district,
            live=self.live,
            tokens=TokenBook(district.settings.tokens, demo=demo),
            clock=clock,
            demo=demo,
        )
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._stopping = asyncio.Event()

    async def run(self, duration: float | None = None) -> None:
        app = create_app(self.services)
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        serve = asyncio.create_task(self._server.serve(), name="api")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self._stopping.set)
        waits = [asyncio.create_task(self._stopping.wait()), serve]
        if duration is not None:
            waits.append(asyncio.create_task(asyncio.sleep(duration)))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serve
        for task in waits:
            task.cancel()


def run_demo(district: District, port: int, speed: float, duration: float | None, start: str | None) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="lightctl-demo-"))
    clock = ScaledClock(start=_parse_start(district, start), speed=speed)
    runtime = Runtime(district, clock, demo=True, host="127.0.0.1", port=port)
    counts = district.counts()
    print(
        f"lightctl demo: {counts['lamps']} lamps, {counts['groups']} groups, {counts['zones']} facade zones"
    )
    print(f"  console and API: http://127.0.0.1:{port}/   (OpenAPI: http://127.0.0.1:{port}/openapi.json)")
    print(f"  clock speed {speed:g}x; data in {workdir}")
    print("  demo tokens (one per role): " + ", ".join(DEMO_TOKENS))
    sys.stdout.flush()
    asyncio.run(runtime.run(duration))
    return 0


def run_serve(district: District, config_path: str) -> int:
    settings = district.settings
    runtime = Runtime(district, SystemClock(), demo=False, host=settings.api.host, port=settings.api.port)
    print(f"lightctl serve: API on http://{settings.api.host}:{settings.api.port}/")
    sys.stdout.flush()
    asyncio.run(runtime.run())
    return 0


def run_sim(district: District, faults: str, speed: float, duration: float | None) -> int:
    print("lightctl sim: the field-device simulators are not wired in yet", file=sys.stderr)
    return 1


def run_plan(district: District, date: str | None, target: str | None, as_json: bool) -> int:
    import datetime as dt
    import json
    from zoneinfo import ZoneInfo

    from lightctl.schedule.night import night_of
    from lightctl.schedule.preview import preview_night
    from lightctl.schedule.resolve import Resolver

    resolver = Resolver.for_district(district)
    resolver.set_overrides(_stored_overrides(district))
    tz = ZoneInfo(district.settings.site.timezone)
    try:
        night = dt.date.fromisoformat(date) if date else night_of(SystemClock().now(), tz)
    except ValueError:
        print(f"bad --date {date!r}: use YYYY-MM-DD", file=sys.stderr)
        return 2
    try:
        preview = preview_night(resolver, night, target, district.profiles)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(json.dumps(preview.to_json(), ensure_ascii=False, indent=2) if as_json else preview.to_text())
    return 0


def _stored_overrides(district: District) -> list[Override]:
    """Overrides in the state database, so a preview shows what the running service will do."""
    return []


def _parse_start(district: District, start: str | None) -> float | None:
    if start is None:
        return None
    import datetime as dt
    from zoneinfo import ZoneInfo

    when = dt.datetime.fromisoformat(start)
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(district.settings.site.timezone))
    return when.timestamp()
