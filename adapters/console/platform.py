"""The console as a Platform: everything the engine shows is printed to a text stream."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO

from core.calendar import local_text
from core.counter import CounterView, counter_text
from core.models import Challenge, Interview, Turn, Workspace
from core.ports import PostedReport, ReportFile, ReportTarget
from core.report_view import ReportView, report_text

_CHANNEL = re.compile(r"<#([^>|]+)(?:\|[^>]*)?>")
_DATE = re.compile(r"<!date\^[^|>]*\|([^>]*)>")
_CODE_SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


def plain(text: str) -> str:
    """Chat markup as console text: ``<#C1>`` -> ``#C1``, `code` -> code."""
    text = _CHANNEL.sub(r"#\1", text)
    text = _DATE.sub(r"\1", text)
    return _CODE_SPAN.sub(r"\1", text)


class ConsoleReply:
    """Prints the model's reply as it streams."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._started = False

    async def append(self, delta: str) -> None:
        if not self._started:
            self._out.write("🤖 ")
            self._started = True
        self._out.write(delta)
        self._out.flush()

    async def finish(self, footer: str) -> None:
        self._out.write(f"\n   ({footer})\n")
        self._out.flush()

    async def fail(self, message: str) -> None:
        self._out.write(f"\n   {message}\n")
        self._out.flush()


class ConsolePlatform:
    """Implements core.ports.Platform by printing."""

    name = "console"

    def __init__(self, out: TextIO | None = None, folder: Path | None = None) -> None:
        self._out = out
        self.folder = folder  # where report files go (None: the current folder)

    def when(self, moment: datetime, zone: str) -> str:
        return local_text(moment, zone)

    def mention(self, user_id: str) -> str:
        """People are plain names in the console."""
        return user_id

    def counter_refresh_s(self, view: CounterView) -> float | None:
        return None  # a counter line is printed whenever something changes

    @property
    def out(self) -> TextIO:
        """The stream given, else whatever ``sys.stdout`` is now (the prompt may patch it)."""
        return self._out or sys.stdout

    def _line(self, text: str) -> None:
        self.out.write(plain(text) + "\n")
        self.out.flush()

    async def open_room(
        self, interview: Interview, challenge: Challenge, view: CounterView
    ) -> None:
        interview.room_key = f"console:{interview.id}"
        title = f"{challenge.title} ({challenge.difficulty})"
        self._line(f"━━ Interview with {interview.candidate_id}: {title}")
        self._line(challenge.description)
        self._line("━━ Type your messages to the AI assistant below.")

    async def post_notice(self, interview: Interview, text: str) -> None:
        self._line(f"📣 {text}")

    def reply_writer(self, interview: Interview, turn: Turn) -> ConsoleReply:
        return ConsoleReply(self.out)

    async def show_counter(self, interview: Interview, view: CounterView) -> None:
        self._line(f"[counter] {counter_text(view)}")

    async def close_room(self, interview: Interview, view: CounterView, note: str) -> None:
        self._line(f"[counter] {counter_text(view)}")
        self._line(f"🏁 {note} (reason: {view.end_reason.value if view.end_reason else '-'})")

    async def post_to_channel(self, workspace: Workspace, channel_id: str, text: str) -> None:
        self._line(f"[#{channel_id}] {text}")

    async def send_dm(self, workspace: Workspace, user_id: str, text: str) -> None:
        self._line(f"[DM to {user_id}] {text}")

    async def display_name(self, workspace: Workspace, user_id: str) -> str:
        return user_id

    async def message_link(self, interview: Interview, message_id: str) -> str | None:
        return None

    async def post_report(
        self,
        workspace: Workspace,
        target: ReportTarget,
        view: ReportView,
        files: Sequence[ReportFile],
    ) -> PostedReport:
        """Print the report and write its files to the current folder."""
        self._line("━━ " + report_text(view))
        written = [self._write(f) for f in files]
        self._line("━━ Written to " + " and ".join(str(p) for p in written))
        return PostedReport(ref="console", files_attached=True)

    async def attach_report_files(
        self, workspace: Workspace, target: ReportTarget, ref: str, files: Sequence[ReportFile]
    ) -> None:
        for f in files:
            self._write(f)

    async def send_file(
        self, workspace: Workspace, user_id: str, text: str, file: ReportFile
    ) -> None:
        self._line(f"{text} Written to {self._write(file)}")

    def _write(self, file: ReportFile) -> Path:
        path = (self.folder or Path.cwd()) / file.filename
        path.write_bytes(file.content)
        return path
