"""The running parts the API reads from, gathered by the composition root (app.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lightctl.api.auth import TokenBook
from lightctl.clock import Clock
from lightctl.config.loader import District
from lightctl.drivers.sink import Drops
from lightctl.state import LiveState


@dataclass
class Services:
    district: District
    live: LiveState
    tokens: TokenBook
    clock: Clock
    demo: bool = False
    drops: dict[str, Drops] = field(default_factory=dict)  # per driver
    # Parts that land with later work are attached here by app.py; the API checks for None.
    extras: dict[str, Any] = field(default_factory=dict)
