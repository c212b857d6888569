"""Where lightctl's ingest time goes: py-spy samples the lightctl process of bench/ingest.py while the
publisher sends single-lamp reports at a steady rate, and the top functions (own time and with
callees) are printed. Not a figure; the tool behind the explanation in bench/RESULTS.md.

    .venv/bin/python bench/profile_ingest.py --rate 8000 --seconds 12
    .venv/bin/python bench/profile_ingest.py --kind batch --rate 15000
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing as mp
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from _common import DistrictSpec, Mosquitto, load_district, log
from _inproc import SLOTS, ingest_main
from ingest import Publisher, Totals, lamps_as_desired, warm_up

NAME = "profile_ingest"


def summarize(raw: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        samples += n
        frames = [
            f.split(" (", 1)[0] + " " + "/".join(f.rsplit("/", 2)[-2:]).rstrip(")") for f in stack.split(";")
        ]
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    lines = [f"{samples} samples", "own time:"]
    lines += [f"  {n / samples:6.1%}  {f}" for f, n in own.most_common(top)]
    lines.append("with callees (lightctl frames):")
    lines += [f"  {n / samples:6.1%}  {f}" for f, n in total.most_common(200) if "lightctl" in f][:top]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=8000, help="reports/s, or readings/s with --kind batch")
    p.add_argument("--kind", choices=("single", "batch"), default="single")
    p.add_argument("--seconds", type=float, default=12)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    ctx = mp.get_context("spawn")
    with Mosquitto() as broker, tempfile.TemporaryDirectory(prefix="lightctl-bench-prof-") as tmp:
        spec = DistrictSpec(
            roads=20, lamps_per_road=2000, spacing_m=10, concentrator_roads=10, mqtt_port=broker.port
        )
        district = load_district(spec, Path(tmp))
        direct, behind = lamps_as_desired(district)
        pub = Publisher(ctx, broker.port, 0, direct, behind)
        shared = ctx.Array("d", SLOTS, lock=False)
        ready, stop = ctx.Event(), ctx.Event()
        proc = ctx.Process(target=ingest_main, args=(str(Path(tmp) / "config.yaml"), shared, ready, stop))
        proc.start()
        try:
            if not ready.wait(180):
                raise TimeoutError("lightctl not ready")
            warm_up(pub, shared, Totals(), len(direct), -(-sum(map(len, behind.values())) // 200))
            raw = Path(tmp) / "profile.txt"
            spy = subprocess.Popen(
                [pyspy, "record", "-p", str(proc.pid), "-d", str(int(args.seconds - 2)), "-r", "200",
                 "--format", "raw", "-o", str(raw), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            worker = threading.Thread(
                target=pub.run, args=("single", "slc", args.rate, int(args.rate * args.seconds))
            )
            worker.start()
            spy.wait(args.seconds + 30)
            worker.join(args.seconds + 60)
            log(NAME, f"received {int(shared[0]):,} messages")
            print(summarize(raw, args.top))
        finally:
            stop.set()
            proc.join(60)
            pub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
