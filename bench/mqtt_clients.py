"""Compare MQTT client libraries as bare telemetry subscribers against one broker.

One invocation runs every selected client (gmqtt, paho-mqtt, aiomqtt) in every selected mode
(burst, paced) against the same broker, one after the other:

* a subscriber process (one per trial, fresh interpreter) connects with the library under test,
  subscribes to ``<prefix>/slc/+/up/telemetry`` and counts every message; with ``--parse`` (the
  default) it also decodes the JSON payload with orjson and picks the device id out of the topic,
  which is the minimum work the real ingest path does;
* a publisher process (paho-mqtt, no network thread, a few connections) sends ``--messages``
  single-lamp telemetry reports spread over ``--devices`` topics ``<prefix>/slc/HA-xxxxx/up/telemetry``,
  either as fast as it can (``burst``) or at ``--rate`` messages/s (``paced``).

``<prefix>`` contains a random token per trial, so trials never see each other's messages nor
those of other users of a shared broker.

The broker does not push back on publishers: with Mosquitto's defaults a subscriber that falls
behind loses messages (QoS 0: once more than ``max_queued_messages`` = 1000 packets wait in the
broker's output queue for that client; QoS 1: once 20 are in flight and 1000 more are queued).
``loss`` therefore measures whether a client keeps up; ``value`` is the rate at which it actually
received (received / time between its first and last message).

Each trial prints ONE JSON line on stdout; progress goes to stderr.  Every trial stops by itself
(publisher done and no message for ``--idle`` seconds, all messages received, or ``--timeout``).

    .venv/bin/python bench/mqtt_clients.py                       # all clients, burst + paced
    .venv/bin/python bench/mqtt_clients.py --clients gmqtt --mode paced --rate 40000 --qos 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any

CLIENTS = ("gmqtt", "paho", "aiomqtt")
# gmqtt_async: gmqtt with an `async def` on_message (gmqtt then creates one Task per message);
# not in the default set, run it with --clients gmqtt,gmqtt_async
EXTRA_CLIENTS = ("gmqtt_async",)
MODES = ("burst", "paced")
DIST_NAMES = {"gmqtt": "gmqtt", "gmqtt_async": "gmqtt", "paho": "paho-mqtt", "aiomqtt": "aiomqtt"}


@dataclass(frozen=True)
class Trial:
    client: str
    mode: str
    host: str
    port: int
    prefix: str
    messages: int
    devices: int
    connections: int
    qos: int
    rate: float
    parse: bool
    protocol: int  # 4 = MQTT 3.1.1, 5 = MQTT 5.0
    idle: float
    timeout: float
    progress: bool

    @property
    def topic_filter(self) -> str:
        return f"{self.prefix}/slc/+/up/telemetry"

    @property
    def label(self) -> str:
        return f"{self.client}/{self.mode}"


def log(msg: str) -> None:
    print(f"[mqtt-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Publisher (paho-mqtt, own process)
# --------------------------------------------------------------------------------------------


def make_reports(trial: Trial) -> list[tuple[str, bytes]]:
    """Realistic single-lamp reports: message i comes from device i % devices."""
    import orjson

    rnd = random.Random(20261126)
    topics = [f"{trial.prefix}/slc/HA-{d:05d}/up/telemetry" for d in range(trial.devices)]
    energy = [rnd.uniform(100.0, 9000.0) for _ in range(trial.devices)]
    hours = [rnd.randint(0, 40000) for _ in range(trial.devices)]
    out = []
    ts0 = 1764180000
    for i in range(trial.messages):
        d = i % trial.devices
        seq = i // trial.devices
        on = rnd.random() > 0.05
        level = rnd.choice((0, 30, 50, 70, 100)) if on else 0
        v = round(rnd.gauss(221.0, 2.5), 1)
        p = round(level * 1.2 + rnd.uniform(0.0, 1.5), 1) if on else 0.0
        cur = round(p / v / 0.95, 2) if on else 0.0
        energy[d] += p / 60000.0
        report = {
            "ts": ts0 + seq * 60,
            "seq": seq,
            "on": on,
            "level": level,
            "v": v,
            "i": cur,
            "p": p,
            "pf": 0.95 if on else 0.0,
            "e": round(energy[d], 3),
            "t": round(rnd.uniform(15.0, 45.0), 1),
            "hours": hours[d] + seq // 60,
            "alarm": 0 if rnd.random() > 0.002 else 4,
        }
        out.append((topics[d], orjson.dumps(report)))
    return out


def publisher_main(trial: Trial, go: Any, conn: Any) -> None:
    """Publish all reports, flush them to the broker, report (sent, t_start, t_end)."""
    import paho.mqtt.client as mqtt

    try:
        reports = make_reports(trial)
        clients = []
        for k in range(trial.connections):
            c = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2,
                client_id=f"lcbench-pub-{trial.prefix.rsplit('/', 1)[-1]}-{k}",
                protocol=mqtt.MQTTv311,
            )
            # 0 = no paho in-flight limit: with a limit, every PUBACK makes paho scan all in-flight
            # messages (O(inflight) per ack); the loop below keeps its own window instead.
            c.max_inflight_messages_set(0)
            c.connect(trial.host, trial.port, keepalive=60)
            deadline = time.monotonic() + 10
            while not c.is_connected():
                c.loop(timeout=0.05)
                if time.monotonic() > deadline:
                    raise RuntimeError("publisher could not connect")
            clients.append(c)
        conn.send(("connected", None))
        go.wait(30)

        nconn = len(clients)
        devices = trial.devices
        qos = trial.qos
        paced = trial.mode == "paced"
        n = len(reports)
        infos: list[Any] = []
        acked = 0
        window = 1000 * nconn  # QoS 1: at most this many unacknowledged publishes

        def service() -> None:
            nonlocal acked
            for c in clients:
                c.loop(timeout=0.0)  # read PUBACKs, flush what the socket did not take
            while acked < len(infos) and infos[acked].is_published():
                acked += 1

        i = failed = 0
        t_start = time.monotonic()
        while i < n:
            # paced: what the schedule says is due by now; burst: the next batch of 256
            due = min(n, int((time.monotonic() - t_start) * trial.rate) + 1 if paced else i + 256)
            if qos:
                due = min(due, acked + window)
            while i < due:
                topic, payload = reports[i]
                info = clients[(i % devices) % nconn].publish(topic, payload, qos)
                if info.rc:  # not queued (connection lost): it does not count as sent
                    failed += 1
                elif qos:
                    infos.append(info)
                i += 1
            service()
            if paced and i < n:
                time.sleep(0.002)
        sent = i - failed
        # flush: every packet written (QoS 0) / acknowledged (QoS 1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            service()
            if not any(c.want_write() for c in clients) and acked >= len(infos):
                break
            time.sleep(0.001)
        t_end = time.monotonic()
        for c in clients:
            c.disconnect()
            c.loop(timeout=0.05)
        conn.send(("done", {"sent": sent, "t_start": t_start, "t_end": t_end}))
    except Exception as exc:  # report instead of hanging the parent
        conn.send(("error", repr(exc)))


# --------------------------------------------------------------------------------------------
# Subscribers (one process each)
# --------------------------------------------------------------------------------------------


class Counter:
    """Shared by all subscriber flavours: the per-message work and the stop rule."""

    def __init__(self, trial: Trial) -> None:
        import orjson

        self.trial = trial
        self.loads = orjson.loads
        self.parse = trial.parse
        self.n = 0
        self.bad = 0
        self.devices: set[str] = set()
        self.t_first = 0.0
        self.t_last = 0.0
        self.last_seq_sum = 0
        self.pub_done_seen: float | None = None
        self.cpu0 = 0.0

    def mark_ready(self, ready: Any) -> None:
        self.cpu0 = time.process_time()
        ready.set()

    def on_message(self, topic: str, payload: bytes) -> None:
        now = time.monotonic()
        if not self.n:
            self.t_first = now
        self.t_last = now
        self.n += 1
        if self.parse:
            try:
                report = self.loads(payload)
                self.last_seq_sum += report["seq"]
                # device id: <prefix>/slc/<dev>/up/telemetry
                self.devices.add(topic.rsplit("/", 3)[1])
            except (ValueError, KeyError, IndexError):
                self.bad += 1

    def should_stop(self, pub_done: Any, deadline: float) -> bool:
        now = time.monotonic()
        if self.n >= self.trial.messages or now > deadline:
            return True
        if self.pub_done_seen is None:
            if pub_done.is_set():
                self.pub_done_seen = now
            return False
        return now - max(self.t_last, self.pub_done_seen) > self.trial.idle

    def result(self) -> dict:
        cpu = time.process_time() - self.cpu0
        return {
            "cpu_s": cpu,
            "received": self.n,
            "bad": self.bad,
            "devices_seen": len(self.devices),
            "t_first": self.t_first,
            "t_last": self.t_last,
        }


def progress_line(trial: Trial, counter: Counter, started: float) -> None:
    log(f"{trial.label}: received {counter.n:,} after {time.monotonic() - started:.1f}s")


def subscriber_main(trial: Trial, ready: Any, pub_done: Any, conn: Any) -> None:
    try:
        if trial.client == "paho":
            res = run_paho(trial, ready, pub_done)
        elif trial.client in ("gmqtt", "gmqtt_async"):
            import asyncio

            res = asyncio.run(run_gmqtt(trial, ready, pub_done))
        elif trial.client == "aiomqtt":
            import asyncio

            res = asyncio.run(run_aiomqtt(trial, ready, pub_done))
        else:
            raise ValueError(trial.client)
        conn.send(("done", res))
    except Exception as exc:
        conn.send(("error", repr(exc)))


async def wait_until_done(trial: Trial, counter: Counter, pub_done: Any) -> None:
    import asyncio

    started = time.monotonic()
    deadline = started + trial.timeout
    next_progress = started + 2.0
    while not counter.should_stop(pub_done, deadline):
        await asyncio.sleep(0.05)
        if trial.progress and time.monotonic() >= next_progress:
            progress_line(trial, counter, started)
            next_progress += 2.0


async def run_gmqtt(trial: Trial, ready: Any, pub_done: Any) -> dict:
    import asyncio

    import gmqtt

    counter = Counter(trial)
    subscribed = asyncio.Event()
    count = counter.on_message

    def on_message(client: Any, topic: str, payload: bytes, qos: int, properties: dict) -> int:
        count(topic, payload)
        return 0  # PUBACK reason code (only used with optimistic_acknowledgement=False)

    async def on_message_async(client: Any, topic: str, payload: bytes, qos: int, properties: dict) -> int:
        count(topic, payload)
        return 0

    def on_subscribe(client: Any, mid: int, granted_qos: Any, properties: Any) -> None:
        subscribed.set()

    client = gmqtt.Client(f"lcbench-sub-gmqtt-{secrets.token_hex(4)}", clean_session=True)
    client.on_message = on_message_async if trial.client == "gmqtt_async" else on_message
    client.on_subscribe = on_subscribe
    client.set_config({"reconnect_retries": 0})
    await client.connect(trial.host, trial.port, keepalive=60, version=trial.protocol)
    client.subscribe(trial.topic_filter, qos=trial.qos)
    await asyncio.wait_for(subscribed.wait(), 10)
    counter.mark_ready(ready)
    await wait_until_done(trial, counter, pub_done)
    await client.disconnect()
    return counter.result()


async def run_aiomqtt(trial: Trial, ready: Any, pub_done: Any) -> dict:
    import asyncio

    import aiomqtt

    counter = Counter(trial)
    count = counter.on_message
    proto = aiomqtt.ProtocolVersion.V5 if trial.protocol == 5 else aiomqtt.ProtocolVersion.V311
    async with aiomqtt.Client(
        trial.host,
        trial.port,
        identifier=f"lcbench-sub-aiomqtt-{secrets.token_hex(4)}",
        protocol=proto,
    ) as client:
        await client.subscribe(trial.topic_filter, qos=trial.qos)
        counter.mark_ready(ready)

        async def consume() -> None:
            async for message in client.messages:
                count(message.topic.value, message.payload)  # type: ignore[arg-type]

        task = asyncio.create_task(consume())
        try:
            await wait_until_done(trial, counter, pub_done)
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
    return counter.result()


def run_paho(trial: Trial, ready: Any, pub_done: Any) -> dict:
    """paho-mqtt with its network loop on its own thread (loop_start), as an app would use it."""
    import paho.mqtt.client as mqtt

    counter = Counter(trial)
    count = counter.on_message
    subscribed = threading.Event()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        count(msg.topic, msg.payload)

    def on_subscribe(client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        subscribed.set()

    proto = mqtt.MQTTv5 if trial.protocol == 5 else mqtt.MQTTv311
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"lcbench-sub-paho-{secrets.token_hex(4)}",
        protocol=proto,
    )
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.connect(trial.host, trial.port, keepalive=60)
    client.loop_start()
    try:
        deadline = time.monotonic() + 10
        while not client.is_connected():
            if time.monotonic() > deadline:
                raise RuntimeError("paho subscriber could not connect")
            time.sleep(0.01)
        client.subscribe(trial.topic_filter, qos=trial.qos)
        if not subscribed.wait(10):
            raise RuntimeError("no SUBACK")
        counter.mark_ready(ready)
        started = time.monotonic()
        deadline = started + trial.timeout
        next_progress = started + 2.0
        while not counter.should_stop(pub_done, deadline):
            time.sleep(0.05)
            if trial.progress and time.monotonic() >= next_progress:
                progress_line(trial, counter, started)
                next_progress += 2.0
    finally:
        client.disconnect()
        client.loop_stop()
    return counter.result()


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole host, from /proc/stat; (0, 0) where unavailable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def host_busy_now(window: float = 0.5) -> float | None:
    busy0, total0 = cpu_jiffies()
    time.sleep(window)
    busy1, total1 = cpu_jiffies()
    return (busy1 - busy0) / (total1 - total0) if total1 > total0 else None


def settle(max_wait: float, threshold: float, progress: bool) -> float | None:
    """Wait (at most max_wait s) until the host is quiet; return the last busy share seen."""
    busy = host_busy_now()
    deadline = time.monotonic() + max_wait
    while busy is not None and busy > threshold and time.monotonic() < deadline:
        if progress:
            log(f"host {busy:.0%} busy before the trial, waiting for it to settle")
        time.sleep(2.0)
        busy = host_busy_now()
    return busy


def recv(conn: Any, timeout: float, what: str) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"no answer from {what} within {timeout:.0f}s")
    kind, payload = conn.recv()
    if kind == "error":
        raise RuntimeError(f"{what} failed: {payload}")
    return payload


def stop(proc: Any) -> None:
    proc.join(5)
    if proc.is_alive():
        proc.terminate()
        proc.join(5)


def run_trial(trial: Trial, busy_before: float | None = None) -> dict:
    ctx = mp.get_context("spawn")
    ready, pub_done, go = ctx.Event(), ctx.Event(), ctx.Event()
    sub_parent, sub_child = ctx.Pipe(duplex=False)
    pub_parent, pub_child = ctx.Pipe(duplex=False)
    sub = ctx.Process(target=subscriber_main, args=(trial, ready, pub_done, sub_child), daemon=True)
    pub = ctx.Process(target=publisher_main, args=(trial, go, pub_child), daemon=True)
    sub.start()
    pub.start()
    pub_res = None
    try:
        deadline = time.monotonic() + 30
        while not ready.wait(0.1):
            if sub_parent.poll():
                recv(sub_parent, 0, "subscriber")  # raises with the child's error
            if time.monotonic() > deadline:
                raise TimeoutError("subscriber not ready within 30s")
        recv(pub_parent, 60, "publisher (connect)")
        if trial.progress:
            log(f"{trial.label}: subscribed, publishing {trial.messages:,} messages")
        busy0, total0 = cpu_jiffies()
        go.set()
        pub_res = recv(pub_parent, trial.timeout + 40, "publisher")
        pub_done.set()
        sub_res = recv(sub_parent, trial.timeout + 40, "subscriber")
        busy1, total1 = cpu_jiffies()
    finally:
        if pub_res is None:  # aborted: do not let the publisher flood the broker for nothing
            pub.terminate()
        go.set()
        pub_done.set()
        stop(pub)
        stop(sub)
    received = sub_res["received"]
    sent = pub_res["sent"]
    if not sent:
        raise RuntimeError("publisher could not send anything")
    span = sub_res["t_last"] - sub_res["t_first"]
    pub_span = pub_res["t_end"] - pub_res["t_start"]
    return {
        "figure": "mqtt_bare_subscriber",
        "client": trial.client,
        "mode": trial.mode,
        "value": round(received / span, 1) if span > 0 else 0.0,
        "unit": "msg/s",
        "received": received,
        "sent": sent,
        "loss": round(1.0 - received / sent, 5),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        # share of all host CPUs busy during the trial (publisher + broker + subscriber + anything
        # else on the machine): near 1.0 means the numbers are bounded by the host, not the client
        "host_busy": round((busy1 - busy0) / (total1 - total0), 2) if total1 > total0 else None,
        "host_busy_before": round(busy_before, 2) if busy_before is not None else None,
        "qos": trial.qos,
        "parse": trial.parse,
        "protocol": "5" if trial.protocol == 5 else "3.1.1",
        "target_rate": trial.rate if trial.mode == "paced" else None,
        "publish_rate": round(sent / pub_span, 1) if pub_span > 0 else None,
        "client_version": metadata.version(DIST_NAMES[trial.client]),
        "bad_payloads": sub_res["bad"],
        # how long after the publisher's last message the subscriber got its last one: a client that
        # keeps up shows milliseconds; seconds mean it fell behind and only socket buffers (and,
        # for aiomqtt, its unbounded in-process queue) saved it from loss in this trial
        # (clamped at 0: the publisher notices its own flush a little after the broker forwarded it)
        "lag_s": round(max(0.0, sub_res["t_last"] - pub_res["t_end"]), 3) if received else None,
        # subscriber process CPU time per received message (all threads), from SUBACK to stop
        "cpu_us_per_msg": round(sub_res["cpu_s"] / received * 1e6, 2) if received else None,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--messages", type=int, default=200_000, help="messages per trial (default 200000)")
    p.add_argument("--devices", type=int, default=20_000, help="distinct device topics (default 20000)")
    p.add_argument("--connections", type=int, default=4, help="publisher connections (default 4)")
    p.add_argument("--qos", type=int, choices=(0, 1), default=0)
    p.add_argument("--mode", choices=(*MODES, "both"), default="both")
    p.add_argument(
        "--rate",
        default="30000",
        help="paced mode target msg/s; a comma list runs one paced trial per rate (default 30000)",
    )
    p.add_argument(
        "--clients",
        default=",".join(CLIENTS),
        help="comma list of gmqtt,paho,aiomqtt (default) and gmqtt_async",
    )
    p.add_argument(
        "--parse",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="decode each payload with orjson (default on)",
    )
    p.add_argument("--protocol", choices=("3.1.1", "5"), default="3.1.1", help="MQTT version of subscribers")
    p.add_argument("--repeat", type=int, default=1, help="repeat the whole set N times")
    p.add_argument("--idle", type=float, default=1.5, help="stop after publisher done + N s without messages")
    p.add_argument("--timeout", type=float, default=60.0, help="hard limit per trial in seconds")
    p.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="before each trial wait up to N s for the host to be quiet (shared machines; default 0)",
    )
    p.add_argument(
        "--settle-below", type=float, default=0.25, help="'quiet' = share of all CPUs busy (default 0.25)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    args.client_list = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = set(args.client_list) - set(CLIENTS) - set(EXTRA_CLIENTS)
    if unknown:
        p.error(f"unknown client(s): {', '.join(sorted(unknown))}")
    try:
        args.rates = [float(r) for r in args.rate.split(",") if r.strip()]
    except ValueError:
        p.error("--rate must be a number or a comma list of numbers")
    if args.messages < 1 or args.devices < 1 or args.connections < 1 or not all(r > 0 for r in args.rates):
        p.error("--messages, --devices, --connections and --rate must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    modes = MODES if args.mode == "both" else (args.mode,)
    failures = 0
    plan = [(mode, rate) for mode in modes for rate in (args.rates if mode == "paced" else [0.0])]
    for rep in range(args.repeat):
        for mode, rate in plan:
            for client in args.client_list:
                trial = Trial(
                    client=client,
                    mode=mode,
                    host=args.host,
                    port=args.port,
                    prefix=f"lcbench/{secrets.token_hex(6)}",
                    messages=args.messages,
                    devices=args.devices,
                    connections=args.connections,
                    qos=args.qos,
                    rate=rate,
                    parse=args.parse,
                    protocol=5 if args.protocol == "5" else 4,
                    idle=args.idle,
                    timeout=args.timeout,
                    progress=not args.quiet,
                )
                if not args.quiet:
                    at = f" at {rate:,.0f}/s" if mode == "paced" else ""
                    log(f"run {rep + 1}/{args.repeat} {trial.label}{at} qos={trial.qos} ({trial.prefix})")
                busy = settle(args.settle, args.settle_below, not args.quiet)
                try:
                    res = run_trial(trial, busy)
                except (RuntimeError, TimeoutError, OSError) as exc:
                    failures += 1
                    log(f"{trial.label}: FAILED: {exc}")
                    continue
                res["run"] = rep + 1
                print(json.dumps(res), flush=True)
                if not args.quiet:
                    log(
                        f"{trial.label}: {res['value']:,.0f} msg/s, received {res['received']:,}"
                        f"/{res['sent']:,} (loss {res['loss']:.2%}),"
                        f" publisher {res['publish_rate']:,.0f} msg/s,"
                        f" subscriber {res['cpu_us_per_msg']} CPU-us/msg"
                    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
