"""Ack latency of /interview over the bot's real HTTP endpoint (Slack wants < 3 s).

Starts the fake Slack Web API and the bot (SQLite in a temp folder), sends N signed slash
commands (`status` and `start`) concurrently in waves, and prints p50/p99 of the time until
the HTTP response, plus how many 429s the fake Slack saw. Run:

    .venv/bin/python bench/slack_ack_latency.py [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.slack.runner import SlackAdapter  # noqa: E402
from bot.app import BotRuntime, slack_config  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from core.ports import RateLimiter  # noqa: E402
from core.service import InterviewService  # noqa: E402
from tests.fakes.slack_server import FakeSlack  # noqa: E402
from tests.fakes.slack_signing import signed_headers, slash_command_body  # noqa: E402

SECRET = "bench-secret"


async def main(total: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with FakeSlack() as slack:
            settings = load_settings(
                database_url=f"sqlite+aiosqlite:///{folder}/bench.db",
                slack_bot_token="xoxb-test",
                slack_signing_secret=SECRET,
                slack_api_url=slack.api_url,
                slack_interviewers="UINTVW01",
                http_host="127.0.0.1",
                http_port=0,
            )

            def factory(service: InterviewService, limiter: RateLimiter) -> SlackAdapter:
                return SlackAdapter(slack_config(settings), service, rate_limiter=limiter)

            runtime = BotRuntime(settings, {"slack": factory})
            await runtime.start()
            url = f"http://127.0.0.1:{runtime.port}/slack/events"
            latencies: list[float] = []

            async def one(http: aiohttp.ClientSession, i: int) -> None:
                text = f"start <@UC{i:07d}> 30m 20k two-sum" if i % 2 else "status"
                body = slash_command_body(
                    text=text, user_id="UINTVW01", response_url=slack.new_response_url()
                )
                started = time.perf_counter()
                async with http.post(url, data=body, headers=signed_headers(SECRET, body)) as r:
                    assert r.status == 200
                latencies.append(time.perf_counter() - started)

            try:
                async with aiohttp.ClientSession() as http:
                    for wave in range(0, total, 25):
                        await asyncio.gather(
                            *(one(http, i) for i in range(wave, min(total, wave + 25)))
                        )
            finally:
                await runtime.stop()
            latencies.sort()
            p50 = statistics.median(latencies)
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            print(
                f"{len(latencies)} slash commands in waves of 25: ack p50 {p50 * 1000:.1f} ms, "
                f"p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms; "
                f"429s seen by fake Slack: {len(slack.rate_limited)}"
            )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
