"""A whole lightctl installation on loopback, as real processes: `lightctl sim` (the field devices)
and `lightctl serve` (the service) on a private broker, with a small generated configuration.

    rig = Rig(tmp_path, broker_port=mosquitto.port)
    rig.start_sim()
    rig.start_serve()
    rig.wait_for(lambda: rig.health()["devices"]["online"] == rig.device_count, what="all online")
    rig.kill_serve(); rig.start_serve()
    rig.close()

The configuration is a temp dir holding config.yaml, devices/ (the repo's profiles and a small
inventory on free loopback ports) and schedules/ (the repo's, with plan targets that name roads
this inventory lacks left out). Bearer tokens, one per role, are configured as argon2 hashes;
`rig.tokens[role]` is the clear token.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from lightctl.api.auth import hash_token
from tests.reliability.district import FACADE_IDS, REPO, Inventory, gateway_id, write_district
from tests.servers import HOST, free_port, port_open

__all__ = ["HOST", "REPO", "Inventory", "Proc", "Rig", "group_matches", "iso_in", "lamp_matches"]

T = TypeVar("T")

ROLES = ("viewer", "maintenance", "operator", "office", "admin")
START_TIMEOUT_S = 30.0
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


@dataclass
class Proc:
    """A lightctl subprocess with its output in a log file."""

    name: str
    argv: list[str]
    log_path: Path
    cwd: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
            log.flush()
            # A developer's proxy must not capture the service's loopback traffic (InfluxDB writes).
            env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
            env["PYTHONUNBUFFERED"] = "1"
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=env,
            )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def signal(self, sig: signal.Signals) -> None:
        if self.running and self.popen is not None:
            self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut would end it."""
        popen, self.popen = self.popen, None
        if popen is not None and popen.poll() is None:
            popen.kill()
            popen.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful), SIGKILL after `timeout`; the exit status."""
        popen, self.popen = self.popen, None
        if popen is None:
            return None
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(10)
        return popen.returncode

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Rig:
    """Config dir, `lightctl sim` and `lightctl serve` for one test."""

    root: Path
    broker_port: int
    inventory: Inventory = field(default_factory=Inventory)
    telemetry: dict[str, Any] | None = None  # storage.telemetry (default: sqlite in var/)
    modbus: dict[str, Any] = field(
        default_factory=lambda: {"poll_interval_s": 1.0, "timeout_s": 0.5, "failed_polls_for_comm_loss": 3}
    )
    control: dict[str, Any] = field(default_factory=lambda: {"retry_delays_s": [1, 2, 4]})
    mqtt: dict[str, Any] = field(default_factory=dict)  # more settings of the mqtt section
    # Gateways (or facades) the simulator must serve on another port than `serve` polls, so that a
    # test can put its own server (a hung or garbage-answering gateway) on the polled port.
    sim_elsewhere: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_dir = self.root / "config"
        self.api_port = free_port()
        self.api_url = f"http://{HOST}:{self.api_port}"
        self.tokens = {role: f"rel-{role}-{os.urandom(12).hex()}" for role in ROLES}
        self._hashes = {role: hash_token(token) for role, token in self.tokens.items()}
        inv = self.inventory
        self.gateway_ports = {gateway_id(n): free_port() for n in range(1, inv.gateways + 1)}
        self.facade_ports = {FACADE_IDS[n]: free_port() for n in range(inv.facades)}
        self.sim_ports = {
            target: (free_port() if target in self.sim_elsewhere else port)
            for target, port in {**self.gateway_ports, **self.facade_ports}.items()
        }
        self.config_path = self.write_config(self.config_dir, self.gateway_ports | self.facade_ports)
        # The simulator's own copy: identical but for the ports of `sim_elsewhere`.
        self.sim_config_path = self.write_config(self.root / "sim-config", self.sim_ports)
        self.sim = Proc("sim", self._lightctl("sim", self.sim_config_path), self.root / "sim.log", self.root)
        self.serve = Proc(
            "serve", self._lightctl("serve", self.config_path), self.root / "serve.log", self.root
        )
        self._clients: dict[str, httpx.Client] = {}

    # --- configuration ---------------------------------------------------------------------------

    @property
    def lamp_ids(self) -> list[str]:
        inv = self.inventory
        return [f"ha-{n:03d}" for n in range(1, inv.lamps + 1)] + [
            f"hcx-{n:03d}" for n in range(1, inv.concentrator_lamps + 1)
        ]

    @property
    def group_ids(self) -> list[str]:
        inv = self.inventory
        return [
            f"{gateway_id(g)}-u{u:02d}" for g in range(1, inv.gateways + 1) for u in range(1, inv.units + 1)
        ]

    @property
    def facade_ids(self) -> list[str]:
        return list(self.facade_ports)

    @property
    def device_count(self) -> int:
        return len(self.lamp_ids) + len(self.group_ids) + len(self.facade_ids)

    def write_config(self, where: Path, ports: Mapping[str, int]) -> Path:
        return write_district(where, self.inventory, ports, self.settings_yaml())

    def settings_yaml(self) -> dict[str, Any]:
        storage: dict[str, Any] = {
            "state": {"backend": "sqlite", "path": str(self.root / "var" / "state.db")},
            "telemetry": {
                "backend": "sqlite",
                "path": str(self.root / "var" / "telemetry.db"),
                "buffer_path": str(self.root / "var" / "buffer"),
            },
        }
        if self.telemetry is not None:
            storage["telemetry"] = {"buffer_path": str(self.root / "var" / "buffer"), **self.telemetry}
        return {
            "site": {
                "id": "reltest",
                "name": "可靠性测试",
                "lat": 28.68,
                "lon": 115.89,
                "timezone": "Asia/Shanghai",
            },
            "mqtt": {
                "host": HOST,
                "port": self.broker_port,
                "version": "5",
                "client_id": f"lightctl-rel-{self.api_port}",
                "keepalive_s": 5,
                **self.mqtt,
            },
            "modbus": self.modbus,
            "control": self.control,
            "storage": storage,
            "api": {"host": HOST, "port": self.api_port},
            "tokens": [
                {"name": f"rel-{role}", "role": role, "hash": self._hashes[role]} for role in self.tokens
            ],
            "alerts": {"mqtt": True, "webhooks": []},
            "devices_dir": "devices",
            "schedules_dir": "schedules",
        }

    # --- processes -------------------------------------------------------------------------------

    @staticmethod
    def _lightctl(command: str, config: Path) -> list[str]:
        return [sys.executable, "-m", "lightctl.cli", command, "-c", str(config)]

    def start_sim(self, faults: str = "") -> None:
        argv = self._lightctl("sim", self.sim_config_path)
        if faults:
            argv += ["--faults", faults]
        self.sim.argv = argv
        self.sim.start()
        ports = [p for t, p in self.sim_ports.items()]
        self.wait_for(
            lambda: (
                self._alive(self.sim)
                and "lightctl sim:" in self.sim.tail(5)
                and all(port_open(HOST, p) for p in ports)
            ),
            timeout=START_TIMEOUT_S,
            what="lightctl sim listening",
        )

    def start_serve(self) -> None:
        self.serve.start()
        self.wait_for(
            lambda: self._alive(self.serve) and self._health_ok(),
            timeout=START_TIMEOUT_S,
            what="serve healthy",
        )

    def kill_serve(self) -> None:
        self.serve.kill()
        self._drop_clients()

    def stop_serve(self) -> int | None:
        self._drop_clients()
        return self.serve.stop()

    def close(self) -> None:
        self._drop_clients()
        self.serve.stop(timeout=5)
        self.sim.stop(timeout=5)

    def _alive(self, proc: Proc) -> bool:
        if not proc.running:
            raise AssertionError(f"lightctl {proc.name} exited; its log:\n{proc.tail()}")
        return True

    def logs(self) -> str:
        return f"--- serve log:\n{self.serve.tail()}\n--- sim log:\n{self.sim.tail(20)}"

    # --- API -------------------------------------------------------------------------------------

    def client(self, role: str = "admin") -> httpx.Client:
        if role not in self._clients:
            self._clients[role] = httpx.Client(
                base_url=self.api_url,
                headers={"Authorization": f"Bearer {self.tokens[role]}"},
                timeout=10.0,
                trust_env=False,  # a developer's proxy must not capture loopback traffic
            )
        return self._clients[role]

    def _drop_clients(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def _health_ok(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/api/v1/health", timeout=2.0, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str, role: str = "admin", **params: Any) -> Any:
        response = self.client(role).get(f"/api/v1{path}", params=params)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def post(
        self, path: str, body: Mapping[str, Any], role: str = "admin", expect: int | None = None
    ) -> httpx.Response:
        response = self.client(role).post(f"/api/v1{path}", json=dict(body))
        if expect is not None:
            assert response.status_code == expect, f"POST {path}: {response.status_code} {response.text}"
        return response

    def health(self) -> dict[str, Any]:
        response = httpx.get(f"{self.api_url}/api/v1/health", timeout=5.0, trust_env=False)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def metrics(self) -> str:
        response = httpx.get(f"{self.api_url}/metrics", timeout=5.0, trust_env=False)
        assert response.status_code == 200, response.text
        return response.text

    def devices(self, **params: Any) -> dict[str, dict[str, Any]]:
        body = self.get("/devices", limit=10000, **params)
        return {d["id"]: d for d in body["items"]}

    def alarms(self, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("/alarms", limit=1000, **params)["items"]
        return items

    def override(
        self, targets: list[str], minutes: float = 60, role: str = "operator", **state: Any
    ) -> dict[str, Any]:
        body = {"targets": targets, "until": iso_in(minutes * 60), "reason": "reliability test", **state}
        result: dict[str, Any] = self.post("/overrides", body, role=role, expect=201).json()
        return result

    # --- waiting ---------------------------------------------------------------------------------

    def within(self, predicate: Callable[[], object], timeout: float, every: float = 0.25) -> float | None:
        """Seconds until `predicate` holds, or None if it did not within `timeout` (no failure: the
        caller reports every broken promise of a scenario together)."""
        start = time.monotonic()
        while True:
            try:
                if predicate():
                    return time.monotonic() - start
            except (httpx.HTTPError, AssertionError, KeyError) as exc:
                if isinstance(exc, AssertionError) and "exited; its log" in str(exc):
                    raise
            if time.monotonic() - start > timeout:
                return None
            time.sleep(every)

    def wait_for(
        self, predicate: Callable[[], T], timeout: float = 30.0, what: str = "condition", every: float = 0.25
    ) -> T:
        """Poll `predicate` until it returns something truthy; fail with the logs after `timeout`."""
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            try:
                value = predicate()
                if value:
                    return value
            except (httpx.HTTPError, AssertionError, KeyError) as exc:
                if isinstance(exc, AssertionError) and "exited; its log" in str(exc):
                    raise
                last_error = exc
            if time.monotonic() > deadline:
                why = f" (last error: {last_error!r})" if last_error else ""
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{why}\n{self.logs()}")
            time.sleep(every)


def iso_in(seconds: float) -> str:
    """An ISO 8601 time `seconds` from now, with an offset."""
    import datetime as dt

    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat()


def lamp_matches(device: Mapping[str, Any], on: bool, level: int | None = None) -> bool:
    """A lamp's reported state (the controller's belief, from its latest report) is `on` / `level`."""
    if device["online"] is not True or device["on"] is not on:
        return False
    return level is None or not on or device["level"] == level


def group_matches(device: Mapping[str, Any], k1: bool, k2: bool) -> bool:
    return device["online"] is True and device["k1"] is k1 and device["k2"] is k2
