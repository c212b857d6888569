"""Faults of the simulated Modbus devices (ZHD-G2 groups, their gateways, FCD-S1 facades).

Faults are injected at runtime from Python (`ModbusSim.inject(target, fault, **params)`) or from
a textual spec (`lightctl sim --faults SPEC`), in the same form as the SLC-M1 fleet's
(lightctl/sim/slc_faults.py), so one spec can hold both; items are separated by commas:

    ITEM     := FAULT ":" TARGET ["@" WHEN] ["~" DURATION] [";" NAME "=" VALUE]
    TARGET   := the inventory id of a group, a gateway or a facade zone
    WHEN     := "+" DURATION                after the simulator starts (default: at once)
              | EPOCH-SECONDS | ISO-8601    absolute clock time (ISO with an offset, else UTC)
    DURATION := NUMBER ["s" | "m" | "h"]    clock seconds by default; without one, until cleared

Examples:

    lamp_failure:zhg-01-u07;circuit=k2         K2 (side heads) of group zhg-01-u07 draws ~0
    contactor_stuck:zhg-02-u03;mode=k1_closed  K1 feedback stays 1 (welded) whatever the coil says
    cable_theft:zhg-05@+30m~10m                every group of gateway zhg-05 loses supply for 10 min
    channel_fault:longcheng;n=2                2 of the 8 channels of facade longcheng fail
    temperature:zhg-03-u01;c=-15               a cold cabinet (a condition, not a fault bit)

Times are clock times (a ScaledClock's seconds): `@+10m` at `--speed 60` is ten real seconds.

| fault | target | parameter (default) | effect |
|---|---|---|---|
| lamp_failure | group | circuit: k1, k2 or both (k1) | the circuit's lamps draw ~0 though the contactor is closed |
| contactor_stuck | group | mode: k1_open, k1_closed, k2_open, k2_closed (k1_open) | that contactor stays open / closed and its feedback bit 0 / 1, whatever the coil |
| contactor_bypass | group | circuit: k1, k2 or both (k1) | the contactor is jumpered out: its lamps draw power whenever there is supply, while coil and feedback bit still agree |
| extra_load | group | share: of the circuits' power (0.4) | an illegal tap (or wrong lamps): every lit circuit draws (1 + share) x its healthy power |
| breaker_tripped | group | | status bit1; voltage stays, both currents and feedback bits read 0 |
| door_open | group, facade | | door bit (ZHD-G2 bit0, FCD-S1 bit2) |
| leakage | group | ma: mA (45) | residual current register |
| over_temperature | group | c: deg C (82) | cabinet temperature; bit3 while >= 75 deg C |
| temperature | group | c: deg C (-15) | cabinet temperature only (a cold or hot cabinet) |
| supply_loss | group, facade | | mains absent: voltage ~0, supply-lost bit, no current, feedback bits 0; keeps answering |
| no_response | group | | the controller is silent: its gateway answers exception 11 after ~500 ms |
| cable_theft | gateway | | supply_loss on every group of the gateway at the same instant |
| gateway_hang | gateway, facade | | accepts TCP connections and never answers |
| channel_fault | facade | n: number of channels (1) | failed_channels; each removes 1/8 of the load; bit1 |
| controller_fault | facade | | bit0; the active scene no longer follows scene writes |
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

FaultValue = str | float | int


class ExceptionCode(IntEnum):
    ILLEGAL_FUNCTION = 1
    ILLEGAL_DATA_ADDRESS = 2
    ILLEGAL_DATA_VALUE = 3
    TARGET_FAILED_TO_RESPOND = 11


class DeviceException(Exception):
    """A simulated device refuses a request with a Modbus exception code."""

    def __init__(self, code: ExceptionCode) -> None:
        super().__init__(code.name)
        self.code = code


def _circuit(text: str) -> str:
    if text not in ("k1", "k2", "both"):
        raise ValueError(f"circuit must be k1, k2 or both, not {text!r}")
    return text


def _contactor(text: str) -> str:
    if text not in ("k1_open", "k1_closed", "k2_open", "k2_closed"):
        raise ValueError(f"contactor_stuck takes k1_open, k1_closed, k2_open or k2_closed, not {text!r}")
    return text


def _channels(text: str) -> int:
    n = int(text)
    if not 0 <= n <= 8:
        raise ValueError(f"channels must be 0-8, not {n}")
    return n


@dataclass(frozen=True)
class FaultKind:
    name: str
    targets: frozenset[str]  # "group", "gateway", "facade"
    param: str | None = None  # keyword of inject(); the spec's VALUE
    parse: Callable[[str], FaultValue] = str
    default: FaultValue | None = None


FAULTS: dict[str, FaultKind] = {
    f.name: f
    for f in (
        FaultKind("lamp_failure", frozenset({"group"}), "circuit", _circuit, "k1"),
        FaultKind("contactor_stuck", frozenset({"group"}), "mode", _contactor, "k1_open"),
        FaultKind("contactor_bypass", frozenset({"group"}), "circuit", _circuit, "k1"),
        FaultKind("extra_load", frozenset({"group"}), "share", float, 0.4),
        FaultKind("breaker_tripped", frozenset({"group"})),
        FaultKind("door_open", frozenset({"group", "facade"})),
        FaultKind("leakage", frozenset({"group"}), "ma", float, 45.0),
        FaultKind("over_temperature", frozenset({"group"}), "c", float, 82.0),
        FaultKind("temperature", frozenset({"group"}), "c", float, -15.0),
        FaultKind("supply_loss", frozenset({"group", "facade"})),
        FaultKind("no_response", frozenset({"group"})),
        FaultKind("cable_theft", frozenset({"gateway"})),
        FaultKind("gateway_hang", frozenset({"gateway", "facade"})),
        FaultKind("channel_fault", frozenset({"facade"}), "n", _channels, 1),
        FaultKind("controller_fault", frozenset({"facade"})),
    )
}


def fault_value(fault: str, target_kind: str, params: dict[str, FaultValue]) -> FaultValue | None:
    """Check a fault against its target's kind and return its one parameter (or its default)."""
    kind = FAULTS.get(fault)
    if kind is None:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(sorted(FAULTS))}")
    if target_kind not in kind.targets:
        raise ValueError(f"fault {fault} applies to {' or '.join(sorted(kind.targets))}, not a {target_kind}")
    unknown = set(params) - ({kind.param} if kind.param else set())
    if unknown:
        raise ValueError(
            f"fault {fault} takes {kind.param or 'no parameters'}, not {', '.join(sorted(unknown))}"
        )
    if kind.param is None:
        return None
    value = params.get(kind.param, kind.default)
    return kind.parse(str(value)) if value is not None else None


@dataclass(frozen=True)
class FaultSpec:
    """One item of a textual fault spec."""

    fault: str
    target: str
    params: tuple[tuple[str, FaultValue], ...] = ()
    at: float | None = None  # absolute clock time
    after_s: float | None = None  # clock seconds after the simulator started
    duration_s: float | None = None

    def param_dict(self) -> dict[str, FaultValue]:
        return dict(self.params)


_ITEM = re.compile(
    r"(?P<fault>[a-z_]+):(?P<target>[a-z0-9][a-z0-9-]*)(?:@(?P<when>[^~;]+))?(?:~(?P<dur>[^;]+))?"
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smh]?)")


def parse_duration(text: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"bad duration {text!r}: use e.g. 90, 90s, 10m or 2h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _when(text: str) -> tuple[float | None, float | None]:
    """(absolute clock time, seconds after start) of a WHEN."""
    text = text.strip()
    if text.startswith("+"):
        return None, parse_duration(text[1:])
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text), None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"bad time {text!r}: use +DURATION, epoch seconds or ISO 8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp(), None


def parse_fault_spec(text: str) -> list[FaultSpec]:
    """Parse a spec (module docstring); a bad item is named in the error."""
    specs: list[FaultSpec] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        head, *extras = item.split(";")
        match = _ITEM.fullmatch(head.strip())
        if not match:
            raise ValueError(f"fault {item!r}: expected FAULT:TARGET[@WHEN][~DURATION][;name=value]")
        kind = FAULTS.get(match["fault"])
        if kind is None:
            raise ValueError(
                f"fault {item!r}: unknown fault {match['fault']!r} (known: {', '.join(sorted(FAULTS))})"
            )
        try:
            at, after = _when(match["when"]) if match["when"] else (None, None)
            duration = parse_duration(match["dur"]) if match["dur"] else None
            params = tuple(_param(kind, extra) for extra in extras)
        except ValueError as exc:
            raise ValueError(f"fault {item!r}: {exc}") from None
        specs.append(FaultSpec(kind.name, match["target"], params, at, after, duration))
    return specs


def _param(kind: FaultKind, text: str) -> tuple[str, FaultValue]:
    name, sep, value = (part.strip() for part in text.partition("="))
    if not sep or name != kind.param:
        raise ValueError(f"bad parameter {text!r} (parameter of {kind.name}: {kind.param or 'none'})")
    return name, kind.parse(value)


@dataclass(frozen=True)
class FaultRecord:
    """Ground truth for scoring detectors: what was injected where, from when to when (clock time)."""

    target: str
    fault: str
    value: FaultValue | None
    start: float
    end: float | None = None
