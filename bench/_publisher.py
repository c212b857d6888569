"""A paced telemetry publisher in its own process (paho-mqtt, no network thread, several
connections), taking orders over a pipe so one process serves every trial of a run.

An order: ("single", prefix, rate msg/s, messages) publishes single-lamp reports on
`<prefix>/<dev>/up/telemetry`; ("batch", prefix, rate msg/s, messages) publishes concentrator
batches of up to 200 lamps on `<prefix>/gw/<gw>/up/telemetry`. Payloads are built before the clock
starts; the answer is {"sent", "readings", "t_start", "t_end"} (CLOCK_MONOTONIC, comparable across
processes). Every report matches what the lamp is meant to be doing (the harness passes each lamp's
desired on / level), so the fault rules run their full path and raise nothing.
"""

from __future__ import annotations

import random
import time
from typing import Any

from _lamps import report

Lamp = tuple[str, bool, int, float]  # MQTT id, on, level, rated W


def build(
    order: tuple[Any, ...], direct: list[Lamp], behind: dict[str, list[Lamp]], seqs: dict[str, int]
) -> list:
    import orjson

    kind, prefix, _rate, messages = order
    rnd = random.Random(messages)
    now = int(time.time())
    out: list[tuple[str, bytes, int]] = []
    if kind == "single":
        for i in range(messages):
            dev, on, level, w = direct[i % len(direct)]
            n = seqs[dev] = seqs.get(dev, 0) + 1
            out.append((f"{prefix}/{dev}/up/telemetry", orjson.dumps(report(rnd, n, on, level, w, now)), 1))
        return out
    concs = list(behind.items())
    cursor = dict.fromkeys(behind, 0)
    for i in range(messages):
        gw, lamps = concs[i % len(concs)]
        start = cursor[gw]
        chunk = lamps[start : start + 200]
        cursor[gw] = 0 if start + 200 >= len(lamps) else start + 200
        entries = []
        for dev, on, level, w in chunk:
            n = seqs[dev] = seqs.get(dev, 0) + 1
            entries.append({"dev": dev, **report(rnd, n, on, level, w, now)})
        out.append(
            (f"{prefix}/gw/{gw}/up/telemetry", orjson.dumps({"ts": now, "lamps": entries}), len(entries))
        )
    return out


def publisher_main(
    host: str, port: int, qos: int, direct: list[Lamp], behind: dict[str, list[Lamp]], conn: Any
) -> None:
    import paho.mqtt.client as mqtt

    clients = []
    for k in range(4):
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{port}-{k}", protocol=mqtt.MQTTv311
        )
        c.max_inflight_messages_set(0)  # the loop below keeps its own window
        c.connect(host, port, keepalive=60)
        deadline = time.monotonic() + 10
        while not c.is_connected():
            c.loop(timeout=0.05)
            if time.monotonic() > deadline:
                conn.send(("error", "publisher could not connect"))
                return
        clients.append(c)
    conn.send(("ready", None))
    seqs: dict[str, int] = {}
    while True:
        order = conn.recv()
        if order is None:
            break
        try:
            payloads = build(order, direct, behind, seqs)
            conn.send(("built", None))
            conn.recv()  # go
            conn.send(("done", publish(clients, payloads, float(order[2]), qos)))
        except Exception as exc:  # report instead of hanging the harness
            conn.send(("error", repr(exc)))
    for c in clients:
        c.disconnect()
        c.loop(timeout=0.05)


def publish(clients: list, payloads: list[tuple[str, bytes, int]], rate: float, qos: int) -> dict[str, float]:
    infos: list[Any] = []
    acked = 0
    window = 1000 * len(clients)

    def service() -> None:
        nonlocal acked
        for c in clients:
            c.loop(timeout=0.0)
        while acked < len(infos) and infos[acked].is_published():
            acked += 1

    n = len(payloads)
    i = failed = readings = 0
    t_start = time.monotonic()
    while i < n:
        due = min(n, int((time.monotonic() - t_start) * rate) + 1)
        if qos:
            due = min(due, acked + window)
        while i < due:
            topic, payload, count = payloads[i]
            info = clients[i % len(clients)].publish(topic, payload, qos)
            if info.rc:
                failed += 1
            else:
                readings += count
                if qos:
                    infos.append(info)
            i += 1
        service()
        if i < n:
            time.sleep(0.001)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        service()
        if not any(c.want_write() for c in clients) and acked >= len(infos):
            break
        time.sleep(0.001)
    return {"sent": n - failed, "readings": readings, "t_start": t_start, "t_end": time.monotonic()}
