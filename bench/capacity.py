"""Capacity of one bot process: event-loop lag and resident memory at 10, 100 and 1,000
concurrent active interviews, 10 % of them streaming a reply at any moment.

How: one real ``python -m bot run`` process serves the fake Discord (80 ms per API call, its
per-route limits) with the fake model (300 ms to the first token, then 50 tokens/s) on
PostgreSQL. The bot is pinned to one core (``--bot-core``, default 1) and this load
generator with the fakes to the other (``--load-core``, default 0). Interviews are started
through the public path, ``/interview start`` slash commands, ten per text channel (Discord
allows a channel 10 thread creations per 10 s), the channels in parallel. The same process
then grows from level to level (10, then 90 more, then 900 more). At each level, after a
short settling pause, a steady-state window (``--window``, 90 s) runs with ``level / 10``
candidates always waiting for a reply: each sends a message in its interview's thread,
waits until the model's stream has ended, and moves on to the next interview (round robin,
so every interview takes turns, its counter is redrawn after each one and its tick job
stays armed). Meanwhile the bot's ``/metrics`` histogram
``interview_buddy_event_loop_lag_seconds`` (a 100 ms sleeper on its loop, bot/loop_lag.py)
is read at the start and the end of the window; the lag distribution is the difference of
the two, with p50 / p99 interpolated inside the histogram's buckets (as Prometheus's
``histogram_quantile``; the bucket is printed too). RSS (``/proc/<pid>/status``) and the
bot's CPU use are sampled every second.

Why Discord: Slack's ``conversations.open`` (each start opens the candidate's group DM) is
Tier 3, about 45 calls a minute per workspace, and one bot process serves one workspace:
1,000 starts would take 22 minutes. Discord's thread creation is limited per channel, so
starts spread over many channels.

Run (the issue's scale; about 10 minutes)::

    .venv/bin/python -m bench.capacity

Smaller, for a smoke run::

    .venv/bin/python -m bench.capacity --levels 5,10 --window 10 --sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.fakes.discord_server import FakeDiscord, Perm
from bench.fakes.openai_server import FakeOpenAI, StreamTimes
from bench.fakes.processes import BotProcess
from bench.harness import (
    Distribution,
    add_database_flags,
    bench_database,
    discord_env,
    header,
    realistic_discord,
    realistic_openai,
    rss_mb,
    scrape,
    start_bot,
)
from core.tokens import TokenCounter

LAG = "interview_buddy_event_loop_lag_seconds_bucket{"
FULL_GC = 'interview_buddy_gc_pause_seconds_bucket{generation="2",'
FROZEN = "interview_buddy_gc_frozen_objects"
GC_SUM = "interview_buddy_gc_pause_seconds_sum"
PER_CHANNEL = 10  # Discord: 10 thread creations per 10 s per channel
TURN_TIMEOUT_S = 60.0
MARKER = re.compile(r"capacity question \d+:")


@dataclass
class Room:
    """One started interview: its thread and its candidate."""

    thread_id: int
    candidate: int
    busy: bool = False


@dataclass
class World:
    discord: FakeDiscord
    openai: FakeOpenAI
    guild: int
    interviewer: int
    channels: list[int]
    candidates: list[int]
    rooms: list[Room] = field(default_factory=list)
    threads: set[int] = field(default_factory=set)
    streams: dict[str, StreamTimes] = field(default_factory=dict)
    seen_streams: int = 0
    turns_sent: int = 0
    turns_done: int = 0
    turns_lost: int = 0
    start_failures: list[str] = field(default_factory=list)


@dataclass
class Level:
    interviews: int
    streaming_slots: int
    start_s: float
    start_lag: Distribution
    lag: Distribution
    lag_p99_bucket: str
    full_gc: Distribution  # the pauses of full garbage collections
    frozen: float  # objects frozen out of them at start-up
    gc_share: dict[str, float]  # generation -> its collections' share of the window
    rss: Distribution
    cpu: float
    streams_open: Distribution
    turns: int
    lost: int
    window_s: float


# ---------------------------------------------------------------- the bot on one core


def pin(core: int) -> None:
    """Pin the calling thread (and what it starts from now on) to ``core``."""
    os.sched_setaffinity(0, {core})


async def start_pinned_bot(
    folder: Path, bot_core: int, load_core: int, env: dict[str, str]
) -> tuple[BotProcess, int]:
    """``python -m bot run`` on ``bot_core`` (the child inherits the affinity at fork);
    returns the process and its metrics port once ``/healthz`` answers 200."""
    pin(bot_core)
    try:
        bot, _, metrics_port = await start_bot(folder, **env)
    finally:
        pin(load_core)
    return bot, metrics_port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- lag from the histogram


def lag_buckets(samples: dict[str, float], prefix: str = LAG) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of the histogram whose buckets start with ``prefix``
    (the loop lag's by default), in order."""
    found = []
    for key, value in samples.items():
        if key.startswith(prefix):
            bound = key.split('le="', 1)[1].split('"', 1)[0]
            found.append((math.inf if bound == "+Inf" else float(bound), value))
    return sorted(found)


def quantile(buckets: list[tuple[float, float]], q: float) -> tuple[float, str]:
    """``histogram_quantile``: the q-quantile interpolated inside its bucket, and the bucket."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return math.nan, "-"
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower, f"> {lower * 1000:g} ms"
            inside = count - below
            value = lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
            return value, f"({lower * 1000:g}, {bound * 1000:g}] ms"
        lower, below = bound, count
    return lower, "-"


def window_lag(
    before: dict[str, float], after: dict[str, float], prefix: str = LAG
) -> tuple[Distribution, str]:
    """The distribution of what the histogram observed between two scrapes."""
    start = dict(lag_buckets(before, prefix))
    delta = [(bound, count - start.get(bound, 0.0)) for bound, count in lag_buckets(after, prefix)]
    n = int(delta[-1][1]) if delta else 0
    p50, _ = quantile(delta, 0.5)
    p99, bucket = quantile(delta, 0.99)
    top = next((b for b, c in delta if c >= n), math.nan) if n else math.nan
    return Distribution(n, p50, p99, top), bucket


# ---------------------------------------------------------------- the world


def build_world(discord: FakeDiscord, openai: FakeOpenAI, interviews: int) -> World:
    owner = discord.add_user("owner", global_name="Guild Owner")
    guild = discord.add_guild("Capacity", owner_id=owner)
    admin_role = discord.add_role(guild, "Admin", int(Perm.MANAGE_GUILD))
    interviewer = discord.add_member(
        guild, discord.add_user("ivy", global_name="Ivy"), roles=[admin_role]
    )
    channels = [
        discord.add_text_channel(guild, f"interviews-{i}")
        for i in range(math.ceil(interviews / PER_CHANNEL))
    ]
    candidates = [discord.add_member(guild, username=f"cand{i}") for i in range(interviews)]
    return World(discord, openai, guild, interviewer, channels, candidates)


async def start_one(world: World, channel: int, candidate: int) -> Room | None:
    fake = world.discord
    iid = await fake.send_slash_command(
        world.guild,
        channel,
        world.interviewer,
        subcommand="start",
        options={"candidate": candidate, "challenge": "two-sum"},
    )

    def followup() -> dict[str, object] | None:
        return next(
            (e for e in fake.interaction_responses.get(iid, []) if e["kind"] == "followup"),
            None,
        )

    try:
        await fake.wait_for(lambda: followup() is not None, timeout=120)
    except TimeoutError:
        world.start_failures.append("no answer within 120 s")
        return None
    answer = followup()
    assert answer is not None
    content = str(answer["data"].get("content", ""))  # type: ignore[attr-defined]
    if not content.startswith("Started"):
        world.start_failures.append(content[:120])
        return None
    threads = [
        c.id
        for c in fake.channels.values()
        if c.parent_id == channel and candidate in c.members and c.id not in world.threads
    ]
    world.threads.update(threads)
    return Room(threads[-1], candidate)


async def start_rooms(world: World, upto: int) -> float:
    """Start interviews until ``upto`` run, ten per channel, channels in parallel;
    returns how long it took."""
    begun = time.monotonic()
    todo = range(len(world.rooms), upto)
    per_channel: dict[int, list[int]] = {}
    for i in todo:
        per_channel.setdefault(world.channels[i // PER_CHANNEL], []).append(world.candidates[i])

    async def channel_starts(channel: int, candidates: list[int]) -> None:
        for candidate in candidates:
            room = await start_one(world, channel, candidate)
            if room is not None:
                world.rooms.append(room)

    await asyncio.gather(*(channel_starts(c, cs) for c, cs in per_channel.items()))
    return time.monotonic() - begun


# ---------------------------------------------------------------- streaming load


def index_streams(world: World) -> None:
    streams = world.openai.streams
    for times in streams[world.seen_streams :]:
        found = MARKER.search(times.prompt)
        if found:
            world.streams[found.group(0)] = times
    world.seen_streams = len(streams)


async def candidate_loop(world: World, rooms: Iterator[Room], stop: asyncio.Event) -> None:
    """One candidate always waiting for a reply: ask, wait for the stream's end, move on."""
    while not stop.is_set():
        room = next(rooms)
        if room.busy:
            await asyncio.sleep(0)
            continue
        room.busy = True
        world.turns_sent += 1
        marker = f"capacity question {world.turns_sent}:"
        prompt = f"{marker} how do I handle duplicate keys?"
        try:
            await world.discord.send_message(room.thread_id, room.candidate, prompt)
            deadline = time.monotonic() + TURN_TIMEOUT_S
            while True:
                index_streams(world)
                times = world.streams.get(marker)
                if times is not None and times.last_byte is not None:
                    world.turns_done += 1
                    del world.streams[marker]
                    break
                if time.monotonic() > deadline:
                    world.turns_lost += 1
                    break
                await asyncio.sleep(0.05)
        finally:
            room.busy = False


def gc_seconds(samples: dict[str, float], generation: str) -> float:
    """The bot's time in collections of ``generation`` so far."""
    return samples.get(f'{GC_SUM}{{generation="{generation}"}}', 0.0)


def open_streams(openai: FakeOpenAI) -> int:
    return sum(1 for s in openai.streams[-2000:] if s.last_byte is None)


async def measure(
    world: World,
    bot: BotProcess,
    http: aiohttp.ClientSession,
    metrics_port: int,
    level: int,
    window_s: float,
    start_s: float,
    start_lag: Distribution,
) -> Level:
    level = min(level, len(world.rooms))  # a start refused under load is reported
    slots = max(1, math.ceil(level / 10))
    stop = asyncio.Event()
    rooms = itertools.cycle(world.rooms[:level])
    done, lost = world.turns_done, world.turns_lost
    loops = [asyncio.create_task(candidate_loop(world, rooms, stop)) for _ in range(slots)]
    await asyncio.sleep(min(10.0, window_s / 4))  # ramp up: every slot waiting for a reply
    before = await scrape(http, metrics_port)
    cpu_before, began = cpu_seconds(bot.proc.pid), time.monotonic()
    rss: list[float] = []
    streams: list[float] = []
    while time.monotonic() - began < window_s:
        await asyncio.sleep(1.0)
        rss.append(rss_mb(bot.proc.pid))
        streams.append(open_streams(world.openai))
    after = await scrape(http, metrics_port)
    window = time.monotonic() - began
    cpu = (cpu_seconds(bot.proc.pid) - cpu_before) / window
    stop.set()
    await asyncio.gather(*loops)
    lag, bucket = window_lag(before, after)
    full_gc, _ = window_lag(before, after, FULL_GC)
    gc_share = {g: (gc_seconds(after, g) - gc_seconds(before, g)) / window for g in "012"}
    return Level(
        level,
        slots,
        start_s,
        start_lag,
        lag,
        bucket,
        full_gc,
        after.get(FROZEN, 0.0),
        gc_share,
        Distribution.of(rss),
        cpu,
        Distribution.of(streams),
        world.turns_done - done,
        world.turns_lost - lost,
        window_s,
    )


# ---------------------------------------------------------------- the run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="10,100,1000", help="concurrent interviews, ascending")
    parser.add_argument("--window", type=float, default=90.0, help="steady-state seconds")
    parser.add_argument("--bot-core", type=int, default=1)
    parser.add_argument("--load-core", type=int, default=0)
    parser.add_argument("--bot-log", type=Path, help="write the bot's stderr to this file")
    add_database_flags(parser)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> list[Level]:
    levels = sorted(int(n) for n in args.levels.split(","))
    pin(args.load_core)
    TokenCounter("gpt-4o-mini")  # warm the fake model's encoding before anything is timed
    results: list[Level] = []
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        folder = Path(tmp)
        async with (
            realistic_discord() as discord,
            realistic_openai() as openai,
            bench_database(args, folder) as database,
            aiohttp.ClientSession() as http,
        ):
            world = build_world(discord, openai, levels[-1])
            env = discord_env(
                discord,
                openai,
                database,
                world.guild,
                WORKSPACE_LLM_CALLS_PER_MINUTE="0",
                CANDIDATE_MESSAGES_PER_MINUTE="0",
                LLM_MAX_RETRIES="0",
            )
            bot, metrics_port = await start_pinned_bot(folder, args.bot_core, args.load_core, env)
            try:
                await discord.wait_ready(timeout=30)
                await asyncio.sleep(3.0)  # past start-up (guild_ready_timeout, command sync)
                idle = rss_mb(bot.proc.pid)
                print(f"idle (connected, no interview): RSS {idle:.1f} MiB")
                for level in levels:
                    before = await scrape(http, metrics_port)
                    start_s = await start_rooms(world, level)
                    start_lag, _ = window_lag(before, await scrape(http, metrics_port))
                    if world.start_failures:
                        print(
                            f"   {len(world.start_failures)} start(s) refused so far: "
                            f"{sorted(set(world.start_failures))[:3]}"
                        )
                    if len(world.rooms) < 0.95 * level:
                        raise RuntimeError(f"only {len(world.rooms)} of {level} started")
                    await asyncio.sleep(2.0)
                    result = await measure(
                        world, bot, http, metrics_port, level, args.window, start_s, start_lag
                    )
                    results.append(result)
                    print_level(result, idle)
            finally:
                bot.terminate()
                with contextlib.suppress(TimeoutError):
                    await bot.exit_code(timeout=30)
                await bot.kill()
                if args.bot_log is not None:
                    args.bot_log.write_text(bot.output)
            print_curve(results, idle)
    return results


def print_level(level: Level, idle: float) -> None:
    print(
        f"-- {level.interviews} interviews: started in {level.start_s:.1f} s "
        f"(loop lag meanwhile {level.start_lag.ms()}); {level.streaming_slots} candidates "
        f"waiting for a reply at any moment"
    )
    print(
        f"   loop lag: {level.lag.ms()}; p99 in bucket {level.lag_p99_bucket} "
        "(max = upper bound of the highest bucket hit)"
    )
    print(
        f"   full garbage collections: {level.full_gc.ms()} (p99 and max interpolated in"
        f" and bounded by buckets); {level.frozen:.0f} objects frozen at start-up"
    )
    shares = ", ".join(f"generation {g} {share:.1%}" for g, share in level.gc_share.items())
    print(
        f"   time in garbage collection: {sum(level.gc_share.values()):.1%} of the window"
        f" ({shares})"
    )
    print(f"   RSS: {level.rss.plain(' MiB', 1)}")
    print(
        f"   streams open at the model: {level.streams_open.plain('', 0)}; "
        f"turns answered {level.turns}, lost {level.lost}; bot CPU {level.cpu:.0%} of a core"
        f" ({level.cpu * level.window_s / max(1, level.turns) * 1000:.0f} ms CPU per turn)"
    )


def print_curve(levels: list[Level], idle: float) -> None:
    print("== curve")
    print(
        "interviews | streaming | loop lag p50 | loop lag p99 | RSS p50 | RSS max | "
        "MiB/interview over idle | bot CPU"
    )
    for lv in levels:
        per = (lv.rss.max - idle) / lv.interviews
        print(
            f"{lv.interviews:>10} | {lv.streaming_slots:>9} | {lv.lag.p50 * 1000:9.1f} ms |"
            f" {lv.lag.p99 * 1000:9.1f} ms | {lv.rss.p50:5.1f} MiB | {lv.rss.max:5.1f} MiB |"
            f" {per:23.3f} | {lv.cpu:6.0%}"
        )
    if len(levels) >= 2:
        first, last = levels[0], levels[-1]
        ratio = last.interviews / first.interviews
        print(
            f"ratios {first.interviews} -> {last.interviews} interviews (x{ratio:g}): "
            f"loop lag p99 x{last.lag.p99 / first.lag.p99:.2f}, "
            f"RSS max x{last.rss.max / first.rss.max:.2f}"
        )
    print("bars: loop lag p99 < 50 ms, RSS < 300 MiB at 1,000 interviews")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    header(
        "capacity of one process (Discord, 10 % streaming)",
        levels=args.levels,
        window_s=args.window,
        bot_core=args.bot_core,
        load_core=args.load_core,
        database="sqlite" if args.sqlite else "postgresql",
    )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
