"""Memory: RSS of `lightctl serve` with 100,000 lamps in the inventory and in live state.

A generated district of 50 roads x 2,000 SLC-M1 lamps (10 of the roads behind a PLC concentrator
each, so 20,000 lamps report in batches), a private Mosquitto, SQLite state and telemetry in a temp
dir. A separate stand-in process (bench/_lamps.py) answers every command (ack + report) and then
publishes one reading for every lamp, so every lamp has live state, a fault-detection window and a
stored reading. RSS (VmRSS) of the serve process is read once all 100,000 are online and the
reconciler's start-up commands are answered, after a settle; its peak (VmHWM) is reported too.
Target <= 300 MB. Starting a 100,000-lamp serve takes minutes here, so the runs are rounds on one
process: each round publishes one more reading for every lamp, and RSS is read after it settles;
the figure is the median of --runs (3) rounds.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

from _common import DistrictSpec, Mosquitto, emit, free_port, load_district, log, rss_mb
from _lamps import lamp_set, responder_main
from _service import Serve, token_config

NAME = "memory"


def peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def measure(
    broker: Mosquitto, roads: int, per_road: int, rounds: int, settle_s: float, budget_s: float
) -> dict:
    with tempfile.TemporaryDirectory(prefix="lightctl-bench-mem-") as tmp:
        api_port = free_port()
        spec = DistrictSpec(
            roads=roads,
            lamps_per_road=per_road,
            spacing_m=10,
            concentrator_roads=max(1, roads // 5),
            mqtt_port=broker.port,
            api_port=api_port,
            extra_config=token_config(),
        )
        t0 = time.monotonic()
        district = load_district(spec, Path(tmp))
        lamps = lamp_set(district)
        total = len(district.devices)
        ctx = mp.get_context("spawn")
        feed, fed, stop = ctx.Event(), ctx.Event(), ctx.Event()
        counts = ctx.Array("q", 2)
        responder = ctx.Process(
            target=responder_main,
            args=("127.0.0.1", broker.port, lamps, feed, fed, stop, counts),
            daemon=True,
        )
        responder.start()
        time.sleep(1.0)  # subscribed before lightctl sends its start-up commands
        serve = Serve(Path(tmp) / "config.yaml", api_port, Path(tmp) / "serve.log")
        out: dict = {"rss": [], "online": [], "ready_s": 0.0}
        try:
            serve.wait_ready(budget_s)
            out["ready_s"] = time.monotonic() - t0
            log(NAME, f"serve up with {total:,} devices after {out['ready_s']:.1f} s")
            deadline = time.monotonic() + budget_s
            for k in range(rounds):
                log(NAME, f"round {k + 1}/{rounds}: one reading for every lamp")
                fed.clear()
                feed.set()
                online, progress_at, last = 0, time.monotonic(), -1
                while time.monotonic() < deadline:
                    online = serve.health()["devices"]["online"]
                    # Lamps whose first report already shows the desired state are not commanded
                    # (the reconciler adopts it), so commands answered may stay below the total.
                    if online >= total and fed.is_set():
                        break
                    if online != last:
                        progress_at, last = time.monotonic(), online
                    elif fed.is_set() and time.monotonic() - progress_at > 15:
                        # QoS 0 readings the broker dropped while lightctl was busy: feed once more
                        log(NAME, f"online stuck at {online:,}: one more reading for every lamp")
                        fed.clear()
                        feed.set()
                        progress_at = time.monotonic()
                    time.sleep(2.0)
                    log(NAME, f"online {online:,}/{total:,}, commands answered {counts[0]:,}")
                if online < total:
                    raise RuntimeError(f"only {online:,} of {total:,} lamps online within {budget_s:.0f} s")
                time.sleep(settle_s)
                rss = rss_mb(serve.pid)
                out["rss"].append(rss)
                out["online"].append(online)
                log(NAME, f"round {k + 1}: RSS {rss:.0f} MB (peak so far {peak_mb(serve.pid):.0f} MB)")
            out["peak"] = peak_mb(serve.pid)
            out["commands"] = counts[0]
            out["readings_fed"] = counts[1]
            return out
        finally:
            serve.stop()
            stop.set()
            responder.join(10)
            if responder.is_alive():
                responder.terminate()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="rounds of one reading per lamp, RSS after each")
    p.add_argument("--roads", type=int, default=50)
    p.add_argument("--lamps-per-road", type=int, default=2000)
    p.add_argument("--settle", type=float, default=10.0, help="seconds after everything is online")
    p.add_argument("--budget", type=float, default=180.0, help="seconds allowed for the lamps to come online")
    args = p.parse_args(argv)
    with Mosquitto() as broker:
        r = measure(broker, args.roads, args.lamps_per_road, args.runs, args.settle, args.budget)
    emit(
        "memory_rss_100k_lamps",
        r["rss"],
        "MB",
        300.0,
        "lower",
        peak_mb=round(r["peak"], 1),
        lamps=args.roads * args.lamps_per_road,
        online=r["online"],
        commands_answered=r["commands"],
        readings_fed=r["readings_fed"],
        serve_ready_s=round(r["ready_s"], 1),
        note="one lightctl serve process; RSS after each round of one reading per lamp",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
