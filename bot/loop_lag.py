"""Event-loop lag: how late a task that sleeps a fixed interval wakes up.

Anything that holds the loop (a slow callback, CPU-heavy rendering, a synchronous call)
delays every other task by as much; a sleeper that asks for ``interval_s`` and wakes
``interval_s + lag`` later sees exactly that delay. The lags go to a Prometheus histogram
(``interview_buddy_event_loop_lag_seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

INTERVAL_S = 0.1


class LoopLagMonitor:
    """Observes the lag of every wake-up of a sleeper on the running loop."""

    def __init__(
        self,
        observe: Callable[[float], None],
        interval_s: float = INTERVAL_S,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._observe = observe
        self.interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling on the running loop (once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def _run(self) -> None:
        clock = self._clock or asyncio.get_running_loop().time
        while True:
            due = clock() + self.interval_s
            await self._sleep(self.interval_s)
            self._observe(max(0.0, clock() - due))

    async def stop(self) -> None:
        """Stop sampling and wait until the sampler has ended."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
