"""Payloads of a profile-described MQTT device: validation into Readings, acks, commands.

Pure functions of bytes and the profile's `mqtt` section, no I/O, so every rule here can be fuzzed
without a broker. Anything a device sends that does not fit the profile raises `Invalid` with a
short, stable reason (the key under which the driver counts the drop); callers never see another
exception for bad input.

Representation is read leniently, values strictly: an `int` field accepts `60` or `60.0` but not
`60.5`, `"60"` or `true`; a value outside the profile's min / max drops the whole report, because a
report with one impossible value cannot be trusted in its other fields either. Fields the profile
does not declare are ignored (a newer firmware may add some). Only `ts` is required in a telemetry
object: a report that says when it was measured but not everything is still a report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import orjson

from lightctl.model import Reading
from lightctl.profiles import MqttSpec

# Field kinds, compared by identity in the hot loop.
_INT, _FLOAT, _BOOL, _BITMASK = 0, 1, 2, 3
_KINDS = {"int": _INT, "float": _FLOAT, "bool": _BOOL, "bitmask": _BITMASK}
_BITMASK_MAX = (1 << 32) - 1
_NO_FLAGS: frozenset[str] = frozenset()

# Drop reasons, the keys of drivers.sink.Drops for this transport.
TOO_LARGE = "payload_too_large"
NOT_JSON = "not_json"
BAD_SHAPE = "bad_shape"  # JSON, but not the object / list the topic carries
BAD_TYPE = "bad_type"
OUT_OF_RANGE = "out_of_range"
MISSING_FIELD = "missing_field"
UNKNOWN_DEVICE = "unknown_device"
BAD_STATE = "bad_state"
BATCH_TOO_LARGE = "batch_too_large"
ACK_UNKNOWN_ID = "ack_unknown_id"  # a command id this instance never sent (or long forgotten)
ACK_LATE = "ack_late"  # the ack of a command that had already timed out


class Invalid(Exception):
    """A payload that does not fit the profile; `reason` is the drop counter's key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _Rule:
    key: str
    quantity: str | None
    kind: int
    lo: float
    hi: float
    bits: tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class Ack:
    """A device's answer to a command."""

    command_id: str | None
    ok: bool
    on: bool | None = None
    level: int | None = None
    err: str = ""


def parse_json(payload: bytes, max_bytes: int) -> object:
    if len(payload) > max_bytes:
        raise Invalid(TOO_LARGE, f"{len(payload)} bytes > {max_bytes}")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise Invalid(NOT_JSON, str(exc)[:80]) from None


def _integral(value: object, key: str) -> int:
    kind = type(value)
    if kind is int:
        return value  # type: ignore[return-value]
    if kind is float and value.is_integer():  # type: ignore[attr-defined]
        return int(value)  # type: ignore[call-overload]
    raise Invalid(BAD_TYPE, f"{key} must be an integer, got {value!r:.40}")


class MqttCodec:
    """Telemetry, state, ack and command payloads of one profile."""

    def __init__(self, spec: MqttSpec) -> None:
        self.spec = spec
        self.max_bytes = spec.max_payload_bytes
        self._rules: dict[str, _Rule] = {}
        for key, f in spec.fields.items():
            lo = -math.inf if f.min is None else f.min
            hi = math.inf if f.max is None else f.max
            if f.type == "bitmask":
                lo, hi = max(lo, 0), min(hi, _BITMASK_MAX)
            bits = tuple(sorted(f.bits.items()))
            self._rules[key] = _Rule(key, f.quantity, _KINDS[f.type], lo, hi, bits)
        self._flag_cache: dict[int, frozenset[str]] = {0: _NO_FLAGS}
        self._online = spec.online.encode()
        self._offline = spec.offline.encode()
        self._cmd = spec.command
        self._command_topic = spec.topic("command", dev="{dev}")

    # --- device -> center ---------------------------------------------------------------------

    def reading(self, device: str, obj: object, received: float) -> Reading:
        """A telemetry object (single report or one lamp of a batch) as a Reading of `device`."""
        if type(obj) is not dict:
            raise Invalid(BAD_SHAPE, "telemetry must be a JSON object")
        rules = self._rules
        values: dict[str, float] = {}
        flags = _NO_FLAGS
        ts: float | None = None
        seq: int | None = None
        for key, value in obj.items():
            rule = rules.get(key)
            if rule is None:
                continue
            kind = rule.kind
            if kind == _FLOAT:
                vtype = type(value)
                if vtype is not float and vtype is not int:
                    raise Invalid(BAD_TYPE, f"{key} must be a number, got {value!r:.40}")
                x = float(value)
            elif kind == _BOOL:
                if value is True:
                    x = 1.0
                elif value is False:
                    x = 0.0
                else:
                    raise Invalid(BAD_TYPE, f"{key} must be true or false, got {value!r:.40}")
            else:
                x = _integral(value, key)
            if not rule.lo <= x <= rule.hi:
                raise Invalid(OUT_OF_RANGE, f"{key}={x!r} outside {rule.lo}..{rule.hi}")
            if kind == _BITMASK:
                flags = self._flags(rule, int(x))
            elif rule.quantity is not None:
                values[rule.quantity] = float(x)
            elif key == "ts":
                ts = float(x)
            elif key == "seq":
                seq = int(x)
        if ts is None:
            raise Invalid(MISSING_FIELD, "ts")
        if ts < 0:
            raise Invalid(OUT_OF_RANGE, f"ts={ts}")
        return Reading(device, ts, seq, values, flags, received)

    def _flags(self, rule: _Rule, raw: int) -> frozenset[str]:
        cached = self._flag_cache.get(raw)
        if cached is None:
            cached = frozenset(flag for bit, flag in rule.bits if raw >> bit & 1)
            if len(self._flag_cache) < 4096:
                self._flag_cache[raw] = cached
        return cached

    def batch(self, obj: object) -> tuple[float | None, list[object]]:
        """A concentrator batch: its send time and its lamp entries (each checked by `reading`)."""
        if type(obj) is not dict:
            raise Invalid(BAD_SHAPE, "batch must be a JSON object")
        lamps = obj.get("lamps")
        if type(lamps) is not list:
            raise Invalid(BAD_SHAPE if lamps is not None else MISSING_FIELD, "lamps must be a list")
        if len(lamps) > self.spec.max_batch:
            raise Invalid(BATCH_TOO_LARGE, f"{len(lamps)} lamps > {self.spec.max_batch}")
        ts_raw = obj.get("ts")
        ts = None if ts_raw is None else float(_integral(ts_raw, "ts"))
        if ts is not None and ts < 0:
            raise Invalid(OUT_OF_RANGE, f"ts={ts}")
        return ts, lamps

    def batch_device(self, entry: object) -> str:
        """The wire device id of one lamp entry of a batch."""
        if type(entry) is not dict:
            raise Invalid(BAD_SHAPE, "batch entry must be a JSON object")
        dev = entry.get("dev")
        if type(dev) is not str:
            raise Invalid(MISSING_FIELD if dev is None else BAD_TYPE, "dev")
        return dev

    def state(self, payload: bytes) -> bool:
        """True for the profile's `online` payload, False for `offline` (a last will)."""
        text = payload.strip()
        if text == self._online:
            return True
        if text == self._offline:
            return False
        raise Invalid(BAD_STATE, repr(payload[:40]))

    def ack(self, obj: object) -> Ack:
        if type(obj) is not dict:
            raise Invalid(BAD_SHAPE, "ack must be a JSON object")
        cid = obj.get(self._cmd.id)
        if cid is not None and type(cid) is not str:
            raise Invalid(BAD_TYPE, "ack id must be a string or null")
        ok = obj.get("ok")
        if type(ok) is not bool:
            raise Invalid(BAD_TYPE if ok is not None else MISSING_FIELD, "ack ok must be true or false")
        err = obj.get("err")
        if not ok:
            return Ack(cid, False, err=str(err)[:200] if err is not None else "")
        on = obj.get(self._cmd.on)
        if on is not None and type(on) is not bool:
            raise Invalid(BAD_TYPE, "ack on must be true or false")
        level_raw = obj.get(self._cmd.level)
        level = None if level_raw is None else _integral(level_raw, "level")
        if level is not None and not 0 <= level <= 100:
            raise Invalid(OUT_OF_RANGE, f"ack level={level}")
        return Ack(cid, True, on, level)

    # --- center -> device ---------------------------------------------------------------------

    def command_topic(self, wire_id: str) -> str:
        return self._command_topic.replace("{dev}", wire_id)

    # A command is held until its PUBACK (and queued while disconnected), and orjson's result keeps
    # its whole 4 KB buffer whatever its length: the commands are copies of their own size.

    def command(self, command_id: str, on: bool, level: int | None) -> bytes:
        body: dict[str, object] = {self._cmd.id: command_id, self._cmd.on: on}
        if level is not None:
            body[self._cmd.level] = level
        return memoryview(orjson.dumps(body)).tobytes()

    def get_command(self, command_id: str) -> bytes:
        return memoryview(orjson.dumps({self._cmd.id: command_id, self._cmd.get: True})).tobytes()
