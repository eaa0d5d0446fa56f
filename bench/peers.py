"""Our reply streaming side by side with the peers' edit policies, in one run on the same fakes.

    .venv/bin/python -m bench.peers [--levels 1 10 100] [--platforms slack discord] [--sqlite]

For each platform and each level N, N candidates send a message at the same moment and every
reply streams at once (the fake model: 300 ms to the first token, then 50 tokens/s; about
150 tokens a reply), first through our real bot process, then through the peer's policy:

- **Slack, ChatGPT-in-Slack** (seratch/ChatGPT-in-Slack): ``app/slack_ops.py``
  ``post_wip_message`` posts a placeholder (``chat.postMessage``) before the model is called;
  ``app/openai_ops.py`` ``consume_openai_stream_to_write_reply`` counts content chunks and at
  every 20th starts a ``chat.update`` of the accumulated text plus " ... :writing_hand:" in a
  thread of its own (not awaited), stops at the chunk with a ``finish_reason``, joins those
  threads and sends a final ``chat.update``; ``main.py`` adds
  ``RateLimitErrorRetryHandler(max_retry_count=2)``. Here: the same calls through slack_sdk's
  ``AsyncWebClient`` (tasks for the threads, ``AsyncRateLimitErrorRetryHandler(2)``), in a
  workspace of its own on the same fake Slack (its own rate-limit windows).
- **Discord, llmcord** (jakobdylanc/llmcord, ``llmcord.py`` ``on_message``): inside
  ``channel.typing()``, the first content replies to the candidate's message with an embed;
  later chunks edit it (in a task) when the previous edit is done and at least
  ``EDIT_DELAY_SECONDS = 1`` passed since ``last_task_time`` (a module global: one clock for
  every reply of the bot), the final edit (``finish_reason`` set) at once, a new message past
  4096 characters. Its text lags one chunk (it shows ``prev_content``). Here: the same logic
  with discord.py's own HTTP client (a ``Client`` logged in to the fake), in text channels of
  their own.

Both sides stream the same fake model replies against the same fakes (80 ms per call, the
documented limits); the rate-limit windows of the fakes are reset before each phase. Per
phase it prints: 429 responses received, platform calls per reply, time to the first visible
words (the candidate's message sent -> arrival at the fake of the first *accepted* call that
carries reply text) and final-text latency (the model's last byte -> arrival of the accepted
call that completes the text; a reply whose final call was refused for good counts in
``never``). Ours should be ahead on every column (see docs/PERFORMANCE.md for the reading).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
from openai import AsyncOpenAI
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bench.fakes.discord_server import FakeDiscord, discord_py_pointed_at
from bench.fakes.openai_server import FakeOpenAI, StreamTimes
from bench.fakes.slack_server import FakeSlack
from bench.harness import (
    PLATFORM_LATENCY_S,
    Distribution,
    add_database_flags,
    bench_database,
    header,
    realistic_discord,
    realistic_openai,
    until,
)
from bench.turn_overhead import DiscordRoom, SlackRoom, discord_world, slack_world

PEER_TOKEN = "xoxb-peer-chatgpt-in-slack"
WIP_TEXT = "Typing..."  # ChatGPT-in-Slack's loading text (i18n default)
LOADING = " ... :writing_hand:"
STREAMING_INDICATOR = " ⚪"  # llmcord
EDIT_DELAY_SECONDS = 1.0  # llmcord
MODEL = "gpt-4o-mini"


class CountingSlack(FakeSlack):
    """The fake Slack, remembering which recorded calls it answered 429."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refused: set[int] = set()  # id() of the refused calls' params

    def _ratelimited(self, method: str, params: Mapping[str, Any], retry_after: int) -> Any:
        self.refused.add(id(params))
        return super()._ratelimited(method, params, retry_after)

    def accepted(self, call: Any) -> bool:
        return id(call.params) not in self.refused


@dataclass
class Reply:
    """One reply as the fakes saw it (``time.monotonic``); None: never."""

    sent: float
    stream: StreamTimes | None
    first_words: float | None
    final: float | None
    calls: int


def report(platform: str, policy: str, n: int, replies: list[Reply], refused: int) -> None:
    first = [r.first_words - r.sent for r in replies if r.first_words is not None]
    final = [
        r.final - r.stream.last_byte
        for r in replies
        if r.final is not None and r.stream is not None and r.stream.last_byte is not None
    ]
    never = len(replies) - len(final)
    print(
        f"{platform} {policy:<18} N={n:<3} 429s {refused:<5} "
        f"calls/reply {Distribution.of(r.calls for r in replies).plain(digits=1)}"
    )
    print(f"    first visible words: {Distribution.of(first).ms()}")
    print(f"    final-text latency:  {Distribution.of(final).ms()}, never {never}")


def stream_for(openai: FakeOpenAI, text: str) -> StreamTimes | None:
    return next((s for s in openai.streams if text in s.prompt), None)


# ---------------------------------------------------------------------------- Slack


def _reply_text(call: Any) -> str:
    return str(call.params.get("markdown_text") or call.params.get("text") or "")


async def slack_ours(world: Any, rooms: list[SlackRoom], tag: str) -> tuple[list[Reply], int]:
    slack: CountingSlack = world.slack
    since, refused = len(slack.calls), len(slack.rate_limited)
    texts = [f"{tag} question from {room.candidate}" for room in rooms]
    sent = await asyncio.gather(
        *(world.say(room, text) for room, text in zip(rooms, texts, strict=True))
    )

    def done() -> bool:
        return all(world.finished(_accepted(slack, world.reply_calls(r, since))) for r in rooms)

    await until(done, limit_s=900)
    replies = []
    for room, text, at in zip(rooms, texts, sent, strict=True):
        calls = world.reply_calls(room, since)
        ok = _accepted(slack, calls)
        first = next((c.at for c in ok if _reply_text(c).strip("… ")), None)
        final = next(c.at for c in ok if c.method == "chat.stopStream" and c.params.get("blocks"))
        replies.append(Reply(at, stream_for(world.openai, text), first, final, len(calls)))
    return replies, len(slack.rate_limited) - refused


def _accepted(slack: CountingSlack, calls: list[Any]) -> list[Any]:
    return [c for c in calls if slack.accepted(c)]


async def chatgpt_in_slack(
    client: AsyncWebClient, model: AsyncOpenAI, channel: str, thread_ts: str, text: str
) -> None:
    """ChatGPT-in-Slack's reply: placeholder, an update every 20 chunks, a final update."""
    wip = await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=WIP_TEXT)
    stream = await model.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": text}], stream=True
    )
    reply, word_count, threads = "", 0, []

    async def update(shown: str) -> None:
        # A thread that dies prints its traceback; the reply goes on.
        with contextlib.suppress(Exception):
            await client.chat_update(channel=channel, ts=wip["ts"], text=shown + LOADING)

    async for chunk in stream:
        if not chunk.choices:
            continue
        item = chunk.choices[0]
        if item.finish_reason is not None:
            break
        if item.delta.content is not None:
            word_count += 1
            reply += item.delta.content
            if word_count >= 20:
                threads.append(asyncio.create_task(update(reply)))
                word_count = 0
    await asyncio.gather(*threads)
    await stream.close()
    await client.chat_update(channel=channel, ts=wip["ts"], text=reply)


async def slack_peer(
    slack: CountingSlack, openai: FakeOpenAI, n: int, tag: str
) -> tuple[list[Reply], int]:
    client = AsyncWebClient(token=PEER_TOKEN, base_url=slack.api_url)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
    model = AsyncOpenAI(api_key="sk-bench", base_url=openai.base_url, max_retries=0)
    channels = [slack.add_channel(name=f"{tag}-{i}").id for i in range(n)]
    roots = [slack.add_message(c, "a question thread", user="UPEERUSER").ts for c in channels]
    since, refused = len(slack.calls), len(slack.rate_limited)
    texts = [f"{tag} peer question {i}" for i in range(n)]

    async def one(channel: str, root: str, text: str) -> tuple[float, bool]:
        sent = time.monotonic()
        try:
            await chatgpt_in_slack(client, model, channel, root, text)
            return sent, True
        except Exception:
            return sent, False

    outcomes = await asyncio.gather(
        *(one(c, r, t) for c, r, t in zip(channels, roots, texts, strict=True))
    )
    replies = []
    for channel, text, (sent, _completed) in zip(channels, texts, outcomes, strict=True):
        calls = [c for c in slack.calls[since:] if c.params.get("channel") == channel]
        ok = [c for c in calls if slack.accepted(c) and c.method == "chat.update"]
        first = next((c.at for c in ok), None)
        final = next((c.at for c in ok if not _reply_text(c).endswith(LOADING)), None)
        replies.append(Reply(sent, stream_for(openai, text), first, final, len(calls)))
    await model.close()
    return replies, len(slack.rate_limited) - refused


async def run_slack(args: argparse.Namespace, folder: Path, url: str) -> None:
    slack = CountingSlack(latency=PLATFORM_LATENCY_S)
    async with slack, realistic_openai() as openai:
        slack.add_workspace(PEER_TOKEN, team_id="TPEER0001", bot_user_id="UPEERBOT")
        slack.add_user("UPEERUSER", name="peer-candidate")
        world, http = await slack_world(folder, url, slack, openai)
        try:
            for i in range(max(args.levels)):
                await world.open(i)
            await world.turn(world.rooms[0], "warm-up")
            for n in args.levels:
                await asyncio.sleep(args.pause)  # our budgets refill between phases
                slack.reset_rate_limits()
                replies, refused = await slack_ours(world, world.rooms[:n], f"n{n}")
                report("slack", "ours", n, replies, refused)
                slack.reset_rate_limits()
                replies, refused = await slack_peer(slack, openai, n, f"n{n}")
                report("slack", "ChatGPT-in-Slack", n, replies, refused)
        finally:
            await http.close()
            await world.bot.kill()


# ---------------------------------------------------------------------------- Discord


def _description(call: Any) -> str:
    embeds = (call.json or {}).get("embeds") or []
    return str(embeds[0].get("description") or "") if embeds else ""


async def discord_ours(world: Any, rooms: list[DiscordRoom], tag: str) -> tuple[list[Reply], int]:
    fake: FakeDiscord = world.discord
    since, refused = len(fake.calls), fake.rate_limited
    texts = [f"{tag} question from {room.candidate}" for room in rooms]

    async def say(room: DiscordRoom, text: str) -> float:
        sent = time.monotonic()
        await fake.send_message(room.thread, room.candidate, text)
        return sent

    sent = await asyncio.gather(*(say(r, t) for r, t in zip(rooms, texts, strict=True)))
    await until(lambda: all(world.finished(world.reply_calls(r, since)) for r in rooms), 900)
    replies = []
    for room, text, at in zip(rooms, texts, sent, strict=True):
        calls = world.reply_calls(room, since)
        ok = [c for c in calls if c.status == 200]
        first = next((c.at for c in ok if str((c.json or {}).get("content", "")).strip("… ")), None)
        final = next(c.at for c in ok if "tokens this turn" in str((c.json or {}).get("content")))
        replies.append(
            Reply(
                at,
                stream_for(world.openai, text),
                None if first is None else world.mono(first),
                world.mono(final),
                len(calls),
            )
        )
    return replies, fake.rate_limited - refused


@dataclass
class Clock:
    last_task_time: float = 0.0  # llmcord's module global


async def llmcord(
    channel: discord.PartialMessageable, message_id: int, text: str, model: AsyncOpenAI, g: Clock
) -> None:
    """llmcord's ``on_message`` streaming loop (embeds, not plain responses)."""
    new_msg = channel.get_partial_message(message_id)
    curr_content: str | None = None
    finish_reason: str | None = None
    edit_task: asyncio.Task[Any] | None = None
    response_msgs: list[Any] = []
    response_contents: list[str] = []
    embed = discord.Embed()
    max_message_length = 4096 - len(STREAMING_INDICATOR)
    async with channel.typing():
        stream = await model.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}], stream=True
        )
        async for curr_chunk in stream:
            if finish_reason is not None:
                break
            choice = curr_chunk.choices[0] if curr_chunk.choices else None
            if choice is None:
                continue
            finish_reason = choice.finish_reason
            prev_content = curr_content or ""
            curr_content = choice.delta.content or ""
            new_content = prev_content if finish_reason is None else prev_content + curr_content
            if response_contents == [] and new_content == "":
                continue
            start_next_msg = response_contents == [] or (
                len(response_contents[-1] + new_content) > max_message_length
            )
            if start_next_msg:
                response_contents.append("")
            response_contents[-1] += new_content
            ready_to_edit = (edit_task is None or edit_task.done()) and (
                time.time() - g.last_task_time >= EDIT_DELAY_SECONDS
            )
            msg_split_incoming = finish_reason is None and (
                len(response_contents[-1] + curr_content) > max_message_length
            )
            is_final_edit = finish_reason is not None or msg_split_incoming
            is_good_finish = finish_reason is not None and finish_reason.lower() in (
                "stop",
                "end_turn",
            )
            if start_next_msg or ready_to_edit or is_final_edit:
                if edit_task is not None:
                    await edit_task
                embed.description = (
                    response_contents[-1]
                    if is_final_edit
                    else response_contents[-1] + STREAMING_INDICATOR
                )
                embed.color = (
                    discord.Color.dark_green()
                    if msg_split_incoming or is_good_finish
                    else discord.Color.orange()
                )
                if start_next_msg:
                    reply_to = new_msg if response_msgs == [] else response_msgs[-1]
                    response_msgs.append(await reply_to.reply(embed=embed, silent=True))
                else:
                    edit_task = asyncio.create_task(response_msgs[-1].edit(embed=embed))
                g.last_task_time = time.time()
        await stream.close()
    if edit_task is not None:  # llmcord leaves it running; the bench waits to read the result
        await edit_task


async def discord_peer(
    fake: FakeDiscord,
    openai: FakeOpenAI,
    client: discord.Client,
    guild: int,
    member: int,
    n: int,
    tag: str,
) -> tuple[list[Reply], int]:
    model = AsyncOpenAI(api_key="sk-bench", base_url=openai.base_url, max_retries=0)
    channels = [fake.add_text_channel(guild, f"{tag}-peer-{i}") for i in range(n)]
    texts = [f"{tag} peer question {i}" for i in range(n)]
    ids = [await fake.send_message(c, member, t) for c, t in zip(channels, texts, strict=True)]
    since, refused = len(fake.calls), fake.rate_limited
    g = Clock()

    async def one(channel: int, mid: int, text: str) -> float:
        sent = time.monotonic()
        messageable = client.get_partial_messageable(channel, guild_id=guild)
        with contextlib.suppress(Exception):  # llmcord logs it and goes on
            await llmcord(messageable, mid, text, model, g)
        return sent

    sent = await asyncio.gather(
        *(one(c, m, t) for c, m, t in zip(channels, ids, texts, strict=True))
    )
    offset = fake.now() - time.monotonic()
    replies = []
    for channel, text, at in zip(channels, texts, sent, strict=True):
        calls = [c for c in fake.calls[since:] if c.path.startswith(f"/channels/{channel}/")]
        ok = [c for c in calls if c.status == 200 and _description(c)]
        first = next((c.at - offset for c in ok), None)
        final = next(
            (c.at - offset for c in ok if not _description(c).endswith(STREAMING_INDICATOR)),
            None,
        )
        replies.append(Reply(at, stream_for(openai, text), first, final, len(calls)))
    await model.close()
    return replies, fake.rate_limited - refused


async def run_discord(args: argparse.Namespace, folder: Path, url: str) -> None:
    async with realistic_discord() as fake, realistic_openai() as openai:
        world = await discord_world(
            folder, url, fake, openai, parents=max(1, max(args.levels) // 10)
        )
        try:
            for i in range(max(args.levels)):
                await world.open(i)
            await world.turn(world.rooms[0], "warm-up")
            member = fake.add_member(world.guild, username="peer-candidate")
            with discord_py_pointed_at(fake):
                client = discord.Client(intents=discord.Intents.none())
                await client.login(fake.token)
                try:
                    for n in args.levels:
                        await asyncio.sleep(args.pause)
                        replies, refused = await discord_ours(world, world.rooms[:n], f"n{n}")
                        report("discord", "ours", n, replies, refused)
                        replies, refused = await discord_peer(
                            fake, openai, client, world.guild, member, n, f"n{n}"
                        )
                        report("discord", "llmcord", n, replies, refused)
                finally:
                    await client.close()
        finally:
            await world.bot.kill()


async def amain(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        for platform in args.platforms:
            folder = Path(tmp) / platform
            folder.mkdir()
            async with bench_database(args, folder) as url:
                await (run_slack if platform == "slack" else run_discord)(args, folder, url)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument(
        "--platforms", nargs="+", default=["slack", "discord"], choices=["slack", "discord"]
    )
    parser.add_argument("--pause", type=float, default=10.0, help="seconds between phases")
    add_database_flags(parser)
    args = parser.parse_args(argv)
    header(
        "reply streaming: ours vs llmcord (Discord) and ChatGPT-in-Slack (Slack)",
        levels=args.levels,
        database="sqlite" if args.sqlite else "postgresql",
        platform_latency="80 ms",
        model="300 ms TTFT, 50 tok/s",
    )
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
