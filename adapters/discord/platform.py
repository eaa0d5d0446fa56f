"""Discord as a Platform: private threads, a counter embed that stays editable, streamed replies."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import discord

from adapters.discord.embeds import challenge_embed, counter_embed
from adapters.discord.views import ButtonHandler, ControlsView
from adapters.paced_reply import PacedReply
from core.counter import CounterView
from core.models import Challenge, Interview, Status, Turn, Workspace

log = logging.getLogger(__name__)

DISCORD_LIMIT = 2000
FOOTER_RESERVE = 160  # room for the per-turn token line under the last message
# Discord caps edits to messages older than an hour (error 30046): re-post well before.
COUNTER_MAX_AGE_S = 50 * 60
QUIET = discord.AllowedMentions.none()


class DiscordReply(PacedReply):
    """A reply that fills in by edits at a bounded rate; long replies continue below."""

    def __init__(self, platform: DiscordPlatform, thread_id: int) -> None:
        super().__init__(DISCORD_LIMIT - FOOTER_RESERVE, platform.edit_interval_s)
        self._platform = platform
        self._thread_id = thread_id
        self._messages: list[discord.Message] = []
        self._sent: list[str] = []

    async def flush(self, *, final: bool, footer: str | None) -> None:
        thread = await self._platform.channel(self._thread_id)
        shown = self.splitter.messages()
        for index, text in enumerate(shown):
            content = text or "…"
            if footer is not None and index == len(shown) - 1:
                content = f"{text}\n-# {footer}" if text else f"-# {footer}"
            if index >= len(self._messages):
                self._messages.append(await thread.send(content, allowed_mentions=QUIET))
                self._sent.append(content)
            elif content != self._sent[index]:
                await self._messages[index].edit(content=content, allowed_mentions=QUIET)
                self._sent[index] = content


@dataclass
class _Counter:
    """The latest counter wanted for one interview, and the task that applies it."""

    pending: tuple[discord.Embed, ControlsView | None] | None = None
    editor: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class DiscordPlatform:
    """Implements core.ports.Platform with a discord.py client."""

    name = "discord"

    def __init__(
        self,
        client: discord.Client,
        button_handler: ButtonHandler,
        *,
        edit_interval_s: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.button_handler = button_handler
        self.edit_interval_s = edit_interval_s
        self.wall_clock = wall_clock
        self._counters: dict[str, _Counter] = {}

    async def channel(self, channel_id: int) -> Any:
        """A cached channel or thread, fetched when the cache doesn't have it."""
        found = self.client.get_channel(channel_id)
        return found if found is not None else await self.client.fetch_channel(channel_id)

    def _controls(self, status: Status) -> ControlsView | None:
        return None if status is Status.ENDED else ControlsView(self.button_handler, status)

    async def open_room(
        self, interview: Interview, challenge: Challenge, view: CounterView
    ) -> None:
        parent = await self.channel(int(interview.platform_data["parent_channel"]))
        thread = await parent.create_thread(
            name=f"Interview · {challenge.title}"[:100],
            type=discord.ChannelType.private_thread,
            invitable=False,
            auto_archive_duration=1440,
        )
        for user_id in (interview.candidate_id, interview.interviewer_id):
            await thread.add_user(discord.Object(id=int(user_id)))
        await thread.send(
            f"<@{interview.candidate_id}>, your interview starts now. "
            f"<@{interview.interviewer_id}> is your interviewer.",
            embed=challenge_embed(challenge, interview.candidate_id),
        )
        counter = await thread.send(embed=counter_embed(view), view=self._controls(view.status))
        interview.room_key = str(thread.id)
        interview.platform_data.update(
            thread=str(thread.id),
            counter_message=str(counter.id),
            counter_posted_at=self.wall_clock(),
        )

    async def show_counter(self, interview: Interview, view: CounterView) -> None:
        """Edit the counter (coalesced, latest wins); re-post it before it is an hour old."""
        posted = float(interview.platform_data.get("counter_posted_at", 0))
        if self.wall_clock() - posted > COUNTER_MAX_AGE_S:
            await self._repost_counter(interview, view)
            return
        state = self._counters.setdefault(interview.id, _Counter())
        state.pending = (counter_embed(view), self._controls(view.status))
        state.done.clear()
        if state.editor is None or state.editor.done():
            state.editor = asyncio.create_task(self._edit_counter(interview, state))

    async def _edit_counter(self, interview: Interview, state: _Counter) -> None:
        thread_id = int(interview.platform_data["thread"])
        while state.pending is not None:
            embed, controls = state.pending
            state.pending = None
            message_id = int(interview.platform_data["counter_message"])
            try:
                thread = await self.channel(thread_id)
                await thread.get_partial_message(message_id).edit(embed=embed, view=controls)
            except discord.HTTPException as exc:
                log.warning("editing the counter of interview %s failed: %s", interview.id, exc)
            if state.pending is not None:
                await asyncio.sleep(self.edit_interval_s)
        state.done.set()

    async def _repost_counter(self, interview: Interview, view: CounterView) -> None:
        state = self._counters.get(interview.id)
        if state is not None and state.editor is not None:
            state.pending = None
            await state.done.wait()
        thread = await self.channel(int(interview.platform_data["thread"]))
        old = interview.platform_data.get("counter_message")
        fresh = await thread.send(embed=counter_embed(view), view=self._controls(view.status))
        interview.platform_data.update(
            counter_message=str(fresh.id), counter_posted_at=self.wall_clock()
        )
        if old:
            with contextlib.suppress(discord.HTTPException):
                await thread.get_partial_message(int(old)).delete()

    async def post_notice(self, interview: Interview, text: str) -> None:
        thread = await self.channel(int(interview.platform_data["thread"]))
        await thread.send(text, allowed_mentions=QUIET)

    def reply_writer(self, interview: Interview, turn: Turn) -> DiscordReply:
        return DiscordReply(self, int(interview.platform_data["thread"]))

    async def close_room(self, interview: Interview, view: CounterView, note: str) -> None:
        state = self._counters.pop(interview.id, None)
        if state is not None and state.editor is not None:
            state.pending = None
            await state.done.wait()
        posted = float(interview.platform_data.get("counter_posted_at", 0))
        thread = await self.channel(int(interview.platform_data["thread"]))
        if self.wall_clock() - posted > COUNTER_MAX_AGE_S:
            await self._repost_counter(interview, view)
        else:
            message = thread.get_partial_message(int(interview.platform_data["counter_message"]))
            await message.edit(embed=counter_embed(view), view=None)
        await thread.send(f"🏁 {note}", allowed_mentions=QUIET)
        await thread.edit(locked=True, archived=True)

    async def post_to_channel(self, workspace: Workspace, channel_id: str, text: str) -> None:
        channel = await self.channel(int(channel_id))
        await channel.send(text, allowed_mentions=QUIET)

    async def send_dm(self, workspace: Workspace, user_id: str, text: str) -> None:
        user = self.client.get_user(int(user_id)) or await self.client.fetch_user(int(user_id))
        await user.send(text)

    async def upload_file(
        self, workspace: Workspace, channel_id: str, filename: str, content: bytes, title: str
    ) -> None:
        channel = await self.channel(int(channel_id))
        await channel.send(title, file=discord.File(io.BytesIO(content), filename=filename))
