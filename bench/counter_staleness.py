"""Counter staleness against the rate-limit floor (issue 12, item 3).

Slack: ``--interviews`` (100) interviews run at once in one workspace, through the real bot
process (``python -m bot run``) and the realistic fakes (80 ms per API call; the fake Slack
holds ``chat.update`` to Tier 3, 50 calls in any sliding 60 s window per workspace, and posts
to 1 a second per channel). Every counter changes all the time (its time left is shown to the
second), so no schedule can refresh a counter more often than the **floor** = running counters
/ 50 per minute (100 -> every 2 min), or than the bot's own cadence when the budget is not
binding (60 s); the floor is ``max(running / 50 per min, 60 s)``, averaged over each interval
as interviews end. The interviews are started by slash commands paced at ``--start-every``
(1.4 s: ``conversations.open`` is Tier 3 as well), and everything is measured only after the
last one started (setup), for ``--minutes`` (7).

Mixed in: ``--chatters`` candidates chatting all through the run (replies stream with Slack's
``chat.startStream`` / ``appendStream`` / ``stopStream``, Tier 4, limited apart from
``chat.update``), ``--warners`` candidates on a small token budget who chat across the token
warnings (75 %, 90 %, "about N messages fit") until it runs out, and ``--short`` interviews of
``--short-minutes`` (6) started last, whose time warnings (25 %, 10 %, 5 % of the time left)
fall into the run.

Figures (everything from the calls the fake Slack recorded, on its arrival clock):

- **interval**: for each counter (the root message of an interview), the time between two
  successive ``chat.update`` calls of it, for intervals that start after setup; also as a
  ratio to the floor over the same interval (target: p99 within 1.1), and to the floor at
  the end of setup (all interviews running).
- **age**: at moments every 0.5 s from one floor after setup to the end, for every running
  counter, how old the state it shows is: the time left it shows minus the true time left
  then (0 = up to date). A perfect round-robin gives ages spread from 0 to one floor.
- **429s**: ``slack.rate_limited``, in setup and in the run (target: none).
- **warnings**: each "⚠️" notice posted in a thread, from the moment it became due (time
  warnings: ``deadline - fraction x allowed``; token warnings: the ``chat.stopStream`` of the
  reply that crossed it) to the notice's arrival (target: within 5 s), and to the first
  counter update showing the new warning level (routine: in the counter's turn); due
  warnings that never appeared are counted.
- **streaming**: candidate message -> first ``chat.startStream`` of its reply, and the Tier-4
  calls per minute (the bot gives each streaming method 90 a minute of its own; the fake
  counts 100 per method, apart from ``chat.update``).

Discord (``--discord-interviews`` 100, ``--discord-minutes`` 3, the short interviews of
``--discord-short-minutes`` 3): the same mix, each interview
in its own private thread; 5 edits per 5 s per channel, 50 requests/s otherwise. Counters
there are redrawn only when something changes (the time counts down client-side with
``<t:…:R>``), so the figure is the **edit delay**: from the change (a reply's final edit, a
time warning becoming due) to the counter's ``PATCH``; plus 429s.

Run (the issue's scale; about 10 min for Slack, 5 min for Discord)::

    .venv/bin/python -m bench.counter_staleness

Smoke run::

    .venv/bin/python -m bench.counter_staleness --interviews 6 --minutes 0.5 --chatters 1 \\
        --warners 1 --short 1 --short-minutes 1 --discord-interviews 3 \\
        --discord-minutes 0.3 --sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import re
import tempfile
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.fakes.discord_server import FakeDiscord
from bench.fakes.openai_server import FakeOpenAI
from bench.fakes.slack_server import Call, FakeSlack
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
from storage import create_uow_factory
from storage.uow import UnitOfWorkFactory

INTERVIEWER = "UINTVW001"
SLACK_TIER_3 = 50.0  # chat.update a minute per workspace (the fake's default limit)
CADENCE_S = 60.0  # the bot's own counter refresh while the budget is not binding
WARNING_BAR_S = 5.0
TIME_FRACTIONS = {"25%": 0.25, "10%": 0.10, "5%": 0.05}
_LEFT = re.compile(r"(?:(\d+)h ?)?(?:(\d+)m ?)?(?:(\d+)s)? left, [\d,]+/[\d,]+ tokens")
_TIME_WARNING = re.compile(r"(\d+)% of the time is left")
_LEVEL = re.compile(r"warning level: (\w+)")


@dataclass
class Room:
    """One interview as the bench sees it (times on the monotonic clock)."""

    kind: str  # long, chatter, warner, short
    candidate: str
    interview_id: str = ""
    channel: str = ""
    root: str = ""  # Slack: the root (counter) message ts; Discord: the counter message id
    started: float = 0.0
    allowed_s: int = 0
    ended: float | None = None
    sent: list[float] = field(default_factory=list)  # candidate messages

    def deadline(self) -> float:
        return self.started + self.allowed_s

    def running(self, t: float) -> bool:
        return self.started <= t and (self.ended is None or t < self.ended)


def mono(moment: Any, offset: float) -> float:
    """A datetime from the database on the monotonic clock."""
    return float(moment.timestamp()) - offset


def plan(
    args: argparse.Namespace, interviews: int, short_minutes: int
) -> list[tuple[str, int, int]]:
    """(kind, minutes, tokens) per interview: long ones first, the short ones last."""
    kinds = ["chatter"] * args.chatters + ["warner"] * args.warners
    kinds += ["long"] * max(0, interviews - len(kinds) - args.short) + ["short"] * args.short
    sizes = {
        "long": (60, 20_000),
        "chatter": (60, 200_000),
        "warner": (60, args.warner_tokens),
        "short": (short_minutes, 20_000),
    }
    return [(kind, *sizes[kind]) for kind in kinds[:interviews]]


def floor_over(rooms: Sequence[Room], t1: float, t2: float) -> float:
    """The floor (seconds) averaged over [t1, t2]: running counters / 50 a minute, at least
    the bot's cadence."""
    steps = max(1, int(t2 - t1))
    total = 0.0
    for i in range(steps):
        t = t1 + (i + 0.5) * (t2 - t1) / steps
        running = sum(1 for r in rooms if r.running(t))
        total += max(running * 60.0 / SLACK_TIER_3, CADENCE_S)
    return total / steps


def shown_left(text: str) -> int | None:
    """The seconds left a counter's text shows (None: not a running counter's text)."""
    found = _LEFT.search(text)
    if found is None or "ended" in text:
        return None
    h, m, s = (int(g) if g else 0 for g in found.groups())
    return h * 3600 + m * 60 + s


def per_minute(times: Iterable[float], start: float, end: float) -> Distribution:
    """Calls in each whole minute of [start, end]."""
    minutes = max(1, int((end - start) // 60))
    counts = Counter(int((t - start) // 60) for t in times if start <= t < start + minutes * 60)
    return Distribution.of(counts.get(i, 0) for i in range(minutes))


def ratio_line(name: str, dist: Distribution, floor: Distribution) -> str:
    return (
        f"{name}: {dist.plain(' s', 1)}; floor {floor.plain(' s', 1)}; "
        f"p99 / floor p50 = {dist.p99 / floor.p50:.2f}"
    )


# ====================================================================== Slack


class SlackRun:
    def __init__(self, args: argparse.Namespace, slack: FakeSlack, port: int) -> None:
        self.args = args
        self.slack = slack
        self.url = f"http://127.0.0.1:{port}/slack/events"
        self.http = aiohttp.ClientSession()
        self.ts = itertools.count(1)

    async def send(self, body: str) -> None:
        async with self.http.post(self.url, data=body, headers=signed_headers(SECRET, body)) as r:
            if r.status != 200:
                raise RuntimeError(f"the bot answered {r.status}")

    async def start(self, room: Room, minutes: int, tokens: int) -> None:
        response_url = self.slack.new_response_url()
        text = f"start <@{room.candidate}|{room.candidate.lower()}> {minutes}m {tokens} two-sum"
        await self.send(
            slash_command_body(text=text, user_id=INTERVIEWER, response_url=response_url)
        )
        rid = response_url.rsplit("/", 1)[1]
        await until(lambda: bool(self.slack.responses.get(rid)), limit_s=300, every_s=0.1)
        reply = self.slack.responses[rid][-1].get("text", "")
        if not reply.startswith("Started"):
            raise RuntimeError(f"start refused: {reply}")

    def _calls_in(self, channel: str, since: float, methods: set[str]) -> list[Call]:
        """Calls of ``methods`` in ``channel`` that arrived since ``since`` (newest first)."""
        found = []
        for c in reversed(self.slack.calls):
            if c.at < since:
                break
            if c.method in methods and c.params.get("channel") == channel:
                found.append(c)
        return found

    async def chat(self, room: Room, think_s: float, stop_at: float) -> None:
        """Ask, wait for the reply (or a refusal), think, ask again; until the end or the
        interview ended."""
        n, sent = 0, time.monotonic()
        while time.monotonic() < stop_at:
            posts = self._calls_in(room.channel, sent, {"chat.postMessage"})
            if any("🏁" in str(c.params.get("text", "")) for c in posts):
                return  # ended (its tokens ran out)
            sent = time.monotonic()
            ts = f"{int(time.time())}.{next(self.ts):06d}"
            event = message_event(
                room.channel,
                room.candidate,
                f"Question {n}: how would you approach it?",
                ts,
                thread_ts=room.root,
            )
            await self.send(event_body(event))
            room.sent.append(sent)
            n += 1

            def answered(since: float = sent) -> bool:
                return bool(
                    self._calls_in(room.channel, since, {"chat.stopStream", "chat.postMessage"})
                )

            with contextlib.suppress(TimeoutError):
                await until(answered, limit_s=60, every_s=0.2)
            await asyncio.sleep(max(0.0, min(think_s, stop_at - time.monotonic())))

    async def close(self) -> None:
        await self.http.close()


async def slack_bench(args: argparse.Namespace, openai: FakeOpenAI) -> None:
    slack = realistic_slack()
    async with slack:
        slack.add_user(INTERVIEWER, name="ivy")
        layout = plan(args, args.interviews, args.short_minutes)
        rooms = [Room(kind, f"UCAND{i:05d}") for i, (kind, _, _) in enumerate(layout)]
        for room in rooms:
            slack.add_user(room.candidate, name=room.candidate.lower())
        with tempfile.TemporaryDirectory() as folder:
            async with bench_database(args, Path(folder)) as url:
                env = slack_env(
                    slack,
                    openai,
                    url,
                    SLACK_INTERVIEWERS=INTERVIEWER,
                    EVALUATION="off",
                    SHUTDOWN_GRACE="3",
                    LLM_MAX_RETRIES="0",
                )
                bot, port, _ = await start_bot(Path(folder), **env)
                run = SlackRun(args, slack, port)
                try:
                    await slack_measure(args, slack, run, rooms, layout, url)
                finally:
                    await run.close()
                    await stop(bot)


async def slack_measure(
    args: argparse.Namespace,
    slack: FakeSlack,
    run: SlackRun,
    rooms: list[Room],
    layout: list[tuple[str, int, int]],
    url: str,
) -> None:
    offset = time.time() - time.monotonic()
    begun = time.monotonic()
    await start_paced(rooms, layout, run.start, args.start_every)
    setup_end = time.monotonic()
    setup_429 = len(slack.rate_limited)
    db = create_uow_factory(url)
    try:
        await read_rooms(db, rooms, offset, "channel", "thread_ts")
        stop_at = setup_end + args.minutes * 60
        talkers = [
            run.chat(r, args.think if r.kind == "chatter" else args.warner_think, stop_at)
            for r in rooms
            if r.kind in ("chatter", "warner")
        ]
        await asyncio.gather(*talkers, asyncio.sleep(max(0.0, stop_at - time.monotonic())))
        end = time.monotonic()
        await read_ends(db, rooms, offset)
    finally:
        await db.close()
    print(f"setup: {len(rooms)} interviews started in {setup_end - begun:.0f} s")
    slack_report(slack, rooms, setup_end, end, setup_429)


async def stop(bot: Any) -> None:
    bot.terminate()
    try:
        await bot.exit_code(timeout=30)
    except TimeoutError:
        await bot.kill()


async def start_paced(
    rooms: list[Room],
    layout: list[tuple[str, int, int]],
    start: Callable[[Room, int, int], Coroutine[Any, Any, None]],
    every_s: float,
) -> None:
    """Start one interview every ``every_s`` seconds; return when all have started."""
    starts = []
    for room, (_, minutes, tokens) in zip(rooms, layout, strict=True):
        starts.append(asyncio.create_task(start(room, minutes, tokens)))
        await asyncio.sleep(every_s)
    await asyncio.gather(*starts)


async def read_rooms(
    db: UnitOfWorkFactory, rooms: list[Room], offset: float, channel_key: str, root_key: str
) -> None:
    """Fill each room from its stored interview (found by candidate)."""
    async with db() as uow:
        stored = {i.candidate_id: i for i in await uow.interviews.list_open()}
    for room in rooms:
        interview = stored[room.candidate]
        assert interview.started_at is not None
        room.interview_id = interview.id
        room.started = mono(interview.started_at, offset)
        room.allowed_s = interview.allowed_time_s
        room.channel = str(interview.platform_data[channel_key])
        room.root = str(interview.platform_data[root_key])


async def read_ends(db: UnitOfWorkFactory, rooms: list[Room], offset: float) -> None:
    """When each room's interview ended, if it did."""
    async with db() as uow:
        for room in rooms:
            found = await uow.interviews.get(room.interview_id)
            if found is not None and found.ended_at is not None:
                room.ended = mono(found.ended_at, offset)


def slack_report(
    slack: FakeSlack, rooms: list[Room], setup_end: float, end: float, setup_429: int
) -> None:
    by_root = {(r.channel, r.root): r for r in rooms}
    by_channel = {r.channel: r for r in rooms}
    shown: dict[str, list[tuple[float, str]]] = {r.channel: [] for r in rooms}
    for call in slack.calls:
        channel = str(call.params.get("channel", ""))
        if call.method == "chat.update" and (channel, call.params.get("ts")) in by_root:
            blocks = json.dumps(call.params.get("blocks"), ensure_ascii=False)
            shown[channel].append((call.at, f"{call.params.get('text', '')}\n{blocks}"))
        elif (
            call.method == "chat.postMessage"
            and channel in by_channel
            and not call.params.get("thread_ts")
            and not shown[channel]
        ):
            shown[channel].append((call.at, str(call.params.get("text", ""))))  # the root post

    intervals: list[float] = []
    ratios: list[float] = []
    floors: list[float] = []
    for room in rooms:
        times = [t for t, _ in shown[room.channel]]
        for t1, t2 in itertools.pairwise(times):
            if t1 >= setup_end and t2 <= end:
                floor = floor_over(rooms, t1, t2)
                intervals.append(t2 - t1)
                floors.append(floor)
                ratios.append((t2 - t1) / floor)

    first_floor = floor_over(rooms, setup_end, setup_end + 1)
    ages: list[float] = []
    t = setup_end + first_floor
    while t < end:
        for room in rooms:
            if not room.running(t) or t > room.deadline():
                continue
            seen = shown[room.channel]
            index = bisect_right([s for s, _ in seen], t) - 1
            if index < 0:
                continue
            left = shown_left(seen[index][1])
            if left is not None:
                ages.append(left - (room.deadline() - t))
        t += 0.5

    updates = [c.at for c in slack.calls_to("chat.update")]
    print(
        f"counters: {sum(1 for r in rooms if r.running(setup_end))} running after setup, "
        f"run {end - setup_end:.0f} s after setup"
    )
    print(
        ratio_line("counter update interval", Distribution.of(intervals), Distribution.of(floors))
    )
    print(f"interval / floor: {Distribution.of(ratios).plain('', 2)} (target p99 <= 1.10)")
    nominal = floor_over(rooms, setup_end, setup_end + 1)
    print(
        f"interval / floor at setup end ({nominal:.0f} s): "
        f"{Distribution.of(i / nominal for i in intervals).plain('', 2)}"
    )
    print(
        f"shown state age: {Distribution.of(ages).plain(' s', 1)}; "
        f"best possible spread 0 .. {first_floor:.0f} s"
    )
    print(f"chat.update a minute: {per_minute(updates, setup_end, end).plain('', 0)} (limit 50)")
    limited = Counter(method for method, _ in slack.rate_limited)
    print(
        f"429s: {len(slack.rate_limited)} ({setup_429} in setup) "
        + (", ".join(f"{m} {n}" for m, n in limited.items()) or "none")
    )
    slack_warnings(slack, rooms, shown, end)
    slack_streams(slack, rooms, setup_end, end)


def slack_warnings(
    slack: FakeSlack, rooms: list[Room], shown: dict[str, list[tuple[float, str]]], end: float
) -> None:
    by_channel = {r.channel: r for r in rooms}
    notice_delays: list[float] = []
    counter_delays: list[float] = []
    kinds: Counter[str] = Counter()
    worst = (0.0, "")
    seen_time: set[tuple[str, str]] = set()
    stops: dict[str, list[float]] = {}
    for call in slack.calls_to("chat.stopStream"):
        stops.setdefault(str(call.params.get("channel")), []).append(call.at)
    for call in slack.calls_to("chat.postMessage"):
        text = str(call.params.get("text", ""))
        room = by_channel.get(str(call.params.get("channel")))
        if room is None or not text.startswith("⚠️"):
            continue
        found = _TIME_WARNING.search(text)
        if found is not None:
            fraction = TIME_FRACTIONS[f"{found.group(1)}%"]
            due = room.deadline() - fraction * room.allowed_s
            seen_time.add((room.channel, found.group(1)))
            kinds["time"] += 1
        else:
            before = [t for t in stops.get(room.channel, []) if t <= call.at]
            if not before:
                continue
            due = before[-1]
            kinds["token"] += 1
        notice_delays.append(call.at - due)
        worst = max(worst, (call.at - due, f"{text[:60]!r} in {room.kind} interview"))
        level = next((t for t, s in shown[room.channel] if t >= due and _LEVEL.search(s)), None)
        if level is not None:
            counter_delays.append(level - due)
    missing = 0
    for room in rooms:
        for pct, fraction in TIME_FRACTIONS.items():
            due = room.deadline() - fraction * room.allowed_s
            if due < end - WARNING_BAR_S and (room.channel, pct[:-1]) not in seen_time:
                missing += 1
    notices = Distribution.of(notice_delays)
    print(
        f"warnings: {kinds['time']} time, {kinds['token']} token; due -> notice "
        f"{notices.plain(' s', 2)}; due -> counter shows the level (in its turn) "
        f"{Distribution.of(counter_delays).plain(' s', 2)}; over {WARNING_BAR_S:.0f} s: "
        f"{sum(1 for d in notice_delays if d > WARNING_BAR_S)}; missing: {missing}"
    )
    if worst[1]:
        print(f"slowest notice: {worst[0]:.2f} s, {worst[1]}")


def slack_streams(slack: FakeSlack, rooms: list[Room], setup_end: float, end: float) -> None:
    firsts: list[float] = []
    for room in rooms:
        starts = sorted(
            c.at
            for c in slack.calls_to("chat.startStream")
            if c.params.get("channel") == room.channel
        )
        for sent in room.sent:
            after = [t for t in starts if t >= sent]
            if after:
                firsts.append(after[0] - sent)
    asked = sum(len(r.sent) for r in rooms)
    print(
        f"replies: {len(firsts)} of {asked} candidate messages; message -> first words "
        f"{Distribution.of(firsts).ms()}"
    )
    for method in ("chat.startStream", "chat.appendStream", "chat.stopStream"):
        times = [c.at for c in slack.calls_to(method)]
        print(
            f"{method} a minute: {per_minute(times, setup_end, end).plain('', 0)} "
            "(budget 90 of Slack's 100, its own)"
        )


# ====================================================================== Discord


def _content(call: Any) -> str:
    return json.dumps(call.json) if call.json is not None else ""


async def discord_bench(args: argparse.Namespace, openai: FakeOpenAI) -> None:
    discord = realistic_discord()
    async with discord:
        ids = discord.seed()
        layout = plan(args, args.discord_interviews, args.discord_short_minutes)
        rooms = [
            Room(kind, str(discord.add_member(ids.guild_id, username=f"cand{i}")))
            for i, (kind, _, _) in enumerate(layout)
        ]
        with tempfile.TemporaryDirectory() as folder:
            async with bench_database(args, Path(folder)) as url:
                env = discord_env(
                    discord,
                    openai,
                    url,
                    ids.guild_id,
                    EVALUATION="off",
                    SHUTDOWN_GRACE="3",
                    LLM_MAX_RETRIES="0",
                )
                bot, _, _ = await start_bot(Path(folder), **env)
                try:
                    await until(
                        lambda: any(
                            c.status
                            for c in discord.calls_matching("PUT", r"/applications/\d+/guilds/.*")
                        ),
                        limit_s=60,
                    )
                    await discord_measure(args, discord, ids, rooms, layout, url)
                finally:
                    await stop(bot)


async def discord_measure(
    args: argparse.Namespace,
    discord: FakeDiscord,
    ids: Any,
    rooms: list[Room],
    layout: list[tuple[str, int, int]],
    url: str,
) -> None:
    offset = time.time() - time.monotonic()
    wall = time.time

    async def start(room: Room, minutes: int, tokens: int) -> None:
        iid = await discord.send_slash_command(
            ids.guild_id,
            ids.channel_id,
            ids.admin_id,
            subcommand="start",
            options={
                "candidate": int(room.candidate),
                "challenge": "two-sum",
                "minutes": minutes,
                "tokens": tokens,
            },
        )
        await discord.wait_interaction_response(iid, timeout=30)
        await discord.wait_for(
            lambda: any(e["kind"] == "followup" for e in discord.interaction_responses[iid]),
            timeout=300,
        )

    begun = time.monotonic()
    await start_paced(rooms, layout, start, args.discord_start_every)
    setup_end = time.monotonic()
    setup_429 = discord.rate_limited
    db = create_uow_factory(url)
    try:
        await read_rooms(db, rooms, offset, "thread", "counter_message")
        stop_at = setup_end + args.discord_minutes * 60

        async def chat(room: Room, think_s: float) -> None:
            n, since = 0, wall()
            while time.monotonic() < stop_at:
                if any("🏁" in _content(c) for c in thread_posts(discord, room, since)):
                    return  # ended (its tokens ran out)
                since = wall()
                try:
                    await discord.send_message(room.channel, room.candidate, f"Question {n}?")
                except PermissionError:  # the thread was locked: the interview ended
                    return
                room.sent.append(time.monotonic())
                n += 1

                def answered(after: float = since) -> bool:
                    return any(
                        "tokens this turn" in _content(c) or "⚠" in _content(c)
                        for c in thread_posts(discord, room, after)
                    )

                with contextlib.suppress(TimeoutError):
                    await until(answered, limit_s=60, every_s=0.2)
                await asyncio.sleep(max(0.0, min(think_s, stop_at - time.monotonic())))

        talkers = [
            chat(r, args.think if r.kind == "chatter" else args.warner_think)
            for r in rooms
            if r.kind in ("chatter", "warner")
        ]
        await asyncio.gather(*talkers, asyncio.sleep(max(0.0, stop_at - time.monotonic())))
        end = time.monotonic()
        await asyncio.sleep(2)  # let edits due at the end land
        await read_ends(db, rooms, offset)
    finally:
        await db.close()
    print(f"setup: {len(rooms)} interviews started in {setup_end - begun:.0f} s")
    discord_report(discord, rooms, setup_end, end, setup_429, offset)


def thread_posts(discord: FakeDiscord, room: Room, since_wall: float) -> list[Any]:
    """POSTs and PATCHes of messages in the room's thread since a wall-clock moment."""
    path = re.compile(rf"/channels/{room.channel}/messages(/\d+)?$")
    found = []
    for c in reversed(discord.calls):
        if c.at < since_wall:
            break
        if c.method in ("POST", "PATCH") and path.search(c.path):
            found.append(c)
    return found


def discord_report(
    discord: FakeDiscord,
    rooms: list[Room],
    setup_end: float,
    end: float,
    setup_429: int,
    offset: float,
) -> None:
    after_turn: list[float] = []
    after_warning: list[float] = []
    notice_delays: list[float] = []
    edits_total = 0
    for room in rooms:
        calls = sorted(thread_posts(discord, room, 0.0), key=lambda c: c.at)
        edits = [
            c.at - offset
            for c in calls
            if c.method == "PATCH" and c.path.endswith(f"/{room.root}") and c.status == 200
        ]
        edits_total += sum(1 for t in edits if t >= setup_end)
        finals = [
            c.at - offset
            for c in calls
            if "tokens this turn" in _content(c) and not c.path.endswith(f"/{room.root}")
        ]
        for moment in finals:
            later = [t for t in edits if t >= moment]
            if moment >= setup_end and later:
                after_turn.append(later[0] - moment)
        for pct, fraction in TIME_FRACTIONS.items():
            due = room.deadline() - fraction * room.allowed_s
            if not setup_end <= due < end - WARNING_BAR_S:
                continue
            later = [t for t in edits if t >= due]
            if later:
                after_warning.append(later[0] - due)
            notices = [
                c.at - offset
                for c in calls
                if c.method == "POST" and f"{pct[:-1]}% of the time is left" in _content(c)
            ]
            if notices:
                notice_delays.append(notices[0] - due)
    print(
        f"counter edits after setup: {edits_total} "
        f"(limit 5 per 5 s per thread; each interview is its own thread)"
    )
    print(f"reply final edit -> counter edit: {Distribution.of(after_turn).plain(' s', 2)}")
    print(
        f"time warning due -> notice {Distribution.of(notice_delays).plain(' s', 2)}; "
        f"-> counter edit {Distribution.of(after_warning).plain(' s', 2)}"
    )
    print(f"429s: {discord.rate_limited} ({setup_429} in setup)")


# ====================================================================== main


async def warm(openai: FakeOpenAI) -> None:
    """One throwaway streamed request: the fake's first tiktoken load takes ~0.6 s."""
    async with aiohttp.ClientSession() as http:
        body = {
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": "warm up"}],
        }
        async with http.post(f"{openai.base_url}/chat/completions", json=body) as response:
            await response.read()
    openai.requests.clear()
    openai.streams.clear()


async def main_async(args: argparse.Namespace) -> None:
    random.seed(12)
    openai = realistic_openai()
    async with openai:
        await warm(openai)
        if args.interviews:
            print(f"-- Slack: {args.interviews} interviews in one workspace")
            await slack_bench(args, openai)
        if args.discord_interviews:
            print(f"-- Discord: {args.discord_interviews} interviews, one private thread each")
            await discord_bench(args, openai)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--interviews", type=int, default=100, help="Slack interviews (0: skip)")
    parser.add_argument("--minutes", type=float, default=7.0, help="Slack run after setup")
    parser.add_argument("--start-every", type=float, default=1.4, help="seconds between starts")
    parser.add_argument("--chatters", type=int, default=4)
    parser.add_argument("--think", type=float, default=15.0, help="a chatter's pause (s)")
    parser.add_argument("--warners", type=int, default=4)
    parser.add_argument("--warner-tokens", type=int, default=4000)
    parser.add_argument("--warner-think", type=float, default=5.0)
    parser.add_argument("--short", type=int, default=6, help="interviews with short limits")
    parser.add_argument("--short-minutes", type=int, default=6)
    parser.add_argument("--discord-interviews", type=int, default=100, help="0: skip Discord")
    parser.add_argument("--discord-minutes", type=float, default=3.0)
    parser.add_argument("--discord-start-every", type=float, default=1.0)
    parser.add_argument("--discord-short-minutes", type=int, default=3)
    add_database_flags(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    header(
        "counter staleness against the rate-limit floor",
        interviews=args.interviews,
        minutes=args.minutes,
        chatters=args.chatters,
        warners=args.warners,
        short=f"{args.short}x{args.short_minutes}m",
        discord_interviews=args.discord_interviews,
        discord_minutes=args.discord_minutes,
        discord_short=f"{args.short}x{args.discord_short_minutes}m",
        database="sqlite" if args.sqlite else "postgresql",
    )
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
