"""`lightctl serve` and `lightctl sim` as real processes, on a temp copy of the repository's district.

    district = DistrictCopy.of_repo(tmp_path / "district", report_s=10, batch_s=10)
    config = district.write_config("config.yaml", mqtt={"port": broker.port}, api={"port": free_port()})
    with LightctlProcess.serve(config, tmp_path / "serve.log") as serve:
        api = Api(serve.base_url(), token)
        wait_until(lambda: api.health()["devices"]["online"] > 0, 30, "devices online")

The copy has its own Modbus ports (free loopback ports instead of the inventory's fixed 150xx, so
tests can run beside a developer's `lightctl sim`) and, optionally, shorter report and batch
intervals so that every lamp is heard from within seconds. Processes run in their own session and
are stopped by their own pid only; leftovers are killed when the test session ends.
"""

from __future__ import annotations

import atexit
import copy
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import free_port

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")

# `python -c` bootstrap that runs the lightctl command line with the root logger at a given level
# (argv[1]); lightctl only calls logging.basicConfig, which then leaves the root logger as it is.
_LEVEL_BOOT = (
    "import logging, sys\n"
    "logging.basicConfig(level=sys.argv.pop(1), format='%(asctime)s %(levelname)s %(name)s: %(message)s')\n"
    "from lightctl.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)

_live: weakref.WeakSet[LightctlProcess] = weakref.WeakSet()


def wait_until(check: Callable[[], T], within_s: float, what: str, every_s: float = 0.2) -> T:
    """Poll `check` until it returns something truthy (returned); AssertionError after `within_s`.

    Exceptions from `check` (a server still starting) count as "not yet" until the deadline, when
    the last one is chained to the failure; an AssertionError from `check` fails at once.
    """
    deadline = time.monotonic() + within_s
    last_error: Exception | None = None
    while True:
        try:
            value = check()
        except AssertionError:
            raise  # a check that knows it can never succeed (a process that exited) fails at once
        except Exception as exc:
            last_error = exc
        else:
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s:g} s waiting for {what}") from last_error
        time.sleep(every_s)


# --- the district -------------------------------------------------------------------------------------


class DistrictCopy:
    """config.yaml, devices/ and schedules/ copied into `root`, ready to be edited per test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base_config: dict[str, Any] = yaml.safe_load((root / "config.yaml").read_text(encoding="utf-8"))
        self.modbus_ports: dict[str, int] = {}

    @classmethod
    def of_repo(cls, root: Path, *, report_s: int | None = None, batch_s: int | None = None) -> Self:
        """Copy the repository's district; give every Modbus endpoint a free port; optionally set
        every road's lamp report interval and every concentrator's batch interval (seconds)."""
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "config.yaml", root / "config.yaml")
        shutil.copytree(REPO / "devices", root / "devices")
        shutil.copytree(REPO / "schedules", root / "schedules")
        district = cls(root)
        district._rewrite_inventory(report_s, batch_s)
        return district

    def _rewrite_inventory(self, report_s: int | None, batch_s: int | None) -> None:
        devices = self.root / "devices"
        for path in sorted(devices.glob("*.yaml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            for section in ("gateways", "zones"):
                for item in data.get(section) or []:
                    if "port" in item:
                        item["port"] = self.modbus_ports[item["id"]] = self._unused_port()
            if report_s is not None:
                for road in data.get("roads") or []:
                    road["report_s"] = report_s
            if batch_s is not None:
                for conc in data.get("concentrators") or []:
                    conc["batch_s"] = batch_s
            path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")

    def _unused_port(self) -> int:
        # The kernel may hand the same free port out twice in a row; the inventory refuses that.
        taken = set(self.modbus_ports.values())
        while (port := free_port()) in taken:
            pass
        return port

    def inventory(self, name: str) -> dict[str, Any]:
        """A devices/<name>.yaml file as data (e.g. to pick roads and gateways for partitions)."""
        data: dict[str, Any] = yaml.safe_load((self.root / "devices" / f"{name}.yaml").read_text("utf-8"))
        return data

    def write_config(self, name: str, **sections: Any) -> Path:
        """A config file beside the copied config.yaml: its settings with `sections` merged in (dicts
        merge key by key, anything else replaces); its paths resolve against `root` as usual."""
        merged = _merge(copy.deepcopy(self.base_config), sections)
        path = self.root / name
        path.write_text(yaml.safe_dump(merged, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return path


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


# --- processes -------------------------------------------------------------------------------------------


class LightctlProcess:
    """One `lightctl <command>` subprocess; stdout and stderr go to `log_path`.

    `log_level` (e.g. "INFO", "DEBUG") runs it with the root logger at that level instead of
    lightctl's default (WARNING)."""

    def __init__(self, args: list[str], log_path: Path, *, log_level: str | None = None) -> None:
        boot = ["-c", _LEVEL_BOOT, log_level] if log_level else ["-m", "lightctl.cli"]
        self.command = [sys.executable, *boot, *args]
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        _live.add(self)

    @classmethod
    def serve(cls, config: Path, log_path: Path, *, log_level: str | None = None) -> Self:
        return cls(["serve", "-c", str(config)], log_path, log_level=log_level)

    @classmethod
    def sim(cls, config: Path, log_path: Path, faults: str = "") -> Self:
        args = ["sim", "-c", str(config)]
        if faults:
            args += ["--faults", faults]
        return cls(args, log_path)

    @property
    def config(self) -> Path:
        return Path(self.args[self.args.index("-c") + 1])

    def base_url(self) -> str:
        settings = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        api = settings.get("api") or {}
        return f"http://{api.get('host', '127.0.0.1')}:{api.get('port', 8000)}"

    def start(self) -> Self:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.config.parent,
                env=env,
                start_new_session=True,  # a Ctrl-C of the test run reaches pytest, which stops us
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_for_log(self, pattern: str, within_s: float) -> re.Match[str]:
        """The first match of `pattern` in the log; fails early if the process exits first."""

        def found() -> re.Match[str] | None:
            match = re.search(pattern, self.log())
            if match is None and not self.running:
                raise AssertionError(
                    f"{self.args[0]} exited ({self.proc and self.proc.returncode}):\n{self.log_tail()}"
                )
            return match

        try:
            match = wait_until(found, within_s, f"/{pattern}/ in {self.log_path}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log tail ---\n{self.log_tail()}") from None
        assert match is not None  # wait_until returns only a truthy value
        return match

    def wait_serving(self, within_s: float = 60.0) -> None:
        """Until GET /api/v1/health answers 200 (the API starts after storage and drivers)."""

        def healthy() -> bool:
            if not self.running:
                raise AssertionError(
                    f"serve exited ({self.proc and self.proc.returncode}):\n{self.log_tail()}"
                )
            try:
                return httpx.get(self.base_url() + "/api/v1/health", timeout=2, trust_env=False).is_success
            except httpx.HTTPError:
                return False

        try:
            wait_until(healthy, within_s, f"{self.base_url()}/api/v1/health")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log tail ---\n{self.log_tail()}") from None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        proc = self.proc
        if proc is None:
            return self.returncode
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.returncode = proc.returncode
        return self.returncode

    def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc is not None:
            self.returncode = proc.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_live):
        process.kill()


# --- the API -------------------------------------------------------------------------------------------


class Api:
    """A small synchronous client of one instance's API with a Bearer token."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url
        self.client = httpx.Client(base_url=base_url, headers=headers, timeout=15, trust_env=False)

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        return self.client.post(path, json=dict(body))

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/api/v1/health")
        return result

    def devices(self, **filters: Any) -> list[dict[str, Any]]:
        page: dict[str, Any] = self.get("/api/v1/devices", limit=10000, **filters)
        assert page["total"] == len(page["items"]), "more devices than one page"
        items: list[dict[str, Any]] = page["items"]
        return items

    def alarms(self, **filters: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("/api/v1/alarms", limit=1000, **filters)["items"]
        return items

    def metrics_text(self) -> str:
        response = self.client.get("/metrics")
        response.raise_for_status()
        return response.text

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of /metrics by (name, labels)."""
        samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return samples

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
