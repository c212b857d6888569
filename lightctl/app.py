"""The composition root: the only place that wires drivers, simulators, storage, scheduler and API."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
import tempfile
from pathlib import Path

from lightctl.api.auth import DEMO_TOKENS
from lightctl.clock import ScaledClock, SystemClock
from lightctl.config.loader import District
from lightctl.model import Override
from lightctl.runtime import Runtime


def _on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)


def _dump_tasks() -> None:
    """`kill -USR1 <pid>`: what every task is waiting on, to stderr (for a process that seems stuck)."""
    tasks = sorted(asyncio.all_tasks(), key=lambda t: t.get_name())
    print(f"--- {len(tasks)} tasks ---", file=sys.stderr)
    for task in tasks:
        print(f"task {task.get_name()} cancelling={task.cancelling()}", file=sys.stderr)
        task.print_stack(limit=6, file=sys.stderr)
    sys.stderr.flush()


def _quiet_libraries() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("pymodbus", "amqtt", "transitions", "gmqtt"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    # httpx logs each request's URL at INFO: webhook URLs carry their robots' keys
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def run_demo(district: District, port: int, speed: float, duration: float | None, start: str | None) -> int:
    _quiet_libraries()
    workdir = Path(tempfile.mkdtemp(prefix="lightctl-demo-"))
    clock = ScaledClock(start=_parse_start(district, start), speed=speed)
    return asyncio.run(_demo(district, clock, port, duration, workdir))


async def _demo(
    district: District, clock: ScaledClock, port: int, duration: float | None, workdir: Path
) -> int:
    from lightctl.demo import DEMO_FAULTS, demo_settings, remap_modbus
    from lightctl.embedded_broker import start_embedded_broker
    from lightctl.sim.modbus_sim import ModbusSim
    from lightctl.sim.slc import SlcFleet

    broker = await start_embedded_broker()
    modbus_ids = [*district.gateways, *(d.id for d in district.devices.values() if d.kind == "facade")]
    sim = ModbusSim(
        district.gateways.values(),
        district.devices,
        clock,
        seed=1,
        profiles=district.profiles,
        ports=dict.fromkeys(modbus_ids, 0),
    )
    lamp_faults = sim.claim_spec(DEMO_FAULTS)
    await sim.start()
    demo = remap_modbus(district, {i: sim.port_of(i) for i in modbus_ids})
    demo = dataclasses.replace(
        demo, settings=demo_settings(district.settings, workdir, broker.port, clock.speed)
    )
    lamps = [d for d in demo.devices.values() if d.kind == "lamp"]
    fleet = SlcFleet(
        lamps,
        demo.concentrators.values(),
        demo.profiles,
        "127.0.0.1",
        broker.port,
        clock,
        seed=1,
        lamps_per_connection=50,
        faults=lamp_faults,
    )
    await fleet.start()
    runtime = Runtime(demo, clock, host="127.0.0.1", port=port, demo=True)
    _on_signals(runtime.stopping)
    try:
        await runtime.start()
        counts = district.counts()
        print(
            f"lightctl demo: {counts['lamps']} lamps, {counts['groups']} groups, {counts['zones']} facade zones"
        )
        print(
            f"  console and API: http://127.0.0.1:{port}/   (OpenAPI: http://127.0.0.1:{port}/openapi.json)"
        )
        print(f"  clock speed {clock.speed:g}x; data in {workdir}")
        print("  demo tokens (one per role): " + ", ".join(DEMO_TOKENS))
        sys.stdout.flush()
        await runtime.serve(duration)
    finally:
        await runtime.stop()
        await fleet.stop()
        await sim.stop()
        await broker.stop()
    return 0


def run_serve(district: District, config_path: str) -> int:
    _quiet_libraries()
    settings = district.settings
    return asyncio.run(_serve(district, settings.api.host, settings.api.port, config_path))


async def _serve(district: District, host: str, port: int, config_path: str) -> int:
    runtime = Runtime(district, SystemClock(), host=host, port=port, config_path=config_path)
    _on_signals(runtime.stopping)
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, lambda: _reload_in_background(runtime))
    try:
        try:
            await runtime.start()
        except (OSError, ConnectionError) as exc:
            print(f"lightctl serve: cannot start: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # e.g. the state database refusing: one line, not a traceback
            if type(exc).__module__.split(".")[0] not in ("psycopg", "sqlite3"):
                raise
            print(f"lightctl serve: cannot open the state database: {exc}".strip(), file=sys.stderr)
            return 1
        print(f"lightctl serve: API and console on http://{host}:{port}/")
        sys.stdout.flush()
        await runtime.serve()
    finally:
        await runtime.stop()
    return 0


def _reload_in_background(runtime: Runtime) -> None:
    """SIGHUP: the same as POST /api/v1/reload; the outcome goes to the log."""

    async def reload() -> None:
        log = logging.getLogger("lightctl")
        try:
            for note in await runtime.reload():
                log.warning("reload: %s", note)
        except Exception as exc:
            log.error("reload refused, the running configuration stays: %s", exc)

    _background.add(task := asyncio.ensure_future(reload()))
    task.add_done_callback(_background.discard)


_background: set[asyncio.Future[None]] = set()


def run_sim(district: District, faults: str, speed: float, duration: float | None) -> int:
    _quiet_libraries()
    return asyncio.run(_sim(district, faults, ScaledClock(speed=speed), duration))


async def _sim(district: District, faults: str, clock: ScaledClock, duration: float | None) -> int:
    from lightctl.sim.modbus_sim import ModbusSim
    from lightctl.sim.slc import SlcFleet

    mqtt = district.settings.mqtt
    sim = ModbusSim(district.gateways.values(), district.devices, clock, seed=1, profiles=district.profiles)
    try:
        lamp_faults = sim.claim_spec(faults)
    except ValueError as exc:
        print(f"--faults: {exc}", file=sys.stderr)
        return 2
    lamps = [d for d in district.devices.values() if d.kind == "lamp"]
    try:
        fleet = SlcFleet(
            lamps,
            district.concentrators.values(),
            district.profiles,
            mqtt.host,
            mqtt.port,
            clock,
            seed=1,
            lamps_per_connection=50,
            faults=lamp_faults,
            username=mqtt.username,
            password=mqtt.password,
        )
    except ValueError as exc:
        print(f"--faults: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    _on_signals(stop)
    await sim.start()
    try:
        await fleet.start()
        print(
            f"lightctl sim: {len(lamps)} lamps on mqtt://{mqtt.host}:{mqtt.port}, "
            f"{len(district.gateways)} gateways and {sum(d.kind == 'facade' for d in district.devices.values())} "
            "facade controllers on their configured loopback ports"
        )
        sys.stdout.flush()
        waits: list[asyncio.Future[object]] = [asyncio.ensure_future(stop.wait())]
        if duration is not None:
            waits.append(asyncio.ensure_future(asyncio.sleep(duration)))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
    finally:
        await fleet.stop()
        await sim.stop()
    return 0


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
