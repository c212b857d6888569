"""Run every benchmark (one process each, one after the other) and write bench/RESULTS.md.

    .venv/bin/python bench/run_all.py            # or: make bench
    .venv/bin/python bench/run_all.py --only scheduler,api   # re-run some; keep the others' results

Each script prints its JSON result lines on stdout (kept in bench/results.jsonl) and progress on
stderr (passed through). Every script has a time limit; the whole set is planned for under 20 min.
RESULTS.md gets the date, the machine, a table of figure / value / target / met, how to reproduce,
and, for the figures that miss their target, the profile-based explanation kept in bench/analysis.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import machine

HERE = Path(__file__).resolve().parent
# (script, time limit in s), cheapest first so a late failure costs the least
SCRIPTS = [
    ("scheduler.py", 150),
    ("fault_latency.py", 240),
    ("fanout.py", 480),
    ("ingest.py", 420),
    ("memory.py", 330),
    ("api.py", 330),
]


PREFIXES = {
    "scheduler_": "scheduler.py",
    "fault_alarm_": "fault_latency.py",
    "comm_loss_": "fault_latency.py",
    "fanout_": "fanout.py",
    "ingest_": "ingest.py",
    "memory_": "memory.py",
    "api_": "api.py",
}


def script_of(row: dict) -> str:
    return next((s for p, s in PREFIXES.items() if str(row.get("figure", "")).startswith(p)), "?")


def fmt(value: float, unit: str) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return f"{value} {unit}"
    if abs(value) >= 1000:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}" if abs(value) < 0.01 else f"{value:.2f} {unit}"


def run(script: str, limit: int) -> tuple[list[dict], str, float]:
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, str(HERE / script)],
            stdout=subprocess.PIPE,
            text=True,
            timeout=limit,
            cwd=HERE.parent,
        )
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        out = proc.stdout
    except subprocess.TimeoutExpired as exc:
        status = f"timed out after {limit} s"
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    lines = []
    for line in out.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines, status, time.monotonic() - t0


def write_results(
    rows: list[dict], statuses: dict[str, tuple[str, float]], total_s: float, rewritten: bool = False
) -> None:
    order = [s for s, _ in SCRIPTS]
    rows = sorted(rows, key=lambda r: order.index(script_of(r)) if script_of(r) in order else len(order))
    m = machine()
    # A rewrite (--write-only) keeps the date of the run that measured, not of the rewrite.
    when = max((r.get("machine", {}).get("date", "") for r in rows), default="") if rewritten else m["date"]
    out = [
        "# Benchmark results",
        "",
        f"Written by `bench/run_all.py` on {when} in {total_s / 60:.1f} min.",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}. **The machine is shared with"
        " other test runs** (other engineers' test suites and benchmarks run on it at the same time), so"
        " absolute figures are noisy; the last column is the 1-minute load average when each figure was"
        " printed (2 CPUs: above 2 means something else competed for them).",
        "",
        "| figure | value | target | met? | runs | load |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        target = f"{r['target_is']} {fmt(r['target'], r['unit'])}"
        vals = ", ".join(fmt(v, "").strip() for v in r.get("values", []))
        out.append(
            f"| {r['figure']} | {fmt(r['value'], r['unit'])} | {target} | {'yes' if r['met'] else '**no**'}"
            f" | {r['runs']} (median of {vals}) | {r.get('machine', {}).get('loadavg_1m', '')} |"
        )
    out += ["", "Scripts:", ""]
    for script, (status, secs) in sorted(
        statuses.items(), key=lambda kv: [s for s, _ in SCRIPTS].index(kv[0])
    ):
        out.append(f"- `bench/{script}`: {status}, {secs:.0f} s")
    out += [
        "",
        "## How to reproduce",
        "",
        "`make bench` (or `.venv/bin/python bench/run_all.py`); one figure: `.venv/bin/python bench/<script>.py"
        " --runs 3` (each prints its JSON lines on stdout, progress on stderr; `--help` for the knobs). Every"
        " script starts its own Mosquitto on a free loopback port (never the shared one on 1883) and keeps its"
        " data in a temp dir. The raw result lines of this run are in `bench/results.jsonl`.",
        "`bench/profile_ingest.py [--kind batch]` and `bench/fanout.py --profile` sample lightctl with py-spy;"
        " `bench/memory_breakdown.py` shows RSS by start-up stage and the largest allocations (tracemalloc).",
        "",
    ]
    analysis = HERE / "analysis.md"
    if analysis.exists():
        out += [analysis.read_text().rstrip(), ""]
    (HERE / "RESULTS.md").write_text("\n".join(out))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="", help="comma list of script names (without .py)")
    p.add_argument("--write-only", action="store_true", help="rewrite RESULTS.md from results.jsonl")
    args = p.parse_args(argv)
    status_file = HERE / "run_status.json"
    earlier = json.loads(status_file.read_text()) if status_file.exists() else {}
    if args.write_only:
        rows = [json.loads(x) for x in (HERE / "results.jsonl").read_text().splitlines() if x.strip()]
        done = {k: tuple(v) for k, v in earlier.items()}
        write_results(rows, done, sum(v[1] for v in done.values()), rewritten=True)
        return 0
    chosen = {s.strip() + ".py" for s in args.only.split(",") if s.strip()}
    t0 = time.monotonic()
    rows: list[dict] = []
    statuses: dict[str, tuple[str, float]] = {}
    if chosen and (HERE / "results.jsonl").exists():  # keep the other scripts' latest results
        for line in (HERE / "results.jsonl").read_text().splitlines():
            row = json.loads(line)
            if script_of(row) not in chosen:
                rows.append(row)
                statuses.setdefault(script_of(row), tuple(earlier.get(script_of(row), ("ok (earlier)", 0.0))))
    with open(HERE / "results.jsonl", "w") as jsonl:
        for row in rows:
            jsonl.write(json.dumps(row, ensure_ascii=False) + "\n")
        for script, limit in SCRIPTS:
            if chosen and script not in chosen:
                continue
            print(f"[run_all] {script} (limit {limit} s)", file=sys.stderr, flush=True)
            lines, status, secs = run(script, limit)
            statuses[script] = (status, secs)
            for line in lines:
                jsonl.write(json.dumps(line, ensure_ascii=False) + "\n")
                rows.append(line)
            jsonl.flush()
            print(f"[run_all] {script}: {status} in {secs:.0f} s", file=sys.stderr, flush=True)
    status_file.write_text(json.dumps(statuses))
    write_results(rows, statuses, time.monotonic() - t0)
    print(f"[run_all] wrote {HERE / 'RESULTS.md'}", file=sys.stderr)
    return 0 if all(s == "ok" for s, _ in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
