"""The stores as app.py builds them from settings: paths relative to the configuration directory."""

from __future__ import annotations

import time
from pathlib import Path

from lightctl.config.settings import Storage, TelemetryStore
from lightctl.model import Reading
from lightctl.store import factory


async def test_configured_sqlite_stores_are_built_under_the_config_dir(tmp_path: Path) -> None:
    def resolve(relative: str) -> Path:
        return tmp_path / relative

    storage = Storage(telemetry=TelemetryStore(path="var/t.db", buffer_path="var/buf", flush_s=0.05))
    writer = await factory.open_telemetry(storage.telemetry, resolve, {"ha-001": "lamp"})
    try:
        # Recent readings: the writer's maintenance applies the 30-day raw retention at once.
        now = time.time()
        writer.readings([Reading("ha-001", now - 100 + i, i, {"power": 10.0 + i}) for i in range(50)])
        await writer.flush()
        stored = await writer.backend.raw("ha-001", 0, 2e9)
    finally:
        await writer.stop()
        await writer.backend.close()
    assert [r.values["power"] for r in stored] == [10.0 + i for i in range(50)]
    assert writer.status().written == 50
    assert (tmp_path / "var" / "t.db").exists()
    assert (tmp_path / "var" / "buf" / "cursor").exists()

    state = await factory.open_state(storage, resolve)
    await state.close()
    assert (tmp_path / "var" / "state.db").exists()
