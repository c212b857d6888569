"""Faults the simulated SLC-M1 fleet can show, and the `--faults SPEC` text form.

Each fault appears on the wire as the datasheet says the real device would show it (see
lightctl/sim/slc_model.py for the electrical side):

| fault            | target       | what the center sees                                                      |
|------------------|--------------|---------------------------------------------------------------------------|
| lamp_failure     | lamp         | bit0; lamp dark, p = driver standby only (`bit=0`: no bit, power only)    |
| relay_stuck_on   | lamp         | relay closed whatever is commanded: `on`/`level` follow commands, power    |
|                  |              | does not; bit1 from the first time belief and relay differ (latched);     |
|                  |              | `bit=0`: a controller that cannot sense its relay (no bit, power only)    |
| relay_stuck_off  | lamp         | relay open: p = i = pf = 0 while commanded on; bit1 as above (`bit=0` too)|
| driver_fault     | lamp         | bit2 (DALI driver not answering); light output stays where it was; when   |
|                  |              | it ends the driver takes the level the controller applies again           |
| power_share      | lamp         | the luminaire draws `share` (0.5) of its healthy lamp power (a driver set |
|                  |              | to the wrong current, a wrong luminaire fitted); standby unchanged        |
| deaf             | lamp         | ignores commands (no ack, no change) but keeps reporting on time          |
| over_temperature | lamp         | bit3, t about 85 deg C (`t=`)                                             |
| tilt             | lamp         | bit4 (pole struck)                                                        |
| silence          | lamp / conc. | hung controller: stays connected (state `online`), no reports, no acks    |
| offline          | lamp / conc. | connection lost: `offline` on the state topic (its last will), no traffic |
| cycling          | lamp         | lamp goes dark for one report interval in every `every` (default 4)       |
|                  |              | while `on`/`level` do not change (uncommanded dark -> lit transitions)    |
| low_pf           | lamp         | pf about 0.78 (`pf=`) while the relay is closed; i rises accordingly      |
| voltage_high     | lamp         | supply about 252 V (`v=`), +-3 V noise                                    |
| voltage_low      | lamp         | supply about 188 V (`v=`), +-3 V noise                                    |

SPEC syntax (`lightctl sim --faults SPEC`), items separated by commas:

    ITEM     := FAULT ":" TARGET ["@" WHEN] ["~" DURATION] (";" NAME "=" NUMBER)*
    TARGET   := a lamp's inventory id or MQTT id, or a concentrator's inventory id
    WHEN     := "+" DURATION                after the fleet starts (default: at once)
              | EPOCH-SECONDS | ISO-8601    absolute clock time (ISO with an offset, else UTC)
    DURATION := NUMBER ["s" | "m" | "h"]    clock seconds by default

    lamp_failure:ha-003,relay_stuck_off:zs-010@+600,voltage_high:dz-004@+5m~30m;v=251,silence:hcx-plc-1@+1h

Times are clock times (a ScaledClock's seconds), so `@+10m` at `--speed 60` is ten real seconds.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from enum import StrEnum


class Fault(StrEnum):
    LAMP_FAILURE = "lamp_failure"
    RELAY_STUCK_ON = "relay_stuck_on"
    RELAY_STUCK_OFF = "relay_stuck_off"
    DRIVER_FAULT = "driver_fault"
    OVER_TEMPERATURE = "over_temperature"
    TILT = "tilt"
    SILENCE = "silence"
    OFFLINE = "offline"
    CYCLING = "cycling"
    LOW_PF = "low_pf"
    VOLTAGE_HIGH = "voltage_high"
    VOLTAGE_LOW = "voltage_low"
    POWER_SHARE = "power_share"
    DEAF = "deaf"


CONCENTRATOR_FAULTS = frozenset({Fault.SILENCE, Fault.OFFLINE})
DEFAULT_PARAMS: dict[Fault, dict[str, float]] = {
    Fault.LAMP_FAILURE: {"bit": 1.0},
    Fault.RELAY_STUCK_ON: {"bit": 1.0},
    Fault.RELAY_STUCK_OFF: {"bit": 1.0},
    Fault.POWER_SHARE: {"share": 0.5},
    Fault.OVER_TEMPERATURE: {"t": 85.0},
    Fault.CYCLING: {"every": 4.0},
    Fault.LOW_PF: {"pf": 0.78},
    Fault.VOLTAGE_HIGH: {"v": 252.0},
    Fault.VOLTAGE_LOW: {"v": 188.0},
}


@dataclass(slots=True)
class ActiveFault:
    """One injected fault of one lamp or concentrator; active for start <= t < until."""

    kind: Fault
    start: float
    until: float | None = None
    params: dict[str, float] = field(default_factory=dict)

    def active(self, now: float) -> bool:
        return self.start <= now and (self.until is None or now < self.until)

    def param(self, name: str) -> float:
        value = self.params.get(name)
        return DEFAULT_PARAMS.get(self.kind, {}).get(name, 0.0) if value is None else value


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """An injection as the labelled evaluation scores it."""

    device: str  # inventory id
    fault: Fault
    start: float
    end: float | None  # None: still active (or open-ended)
    params: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class FaultOrder:
    """One parsed SPEC item; `after_s` is relative to the fleet's start, `at` absolute."""

    target: str
    fault: Fault
    at: float | None = None
    after_s: float | None = None
    duration_s: float | None = None
    params: tuple[tuple[str, float], ...] = ()


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")
_ITEM = re.compile(
    r"^(?P<fault>[a-z_]+):(?P<target>[A-Za-z0-9_-]+)(?:@(?P<when>[^~;]+))?(?:~(?P<dur>[^;]+))?$"
)


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"bad duration {text!r}: use e.g. 90, 90s, 10m or 2h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _when(text: str) -> tuple[float | None, float | None]:
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


def parse_faults(spec: str) -> list[FaultOrder]:
    """Parse a SPEC (module docstring); raises ValueError naming the bad item."""
    orders: list[FaultOrder] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        head, *extras = item.split(";")
        match = _ITEM.match(head.strip())
        if not match:
            raise ValueError(f"fault {item!r}: expected FAULT:TARGET[@WHEN][~DURATION][;name=value]")
        try:
            fault = Fault(match["fault"])
        except ValueError:
            known = ", ".join(f.value for f in Fault)
            raise ValueError(f"fault {item!r}: unknown fault {match['fault']!r} (known: {known})") from None
        try:
            at, after = _when(match["when"]) if match["when"] else (None, None)
            duration = parse_duration(match["dur"]) if match["dur"] else None
            params = tuple(_param(fault, extra) for extra in extras)
        except ValueError as exc:
            raise ValueError(f"fault {item!r}: {exc}") from None
        orders.append(FaultOrder(match["target"], fault, at, after, duration, params))
    return orders


def _param(fault: Fault, text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or name not in DEFAULT_PARAMS.get(fault, {}):
        allowed = ", ".join(DEFAULT_PARAMS.get(fault, {})) or "none"
        raise ValueError(f"bad parameter {text!r} (parameters of {fault.value}: {allowed})")
    try:
        return name, float(value)
    except ValueError:
        raise ValueError(f"parameter {name} needs a number, got {value!r}") from None
