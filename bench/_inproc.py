"""lightctl's Runtime in a benchmark process, and counters it shares with the harness.

The Runtime is the one `lightctl serve` runs (storage, MQTT driver, live state, fault engine,
telemetry writer, reconciler, northbound, KPI), minus the HTTP server. Benchmarks that must not
command devices (ingest: the publisher plays lamps that only report) give the reconciler a port
that confirms at once, set before its first pass, so the start-up commands cost nothing on the wire.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from _common import cpu_seconds

# slots of the shared counter array
MESSAGES, READINGS, DROPS, JUDGED, WRITTEN, PENDING, QUEUE_DROPPED, T_LAST, CPU, COMMANDS = range(10)
SLOTS = 10


class ConfirmingPort:
    """A command port that confirms every command at once (no device traffic)."""

    async def apply(self, device_id: str, desired: Any) -> Any:
        from lightctl.model import CommandResult

        return CommandResult(device_id, "bench", True, confirmed_by="ack", latency_s=0.0)


def quiet_logging() -> None:
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("pymodbus", "amqtt", "transitions", "gmqtt", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)


async def start_runtime(config: str, *, confirm_commands: bool, api: bool = False) -> Any:
    from lightctl.clock import SystemClock
    from lightctl.config.loader import load
    from lightctl.runtime import Runtime

    district = load(config)
    runtime = Runtime(district, SystemClock(), host="127.0.0.1", port=district.settings.api.port)
    await runtime.start()
    if confirm_commands and runtime.reconciler is not None:
        # start() spawned the reconciler task, which has not run yet: no command leaves.
        runtime.reconciler.ports = {kind: ConfirmingPort() for kind in runtime.reconciler.ports}
    if runtime.mqtt is not None and not await runtime.mqtt.wait_connected(30):
        raise RuntimeError("lightctl did not connect to the broker")
    return runtime


def publish_counters(runtime: Any, shared: Any, slow: bool = True) -> None:
    mqtt = runtime.mqtt
    status = runtime.writer.status()
    messages = mqtt.messages
    if messages != shared[MESSAGES]:
        shared[T_LAST] = time.monotonic()
    shared[MESSAGES] = messages
    shared[READINGS] = mqtt.readings
    shared[DROPS] = mqtt.drops.total()
    shared[JUDGED] = runtime.engine.stats["readings"]
    shared[WRITTEN] = status.written
    shared[PENDING] = status.pending
    shared[QUEUE_DROPPED] = status.queue_dropped
    if slow:  # a scan of every device and a /proc read: twice a second is enough
        shared[CPU] = cpu_seconds(os.getpid())
        shared[COMMANDS] = runtime.reconciler.pending() if runtime.reconciler is not None else 0


def ingest_main(config: str, shared: Any, ready: Any, stop: Any) -> None:
    """Process entry: run lightctl until `stop`, keeping `shared` up to date every 20 ms (CPU time and
    pending commands every 0.5 s)."""
    quiet_logging()
    asyncio.run(_ingest(config, shared, ready, stop))


async def _ingest(config: str, shared: Any, ready: Any, stop: Any) -> None:
    runtime = await start_runtime(config, confirm_commands=True)
    try:
        quiet_since = None
        n = 0
        while not stop.is_set():
            await asyncio.sleep(0.02)
            n += 1
            publish_counters(runtime, shared, slow=n % 25 == 0)
            if not ready.is_set():
                busy = runtime.reconciler.pending() or runtime.writer.status().pending
                now = time.monotonic()
                quiet_since = None if busy else (quiet_since or now)
                if quiet_since is not None and now - quiet_since > 2.0:
                    ready.set()
    finally:
        await runtime.stop()


def bare_main(host: str, port: int, topic: str, qos: int, shared: Any, ready: Any, stop: Any) -> None:
    """Process entry: a bare gmqtt subscriber that parses each payload with orjson (the minimum the
    real ingest does), counting into `shared` like the lightctl process."""
    import gmqtt
    import orjson

    async def run() -> None:
        subscribed = asyncio.Event()
        loads = orjson.loads
        count = [0, 0]  # messages, bad

        def on_message(client: Any, t: str, payload: bytes, q: int, properties: Any) -> int:
            count[0] += 1
            try:
                loads(payload)["seq"]
                t.rsplit("/", 3)[1]
            except (ValueError, KeyError, TypeError):
                count[1] += 1
            return 0

        client = gmqtt.Client(f"bench-bare-{os.getpid()}", clean_session=True)
        client.on_message = on_message
        client.on_subscribe = lambda *a: subscribed.set()
        client.set_config({"reconnect_retries": 0})
        await client.connect(host, port, keepalive=60, version=4)
        client.subscribe(topic, qos=qos)
        await asyncio.wait_for(subscribed.wait(), 10)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.02)
            if count[0] != shared[MESSAGES]:
                shared[T_LAST] = time.monotonic()
            shared[MESSAGES] = shared[READINGS] = shared[JUDGED] = shared[WRITTEN] = count[0]
            shared[DROPS] = count[1]
            if int(time.monotonic() * 50) % 25 == 0:
                shared[CPU] = cpu_seconds(os.getpid())
        await client.disconnect()

    quiet_logging()
    asyncio.run(run())
