"""Configuration reload with invalid files: 422 naming each error's file and path, the running
configuration stays in force (preview unchanged, devices still controlled); then a valid edit
reloads. The same through SIGHUP."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.reliability.harness import Rig, lamp_matches

NIGHT = "2026-12-15"  # a fixed night well after any override the test sets
TARGET = "road:hengan-lu"


@pytest.mark.slow
def test_invalid_reload_changes_nothing_then_a_valid_edit_reloads(rig: Rig) -> None:
    preview = _preview(rig)
    assert 70 in _levels(preview), "the repo's arterial program dims to 70 % at 23:00"
    programs = rig.config_dir / "schedules" / "programs.yaml"
    inventory = rig.config_dir / "devices" / "district.yaml"
    good_programs, good_inventory = programs.read_text(), inventory.read_text()

    programs.write_text(_arterial_at_23(good_programs, 150))
    _edit(inventory, lambda doc: doc["gateways"][1].__setitem__("units", "0-3"))
    assert rig.post("/reload", {}, role="operator").status_code == 403
    refused = rig.post("/reload", {}, role="office", expect=422).json()["detail"]
    errors = refused["errors"]
    assert any(e.startswith("schedules/programs.yaml: programs[0].steps[1].level:") for e in errors), errors
    assert any(e.startswith("devices/district.yaml: gateways[1].units:") and "0" in e for e in errors), errors
    assert "stays" in refused["message"]

    # The running configuration is still in force: same preview, devices still follow commands.
    assert _preview(rig) == preview
    rig.override([TARGET], on=True, level=45)
    rig.wait_for(
        lambda: all(lamp_matches(d, True, 45) for d in rig.devices(road="hengan-lu").values()),
        timeout=30,
        what="lamps following an override after a refused reload",
    )

    # SIGHUP with the same invalid files: refused too, logged, the service keeps running.
    rig.serve.signal(signal.SIGHUP)
    rig.wait_for(lambda: "reload refused" in rig.serve.tail(20), timeout=10, what="SIGHUP's refusal logged")
    assert rig.serve.running
    assert rig.health()["status"] == "ok"
    assert _preview(rig) == preview

    # A valid edit reloads: 23:00 now dims to 65 %.
    programs.write_text(good_programs)
    inventory.write_text(good_inventory)
    programs.write_text(_arterial_at_23(good_programs, 65))
    done = rig.post("/reload", {}, role="office", expect=200).json()
    assert done["reloaded"] is True
    levels = _levels(_preview(rig))
    assert 65 in levels, levels
    assert 70 not in levels, levels
    # ...and so does SIGHUP: back to 70 %.
    programs.write_text(good_programs)
    rig.serve.signal(signal.SIGHUP)
    rig.wait_for(lambda: 70 in _levels(_preview(rig)), timeout=10, what="SIGHUP reloading a valid edit")
    assert rig.serve.running
    time.sleep(1)
    assert all(lamp_matches(d, True, 45) for d in rig.devices(road="hengan-lu").values())


def _preview(rig: Rig) -> Any:
    return rig.get("/plan", role="viewer", date=NIGHT, target=TARGET)


def _levels(preview: Any) -> list[int]:
    return [
        step["state"]["level"]
        for group in preview["groups"]
        for step in group["steps"]
        if step["state"].get("level") is not None
    ]


def _edit(path: Path, change: Any) -> None:
    """Change a YAML file this harness wrote (plain keys, so a round trip keeps its meaning)."""
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))


def _arterial_at_23(text: str, level: int) -> str:
    """The repo's programs with the arterial program's 23:00 level changed (a text edit: a YAML
    round trip would turn the unquoted `on` keys into booleans)."""
    step = '{at: "23:00", level: 70}'
    assert text.index(step) < text.index("secondary-dimming"), "the first 23:00 step is the arterial one"
    return text.replace(step, f'{{at: "23:00", level: {level}}}', 1)
