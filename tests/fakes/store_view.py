"""Reads (and a few writes) for test assertions, each in a unit of work of its own."""

from __future__ import annotations

from core.models import AuditEvent, Challenge, Interview, Turn, Workspace
from core.ports import UnitOfWorkFactory


class StoreView:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self.uow = uow

    async def get_interview(self, interview_id: str) -> Interview | None:
        async with self.uow() as uow:
            return await uow.interviews.get(interview_id)

    async def list_open(self, workspace_id: str | None = None) -> list[Interview]:
        async with self.uow() as uow:
            return await uow.interviews.list_open(workspace_id)

    async def list_turns(self, interview_id: str) -> list[Turn]:
        async with self.uow() as uow:
            return await uow.interviews.list_turns(interview_id)

    async def list_audit(self, interview_id: str) -> list[AuditEvent]:
        async with self.uow() as uow:
            return await uow.interviews.list_audit(interview_id)

    async def get_or_create_workspace(self, platform: str, external_id: str) -> Workspace:
        async with self.uow() as uow:
            workspace = await uow.workspaces.get_or_create(platform, external_id)
            await uow.commit()
        return workspace

    async def save_custom_challenge(self, workspace_id: str | None, challenge: Challenge) -> None:
        async with self.uow() as uow:
            await uow.challenges.save(workspace_id, challenge)
            await uow.commit()
