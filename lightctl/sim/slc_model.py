"""One simulated SLC-M1 controller and its luminaire, as devices.md section 1 describes them.

Independent of lightctl's driver on purpose (architecture: a driver's mistake must not be mirrored
here): it reads the profile only for data (wire names of the fields, bits, command field names,
electrical figures) and implements the datasheet's behaviour itself.

Electrical model, relay closed, healthy: p = rated_w * level / 100 + standby_w (+-5 % noise),
pf linear from pf_zero at 0 % through pf_low at pf_low_level % to pf_full at 100 % (+-0.01),
v = 220 V (+-3 V), i = p / (v * pf); relay open: p = i = pf = 0 (v is measured before the relay).
`on` and `level` are the controller's belief; a stuck relay does not change them. Energy and
burning hours accumulate from the noiseless power between updates; seq wraps at 65536.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import orjson

from lightctl.profiles import Electrical, MqttSpec
from lightctl.sim.slc_faults import ActiveFault, Fault

NOMINAL_V = 220.0
NOISE_V = 3.0
NOISE_P = 0.05
NOISE_PF = 0.01
NOISE_T = 1.0
AMBIENT_T = 24.0


@dataclass(frozen=True, slots=True)
class WireNames:
    """The profile's names for telemetry and command fields, looked up once."""

    by_quantity: dict[str, str]
    ts: str
    seq: str
    alarm: str | None
    bit_of_flag: dict[str, int]
    cmd_id: str
    cmd_on: str
    cmd_level: str
    cmd_get: str

    @classmethod
    def of(cls, spec: MqttSpec) -> WireNames:
        by_quantity = {f.quantity: key for key, f in spec.fields.items() if f.quantity}
        alarm = next((key for key, f in spec.fields.items() if f.type == "bitmask"), None)
        bits = {flag: bit for bit, flag in spec.fields[alarm].bits.items()} if alarm else {}
        c = spec.command
        return cls(by_quantity, "ts", "seq", alarm, bits, c.id, c.on, c.level, c.get)


@dataclass(frozen=True, slots=True)
class LampTruth:
    """What a simulated lamp really does at a moment, for scoring detections."""

    device: str
    wire_id: str
    reachable: bool  # its link is up and it is neither silenced nor offline
    on: bool  # controller's belief
    level: int
    relay_closed: bool
    lit: bool  # the luminaire gives light
    power_w: float  # noiseless
    voltage: float  # noiseless
    flags: frozenset[str]  # status bits it would report now
    faults: tuple[Fault, ...]


class SimLamp:
    """State of one controller; every method takes the clock time `now`."""

    __slots__ = (
        "device_id", "driver_level", "electrical", "energy_kwh", "faults", "hours", "level", "names", "noise",
        "on", "phase", "rated_w", "report_s", "rng", "seq", "stuck_seen", "updated", "wire_id",
    )  # fmt: skip

    def __init__(
        self,
        device_id: str,
        wire_id: str,
        rated_w: float,
        report_s: float,
        phase: float,
        electrical: Electrical,
        names: WireNames,
        rng: random.Random,
        noise: bool,
        now: float,
        on: bool = False,
        level: int = 100,
    ) -> None:
        self.device_id, self.wire_id, self.rated_w = device_id, wire_id, rated_w
        self.report_s, self.phase = report_s, phase
        self.electrical, self.names, self.rng, self.noise = electrical, names, rng, noise
        self.on = on
        self.driver_level = level  # what the LED driver was last told while powered
        self.level = level if on else 0
        self.energy_kwh = round(rng.uniform(0, 400), 3)
        self.hours = rng.uniform(0, 8000)
        self.seq = rng.randrange(65536)
        self.updated = now
        self.faults: list[ActiveFault] = []
        self.stuck_seen = False

    # --- faults ---------------------------------------------------------------------------------

    def fault(self, kind: Fault, now: float) -> ActiveFault | None:
        for f in self.faults:
            if f.kind is kind and f.active(now):
                return f
        return None

    def active_faults(self, now: float) -> tuple[Fault, ...]:
        return tuple(f.kind for f in self.faults if f.active(now))

    # --- physics --------------------------------------------------------------------------------

    def relay_closed(self, now: float) -> bool:
        if self.faults:
            if self.fault(Fault.RELAY_STUCK_ON, now):
                return True
            if self.fault(Fault.RELAY_STUCK_OFF, now):
                return False
        return self.on

    def _driver(self, now: float) -> int:
        """The level the LED driver runs at: frozen while it does not answer (driver_fault), else
        the level the controller applies (it tells the driver again once the driver answers)."""
        if self.on and not (self.faults and self.fault(Fault.DRIVER_FAULT, now)):
            self.driver_level = self.level
        return self.driver_level

    def _output(self, now: float) -> float:
        """Share of rated light the luminaire gives with its relay closed."""
        if self.faults:
            if self.fault(Fault.LAMP_FAILURE, now):
                return 0.0
            cycling = self.fault(Fault.CYCLING, now)
            if cycling is not None:
                every = max(2, int(cycling.param("every")))
                slot = math.floor((now - self.phase) / self.report_s + 1e-6)
                if slot % every == every - 1:
                    return 0.0
        return self._driver(now) / 100

    def _share(self, now: float) -> float:
        """Share of the healthy lamp power drawn for the light given (power_share)."""
        f = self.fault(Fault.POWER_SHARE, now) if self.faults else None
        return 1.0 if f is None else f.param("share")

    def _pf(self, output: float, now: float) -> float:
        low = self.fault(Fault.LOW_PF, now) if self.faults else None
        if low is not None:
            return low.param("pf")
        el = self.electrical
        pf_low = el.pf_low if el.pf_low is not None else el.pf_full
        pf_zero = el.pf_zero if el.pf_zero is not None else pf_low
        x = output * 100
        knee = el.pf_low_level
        if x >= knee:
            return pf_low + (el.pf_full - pf_low) * (x - knee) / max(1, 100 - knee)
        return pf_zero + (pf_low - pf_zero) * x / max(1, knee)

    def true_power(self, now: float) -> float:
        if not self.relay_closed(now):
            return 0.0
        return self.rated_w * self._output(now) * self._share(now) + self.electrical.standby_w

    def true_voltage(self, now: float) -> float:
        for kind in (Fault.VOLTAGE_HIGH, Fault.VOLTAGE_LOW):
            f = self.fault(kind, now) if self.faults else None
            if f is not None:
                return f.param("v")
        return NOMINAL_V

    def flags(self, now: float) -> frozenset[str]:
        if not self.faults:
            self.stuck_seen = False
            return frozenset()
        out: set[str] = set()
        failure = self.fault(Fault.LAMP_FAILURE, now)
        if failure is not None and failure.param("bit"):
            out.add("lamp_fault")
        stuck = self.fault(Fault.RELAY_STUCK_ON, now) or self.fault(Fault.RELAY_STUCK_OFF, now)
        if stuck is None:
            self.stuck_seen = False
        else:
            self.stuck_seen = self.stuck_seen or self.relay_closed(now) != self.on
            if self.stuck_seen and stuck.param("bit"):
                out.add("relay_stuck")
        for kind, flag in (
            (Fault.DRIVER_FAULT, "driver_fault"),
            (Fault.OVER_TEMPERATURE, "over_temperature"),
            (Fault.TILT, "tilt"),
        ):
            if self.fault(kind, now):
                out.add(flag)
        return frozenset(out)

    def advance(self, now: float) -> None:
        """Accumulate energy and burning hours up to `now`."""
        dt = now - self.updated
        if dt > 0:
            power = self.true_power(now)
            self.energy_kwh += power * dt / 3_600_000
            if power > self.electrical.standby_w + 1e-9:
                self.hours += dt / 3600
        self.updated = now

    # --- the wire -------------------------------------------------------------------------------

    def telemetry(self, now: float, ts: float | None = None) -> dict[str, object]:
        """One report (advances seq); `ts` is the measurement time if not now."""
        self.advance(now)
        self.seq = (self.seq + 1) % 65536
        rng, noise = self.rng, self.noise
        v = self.true_voltage(now) + (rng.uniform(-NOISE_V, NOISE_V) if noise else 0.0)
        closed = self.relay_closed(now)
        if closed:
            output = self._output(now)
            p = (self.rated_w * output * self._share(now) + self.electrical.standby_w) * (
                1 + (rng.uniform(-NOISE_P, NOISE_P) if noise else 0)
            )
            pf = min(1.0, self._pf(output, now) + (rng.uniform(-NOISE_PF, NOISE_PF) if noise else 0.0))
            i = p / (v * pf) if v > 1 and pf > 0 else 0.0
        else:
            p = pf = i = 0.0
        hot = self.fault(Fault.OVER_TEMPERATURE, now) if self.faults else None
        warmth = self.true_power(now) / self.rated_w if self.rated_w else 0.0  # noiseless: +-1 deg C below
        t = hot.param("t") if hot else AMBIENT_T + 8 * warmth
        t += rng.uniform(-NOISE_T, NOISE_T) if noise else 0.0
        n = self.names
        q = n.by_quantity
        report: dict[str, object] = {n.ts: int(now if ts is None else ts), n.seq: self.seq}
        values = (
            ("on", self.on), ("level", self.level), ("voltage", round(v, 1)), ("current", round(i, 3)),
            ("power", round(p, 1)), ("pf", round(pf, 3)), ("energy_kwh", round(self.energy_kwh, 3)),
            ("temperature", round(t, 1)), ("hours", int(self.hours)),
        )  # fmt: skip
        for quantity, value in values:
            key = q.get(quantity)
            if key is not None:
                report[key] = value
        if n.alarm is not None:
            bits = 0
            for flag in self.flags(now):
                bit = n.bit_of_flag.get(flag)
                if bit is not None:
                    bits |= 1 << bit
            report[n.alarm] = bits
        return report

    def command(self, payload: bytes, now: float) -> tuple[dict[str, object], bool]:
        """Execute a command payload: (the ack, whether a report must follow)."""
        n = self.names
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return self._refuse(None, "payload is not JSON"), False
        if not isinstance(obj, dict):
            return self._refuse(None, "command must be a JSON object"), False
        raw_id = obj.get(n.cmd_id)
        cid = raw_id if isinstance(raw_id, str) else None
        unknown = sorted(k for k in obj if k not in (n.cmd_id, n.cmd_on, n.cmd_level, n.cmd_get))
        if unknown:
            return self._refuse(cid, f"unknown field {unknown[0]!r}"), False
        if cid is None or not 1 <= len(cid) <= 64:
            return self._refuse(cid, "id must be a string of 1-64 characters"), False
        if n.cmd_get in obj:
            if obj[n.cmd_get] is not True:
                return self._refuse(cid, "get must be true"), False
            if n.cmd_on in obj or n.cmd_level in obj:
                return self._refuse(cid, "get cannot be combined with on or level"), False
            return self._ack(cid), True
        if n.cmd_on not in obj:
            return self._refuse(cid, "on missing"), False
        on = obj[n.cmd_on]
        if not isinstance(on, bool):
            return self._refuse(cid, "on must be true or false"), False
        level = obj.get(n.cmd_level, 100)
        if type(level) is not int or not 0 <= level <= 100:
            return self._refuse(cid, "level must be an integer 0-100"), False
        self.advance(now)
        self.on = on
        self.level = level if on else 0
        self._driver(now)
        return self._ack(cid), True

    def _refuse(self, cid: str | None, why: str) -> dict[str, object]:
        return {self.names.cmd_id: cid, "ok": False, "err": why}

    def _ack(self, cid: str) -> dict[str, object]:
        n = self.names
        return {n.cmd_id: cid, "ok": True, n.cmd_on: self.on, n.cmd_level: self.level}

    def truth(self, now: float, reachable: bool) -> LampTruth:
        closed = self.relay_closed(now)
        return LampTruth(
            self.device_id, self.wire_id, reachable, self.on, self.level, closed,
            closed and self._output(now) > 0, self.true_power(now), self.true_voltage(now),
            self.flags(now), self.active_faults(now),
        )  # fmt: skip
