"""A :class:`core.ports.RateLimiter` in memory on the manual clock (service tests).

The rule is the in-process one of ``adapters.slack.limiter`` (GCRA, the same as
``storage.rate_limits``), with time from the engine's :class:`ManualClock`: a slot frees up
only when the test moves the clock, and ``acquire`` sleeps on that clock.
"""

from __future__ import annotations

from datetime import timedelta

from adapters.slack.limiter import MemoryRateLimiter
from core.clock import ManualClock


class ManualRateLimiter(MemoryRateLimiter):
    """Counts what was asked (``tries``: every ``try_acquire`` as (key, taken))."""

    def __init__(self, clock: ManualClock) -> None:
        self.manual = clock
        self.tries: list[tuple[str, bool]] = []
        super().__init__(clock=lambda: clock.now().timestamp(), sleep=self._sleep_on_clock)

    async def _sleep_on_clock(self, seconds: float) -> None:
        await self.manual.sleep_until(self.manual.now() + timedelta(seconds=seconds))

    async def try_acquire(self, key: str, per_second: float, burst: int) -> bool:
        taken = await super().try_acquire(key, per_second, burst)
        self.tries.append((key, taken))
        return taken

    def keys(self, prefix: str) -> list[str]:
        """The keys asked for that start with ``prefix`` (in order, repeated)."""
        return [key for key, _ in self.tries if key.startswith(prefix)]
