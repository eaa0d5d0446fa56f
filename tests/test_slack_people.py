"""The workspace the Slack middleware needs before the acknowledgement: once read, never
waited for again (stale copies are re-read in the background)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from adapters.slack.outbox import SlackOutbox
from adapters.slack.people import WORKSPACE_CACHE_S, People
from core.models import Workspace
from core.queries import Queries


class SlowQueries:
    """``workspace()`` answers only when ``gate`` is set (a busy pool), counting reads."""

    def __init__(self) -> None:
        self.reads = 0
        self.gate = asyncio.Event()
        self.fail = False
        self.settings: dict[str, Any] = {"interviewers": ["U1"]}

    async def workspace(self, platform: str, external_id: str) -> Workspace:
        self.reads += 1
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("pool timeout")
        return Workspace(platform, external_id, dict(self.settings))


def people(queries: SlowQueries, now: list[float]) -> People:
    return People(cast(Queries, queries), cast(SlackOutbox, object()), monotonic=lambda: now[0])


async def test_a_stale_workspace_is_served_at_once_and_re_read_in_the_background() -> None:
    queries, now = SlowQueries(), [0.0]
    who = people(queries, now)
    queries.gate.set()
    first = await who.workspace("T1")
    assert first.settings == {"interviewers": ["U1"]} and queries.reads == 1

    queries.gate.clear()  # the database is busy from now on
    queries.settings = {"interviewers": ["U2"]}
    now[0] += WORKSPACE_CACHE_S + 1
    async with asyncio.timeout(1):  # no wait for the database
        assert await who.workspace("T1") is first
        assert await who.workspace("T1") is first
    await asyncio.sleep(0)
    assert queries.reads == 2  # one background re-read, not one per request
    queries.gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert (await who.workspace("T1")).settings == {"interviewers": ["U2"]}


async def test_a_failed_re_read_keeps_the_cached_workspace() -> None:
    queries, now = SlowQueries(), [0.0]
    who = people(queries, now)
    queries.gate.set()
    first = await who.workspace("T1")
    queries.fail = True
    now[0] += WORKSPACE_CACHE_S + 1
    assert await who.workspace("T1") is first
    for _ in range(5):
        await asyncio.sleep(0)
    assert await who.workspace("T1") is first and queries.reads >= 2
