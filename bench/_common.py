"""What every benchmark shares: the one-line JSON result, machine facts, a private Mosquitto on a
free loopback port, and generated districts of any size written as real config files.

The repository root is put on sys.path first, so `lightctl` is importable when a script runs as
`python bench/<name>.py` (and gmqtt's own top-level `tests` package never shadows anything here).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"


def log(name: str, msg: str) -> None:
    print(f"[bench {name} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def emit(
    figure: str,
    runs: Sequence[float],
    unit: str,
    target: float,
    better: str,
    **extra: Any,
) -> dict[str, Any]:
    """Print the ONE JSON result line: the median of `runs` against `target`.

    better: "higher" (value must be >= target) or "lower" (value must be <= target)."""
    value = median(runs)
    met = value >= target if better == "higher" else value <= target
    line = {
        "figure": figure,
        "value": round(value, 4),
        "unit": unit,
        "target": target,
        "target_is": ">=" if better == "higher" else "<=",
        "met": bool(runs) and met,
        "runs": len(runs),
        "median": round(value, 4),
        "values": [round(v, 4) for v in runs],
        "machine": machine(),
        **extra,
    }
    print(json.dumps(line, ensure_ascii=False), flush=True)
    return line


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); the maximum for q=100."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 100)) - 1))
    return ordered[k]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(n: int) -> list[int]:
    """n distinct free ports (held open together while picking so none repeats)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class Mosquitto:
    """A private Mosquitto on a free loopback port, with limits raised for QoS 1 bursts.

    Never the shared broker on 1883: every benchmark starts its own and stops it."""

    def __init__(self) -> None:
        binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
        if binary is None:
            raise SystemExit(
                "mosquitto is not installed: run `make system-deps` (scripts/install-system-deps.sh)"
            )
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lightctl-bench-mosquitto-"))
        conf = [
            f"listener {self.port} {HOST}",
            "allow_anonymous true",
            "max_queued_messages 100000",
            "max_inflight_messages 1000",
            "max_connections -1",
            "persistence false",
            "log_dest none",
        ]
        if os.geteuid() == 0:
            conf.append("user root")
        (self.dir / "mosquitto.conf").write_text("\n".join(conf) + "\n")
        self._proc = subprocess.Popen(
            [binary, "-c", str(self.dir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "stderr.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        deadline = time.monotonic() + 15
        while not port_open(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                err = (self.dir / "stderr.log").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"private mosquitto did not start: {err[-400:]}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------------
# Generated districts
# ------------------------------------------------------------------------------------------------

M_PER_DEG_LAT = 111_194.93  # haversine with R = 6371 km; paths run north, so longitude never matters


@dataclass
class DistrictSpec:
    """A district written as config files: `roads` roads of `lamps_per_road` SLC-M1 lamps each (the
    first `concentrator_roads` of them behind one PLC concentrator each), optionally the repository's
    600 groups on 20 gateways (on `gateway_ports`)."""

    roads: int = 5
    lamps_per_road: int = 100
    spacing_m: float = 30.0
    concentrator_roads: int = 0
    batch_s: int = 60
    report_s: int | None = None
    groups: bool = False
    gateway_ports: list[int] = field(default_factory=list)
    mqtt_port: int = 1883
    api_port: int = 8000
    poll_interval_s: float = 30.0
    commands_in_flight: int = 1
    modbus_timeout_s: float = 1.0
    ack_timeout_s: float = 5.0
    telemetry_qos: int = 0
    extra_config: str = ""  # appended to config.yaml (tokens, thresholds)

    @property
    def lamps(self) -> int:
        return self.roads * self.lamps_per_road


def road_id(i: int) -> str:
    return f"r{i + 1:03d}"


def lamp_ids(spec: DistrictSpec, road: int) -> list[tuple[str, str]]:
    """(inventory id, MQTT id) of a road's lamps, as the loader numbers them."""
    return [
        (f"{road_id(road)}-{n:03d}", f"R{road + 1:03d}-{n:03d}") for n in range(1, spec.lamps_per_road + 1)
    ]


def conc_mqtt_id(road: int) -> str:
    return f"PLC-{road + 1:03d}"


def write_district(spec: DistrictSpec, folder: Path) -> Path:
    """Write config.yaml, devices/ and schedules/ for `spec` into `folder`; return config.yaml."""
    (folder / "devices").mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "devices" / "profiles", folder / "devices" / "profiles", dirs_exist_ok=True)
    shutil.copytree(ROOT / "schedules", folder / "schedules", dirs_exist_ok=True)
    var = folder / "var"
    var.mkdir(exist_ok=True)
    config = f"""
site: {{id: bench, name: bench, lat: 28.68, lon: 115.89, timezone: Asia/Shanghai}}
mqtt:
  host: {HOST}
  port: {spec.mqtt_port}
  version: "3.1.1"
  client_id: lightctl-bench-{os.getpid()}
  ack_timeout_s: {spec.ack_timeout_s}
  telemetry_qos: {spec.telemetry_qos}
modbus:
  poll_interval_s: {spec.poll_interval_s}
  timeout_s: {spec.modbus_timeout_s}
  commands_in_flight: {spec.commands_in_flight}
storage:
  state: {{backend: sqlite, path: {var / "state.db"}}}
  telemetry: {{backend: sqlite, path: {var / "telemetry.db"}, buffer_path: {var / "buffer"}}}
api: {{host: {HOST}, port: {spec.api_port}}}
alerts: {{mqtt: true, webhooks: []}}
devices_dir: devices
schedules_dir: schedules
"""
    (folder / "config.yaml").write_text(config + spec.extra_config)
    lines = ["concentrators:"] if spec.concentrator_roads else []
    for r in range(spec.concentrator_roads):
        lines.append(
            f"  - {{id: plc-{r + 1:03d}, mqtt_id: {conc_mqtt_id(r)}, batch_s: {spec.batch_s},"
            f" at: [28.0, {115.0 + r * 0.001:.4f}]}}"
        )
    lines.append("roads:")
    length_deg = ((spec.lamps_per_road - 1) * spec.spacing_m + spec.spacing_m / 2) / M_PER_DEG_LAT
    for r in range(spec.roads):
        lon = 115.0 + r * 0.001
        extra = f", concentrator: plc-{r + 1:03d}" if r < spec.concentrator_roads else ""
        if spec.report_s is not None:
            extra += f", report_s: {spec.report_s}"
        lines.append(
            f"  - {{id: {road_id(r)}, name: road {r + 1}, class: {'arterial' if r % 2 == 0 else 'secondary'},"
            f" profile: slc-m1, rated_w: {100 + 10 * (r % 6)}, spacing_m: {spec.spacing_m},"
            f" id_prefix: {road_id(r)}, mqtt_prefix: R{r + 1:03d}{extra},"
            f" path: [[28.0, {lon:.4f}], [{28.0 + length_deg:.7f}, {lon:.4f}]]}}"
        )
    (folder / "devices" / "roads.yaml").write_text("\n".join(lines) + "\n")
    plans = ["plans:"]
    arterial = [f"road:{road_id(r)}" for r in range(spec.roads) if r % 2 == 0]
    secondary = [f"road:{road_id(r)}" for r in range(spec.roads) if r % 2 == 1]
    if arterial:
        plans += ["  - id: arterial-roads", f"    targets: [{', '.join(arterial)}]"]
        plans += ["    rules: [{program: arterial-dimming}]"]
    if secondary:
        plans += ["  - id: secondary-roads", f"    targets: [{', '.join(secondary)}]"]
        plans += ["    rules: [{program: secondary-dimming}]"]
    if spec.groups:
        text = (ROOT / "devices" / "groups.yaml").read_text()
        ports = iter(spec.gateway_ports or [15021 + i for i in range(20)])
        out = []
        for line in text.splitlines():
            if "port: 150" in line:
                head, tail = line.split("port: ", 1)
                line = f"{head}port: {next(ports)}{tail[5:]}"
            out.append(line)
        (folder / "devices" / "groups.yaml").write_text("\n".join(out) + "\n")
        plans += ["  - id: zhonghua", "    targets: [kind:group]"]
        plans += [
            "    rules: [{day_type: [holiday, event], program: zhonghua-holiday}, {program: zhonghua-half-night}]"
        ]
    (folder / "schedules" / "plans.yaml").write_text("\n".join(plans) + "\n")
    return folder / "config.yaml"


def load_district(spec: DistrictSpec, folder: Path) -> Any:
    from lightctl.config.loader import load

    return load(write_district(spec, folder))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
