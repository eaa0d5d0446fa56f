"""Acknowledgement latency of slash commands and button clicks while interviews stream.

    python -m bench.ack_latency [--platform both|slack|discord] [--interviews 50]
        [--seconds 60] [--rate 4] [--sqlite | --postgres URL]

The real bot (``python -m bot run``) serves the fake Slack (HTTP mode) or the fake Discord
(gateway) with the fake model at 300 ms to the first token and 50 tokens/s, every platform
API call taking 80 ms, on PostgreSQL by default. ``--interviews`` interviews are started and
their candidates keep them streaming: each sends its next message as soon as the model has
sent the last byte of the previous reply (replies of ``--reply-tokens`` tokens, 10 s each by
default), so about that many replies stream at any moment (printed as a distribution).
Meanwhile an open-loop probe sends ``--rate`` interviewer actions a second for
``--seconds`` seconds, alternately a slash command (``/interview status``,
``/interview challenges``) and a click on a counter button (+10 min and +5k tokens on the
streaming interviews, Pause / Resume on ``--idle`` extra idle interviews).

The acknowledgement is what the platform waits for (3 s at most):

* Slack: from sending the signed request to ``/slack/events`` to its HTTP response
  (measured by the probe, a separate process with its own event loop, as Slack's servers are);
* Discord: from the fake gateway dispatching INTERACTION_CREATE to the bot's interaction
  callback arriving at the fake (``FakeInteraction.dispatched_at`` -> ``callback_at``).

Prints p50 / p99 / max per platform and kind (command, click); the bar is p99 < 100 ms. The
fakes and the candidates run in this process: its own event-loop lag is printed too, since it
delays the Discord fake's recording of the callback (an upper bound on that error).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.fakes.discord_server import FakeDiscord
from bench.fakes.openai_server import FakeOpenAI
from bench.fakes.slack_server import FakeSlack
from bench.fakes.slack_signing import (
    block_action_body,
    event_body,
    message_event,
    signed_headers,
    slash_command_body,
)
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
from core.models import Interview
from storage import create_uow_factory

INTERVIEWER = "UIVW00001"
COMMANDS = ("status", "challenges")
STREAMING_CLICKS = ("extend_time", "extend_tokens")
IDLE_CLICKS = ("pause", "resume")
# Four hours and a million tokens: nothing ends or runs out during a run.
START_MINUTES, START_TOKENS = 240, 1_000_000
# Interviews are started this many at a time (each opens a conversation and posts).
START_CONCURRENCY = 10
# The bench's settings for the bot: no workspace cap on model calls (50 streaming
# interviews make ~300 a minute, the default cap), evaluation off (nothing ends anyway).
BOT_SETTINGS = {"WORKSPACE_LLM_CALLS_PER_MINUTE": "0", "CANDIDATE_MESSAGES_PER_MINUTE": "0"}


def slack_user(i: int) -> str:
    return f"UCAND{i:05d}"


@dataclass
class Room:
    """One started interview as the load and the probe address it."""

    interview_id: str
    candidate: str
    channel: str  # Slack channel / Discord thread
    anchor: str  # Slack thread ts / Discord counter message id


@dataclass
class Load:
    """The candidates: each keeps its interview streaming."""

    openai: FakeOpenAI
    say: Callable[[Room, str, int], Coroutine[Any, Any, None]]
    turns_done: int = 0
    resent: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    concurrency: list[int] = field(default_factory=list)

    def streaming(self) -> int:
        return sum(1 for s in self.openai.streams if s.last_byte is None)

    async def candidate(self, room: Room, index: int) -> None:
        for n in itertools.count():
            if self.stop.is_set():
                return
            tag = f"c{index}t{n}"
            seen = len(self.openai.streams)
            await self.say(room, f"{tag} please explain the approach step by step", n)
            deadline = time.monotonic() + 60
            while not self.stop.is_set():
                done = next(
                    (
                        s
                        for s in self.openai.streams[seen:]
                        if s.prompt.startswith(tag + " ") and s.last_byte is not None
                    ),
                    None,
                )
                if done is not None:
                    self.turns_done += 1
                    break
                if time.monotonic() > deadline:  # not answered (refused, lost): ask again
                    self.resent += 1
                    break
                await asyncio.sleep(0.05)

    async def sample(self) -> None:
        while not self.stop.is_set():
            self.concurrency.append(self.streaming())
            await asyncio.sleep(0.5)


async def loop_lag(samples: list[float], stop: asyncio.Event, every_s: float = 0.01) -> None:
    """This process's event-loop lag: how late a 10 ms sleep wakes up."""
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(every_s)
        samples.append(max(0.0, time.perf_counter() - start - every_s))


def long_reply(tokens: int) -> str:
    """A reply of about ``tokens`` tokens (one word is one token)."""
    words = ("sort", "the", "array", "then", "walk", "two", "pointers", "inward")
    return " ".join(words[i % len(words)] for i in range(tokens))


async def open_interviews(count: int, start: Callable[[int], Coroutine[Any, Any, None]]) -> None:
    """``start(i)`` for each of ``count`` interviews, START_CONCURRENCY at a time."""
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def one(i: int) -> None:
        async with gate:
            await start(i)

    await asyncio.gather(*(one(i) for i in range(count)))


async def rooms_from_db(database_url: str, anchor_key: str, channel_key: str) -> list[Room]:
    """The open interviews as :class:`Room` (their platform data is in the database)."""
    db = create_uow_factory(database_url)
    try:
        async with db() as uow:
            found: list[Interview] = await uow.interviews.list_open()
    finally:
        await db.close()
    return sorted(
        (
            Room(
                i.id,
                i.candidate_id,
                str(i.platform_data[channel_key]),
                str(i.platform_data[anchor_key]),
            )
            for i in found
        ),
        key=lambda r: r.candidate,
    )


def probe_plan(rate: float, seconds: float) -> list[tuple[float, str, int]]:
    """(offset in s, kind, sequence number): alternately a command and a click."""
    total = max(2, math.ceil(rate * seconds))
    return [(n / rate, "command" if n % 2 == 0 else "click", n) for n in range(total)]


@dataclass
class Figures:
    platform: str
    acks: dict[str, list[float]]
    statuses: dict[str, int]
    concurrency: list[int]
    turns_done: int
    resent: int
    lag: list[float]
    interviews: int
    idle: int
    failed: int = 0

    def print(self) -> None:
        p = self.platform
        print(
            f"{p}: {self.interviews} streaming interviews (+{self.idle} idle); replies streaming "
            f"at once during the probe: {Distribution.of(self.concurrency).plain(digits=0)}; "
            f"candidate turns completed {self.turns_done}, re-sent {self.resent}"
        )
        for kind in ("command", "click"):
            print(f"{p} {kind} ack: {Distribution.of(self.acks[kind]).ms()}")
        every = self.acks["command"] + self.acks["click"]
        print(f"{p} all acks: {Distribution.of(every).ms()}")
        print(f"{p} responses: {json.dumps(self.statuses, sort_keys=True)}, lost {self.failed}")
        print(f"{p} bench process loop lag: {Distribution.of(self.lag).ms()}")


@asynccontextmanager
async def measuring(load: Load) -> AsyncIterator[list[float]]:
    """Loop-lag samples and stream-concurrency samples while the probe runs."""
    lag: list[float] = []
    stop = asyncio.Event()
    tasks = [asyncio.create_task(loop_lag(lag, stop)), asyncio.create_task(load.sample())]
    try:
        yield lag
    finally:
        stop.set()
        load.stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------------------- Slack


@dataclass
class SlackBench:
    """The fakes, the bot and the candidates of one Slack run (also used by two_replicas)."""

    slack: FakeSlack
    openai: FakeOpenAI
    http: aiohttp.ClientSession
    events_url: str
    rooms: list[Room] = field(default_factory=list)
    idle_rooms: list[Room] = field(default_factory=list)
    ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    async def post(self, body: str) -> int:
        async with self.http.post(
            self.events_url, data=body, headers=signed_headers(SECRET, body)
        ) as response:
            await response.read()
            return response.status

    async def start(self, i: int) -> None:
        user = slack_user(i)
        url = self.slack.new_response_url()
        text = f"start <@{user}|cand{i}> {START_MINUTES}m {START_TOKENS} two-sum"
        body = slash_command_body(text=text, user_id=INTERVIEWER, response_url=url)
        assert await self.post(body) == 200
        rid = url.rsplit("/", 1)[1]
        await until(lambda: bool(self.slack.responses[rid]), limit_s=120)
        reply = self.slack.responses[rid][-1].get("text", "")
        if not reply.startswith("Started"):
            raise RuntimeError(f"could not start interview {i}: {reply}")

    async def say(self, room: Room, text: str, n: int) -> None:
        ts = f"{int(time.time())}.{next(self.ts):06d}"
        event = message_event(room.channel, room.candidate, text, ts, thread_ts=room.anchor)
        await self.post(event_body(event))

    async def open(self, database_url: str, interviews: int, idle: int) -> None:
        for i in range(interviews + idle):
            self.slack.add_user(slack_user(i), name=f"cand{i}")
        await open_interviews(interviews + idle, self.start)
        rooms = await rooms_from_db(database_url, "thread_ts", "channel")
        self.rooms, self.idle_rooms = rooms[:interviews], rooms[interviews:]

    def probe_requests(self, plan: list[tuple[float, str, int]]) -> list[dict[str, Any]]:
        """What the probe process sends (bodies are signed there, at send time)."""
        requests = []
        for offset, kind, n in plan:
            url = self.slack.new_response_url()
            if kind == "command":
                text = COMMANDS[(n // 2) % len(COMMANDS)]
                body = slash_command_body(text=text, user_id=INTERVIEWER, response_url=url)
            else:
                room, action = click_target(self.rooms, self.idle_rooms, n // 2)
                body = block_action_body(
                    f"ib_{action}",
                    room.interview_id,
                    user_id=INTERVIEWER,
                    channel_id=room.channel,
                    message_ts=room.anchor,
                    response_url=url,
                )
            requests.append({"at": offset, "kind": kind, "body": body})
        return requests


def click_target(rooms: list[Room], idle: list[Room], n: int) -> tuple[Room, str]:
    """The n-th click: Pause/Resume on the idle interviews every third, else an extension."""
    if idle and n % 3 == 2:
        k = n // 3
        return idle[k % len(idle)], IDLE_CLICKS[(k // len(idle)) % 2]
    return rooms[n % len(rooms)], STREAMING_CLICKS[(n // len(rooms)) % 2]


@asynccontextmanager
async def slack_world(
    args: argparse.Namespace, folder: Path, database_url: str
) -> AsyncIterator[tuple[FakeSlack, FakeOpenAI, aiohttp.ClientSession]]:
    async with AsyncExitStack() as stack:
        slack = await stack.enter_async_context(realistic_slack())
        openai = await stack.enter_async_context(realistic_openai())
        openai.replies.extend([long_reply(args.reply_tokens)] * 100_000)
        slack.add_user(INTERVIEWER, name="ivy")
        http = await stack.enter_async_context(aiohttp.ClientSession())
        yield slack, openai, http


def bot_env_slack(
    slack: FakeSlack, openai: FakeOpenAI, database_url: str, extra: dict[str, str]
) -> dict[str, str]:
    return slack_env(slack, openai, database_url, SLACK_INTERVIEWERS=INTERVIEWER, **extra)


async def run_probe(url: str, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run the probe in its own process (``--probe``): its timing is not this loop's."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.ack_latency",
        "--probe",
        url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate(json.dumps(requests).encode())
    if proc.returncode != 0:
        raise RuntimeError(f"the probe exited {proc.returncode}")
    results: list[dict[str, Any]] = json.loads(out)
    return results


async def probe_main(url: str) -> None:
    """The probe process: send each request at its offset (open loop), time each answer."""
    requests = json.loads(sys.stdin.read())
    results: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(request: dict[str, Any], t0: float) -> None:
            await asyncio.sleep(max(0.0, t0 + request["at"] - time.perf_counter()))
            body = request["body"]
            headers = signed_headers(SECRET, body)
            sent = time.perf_counter()
            try:
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientError as exc:
                results.append({"kind": request["kind"], "error": str(exc)})
                return
            results.append(
                {"kind": request["kind"], "s": time.perf_counter() - sent, "status": status}
            )

        t0 = time.perf_counter() + 0.2
        await asyncio.gather(*(one(r, t0) for r in requests))
    json.dump(results, sys.stdout)


def tally(results: list[dict[str, Any]]) -> tuple[dict[str, list[float]], dict[str, int], int]:
    acks: dict[str, list[float]] = {"command": [], "click": []}
    statuses: dict[str, int] = {}
    failed = 0
    for r in results:
        if "error" in r:
            failed += 1
            continue
        acks[r["kind"]].append(r["s"])
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    return acks, statuses, failed


async def bench_slack(args: argparse.Namespace, folder: Path) -> Figures:
    async with (
        bench_database(args, folder) as database_url,
        slack_world(args, folder, database_url) as (slack, openai, http),
    ):
        bot, port, _ = await start_bot(
            folder, **bot_env_slack(slack, openai, database_url, extra_env(args))
        )
        print(f"slack: bot pid {bot.proc.pid}", flush=True)
        try:
            world = SlackBench(slack, openai, http, f"http://127.0.0.1:{port}/slack/events")
            return await drive(
                args,
                openai,
                world.say,
                lambda: world.open(database_url, args.interviews, args.idle),
                lambda: world.rooms,
                lambda plan: probe_slack(world, plan),
                "slack",
            )
        finally:
            await bot.kill()


async def probe_slack(
    world: SlackBench, plan: list[tuple[float, str, int]]
) -> tuple[dict[str, list[float]], dict[str, int], int]:
    return tally(await run_probe(world.events_url, world.probe_requests(plan)))


async def drive(
    args: argparse.Namespace,
    openai: FakeOpenAI,
    say: Callable[[Room, str, int], Coroutine[Any, Any, None]],
    open_all: Callable[[], Coroutine[Any, Any, None]],
    rooms: Callable[[], list[Room]],
    probe: Callable[
        [list[tuple[float, str, int]]],
        Coroutine[Any, Any, tuple[dict[str, list[float]], dict[str, int], int]],
    ],
    platform: str,
) -> Figures:
    """Open the interviews, keep them streaming, probe, collect the figures."""
    started = time.monotonic()
    await open_all()
    print(
        f"{platform}: opened {len(rooms())} interviews in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    load = Load(openai, say)
    candidates = [asyncio.create_task(load.candidate(r, i)) for i, r in enumerate(rooms())]
    try:
        # nearly every interview's first reply under way before the probe starts
        await until(lambda: len(openai.streams) >= 0.9 * len(rooms()), limit_s=180)
        await asyncio.sleep(1.0)
        async with measuring(load) as lag:
            acks, statuses, failed = await probe(probe_plan(args.rate, args.seconds))
        return Figures(
            platform,
            acks,
            statuses,
            load.concurrency,
            load.turns_done,
            load.resent,
            lag,
            len(rooms()),
            args.idle,
            failed,
        )
    finally:
        load.stop.set()
        for task in candidates:
            task.cancel()
        await asyncio.gather(*candidates, return_exceptions=True)


# ---------------------------------------------------------------------------- Discord


@dataclass
class DiscordBench:
    discord: FakeDiscord
    guild: int
    interviewer: int
    parents: list[int]
    candidates: list[int]
    rooms: list[Room] = field(default_factory=list)
    idle_rooms: list[Room] = field(default_factory=list)

    async def start(self, i: int) -> None:
        iid = await self.discord.send_slash_command(
            self.guild,
            self.parents[i % len(self.parents)],
            self.interviewer,
            subcommand="start",
            options={
                "candidate": self.candidates[i],
                "minutes": START_MINUTES,
                "tokens": START_TOKENS,
                "challenge": "two-sum",
            },
        )
        await self.discord.wait_for(
            lambda: any(
                e["kind"] == "followup" for e in self.discord.interaction_responses.get(iid, [])
            ),
            timeout=120,
        )

    async def say(self, room: Room, text: str, n: int) -> None:
        await self.discord.send_message(int(room.channel), int(room.candidate), text)

    async def open(self, database_url: str, interviews: int, idle: int) -> None:
        await open_interviews(interviews + idle, self.start)
        rooms = await rooms_from_db(database_url, "counter_message", "thread")
        self.rooms, self.idle_rooms = rooms[:interviews], rooms[interviews:]

    async def probe(
        self, plan: list[tuple[float, str, int]]
    ) -> tuple[dict[str, list[float]], dict[str, int], int]:
        sent: list[tuple[str, int]] = []
        t0 = time.perf_counter()
        for offset, kind, n in plan:
            await asyncio.sleep(max(0.0, t0 + offset - time.perf_counter()))
            if kind == "command":
                iid = await self.discord.send_slash_command(
                    self.guild,
                    self.parents[0],
                    self.interviewer,
                    subcommand=COMMANDS[(n // 2) % len(COMMANDS)],
                )
            else:
                room, action = click_target(self.rooms, self.idle_rooms, n // 2)
                iid = await self.discord.send_component_click(
                    f"ib:{action}", room.anchor, room.channel, self.interviewer, self.guild
                )
            sent.append((kind, iid))
        with suppress(TimeoutError):
            await self.discord.wait_for(
                lambda: all(self.discord.interactions[i].response_type for _, i in sent),
                timeout=10,
            )
        acks: dict[str, list[float]] = {"command": [], "click": []}
        statuses: dict[str, int] = {}
        failed = 0
        for kind, iid in sent:
            inter = self.discord.interactions[iid]
            if inter.callback_at is None:
                failed += 1
                continue
            acks[kind].append(inter.callback_at - inter.dispatched_at)
            answer = next(
                (
                    e
                    for e in self.discord.interaction_responses.get(iid, [])
                    if e["kind"] == "callback"
                ),
                None,
            )
            if answer is not None:
                key = f"type {answer['type']}"
            else:  # the callback arrived but was refused (expired, answered twice)
                calls = self.discord.calls_matching("POST", f"/interactions/{iid}/.*")
                key = f"refused {calls[0].status if calls else 0}"
            statuses[key] = statuses.get(key, 0) + 1
        return acks, statuses, failed


async def bench_discord(args: argparse.Namespace, folder: Path) -> Figures:
    async with (
        bench_database(args, folder) as database_url,
        realistic_discord() as discord,
        realistic_openai() as openai,
    ):
        openai.replies.extend([long_reply(args.reply_tokens)] * 100_000)
        ids = discord.seed()
        total = args.interviews + args.idle
        # Threads open at 10 per 10 s per parent channel: one parent per ten interviews.
        parents = [ids.channel_id] + [
            discord.add_text_channel(ids.guild_id, f"interviews-{k}")
            for k in range(1, math.ceil(total / 10))
        ]
        candidates = [discord.add_member(ids.guild_id, username=f"cand{i}") for i in range(total)]
        env = discord_env(discord, openai, database_url, ids.guild_id, **extra_env(args))
        bot, _, _ = await start_bot(folder, **env)
        print(f"discord: bot pid {bot.proc.pid}", flush=True)
        try:
            world = DiscordBench(discord, ids.guild_id, ids.admin_id, parents, candidates)
            return await drive(
                args,
                openai,
                world.say,
                lambda: world.open(database_url, args.interviews, args.idle),
                lambda: world.rooms,
                world.probe,
                "discord",
            )
        finally:
            await bot.kill()


# ---------------------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--platform", choices=("both", "slack", "discord"), default="both")
    p.add_argument("--interviews", type=int, default=50, help="interviews kept streaming")
    p.add_argument("--idle", type=int, default=2, help="extra idle interviews (Pause/Resume)")
    p.add_argument("--seconds", type=float, default=60.0, help="how long the probe runs")
    p.add_argument("--rate", type=float, default=4.0, help="probe actions per second")
    p.add_argument("--reply-tokens", type=int, default=500, help="tokens per model reply")
    p.add_argument(
        "--bot-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra setting for the bot (repeatable), e.g. DATABASE_POOL_SIZE=20",
    )
    add_database_flags(p)
    return p


def extra_env(args: argparse.Namespace) -> dict[str, str]:
    """BOT_SETTINGS with ``--bot-env`` on top."""
    return {**BOT_SETTINGS, **dict(e.split("=", 1) for e in args.bot_env)}


async def amain(args: argparse.Namespace) -> None:
    header(
        "Acknowledgement latency while interviews stream",
        platform=args.platform,
        interviews=args.interviews,
        idle=args.idle,
        seconds=args.seconds,
        rate=args.rate,
        reply_tokens=args.reply_tokens,
        database="sqlite" if args.sqlite else "postgresql",
        model="300 ms TTFT, 50 tok/s",
        platform_latency="80 ms",
        bot_env=",".join(args.bot_env) or "-",
    )
    figures: list[Figures] = []
    for platform, bench in (("slack", bench_slack), ("discord", bench_discord)):
        if args.platform in ("both", platform):
            with tempfile.TemporaryDirectory(prefix=f"ack-{platform}-") as folder:
                figures.append(await bench(args, Path(folder)))
                figures[-1].print()
    print("bar: p99 < 100 ms per platform and kind (Slack and Discord allow 3,000 ms)")
    for f in figures:
        for kind in ("command", "click"):
            d = Distribution.of(f.acks[kind])
            verdict = "met" if d.p99 < 0.1 else "MISSED"
            print(f"{f.platform} {kind}: p99 {d.p99 * 1000:.1f} ms -> {verdict}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--probe":
        asyncio.run(probe_main(sys.argv[2]))
        return
    asyncio.run(amain(parser().parse_args()))


if __name__ == "__main__":
    main()
