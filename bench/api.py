"""API latency: GET /api/v1/devices?limit=100 with 100,000 devices, under concurrent SSE clients.

`lightctl serve` as its own process with the generated 100,000-lamp district of bench/memory.py
(private Mosquitto, SQLite, a viewer token stored hashed in config.yaml), every lamp fed one
reading by the stand-in lamps process so live state is populated. Then --sse clients (default 4)
hold GET /api/v1/events open (httpx, each on its own thread) while one client sends --requests
(default 300) sequential GET /api/v1/devices?limit=100 at random offsets over a keep-alive
connection. Each run gives p50 and p99; the figures are the medians of --runs runs (default 3).
Target p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _common import DistrictSpec, Mosquitto, emit, free_port, load_district, log, percentile
from _lamps import lamp_set, responder_main
from _service import VIEWER_TOKEN, Serve, token_config

NAME = "api"


def sse_client(url: str, stop: threading.Event, counts: list[int], i: int) -> None:
    headers = {"Authorization": f"Bearer {VIEWER_TOKEN}", "Accept": "text/event-stream"}
    with httpx.Client(timeout=httpx.Timeout(10.0, read=None), trust_env=False) as client:
        while not stop.is_set():
            try:
                with client.stream("GET", f"{url}/api/v1/events", headers=headers) as response:
                    response.raise_for_status()
                    for _ in response.iter_lines():
                        counts[i] += 1
                        if stop.is_set():
                            return
            except httpx.HTTPError:
                time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--sse", type=int, default=4)
    p.add_argument("--roads", type=int, default=50)
    p.add_argument("--lamps-per-road", type=int, default=2000)
    args = p.parse_args(argv)
    p50s: list[float] = []
    p99s: list[float] = []
    with Mosquitto() as broker, tempfile.TemporaryDirectory(prefix="lightctl-bench-api-") as tmp:
        api_port = free_port()
        spec = DistrictSpec(
            roads=args.roads, lamps_per_road=args.lamps_per_road, spacing_m=10,
            concentrator_roads=max(1, args.roads // 5), mqtt_port=broker.port, api_port=api_port,
            extra_config=token_config(),
        )  # fmt: skip
        district = load_district(spec, Path(tmp))
        total = len(district.devices)
        ctx = mp.get_context("spawn")
        feed, fed, stop = ctx.Event(), ctx.Event(), ctx.Event()
        counts = ctx.Array("q", 2)
        responder = ctx.Process(
            target=responder_main,
            args=("127.0.0.1", broker.port, lamp_set(district), feed, fed, stop, counts),
            daemon=True,
        )
        responder.start()
        time.sleep(1.0)
        serve = Serve(Path(tmp) / "config.yaml", api_port, Path(tmp) / "serve.log")
        sse_stop = threading.Event()
        sse_counts = [0] * args.sse
        threads: list[threading.Thread] = []
        try:
            serve.wait_ready(300)
            feed.set()
            deadline = time.monotonic() + 180
            online, progress_at, last = 0, time.monotonic(), -1
            while time.monotonic() < deadline:
                online = serve.health()["devices"]["online"]
                if online >= total and fed.is_set():
                    break
                if online != last:
                    progress_at, last = time.monotonic(), online
                elif fed.is_set() and time.monotonic() - progress_at > 15:
                    log(NAME, f"online stuck at {online:,}: one more reading for every lamp")
                    fed.clear()
                    feed.set()
                    progress_at = time.monotonic()
                time.sleep(2.0)
            log(NAME, f"{online:,}/{total:,} devices online; {args.sse} SSE clients connecting")
            for i in range(args.sse):
                t = threading.Thread(
                    target=sse_client, args=(serve.url, sse_stop, sse_counts, i), daemon=True
                )
                t.start()
                threads.append(t)
            time.sleep(2.0)
            rnd = random.Random(5)
            headers = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
            with httpx.Client(base_url=serve.url, headers=headers, timeout=30.0, trust_env=False) as client:
                r = client.get("/api/v1/devices", params={"limit": 100})
                r.raise_for_status()
                if r.json()["total"] != total:
                    raise RuntimeError(f"devices total {r.json()['total']} != {total}")
                for run in range(args.runs):
                    times = []
                    for _ in range(args.requests):
                        offset = rnd.randrange(0, total - 100)
                        a = time.perf_counter()
                        r = client.get("/api/v1/devices", params={"limit": 100, "offset": offset})
                        times.append((time.perf_counter() - a) * 1000)
                        if r.status_code != 200 or len(r.json()["items"]) != 100:
                            raise RuntimeError(f"GET /devices answered {r.status_code}")
                    p50s.append(percentile(times, 50))
                    p99s.append(percentile(times, 99))
                    log(
                        NAME,
                        f"run {run + 1}: p50 {p50s[-1]:.1f} ms, p99 {p99s[-1]:.1f} ms, max {max(times):.1f} ms",
                    )
        finally:
            sse_stop.set()
            serve.stop()
            for t in threads:
                t.join(5)
            stop.set()
            responder.join(10)
            if responder.is_alive():
                responder.terminate()
    extra = {
        "devices": total,
        "requests_per_run": args.requests,
        "sse_clients": args.sse,
        "sse_lines": sum(sse_counts),
    }
    emit("api_devices_p99", p99s, "ms", 50.0, "lower", **extra, p50_ms=[round(x, 2) for x in p50s])
    emit("api_devices_p50", p50s, "ms", 50.0, "lower", **extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
