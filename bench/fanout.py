"""Fan-out: emergency all-on to 20,000 simulated lamps + 600 groups on 20 simulated gateways.

The simulators run in two processes of their own (the SLC-M1 fleet on a private Mosquitto; the
ZHD-G2 gateways, each answering one request at a time after 20 ms), lightctl's Runtime in this one.
The command goes the real way: Operations.emergency (as POST /emergency does) -> resolver ->
reconciler -> MQTT and Modbus drivers -> simulators, and a device counts as confirmed when the
reconciler gets its confirmation (the lamp's ack or report, the group's contactor read-back).

Emergency all_off first, and wait until everything confirms it (so every device has to change);
then each run: all_on, timed from the call until 99 % and 100 % of the 20,600 devices have
confirmed (15 s at most: a run that does not complete counts as infinite), and all_off again before
the next (the most recent emergency wins); clear at the end. --runs runs (default 3) for each Modbus.commands_in_flight setting (default 1 and 8): a
fresh Runtime per setting. Targets: 99 % within 3 s, 100 % within 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DistrictSpec, Mosquitto, cpu_seconds, emit, free_ports, log, percentile, write_district
from _inproc import quiet_logging, start_runtime

NAME = "fanout"
ALL_ON_CAP_S = 15.0  # a run not complete by then counts as infinite


def sims_main(config: str, which: str, ready: Any, stop: Any) -> None:
    """Process entry: the SLC-M1 fleet ("slc") or the Modbus gateways ("modbus") until `stop`."""
    quiet_logging()

    async def run() -> None:
        from lightctl.clock import SystemClock
        from lightctl.config.loader import load

        district = load(config)
        clock = SystemClock()
        if which == "slc":
            from lightctl.sim.slc import SlcFleet

            mqtt = district.settings.mqtt
            lamps = [d for d in district.devices.values() if d.kind == "lamp"]
            sim: Any = SlcFleet(
                lamps, district.concentrators.values(), district.profiles, mqtt.host, mqtt.port, clock,
                seed=1, lamps_per_connection=200,
            )  # fmt: skip
            await sim.start(within_s=90)
        else:
            from lightctl.sim.modbus_sim import ModbusSim

            sim = ModbusSim(
                district.gateways.values(), district.devices, clock, seed=1, latency=(0.02, 0.02),
                profiles=district.profiles,
            )  # fmt: skip
            await sim.start()
        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        await sim.stop()

    asyncio.run(run())


class Confirmations:
    """Wraps the reconciler's outcome hook: when each device confirmed which output."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.inner = runtime.reconciler.on_outcome
        runtime.reconciler.on_outcome = self
        self.want_on: bool | None = None
        self.at: dict[str, float] = {}
        self.failed = 0

    def __call__(self, outcome: Any) -> None:
        if self.want_on is not None:
            d = outcome.desired
            is_on = bool(d.on) if d.on is not None else bool(d.k1 and d.k2)
            if outcome.result.ok and is_on == self.want_on and outcome.device not in self.at:
                self.at[outcome.device] = time.monotonic()
            elif not outcome.result.ok:
                self.failed += 1
        if self.inner is not None:
            self.inner(outcome)

    def expect(self, on: bool) -> None:
        self.want_on, self.at, self.failed = on, {}, 0


async def wait_all(conf: Confirmations, total: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if len(conf.at) >= total:
            return True
        await asyncio.sleep(0.01)
    return False


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        try:
            out[name] = cpu_seconds(pid)
        except OSError:
            out[name] = float("nan")
    return out


def start_profile(seconds: int) -> tuple[Any, Path] | None:
    """py-spy on this process (lightctl's) for the first all_on, if asked for with --profile."""
    import subprocess

    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    raw = Path(tempfile.mkdtemp(prefix="lightctl-bench-fanout-prof-")) / "profile.txt"
    cmd = [pyspy, "record", "-p", str(os.getpid()), "-d", str(seconds), "-r", "200", "--format", "raw"]
    spy = subprocess.Popen(
        [*cmd, "-o", str(raw), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(0.5)  # attached before the command goes out
    return spy, raw


async def one_setting(
    config: str, runs: int, total: int, pids: dict[str, int], profile: bool = False
) -> list[dict[str, Any]]:
    runtime = await start_runtime(config, confirm_commands=False)
    try:
        conf = Confirmations(runtime)
        ops = runtime.ops
        results = []
        conf.expect(False)
        await ops.emergency("all_off", None, None, "bench: all off before all on", "bench")
        if not await wait_all(conf, total, 30):
            log(NAME, f"all_off: only {len(conf.at):,}/{total:,} confirmed within 30 s; measuring anyway")
        for run in range(runs):
            await asyncio.sleep(1.0)
            conf.expect(True)
            spy = start_profile(12) if profile and run == 0 else None
            cpu0 = cpu_of(pids)
            t0 = time.monotonic()
            await ops.emergency("all_on", None, None, "bench: emergency all on", "bench")
            complete = await wait_all(conf, total, ALL_ON_CAP_S)
            wall = time.monotonic() - t0
            cpu1 = cpu_of(pids)
            busy = {k: round((cpu1[k] - cpu0[k]) / wall, 2) for k in pids}
            if spy is not None:
                from profile_ingest import summarize

                spy[0].wait(30)
                print(summarize(spy[1], 30), file=sys.stderr)
                shutil.rmtree(spy[1].parent, ignore_errors=True)
            times = sorted(t - t0 for t in conf.at.values())
            k99 = int(total * 0.99 + 0.999999) - 1
            t99 = times[k99] if len(times) > k99 else float("inf")
            t100 = times[-1] if complete else float("inf")
            lamps = [conf.at[d] - t0 for d in conf.at if runtime.district.devices[d].kind == "lamp"]
            groups = [conf.at[d] - t0 for d in conf.at if runtime.district.devices[d].kind == "group"]
            results.append(
                {
                    "t99": t99,
                    "t100": t100,
                    "confirmed": len(times),
                    "failed_attempts": conf.failed,
                    "lamps_last": max(lamps, default=float("nan")),
                    "groups_last": max(groups, default=float("nan")),
                    "groups_p50": percentile(groups, 50),
                    "cpu_share": busy,
                }
            )
            log(
                NAME,
                f"run {run + 1}: 99 % in {t99:.2f} s, 100 % in {t100:.2f} s ({len(times):,}/{total:,});"
                f" last lamp {results[-1]['lamps_last']:.2f} s, last group {results[-1]['groups_last']:.2f} s,"
                f" failed attempts {conf.failed}",
            )
            if (
                run + 1 < runs
            ):  # all off again (most recent emergency wins), so the next all-on changes everything
                conf.expect(False)
                await ops.emergency("all_off", None, None, "bench: all off before all on", "bench")
                if not await wait_all(conf, total, 20):
                    log(NAME, f"all_off: only {len(conf.at):,}/{total:,} confirmed within 20 s")
        await ops.emergency("clear", None, None, "bench", "bench")
        return results
    finally:
        await runtime.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--in-flight", default="1,8", help="Modbus.commands_in_flight settings to run")
    p.add_argument("--lamps", type=int, default=20000)
    p.add_argument("--profile", action="store_true", help="py-spy lightctl during the first all_on (stderr)")
    args = p.parse_args(argv)
    settings = [int(x) for x in args.in_flight.split(",")]
    ctx = mp.get_context("spawn")
    quiet_logging()
    figures: dict[int, list[dict[str, Any]]] = {}
    with Mosquitto() as broker, tempfile.TemporaryDirectory(prefix="lightctl-bench-fanout-") as tmp:
        ports = free_ports(20)
        spec = DistrictSpec(
            roads=10, lamps_per_road=args.lamps // 10, spacing_m=10, groups=True, gateway_ports=ports,
            mqtt_port=broker.port,
        )  # fmt: skip
        sim_config = str(write_district(spec, Path(tmp) / "sim"))
        stop = ctx.Event()
        procs = []
        for which in ("slc", "modbus"):
            ready = ctx.Event()
            proc = ctx.Process(target=sims_main, args=(sim_config, which, ready, stop), daemon=True)
            proc.start()
            procs.append((which, proc, ready))
        try:
            for which, _, ready in procs:
                if not ready.wait(120):
                    raise TimeoutError(f"{which} simulator not ready within 120 s")
            log(NAME, "simulators ready")
            for n in settings:
                spec.commands_in_flight = n
                config = str(write_district(spec, Path(tmp) / f"inflight-{n}"))
                total = spec.lamps + 600
                log(NAME, f"commands_in_flight={n}: {runtime_note(total)}")
                pids = {"lightctl": os.getpid(), "mosquitto": broker.pid}
                pids.update({f"sim_{which}": proc.pid for which, proc, _ in procs if proc.pid is not None})
                figures[n] = asyncio.run(one_setting(config, args.runs, total, pids, args.profile))
        finally:
            stop.set()
            for _, proc, _ in procs:
                proc.join(20)
                if proc.is_alive():
                    proc.terminate()
    for n, results in figures.items():
        extra = {
            "commands_in_flight": n,
            "devices": spec.lamps + 600,
            "groups_last_s": [round(r["groups_last"], 3) for r in results],
            "lamps_last_s": [round(r["lamps_last"], 3) for r in results],
            "failed_attempts": [r["failed_attempts"] for r in results],
            "confirmed": [r["confirmed"] for r in results],
            "cpu_share": [r["cpu_share"] for r in results],
        }
        emit(f"fanout_99pct_inflight{n}", [r["t99"] for r in results], "s", 3.0, "lower", **extra)
        emit(f"fanout_100pct_inflight{n}", [r["t100"] for r in results], "s", 5.0, "lower", **extra)
    return 0


def runtime_note(total: int) -> str:
    return f"starting lightctl for {total:,} devices"


if __name__ == "__main__":
    sys.exit(main())
