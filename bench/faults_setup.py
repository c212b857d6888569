"""The stage of bench/faults.py: a private Mosquitto and a reduced copy of the district.

The inventory is cut down from the repository's own (same roads, plans, programs, calendar and
profiles), so every schedule step of the real district runs, on fewer devices: some lamps of each
road (those of 环城西路 behind its concentrator, the 60 W school lamp without a dimmable driver),
10 groups on each of three gateways (LED groups, groups without an LED driver and a mixed bus) and
two facade zones. Gateways and facades are moved to free loopback ports; storage goes to a temp dir.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from lightctl.config.loader import District
from lightctl.config.settings import Control, Mqtt
from lightctl.demo import demo_settings, remap_modbus
from lightctl.model import Concentrator, Gateway, Road, Zone

HOST = "127.0.0.1"

# Lamps kept per road (the first N along it), groups per gateway, facades kept.
ROAD_LAMPS = {"hengan-lu": 14, "zishan-lu": 10, "dezheng-lu": 12, "zhengde-lu": 8, "huanchengxi-lu": 15}
EXTRA_LAMPS = ("zd-school",)  # 60 W on a fixed driver: not dimmable
GATEWAY_UNITS = {
    "zhg-01": range(1, 11),  # LED groups, 150 W + 400 W
    "zhg-09": range(21, 31),  # units 25-30 without an LED driver: a mixed bus
    "zhg-17": range(1, 11),  # no LED drivers, 120 W + 300 W
}
FACADES = ("admin-centre", "gymnasium")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def private_mosquitto() -> Iterator[int]:
    """A Mosquitto of our own on a free loopback port (never the shared 1883); yields its port."""
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
    if binary is None:
        raise SystemExit("bench/faults.py needs Mosquitto: apt-get install mosquitto")
    workdir = Path(tempfile.mkdtemp(prefix="lightctl-bench-mosquitto-"))
    port = free_port()
    conf = workdir / "mosquitto.conf"
    user = "user root\n" if os.geteuid() == 0 else ""  # as root it would drop to `mosquitto`
    conf.write_text(f"{user}listener {port} {HOST}\nallow_anonymous true\nmax_queued_messages 100000\n")
    log = (workdir / "mosquitto.log").open("wb")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not _port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"private Mosquitto did not start; see {workdir / 'mosquitto.log'}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def reduced_district(district: District) -> District:
    """The district with only the bench's devices (ids, addresses and plans unchanged)."""
    keep: set[str] = set(EXTRA_LAMPS) | set(FACADES)
    roads: dict[str, Road] = {}
    for road_id, count in ROAD_LAMPS.items():
        road = district.roads[road_id]
        lamps = tuple(road.lamps[:count]) + tuple(i for i in EXTRA_LAMPS if i in road.lamps)
        keep.update(lamps)
        roads[road_id] = dataclasses.replace(road, lamps=lamps)
    gateways: dict[str, Gateway] = {}
    for gw_id, units in GATEWAY_UNITS.items():
        gw = district.gateways[gw_id]
        members = tuple(d for d in gw.units if district.devices[d].unit_id in units)
        keep.update(members)
        gateways[gw_id] = dataclasses.replace(gw, units=members)
    devices = {i: d for i, d in district.devices.items() if i in keep}
    concentrators: dict[str, Concentrator] = {
        c.id: dataclasses.replace(c, lamps=tuple(i for i in c.lamps if i in keep))
        for c in district.concentrators.values()
    }
    zones: dict[str, Zone] = {
        z.id: dataclasses.replace(z, devices=tuple(i for i in z.devices if i in keep))
        for z in district.zones.values()
        if any(i in keep for i in z.devices)
    }
    return dataclasses.replace(
        district, devices=devices, roads=roads, gateways=gateways, concentrators=concentrators, zones=zones
    )


def bench_district(
    district: District,
    workdir: Path,
    broker_port: int,
    modbus_ports: dict[str, int],
    ack_timeout_s: float,
    wire_timeout_s: float,
) -> District:
    """The reduced district pointed at the bench's broker, simulators and temp storage.

    The MQTT acknowledgement and Modbus request timeouts are real seconds in the drivers (a round
    trip does not get faster with the clock), so on a fast clock the bench shortens them to stay a
    few clock seconds long, as they are at speed 1.
    """
    remapped = remap_modbus(district, modbus_ports)
    settings = demo_settings(district.settings, workdir, broker_port)
    settings = settings.model_copy(
        update={
            "mqtt": Mqtt(
                host=HOST, port=broker_port, version="5", client_id=f"lightctl-bench-{os.getpid()}",
                ack_timeout_s=ack_timeout_s,
            ),
            "modbus": district.settings.modbus.model_copy(update={"timeout_s": wire_timeout_s}),
            "control": Control(**district.settings.control.model_dump()),
        }
    )  # fmt: skip
    return dataclasses.replace(remapped, settings=settings, base_dir=workdir)


def modbus_targets(district: District) -> list[str]:
    """Ids of the Modbus servers the simulator runs: gateways and facade controllers."""
    facades = [d.id for d in district.devices.values() if d.kind == "facade"]
    return [*district.gateways, *facades]
