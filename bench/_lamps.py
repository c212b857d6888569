"""Light-weight stand-ins for many SLC-M1 lamps, for benchmarks that need 100,000 of them.

A paho-mqtt process (its own core, not lightctl's) that
* answers every command on `slc/+/down/cmd` as devices.md says: an ack with the state applied, then
  an immediate telemetry report;
* each time `feed` is set, publishes one reading for every lamp: single reports for direct lamps, batches of up
  to 200 for the lamps behind a concentrator (and the concentrator's retained `online`).

The full simulator (lightctl/sim/slc.py) models faults and electrical behaviour; this one only has
to be cheap enough to stand in for 100,000 healthy lamps on a 2-core machine.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LampSet:
    direct: dict[str, float] = field(default_factory=dict)  # MQTT id -> rated W
    behind: dict[str, dict[str, float]] = field(default_factory=dict)  # concentrator MQTT id -> lamps


def lamp_set(district: Any) -> LampSet:
    out = LampSet()
    conc_wire = {c.id: c.mqtt_id for c in district.concentrators.values()}
    for dev in district.devices.values():
        if dev.kind != "lamp" or not dev.mqtt_id:
            continue
        if dev.concentrator:
            out.behind.setdefault(conc_wire[dev.concentrator], {})[dev.mqtt_id] = dev.rated_w
        else:
            out.direct[dev.mqtt_id] = dev.rated_w
    return out


def report(rnd: random.Random, seq: int, on: bool, level: int, rated_w: float, ts: int) -> dict[str, Any]:
    """A healthy lamp's telemetry: power as the profile's electrical model expects, with noise."""
    p = (rated_w * level / 100.0 + 0.5) * rnd.uniform(0.97, 1.03) if on else 0.0
    v = round(rnd.gauss(221.0, 1.5), 1)
    pf = 0.97 if on and level >= 30 else (0.9 if on else 0.0)
    return {
        "ts": ts,
        "seq": seq % 65536,
        "on": on,
        "level": level if on else 0,
        "v": v,
        "i": round(p / v / pf, 3) if on else 0.0,
        "p": round(p, 1),
        "pf": pf,
        "e": 100.0 + seq * 0.01,
        "t": round(rnd.uniform(20.0, 35.0), 1),
        "hours": 1000,
        "alarm": 0,
    }


def responder_main(host: str, port: int, lamps: LampSet, feed: Any, fed: Any, stop: Any, counts: Any) -> None:
    """Process entry: answer commands until `stop`; publish one reading per lamp when `feed` is set."""
    import orjson
    import paho.mqtt.client as mqtt

    rnd = random.Random(3)
    rated: dict[str, float] = dict(lamps.direct)
    conc_of: dict[str, str] = {}
    for conc, members in lamps.behind.items():
        rated.update(members)
        conc_of.update(dict.fromkeys(members, conc))
    state: dict[str, tuple[bool, int]] = {}
    seq: dict[str, int] = {}
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-lamps-{port}", protocol=mqtt.MQTTv311
    )
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)

    def on_message(c: Any, userdata: Any, msg: Any) -> None:
        dev = msg.topic.split("/")[1]
        try:
            cmd = orjson.loads(msg.payload)
        except ValueError:
            return
        if dev not in rated:
            return
        on = bool(cmd.get("on", state.get(dev, (False, 0))[0]))
        level = int(cmd.get("level", 100)) if on else 0
        state[dev] = (on, level)
        ack = {"id": cmd.get("id"), "ok": True, "on": on, "level": level}
        c.publish(f"slc/{dev}/up/ack", orjson.dumps(ack), qos=1)
        n = seq[dev] = seq.get(dev, 0) + 1
        body = report(rnd, n, on, level, rated[dev], int(time.time()))
        if dev in conc_of:  # a lamp behind a concentrator reports in its next batch: send one now
            payload = {"ts": int(time.time()), "lamps": [{"dev": dev, **body}]}
            c.publish(f"slc/gw/{conc_of[dev]}/up/telemetry", orjson.dumps(payload), qos=0)
        else:
            c.publish(f"slc/{dev}/up/telemetry", orjson.dumps(body), qos=0)
        counts[0] += 1

    client.on_message = on_message
    client.connect(host, port, keepalive=60)
    client.subscribe("slc/+/down/cmd", qos=1)
    client.loop_start()
    try:
        for conc in lamps.behind:
            client.publish(f"slc/gw/{conc}/up/state", b"online", qos=1, retain=True)
        while not stop.wait(0.1):
            if feed.is_set():
                feed.clear()
                sent = 0
                now = int(time.time())
                for dev, w in lamps.direct.items():
                    on, level = state.get(dev, (False, 0))
                    n = seq[dev] = seq.get(dev, 0) + 1
                    client.publish(f"slc/{dev}/up/telemetry", orjson.dumps(report(rnd, n, on, level, w, now)))
                    sent += 1
                    if sent % 2000 == 0:
                        time.sleep(0.05)  # let the broker and lightctl keep up with QoS 0
                for conc, members in lamps.behind.items():
                    items = list(members.items())
                    for k in range(0, len(items), 200):
                        entries = []
                        for dev, w in items[k : k + 200]:
                            on, level = state.get(dev, (False, 0))
                            n = seq[dev] = seq.get(dev, 0) + 1
                            entries.append({"dev": dev, **report(rnd, n, on, level, w, now)})
                        payload = orjson.dumps({"ts": now, "lamps": entries})
                        client.publish(f"slc/gw/{conc}/up/telemetry", payload)
                        sent += len(entries)
                        time.sleep(0.01)
                counts[1] += sent
                fed.set()
    finally:
        client.disconnect()
        client.loop_stop()
