"""The common shape of a reply that fills in while the model streams (Slack and Discord)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod

from core.text import MessageSplitter

log = logging.getLogger(__name__)


class PacedReply(ABC):
    """Collects streamed text and hands it to :meth:`flush`: the first words at once, then at
    most one flush every ``interval_s``, each sending only what the platform's budget allows
    right now (:meth:`flush` says whether everything was sent; if not, the next one tries
    again), and the final text at once.

    Sending happens in a background task, so a slow or rate-limited platform never slows
    the model stream; text that arrives meanwhile is coalesced into the next flush. The
    flush under way is always allowed to complete (never cancelled half-sent), so the
    platform messages and what the reply believes it has sent never disagree.
    """

    def __init__(self, limit: int, interval_s: float) -> None:
        self.splitter = MessageSplitter(limit)
        self._interval_s = interval_s
        self._dirty = asyncio.Event()
        self._closing = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    async def append(self, delta: str) -> None:
        self.splitter.feed(delta)
        self._dirty.set()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while not self._closing.is_set():
            await self._dirty.wait()
            if self._closing.is_set():
                return
            self._dirty.clear()
            try:
                if not await self.flush(final=False, footer=None):
                    self._dirty.set()  # over budget for now: the rest goes next time
            except Exception:
                log.exception("streaming a reply failed; the final flush will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._interval_s)

    async def _close(self, footer: str) -> None:
        self._closing.set()
        self._dirty.set()
        if self._flusher is not None:
            await self._flusher
        self.splitter.finish()
        await self.flush(final=True, footer=footer)

    async def finish(self, footer: str) -> None:
        """The reply is complete; show it with the per-turn token line."""
        await self._close(footer)

    async def fail(self, message: str) -> None:
        """The call failed; show what arrived with ``message`` under it."""
        await self._close(message)

    @abstractmethod
    async def flush(self, *, final: bool, footer: str | None) -> bool:
        """Bring the platform messages up to date with ``self.splitter``, as far as the
        budget allows now (``final``: all of it, waiting for the budget if need be).
        Returns whether everything was sent."""
