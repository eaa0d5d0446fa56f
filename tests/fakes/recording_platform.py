"""A Platform that records what the engine asked it to show (for service unit tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.counter import CounterView
from core.models import Challenge, Interview, Turn, Workspace


@dataclass
class RecordingReply:
    text: str = ""
    footer: str | None = None
    failure: str | None = None

    async def append(self, delta: str) -> None:
        self.text += delta

    async def finish(self, footer: str) -> None:
        self.footer = footer

    async def fail(self, message: str) -> None:
        self.failure = message


@dataclass
class RecordingPlatform:
    name: str = "test"
    rooms: dict[str, str] = field(default_factory=dict)
    notices: list[tuple[str, str]] = field(default_factory=list)
    counters: list[CounterView] = field(default_factory=list)
    replies: list[RecordingReply] = field(default_factory=list)
    closed: list[tuple[str, str]] = field(default_factory=list)
    fail_open: bool = False
    # Everything shown in the conversation, in order: ("notice", text), ("reply", "").
    timeline: list[tuple[str, str]] = field(default_factory=list)

    def when(self, moment: datetime, zone: str) -> str:
        return f"<when {moment.isoformat()} {zone}>"

    def mention(self, user_id: str) -> str:
        return f"<@{user_id}>"

    def counter_refresh_s(self, view: CounterView) -> float | None:
        return None

    async def open_room(
        self, interview: Interview, challenge: Challenge, view: CounterView
    ) -> None:
        if self.fail_open:
            raise RuntimeError("platform refused")
        interview.room_key = f"room-{interview.candidate_id}-{len(self.rooms)}"
        self.rooms[interview.id] = interview.room_key
        self.counters.append(view)

    async def post_notice(self, interview: Interview, text: str) -> None:
        self.notices.append((interview.id, text))
        self.timeline.append(("notice", text))

    def reply_writer(self, interview: Interview, turn: Turn) -> RecordingReply:
        reply = RecordingReply()
        self.replies.append(reply)
        self.timeline.append(("reply", turn.content))
        return reply

    async def show_counter(self, interview: Interview, view: CounterView) -> None:
        self.counters.append(view)

    async def close_room(self, interview: Interview, view: CounterView, note: str) -> None:
        self.counters.append(view)
        self.closed.append((interview.id, note))
        self.timeline.append(("closed", note))

    async def post_to_channel(self, workspace: Workspace, channel_id: str, text: str) -> None:
        self.notices.append((channel_id, text))

    async def send_dm(self, workspace: Workspace, user_id: str, text: str) -> None:
        self.notices.append((user_id, text))

    async def upload_file(
        self, workspace: Workspace, channel_id: str, filename: str, content: bytes, title: str
    ) -> None:
        self.notices.append((channel_id, filename))

    def notice_texts(self) -> list[str]:
        return [text for _, text in self.notices]
