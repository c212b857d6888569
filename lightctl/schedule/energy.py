"""Estimated electrical power of a device in a desired state, for the night's energy in previews.

lamp: rated x level (dimmable; else full) + the profile's standby while the relay is closed;
group: each closed circuit's rated watts x level (dimmable; else full) + standby while either is
closed; facade: installed load x the scene's share (profile) x brightness + standby while a scene
shows. Dark devices draw nothing (the controllers' own consumption is not lamp energy).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lightctl.model import DesiredState, Device, DeviceKind
from lightctl.profiles import Profile


@dataclass(frozen=True, slots=True)
class LoadSignature:
    """What power depends on; devices sharing one are counted together."""

    kind: DeviceKind
    rated_w: float
    k1_w: float
    k2_w: float
    dimmable: bool
    standby_w: float
    scene_share: tuple[tuple[int, float], ...]
    custom_scene_share: float


def signature(device: Device, profile: Profile | None) -> LoadSignature:
    k1 = device.k1_w if device.k1_w is not None else device.rated_w / 2
    k2 = device.k2_w if device.k2_w is not None else device.rated_w - k1
    electrical = profile.electrical if profile is not None else None
    return LoadSignature(
        kind=device.kind,
        rated_w=device.rated_w,
        k1_w=k1,
        k2_w=k2,
        dimmable=device.dimmable,
        standby_w=electrical.standby_w if electrical else 0.0,
        scene_share=tuple(sorted(electrical.scene_share.items())) if electrical else (),
        custom_scene_share=electrical.custom_scene_share if electrical else 0.0,
    )


def power_w(load: LoadSignature, state: DesiredState) -> float:
    if load.kind == "lamp":
        if not state.on:
            return 0.0
        share = (state.level or 0) / 100 if load.dimmable else 1.0
        return load.rated_w * share + load.standby_w
    if load.kind == "group":
        if not (state.k1 or state.k2):
            return 0.0
        share = (state.level or 0) / 100 if load.dimmable else 1.0
        circuits = (load.k1_w if state.k1 else 0.0) + (load.k2_w if state.k2 else 0.0)
        return circuits * share + load.standby_w
    if not state.scene:
        return 0.0
    scene_share = dict(load.scene_share).get(state.scene, load.custom_scene_share)
    return load.rated_w * scene_share * (state.brightness or 0) / 100 + load.standby_w


def count_loads(devices: Iterable[Device], profiles: Mapping[str, Profile]) -> dict[LoadSignature, int]:
    counts: dict[LoadSignature, int] = {}
    for device in devices:
        sig = signature(device, profiles.get(device.profile))
        counts[sig] = counts.get(sig, 0) + 1
    return counts


def energy_kwh(
    loads: Mapping[LoadSignature, int], intervals: Iterable[tuple[float, float, DesiredState]]
) -> float:
    """kWh of the counted loads over (start, end, state) intervals in epoch seconds."""
    total_wh = 0.0
    for start, end, state in intervals:
        watts = sum(power_w(load, state) * n for load, n in loads.items())
        total_wh += watts * (end - start) / 3600
    return total_wh / 1000
