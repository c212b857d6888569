"""The demo: the whole district on one machine, with nothing installed.

An embedded MQTT broker, the simulated lamps and Modbus controllers (with a few faults, so the alarm
pages have something to show), storage in a temporary folder, and the real service against them.
The simulators listen on free loopback ports; the inventory is remapped onto those ports.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lightctl.config.loader import District
from lightctl.config.settings import Mqtt, Settings

# A few faults a crew would meet on an ordinary night, in the simulators' fault syntax
# (lightctl/sim/slc_faults.py, lightctl/sim/modbus_faults.py).
DEMO_FAULTS = ",".join(
    [
        "lamp_failure:ha-012",
        "relay_stuck_off:zs-021",
        "voltage_high:dz-030",
        "door_open:zhg-07-u03",
        "leakage:zhg-11-u18",
        "channel_fault:gymnasium;n=2",
    ]
)


DEMO_POLL_REAL_S = 2.0


def demo_settings(settings: Settings, workdir: Path, broker_port: int, speed: float = 1.0) -> Settings:
    """The configured settings pointed at the demo's broker and temporary storage.

    The demo's gateways, simulators, broker and lightctl share one process (one core). Polled every
    30 clock seconds at 60x, 600 groups would be 3,600 Modbus requests a second, more than the
    rest together; the poll is kept at least DEMO_POLL_REAL_S real seconds apart instead."""
    storage = settings.storage
    modbus = settings.modbus
    poll_s = max(modbus.poll_interval_s, min(3600.0, DEMO_POLL_REAL_S * speed))
    return settings.model_copy(
        update={
            "mqtt": Mqtt(host="127.0.0.1", port=broker_port, version="3.1.1", client_id="lightctl-demo"),
            "modbus": modbus.model_copy(update={"poll_interval_s": poll_s}),
            "storage": storage.model_copy(
                update={
                    "state": storage.state.model_copy(
                        update={"backend": "sqlite", "path": str(workdir / "state.db")}
                    ),
                    "telemetry": storage.telemetry.model_copy(
                        update={
                            "backend": "sqlite",
                            "path": str(workdir / "telemetry.db"),
                            "buffer_path": str(workdir / "buffer"),
                        }
                    ),
                }
            ),
        }
    )


def remap_modbus(district: District, ports: dict[str, int]) -> District:
    """The district with its gateways and facade controllers at 127.0.0.1:<port>."""
    gateways = {
        gid: dataclasses.replace(gw, host="127.0.0.1", port=ports[gid]) if gid in ports else gw
        for gid, gw in district.gateways.items()
    }
    devices = {}
    for dev_id, dev in district.devices.items():
        key = dev.gateway or dev_id
        if dev.host is not None and key in ports:
            dev = dataclasses.replace(dev, host="127.0.0.1", port=ports[key])
        devices[dev_id] = dev
    return dataclasses.replace(district, gateways=gateways, devices=devices)
