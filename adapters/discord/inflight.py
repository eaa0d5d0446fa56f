"""The adapter's event and interaction handlers at work, so that stopping ends them while the
engine and the database are still open.

discord.py runs every event (``on_message``) and every interaction (slash command, button) in
a task of its own and never waits for them: ``Client.close()`` leaves them running. A turn
still streaming when the bot stops would then be cancelled only when the event loop closes,
in the middle of a database call, after the database was closed (and the turn never records
itself as interrupted).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


class InFlight:
    """Remembers the tasks running handlers. On stop, candidates' messages are cancelled at
    once (a cancelled turn records itself as ``failed``, "interrupted", charged what it
    cost); interactions get ``grace_s`` to finish."""

    def __init__(self, grace_s: float = 5.0) -> None:
        self.grace_s = grace_s
        self._messages: set[asyncio.Task[Any]] = set()
        self._interactions: set[asyncio.Task[Any]] = set()

    def message(self) -> None:
        """The current task handles a message: cancelled on stop."""
        self._add(self._messages)

    def interaction(self) -> None:
        """The current task handles an interaction: allowed to finish on stop."""
        self._add(self._interactions)

    @staticmethod
    def _add(into: set[asyncio.Task[Any]]) -> None:
        task = asyncio.current_task()
        if task is not None and task not in into:
            into.add(task)
            task.add_done_callback(into.discard)

    async def end(self) -> None:
        """Cancel the message handlers and give every handler ``grace_s`` to finish; cancel
        what is still running then (and wait for it, as long again at most)."""
        me = asyncio.current_task()
        messages = {t for t in self._messages if t is not me}
        for task in messages:
            task.cancel()
        pending = messages | {t for t in self._interactions if t is not me}
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=self.grace_s)
        if late:
            log.warning("cancelling %d Discord handler(s) still running at shutdown", len(late))
            for task in late:
                task.cancel()
            await asyncio.wait(late, timeout=self.grace_s)
