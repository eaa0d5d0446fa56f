"""An in-memory InterviewStore for fast unit tests of the service (Cosmic Python's fake repo)."""

from __future__ import annotations

import copy

from core.errors import Conflict
from core.models import AuditEvent, Challenge, Interview, Turn, Workspace


class MemoryStore:
    """Implements core.ports.InterviewStore with dicts; copies in and out like a database."""

    def __init__(self) -> None:
        self.workspaces: dict[str, Workspace] = {}
        self.interviews: dict[str, Interview] = {}
        self.turns: dict[str, list[Turn]] = {}
        self.audit: list[AuditEvent] = []
        self.challenges: dict[tuple[str | None, str], Challenge] = {}

    async def get_or_create_workspace(self, platform: str, external_id: str) -> Workspace:
        for ws in self.workspaces.values():
            if ws.platform == platform and ws.external_id == external_id:
                return copy.deepcopy(ws)
        ws = Workspace(platform=platform, external_id=external_id)
        self.workspaces[ws.id] = copy.deepcopy(ws)
        return ws

    async def get_workspace(self, workspace_id: str) -> Workspace | None:
        ws = self.workspaces.get(workspace_id)
        return copy.deepcopy(ws) if ws else None

    async def save_workspace(self, workspace: Workspace) -> None:
        self.workspaces[workspace.id] = copy.deepcopy(workspace)

    def _check_unique_open(self, interview: Interview) -> None:
        for other in self.interviews.values():
            if (
                other.id != interview.id
                and other.is_open
                and interview.is_open
                and other.workspace_id == interview.workspace_id
                and other.candidate_id == interview.candidate_id
            ):
                raise Conflict(f"<@{interview.candidate_id}> already has an active interview.")

    async def add_interview(self, interview: Interview, *events: AuditEvent) -> None:
        self._check_unique_open(interview)
        self.interviews[interview.id] = copy.deepcopy(interview)
        self.audit.extend(copy.deepcopy(list(events)))

    async def save_interview(self, interview: Interview, *events: AuditEvent) -> None:
        stored = self.interviews[interview.id]
        if stored.version != interview.version:
            raise Conflict("The interview changed while you were acting on it; please try again.")
        self._check_unique_open(interview)
        interview.version += 1
        self.interviews[interview.id] = copy.deepcopy(interview)
        self.audit.extend(copy.deepcopy(list(events)))

    async def get_interview(self, interview_id: str) -> Interview | None:
        found = self.interviews.get(interview_id)
        return copy.deepcopy(found) if found else None

    async def find_by_room(self, platform: str, room_key: str) -> Interview | None:
        for interview in self.interviews.values():
            if interview.platform == platform and interview.room_key == room_key:
                return copy.deepcopy(interview)
        return None

    async def find_open_for_candidate(
        self, workspace_id: str, candidate_id: str
    ) -> Interview | None:
        for interview in self.interviews.values():
            if (
                interview.is_open
                and interview.workspace_id == workspace_id
                and interview.candidate_id == candidate_id
            ):
                return copy.deepcopy(interview)
        return None

    async def list_open(self, workspace_id: str | None = None) -> list[Interview]:
        return [
            copy.deepcopy(i)
            for i in self.interviews.values()
            if i.is_open and (workspace_id is None or i.workspace_id == workspace_id)
        ]

    async def add_turn(self, turn: Turn) -> bool:
        turns = self.turns.setdefault(turn.interview_id, [])
        if any(t.platform_message_id == turn.platform_message_id for t in turns):
            return False
        turn.seq = len(turns) + 1
        turns.append(copy.deepcopy(turn))
        return True

    async def save_turn(self, turn: Turn, interview: Interview | None = None) -> None:
        if interview is not None:
            await self.save_interview(interview)
        turns = self.turns[turn.interview_id]
        turns[[t.id for t in turns].index(turn.id)] = copy.deepcopy(turn)

    async def list_turns(self, interview_id: str) -> list[Turn]:
        return copy.deepcopy(self.turns.get(interview_id, []))

    async def list_audit(self, interview_id: str) -> list[AuditEvent]:
        return [copy.deepcopy(e) for e in self.audit if e.interview_id == interview_id]

    async def get_custom_challenge(self, workspace_id: str | None, slug: str) -> Challenge | None:
        return self.challenges.get((workspace_id, slug)) or self.challenges.get((None, slug))

    async def list_custom_challenges(self, workspace_id: str | None) -> list[Challenge]:
        return [c for (ws, _), c in self.challenges.items() if ws in (workspace_id, None)]

    async def save_custom_challenge(self, workspace_id: str | None, challenge: Challenge) -> None:
        self.challenges[(workspace_id, challenge.slug)] = challenge
