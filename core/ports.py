"""The ports the engine talks through: storage, the language model, chat platforms.

Adapters (Slack, Discord, console) implement :class:`Platform`; ``storage`` implements
:class:`InterviewStore`; :mod:`core.llm` and :mod:`core.offline_model` implement
:class:`ChatModel`. Unit tests use in-memory fakes of each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from core.models import AuditEvent, Challenge, Interview, Turn, Workspace

if TYPE_CHECKING:
    from core.counter import CounterView

ChatMessage = dict[str, str]
OnDelta = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class ChatRequest:
    """One streamed chat completion."""

    model: str
    messages: Sequence[ChatMessage]
    max_completion_tokens: int
    temperature: float | None = None


@dataclass(frozen=True)
class Usage:
    """Token usage as the API reported it (authoritative)."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatResult:
    """What a call produced. ``usage`` is None when the stream broke before reporting it."""

    text: str
    usage: Usage | None
    error: str | None = None  # a message fit for the candidate when the call failed
    reached_model: bool = False  # the model started answering (tokens were spent)
    finish_reason: str | None = None


class ChatModel(Protocol):
    """A streaming chat model (the OpenAI gateway, or the offline model)."""

    label: str | None  # shown on every reply when set (e.g. the offline model)

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        """Stream the reply into ``on_delta``; never raises for API failures."""
        ...


class ReplyWriter(Protocol):
    """A reply message in the interview conversation that fills in while the model streams."""

    async def append(self, delta: str) -> None: ...

    async def finish(self, footer: str) -> None:
        """The reply is complete; ``footer`` is the small per-turn token line."""
        ...

    async def fail(self, message: str) -> None:
        """The call failed; show ``message`` (after any partial text)."""
        ...


class Platform(Protocol):
    """What the engine needs from a chat platform."""

    name: str

    async def open_room(
        self, interview: Interview, challenge: Challenge, view: CounterView
    ) -> None:
        """Open the private conversation, post the challenge and the counter.

        Sets ``interview.room_key`` (how incoming messages are matched to the interview) and
        any ``interview.platform_data`` the adapter needs later.
        """
        ...

    async def post_notice(self, interview: Interview, text: str) -> None:
        """A short bot message in the interview conversation (warnings, refusals)."""
        ...

    def reply_writer(self, interview: Interview, turn: Turn) -> ReplyWriter: ...

    async def show_counter(self, interview: Interview, view: CounterView) -> None:
        """Bring the live counter up to date (adapters may coalesce and rate-limit)."""
        ...

    async def close_room(self, interview: Interview, view: CounterView, note: str) -> None:
        """Final counter and closing note; lock the conversation where the platform can."""
        ...

    async def post_to_channel(self, workspace: Workspace, channel_id: str, text: str) -> None: ...

    async def send_dm(self, workspace: Workspace, user_id: str, text: str) -> None: ...

    async def upload_file(
        self, workspace: Workspace, channel_id: str, filename: str, content: bytes, title: str
    ) -> None: ...


class InterviewStore(Protocol):
    """Persistence for workspaces, interviews, turns, audit events and custom challenges."""

    async def get_or_create_workspace(self, platform: str, external_id: str) -> Workspace: ...

    async def get_workspace(self, workspace_id: str) -> Workspace | None: ...

    async def save_workspace(self, workspace: Workspace) -> None: ...

    async def add_interview(self, interview: Interview, *events: AuditEvent) -> None:
        """Insert; raises ``Conflict`` if the candidate already has an open interview."""
        ...

    async def save_interview(self, interview: Interview, *events: AuditEvent) -> None:
        """Update (bumping ``version``) and append audit events in one transaction.

        Raises ``Conflict`` if the stored version moved on, or if the candidate already
        has another open interview.
        """
        ...

    async def get_interview(self, interview_id: str) -> Interview | None: ...

    async def find_by_room(self, platform: str, room_key: str) -> Interview | None: ...

    async def find_open_for_candidate(
        self, workspace_id: str, candidate_id: str
    ) -> Interview | None: ...

    async def list_open(self, workspace_id: str | None = None) -> list[Interview]:
        """Active and paused interviews (all workspaces when ``workspace_id`` is None)."""
        ...

    async def add_turn(self, turn: Turn) -> bool:
        """Insert and assign ``turn.seq``; False (and nothing stored) if the platform
        message id was already stored for this interview."""
        ...

    async def save_turn(self, turn: Turn, interview: Interview | None = None) -> None:
        """Update a turn, and the interview with it (in one transaction) when given."""
        ...

    async def list_turns(self, interview_id: str) -> list[Turn]:
        """All turns in arrival order."""
        ...

    async def list_audit(self, interview_id: str) -> list[AuditEvent]: ...

    async def get_custom_challenge(self, workspace_id: str | None, slug: str) -> Challenge | None:
        """A custom challenge of the workspace, or a global one (workspace None)."""
        ...

    async def list_custom_challenges(self, workspace_id: str | None) -> list[Challenge]: ...

    async def save_custom_challenge(self, workspace_id: str | None, challenge: Challenge) -> None:
        """Insert or replace by (workspace, slug)."""
        ...
