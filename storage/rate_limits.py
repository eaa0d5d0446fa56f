"""A rate budget shared by every process on one database (GCRA, one statement a call).

Each key keeps a "theoretical arrival time" (TAT). A call takes the next slot,
``tat = max(tat, now) + 1 / rate``, in one ``UPDATE ... RETURNING``, and waits until that
slot is within the burst allowance (``tat - now <= burst / rate``). Calls from any number of
processes queue up in the database, so together they never exceed the rate.

:meth:`SqlRateLimiter.try_acquire` never waits: one upsert takes the next slot only if it is
within the burst allowance now, and otherwise changes nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from core.ports import TRY_ACQUIRE_TOLERANCE
from storage.repositories import dialect_insert, insert_ignoring_duplicates, param, per_dialect
from storage.tables import rate_limits

Clock = Callable[[], float]


class SqlRateLimiter:
    """:class:`core.ports.RateLimiter` over the ``rate_limits`` table."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        # Every call is one statement (the first use of a key, three that are each safe
        # alone), so none needs a transaction: autocommit saves BEGIN and COMMIT, two of a
        # call's three round trips.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._clock = clock
        self._sleep = sleep

    async def _take_slot(self, key: str, interval: float) -> float:
        """The next slot's TAT (the slot itself is ``tat - interval``)."""
        now = self._clock()
        tat = rate_limits.c.tat
        step = sa.update(rate_limits).where(rate_limits.c.key == key)
        step = step.values(tat=sa.case((tat > now, tat), else_=now) + interval)
        async with self._engine.connect() as session:
            taken = (await session.execute(step.returning(tat))).scalar()
            if taken is None:  # first use of this key
                await session.execute(
                    insert_ignoring_duplicates(session, rate_limits, {"key": key, "tat": now})
                )
                taken = (await session.execute(step.returning(tat))).scalar_one()
        return float(taken)

    async def acquire(self, key: str, per_second: float, burst: int) -> None:
        interval = 1.0 / per_second
        tat = await self._take_slot(key, interval)
        wait = tat - self._clock() - burst * interval
        if wait > 0:
            await self._sleep(wait)

    async def try_acquire(self, key: str, per_second: float, burst: int) -> bool:
        interval = 1.0 / per_second
        now = self._clock()
        # the last TAT the burst allows now
        latest = now + (burst + TRY_ACQUIRE_TOLERANCE) * interval
        async with self._engine.connect() as connection:
            taken = await connection.scalar(
                _TAKE_IF_FREE[connection.dialect.name],
                {"key_": key, "now": now, "interval": interval, "latest": latest},
            )
        return taken is not None

    async def give_back(self, key: str, per_second: float) -> None:
        async with self._engine.connect() as connection:
            await connection.execute(_GIVE_BACK, {"key_": key, "interval": 1.0 / per_second})


def _take_if_free_statement(dialect: str) -> sa.Insert:
    """Take the next slot of ``key_`` only if it is free by ``latest``; a row comes back only
    when one was taken. First use: the row is created with its first slot taken."""
    tat = rate_limits.c.tat
    now, interval, latest = (sa.bindparam(n, type_=sa.Float) for n in ("now", "interval", "latest"))
    after = sa.case((tat > now, tat), else_=now) + interval
    return (
        dialect_insert(dialect, rate_limits)
        .values(key=param(rate_limits.c.key, "key_"), tat=now + interval)
        .on_conflict_do_update(
            index_elements=[rate_limits.c.key], set_={"tat": after}, where=after <= latest
        )
        .returning(tat)
    )


# Built once (see storage/repositories.py): two of these run before every model call.
_TAKE_IF_FREE = per_dialect(_take_if_free_statement)
_GIVE_BACK = (
    sa.update(rate_limits)
    .where(rate_limits.c.key == param(rate_limits.c.key, "key_"))
    .values(tat=rate_limits.c.tat - sa.bindparam("interval", type_=sa.Float))
)
