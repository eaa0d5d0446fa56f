"""Slack as a Platform: group DMs, threaded replies that fill in, a live counter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError

from adapters.paced_reply import PacedReply
from adapters.slack.blocks import (
    control_blocks,
    counter_blocks,
    counter_summary,
    escape,
    reply_blocks,
    root_blocks,
)
from adapters.slack.outbox import SlackOutbox
from adapters.slack.report_blocks import report_blocks, report_summary
from core.calendar import local_text
from core.counter import CounterView
from core.lifecycle import Control
from core.models import Challenge, Interview, Status, Turn, Workspace
from core.ports import PostedReport, ReportFile, ReportTarget
from core.report_view import ReportView

log = logging.getLogger(__name__)

# A section block's text holds at most 3,000 characters.
SLACK_TEXT_LIMIT = 3000
# Counter redraws while an interview runs: every minute, every 15 s in the last 5 minutes.
# The counter shows an absolute "ends at" time as well, so a late redraw never misleads.
REFRESH_S = 60.0
FINAL_REFRESH_S = 15.0
FINAL_STRETCH_S = 300
# A streaming reply appends at most every 2 s: the workspace's 90 appends a minute keep 3
# replies at that pace; more replies share them (an append waits while none is free).
APPEND_GAP_S = 2.0
# The challenge an interview runs (None if it can't be found any more).
ChallengeOf = Callable[[Interview], Awaitable[Challenge | None]]
# Errors that mean this workspace or token can't stream at all: use chat.update from now on.
STREAMING_UNAVAILABLE = {
    "unknown_method",
    "not_allowed_token_type",
    "missing_scope",
    "method_deprecated",
    "feature_not_enabled",
}


class SlackReply(PacedReply):
    """A model reply in the thread: Slack's streaming methods, or a placeholder plus edits."""

    def __init__(
        self,
        platform: SlackPlatform,
        channel: str,
        thread_ts: str,
        recipient_user_id: str,
        recipient_team_id: str | None,
    ) -> None:
        super().__init__(SLACK_TEXT_LIMIT, max(platform.flush_interval_s, APPEND_GAP_S))
        self._platform = platform
        self._outbox = platform.outbox
        self._channel = channel
        self._thread_ts = thread_ts
        self._recipient = {"recipient_user_id": recipient_user_id}
        if recipient_team_id:
            self._recipient["recipient_team_id"] = recipient_team_id
        self._streaming = platform.streaming_supported
        self._ts: list[str] = []  # one Slack message per segment
        self._sent: list[str] = []  # what each message shows (or has streamed) so far
        self._stopped: set[int] = set()  # streams already stopped

    async def append(self, delta: str) -> None:
        """The model's text, escaped before it is split and sent: ``<!channel>``, ``<@U…>``
        or ``<https://evil|click>`` in a reply show as text and notify nobody (the escapes
        count towards a message's length, so no message grows past Slack's limit)."""
        await super().append(escape(delta))

    async def flush(self, *, final: bool, footer: str | None) -> bool:
        if self._streaming:
            try:
                return await self._flush_stream(final, footer)
            except SlackApiError as exc:
                error = str(exc.response.get("error", ""))
                if error in STREAMING_UNAVAILABLE:
                    self._platform.streaming_supported = False
                log.info("Slack streaming unavailable (%s); falling back to chat.update", error)
                self._streaming = False
        await self._flush_updates(final, footer)
        return True

    async def _flush_stream(self, final: bool, footer: str | None) -> bool:
        """The first words start a stream at once; later text is appended only when the
        workspace's ``chat.appendStream`` budget has a slot free now (all replies share it),
        else it waits for the next flush; the end goes with ``chat.stopStream`` (the rest of
        the text and the footer in one call)."""
        if not final:
            self.splitter.commit_tail()  # the unfinished line too: a stream can't take back
        segments = list(self.splitter.segments)  # committed text only: it never changes
        everything = True
        for index, text in enumerate(segments):
            if not text and not final:
                continue
            stop = (index < len(segments) - 1 or final) and index not in self._stopped
            if index == len(self._ts):
                response = await self._outbox.call(
                    "chat.startStream",
                    channel=self._channel,
                    thread_ts=self._thread_ts,
                    markdown_text=text or "…",
                    **self._recipient,
                )
                self._ts.append(str(response["ts"]))
                self._sent.append(text)
            rest = text[len(self._sent[index]) :]
            if rest and not stop:
                appended = await self._outbox.try_call(
                    "chat.appendStream",
                    channel=self._channel,
                    ts=self._ts[index],
                    markdown_text=rest,
                )
                if appended is None:
                    everything = False
                else:
                    self._sent[index] = text
            if stop:
                extra: dict[str, Any] = {"markdown_text": rest} if rest else {}
                if index == len(segments) - 1 and footer:
                    extra["blocks"] = [{"type": "context", "elements": [_mrkdwn(footer)]}]
                await self._outbox.call(
                    "chat.stopStream", channel=self._channel, ts=self._ts[index], **extra
                )
                self._sent[index] = text
                self._stopped.add(index)
        return everything

    async def _flush_updates(self, final: bool, footer: str | None) -> None:
        shown = self.splitter.messages()
        pending: list[asyncio.Future[None]] = []
        for index, text in enumerate(shown):
            is_last = index == len(shown) - 1
            blocks = reply_blocks(text, footer if (final and is_last) else None)
            if index >= len(self._ts):
                response = await self._outbox.post(
                    channel=self._channel,
                    thread_ts=self._thread_ts,
                    text=text or "…",
                    blocks=blocks,
                )
                self._ts.append(str(response["ts"]))
                self._sent.append(text)
            elif text != self._sent[index] or (final and is_last):
                pending.append(
                    self._outbox.update(
                        self._channel,
                        self._ts[index],
                        text=text or "…",
                        blocks=blocks,
                        urgent=final,
                    )
                )
                self._sent[index] = text
        if final:
            for future in pending:
                with contextlib.suppress(Exception):
                    await future


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


class SlackPlatform:
    """Implements core.ports.Platform for one Slack workspace token.

    ``challenge_of`` reads an interview's challenge for the root message (the adapter gives
    it from ``service.queries``; the platform itself never touches storage); ``controls``
    are the engine's counter buttons.
    """

    name = "slack"

    def __init__(
        self,
        outbox: SlackOutbox,
        challenge_of: ChallengeOf,
        controls: Sequence[Control],
        *,
        team_id: str | None = None,
        streaming: bool = True,
        flush_interval_s: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.outbox = outbox
        self.clock = clock  # the engine's: the moment a queued counter is drawn
        self.challenge_of = challenge_of
        self.controls = tuple(controls)
        self.team_id = team_id
        self.streaming_supported = streaming
        self.flush_interval_s = flush_interval_s
        # What each root message last showed besides the passing time (see show_counter).
        self._shown: dict[str, tuple[object, ...]] = {}
        self._names: dict[str, str] = {}

    def when(self, moment: datetime, zone: str) -> str:
        """Shown in each reader's own time zone by Slack (the fallback in the team's)."""
        unix = int(moment.timestamp())
        return f"<!date^{unix}^{{date_short_pretty}} at {{time}}|{local_text(moment, zone)}>"

    def mention(self, user_id: str) -> str:
        return f"<@{user_id}>"

    def counter_refresh_s(self, view: CounterView) -> float | None:
        """Every minute, every 15 s in the last five minutes; only while the clock runs.

        Each redraw is a ``chat.update`` from the workspace's Tier-3 budget (49 a minute for
        all interviews together); the outbox keeps one per message and takes them in turn,
        so with more than 49 interviews each counter is redrawn every N / 49 minutes.
        """
        if view.status is not Status.ACTIVE:
            return None
        return FINAL_REFRESH_S if view.seconds_left <= FINAL_STRETCH_S else REFRESH_S

    @staticmethod
    def _where(interview: Interview) -> tuple[str, str]:
        data = interview.platform_data
        return str(data["channel"]), str(data["thread_ts"])

    async def open_room(
        self, interview: Interview, challenge: Challenge, view: CounterView
    ) -> None:
        opened = await self.outbox.call(
            "conversations.open", users=f"{interview.candidate_id},{interview.interviewer_id}"
        )
        channel = str(opened["channel"]["id"])
        root = await self.outbox.post(
            channel=channel,
            text=counter_summary(view),
            blocks=root_blocks(challenge, view, self.controls),
        )
        ts = str(root["ts"])
        interview.room_key = room_key(channel, ts)
        interview.platform_data = {"channel": channel, "thread_ts": ts}
        self._shown[interview.id] = _essentials(view)

    async def _challenge(self, interview: Interview) -> Challenge | None:
        try:
            return await self.challenge_of(interview)
        except Exception:
            log.warning("could not read the challenge of interview %s", interview.id, exc_info=True)
            return None

    def _root_message(self, challenge: Challenge | None, view: CounterView) -> dict[str, Any]:
        """The root message's text and blocks (without the challenge if it can't be read)."""
        if challenge is None:
            blocks = [*counter_blocks(view), *control_blocks(view, self.controls)]
        else:
            blocks = root_blocks(challenge, view, self.controls)
        return {"text": counter_summary(view), "blocks": blocks}

    async def show_counter(self, interview: Interview, view: CounterView) -> None:
        """Queue the redraw, drawn when its slot comes (with the time left then).

        Urgent (ahead of the round of routine redraws) when the status or a limit changed:
        what an interviewer's click (start, pause, resume, extend, end) must show at once.
        New token totals and warning levels wait their turn in the round like the passing
        time: each warning is posted in the thread when it is due (``post_notice``, a budget
        of its own), and each reply's footer shows the tokens left.
        """
        channel, ts = self._where(interview)
        essentials = _essentials(view)
        urgent = self._shown.get(interview.id) != essentials
        self._shown[interview.id] = essentials
        challenge = await self._challenge(interview)
        self.outbox.update(
            channel,
            ts,
            urgent=urgent,
            render=lambda: self._root_message(challenge, view.at(self.clock())),
        )

    async def post_notice(self, interview: Interview, text: str) -> None:
        channel, ts = self._where(interview)
        await self.outbox.post(channel=channel, thread_ts=ts, text=text)

    def reply_writer(self, interview: Interview, turn: Turn) -> SlackReply:
        channel, ts = self._where(interview)
        return SlackReply(self, channel, ts, interview.candidate_id, self.team_id)

    async def close_room(self, interview: Interview, view: CounterView, note: str) -> None:
        channel, ts = self._where(interview)
        self._shown.pop(interview.id, None)
        final = self.outbox.update(
            channel, ts, urgent=True, **self._root_message(await self._challenge(interview), view)
        )
        await self.outbox.post(channel=channel, thread_ts=ts, text=f"🏁 {note}")
        with contextlib.suppress(Exception):
            await final

    async def post_to_channel(self, workspace: Workspace, channel_id: str, text: str) -> None:
        await self.outbox.post(channel=channel_id, text=text)

    async def send_dm(self, workspace: Workspace, user_id: str, text: str) -> None:
        opened = await self.outbox.call("conversations.open", users=user_id)
        await self.outbox.post(channel=str(opened["channel"]["id"]), text=text)

    async def display_name(self, workspace: Workspace, user_id: str) -> str:
        if user_id not in self._names:
            info = await self.outbox.call("users.info", user=user_id)
            user = info.get("user", {})
            profile = user.get("profile", {})
            self._names[user_id] = str(
                profile.get("display_name")
                or profile.get("real_name")
                or user.get("real_name")
                or user.get("name")
                or user_id
            )
        return self._names[user_id]

    async def message_link(self, interview: Interview, message_id: str) -> str | None:
        channel, _ = self._where(interview)
        found = await self.outbox.call("chat.getPermalink", channel=channel, message_ts=message_id)
        return str(found["permalink"]) if found.get("permalink") else None

    async def _target_channel(self, target: ReportTarget) -> str:
        if target.channel_id is not None:
            return target.channel_id
        opened = await self.outbox.call("conversations.open", users=target.user_id)
        return str(opened["channel"]["id"])

    async def post_report(
        self,
        workspace: Workspace,
        target: ReportTarget,
        view: ReportView,
        files: Sequence[ReportFile],
    ) -> PostedReport:
        """The Block Kit summary as one top-level message; the files go to its thread."""
        channel = await self._target_channel(target)
        blocks = report_blocks(view)
        if target.hint:
            blocks.insert(1, {"type": "context", "elements": [_mrkdwn(target.hint)]})
        posted = await self.outbox.post(channel=channel, text=report_summary(view), blocks=blocks)
        return PostedReport(ref=f"{posted['channel']}:{posted['ts']}", files_attached=False)

    async def attach_report_files(
        self, workspace: Workspace, target: ReportTarget, ref: str, files: Sequence[ReportFile]
    ) -> None:
        channel, ts = ref.rsplit(":", 1)
        await self._upload(channel, files, thread_ts=ts)

    async def send_file(
        self, workspace: Workspace, user_id: str, text: str, file: ReportFile
    ) -> None:
        opened = await self.outbox.call("conversations.open", users=user_id)
        await self._upload(str(opened["channel"]["id"]), [file], comment=text)

    async def _upload(
        self,
        channel: str,
        files: Sequence[ReportFile],
        *,
        thread_ts: str | None = None,
        comment: str | None = None,
    ) -> None:
        """``files_upload_v2``: upload URLs, the bytes, then one completion for all."""
        await self.outbox.client.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            initial_comment=comment,
            file_uploads=[
                {"content": f.content, "filename": f.filename, "title": f.title} for f in files
            ],
        )


def room_key(channel: str, thread_ts: str) -> str:
    """How a thread message finds its interview."""
    return f"{channel}:{thread_ts}"


def _essentials(view: CounterView) -> tuple[object, ...]:
    """What makes a redraw urgent: the status and the limits."""
    return (view.status, view.token_budget, view.allowed_seconds)
