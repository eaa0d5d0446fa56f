"""Two bot replicas on one PostgreSQL behind a round-robin proxy, against one.

    python -m bench.two_replicas [--interviews 50] [--clients 32] [--seconds 20] [--pin]
        [--no-reminders] [--postgres URL]

For one replica and then for two, the real bots (``python -m bot run``, Slack HTTP mode)
run behind a round-robin reverse proxy: nginx (``nginx -c <temp conf> -g 'daemon off;'``,
``upstream { server a; server b; }``) when it is on PATH, else ``bench/proxy.py`` (the output
says which). Everything goes through the proxy: the interviews of ``bench.ack_latency``'s
load are opened and kept streaming (realistic fakes: 80 ms per Slack call, 300 ms to the
model's first token, then 50 tokens/s), and meanwhile a separate load process runs
``--clients`` closed-loop clients that send signed ``/interview status`` and
``/interview challenges`` commands back to back for ``--seconds`` seconds.

Throughput = slash commands acknowledged (HTTP 200) per second at that saturation; the
ratio two / one is the figure (target >= 1.8). Candidate turns completed per second are
printed too: they are set by the model's speed, not the bot's, so they show that the
streaming load was served, not capacity. After the load: zero doubled replies (every
candidate message reached the model once, and each thread holds one reply per answer) and,
with two replicas, a weekly program scheduled a few minutes ahead whose two reminders to
each of candidate and interviewer are each sent once and whose interview starts once.

``--pin`` pins each bot process (all its threads) to its own CPU with
``sched_setaffinity`` (the proxy, PostgreSQL, the fakes and the load process float).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench.ack_latency import (
    INTERVIEWER,
    Load,
    SlackBench,
    bot_env_slack,
    extra_env,
    long_reply,
    slack_user,
    slack_world,
)
from bench.fakes.processes import BotProcess, free_port
from bench.fakes.slack_signing import signed_headers, slash_command_body
from bench.harness import (
    SECRET,
    Distribution,
    add_database_flags,
    bench_database,
    header,
    start_bot,
    until,
)

COMMANDS = ("status", "challenges")
REPLY_MARK = long_reply(6)  # the start of every model reply of the load
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# ---------------------------------------------------------------------------- the proxy


def nginx_conf(folder: Path, port: int, upstreams: list[int]) -> str:
    servers = "\n".join(f"    server 127.0.0.1:{p};" for p in upstreams)
    temp = " ".join(
        f"{name}_temp_path {folder}/{name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  {temp}
  upstream bots {{
{servers}
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://bots;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
  }}
}}
"""


@asynccontextmanager
async def proxy(upstreams: list[int]) -> AsyncIterator[tuple[str, int]]:
    """A round-robin proxy to ``upstreams``: (which one, its port)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="proxy-") as raw:
        folder = Path(raw)
        if shutil.which("nginx"):
            conf = folder / "nginx.conf"
            conf.write_text(nginx_conf(folder, port, upstreams))
            args = ["nginx", "-p", str(folder), "-c", str(conf), "-g", "daemon off;"]
            which = "nginx"
        else:
            args = [sys.executable, "-m", "bench.proxy", str(port), *map(str, upstreams)]
            which = "bench/proxy.py (aiohttp; nginx is not on PATH)"
        proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.DEVNULL)
        try:
            async with aiohttp.ClientSession() as http:

                async def up() -> bool:
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                            return r.status == 200
                    except aiohttp.ClientError:
                        return False

                await until(up, limit_s=20, every_s=0.1)
            yield which, port
        finally:
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()


def pin(pid: int, cpu: int) -> None:
    """Every thread of ``pid`` onto ``cpu``."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {cpu})


# ---------------------------------------------------------------------------- the load


async def saturate(url: str, clients: int, seconds: float, bodies: list[str]) -> dict[str, Any]:
    """Run the load process (``--load-client``): closed-loop clients, one request each at a
    time, for ``seconds``; returns its tally."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.two_replicas",
        "--load-client",
        url,
        str(clients),
        str(seconds),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate(json.dumps(bodies).encode())
    if proc.returncode != 0:
        raise RuntimeError(f"the load process exited {proc.returncode}")
    tally: dict[str, Any] = json.loads(out)
    return tally


async def load_client_main(url: str, clients: int, seconds: float) -> None:
    bodies = iter(json.loads(sys.stdin.read()))
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        end = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < end:
                body = next(bodies, None)
                if body is None:
                    return
                sent = time.perf_counter()
                try:
                    async with http.post(
                        url, data=body, headers=signed_headers(SECRET, body)
                    ) as response:
                        await response.read()
                        key = str(response.status)
                except aiohttp.ClientError as exc:
                    key = type(exc).__name__
                statuses[key] = statuses.get(key, 0) + 1
                if key == "200":
                    latencies.append(time.perf_counter() - sent)

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    json.dump({"latencies": latencies, "statuses": statuses, "elapsed": elapsed}, sys.stdout)


# ---------------------------------------------------------------------------- one phase


@dataclass
class Phase:
    replicas: int
    proxy: str
    acked_per_s: float
    latency: Distribution
    statuses: dict[str, int]
    turns_per_s: float
    turns: int
    doubled_model_calls: int
    doubled_replies: int
    unanswered: int
    reminders: dict[str, int] | None
    scheduled_starts: int | None


async def phase(args: argparse.Namespace, replicas: int, folder: Path) -> Phase:
    async with (
        bench_database(args, folder) as database_url,
        slack_world(args, folder, database_url) as (slack, openai, http),
    ):
        env = bot_env_slack(slack, openai, database_url, extra_env(args))
        started = await asyncio.gather(
            *(start_bot(folder, JOB_SWEEP_S="1", **env) for _ in range(replicas))
        )
        bots: list[BotProcess] = [b for b, _, _ in started]
        if args.pin:
            for cpu, bot in zip(itertools.cycle(reversed(range(os.cpu_count() or 1))), bots):
                pin(bot.proc.pid, cpu)
        try:
            async with proxy([p for _, p, _ in started]) as (which, port):
                world = SlackBench(slack, openai, http, f"http://127.0.0.1:{port}/slack/events")
                return await drive(args, replicas, which, world, database_url)
        finally:
            for bot in bots:
                await bot.kill()


async def schedule_program(world: SlackBench, candidate: str) -> datetime:
    """A one-week program a few minutes ahead with reminders 2 and 1 minute before (UTC)."""
    now = datetime.now(UTC)
    at = (now + timedelta(seconds=150)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    url = world.slack.new_response_url()
    text = (
        f"schedule <@{candidate}|sched> {WEEKDAYS[at.weekday()]} {at:%H:%M} 1w 30m "
        "two-sum remind:2m,1m"
    )
    body = slash_command_body(text=text, user_id=INTERVIEWER, response_url=url)
    assert await world.post(body) == 200
    rid = url.rsplit("/", 1)[1]
    await until(lambda: bool(world.slack.responses[rid]), limit_s=30)
    answer = world.slack.responses[rid][-1].get("text", "")
    if "❌" in answer:
        raise RuntimeError(f"could not schedule: {answer}")
    return at


async def drive(
    args: argparse.Namespace, replicas: int, which: str, world: SlackBench, database_url: str
) -> Phase:
    scheduled = None
    sched_user = slack_user(args.interviews + 1000)
    if args.reminders and replicas > 1:
        world.slack.add_user(sched_user, name="sched")
        scheduled = await schedule_program(world, sched_user)
    await world.open(database_url, args.interviews, 0)
    load = Load(world.openai, world.say)
    tasks = [asyncio.create_task(load.candidate(r, i)) for i, r in enumerate(world.rooms)]
    try:
        await until(lambda: len(world.openai.streams) >= 0.9 * len(world.rooms), limit_s=180)
        await asyncio.sleep(1.0)
        bodies = [
            slash_command_body(
                text=COMMANDS[n % 2],
                user_id=INTERVIEWER,
                response_url=world.slack.new_response_url(),
            )
            for n in range(int(args.seconds * 2000))
        ]
        turns_before = load.turns_done
        tally = await saturate(world.events_url, args.clients, args.seconds, bodies)
        turns = load.turns_done - turns_before
    finally:
        load.stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    # Let the replies under way finish and their final updates land.
    await until(lambda: load.streaming() == 0, limit_s=60)
    await asyncio.sleep(5.0)
    reminders = starts = None
    if scheduled is not None:
        wait = (scheduled + timedelta(seconds=20) - datetime.now(UTC)).total_seconds()
        await asyncio.sleep(max(0.0, wait))
        reminders, starts = count_program(world, sched_user)
    doubled_calls, doubled_replies, unanswered = count_replies(world)
    acked = tally["statuses"].get("200", 0)
    return Phase(
        replicas,
        which,
        acked / tally["elapsed"],
        Distribution.of(tally["latencies"]),
        tally["statuses"],
        turns / tally["elapsed"],
        load.turns_done,
        doubled_calls,
        doubled_replies,
        unanswered,
        reminders,
        starts,
    )


def count_replies(world: SlackBench) -> tuple[int, int, int]:
    """(tags the model saw more than once, threads with more replies than answers, threads
    with fewer)."""
    seen: dict[str, int] = {}
    for stream in world.openai.streams:
        tag = stream.prompt.split(" ", 1)[0]
        seen[tag] = seen.get(tag, 0) + 1
    doubled_calls = sum(1 for n in seen.values() if n > 1)
    more = fewer = 0
    for index, room in enumerate(world.rooms):
        answers = sum(1 for tag in seen if tag.startswith(f"c{index}t"))
        replies = sum(
            1
            for m in world.slack.thread(room.channel, room.anchor)
            if m.bot_id is not None and REPLY_MARK in m.text
        )
        more += replies > answers
        fewer += replies < answers
    return doubled_calls, more, fewer


def count_program(world: SlackBench, candidate: str) -> tuple[dict[str, int], int]:
    """Reminder messages by (recipient DM, wording), and interviews the program started."""
    reminders: dict[str, int] = {}
    for who in (candidate, INTERVIEWER):
        dm = world.slack.conversation_with(who)
        for m in world.slack.channel_messages(dm) if dm else []:
            if m.text.startswith("⏰"):
                key = f"{'candidate' if who == candidate else 'interviewer'}: {m.text}"
                reminders[key] = reminders.get(key, 0) + 1
    starts = sum(
        1 for m in world.slack.messages.values() if m.text.startswith("▶️") and candidate in m.text
    )
    return reminders, starts


# ---------------------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--interviews", type=int, default=50, help="interviews kept streaming")
    p.add_argument("--clients", type=int, default=32, help="concurrent command clients")
    p.add_argument("--seconds", type=float, default=20.0, help="how long the commands run")
    p.add_argument("--reply-tokens", type=int, default=500, help="tokens per model reply")
    p.add_argument("--pin", action="store_true", help="pin each bot to its own CPU")
    p.add_argument(
        "--no-reminders",
        dest="reminders",
        action="store_false",
        help="skip the scheduled program (its reminders take about three minutes)",
    )
    p.add_argument(
        "--replicas", default="1,2", help="replica counts to run, in order (default 1,2)"
    )
    p.add_argument("--bot-env", action="append", default=[], metavar="NAME=VALUE")
    add_database_flags(p)
    return p


def report(p: Phase) -> None:
    r = p.replicas
    print(
        f"{r} replica(s) via {p.proxy}: {p.acked_per_s:.1f} commands acknowledged/s; "
        f"ack latency {p.latency.ms()}; responses {json.dumps(p.statuses, sort_keys=True)}"
    )
    print(
        f"{r} replica(s): candidate turns completed {p.turns_per_s:.2f}/s during the commands "
        f"({p.turns} in the whole run; set by the model's speed)"
    )
    print(
        f"{r} replica(s): doubled model calls {p.doubled_model_calls}, threads with a doubled "
        f"reply {p.doubled_replies}, threads with a missing reply {p.unanswered}"
    )
    if p.reminders is not None:
        doubled = sum(1 for n in p.reminders.values() if n > 1)
        print(
            f"{r} replica(s): program reminders sent {sum(p.reminders.values())} "
            f"(expected 4: 2 offsets x candidate and interviewer), doubled {doubled}; "
            f"scheduled interview started {p.scheduled_starts} time(s) (expected 1)"
        )


async def amain(args: argparse.Namespace) -> None:
    if args.sqlite:
        raise SystemExit("two replicas share one PostgreSQL: --sqlite is not supported")
    header(
        "Two replicas behind a round-robin proxy, against one",
        interviews=args.interviews,
        clients=args.clients,
        seconds=args.seconds,
        reply_tokens=args.reply_tokens,
        pin=args.pin,
        reminders=args.reminders,
        proxy="nginx" if shutil.which("nginx") else "bench/proxy.py",
        database="postgresql",
        model="300 ms TTFT, 50 tok/s",
        platform_latency="80 ms",
    )
    phases: list[Phase] = []
    for replicas in (int(r) for r in args.replicas.split(",")):
        with tempfile.TemporaryDirectory(prefix=f"replicas-{replicas}-") as folder:
            phases.append(await phase(args, replicas, Path(folder)))
        report(phases[-1])
    by = {p.replicas: p for p in phases}
    if 1 in by and 2 in by:
        ratio = by[2].acked_per_s / by[1].acked_per_s if by[1].acked_per_s else float("nan")
        print(f"throughput two / one: {ratio:.2f} (target >= 1.8)")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--load-client":
        url, clients, seconds = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
        asyncio.run(load_client_main(url, clients, seconds))
        return
    asyncio.run(amain(parser().parse_args()))


if __name__ == "__main__":
    main()
