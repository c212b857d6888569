"""What each kind of device is told, and how a partial setting (a program step or an override) lands
on it.

A setting is a DesiredState whose None fields are not set. Per kind:
- lamp {on, level};
- group {k1, k2, level}: `on` sets K1 and K2 both (unless the same setting names k1 / k2);
- facade {scene, brightness}: `on: false` is scene 0; `on: true` without a scene keeps the scene
  it would show if that is not 0, else scene 1 (weekday). `level` does not apply to facades.

Settings accumulate into a raw state (a field keeps its value until a setting names it); the output
a device is told is the raw state normalized: fields that do not apply are None, and so are fields
that do not matter while the device is dark (a lamp's level while off, a group's level with both
circuits open, a facade's brightness at scene 0), so the reconciler compares only what counts.
"""

from __future__ import annotations

from lightctl.model import DesiredState, DeviceKind

KIND_FIELDS: dict[DeviceKind, frozenset[str]] = {
    "lamp": frozenset({"on", "level"}),
    "group": frozenset({"on", "k1", "k2", "level"}),
    "facade": frozenset({"on", "scene", "brightness"}),
}
FULL_LEVEL = 100
WEEKDAY_SCENE = 1

_DEFAULT: dict[DeviceKind, DesiredState] = {
    "lamp": DesiredState(on=False, source="default"),
    "group": DesiredState(k1=False, k2=False, source="default"),
    "facade": DesiredState(scene=0, source="default"),
}


def default_state(kind: DeviceKind) -> DesiredState:
    """The device default (off), also the raw state a night's program starts from if nothing came before."""
    return _DEFAULT[kind]


def applies_to(kind: DeviceKind, setting: DesiredState) -> bool:
    """Whether a setting names any field that makes sense for this kind of device."""
    fields = KIND_FIELDS[kind]
    return any(getattr(setting, f) is not None for f in fields)


def apply_setting(kind: DeviceKind, base: DesiredState, setting: DesiredState, source: str) -> DesiredState:
    """The raw state after `setting` lands on `base`: named fields replace, the others keep their values."""
    if kind == "lamp":
        return DesiredState(
            on=base.on if setting.on is None else setting.on,
            level=base.level if setting.level is None else setting.level,
            source=source,
        )
    if kind == "group":
        k1, k2 = base.k1, base.k2
        if setting.on is not None:
            k1 = k2 = setting.on
        return DesiredState(
            k1=k1 if setting.k1 is None else setting.k1,
            k2=k2 if setting.k2 is None else setting.k2,
            level=base.level if setting.level is None else setting.level,
            source=source,
        )
    scene = base.scene
    if setting.scene is not None:
        scene = setting.scene
    elif setting.on is False:
        scene = 0
    elif setting.on is True and not scene:
        scene = WEEKDAY_SCENE
    return DesiredState(
        scene=scene,
        brightness=base.brightness if setting.brightness is None else setting.brightness,
        source=source,
    )


def normalize(kind: DeviceKind, raw: DesiredState) -> DesiredState:
    """The output a device of this kind is told, from a raw accumulated state."""
    if kind == "lamp":
        on = bool(raw.on)
        level = (FULL_LEVEL if raw.level is None else raw.level) if on else None
        return DesiredState(on=on, level=level, source=raw.source)
    if kind == "group":
        k1, k2 = bool(raw.k1), bool(raw.k2)
        level = (FULL_LEVEL if raw.level is None else raw.level) if (k1 or k2) else None
        return DesiredState(k1=k1, k2=k2, level=level, source=raw.source)
    scene = raw.scene or 0
    brightness = (FULL_LEVEL if raw.brightness is None else raw.brightness) if scene else None
    return DesiredState(scene=scene, brightness=brightness, source=raw.source)


def is_lit(state: DesiredState) -> bool:
    """Whether a normalized state draws lamp power (for energy and the night's lit period)."""
    return bool(state.on or state.k1 or state.k2 or state.scene)


def describe(state: DesiredState) -> str:
    """A short human form of a normalized state, for previews and logs."""
    if state.scene is not None:
        return "scene 0 (off)" if not state.scene else f"scene {state.scene}, brightness {state.brightness}%"
    if state.k1 is not None or state.k2 is not None:
        circuits = "+".join(name for name, closed in (("K1", state.k1), ("K2", state.k2)) if closed)
        return f"{circuits} on, level {state.level}%" if circuits else "K1+K2 off"
    return f"on, level {state.level}%" if state.on else "off"


def emergency_setting(action: str) -> DesiredState:
    """The setting of an emergency override: all_on = lamps at 100 %, groups K1+K2 on at full level
    (facades, only where targeted, at scene 3 full brightness); all_off = everything off."""
    if action == "all_on":
        return DesiredState(on=True, level=100, k1=True, k2=True, scene=3, brightness=100, source="emergency")
    if action == "all_off":
        return DesiredState(on=False, k1=False, k2=False, scene=0, source="emergency")
    raise ValueError(f"unknown emergency action {action!r}: all_on or all_off")


EMERGENCY_DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    # Facades join an all-on only when named; an all-off darkens everything.
    "all_on": ("kind:lamp", "kind:group"),
    "all_off": ("kind:lamp", "kind:group", "kind:facade"),
}
