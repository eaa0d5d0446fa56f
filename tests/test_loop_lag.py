"""The event-loop lag monitor: a held loop shows up as lag; it stops cleanly."""

from __future__ import annotations

import asyncio
import time

from bot.loop_lag import LoopLagMonitor


async def test_a_late_wake_up_is_observed_as_its_lag() -> None:
    now = [100.0]
    late = iter([0.0, 0.25, 0.0])  # the second wake-up comes 250 ms late
    lags: list[float] = []
    forever = asyncio.Event()

    async def sleep(seconds: float) -> None:
        extra = next(late, None)
        if extra is None:
            await forever.wait()  # no more wake-ups
        now[0] += seconds + (extra or 0.0)

    monitor = LoopLagMonitor(lags.append, 0.1, clock=lambda: now[0], sleep=sleep)
    monitor.start()
    for _ in range(10):
        await asyncio.sleep(0)
    await monitor.stop()
    assert [round(lag, 6) for lag in lags] == [0.0, 0.25, 0.0]


async def test_a_blocked_loop_shows_up_on_the_real_loop() -> None:
    lags: list[float] = []
    seen = asyncio.Event()

    def observe(lag: float) -> None:
        lags.append(lag)
        seen.set()

    monitor = LoopLagMonitor(observe, 0.001)
    monitor.start()
    await asyncio.sleep(0)  # the sampler starts sleeping
    time.sleep(0.03)  # noqa: ASYNC251 - something holds the loop for 30 ms
    await seen.wait()
    await monitor.stop()
    assert lags[0] >= 0.025


async def test_stop_ends_the_sampler_and_may_be_called_twice() -> None:
    monitor = LoopLagMonitor(lambda lag: None, 0.001)
    await monitor.stop()  # never started: nothing to do
    monitor.start()
    monitor.start()  # once
    await asyncio.sleep(0)
    tasks = {t for t in asyncio.all_tasks() if t.get_name() == "loop-lag"}
    assert len(tasks) == 1
    await monitor.stop()
    await monitor.stop()
    assert all(t.done() for t in tasks)
