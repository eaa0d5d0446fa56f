"""The console try-out end to end: a scripted session piped into the real CLI."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import sys
from pathlib import Path

from tests.fakes.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]
DEMO = (ROOT / "docs" / "console-demo.txt").read_text()


async def run_console(cwd: Path, script: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DATABASE_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "console",
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(script.encode()), timeout=60)
    text = out.decode()
    assert proc.returncode == 0, text
    return text


def token_counts(output: str) -> list[tuple[int, int]]:
    return [
        (int(used.replace(",", "")), int(budget.replace(",", "")))
        for used, budget in re.findall(r"🪙 ([\d,]+)/([\d,]+) tokens", output)
    ]


async def test_scripted_session_warns_extends_and_ends_on_tokens(tmp_path: Path) -> None:
    output = await run_console(tmp_path, DEMO)
    assert "offline model" in output
    assert "Started `two-sum` with @me: 10m, 6,000 tokens." in output
    assert output.count("🤖 ") >= 4  # several turns answered
    assert output.count("⚠️ 75% of the token budget is used.") == 1
    assert "The interviewer added +5m." in output
    assert "🏁 The token budget is used up." in output and "reason: tokens_exhausted" in output
    counts = token_counts(output)
    assert counts and all(used <= budget for used, budget in counts)
    assert [used for used, _ in counts] == sorted(used for used, _ in counts)
    # messages after the end are refused politely
    assert "This interview has ended, so messages are no longer answered" in output
    with sqlite3.connect(tmp_path / "interview-buddy.db") as db:
        status, reason, used, budget, extra = db.execute(
            "select status, end_reason, tokens_used, token_budget, extra_time_s from interviews"
        ).fetchone()
        charged = db.execute("select sum(charged_tokens) from turns").fetchone()[0]
    assert (status, reason, extra) == ("ended", "tokens_exhausted", 300)
    assert used == charged <= budget == 6000


async def test_bad_commands_get_friendly_errors_and_change_nothing(tmp_path: Path) -> None:
    output = await run_console(
        tmp_path,
        "/interview start me 45 two-sum\n/interview frobnicate\n/interview start me 10m nope\n"
        "/interview status\nhello?\n",
    )
    assert "❌ A budget of 45 tokens is too small" in output and "did you mean `45m`" in output
    assert "❌ `frobnicate` is not an /interview command." in output
    assert "❌ There is no challenge `nope`." in output
    assert "No interviews are running." in output
    assert "No interview is running." in output


async def test_console_uses_the_real_gateway_when_a_base_url_is_set(tmp_path: Path) -> None:
    async with FakeOpenAI() as fake:
        fake.replies.append("Use a hash map from value to index.")
        output = await run_console(
            tmp_path,
            "/interview start me 10m 5k two-sum\nHow?\n",
            OPENAI_BASE_URL=fake.base_url,
            OPENAI_API_KEY="sk-test-console",
        )
    assert "🤖 Use a hash map from value to index." in output
    assert "offline model" not in output
    (request,) = fake.requests
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
    assert request["messages"][-1] == {"role": "user", "content": "How?"}
    assert "sk-test-console" not in output
