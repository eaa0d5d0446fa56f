"""Discord as a Platform: private threads, a counter embed that stays editable, streamed replies."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import discord

from adapters.discord.embeds import challenge_embed, counter_embed
from adapters.discord.views import ButtonHandler, ControlsView
from adapters.paced_reply import PacedReply
from core.counter import CounterView
from core.lifecycle import Control
from core.models import Challenge, Interview, Status, Turn, Workspace
from core.text import split_message

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


# Discord refuses to edit the counter: too many edits of an hour-old message (its clock and
# limits are not ours), or the message is gone. Either way a fresh counter takes its place.
EDITS_EXHAUSTED = 30046
UNKNOWN_MESSAGE = 10008
REPOST_ON = frozenset({EDITS_EXHAUSTED, UNKNOWN_MESSAGE})
CANNOT_DM = 50007  # the user accepts no direct messages (from this server's members)


@dataclass(frozen=True)
class _Posted:
    """Which message is the live counter, and when it was posted (wall clock)."""

    message_id: int
    posted_at: float

    @classmethod
    def stored(cls, data: dict[str, Any]) -> _Posted | None:
        """The counter ``platform_data`` names (as the engine stored it last)."""
        if not data.get("counter_message"):
            return None
        return cls(int(data["counter_message"]), float(data.get("counter_posted_at", 0)))


@dataclass
class _Counter:
    """One interview's counter: the latest state wanted, the task that applies it, and the
    message it lives in now as this process knows it (the editor may re-post after the
    engine saved; another process may have re-posted since: the newer post wins)."""

    live: _Posted | None = None
    pending: tuple[discord.Embed, Status] | None = None
    editor: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class DiscordPlatform:
    """Implements core.ports.Platform with a discord.py client."""

    name = "discord"

    def __init__(
        self,
        client: discord.Client,
        button_handler: ButtonHandler,
        controls: Sequence[Control],
        *,
        edit_interval_s: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.button_handler = button_handler
        self.controls = tuple(controls)
        self.edit_interval_s = edit_interval_s
        self.wall_clock = wall_clock
        self._counters: dict[str, _Counter] = {}

    async def channel(self, channel_id: int) -> Any:
        """A cached channel or thread, fetched when the cache doesn't have it."""
        found = self.client.get_channel(channel_id)
        return found if found is not None else await self.client.fetch_channel(channel_id)

    def when(self, moment: datetime, zone: str) -> str:
        """Discord shows these in each reader's own time zone, and counts down."""
        unix = int(moment.timestamp())
        return f"<t:{unix}:F> (<t:{unix}:R>)"

    def mention(self, user_id: str) -> str:
        return f"<@{user_id}>"

    def counter_refresh_s(self, view: CounterView) -> float | None:
        """Never on a timer: the relative timestamp ``<t:…:R>`` counts down by itself in
        every client; the counter is redrawn when something changes."""
        return None

    def _controls(self, status: Status) -> ControlsView | None:
        if status is Status.ENDED:
            return None
        return ControlsView(self.button_handler, self.controls, status)

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
            f"{self.mention(interview.candidate_id)}, your interview starts now. "
            f"{self.mention(interview.interviewer_id)} is your interviewer.",
            embed=challenge_embed(challenge, interview.candidate_id),
        )
        counter = await thread.send(embed=counter_embed(view), view=self._controls(view.status))
        interview.room_key = str(thread.id)
        interview.platform_data.update(
            thread=str(thread.id),
            counter_message=str(counter.id),
            counter_posted_at=self.wall_clock(),
        )

    # ------------------------------------------------------------------ the counter

    def _counter(self, interview: Interview) -> _Counter:
        """This interview's counter state, in step with ``platform_data`` (see :meth:`_sync`)."""
        state = self._counters.setdefault(interview.id, _Counter())
        self._sync(interview, state)
        return state

    @staticmethod
    def _sync(interview: Interview, state: _Counter) -> None:
        """The newer of the two posts wins: ours is copied into ``platform_data`` (the engine
        persists it on this refresh), or a newer stored one (another process re-posted)
        replaces what this process remembered."""
        data = interview.platform_data
        stored = _Posted.stored(data)
        if state.live is None or (stored is not None and stored.posted_at > state.live.posted_at):
            state.live = stored
        elif state.live != stored:
            data.update(
                counter_message=str(state.live.message_id),
                counter_posted_at=state.live.posted_at,
            )

    def _too_old(self, state: _Counter) -> bool:
        return state.live is None or self.wall_clock() - state.live.posted_at > COUNTER_MAX_AGE_S

    async def show_counter(self, interview: Interview, view: CounterView) -> None:
        """Edit the counter (coalesced, latest wins); re-post it before it is an hour old."""
        state = self._counter(interview)
        thread_id = int(interview.platform_data["thread"])
        if self._too_old(state):
            state.pending = None  # the re-post shows the latest state
            async with state.lock:  # after the edit in flight, if any
                if self._too_old(state):  # the editor may have just re-posted it
                    thread = await self.channel(thread_id)
                    embed = counter_embed(view)
                    await self._repost(interview.id, thread, state, embed, view.status)
                    self._sync(interview, state)
                    return
        state.pending = (counter_embed(view), view.status)
        if state.editor is None or state.editor.done():
            state.editor = asyncio.create_task(self._edit_counter(interview.id, thread_id, state))

    async def _edit_counter(self, interview_id: str, thread_id: int, state: _Counter) -> None:
        while state.pending is not None:
            embed, status = state.pending
            state.pending = None
            try:
                async with state.lock:
                    await self._apply(interview_id, thread_id, state, embed, status)
            except Exception:
                if self.client.is_closed():  # shutting down: the session is gone
                    log.debug("counter of interview %s not updated: closing", interview_id)
                else:
                    log.exception("updating the counter of interview %s failed", interview_id)
            if state.pending is not None:
                await asyncio.sleep(self.edit_interval_s)

    async def _apply(
        self,
        interview_id: str,
        thread_id: int,
        state: _Counter,
        embed: discord.Embed,
        status: Status,
    ) -> None:
        """Edit the live counter; if Discord refuses (30046, 10008) re-post it, once."""
        thread = await self.channel(thread_id)
        if state.live is None:
            await self._repost(interview_id, thread, state, embed, status)
            return
        try:
            await thread.get_partial_message(state.live.message_id).edit(
                embed=embed, view=self._controls(status)
            )
        except discord.HTTPException as exc:
            if exc.code not in REPOST_ON:
                log.warning("editing the counter of interview %s failed: %s", interview_id, exc)
                return
            log.info(
                "Discord refused to edit the counter of interview %s (%s); re-posting it",
                interview_id,
                exc,
            )
            await self._repost(interview_id, thread, state, embed, status)

    async def _repost(
        self,
        interview_id: str,
        thread: Any,
        state: _Counter,
        embed: discord.Embed,
        status: Status,
    ) -> None:
        """Post a fresh counter (with the buttons while the interview runs), then delete the
        old one. One attempt: on failure the old one stays until the next refresh."""
        try:
            fresh = await thread.send(embed=embed, view=self._controls(status))
        except discord.HTTPException as exc:
            log.warning(
                "re-posting the counter of interview %s failed (%s); trying again at the "
                "next refresh",
                interview_id,
                exc,
            )
            return
        old, state.live = state.live, _Posted(fresh.id, self.wall_clock())
        if old is not None:
            with contextlib.suppress(discord.HTTPException):  # already gone is fine
                await thread.get_partial_message(old.message_id).delete()

    async def idle(self) -> None:
        """Wait until no counter edit or re-post is in flight (the editors end by themselves)."""
        while editors := [
            c.editor
            for c in self._counters.values()
            if c.editor is not None and not c.editor.done()
        ]:
            await asyncio.wait(editors)

    async def _stop_editor(self, state: _Counter) -> None:
        state.pending = None
        if state.editor is not None and not state.editor.done():
            await asyncio.wait({state.editor})

    async def post_notice(self, interview: Interview, text: str) -> None:
        thread = await self.channel(int(interview.platform_data["thread"]))
        await thread.send(text, allowed_mentions=QUIET)

    def reply_writer(self, interview: Interview, turn: Turn) -> DiscordReply:
        return DiscordReply(self, int(interview.platform_data["thread"]))

    async def close_room(self, interview: Interview, view: CounterView, note: str) -> None:
        state = self._counter(interview)
        await self._stop_editor(state)
        self._counters.pop(interview.id, None)
        thread = await self.channel(int(interview.platform_data["thread"]))
        async with state.lock:
            if self._too_old(state):
                await self._repost(interview.id, thread, state, counter_embed(view), view.status)
            else:
                await self._apply(
                    interview.id, int(thread.id), state, counter_embed(view), view.status
                )
        self._sync(interview, state)
        await thread.send(f"🏁 {note}", allowed_mentions=QUIET)
        await thread.edit(locked=True, archived=True)

    async def text_channel(self, workspace: Workspace, wanted: str) -> Any:
        """A channel by id (what the settings store; ``<#id>`` too) or, for
        ``DISCORD_TEAM_CHANNEL`` / ``DISCORD_INTERVIEWER_CHANNEL``, by name (``#team`` or
        ``team``) among the text channels of the workspace's guild: the cached ones first,
        then as Discord lists them now (a channel created or renamed since)."""
        key = wanted.strip().removeprefix("<#").removesuffix(">").lstrip("#")
        if key.isdigit():
            return await self.channel(int(key))
        guild_id = int(workspace.external_id)
        guild = self.client.get_guild(guild_id)
        if guild is not None:
            found = _named(guild.text_channels, key)
            if found is not None:
                return found
        fetched = guild or await self.client.fetch_guild(guild_id)
        listed = [c for c in await fetched.fetch_channels() if isinstance(c, discord.TextChannel)]
        found = _named(listed, key)
        if found is None:
            raise LookupError(f"the Discord server {guild_id} has no text channel named #{key}")
        return found

    async def post_to_channel(self, workspace: Workspace, channel_id: str, text: str) -> None:
        channel = await self.text_channel(workspace, channel_id)
        for part in split_message(text, DISCORD_LIMIT):
            await channel.send(part, allowed_mentions=QUIET)

    async def send_dm(self, workspace: Workspace, user_id: str, text: str) -> None:
        """A direct message; someone who accepts none (50007) is skipped (a retry would not
        change that), with a warning."""
        user = self.client.get_user(int(user_id)) or await self.client.fetch_user(int(user_id))
        try:
            for part in split_message(text, DISCORD_LIMIT):
                await user.send(part, allowed_mentions=QUIET)
        except discord.Forbidden as exc:
            if exc.code != CANNOT_DM:
                raise
            log.warning("could not DM user %s (they accept no direct messages): %s", user_id, exc)

    async def upload_file(
        self, workspace: Workspace, channel_id: str, filename: str, content: bytes, title: str
    ) -> None:
        channel = await self.text_channel(workspace, channel_id)
        await channel.send(title, file=discord.File(io.BytesIO(content), filename=filename))


def _named(channels: Sequence[discord.TextChannel], name: str) -> discord.TextChannel | None:
    return next((c for c in channels if c.name.lower() == name.lower()), None)
