"""What the adapters ask: workspaces and their settings, the interview a command is about,
counters, challenges. Adapters read through these, never through the repositories."""

from __future__ import annotations

from typing import Any

from core import texts
from core.challenges import list_challenges
from core.context import Context
from core.counter import CounterView
from core.errors import InvalidInput, NotFound
from core.lifecycle import require_interviewer
from core.models import Actor, Challenge, Interview, Workspace
from core.upkeep import Upkeep


class Queries:
    def __init__(self, ctx: Context, upkeep: Upkeep) -> None:
        self.ctx = ctx
        self.upkeep = upkeep

    async def workspace(self, platform: str, external_id: str) -> Workspace:
        """The workspace of a Slack team, Discord guild or the console (created on first use)."""
        async with self.ctx.uow() as uow:
            workspace = await uow.workspaces.get_or_create(platform, external_id)
            await uow.commit()
        return workspace

    async def update_settings(self, workspace: Workspace, **changes: Any) -> Workspace:
        """Change team settings (interviewer channel, interviewers, time zone, ...)."""
        async with self.ctx.uow() as uow:
            fresh = await uow.workspaces.get(workspace.id) or workspace
            fresh.settings = {**fresh.settings, **changes}
            await uow.workspaces.update(fresh)
            await uow.commit()
        workspace.settings = fresh.settings
        return fresh

    async def interview(self, interview_id: str) -> Interview | None:
        async with self.ctx.uow() as uow:
            return await uow.interviews.get(interview_id)

    async def by_room(self, platform: str, room_key: str) -> Interview | None:
        async with self.ctx.uow() as uow:
            return await uow.interviews.find_by_room(platform, room_key)

    async def open_interviews(self, workspace_id: str | None = None) -> list[Interview]:
        async with self.ctx.uow() as uow:
            return await uow.interviews.list_open(workspace_id)

    async def for_candidate(self, workspace_id: str, candidate_id: str) -> Interview | None:
        async with self.ctx.uow() as uow:
            return await uow.interviews.find_open_for_candidate(workspace_id, candidate_id)

    async def find_for_command(
        self, workspace: Workspace, actor: Actor, candidate_id: str | None
    ) -> Interview:
        """The open interview a command is about: the candidate's, or the caller's only one."""
        require_interviewer(actor)
        mention = self.ctx.platforms[workspace.platform].mention
        if candidate_id:
            interview = await self.for_candidate(workspace.id, candidate_id)
            if interview is None:
                raise NotFound(texts.no_interview_for(mention, candidate_id))
            return interview
        mine = [
            i for i in await self.open_interviews(workspace.id) if i.interviewer_id == actor.user_id
        ]
        if not mine:
            raise NotFound(texts.NO_INTERVIEW_OF_YOURS)
        if len(mine) > 1:
            raise InvalidInput(texts.several_interviews(mention, [i.candidate_id for i in mine]))
        return mine[0]

    async def status(self, workspace: Workspace, actor: Actor) -> list[CounterView]:
        """Counters of the open interviews the caller runs (all of them for interviewers)."""
        require_interviewer(actor)
        opened = await self.open_interviews(workspace.id)
        mine = [i for i in opened if i.interviewer_id == actor.user_id] or opened
        return [await self.counter(i) for i in mine]

    async def counter(self, interview: Interview) -> CounterView:
        return self.upkeep.view(interview, await self.upkeep.challenge(interview))

    async def challenges(self, workspace_id: str | None) -> list[Challenge]:
        async with self.ctx.uow() as uow:
            return await list_challenges(uow.challenges, workspace_id)
