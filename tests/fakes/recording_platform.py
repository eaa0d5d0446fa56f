"""A Platform that records what the engine asked it to show (for service unit tests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from core.counter import CounterView
from core.models import Challenge, Interview, Turn, Workspace
from core.ports import PostedReport, ReportFile, ReportTarget
from core.report_view import ReportView


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
    reports: list[tuple[ReportTarget, ReportView, list[ReportFile]]] = field(default_factory=list)
    attached: list[tuple[str, list[ReportFile]]] = field(default_factory=list)
    private_files: list[tuple[str, str, ReportFile]] = field(default_factory=list)
    attach_inline: bool = True  # post_report carries the files (Discord); else a second call
    fail_reports: int = 0  # refuse this many report posts
    fail_attach: int = 0  # refuse this many file attachments
    gone_channels: set[str] = field(default_factory=set)  # refuse reports to these
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

    async def display_name(self, workspace: Workspace, user_id: str) -> str:
        return f"name-{user_id}"

    async def message_link(self, interview: Interview, message_id: str) -> str | None:
        return f"https://chat.example/{interview.id}/{message_id}"

    async def post_report(
        self,
        workspace: Workspace,
        target: ReportTarget,
        view: ReportView,
        files: Sequence[ReportFile],
    ) -> PostedReport:
        if self.fail_reports:
            self.fail_reports -= 1
            raise RuntimeError("platform refused the report")
        if target.channel_id in self.gone_channels:
            raise RuntimeError("channel_not_found")
        self.reports.append((target, view, list(files)))
        return PostedReport(ref=f"report-{len(self.reports)}", files_attached=self.attach_inline)

    async def attach_report_files(
        self, workspace: Workspace, target: ReportTarget, ref: str, files: Sequence[ReportFile]
    ) -> None:
        if self.fail_attach:
            self.fail_attach -= 1
            raise RuntimeError("platform refused the files")
        self.attached.append((ref, list(files)))

    async def send_file(
        self, workspace: Workspace, user_id: str, text: str, file: ReportFile
    ) -> None:
        self.private_files.append((user_id, text, file))

    def notice_texts(self) -> list[str]:
        return [text for _, text in self.notices]
