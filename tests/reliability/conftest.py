"""Fixtures for the reliability tests: a Rig (tests/reliability/harness.py) on a private broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.reliability.harness import Rig

MakeRig = Callable[..., Rig]


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[MakeRig]:
    """Build Rigs (the processes are stopped at the end, whatever happened)."""
    rigs: list[Rig] = []

    def make(broker_port: int, **kwargs: Any) -> Rig:
        rig = Rig(tmp_path / f"rig{len(rigs)}", broker_port=broker_port, **kwargs)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


@pytest.fixture
def rig(make_rig: MakeRig, mosquitto: servers.Mosquitto) -> Rig:
    """sim + serve on a private Mosquitto, both running."""
    made = make_rig(mosquitto.port)
    made.start_sim()
    made.start_serve()
    return made
