"""The `lightctl` command: check, demo, serve, plan, sim, token-hash."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lightctl import __version__
from lightctl.config.loader import ConfigError, District, load

EXIT_CONFIG = 2


def _load_or_exit(path: str) -> District:
    try:
        return load(path)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def cmd_check(args: argparse.Namespace) -> int:
    district = _load_or_exit(args.config)
    counts = district.counts()
    print(
        f"ok: {counts['roads']} roads, {counts['lamps']} lamps, {counts['concentrators']} concentrators, "
        f"{counts['groups']} groups, {counts['gateways']} gateways, {counts['zones']} zones, "
        f"{counts['programs']} programs, {counts['plans']} plans"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lightctl.app import run_demo

    district = _load_or_exit(args.config)
    return run_demo(district, port=args.port, speed=args.speed, duration=args.duration, start=args.start)


def cmd_serve(args: argparse.Namespace) -> int:
    from lightctl.app import run_serve

    district = _load_or_exit(args.config)
    return run_serve(district, config_path=args.config)


def cmd_sim(args: argparse.Namespace) -> int:
    from lightctl.app import run_sim

    district = _load_or_exit(args.config)
    return run_sim(district, faults=args.faults, speed=args.speed, duration=args.duration)


def cmd_plan(args: argparse.Namespace) -> int:
    from lightctl.app import run_plan

    district = _load_or_exit(args.config)
    return run_plan(district, date=args.date, target=args.target, as_json=args.json)


def cmd_token_hash(args: argparse.Namespace) -> int:
    from lightctl.api.auth import hash_token, new_token

    token = args.token or new_token()
    if not args.token:
        print(f"token (give it to its holder; it is not stored): {token}")
    print(f"hash (put it in config.yaml under tokens): {hash_token(token)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightctl", description="Control service for public lighting.")
    parser.add_argument("--version", action="version", version=f"lightctl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c", "--config", default="config.yaml", help="configuration file (default config.yaml)"
        )
        return p

    p = with_config(sub.add_parser("check", help="validate config.yaml, devices/ and schedules/"))
    p.set_defaults(func=cmd_check)

    p = with_config(sub.add_parser("demo", help="the whole district simulated on this machine"))
    p.add_argument("--port", type=int, default=8000, help="API and console port on 127.0.0.1 (default 8000)")
    p.add_argument(
        "--speed", type=float, default=1.0, help="simulated clock speed (60 = a minute per second)"
    )
    p.add_argument("--duration", type=float, default=None, help="exit after this many seconds")
    p.add_argument("--start", default=None, help="simulated start time, e.g. 2026-10-01T17:30 (site time)")
    p.set_defaults(func=cmd_demo)

    p = with_config(sub.add_parser("serve", help="production: the configured broker, gateways and storage"))
    p.set_defaults(func=cmd_serve)

    p = with_config(sub.add_parser("sim", help="only the simulated field devices, for a separate serve"))
    p.add_argument(
        "--faults", default="", help="faults to inject, e.g. lamp_failure:ha-003 (see docs/simulator.md)"
    )
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--duration", type=float, default=None)
    p.set_defaults(func=cmd_sim)

    p = with_config(sub.add_parser("plan", help="preview a night: steps, sources, sun times, energy"))
    p.add_argument("--date", default=None, help="YYYY-MM-DD (default: tonight)")
    p.add_argument(
        "--target", default=None, help="device id, road:<id>, zone:<id>, kind:<kind> or gateway:<id>"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("token-hash", help="make an API token and the hash to put in config.yaml")
    p.add_argument(
        "token", nargs="?", default=None, help="an existing token to hash (default: make a new one)"
    )
    p.set_defaults(func=cmd_token_hash)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
