"""A device's recent history, as far as the rules need it, and the fold that updates it.

A Window keeps, per sub-condition, how many consecutive reports showed it faulty or healthy; how long
each output has been drawing power (day_burner); and the recent uncommanded dark -> lit transitions
(cycling). It keeps no readings: a few counters per device, so that 100,000 lamps fit in memory.

`fold(ctx, window, observation, intent, arrival)` is deterministic (no clock, no I/O): it updates
the window and returns the alarm types that became active (ON), became clear (OFF) or were seen
active again (SEEN, so last_seen moves). A sub-condition becomes active after `ctx.needs[key]`
faulty reports in a row (1 unless the rule says otherwise) and clear after `clear_reports` healthy
ones; reports that could not judge it leave it as it was. Faulty reports more than 2.5 report
intervals apart are not "in a row".
"""

from __future__ import annotations

from collections import deque
from typing import Final

from lightctl.faults.catalog import type_of
from lightctl.faults.context import CYCLING, DAY_BURNER, MAIN, DeviceContext, Intent
from lightctl.faults.detectors import Observation

ON: Final = 1
OFF: Final = 0
SEEN: Final = 2
Change = tuple[str, int, str]  # (alarm type, ON / OFF / SEEN, evidence)

RESTORED = "/restored"
_MISSING: Final = object()
_NEVER: Final = float("-inf")
STALE_INTERVALS = 2.5


class Streak:
    __slots__ = ("active", "bad", "evidence", "good", "last_bad")

    def __init__(self, active: bool = False, evidence: str = "") -> None:
        self.active = active
        self.bad = 0
        self.good = 0
        self.last_bad = float("-inf")
        self.evidence = evidence


class Window:
    # Everything is None until needed: a healthy lamp costs one small object.
    __slots__ = ("dark", "high_since", "last_arrival", "restored", "streaks", "transitions")

    def __init__(self) -> None:
        self.streaks: dict[str, Streak] | None = None
        self.high_since: dict[str, float] | None = None  # channel -> first report of the current burn
        self.dark: dict[str, float] | None = None  # channel -> last report dark while meant to be lit
        self.transitions: deque[float] | None = None  # uncommanded dark -> lit, newest last
        self.restored: set[str] | None = None  # types open before a restart, not yet re-judged
        self.last_arrival = _NEVER

    def active_types(self) -> set[str]:
        return {type_of(key) for key, s in (self.streaks or {}).items() if s.active}

    def restore(self, alarm_type: str) -> None:
        """An alarm of this type was open before a restart: it stays active until judged clear."""
        if alarm_type in self.active_types():
            return
        if self.streaks is None:
            self.streaks = {}
        self.streaks[alarm_type + RESTORED] = Streak(active=True, evidence="open before restart")
        if self.restored is None:
            self.restored = set()
        self.restored.add(alarm_type)

    def forget(self, alarm_type: str) -> None:
        """Start the type afresh (after a crew resolved its alarm by hand)."""
        streaks = self.streaks or {}
        for key in [k for k in streaks if type_of(k) == alarm_type]:
            del streaks[key]
        if self.restored is not None:
            self.restored.discard(alarm_type)
        if alarm_type == DAY_BURNER:
            self.high_since = None
        if alarm_type == CYCLING:
            self.transitions = None


def _type_active(streaks: dict[str, Streak], alarm_type: str) -> bool:
    return any(s.active and type_of(k) == alarm_type for k, s in streaks.items())


def fold(
    ctx: DeviceContext, w: Window, obs: Observation, intent: Intent | None, arrival: float
) -> list[Change] | None:
    th = ctx.th
    verdicts = obs.verdicts
    if obs.high is not None or w.high_since is not None:
        _track_burn(ctx, w, obs, intent, arrival)
    if ctx.cycling and (obs.lit is not None or w.dark is not None or w.transitions is not None):
        _track_lit(ctx, w, obs, intent, arrival)
    if w.restored:
        _judge_restored(w.restored, verdicts)

    streaks = w.streaks
    changes: list[Change] | None = None
    for key, evidence in verdicts.items():
        if streaks is None:
            if evidence is None:
                continue
            streaks = w.streaks = {}
        s = streaks.get(key)
        if evidence is None:
            if s is None:
                continue
            s.bad = 0
            if not s.active:
                del streaks[key]
                continue
            s.good += 1
            if s.good >= th.clear_reports:
                del streaks[key]
                alarm_type = type_of(key)
                if key.endswith(RESTORED) and w.restored is not None:
                    w.restored.discard(alarm_type)
                if not _type_active(streaks, alarm_type):
                    changes = changes or []
                    changes.append((alarm_type, OFF, ""))
            continue
        if s is None:
            s = streaks[key] = Streak()
        elif arrival - s.last_bad > STALE_INTERVALS * ctx.interval_s and not s.active:
            s.bad = 0  # the earlier faulty report was too long ago to be "in a row"
        s.good = 0
        s.bad += 1
        s.last_bad = arrival
        s.evidence = evidence
        alarm_type = type_of(key)
        if s.active:
            changes = changes or []
            changes.append((alarm_type, SEEN, evidence))
        elif s.bad >= _need(ctx, w, key, intent, arrival):
            was_active = _type_active(streaks, alarm_type)
            s.active = True
            changes = changes or []
            changes.append((alarm_type, SEEN if was_active else ON, evidence))
    if streaks is not None and not streaks:
        w.streaks = None
    if ctx.circuits:
        w.last_arrival = arrival  # for relay_failure's "first poll after a write"
    return changes


def _need(ctx: DeviceContext, w: Window, key: str, intent: Intent | None, arrival: float) -> int:
    need = ctx.needs.get(key, 1)
    if need > 1 and intent is not None and key.startswith("relay_failure/"):
        # The first poll at least relay_settle_s after a write is enough on its own (design.md:
        # "feedback differing from its coil 1 s after a write or in 2 consecutive polls").
        settle_at = intent.commanded_at + ctx.th.relay_settle_s
        if w.last_arrival < settle_at <= arrival:
            return 1
    return need


def _track_burn(
    ctx: DeviceContext, w: Window, obs: Observation, intent: Intent | None, arrival: float
) -> None:
    since = w.high_since
    if obs.high is not None:
        for channel, high in obs.high.items():
            if high:
                if since is None:
                    since = w.high_since = {}
                if channel not in since:
                    since[channel] = arrival
            elif since is not None:
                since.pop(channel, None)
        if not since:
            w.high_since = since = None
    verdicts = obs.verdicts
    keys = [(c.burn_key, c.name) for c in ctx.circuits] if ctx.circuits else [(DAY_BURNER, MAIN)]
    for key, channel in keys:
        evidence = verdicts.get(key, _MISSING)
        if evidence is _MISSING or evidence is None or intent is None:
            continue
        start = max(arrival if since is None else since.get(channel, arrival), intent.changed_at)
        lasted = arrival - start
        if lasted >= ctx.th.day_burner_s:
            verdicts[key] = f"{evidence} for {lasted / 60:.0f} min while meant to be off"
        else:
            del verdicts[key]  # burning, but not for long enough yet: neither faulty nor healthy


def _track_lit(
    ctx: DeviceContext, w: Window, obs: Observation, intent: Intent | None, arrival: float
) -> None:
    th = ctx.th
    now_lit = obs.lit
    dark = w.dark
    if not now_lit:
        w.dark = None  # not meant to be lit now: a later switch-on is not a transition of its own
    else:
        commanded = _NEVER if intent is None else intent.commanded_at
        if dark is not None:
            for channel in [c for c in dark if c not in now_lit]:
                del dark[channel]
        for channel, lit in now_lit.items():
            if not lit:
                if dark is None:
                    dark = w.dark = {}
                dark[channel] = arrival
            elif dark is not None and channel in dark and commanded < dark.pop(channel):
                # dark -> lit with no command since the dark report: the device did it on its own
                if w.transitions is None:
                    w.transitions = deque()
                w.transitions.append(arrival)
        if dark is not None and not dark:
            w.dark = None
    trans = w.transitions
    if trans is not None:
        while trans and trans[0] < arrival - th.cycling_window_s:
            trans.popleft()
        if not trans:
            w.transitions = trans = None
    if now_lit:
        n = 0 if trans is None else len(trans)
        obs.verdicts[CYCLING] = (
            f"{n} uncommanded dark -> lit transitions in {th.cycling_window_s / 60:.0f} min"
            if n >= th.cycling_transitions
            else None
        )


def _judge_restored(restored: set[str], verdicts: dict[str, str | None]) -> None:
    for alarm_type in tuple(restored):
        bad: str | None = None
        good = False
        for key, evidence in verdicts.items():
            if type_of(key) != alarm_type:
                continue
            if evidence is None:
                good = True
            else:
                bad = evidence
        if bad is not None:
            verdicts[alarm_type + RESTORED] = bad
        elif good:
            verdicts[alarm_type + RESTORED] = None
