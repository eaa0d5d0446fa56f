"""Who is who in a Slack workspace: its :class:`Workspace`, and who is an interviewer.

Interviewers are the users of ``SLACK_INTERVIEWERS``, the workspace's configured list
(``/interview config interviewers``) and the workspace's admins and owners (``users.info``,
cached). The Bolt middleware of :mod:`adapters.slack.listeners` asks once per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from adapters.slack.outbox import SlackOutbox
from core.models import Actor, Workspace
from core.queries import Queries

log = logging.getLogger(__name__)

ADMIN_CACHE_S = 600.0
# users.info runs before the request is acknowledged (Slack wants that within 3 s): a slow
# answer counts as "not an admin" this once (not cached), rather than a failed command.
ADMIN_LOOKUP_S = 1.5
# The workspace (its settings: interviewers, channels) is needed before the acknowledgement
# too. Once read it is served from memory, and re-read in the background when older than
# this: the acknowledgement never waits for the database (a busy pool made it wait up to
# its 30 s timeout), and another process's changes show within about this many seconds.
WORKSPACE_CACHE_S = 10.0


class People:
    def __init__(
        self,
        queries: Queries,
        outbox: SlackOutbox,
        interviewers: frozenset[str] = frozenset(),
        *,
        cache_s: float = ADMIN_CACHE_S,
        lookup_s: float = ADMIN_LOOKUP_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queries = queries
        self._outbox = outbox
        self._interviewers = interviewers
        self._cache_s = cache_s
        self._lookup_s = lookup_s
        self._monotonic = monotonic
        self._admins: dict[tuple[str, str], tuple[float, bool]] = {}
        self._workspaces: dict[str, tuple[float, Workspace]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    def serves(self, team_id: str) -> bool:
        """Whether ``team_id`` is the workspace of this bot's token (``auth.test``; any team
        until that is known)."""
        own = self._outbox.team_id
        return own is None or team_id == own

    async def workspace(self, team_id: str) -> Workspace:
        """From memory once read (re-read in the background when stale); the first time
        from the database."""
        cached = self._workspaces.get(team_id)
        if cached is None:
            await self._read_workspace(team_id)
            return self._workspaces[team_id][1]
        if cached[0] <= self._monotonic() and team_id not in self._refreshing:
            task = asyncio.create_task(self._refresh_workspace(team_id))
            self._refreshing[team_id] = task
            task.add_done_callback(lambda _: self._refreshing.pop(team_id, None))
        return cached[1]

    async def _read_workspace(self, team_id: str) -> None:
        workspace = await self._queries.workspace("slack", team_id)
        self._workspaces[team_id] = (self._monotonic() + WORKSPACE_CACHE_S, workspace)

    async def _refresh_workspace(self, team_id: str) -> None:
        try:
            await self._read_workspace(team_id)
        except Exception:  # the cached one stays; the next request tries again
            log.warning("could not re-read Slack workspace %s", team_id, exc_info=True)

    async def actor(self, workspace: Workspace, user_id: str) -> Actor:
        """SLACK_INTERVIEWERS, the configured list, workspace admins and owners."""
        configured = set(workspace.settings.get("interviewers", [])) | self._interviewers
        if user_id in configured:
            return Actor(user_id, is_interviewer=True)
        return Actor(user_id, is_interviewer=await self._is_admin(workspace.external_id, user_id))

    async def _is_admin(self, team_id: str, user_id: str) -> bool:
        key = (team_id, user_id)
        cached = self._admins.get(key)
        if cached and cached[0] > self._monotonic():
            return cached[1]
        try:
            async with asyncio.timeout(self._lookup_s):
                info = await self._outbox.call("users.info", user=user_id)
        except Exception:
            log.warning("users.info failed for %s; treating as non-admin", user_id, exc_info=True)
            return False
        user = info.get("user", {})
        admin = bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
        self._admins[key] = (self._monotonic() + self._cache_s, admin)
        return admin
