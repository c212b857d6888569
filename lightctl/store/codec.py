"""JSON forms of domain types as the stores keep them (orjson; compact and stable)."""

from __future__ import annotations

import math
from typing import Any

import orjson

from lightctl.model import DesiredState, Reading


class CorruptRecord(ValueError):
    pass


def reading_to_list(reading: Reading) -> list[object]:
    # A positional list is about half the size of an object with keys, which matters in the buffer.
    return [
        reading.device,
        reading.ts,
        reading.seq,
        {k: v for k, v in reading.values.items() if math.isfinite(v)},
        sorted(reading.flags),
        reading.received,
    ]


def reading_from_list(item: Any) -> Reading:
    try:
        device, ts, seq, values, flags, received = item
        return Reading(
            device=str(device),
            ts=float(ts),
            seq=None if seq is None else int(seq),
            values={str(k): float(v) for k, v in dict(values).items()},
            flags=frozenset(str(f) for f in flags),
            received=float(received),
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise CorruptRecord(f"not a stored reading: {exc}") from exc


def dump_reading(reading: Reading) -> bytes:
    return orjson.dumps(reading_to_list(reading))


def load_reading(data: bytes | str) -> Reading:
    try:
        item = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptRecord(f"not JSON: {exc}") from exc
    return reading_from_list(item)


_DESIRED_FIELDS = ("on", "level", "k1", "k2", "scene", "brightness")


def dump_desired(state: DesiredState) -> str:
    fields = {name: getattr(state, name) for name in _DESIRED_FIELDS if getattr(state, name) is not None}
    fields["source"] = state.source
    return orjson.dumps(fields).decode()


def load_desired(text: str) -> DesiredState:
    raw = orjson.loads(text)
    if not isinstance(raw, dict):
        raise CorruptRecord(f"desired state is not an object: {text[:80]!r}")
    return DesiredState(
        on=_opt_bool(raw.get("on")),
        level=_opt_int(raw.get("level")),
        k1=_opt_bool(raw.get("k1")),
        k2=_opt_bool(raw.get("k2")),
        scene=_opt_int(raw.get("scene")),
        brightness=_opt_int(raw.get("brightness")),
        source=str(raw.get("source", "default")),
    )


def _opt_bool(value: object) -> bool | None:
    return None if value is None else bool(value)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def dump_targets(targets: tuple[str, ...]) -> str:
    return orjson.dumps(list(targets)).decode()


def load_targets(text: str) -> tuple[str, ...]:
    raw = orjson.loads(text)
    if not isinstance(raw, list):
        raise CorruptRecord(f"targets are not a list: {text[:80]!r}")
    return tuple(str(t) for t in raw)
