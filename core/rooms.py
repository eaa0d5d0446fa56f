"""Which interview a conversation belongs to, remembered once read.

A room (a Slack thread, a Discord thread) belongs to one interview for good, so the lookup
that starts every candidate message is served from memory. The copy is used for who the
candidate is and where the room is, never for the interview's state (status, budget),
which every turn reads fresh. An entry is read again after ``ttl_s``, and a room without
an interview is never remembered (its interview may be starting).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.clock import Clock
from core.models import Interview
from core.ports import UnitOfWorkFactory

TTL_S = 60.0
MAX_ROOMS = 10_000


class Rooms:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, ttl_s: float = TTL_S) -> None:
        self._uow = uow
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_s)
        self._known: dict[tuple[str, str], tuple[datetime, Interview]] = {}

    async def find(self, platform: str, room_key: str) -> Interview | None:
        """The interview of the room (a copy at most ``ttl_s`` old), or None."""
        key = (platform, room_key)
        now = self._clock.now()
        known = self._known.get(key)
        if known is not None and now - known[0] < self._ttl:
            return known[1]
        async with self._uow() as uow:
            interview = await uow.interviews.find_by_room(platform, room_key)
        self._known.pop(key, None)
        if interview is not None:
            if len(self._known) >= MAX_ROOMS:
                del self._known[next(iter(self._known))]  # the oldest
            self._known[key] = (now, interview)
        return interview

    def forget(self, platform: str, room_key: str) -> None:
        self._known.pop((platform, room_key), None)
