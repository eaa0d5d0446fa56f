"""Discord as a Platform: private threads, a counter embed that stays editable, streamed replies,
and evaluation reports (one message: an embed with the chart and the transcript attached)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import discord

from adapters.discord.embeds import challenge_embed, clip, counter_embed, report_embed
from adapters.discord.views import ButtonHandler, ControlsView
from adapters.paced_reply import PacedReply
from core.counter import CounterView
from core.errors import InvalidInput
from core.lifecycle import Control
from core.models import Challenge, Interview, Status, Turn, Workspace
from core.ports import PostedReport, ReportFile, ReportTarget
from core.report_view import ReportView
from core.text import split_message

log = logging.getLogger(__name__)

DISCORD_LIMIT = 2000
FOOTER_RESERVE = 160  # room for the per-turn token line under the last message
# A thread's message edits: 5 per 5 s (Discord's bucket, shared with the counter). A streaming
# reply edits at most 3 times per 5 s, leaving room for its final edit and a counter redraw.
EDIT_GAP_S = 5.0 / 3
# Discord's global limit is 50 requests a second per bot: interim edits of all replies
# together take at most half of it, so creates, final edits and counters always find room.
INTERIM_EDITS_PER_S = 25.0
# Discord caps edits to messages older than an hour (error 30046): re-post well before.
COUNTER_MAX_AGE_S = 50 * 60
QUIET = discord.AllowedMentions.none()


class DiscordReply(PacedReply):
    """A reply that fills in by edits; long replies continue below.

    The first words go out at once (a new message: its own bucket), the final text at once;
    in between, one edit every :data:`EDIT_GAP_S` at most, so that every 5-second window of
    the thread's edit bucket (5 edits) keeps a slot for the final edit and one for the
    counter: discord.py never has to hold the final edit back for the bucket to reset; and
    only while the bot-wide budget for interim edits (:data:`INTERIM_EDITS_PER_S`) has room. One
    process streams an interview's replies at a time (the lease), so this pace per reply is
    the thread's.
    """

    def __init__(self, platform: DiscordPlatform, thread_id: int) -> None:
        super().__init__(DISCORD_LIMIT - FOOTER_RESERVE, max(platform.edit_interval_s, EDIT_GAP_S))
        self._platform = platform
        self._thread_id = thread_id
        self._messages: list[discord.Message] = []
        self._sent: list[str] = []

    async def flush(self, *, final: bool, footer: str | None) -> bool:
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
                interim = not final and index == len(shown) - 1
                if interim and not self._platform.take_interim_edit():
                    return False  # the bot's request budget is busy: next time
                await self._messages[index].edit(content=content, allowed_mentions=QUIET)
                self._sent[index] = content
        return True


# Discord refuses to edit the counter: too many edits of an hour-old message (its clock and
# limits are not ours), or the message is gone. Either way a fresh counter takes its place.
EDITS_EXHAUSTED = 30046
UNKNOWN_MESSAGE = 10008
REPOST_ON = frozenset({EDITS_EXHAUSTED, UNKNOWN_MESSAGE})
CANNOT_DM = 50007  # the user accepts no direct messages (from this server's members)
# PostedReport.ref of a report that went to nobody: no channel is configured and the
# interviewer accepts no DMs. A retry would not change that; the report stays stored.
UNDELIVERABLE = "undeliverable"
MESSAGE_LINK = "https://discord.com/channels/{guild}/{channel}/{message}"
DMS_CLOSED = (
    "I can't send you direct messages: allow direct messages from this server's members "
    "(the server's privacy settings), then try again."
)
REPORT_DMS_CLOSED = (
    "No interviewers' channel is configured and I can't send you direct messages: set a "
    "channel with `/interview config channel`, or allow direct messages from this server's "
    "members, then try again."
)
_MENTION = re.compile(r"<@!?(\d+)>")


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
        self._interim_at = 0.0  # when the next interim reply edit is free (GCRA, monotonic)

    def take_interim_edit(self) -> bool:
        """A slot of the process-wide budget for interim reply edits, if one is free now."""
        now, gap = time.monotonic(), 1.0 / INTERIM_EDITS_PER_S
        if self._interim_at - now > INTERIM_EDITS_PER_S * gap:  # a second's burst at most
            return False
        self._interim_at = max(self._interim_at, now) + gap
        return True

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
            guild=str(thread.guild.id),  # for message links (evidence in the report)
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

    @property
    def queued_updates(self) -> int:
        """Counters with an edit waiting for its turn (the latest state each; metrics)."""
        return sum(c.pending is not None for c in self._counters.values())

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

    async def _user(self, user_id: str) -> discord.User:
        return self.client.get_user(int(user_id)) or await self.client.fetch_user(int(user_id))

    # ------------------------------------------------------------------ reports

    async def display_name(self, workspace: Workspace, user_id: str) -> str:
        """The member's name in the workspace's server (cached, else fetched: the bot has
        no members intent), else the user's global name or username, else the id."""
        if not user_id.isdigit():
            return user_id
        uid, guild_id = int(user_id), int(workspace.external_id)
        guild = self.client.get_guild(guild_id)
        member = guild.get_member(uid) if guild is not None else None
        if member is None:
            with contextlib.suppress(discord.NotFound):  # not (or no longer) a member
                guild = guild or await self.client.fetch_guild(guild_id)
                member = await guild.fetch_member(uid)
        if member is not None:
            return member.display_name
        try:
            return (await self._user(user_id)).display_name
        except discord.NotFound:
            return user_id

    async def message_link(self, interview: Interview, message_id: str) -> str | None:
        """``https://discord.com/channels/{guild}/{thread}/{message}`` of a message in the
        interview's thread (the guild from ``platform_data``, else from the thread)."""
        data = interview.platform_data
        thread = str(data.get("thread") or "")
        if not thread.isdigit() or not message_id.isdigit():
            return None
        guild = str(data.get("guild") or "")
        if not guild.isdigit():  # an interview opened before the guild was stored
            channel = await self.channel(int(thread))
            guild = str(channel.guild.id)
        return MESSAGE_LINK.format(guild=guild, channel=thread, message=message_id)

    async def _names(self, workspace: Workspace, text: str) -> dict[str, str]:
        """Display names of the people mentioned in ``text`` (the id where the lookup fails)."""
        names = {}
        for uid in dict.fromkeys(_MENTION.findall(text)):
            try:
                names[uid] = await self.display_name(workspace, uid)
            except discord.HTTPException:
                log.warning("could not look up the name of %s", uid, exc_info=True)
                names[uid] = uid
        return names

    async def post_report(
        self,
        workspace: Workspace,
        target: ReportTarget,
        view: ReportView,
        files: Sequence[ReportFile],
    ) -> PostedReport:
        """One message with the embed and the files attached (the chart is the embed's
        image), to the interviewers' channel or by DM with ``target.hint``. Mentions never
        ping. The delivery's send carries a nonce derived from the report, so a retry of a
        send whose answer was lost returns Discord's first message instead of a second one
        (``enforce_nonce``, within a few minutes); a re-post gets a fresh one.

        An interviewer who accepts no DMs (50007): the delivery job is not retried (a retry
        would not change that), the warning is logged and the ref is :data:`UNDELIVERABLE`;
        ``/interview report`` is refused with what to do (:class:`InvalidInput`)."""
        chart = next((f.filename for f in files if f.filename.endswith(".png")), None)
        embed = report_embed(view, names=await self._names(workspace, view.title), chart=chart)
        nonce: str | int = (  # a re-post is a new message: a random nonce, as discord.py's
            secrets.randbits(64) if view.reposted else _nonce("report", target, view.title, files)
        )
        if target.channel_id is not None:
            channel = await self.text_channel(workspace, target.channel_id)
            message = await channel.send(
                embed=embed, files=_attachments(files), nonce=nonce, allowed_mentions=QUIET
            )
        else:
            user = await self._user(target.user_id)
            try:
                message = await user.send(
                    clip(target.hint, DISCORD_LIMIT) if target.hint else None,
                    embed=embed,
                    files=_attachments(files),
                    nonce=nonce,
                    allowed_mentions=QUIET,
                )
            except discord.Forbidden as exc:
                if exc.code != CANNOT_DM:
                    raise
                if view.reposted:
                    raise InvalidInput(REPORT_DMS_CLOSED) from exc
                log.warning(
                    "report not delivered: no interviewers' channel is configured and user %s "
                    "accepts no direct messages (%s)",
                    target.user_id,
                    exc,
                )
                return PostedReport(UNDELIVERABLE, files_attached=True)
        return PostedReport(f"{message.channel.id}:{message.id}", files_attached=True)

    async def attach_report_files(
        self, workspace: Workspace, target: ReportTarget, ref: str, files: Sequence[ReportFile]
    ) -> None:
        """The files as a reply to the report. Not needed on Discord (:meth:`post_report`
        attaches them to the report itself); here for a delivery recorded otherwise."""
        channel_id, _, message_id = ref.partition(":")
        if ref == UNDELIVERABLE or not files or not message_id.isdigit():
            return
        channel = await self.channel(int(channel_id))
        reply_to = discord.MessageReference(
            message_id=int(message_id), channel_id=int(channel_id), fail_if_not_exists=False
        )
        await channel.send(
            files=_attachments(files),
            reference=reply_to,
            nonce=_nonce("files", ref, "", files),
            allowed_mentions=QUIET,
        )

    async def send_file(
        self, workspace: Workspace, user_id: str, text: str, file: ReportFile
    ) -> None:
        """A DM with the file; someone who accepts no DMs is told so (:class:`InvalidInput`):
        they asked for it and can change that."""
        user = await self._user(user_id)
        try:
            await user.send(
                clip(text, DISCORD_LIMIT), files=_attachments([file]), allowed_mentions=QUIET
            )
        except discord.Forbidden as exc:
            if exc.code != CANNOT_DM:
                raise
            raise InvalidInput(DMS_CLOSED) from exc


def _attachments(files: Sequence[ReportFile]) -> list[discord.File]:
    return [discord.File(io.BytesIO(f.content), filename=f.filename) for f in files]


def _nonce(kind: str, where: object, text: str, files: Sequence[ReportFile]) -> str:
    """The same send of the same report gets the same nonce (Discord: 25 characters)."""
    digest = hashlib.sha256(f"{kind}\0{where!r}\0{text}".encode())
    for f in files:
        digest.update(f.filename.encode() + b"\0" + hashlib.sha256(f.content).digest())
    return digest.hexdigest()[:25]


def _named(channels: Sequence[discord.TextChannel], name: str) -> discord.TextChannel | None:
    return next((c for c in channels if c.name.lower() == name.lower()), None)
