"""Stopping tasks reliably.

On Python 3.11 `asyncio.wait_for` can lose a cancellation when its inner call finishes at the same
moment (CPython gh-86296, fixed in 3.12), and some libraries catch CancelledError. A stop that
cancels once and waits forever can then hang a shutdown; this cancels until the tasks are gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], rounds: int = 20, wait_s: float = 0.25
) -> list[str]:
    """Cancel `tasks` and wait until they end, cancelling again while any is left.

    Returns the names of tasks that still had not ended after all rounds (logged; not awaited).
    """
    pending = {t for t in tasks if not t.done()}
    for _ in range(rounds):
        if not pending:
            return []
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=wait_s)
    names = sorted(t.get_name() for t in pending)
    if names:
        log.error("tasks did not stop when cancelled: %s", ", ".join(names))
    return names
