"""Build the configured stores from settings; app.py calls these and nothing else of store/ to wire."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path

from lightctl.clock import Clock
from lightctl.config.settings import Storage, TelemetryStore
from lightctl.store.buffer import DiskBuffer
from lightctl.store.influx import InfluxTelemetry
from lightctl.store.pipeline import TelemetryWriter
from lightctl.store.series import DEFAULT_LIT_THRESHOLD_W
from lightctl.store.sqlite_ts import SqliteTelemetry
from lightctl.store.state import StateDB
from lightctl.store.state_sqlite import SqliteStateDB
from lightctl.store.telemetry import TelemetryBackend

Resolve = Callable[[str], Path]  # a configured path -> absolute (District.path)


def telemetry_backend(
    settings: TelemetryStore,
    resolve: Resolve,
    kinds: Mapping[str, str],
    lit_threshold_w: float = DEFAULT_LIT_THRESHOLD_W,
) -> TelemetryBackend:
    """The configured backend, not yet opened."""
    if settings.backend == "influxdb":
        if settings.influxdb is None:  # the settings validator already refuses this
            raise ValueError("storage.telemetry.backend influxdb needs an influxdb section")
        return InfluxTelemetry(settings.influxdb, kinds, lit_threshold_w)
    return SqliteTelemetry(
        resolve(settings.path),
        raw_retention_days=settings.raw_retention_days,
        rollup_retention_days=settings.rollup_retention_days,
        lit_threshold_w=lit_threshold_w,
    )


async def open_telemetry(
    settings: TelemetryStore,
    resolve: Resolve,
    kinds: Mapping[str, str],
    clock: Clock | None = None,
) -> TelemetryWriter:
    """Backend opened, buffer reopened (a backlog left by the last run replays first), writer running.

    The writer is the ReadingSink half for telemetry; its `.backend` answers the read queries.
    Stop it with `await writer.stop()` and then `await writer.backend.close()`.
    """
    backend = telemetry_backend(settings, resolve, kinds)
    await backend.open()
    # Reopening scans the open segment for a torn tail: disk work, so off the loop.
    buffer = await asyncio.to_thread(DiskBuffer, resolve(settings.buffer_path), settings.buffer_max_bytes)
    writer = TelemetryWriter(
        backend, buffer, batch_size=settings.batch_size, flush_s=settings.flush_s, clock=clock
    )
    await writer.start()
    return writer


async def open_state(storage: Storage, resolve: Resolve) -> StateDB:
    """The configured state database, open and migrated to the current schema version."""
    if storage.state.backend == "postgresql":
        if not storage.state.dsn:  # the settings validator already refuses this
            raise ValueError("storage.state.backend postgresql needs a dsn")
        # Imported here: psycopg is needed only by deployments that use PostgreSQL.
        from lightctl.store.state_pg import PgStateDB

        return await PgStateDB.open(storage.state.dsn, storage.audit_retention_days)
    return await SqliteStateDB.open(resolve(storage.state.path), storage.audit_retention_days)
