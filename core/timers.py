"""Keyed one-shot timers on the injected clock (one per interview: its next deadline or warning)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from core.clock import Clock

log = logging.getLogger(__name__)


class Timers:
    """``set(key, when, callback)`` replaces any timer of that key; callbacks run as tasks."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._waiting: dict[str, asyncio.Task[None]] = {}
        self._firing: set[asyncio.Task[None]] = set()

    def set(self, key: str, when: datetime, callback: Callable[[], Awaitable[None]]) -> None:
        self.cancel(key)
        self._waiting[key] = asyncio.create_task(self._wait(key, when, callback))

    def cancel(self, key: str) -> None:
        task = self._waiting.pop(key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _wait(
        self, key: str, when: datetime, callback: Callable[[], Awaitable[None]]
    ) -> None:
        await self._clock.sleep_until(when)
        me = asyncio.current_task()
        if self._waiting.get(key) is me:
            del self._waiting[key]
        assert me is not None
        self._firing.add(me)
        try:
            await callback()
        except Exception:
            log.exception("timer %s failed", key)
        finally:
            self._firing.discard(me)

    async def settle(self) -> None:
        """Wait until every timer that is due has finished its callback (for tests)."""
        for _ in range(100):
            await asyncio.sleep(0)
            if not self._firing:
                await asyncio.sleep(0)
                if not self._firing:
                    return
            await asyncio.gather(*list(self._firing), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._waiting.values()) + list(self._firing)
        self._waiting.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
