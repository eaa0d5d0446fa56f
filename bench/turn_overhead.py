"""Bot overhead per turn on Slack and Discord, through the real bot process.

    .venv/bin/python -m bench.turn_overhead [--interviews 5] [--turns 20] [--sqlite]

For each platform, ``--interviews`` interviews are started through the fake platform (a
signed ``/interview start`` on Slack, the slash command on Discord); then their candidates
send ``--turns`` messages each, one at a time (the next only after the previous reply is
complete and the bot is idle again), so the figures are the bot's own overhead, not queueing.
One throwaway turn warms everything up first. Per turn, on ``time.monotonic``:

- **event -> model request**: from the moment the candidate's event is sent to the bot
  (Slack: the signed Events API request; Discord: the gateway MESSAGE_CREATE dispatched) to
  the moment the request arrives at the fake model (``FakeOpenAI.streams[i].arrived``).
- **model last byte -> final update**: from the model's last byte to the arrival at the fake
  platform of the reply's last call (Slack: the ``chat.stopStream`` that carries the footer;
  Discord: the last create or edit of the reply's last message).
- **first words / model TTFT**: from the event sent to the arrival at the fake platform of
  the first call that carries reply text, over the model's own time to first token
  (``first_token - arrived``).

Bars (issue 12, item 2): p50 < 10 ms and p99 < 50 ms for both overheads; the ratio < 1.05.
Every platform call takes 80 ms (the fakes' latency) but the times here end when a call
*arrives* at the fake, so they leave out the response leg: the candidate sees the text when
the platform has it, whatever the bot then waits for.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from bench.fakes.discord_server import FakeDiscord
from bench.fakes.openai_server import FakeOpenAI
from bench.fakes.processes import BotProcess
from bench.fakes.slack_server import FakeSlack
from bench.fakes.slack_signing import event_body, message_event, signed_headers, slash_command_body
from bench.harness import (
    SECRET,
    Distribution,
    add_database_flags,
    bench_database,
    discord_env,
    header,
    realistic_discord,
    realistic_openai,
    realistic_slack,
    slack_env,
    start_bot,
    until,
)

R = TypeVar("R")  # a platform's room
INTERVIEWER = "UBENCHIVW"
REPLY_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream")
BOT_ENV = {"LLM_MAX_RETRIES": "0", "CANDIDATE_MESSAGES_PER_MINUTE": "120"}


@dataclass
class Turn:
    """One measured reply, every moment on ``time.monotonic``."""

    sent: float
    arrived: float
    first_token: float
    last_byte: float
    first_words: float  # the first platform call carrying reply text arrived at the fake
    final: float  # the reply's last platform call arrived at the fake
    calls: int  # platform calls the reply took

    @property
    def to_model(self) -> float:
        return self.arrived - self.sent

    @property
    def to_final(self) -> float:
        return self.final - self.last_byte

    @property
    def ratio(self) -> float:
        return (self.first_words - self.sent) / (self.first_token - self.arrived)

    @property
    def first_visible(self) -> float:
        return self.first_words - self.sent

    @property
    def final_visible(self) -> float:
        return self.final - self.last_byte


def _text_of(params: dict[str, Any]) -> str:
    return str(params.get("markdown_text") or params.get("text") or "")


async def wait_reply(
    bot: BotProcess,
    done: Callable[[], bool],
    calls: Callable[[], Sequence[Any]],
    limit_s: float = 120,
) -> None:
    """Until the reply is complete; if it never is, fail with what the bot said and did."""
    try:
        await until(done, limit_s=limit_s)
    except TimeoutError:
        made = "\n".join(repr(c)[:200] for c in calls())
        tail = "\n".join(bot.lines[-40:])
        raise RuntimeError(
            f"no complete reply in {limit_s} s; calls:\n{made}\nbot:\n{tail}"
        ) from None


# ---------------------------------------------------------------------------- Slack


@dataclass
class SlackRoom:
    candidate: str
    channel: str
    thread_ts: str
    seq: int = 0


@dataclass
class SlackWorld:
    """The real bot serving the fake Slack with the fake model."""

    slack: FakeSlack
    openai: FakeOpenAI
    bot: BotProcess
    port: int
    http: aiohttp.ClientSession
    rooms: list[SlackRoom] = field(default_factory=list)

    async def send(self, body: str) -> None:
        url = f"http://127.0.0.1:{self.port}/slack/events"
        async with self.http.post(url, data=body, headers=signed_headers(SECRET, body)) as r:
            if r.status != 200:
                raise RuntimeError(f"the bot answered {r.status}")

    async def open(self, index: int, minutes: int = 180, tokens: str = "900k") -> SlackRoom:
        candidate = f"UCAND{index:04d}"
        self.slack.add_user(candidate, name=f"cand{index}")
        response_url = self.slack.new_response_url()
        text = f"start <@{candidate}|cand{index}> {minutes}m {tokens} two-sum"
        await self.send(
            slash_command_body(text=text, user_id=INTERVIEWER, response_url=response_url)
        )
        rid = response_url.rsplit("/", 1)[1]
        await until(lambda: bool(self.slack.responses.get(rid)), limit_s=300)
        if not self.slack.responses[rid][-1]["text"].startswith("Started"):
            raise RuntimeError(f"not started: {self.slack.responses[rid]}")
        channel = self.slack.conversation_with(INTERVIEWER, candidate)
        assert channel is not None
        root = self.slack.channel_messages(channel)[0]
        room = SlackRoom(candidate, channel, root.ts)
        self.rooms.append(room)
        return room

    async def say(self, room: SlackRoom, text: str) -> float:
        """The candidate's message; returns when it was sent."""
        room.seq += 1
        ts = f"{1_800_000_000 + room.seq}.{self.rooms.index(room):06d}"
        body = event_body(
            message_event(room.channel, room.candidate, text, ts, thread_ts=room.thread_ts)
        )
        sent = time.monotonic()
        await self.send(body)
        return sent

    def reply_calls(self, room: SlackRoom, since: int) -> list[Any]:
        """The reply's calls among ``slack.calls[since:]`` (the root's counter edits left out)."""
        found = []
        for call in self.slack.calls[since:]:
            params = call.params
            if params.get("channel") != room.channel:
                continue
            threaded = (
                call.method == "chat.postMessage" and params.get("thread_ts") == room.thread_ts
            )
            edit = call.method == "chat.update" and params.get("ts") != room.thread_ts
            if call.method in REPLY_METHODS or threaded or edit:
                found.append(call)
        return found

    @staticmethod
    def finished(calls: Sequence[Any]) -> bool:
        for call in calls:
            blocks = json.dumps(call.params.get("blocks") or "")
            if "tokens this turn" in blocks and call.method in ("chat.stopStream", "chat.update"):
                return True
            if call.method == "chat.postMessage" and "tokens this turn" in blocks:
                return True
        return False

    async def turn(self, room: SlackRoom, text: str) -> Turn:
        index, since = len(self.openai.streams), len(self.slack.calls)
        sent = await self.say(room, text)
        await wait_reply(
            self.bot,
            lambda: self.finished(self.reply_calls(room, since)),
            lambda: self.slack.calls[since:],
        )
        await until(lambda: len(self.openai.streams) > index, limit_s=10)
        stream = self.openai.streams[index]
        calls = self.reply_calls(room, since)
        first = next(c for c in calls if _text_of(c.params).strip("… "))
        assert stream.first_token is not None and stream.last_byte is not None
        return Turn(
            sent,
            stream.arrived,
            stream.first_token,
            stream.last_byte,
            first.at,
            calls[-1].at,
            len(calls),
        )


async def slack_world(
    folder: Path, database_url: str, slack: FakeSlack, openai: FakeOpenAI, **env: str
) -> tuple[SlackWorld, aiohttp.ClientSession]:
    slack.add_user(INTERVIEWER, name="ivy")
    bot, port, _ = await start_bot(
        folder,
        **slack_env(slack, openai, database_url, SLACK_INTERVIEWERS=INTERVIEWER, **BOT_ENV, **env),
    )
    http = aiohttp.ClientSession()
    return SlackWorld(slack, openai, bot, port, http), http


# ---------------------------------------------------------------------------- Discord


@dataclass
class DiscordRoom:
    candidate: int
    thread: int


@dataclass
class DiscordWorld:
    """The real bot serving the fake Discord with the fake model."""

    discord: FakeDiscord
    openai: FakeOpenAI
    bot: BotProcess
    guild: int
    admin: int
    parents: list[int]
    rooms: list[DiscordRoom] = field(default_factory=list)

    def mono(self, at: float) -> float:
        """The fake's wall-clock stamp on ``time.monotonic``."""
        return at - (self.discord.now() - time.monotonic())

    async def open(self, index: int, minutes: int = 180, tokens: int = 900_000) -> DiscordRoom:
        fake = self.discord
        candidate = fake.add_member(self.guild, username=f"cand{index}")
        parent = self.parents[index % len(self.parents)]
        before = set(fake.threads)
        iid = await fake.send_slash_command(
            self.guild,
            parent,
            self.admin,
            subcommand="start",
            options={
                "candidate": candidate,
                "challenge": "two-sum",
                "minutes": minutes,
                "tokens": tokens,
            },
        )
        await fake.wait_interaction_response(iid, timeout=300)

        def opened() -> int | None:
            for thread in set(fake.threads) - before:
                if candidate in fake.thread_members(thread) and any(
                    "Tokens" in json.dumps(m.get("embeds")) for m in fake.channel_messages(thread)
                ):
                    return thread
            return None

        await until(lambda: opened() is not None, limit_s=300)
        thread = opened()
        assert thread is not None
        room = DiscordRoom(candidate, thread)
        self.rooms.append(room)
        return room

    def reply_calls(self, room: DiscordRoom, since: int) -> list[Any]:
        """Creates and edits of reply messages in the room's thread (counter edits left out)."""
        prefix = f"/channels/{room.thread}/messages"
        found = []
        for call in self.discord.calls[since:]:
            if not call.path.startswith(prefix) or call.method not in ("POST", "PATCH"):
                continue
            if "embeds" in (call.json or {}) and (call.json or {}).get("embeds"):
                continue
            if call.method == "PATCH" and "content" not in (call.json or {}):
                continue
            found.append(call)
        return found

    @staticmethod
    def finished(calls: Sequence[Any]) -> bool:
        return any(
            c.status == 200 and "tokens this turn" in str((c.json or {}).get("content"))
            for c in calls
        )

    async def turn(self, room: DiscordRoom, text: str) -> Turn:
        index, since = len(self.openai.streams), len(self.discord.calls)
        sent = time.monotonic()
        await self.discord.send_message(room.thread, room.candidate, text)
        await wait_reply(
            self.bot,
            lambda: self.finished(self.reply_calls(room, since)),
            lambda: self.discord.calls[since:],
        )
        await until(lambda: len(self.openai.streams) > index, limit_s=10)
        stream = self.openai.streams[index]
        calls = self.reply_calls(room, since)
        first = next(c for c in calls if str((c.json or {}).get("content", "")).strip("… "))
        assert stream.first_token is not None and stream.last_byte is not None
        return Turn(
            sent,
            stream.arrived,
            stream.first_token,
            stream.last_byte,
            self.mono(first.at),
            self.mono(calls[-1].at),
            len(calls),
        )


async def discord_world(
    folder: Path,
    database_url: str,
    discord: FakeDiscord,
    openai: FakeOpenAI,
    parents: int = 1,
    **env: str,
) -> DiscordWorld:
    ids = discord.seed()
    channels = [ids.channel_id] + [
        discord.add_text_channel(ids.guild_id, f"interviews-{i}") for i in range(1, parents)
    ]
    bot, _, _ = await start_bot(
        folder, **discord_env(discord, openai, database_url, ids.guild_id, **BOT_ENV, **env)
    )
    await discord.wait_ready(timeout=60)
    return DiscordWorld(discord, openai, bot, ids.guild_id, ids.admin_id, channels)


# ---------------------------------------------------------------------------- the run


async def settle(idle: Callable[[], int], quiet_s: float = 0.3) -> None:
    """Wait until no platform call arrived for ``quiet_s`` (the turn's aftermath is over)."""
    last = idle()
    calm_since = time.monotonic()
    while time.monotonic() - calm_since < quiet_s:
        await asyncio.sleep(0.05)
        now = idle()
        if now != last:
            last, calm_since = now, time.monotonic()


async def drive(
    args: argparse.Namespace,
    open_room: Callable[[int], Awaitable[R]],
    turn: Callable[[R, str], Awaitable[Turn]],
    calls: Callable[[], int],
) -> list[Turn]:
    """Open the interviews, warm up, then one turn at a time, round robin, each after the
    platform calls of the one before have settled."""
    rooms = [await open_room(i) for i in range(args.interviews)]
    await turn(rooms[0], "warm-up")
    turns: list[Turn] = []
    for n in range(args.turns):
        for room in rooms:
            await settle(calls)
            turns.append(await turn(room, f"question {n}: how would you start?"))
    return turns


async def run_slack(args: argparse.Namespace, folder: Path, database_url: str) -> list[Turn]:
    async with realistic_slack() as slack, realistic_openai() as openai:
        world, http = await slack_world(folder, database_url, slack, openai)
        try:
            return await drive(args, world.open, world.turn, lambda: len(slack.calls))
        finally:
            await http.close()
            await world.bot.kill()


async def run_discord(args: argparse.Namespace, folder: Path, database_url: str) -> list[Turn]:
    async with realistic_discord() as discord, realistic_openai() as openai:
        world = await discord_world(folder, database_url, discord, openai)
        try:
            return await drive(args, world.open, world.turn, lambda: len(discord.calls))
        finally:
            await world.bot.kill()


def report(platform: str, turns: list[Turn]) -> None:
    print(f"{platform}: event -> model request: {Distribution.of(t.to_model for t in turns).ms()}")
    print(
        f"{platform}: model last byte -> final update: "
        f"{Distribution.of(t.to_final for t in turns).ms()}"
    )
    print(
        f"{platform}: event -> first words at the platform: "
        f"{Distribution.of(t.first_visible for t in turns).ms()}"
    )
    print(
        f"{platform}: model TTFT: {Distribution.of(t.first_token - t.arrived for t in turns).ms()}"
    )
    print(
        f"{platform}: first words / model TTFT: "
        f"{Distribution.of(t.ratio for t in turns).plain(digits=3)}"
    )
    print(
        f"{platform}: platform calls per reply: {Distribution.of(t.calls for t in turns).plain()}"
    )


async def amain(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-turn-") as tmp:
        for platform in args.platforms:
            folder = Path(tmp) / platform
            folder.mkdir()
            async with bench_database(args, folder) as url:
                run = run_slack if platform == "slack" else run_discord
                report(platform, await run(args, folder, url))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interviews", type=int, default=5)
    parser.add_argument("--turns", type=int, default=20, help="turns per interview")
    parser.add_argument(
        "--platforms", nargs="+", default=["slack", "discord"], choices=["slack", "discord"]
    )
    add_database_flags(parser)
    args = parser.parse_args(argv)
    header(
        "bot overhead per turn (event -> model, model -> final update, first words / TTFT)",
        interviews=args.interviews,
        turns=args.turns,
        database="sqlite" if args.sqlite else "postgresql",
        platform_latency="80 ms",
        model="300 ms TTFT, 50 tok/s",
    )
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
