"""Two `lightctl serve` instances, each owning half the district, on one Mosquitto and one PostgreSQL
state database (docs/scaling.md), with one `lightctl sim` playing every field device.

Checked: each instance lists, polls and hears only its own devices, all online; every telemetry
message the field sent (counted by an independent subscriber on the broker) was ingested and stored
by exactly one instance and neither drops the other's as unknown; alarms raised by either are seen
through both APIs, once; an override created through one instance for the other's device is
applied by the other (it picks overrides up from the shared database every 2 s), and an emergency
declared through one reaches the other's lamps.

Independent properties are collected and reported together, so one run shows every problem.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
from argon2 import PasswordHasher

from lightctl.config.loader import District, load
from tests.procs import Api, DistrictCopy, LightctlProcess, wait_until
from tests.servers import Mosquitto, free_port
from tests.store.conftest import PgSchema

pytestmark = pytest.mark.slow

TOKEN = "scale-out-test-admin-token"
# Cheap argon2 parameters: verification reads them from the hash (config.yaml holds only hashes).
TOKEN_HASH = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(TOKEN)

HALVES = {
    "a": {
        "roads": ["hengan-lu", "huanchengxi-lu"],  # the concentrator's lamps go with 环城西路
        "gateways": [f"zhg-{n:02d}" for n in range(1, 11)],
        "zones": ["admin-centre", "longcheng"],
    },
    "b": {
        "roads": ["zishan-lu", "dezheng-lu", "zhengde-lu"],
        "gateways": [f"zhg-{n:02d}" for n in range(11, 21)],
        "zones": ["natatorium", "gymnasium"],
    },
}
# One injected fault per instance, plus a Modbus one: (fault spec, alarm type, device, owner).
FAULTS = [
    ("tilt:ha-005", "pole_tilt", "ha-005", "a"),
    ("tilt:dz-005", "pole_tilt", "dz-005", "b"),
    ("door_open:zhg-15-u03", "door_open", "zhg-15-u03", "b"),
]
OVERRIDDEN = "zs-010"  # B's lamp, overridden through A
OVERRIDE_LEVEL = 37  # no program uses it
EMERGENCY_PROBE = "ha-010"  # A's lamp, switched by an emergency declared through B


def owned(district: District, half: dict[str, list[str]]) -> set[str]:
    """The devices a partition names, worked out here from the inventory (not lightctl's code)."""
    return {
        d.id
        for d in district.devices.values()
        if d.road in half["roads"] or d.gateway in half["gateways"] or d.zone in half["zones"]
    }


class FieldCounter:
    """Counts every lamp reading the broker delivers (direct and in concentrator batches)."""

    def __init__(self, host: str, port: int, wire_to_id: dict[str, str]) -> None:
        self.wire_to_id = wire_to_id
        self.readings: list[tuple[str, int]] = []  # (inventory id, seq)
        self.unparsed = 0
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"field-counter-{port}")
        self.client.on_connect = self._connected
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._message
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError("the counting subscriber did not get its SUBACK")

    def _connected(self, client: paho.Client, *args: Any) -> None:
        client.subscribe([("slc/+/up/telemetry", 0), ("slc/gw/+/up/telemetry", 0)])

    def _message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            doc = json.loads(message.payload)
            parts = message.topic.split("/")
            entries = doc["lamps"] if parts[1] == "gw" else [dict(doc, dev=parts[1])]
            found = [(self.wire_to_id[e["dev"]], int(e["seq"])) for e in entries]
        except (ValueError, KeyError, TypeError):
            self.unparsed += 1
            return
        with self._lock:
            self.readings.extend(found)

    def snapshot(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self.readings)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Instance:
    name: str
    config: Path
    var: Path
    devices: set[str]
    process: LightctlProcess
    api: Api = field(init=False)

    def stored_readings(self) -> list[tuple[str, int]]:
        """(device, seq) of every reading in this instance's telemetry database."""
        with sqlite3.connect(f"file:{self.var / 'telemetry.db'}?mode=ro", uri=True) as db:
            return [(d, s) for d, s in db.execute("SELECT device, seq FROM readings")]

    def metric(self, name: str, **labels: str) -> float:
        return self.api.metrics().get((name, frozenset(labels.items())), 0.0)


def later(minutes: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat()


def test_two_instances_share_the_district(mosquitto: Mosquitto, pg_schema: PgSchema, tmp_path: Path) -> None:
    district_copy = DistrictCopy.of_repo(tmp_path / "district", report_s=10, batch_s=10)
    whole = load(district_copy.root / "config.yaml")
    common: dict[str, Any] = {
        "modbus": {"poll_interval_s": 5},
        "tokens": [{"name": "ops", "role": "admin", "hash": TOKEN_HASH}],
        "alerts": {"mqtt": True, "webhooks": []},
    }
    instances: dict[str, Instance] = {}
    for name, half in HALVES.items():
        config = district_copy.write_config(
            f"config-{name}.yaml",
            mqtt={"host": mosquitto.host, "port": mosquitto.port, "client_id": f"lightctl-{name}"},
            api={"port": free_port()},
            storage={
                "state": {"backend": "postgresql", "dsn": pg_schema.dsn},
                "telemetry": {
                    "backend": "sqlite",
                    "path": f"var-{name}/telemetry.db",
                    "buffer_path": f"var-{name}/buffer",
                    "flush_s": 0.5,
                },
            },
            partition=half,
            **common,
        )
        process = LightctlProcess.serve(config, tmp_path / f"serve-{name}.log", log_level="INFO")
        instances[name] = Instance(name, config, config.parent / f"var-{name}", owned(whole, half), process)
    a, b = instances["a"], instances["b"]
    assert a.devices
    assert b.devices
    assert not a.devices & b.devices
    assert a.devices | b.devices == set(whole.devices)  # the halves cover the district

    sim_config = district_copy.write_config(
        "config-sim.yaml", mqtt={"host": mosquitto.host, "port": mosquitto.port}
    )
    sim = LightctlProcess.sim(sim_config, tmp_path / "sim.log", faults=",".join(f for f, *_ in FAULTS))
    wire_to_id = {d.mqtt_id: d.id for d in whole.devices.values() if d.mqtt_id}
    counter = FieldCounter(mosquitto.host, mosquitto.port, wire_to_id)
    problems: list[str] = []
    try:
        for inst in instances.values():  # both at once: they migrate the shared schema together
            inst.process.start()
        for inst in instances.values():
            inst.process.wait_serving()
            inst.api = Api(inst.process.base_url(), TOKEN)
            # Subscribed before the field talks, so that every message reaches its instance.
            inst.process.wait_for_log(rf"mqtt lightctl-{inst.name}: connected to", 30)
        sim.start()
        sim.wait_for_log(r"lightctl sim: \d+ lamps", 60)

        # --- each instance handles its own devices, all online ---------------------------------------
        for inst in instances.values():
            listed = {d["id"] for d in inst.api.devices()}
            if listed != inst.devices:
                problems.append(
                    f"{inst.name} lists {len(listed)} devices: {len(listed - inst.devices)} not its own, "
                    f"{len(inst.devices - listed)} of its own missing"
                )

            def all_online(inst: Instance = inst) -> bool:
                return all(d["online"] for d in inst.api.devices())

            wait_until(all_online, 90, f"every device of instance {inst.name} online")

        # --- alarms from both, through either API ------------------------------------------------------
        def alarm_ids(api: Api) -> dict[tuple[str, str], list[int]]:
            """Alarm ids by (type, device) of every injected fault; empty until all are there."""
            found: dict[tuple[str, str], list[int]] = {}
            for _, kind, device, _ in FAULTS:
                items = api.alarms(type=kind, device=device)
                if not items:
                    return {}
                found[(kind, device)] = [x["id"] for x in items]
            return found

        seen: dict[str, dict[tuple[str, str], list[int]]] = {}
        for name, inst in instances.items():
            seen[name] = wait_until(partial(alarm_ids, inst.api), 60, f"every alarm through {name}")
        if seen["a"] != seen["b"]:
            problems.append(f"the two APIs list different alarms: {seen}")
        problems += [f"{key} raised {len(ids)} times" for key, ids in seen["a"].items() if len(ids) != 1]
        # B's alarm acknowledged through A: B, which detects it, must keep the acknowledgement.
        b_alarm = seen["a"][("pole_tilt", "dz-005")][0]
        ack = a.api.post(f"/api/v1/alarms/{b_alarm}/ack", {"note": "acknowledged through instance a"})
        if ack.status_code != 200:
            problems.append(f"ack of B's alarm through A: {ack.status_code} {ack.text[:300]}")

        # --- an override created through A for B's device, applied by B ----------------------------------
        body = {
            "targets": [OVERRIDDEN],
            "on": True,
            "level": OVERRIDE_LEVEL,
            "until": later(30),
            "reason": "scale-out",
        }
        created = a.api.post("/api/v1/overrides", body)
        if created.status_code != 201:
            problems.append(
                f"override through A for B's {OVERRIDDEN}: {created.status_code} {created.text[:300]}"
            )
            # Still check the other half of the property: B's own override is seen by A.
            created = b.api.post("/api/v1/overrides", body)
            assert created.status_code == 201, created.text
        override_id = created.json()["id"]
        for inst in instances.values():
            listed_ids = [o["id"] for o in inst.api.get("/api/v1/overrides")["items"]]
            if override_id not in listed_ids:
                problems.append(f"override {override_id} not listed by {inst.name}")

        def applied() -> bool:
            lamp = b.api.get(f"/api/v1/devices/{OVERRIDDEN}")
            return bool(lamp["on"] and lamp["level"] == OVERRIDE_LEVEL)

        try:
            wait_until(applied, 20, f"B applying the override to {OVERRIDDEN}")
        except AssertionError as exc:
            problems.append(f"{exc}: {b.api.get(f'/api/v1/devices/{OVERRIDDEN}')}")

        for inst in instances.values():
            state = inst.api.get(f"/api/v1/alarms/{b_alarm}")["state"]
            if ack.status_code == 200 and state != "acked":
                problems.append(f"B's alarm acknowledged through A reads {state!r} through {inst.name}")

        # --- an emergency declared through B reaches A's lamps (its targets are kinds, not ids) -----------
        lamp = a.api.get(f"/api/v1/devices/{EMERGENCY_PROBE}")
        action, expected = ("all_off", (False, None)) if lamp["on"] else ("all_on", (True, 100))
        declared = b.api.post("/api/v1/emergency", {"action": action, "reason": "scale-out emergency"})
        if declared.status_code not in (200, 201):
            problems.append(f"emergency {action} through B: {declared.status_code} {declared.text[:300]}")
        else:

            def obeyed() -> bool:
                now = a.api.get(f"/api/v1/devices/{EMERGENCY_PROBE}")
                return bool(now["on"] == expected[0] and (expected[1] is None or now["level"] == expected[1]))

            try:
                wait_until(obeyed, 20, f"A's {EMERGENCY_PROBE} following B's emergency {action}")
            except AssertionError as exc:
                problems.append(f"{exc}: {a.api.get(f'/api/v1/devices/{EMERGENCY_PROBE}')}")
            b.api.post("/api/v1/emergency", {"action": "clear", "reason": "scale-out emergency over"})

        # --- every message processed once, by its owner ------------------------------------------------
        sim.stop()
        for inst in instances.values():

            def settled(inst: Instance = inst) -> bool:
                total = inst.metric("lightctl_readings_total")
                time.sleep(1.5)
                return (
                    total == inst.metric("lightctl_readings_total") and len(inst.stored_readings()) == total
                )

            try:
                wait_until(settled, 30, f"instance {inst.name} to store what it ingested", every_s=0.1)
            except AssertionError:
                problems.append(
                    f"{inst.name}: readings_total {inst.metric('lightctl_readings_total'):g} "
                    f"but {len(inst.stored_readings())} stored"
                )
        sent = counter.snapshot()
        problems += _accounting(instances, whole, sent, counter.unparsed)
        problems += _hook_errors(instances)
        problems += _shared_state(pg_schema, FAULTS)
    finally:
        counter.stop()
        sim.stop()
        for inst in instances.values():
            inst.process.stop()
            if hasattr(inst, "api"):
                inst.api.close()
    assert not problems, "\n".join(problems)


def _accounting(
    instances: dict[str, Instance], whole: District, sent: list[tuple[str, int]], unparsed: int
) -> list[str]:
    problems: list[str] = []
    lamps = {d.id for d in whole.devices.values() if d.kind == "lamp"}
    if unparsed:
        problems.append(f"the counting subscriber could not parse {unparsed} messages")
    stored: dict[str, Counter[tuple[str, int]]] = {}
    for name, inst in instances.items():
        rows = Counter(inst.stored_readings())
        stored[name] = rows
        foreign = {d for d, _ in rows} - inst.devices
        if foreign:
            problems.append(
                f"{name} stored readings of {len(foreign)} devices it does not own: {sorted(foreign)[:5]}"
            )
        drops = inst.api.health()["dropped_payloads"].get("mqtt", {})
        if drops:
            problems.append(f"{name} dropped MQTT payloads: {drops}")
        unknown = inst.metric("lightctl_dropped_payloads_total", driver="mqtt", reason="unknown_device")
        if unknown:
            problems.append(f"{name} counted {unknown:g} messages as unknown_device")
    sent_set = Counter(sent)
    repeated = [k for k, n in sent_set.items() if n > 1]
    assert not repeated, f"the simulator itself sent a (device, seq) twice: {repeated[:5]}"
    lamp_rows = {
        name: Counter({k: n for k, n in rows.items() if k[0] in lamps}) for name, rows in stored.items()
    }
    both = set(lamp_rows["a"]) & set(lamp_rows["b"])
    if both:
        problems.append(f"{len(both)} lamp readings processed by both instances: {sorted(both)[:5]}")
    union = set(lamp_rows["a"]) | set(lamp_rows["b"])
    missing, extra = set(sent_set) - union, union - set(sent_set)
    if missing or extra:
        problems.append(
            f"lamp readings: {len(sent_set)} sent, {len(union)} stored; "
            f"{len(missing)} never stored {sorted(missing)[:5]}, {len(extra)} stored but not sent {sorted(extra)[:5]}"
        )
    # The ingest counters: both instances' readings_total = what the field sent over MQTT plus what
    # each read from its own Modbus devices (stored rows of its groups and facades).
    ingested = sum(inst.metric("lightctl_readings_total") for inst in instances.values())
    modbus = sum(n for rows in stored.values() for (d, _), n in rows.items() if d not in lamps)
    if ingested != len(sent) + modbus:
        problems.append(
            f"readings_total a+b = {ingested:g}, but the field sent {len(sent)} lamp readings "
            f"and the instances read {modbus} from Modbus"
        )
    if len(sent) < len(lamps):
        problems.append(f"only {len(sent)} lamp readings were sent: the run was too short to tell")
    return problems


def _hook_errors(instances: dict[str, Instance]) -> list[str]:
    problems: list[str] = []
    for name, inst in instances.items():
        for (metric, labels), value in inst.api.metrics().items():
            if metric == "lightctl_metrics_hook_errors_total" and value:
                problems.append(f"{name}: /metrics hook {dict(labels)} failed {value:g} times")
    return problems


def _shared_state(schema: PgSchema, faults: list[tuple[str, str, str, str]]) -> list[str]:
    """In the shared database itself: one alarm row per injected fault."""
    problems: list[str] = []
    with psycopg.connect(schema.dsn) as db:
        for _, kind, device, _ in faults:
            row = db.execute(
                "SELECT count(*) FROM alarms WHERE type = %s AND device = %s", (kind, device)
            ).fetchone()
            if row is None or row[0] != 1:
                problems.append(f"{kind} {device}: {row and row[0]} rows in the shared alarms table")
    return problems
