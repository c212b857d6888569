"""`lightctl demo` as a user runs it: the whole district live, and a night going by at 60x.

Watched only through the HTTP API, as an operator's screen would: every device online with live
power, lamps on at sunset, the 23:00 dimming step, K2 off at 23:30, and a clean exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import free_port

REPO = Path(__file__).resolve().parents[1]
VIEWER = {"Authorization": "Bearer demo-viewer"}
pytestmark = pytest.mark.slow


class Demo:
    def __init__(self, start: str, duration: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["--port", str(self.port), "--speed", "60", "--start", start, "--duration", str(duration)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lightctl.cli", "demo", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.client = httpx.Client(base_url=self.url, headers=VIEWER, timeout=10)

    def devices(self, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.client.get(
                "/api/v1/devices", params={**params, "limit": 1000, "offset": offset}
            ).json()
            items.extend(page["items"])
            offset += len(page["items"])
            if offset >= page["total"] or not page["items"]:
                return items

    def wait(self, check: Callable[[], bool], within_s: float, what: str) -> None:
        deadline = time.monotonic() + within_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"demo exited early ({self.proc.returncode}):\n{self.output()}")
            try:
                if check():
                    return
            except (httpx.HTTPError, KeyError) as exc:
                last = exc
            time.sleep(0.5)
        raise AssertionError(f"timed out after {within_s} s waiting for {what} (last error: {last})")

    def output(self) -> str:
        if self.proc.poll() is None:
            return ""
        return self.proc.stdout.read() if self.proc.stdout else ""

    def close(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise


@pytest.fixture
def evening() -> Iterator[Demo]:
    """A workday evening a few clock minutes before sunset (17:19 on 26 Nov)."""
    demo = Demo("2026-11-26T17:12", duration=120)
    yield demo
    demo.close()


@pytest.fixture
def late_evening() -> Iterator[Demo]:
    demo = Demo("2026-11-26T22:57", duration=150)
    yield demo
    demo.close()


def test_health_answers_without_a_token_and_devices_need_one(evening: Demo) -> None:
    evening.wait(lambda: httpx.get(f"{evening.url}/api/v1/health").status_code == 200, 30, "health")
    health = httpx.get(f"{evening.url}/api/v1/health").json()
    assert health["devices"]["total"] == 935
    assert httpx.get(f"{evening.url}/api/v1/devices").status_code == 401


def test_whole_district_online_and_lit_at_sunset(evening: Demo) -> None:
    evening.wait(lambda: all(d["online"] for d in evening.devices()), 45, "all 935 devices online")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for dev in evening.devices():
        by_kind.setdefault(dev["kind"], []).append(dev)
    assert {k: len(v) for k, v in by_kind.items()} == {"lamp": 331, "group": 600, "facade": 4}

    def lamps_lit() -> bool:
        lamps = evening.devices(kind="lamp")
        healthy = [d for d in lamps if d["open_alarms"] == 0]
        return len(healthy) > 300 and all(d["on"] and (d["power_w"] or 0) > 40 for d in healthy)

    evening.wait(lamps_lit, 40, "road lamps on with live power after sunset")

    def groups_lit() -> bool:
        groups = [d for d in evening.devices(kind="group") if d["open_alarms"] == 0]
        return all(d["k1"] and d["k2"] and (d["power_w"] or 0) > 100 for d in groups)

    evening.wait(groups_lit, 40, "中华灯 K1 and K2 on with live power")
    facades = evening.devices(kind="facade")
    assert all(d["online"] and d["power_w"] is not None for d in facades)  # weekday scene starts at 19:00


def test_a_night_goes_by_at_60x(late_evening: Demo) -> None:
    demo = late_evening

    def arterial_levels() -> set[int]:
        lamps = demo.devices(road="hengan-lu")
        return {d["level"] for d in lamps if d["online"] and d["open_alarms"] == 0}

    demo.wait(lambda: arterial_levels() == {70}, 60, "恒安路 dimmed to 70 % after 23:00")

    def half_night() -> bool:
        groups = [d for d in demo.devices(kind="group") if d["open_alarms"] == 0]
        return bool(groups) and all(d["k1"] and not d["k2"] for d in groups)

    demo.wait(half_night, 90, "K2 (side heads) off after 23:30, K1 still on")
    demo.close()
    assert demo.proc.returncode == 0


def test_demo_stops_by_itself_after_its_duration() -> None:
    demo = Demo("2026-11-26T20:00", duration=6)
    try:
        demo.proc.wait(45)
    finally:
        demo.close()
    assert demo.proc.returncode == 0
    assert "demo-operator" in demo.output()
