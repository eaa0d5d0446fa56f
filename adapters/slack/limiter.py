"""An in-process :class:`core.ports.RateLimiter` with the rule of ``storage.rate_limits``.

GCRA: each key keeps a "theoretical arrival time" (TAT). A call takes the next slot,
``tat = max(tat, now) + 1 / rate``, and waits until that slot is within the burst allowance
(``tat - now <= burst / rate``): ``burst`` calls go at once, then ``per_second`` on average.
It counts for this process only; the bot injects ``SqlRateLimiter`` so that every process
serving a workspace shares one budget. Used when nothing is injected (tests, tools).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from core.ports import TRY_ACQUIRE_TOLERANCE

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class MemoryRateLimiter:
    """:class:`core.ports.RateLimiter` in memory (one process)."""

    def __init__(self, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._tat: dict[str, float] = {}

    def reserve(self, key: str, per_second: float, burst: int) -> float:
        """Take the next slot of ``key``; how many seconds until it may be used."""
        interval = 1.0 / per_second
        now = self._clock()
        tat = max(self._tat.get(key, now), now) + interval
        self._tat[key] = tat
        return max(0.0, tat - now - burst * interval)

    async def acquire(self, key: str, per_second: float, burst: int) -> None:
        wait = self.reserve(key, per_second, burst)
        if wait > 0:
            await self._sleep(wait)

    async def try_acquire(self, key: str, per_second: float, burst: int) -> bool:
        """Take the next slot only if it is free now (never waits)."""
        interval = 1.0 / per_second
        now = self._clock()
        tat = max(self._tat.get(key, now), now) + interval
        if tat - now > (burst + TRY_ACQUIRE_TOLERANCE) * interval:
            return False
        self._tat[key] = tat
        return True

    async def give_back(self, key: str, per_second: float) -> None:
        if key in self._tat:
            self._tat[key] -= 1.0 / per_second
